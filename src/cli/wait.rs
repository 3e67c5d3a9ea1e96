//! `peapod wait pod NAME --for=condition=Ready|--for=delete|--for=jsonpath='{.x}'=VALUE`:
//! kubectl's wait, polling the pod's record.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::get::pod_object;
use super::jsonpath;
use crate::pod::record;
use crate::store::Paths;

const POLL: Duration = Duration::from_millis(20);

/// What to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Condition { name: String, status: String },
    Delete,
    JsonPath { expr: String, value: String },
}

pub fn parse_for(s: &str) -> Result<WaitFor> {
    if s == "delete" {
        return Ok(WaitFor::Delete);
    }
    if let Some(c) = s.strip_prefix("condition=") {
        let (name, status) = c.split_once('=').unwrap_or((c, "True"));
        return Ok(WaitFor::Condition {
            name: name.to_string(),
            status: status.to_string(),
        });
    }
    if let Some(j) = s.strip_prefix("jsonpath=") {
        let Some(end) = j.rfind("}=") else {
            bail!("--for=jsonpath needs the form jsonpath='{{.path}}'=value");
        };
        return Ok(WaitFor::JsonPath {
            expr: j[..=end].to_string(),
            value: j[end + 2..].to_string(),
        });
    }
    bail!("unrecognized condition: {s:?} (use condition=NAME, delete or jsonpath='{{.x}}'=VALUE)")
}

/// kubectl's duration syntax: `30s`, `2m`, `1m30s`, `500ms`, plain seconds.
pub fn parse_timeout(s: &str) -> Result<Duration> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid duration {s:?}"))?;
        num.clear();
        total += Duration::from_secs_f64(match unit.as_str() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => bail!("invalid duration {s:?}"),
        });
    }
    if !num.is_empty() {
        bail!("invalid duration {s:?}: missing unit");
    }
    Ok(total)
}

pub fn run(
    paths: &Paths,
    namespace: &str,
    name: &str,
    what: &WaitFor,
    timeout: Duration,
) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let rec = record::find(paths, namespace, name)?;
        let met = match (&rec, what) {
            (None, WaitFor::Delete) => {
                println!("pod/{name} condition met");
                return Ok(0);
            }
            (None, _) => bail!("pods \"{name}\" not found"),
            (Some(_), WaitFor::Delete) => false,
            (Some(r), WaitFor::Condition { name: cond, status }) => r
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_.eq_ignore_ascii_case(cond) && c.status.eq_ignore_ascii_case(status)
                    })
                }),
            (Some(r), WaitFor::JsonPath { expr, value }) => {
                let obj = serde_json::to_value(pod_object(r))?;
                jsonpath::render(expr, &obj)? == *value
            }
        };
        if met {
            println!("pod/{name} condition met");
            return Ok(0);
        }
        if Instant::now() >= deadline {
            eprintln!("error: timed out waiting for the condition on pods/{name}");
            return Ok(1);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_for_and_timeouts() {
        assert_eq!(
            parse_for("condition=Ready").unwrap(),
            WaitFor::Condition {
                name: "Ready".into(),
                status: "True".into()
            }
        );
        assert_eq!(parse_for("delete").unwrap(), WaitFor::Delete);
        assert_eq!(
            parse_for("jsonpath={.status.phase}=Running").unwrap(),
            WaitFor::JsonPath {
                expr: "{.status.phase}".into(),
                value: "Running".into()
            }
        );
        assert!(parse_for("ready").is_err());
        assert_eq!(parse_timeout("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_timeout("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert!(parse_timeout("5x").is_err());
    }
}
