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

use super::format::{no_resources, since};
use super::kinds::{self, Kind};
// `-o` and its parser were get's before they served create and run too.
pub use super::output::{parse_output, Output};
use super::output::{sort_by, Printer};
use super::selector::Selectors;
use super::status::summarize;
pub use super::table::{tables, tables_with, TableOptions};
use crate::manifest::defaults::DEFAULT_NAMESPACE;
use crate::pod::record::{load_all, PodRecord};
use crate::store::Paths;

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

/// The status to show: the supervisor's, `Pending` before it wrote one, and `Unknown` when
/// the supervisor is gone before its pod finished (its pod's state can no longer be known).
pub fn effective_status(rec: &PodRecord) -> PodStatus {
    let mut status = rec.status.clone().unwrap_or_else(|| PodStatus {
        phase: Some("Pending".to_string()),
        ..Default::default()
    });
    let supervisor_gone = rec
        .state
        .as_ref()
        .is_some_and(|s| !s.finished && s.supervisor.as_ref().is_some_and(|p| !p.is_alive()));
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
        Kind::Event => super::events::list(paths, namespace, now),
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
        Kind::Event => Ok(super::events::list(paths, Some(namespace), now)?
            .into_iter()
            .find(|l| l.name == name)),
        other => super::objects::find(paths, other, namespace, name, now),
    }
}

/// `get`'s flags [kubectl pkg/cmd/get/get.go NewCmdGet, cli-runtime get_flags.go].
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// KIND[,KIND] [NAME...], or KIND/NAME...
    #[arg(required = true)]
    pub args: Vec<String>,
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// wide, json, yaml, name, jsonpath=, jsonpath-file=, jsonpath-as-json=, go-template=,
    /// go-template-file=, template, templatefile=, custom-columns=, custom-columns-file=
    #[arg(short, long, value_parser = parse_output)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub selectors: Selectors,
    /// Show every label as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// A column per label key (`-L app -L tier` or `-L app,tier`).
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// Sort by a JSONPath field (`.metadata.name`, `{.status.startTime}`).
    #[arg(long)]
    pub sort_by: Option<String>,
    /// No header lines in tables and custom columns.
    #[arg(long)]
    pub no_headers: bool,
    /// The template of `-o go-template|jsonpath` (alone: a go-template).
    #[arg(long)]
    pub template: Option<String>,
    /// A named object that does not exist is not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// After listing, print a line each time an object changes, until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print only the changes, not the listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// With a watch, say what happened to each object (ADDED, MODIFIED, DELETED).
    #[arg(long)]
    pub output_watch_events: bool,
}

/// kubectl's refusal to watch several kinds (or several named objects) at once.
const WATCH_ONE_KIND: &str = "watch is only supported on individual resources and resource collections - more than 1 resource was found";

/// `get -w`: one kind, all of it or one object of it.
fn watch(paths: &Paths, args: &GetArgs, printer: &Printer) -> Result<i32> {
    let targets = kinds::targets(&args.args)?;
    let [(kind, names)] = targets.as_slice() else {
        bail!(WATCH_ONE_KIND);
    };
    if names.len() > 1 {
        bail!(WATCH_ONE_KIND);
    }
    let request = super::watch::WatchRequest {
        kind: *kind,
        namespace: (!args.all_namespaces || !kind.namespaced()).then_some(args.namespace.as_str()),
        name: names.first().map(String::as_str),
        selectors: &args.selectors,
        printer,
        table: TableOptions {
            wide: matches!(printer, Printer::Table { wide: true }),
            all_namespaces: args.all_namespaces,
            no_headers: args.no_headers,
            label_columns: args.label_columns.clone(),
            show_labels: args.show_labels,
        },
        watch_only: args.watch_only,
        events: args.output_watch_events,
    };
    super::watch::run(paths, &request)
}

/// Every object of `kind` in `namespace` (all when None) that `selectors` select, or the API
/// server's BadRequest line when they do not parse for this kind.
pub fn select(
    paths: &Paths,
    kind: Kind,
    namespace: Option<&str>,
    selectors: &Selectors,
) -> Result<std::result::Result<Vec<Listed>, String>> {
    let chosen = match selectors.for_kind(kind, &super::hostname()) {
        Ok(c) => c,
        Err(line) => return Ok(Err(line)),
    };
    let listed = list(paths, kind, namespace)?;
    Ok(Ok(listed
        .into_iter()
        .filter(|l| chosen.matches(&l.object))
        .collect()))
}

