//! `peapod logs`: prints or follows a container's CRI log, switching to the next instance's
//! file when the container restarts.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::ContainerStatus;

use super::{container_names, find_pod, DEFAULT_NAMESPACE};
use crate::logs::{read_log, LogEntry, LogTail, ReadOptions};
use crate::pod::record::{self, PodRecord};
use crate::store::Paths;

/// How often `-f` looks for new output and for the pod's fate.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    pub pod: String,
    #[arg(short, long)]
    pub container: Option<String>,
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    #[arg(short, long)]
    pub follow: bool,
    #[arg(short, long)]
    pub previous: bool,
    #[arg(long)]
    pub timestamps: bool,
    /// Lines of recent log to show; -1 shows all.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub tail: i64,
}

/// The container `logs` means: the one named, or the only one.
pub fn choose_container(rec: &PodRecord, requested: Option<&str>) -> Result<String> {
    let (apps, inits) = container_names(rec);
    match requested {
        Some(c) if apps.iter().chain(&inits).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => bail!("container {c} is not valid for pod {}", rec.name()),
        None if apps.len() == 1 => Ok(apps[0].clone()),
        None => bail!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            rec.name(),
            apps.join(" ")
        ),
    }
}

pub(crate) fn container_status<'a>(rec: &'a PodRecord, name: &str) -> Option<&'a ContainerStatus> {
    let st = rec.status.as_ref()?;
    st.container_statuses
        .iter()
        .chain(st.init_container_statuses.iter())
        .flatten()
        .find(|s| s.name == name)
}

/// The restart count of the container's current instance.
fn restart_count(rec: &PodRecord, name: &str) -> u32 {
    let from_state = rec
        .state
        .as_ref()
        .and_then(|s| s.containers.get(name))
        .map(|c| c.restart_count);
    let from_status =
        container_status(rec, name).map(|s| u32::try_from(s.restart_count).unwrap_or(0));
    from_state.or(from_status).unwrap_or(0)
}

/// The log file of instance `restart` of the container.
fn log_path(paths: &Paths, rec: &PodRecord, name: &str, restart: u32) -> PathBuf {
    if let Some(c) = rec.state.as_ref().and_then(|s| s.containers.get(name)) {
        if c.restart_count == restart {
            if let Some(p) = &c.log_path {
                return p.clone();
            }
        }
    }
    let uid = rec.pod.metadata.uid.as_deref().unwrap_or("");
    paths.container_log(rec.namespace(), rec.name(), uid, name, restart)
}

/// True when the container has exited and will not be started again.
fn finished_for_good(rec: &PodRecord, name: &str) -> bool {
    let Some(cs) = container_status(rec, name) else {
        return false;
    };
    let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return false;
    };
    let phase = rec.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return true;
    }
    let policy = rec
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let is_init = rec
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|l| l.iter().any(|c| c.name == name));
    match policy {
        "Never" => true,
        "OnFailure" => t.exit_code == 0,
        _ => is_init && t.exit_code == 0,
    }
}

fn print_entries(entries: &[LogEntry], timestamps: bool) -> Result<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for e in entries {
        if let Err(err) = writeln!(out, "{}", e.render(timestamps)) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(false);
            }
            return Err(err).context("writing logs");
        }
    }
    out.flush().ok();
    Ok(true)
}

pub fn run(paths: &Paths, args: &LogsArgs) -> Result<i32> {
    let rec = find_pod(paths, &args.namespace, &args.pod)?;
    let name = choose_container(&rec, args.container.as_deref())?;
    let current = restart_count(&rec, &name);
    let instance = if args.previous {
        match current.checked_sub(1) {
            Some(n) => n,
            None => bail!(
                "previous terminated container \"{name}\" in pod \"{}\" not found",
                rec.name()
            ),
        }
    } else {
        current
    };
    let path = log_path(paths, &rec, &name, instance);
    let tail = usize::try_from(args.tail).ok();
    let entries = match read_log(&path, &ReadOptions { tail }) {
        Ok(e) => e,
        Err(e) if e.is_not_found() && !args.follow => {
            let waiting = container_status(&rec, &name)
                .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone());
            match waiting {
                Some(reason) => bail!(
                    "container \"{name}\" in pod \"{}\" is waiting to start: {reason}",
                    rec.name()
                ),
                None => bail!("{e}"),
            }
        }
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if !print_entries(&entries, args.timestamps)? || !args.follow || args.previous {
        return Ok(0);
    }
    follow(paths, &rec, &name, instance, &path, args.timestamps)
}

/// `-f`: prints what the file gains, moves to the next instance's file on restart, and stops
/// when the pod is deleted or the container is done for good.
fn follow(
    paths: &Paths,
    rec: &PodRecord,
    name: &str,
    mut instance: u32,
    path: &std::path::Path,
    timestamps: bool,
) -> Result<i32> {
    let uid = rec.pod.metadata.uid.clone().unwrap_or_default();
    let start = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut tail = LogTail::new(path, start);
    loop {
        if !print_entries(&tail.poll()?, timestamps)? {
            return Ok(0);
        }
        let rec = match record::PodRecord::load(paths, &uid) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => {
                print_entries(&tail.poll()?, timestamps)?;
                return Ok(0);
            }
            Err(e) => return Err(e).context("reading the pod record"),
        };
        let current = restart_count(&rec, name);
        if current > instance {
            print_entries(&tail.poll()?, timestamps)?;
            instance = current;
            tail = LogTail::new(&log_path(paths, &rec, name, instance), 0);
            continue;
        }
        if finished_for_good(&rec, name) {
            print_entries(&tail.poll()?, timestamps)?;
            return Ok(0);
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::status::tests::*;

    fn rec(containers: &[&str]) -> PodRecord {
        PodRecord {
            pod: pod(containers, &["init"]),
            status: Some(status("Running", vec![], vec![])),
            state: None,
            events: vec![],
            deleting: None,
        }
    }

    #[test]
    fn container_choice_follows_kubectl() {
        assert_eq!(choose_container(&rec(&["a"]), None).unwrap(), "a");
        let err = choose_container(&rec(&["a", "b"]), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        assert_eq!(
            choose_container(&rec(&["a", "b"]), Some("init")).unwrap(),
            "init"
        );
        assert_eq!(
            choose_container(&rec(&["a"]), Some("x"))
                .unwrap_err()
                .to_string(),
            "container x is not valid for pod web"
        );
    }

    #[test]
    fn log_path_and_previous_instance() {
        let paths = Paths::under(std::path::Path::new("/t"));
        let mut r = rec(&["a"]);
        r.pod.metadata.uid = Some("u1".into());
        r.status = Some(status(
            "Running",
            vec![],
            vec![with_restarts(running("a", true), 2, "2024-01-01T00:00:00Z")],
        ));
        assert_eq!(restart_count(&r, "a"), 2);
        assert_eq!(
            log_path(&paths, &r, "a", 1),
            PathBuf::from("/t/log/default_web_u1/a/1.log")
        );
    }

    #[test]
    fn finished_only_when_no_restart_will_come() {
        let mut r = rec(&["a"]);
        r.status = Some(status(
            "Running",
            vec![],
            vec![terminated("a", 1, Some("Error"))],
        ));
        assert!(!finished_for_good(&r, "a"));
        r.pod.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        assert!(!finished_for_good(&r, "a"));
        r.status = Some(status(
            "Running",
            vec![],
            vec![terminated("a", 0, Some("Completed"))],
        ));
        assert!(finished_for_good(&r, "a"));
        r.status = Some(status("Running", vec![], vec![running("a", true)]));
        assert!(!finished_for_good(&r, "a"));
    }
}
