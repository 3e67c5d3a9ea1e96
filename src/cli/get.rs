//! `peapod get pods`: the table (plain, wide, all namespaces) and `-o json|yaml|name`.

use anyhow::{bail, Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::format::{since, tabwrite};
use super::status::summarize;
use crate::pod::record::{load_all, PodRecord};
use crate::store::Paths;

/// `-o` of `get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Wide,
    Json,
    Yaml,
    Name,
    /// `jsonpath=TEMPLATE`
    JsonPath(String),
}

/// Parses `-o`: `wide|json|yaml|name|jsonpath=TEMPLATE`.
pub fn parse_output(s: &str) -> Result<Output, String> {
    match s {
        "wide" => Ok(Output::Wide),
        "json" => Ok(Output::Json),
        "yaml" => Ok(Output::Yaml),
        "name" => Ok(Output::Name),
        _ => s
            .strip_prefix("jsonpath=")
            .map(|t| Output::JsonPath(t.to_string()))
            .ok_or_else(|| {
                format!("unable to match a printer suitable for the output format {s:?}, allowed formats are: json,jsonpath,name,wide,yaml")
            }),
    }
}

/// The status to show: the supervisor's, `Pending` before it wrote one, and `Unknown` when
/// the supervisor is gone (its pod's state can no longer be known).
pub fn effective_status(rec: &PodRecord) -> PodStatus {
    let mut status = rec.status.clone().unwrap_or_else(|| PodStatus {
        phase: Some("Pending".to_string()),
        ..Default::default()
    });
    let supervisor_gone = rec
        .state
        .as_ref()
        .and_then(|s| s.supervisor.as_ref())
        .is_some_and(|p| !p.is_alive());
    if supervisor_gone && rec.deleting.is_none() {
        status.phase = Some("Unknown".to_string());
        status.reason = Some("SupervisorLost".to_string());
        status.message =
            Some("the pod's supervisor process is gone; delete the pod to clean up".to_string());
    }
    status
}

/// The Pod as the API would return it: `pod.json` with `status.json` as `.status`, and a
/// deletionTimestamp while a delete is pending.
pub fn pod_object(rec: &PodRecord) -> Pod {
    let mut pod = rec.pod.clone();
    pod.status = Some(effective_status(rec));
    if let Some(del) = &rec.deleting {
        if let Ok(t) = del.requested_at.parse::<Timestamp>() {
            pod.metadata.deletion_timestamp = Some(Time(t));
        }
        pod.metadata.deletion_grace_period_seconds = Some(del.grace_period_seconds);
    }
    pod
}

/// The `get pods` table. `node` is this host's name (NODE column of `-o wide`).
pub fn pods_table(
    records: &[PodRecord],
    wide: bool,
    all_namespaces: bool,
    now: Timestamp,
    node: &str,
) -> String {
    let mut text = String::new();
    if all_namespaces {
        text.push_str("NAMESPACE\t");
    }
    text.push_str("NAME\tREADY\tSTATUS\tRESTARTS\tAGE");
    if wide {
        text.push_str("\tIP\tNODE\tNOMINATED NODE\tREADINESS GATES");
    }
    for rec in records {
        let status = effective_status(rec);
        let s = summarize(&rec.pod, &status, rec.deleting.is_some(), now);
        text.push('\n');
        if all_namespaces {
            text.push_str(rec.namespace());
            text.push('\t');
        }
        let created = rec.pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}",
            rec.name(),
            s.ready,
            s.status,
            s.restarts,
            since(created, now)
        ));
        if wide {
            let ip = status.pod_ip.as_deref().filter(|s| !s.is_empty());
            let gates = readiness_gates(&rec.pod, &status);
            text.push_str(&format!(
                "\t{}\t{}\t<none>\t{}",
                ip.unwrap_or("<none>"),
                node,
                gates
            ));
        }
    }
    let mut out = tabwrite(&text, 6, 3);
    out.push('\n');
    out
}

