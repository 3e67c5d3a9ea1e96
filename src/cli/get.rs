//! `peapod get`: one listing for every kind ([`Listed`]), printed as kubectl prints it: a table
//! per kind (plain, wide, all namespaces, `kind/name` when several kinds show), `-o name`, and
//! `-o json|yaml|jsonpath` of the object or of a `kind: List`
//! [kubectl pkg/cmd/get/get.go, cli-runtime printers]. Pods are listed here; the stored kinds in
//! [`super::objects`].

use anyhow::{bail, Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use super::format::{since, tabwrite};
use super::kinds::{self, Kind};
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

/// One object as `get` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    /// The cells after NAME, then those `-o wide` adds.
    pub cells: Vec<String>,
    pub wide: Vec<String>,
    /// The object as the API returns it.
    pub object: Value,
}

/// The columns of a kind's table after NAME, and those `-o wide` adds [printers.go column
/// definitions; Priority 1 columns are the wide ones].
pub fn columns(kind: Kind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        Kind::Pod => (
            &["READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        Kind::ConfigMap => (&["DATA", "AGE"], &[]),
        Kind::Secret => (&["TYPE", "DATA", "AGE"], &[]),
        Kind::PersistentVolumeClaim => (
            &[
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        Kind::PersistentVolume => (
            &[
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
    }
}

/// The tables of `listed`: one per kind in order of appearance, each aligned on its own and
/// separated by a blank line, as kubectl flushes its tabwriter when the kind changes. With
/// `all_namespaces`, namespaced kinds get a NAMESPACE column; with several kinds, names read
/// `kind/name`.
pub fn tables(listed: &[Listed], wide: bool, all_namespaces: bool) -> String {
    let mut kinds: Vec<Kind> = Vec::new();
    for l in listed {
        if !kinds.contains(&l.kind) {
            kinds.push(l.kind);
        }
    }
    let with_kind = kinds.len() > 1;
    let mut out = Vec::new();
    for kind in kinds {
        let (cols, wide_cols) = columns(kind);
        let namespace_column = all_namespaces && kind.namespaced();
        let mut text = String::new();
        if namespace_column {
            text.push_str("NAMESPACE\t");
        }
        text.push_str("NAME");
        for c in cols.iter().chain(if wide { wide_cols } else { &[] }) {
            text.push('\t');
            text.push_str(c);
        }
        for l in listed.iter().filter(|l| l.kind == kind) {
            text.push('\n');
            if namespace_column {
                text.push_str(&l.namespace);
                text.push('\t');
            }
            if with_kind {
                text.push_str(kind.singular());
                text.push('/');
            }
            text.push_str(&l.name);
            for c in l.cells.iter().chain(if wide { &l.wide[..] } else { &[] }) {
                text.push('\t');
                text.push_str(c);
            }
        }
        out.push(tabwrite(&text, 6, 3) + "\n");
    }
    out.join("\n")
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

/// A pod's row [printers.go printPod]. `node` is this host's name (NODE of `-o wide`).
pub fn pod_listed(rec: &PodRecord, now: Timestamp, node: &str) -> Result<Listed> {
    let status = effective_status(rec);
    let s = summarize(&rec.pod, &status, rec.deleting.is_some(), now);
    let created = rec.pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let ip = status.pod_ip.as_deref().filter(|s| !s.is_empty());
    Ok(Listed {
        kind: Kind::Pod,
        namespace: rec.namespace().to_string(),
        name: rec.name().to_string(),
        cells: vec![s.ready, s.status, s.restarts, since(created, now)],
        wide: vec![
            ip.unwrap_or("<none>").to_string(),
            node.to_string(),
            "<none>".to_string(),
            readiness_gates(&rec.pod, &status),
        ],
        object: serde_json::to_value(pod_object(rec))?,
    })
}

/// The `get pods` table. `node` is this host's name (NODE column of `-o wide`).
pub fn pods_table(
    records: &[PodRecord],
    wide: bool,
    all_namespaces: bool,
    now: Timestamp,
    node: &str,
) -> String {
    let listed: Vec<Listed> = records
        .iter()
        .filter_map(|r| pod_listed(r, now, node).ok())
        .collect();
    if listed.is_empty() {
        return String::new();
    }
    tables(&listed, wide, all_namespaces)
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

/// Several objects as kubectl's `printGeneric` wraps them.
pub fn list_object(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": { "resourceVersion": "" },
    })
}

/// JSON as kubectl prints it: keys sorted (the object went through a map), four-space indent
/// [cli-runtime printers/json.go MarshalIndent], a final newline.
pub fn to_json(value: &Value) -> Result<String> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value.serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(String::from_utf8(buf)?)
}

/// One object, or a `kind: List` of several, as JSON or YAML.
pub fn render_objects(objects: Vec<Value>, list: bool, output: Output) -> Result<String> {
    let value = if list {
        list_object(objects)
    } else {
        let Some(object) = objects.into_iter().next() else {
            bail!("no object to print");
        };
        object
    };
    Ok(match output {
        Output::Yaml => go_yaml_quotes(&serde_norway::to_string(&value)?),
        Output::JsonPath(template) => super::jsonpath::render(&template, &value)?,
        _ => to_json(&value)?,
    })
}

/// True for a string Go's YAML encoder (yaml.v2, behind kubectl's `-o yaml`) would read back
/// as something else: empty, null, a bool, a number or a timestamp.
fn yaml_ambiguous(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN",
    ];
    let digits = s.replace('_', "");
    let b = s.as_bytes();
    let timestamp = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    WORDS.contains(&s)
        || digits.parse::<i64>().is_ok()
        || (digits.parse::<f64>().is_ok() && !digits.contains(['i', 'I', 'n', 'N']))
        || digits
            .strip_prefix("0x")
            .is_some_and(|h| i64::from_str_radix(h, 16).is_ok())
        || timestamp
}

/// Re-quotes scalars the way yaml.v2 does where serde_norway differs: a string that would
/// read back as another type is double-quoted (`"1"`, `"true"`, `""`, timestamps), not
/// single-quoted or plain. Strings single-quoted for their characters stay as they are.
fn go_yaml_quotes(text: &str) -> String {
    let requote = |scalar: &str| -> Option<String> {
        if let Some(inner) = scalar.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            let simple = !inner.contains(['\'', '"', '\\']);
            return (simple && yaml_ambiguous(inner)).then(|| format!("\"{inner}\""));
        }
        let plain = !scalar.starts_with(['"', '|', '>', '[', '{', '&', '*', '!']);
        (plain && !scalar.is_empty() && yaml_ambiguous(scalar)).then(|| format!("\"{scalar}\""))
    };
    let mut out = String::with_capacity(text.len());
    // Inside a `|` or `>` block (deeper than the line that opened it), lines are data.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let spaces = body.len() - body.trim_start_matches(' ').len();
        if let Some(opened) = block {
            if body.trim().is_empty() || spaces > opened {
                out.push_str(line);
                continue;
            }
            block = None;
        }
        if body.ends_with(['|', '>', '-', '+']) && body.contains([':', '-']) {
            let tail = body.rsplit(' ').next().unwrap_or_default();
            if tail.starts_with(['|', '>']) {
                block = Some(spaces);
            }
        }
        let indent = body.len() - body.trim_start_matches([' ', '-']).len();
        let (lead, rest) = body.split_at(indent);
        // `key: value`, or a bare list item.
        let fixed = match rest.split_once(": ") {
            Some((key, value)) if !key.starts_with('"') => {
                let key = match key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')) {
                    Some(k) if yaml_ambiguous(k) && !k.contains(['\'', '"', '\\']) => {
                        format!("\"{k}\"")
                    }
                    _ => key.to_string(),
                };
                // A value that is a number or bool stays as serde wrote it: only strings
                // are quoted by serde_norway, so plain ambiguous values are real numbers,
                // except timestamps, which serde leaves plain.
                let value = match requote(value) {
                    Some(v)
                        if value.starts_with('\'')
                            || value.parse::<f64>().is_err()
                                && !matches!(value, "true" | "false" | "null") =>
                    {
                        v
                    }
                    _ => value.to_string(),
                };
                Some(format!("{lead}{key}: {value}"))
            }
            None if lead.ends_with("- ") => requote(rest)
                .filter(|_| rest.starts_with('\''))
                .map(|v| format!("{lead}{v}")),
            _ => None,
        };
        match fixed {
            Some(f) => {
                out.push_str(&f);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The pods of `namespace` (all when None), by namespace and name.
fn list_pods(paths: &Paths, namespace: Option<&str>, now: Timestamp) -> Result<Vec<Listed>> {
    let mut records: Vec<PodRecord> = load_all(paths)
        .context("reading pod records")?
        .into_iter()
        .filter(|r| namespace.is_none_or(|ns| r.namespace() == ns))
        .collect();
    records.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    let node = super::hostname();
    records.iter().map(|r| pod_listed(r, now, &node)).collect()
}

/// Every object of `kind` in `namespace` (all when None), by namespace and name.
pub fn list(paths: &Paths, kind: Kind, namespace: Option<&str>) -> Result<Vec<Listed>> {
    let now = Timestamp::now();
    match kind {
        Kind::Pod => list_pods(paths, namespace, now),
        other => super::objects::list(paths, other, namespace, now),
    }
}

/// One object by name, or None.
pub fn find(paths: &Paths, kind: Kind, namespace: &str, name: &str) -> Result<Option<Listed>> {
    let now = Timestamp::now();
    match kind {
        Kind::Pod => {
            let rec =
                crate::pod::record::find(paths, namespace, name).context("reading pod records")?;
            rec.map(|r| pod_listed(&r, now, &super::hostname()))
                .transpose()
        }
        other => super::objects::find(paths, other, namespace, name, now),
    }
}

/// `peapod get KIND[,KIND] [NAME...] | KIND/NAME... [-n NS | -A] [-o ...]`.
pub fn run(
    paths: &Paths,
    args: &[String],
    namespace: &str,
    all_namespaces: bool,
    output: Option<Output>,
) -> Result<i32> {
    let targets = kinds::targets(args)?;
    let names: usize = targets.iter().map(|(_, n)| n.len()).sum();
    if all_namespaces && names > 0 {
        bail!("a resource cannot be retrieved by name across all namespaces");
    }
    // kubectl prints a single object, not a List, when one name was asked for.
    let single = targets.len() == 1 && names == 1;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (kind, names) in &targets {
        if names.is_empty() {
            let ns = (!all_namespaces).then_some(namespace);
            found.extend(list(paths, *kind, ns)?);
        }
        for name in names {
            match find(paths, *kind, namespace, name)? {
                Some(l) => found.push(l),
                None => errors.push(kind.not_found(name)),
            }
        }
    }
    match output {
        Some(o @ (Output::Json | Output::Yaml | Output::JsonPath(_))) => {
            if !(single && found.is_empty()) {
                let objects = found.into_iter().map(|l| l.object).collect();
                print!("{}", render_objects(objects, !single, o)?);
            }
        }
        Some(Output::Name) => {
            for l in &found {
                println!("{}/{}", l.kind.singular(), l.name);
            }
        }
        wide => {
            if found.is_empty() && errors.is_empty() {
                if !all_namespaces && targets.iter().all(|(k, _)| k.namespaced()) {
                    eprintln!("No resources found in {namespace} namespace.");
                } else {
                    eprintln!("No resources found");
                }
            } else if !found.is_empty() {
                print!(
                    "{}",
                    tables(&found, wide == Some(Output::Wide), all_namespaces)
                );
            }
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
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
        let json = render_objects(
            vec![serde_json::to_value(pod_object(&r)).unwrap()],
            true,
            Output::Json,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["kind"], "Pod");
        assert_eq!(v["items"][0]["status"]["phase"], "Running");
        let yaml = render_objects(
            vec![serde_json::to_value(pod_object(&r)).unwrap()],
            false,
            Output::Yaml,
        )
        .unwrap();
        assert!(yaml.contains("kind: Pod"), "{yaml}");
        assert!(yaml.contains("phase: Running"), "{yaml}");
    }
}

#[cfg(test)]
mod yaml_tests {
    use super::*;

    #[test]
    fn yaml_quotes_as_go() {
        let value = serde_json::json!({
            "data": {"a": "1", "b": "true", "c": "", "e": "x: y", "f": "it's",
                     "conf": "when: 2024-01-01\nn: 1\n", "3": "x"},
            "metadata": {"creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "7"},
            "spec": {"replicas": 1, "ok": true, "list": ["1", "a"]},
        });
        let text = render_objects(vec![value], false, Output::Yaml).unwrap();
        assert_eq!(
            text,
            "data:\n  \"3\": x\n  a: \"1\"\n  b: \"true\"\n  c: \"\"\n  conf: |\n    when: 2024-01-01\n    n: 1\n  e: 'x: y'\n  f: it's\nmetadata:\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n  resourceVersion: \"7\"\nspec:\n  list:\n  - \"1\"\n  - a\n  ok: true\n  replicas: 1\n"
        );
    }
}
