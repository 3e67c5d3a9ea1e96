//! `peapod ps` and `peapod pods`: the containers and sandboxes that run, listed as `crictl ps`
//! and `crictl pods` list them (cri-tools cmd/crictl/container.go, sandbox.go, util.go:
//! 13-character IDs, `N minutes ago`, newest first, running only unless `-a`, `-q` for IDs,
//! `--name` a regular expression), read from the pods' records; `-o wide` adds the kubelet's
//! names (`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`, `k8s_POD_...`) as docker ps
//! showed them.

use anyhow::{anyhow, bail, Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ContainerStatus;

use super::format::tabwrite;
use super::images::human_duration;
use crate::container::names::{container_id, container_name};
use crate::pod::model::CONTAINER_ID_SCHEME;
use crate::pod::record::{load_all, PodRecord};
use crate::store::Paths;

/// crictl's truncated ID length (util.go truncatedIDLen).
const TRUNCATED_ID_LEN: usize = 13;
/// The kubelet's container name for a sandbox.
const SANDBOX_CONTAINER: &str = "POD";
/// crictl's RUNTIME for the default handler.
const DEFAULT_RUNTIME: &str = "(default)";
const STATE_RUNNING: &str = "Running";
const STATE_EXITED: &str = "Exited";
const STATE_CREATED: &str = "Created";
const SANDBOX_READY: &str = "Ready";
const SANDBOX_NOT_READY: &str = "NotReady";

/// Flags of `ps` and `pods`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PsArgs {
    /// Every container, exited ones too (`ps`).
    #[arg(short, long)]
    pub all: bool,
    /// Only the IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Full IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only those whose name matches this regular expression.
    #[arg(long)]
    pub name: Option<String>,
    /// Only those of pods in namespaces matching this regular expression.
    #[arg(long)]
    pub namespace: Option<String>,
    /// `wide`: the kubelet's names as a last NAMES column.
    #[arg(short, long, value_parser = ["wide"])]
    pub output: Option<String>,
}

/// One container instance as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRow {
    pub id: String,
    pub image: String,
    pub created: Option<Timestamp>,
    pub state: &'static str,
    pub name: String,
    pub attempt: u32,
    pub pod_id: String,
    pub pod: String,
    pub namespace: String,
    /// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`
    pub kubelet_name: String,
}

/// One sandbox as `pods` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRow {
    pub id: String,
    pub created: Option<Timestamp>,
    pub state: &'static str,
    pub name: String,
    pub namespace: String,
    pub attempt: u32,
    pub kubelet_name: String,
}

/// The kubelet's attempt of the current sandbox: 0 for the first. The supervisor's state counts
/// the sandboxes it made (1 once the first exists).
fn sandbox_attempt(rec: &PodRecord) -> u32 {
    rec.state
        .as_ref()
        .map_or(0, |s| s.sandbox.attempt.saturating_sub(1))
}

fn uid(rec: &PodRecord) -> String {
    rec.pod.metadata.uid.clone().unwrap_or_default()
}

/// The sandbox's kubelet name and its ID (the name hashed with the pod's UID, as container
/// IDs are).
fn sandbox_ids(rec: &PodRecord) -> (String, String) {
    let attempt = sandbox_attempt(rec);
    let name = container_name(
        rec.name(),
        rec.namespace(),
        &uid(rec),
        SANDBOX_CONTAINER,
        attempt,
    );
    let id = container_id(&name, &uid(rec));
    (name, id)
}

/// The pod's sandbox.
pub fn sandbox_row(rec: &PodRecord) -> SandboxRow {
    let (kubelet_name, id) = sandbox_ids(rec);
    let sandbox = rec.state.as_ref().map(|s| &s.sandbox);
    let ready = sandbox
        .and_then(|s| s.process.as_ref())
        .is_some_and(|p| p.is_alive());
    SandboxRow {
        id,
        created: rec.pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        state: if ready {
            SANDBOX_READY
        } else {
            SANDBOX_NOT_READY
        },
        name: rec.name().to_string(),
        namespace: rec.namespace().to_string(),
        attempt: sandbox_attempt(rec),
        kubelet_name,
    }
}

fn strip_scheme(id: &str) -> &str {
    id.strip_prefix(CONTAINER_ID_SCHEME).unwrap_or(id)
}