fn readiness_gates(pod: &Pod, status: &PodStatus) -> String {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or(&[]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let ok = gates
        .iter()
        .filter(|g| {
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
        .count();
    format!("{ok}/{}", gates.len())
}

/// One object, or a `kind: List` of several, as JSON or YAML.
pub fn render_objects(pods: Vec<Pod>, list: bool, output: Output) -> Result<String> {
    let value = if list {
        let items = pods
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()?;
        serde_json::json!({
            "apiVersion": "v1",
            "items": items,
            "kind": "List",
            "metadata": { "resourceVersion": "" },
        })
    } else {
        let Some(pod) = pods.first() else {
            bail!("no pod to print");
        };
        serde_json::to_value(pod)?
    };
    Ok(match output {
        Output::Yaml => serde_norway::to_string(&value)?,
        _ => format!("{}\n", serde_json::to_string_pretty(&value)?),
    })
}

/// `peapod get pods [NAME] [-n NS | -A] [-o ...]`.
pub fn run(
    paths: &Paths,
    name: Option<&str>,
    namespace: &str,
    all_namespaces: bool,
    output: Option<Output>,
) -> Result<i32> {
    let mut records: Vec<PodRecord> = load_all(paths)
        .context("reading pod records")?
        .into_iter()
        .filter(|r| all_namespaces || r.namespace() == namespace)
        .filter(|r| name.is_none_or(|n| r.name() == n))
        .collect();
    records.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    if records.is_empty() {
        if let Some(n) = name {
            eprintln!("Error from server (NotFound): pods \"{n}\" not found");
            return Ok(1);
        }
        if all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {namespace} namespace.");
        }
        return Ok(0);
    }
    match output {
        Some(o @ (Output::Json | Output::Yaml)) => {
            let pods = records.iter().map(pod_object).collect();
            print!("{}", render_objects(pods, name.is_none(), o)?);
        }
        Some(Output::JsonPath(template)) => {
            let pods: Vec<_> = records.iter().map(pod_object).collect();
            let root = if name.is_some() {
                serde_json::to_value(&pods[0])?
            } else {
                serde_json::json!({"kind": "List", "apiVersion": "v1", "items": pods})
            };
            print!("{}", super::jsonpath::render(&template, &root)?);
        }
        Some(Output::Name) => {
            for r in &records {
                println!("pod/{}", r.name());
            }
        }
        wide => {
            let node = super::hostname();
            let wide = wide == Some(Output::Wide);
            print!(
                "{}",
                pods_table(&records, wide, all_namespaces, Timestamp::now(), &node)
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::status::tests::*;
    use crate::pod::record::DeleteRequest;

    fn record(name: &str, ns: &str, st: PodStatus) -> PodRecord {
        let mut p = pod(&["a"], &[]);
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(ns.into());
        p.metadata.creation_timestamp = Some(Time(ts("2024-01-01T00:00:00Z")));
        PodRecord {
            pod: p,
            status: Some(st),
            state: None,
            events: vec![],
            deleting: None,
        }
    }

    #[test]
    fn table_matches_kubectl_layout() {
        let mut st = status("Running", vec![], vec![running("a", true)]);
        st.pod_ip = Some("10.88.0.5".into());
        let recs = vec![record("nginx", "default", st)];
        let now = ts("2024-01-01T00:02:03Z");
        assert_eq!(
            pods_table(&recs, false, false, now, "host1"),
            "NAME    READY   STATUS    RESTARTS   AGE\nnginx   1/1     Running   0          2m3s\n"
        );
        let wide = pods_table(&recs, true, true, now, "host1");
        assert_eq!(
            wide,
            "NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE    IP          NODE    NOMINATED NODE   READINESS GATES\n\
             default     nginx   1/1     Running   0          2m3s   10.88.0.5   host1   <none>           <none>\n"
        );
    }

    #[test]
    fn terminating_and_pending_without_status() {
        let mut r = record(
            "x",
            "default",
            status("Running", vec![], vec![running("a", true)]),
        );
        r.deleting = Some(DeleteRequest {
            grace_period_seconds: 30,
            requested_at: "2024-01-01T00:00:30Z".into(),
        });
        let t = pods_table(&[r.clone()], false, false, ts("2024-01-01T00:01:00Z"), "h");
        assert!(t.contains("Terminating"), "{t}");
        let obj = pod_object(&r);
        assert!(obj.metadata.deletion_timestamp.is_some());
        r.status = None;
        r.deleting = None;
        let t = pods_table(&[r], false, false, ts("2024-01-01T00:01:00Z"), "h");
        assert!(t.contains("0/1     Pending"), "{t}");
    }

    #[test]
    fn json_list_and_single_yaml() {
        let r = record(
            "x",
            "default",
            status("Running", vec![], vec![running("a", true)]),
        );
        let json = render_objects(vec![pod_object(&r)], true, Output::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["kind"], "Pod");
        assert_eq!(v["items"][0]["status"]["phase"], "Running");
        let yaml = render_objects(vec![pod_object(&r)], false, Output::Yaml).unwrap();
        assert!(yaml.contains("kind: Pod"), "{yaml}");
        assert!(yaml.contains("phase: Running"), "{yaml}");
    }
}