/// kubectl's refusal of `--show-labels` with a format other than the tables.
fn check_show_labels(args: &GetArgs) -> Result<()> {
    let format = match &args.output {
        None | Some(Output::Wide) => return Ok(()),
        Some(Output::Json) => "json",
        Some(Output::Yaml) => "yaml",
        Some(Output::Name) => "name",
        Some(Output::JsonPath(_)) => "jsonpath",
        Some(Output::JsonPathAsJson(_)) => "jsonpath-as-json",
        Some(Output::JsonPathFile(_)) => "jsonpath-file",
        Some(Output::GoTemplate(_)) => "go-template",
        Some(Output::GoTemplateFile(_)) => "go-template-file",
        Some(Output::CustomColumns(_)) => "custom-columns",
        Some(Output::CustomColumnsFile(_)) => "custom-columns-file",
    };
    if args.show_labels {
        bail!("--show-labels option cannot be used with {format} printer");
    }
    Ok(())
}

/// `peapod get KIND[,KIND] [NAME...] | KIND/NAME... [-n NS | -A] [-l SEL] [--field-selector
/// SEL] [-o ...] [--sort-by F] [--show-labels] [-L KEY] [--no-headers]`.
pub fn run(paths: &Paths, args: &GetArgs) -> Result<i32> {
    check_show_labels(args)?;
    let printer = Printer::from_flags(args.output.as_ref(), args.template.as_deref())?;
    if args.watch || args.watch_only {
        return watch(paths, args, &printer);
    }
    let targets = kinds::targets(&args.args)?;
    let names: usize = targets.iter().map(|(_, n)| n.len()).sum();
    let selectors = &args.selectors;
    if names > 0 && !selectors.is_empty() {
        bail!("name cannot be provided when a selector is specified");
    }
    if args.all_namespaces && names > 0 {
        bail!("a resource cannot be retrieved by name across all namespaces");
    }
    let namespace = args.namespace.as_str();
    // kubectl prints a single object, not a List, when one name was asked for.
    let single = targets.len() == 1 && names == 1;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (kind, names) in &targets {
        if names.is_empty() {
            let ns = (!args.all_namespaces).then_some(namespace);
            match select(paths, *kind, ns, selectors)? {
                Ok(listed) => found.extend(listed),
                Err(line) => errors.push(line),
            }
        }
        for name in names {
            match find(paths, *kind, namespace, name)? {
                Some(l) => found.push(l),
                None if args.ignore_not_found => {}
                None => errors.push(kind.not_found(name)),
            }
        }
    }
    if let Some(field) = &args.sort_by {
        found = sort_by(found, field, |l: &Listed| &l.object)?;
    }
    match &printer {
        Printer::Table { wide } => {
            if found.is_empty() && errors.is_empty() && !args.ignore_not_found {
                let one = !args.all_namespaces && targets.iter().all(|(k, _)| k.namespaced());
                eprintln!("{}", no_resources(one.then_some(namespace)));
            } else if !found.is_empty() {
                let options = TableOptions {
                    wide: *wide,
                    all_namespaces: args.all_namespaces,
                    no_headers: args.no_headers,
                    label_columns: args.label_columns.clone(),
                    show_labels: args.show_labels,
                };
                print!("{}", tables_with(&found, &options));
            }
        }
        other => {
            if !(single && found.is_empty()) {
                let objects = found.into_iter().map(|l| l.object).collect();
                print!("{}", other.render(objects, single, args.no_headers)?);
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
        let json = Printer::Json
            .render(
                vec![serde_json::to_value(pod_object(&r)).unwrap()],
                false,
                false,
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["kind"], "Pod");
        assert_eq!(v["items"][0]["status"]["phase"], "Running");
        let yaml = Printer::Yaml
            .render(
                vec![serde_json::to_value(pod_object(&r)).unwrap()],
                true,
                false,
            )
            .unwrap();
        assert!(yaml.contains("kind: Pod"), "{yaml}");
        assert!(yaml.contains("phase: Running"), "{yaml}");
    }
}