/// Every container instance the pod's records know: the latest of each container (state.json)
/// and the one before it (the status's lastState).
pub fn container_rows(rec: &PodRecord) -> Vec<ContainerRow> {
    let (_, pod_id) = sandbox_ids(rec);
    let status = rec.status.clone().unwrap_or_default();
    let statuses: Vec<ContainerStatus> = status
        .init_container_statuses
        .into_iter()
        .flatten()
        .chain(status.container_statuses.into_iter().flatten())
        .collect();
    let row = |name: &str, id: &str, attempt: u32, state, created, image: &str| ContainerRow {
        id: id.to_string(),
        image: image.to_string(),
        created,
        state,
        name: name.to_string(),
        attempt,
        pod_id: pod_id.clone(),
        pod: rec.name().to_string(),
        namespace: rec.namespace().to_string(),
        kubelet_name: container_name(rec.name(), rec.namespace(), &uid(rec), name, attempt),
    };
    let mut rows = Vec::new();
    let containers = rec.state.as_ref().map(|s| &s.containers);
    for (name, instance) in containers.into_iter().flatten() {
        if instance.id.is_empty() {
            continue;
        }
        let cs = statuses.iter().find(|c| &c.name == name);
        let image = cs.map(|c| c.image.as_str()).unwrap_or_default();
        let current = cs.and_then(|c| c.state.as_ref());
        let started = current.and_then(|s| {
            s.running
                .as_ref()
                .and_then(|r| r.started_at.as_ref())
                .or(s.terminated.as_ref().and_then(|t| t.started_at.as_ref()))
        });
        let state = match &instance.process {
            Some(p) if p.is_alive() => STATE_RUNNING,
            Some(_) => STATE_EXITED,
            None => STATE_CREATED,
        };
        let attempt = instance.restart_count;
        rows.push(row(
            name,
            &instance.id,
            attempt,
            state,
            started.map(|t| t.0),
            image,
        ));
        let last = cs
            .and_then(|c| c.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        if let Some(t) = last.filter(|t| {
            let id = strip_scheme(t.container_id.as_deref().unwrap_or_default());
            !id.is_empty() && id != instance.id && attempt > 0
        }) {
            let id = strip_scheme(t.container_id.as_deref().unwrap_or_default());
            let created = t.started_at.as_ref().map(|s| s.0);
            rows.push(row(name, id, attempt - 1, STATE_EXITED, created, image));
        }
    }
    rows
}

fn truncate(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(TRUNCATED_ID_LEN).collect()
    }
}

/// `3 minutes ago`, as crictl writes CREATED.
fn ago(t: Option<Timestamp>, now: Timestamp) -> String {
    let d = t.map(|t| now.duration_since(t)).unwrap_or_default();
    format!("{} ago", human_duration(d))
}

/// crictl's table: minimum width 20, padding 3.
fn table(rows: Vec<Vec<String>>) -> String {
    let text: Vec<String> = rows.into_iter().map(|r| r.join("\t")).collect();
    tabwrite(&text.join("\n"), 20, 3) + "\n"
}

/// A line of `ps` or `pods`.
trait Row {
    /// The ID, the creation time and the kubelet's name.
    fn keys(&self) -> (&str, Option<Timestamp>, &str);
    /// The cells, IDs truncated unless `no_trunc`.
    fn cells(&self, no_trunc: bool, now: Timestamp) -> Vec<String>;
}

impl Row for ContainerRow {
    fn keys(&self) -> (&str, Option<Timestamp>, &str) {
        (&self.id, self.created, &self.kubelet_name)
    }
    fn cells(&self, no_trunc: bool, now: Timestamp) -> Vec<String> {
        vec![
            truncate(&self.id, no_trunc),
            self.image.clone(),
            ago(self.created, now),
            self.state.to_string(),
            self.name.clone(),
            self.attempt.to_string(),
            truncate(&self.pod_id, no_trunc),
            self.pod.clone(),
            self.namespace.clone(),
        ]
    }
}

impl Row for SandboxRow {
    fn keys(&self) -> (&str, Option<Timestamp>, &str) {
        (&self.id, self.created, &self.kubelet_name)
    }
    fn cells(&self, no_trunc: bool, now: Timestamp) -> Vec<String> {
        vec![
            truncate(&self.id, no_trunc),
            ago(self.created, now),
            self.state.to_string(),
            self.name.clone(),
            self.namespace.clone(),
            self.attempt.to_string(),
            DEFAULT_RUNTIME.to_string(),
        ]
    }
}

const CONTAINER_COLUMNS: &[&str] = &[
    "CONTAINER",
    "IMAGE",
    "CREATED",
    "STATE",
    "NAME",
    "ATTEMPT",
    "POD ID",
    "POD",
    "NAMESPACE",
];
const SANDBOX_COLUMNS: &[&str] = &[
    "POD ID",
    "CREATED",
    "STATE",
    "NAME",
    "NAMESPACE",
    "ATTEMPT",
    "RUNTIME",
];
/// The column `-o wide` adds, after docker ps's.
const NAMES_COLUMN: &str = "NAMES";

/// The table (or the IDs with `quiet`), newest first.
fn render<R: Row>(mut rows: Vec<R>, columns: &[&str], args: &PsArgs, now: Timestamp) -> String {
    rows.sort_by_key(|r| std::cmp::Reverse(r.keys().1));
    if args.quiet {
        return rows.iter().map(|r| format!("{}\n", r.keys().0)).collect();
    }
    let wide = args.output.is_some();
    let mut header: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    if wide {
        header.push(NAMES_COLUMN.to_string());
    }
    let mut lines = vec![header];
    for r in rows {
        let mut line = r.cells(args.no_trunc, now);
        if wide {
            line.push(r.keys().2.to_string());
        }
        lines.push(line);
    }
    table(lines)
}

/// The `ps` table.
pub fn containers_table(rows: Vec<ContainerRow>, args: &PsArgs, now: Timestamp) -> String {
    render(rows, CONTAINER_COLUMNS, args, now)
}

/// The `pods` table.
pub fn sandboxes_table(rows: Vec<SandboxRow>, args: &PsArgs, now: Timestamp) -> String {
    render(rows, SANDBOX_COLUMNS, args, now)
}

/// `--name` and `--namespace`: regular expressions, as crictl takes them.
struct Filter {
    name: Option<regex::Regex>,
    namespace: Option<regex::Regex>,
}

impl Filter {
    fn new(args: &PsArgs) -> Result<Filter> {
        let compile = |p: Option<&str>| {
            p.map(|p| {
                regex::Regex::new(p).map_err(|e| anyhow!("invalid regular expression {p:?}: {e}"))
            })
            .transpose()
        };
        Ok(Filter {
            name: compile(args.name.as_deref())?,
            namespace: compile(args.namespace.as_deref())?,
        })
    }

    fn keeps(&self, name: &str, namespace: &str) -> bool {
        self.name.as_ref().is_none_or(|re| re.is_match(name))
            && self
                .namespace
                .as_ref()
                .is_none_or(|re| re.is_match(namespace))
    }
}

fn records(paths: &Paths) -> Result<Vec<PodRecord>> {
    load_all(paths).context("reading pod records")
}

/// `peapod ps`.
pub fn ps(paths: &Paths, args: &PsArgs) -> Result<i32> {
    let filter = Filter::new(args)?;
    let rows: Vec<ContainerRow> = records(paths)?
        .iter()
        .flat_map(container_rows)
        .filter(|r| args.all || r.state == STATE_RUNNING)
        .filter(|r| filter.keeps(&r.name, &r.namespace))
        .collect();
    print!("{}", containers_table(rows, args, Timestamp::now()));
    Ok(0)
}

/// `peapod pods`.
pub fn pods(paths: &Paths, args: &PsArgs) -> Result<i32> {
    if args.all {
        bail!("unknown flag: --all (pods lists every sandbox)");
    }
    let filter = Filter::new(args)?;
    let rows: Vec<SandboxRow> = records(paths)?
        .iter()
        .map(sandbox_row)
        .filter(|r| filter.keeps(&r.name, &r.namespace))
        .collect();
    print!("{}", sandboxes_table(rows, args, Timestamp::now()));
    Ok(0)
}

#[cfg(test)]
#[path = "ps_tests.rs"]
mod tests;
