//! The files that describe one pod, under `Paths::pod_dir(uid)`.
//!
//! `pod.json` is written by `apply` (the Pod as applied, with uid and creation time; `label` and
//! `annotate` later rewrite only its labels or annotations);
//! `status.json` (a Kubernetes `PodStatus`), `state.json` (every host resource the pod holds,
//! recorded *before* it is created) and `events.json` are written by the pod's supervisor only;
//! `delete.json` is written by `delete` to ask the supervisor to stop the pod.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde::{Deserialize, Serialize};

use crate::store::{read_json, read_json_volatile, Paths, StoreError};

pub const POD_FILE: &str = "pod.json";
pub const STATUS_FILE: &str = "status.json";
pub const STATE_FILE: &str = "state.json";
pub const EVENTS_FILE: &str = "events.json";
pub const DELETE_FILE: &str = "delete.json";
/// Container instances: `containers/<name>/<restart count>/` (bundle, writable layer).
pub const CONTAINERS_DIR: &str = "containers";
/// A pod directory being made by `apply`: `pods/.new-<uid>-<pid>`, renamed to `pods/<uid>`
/// once pod.json is in it, so that a pod appears whole or not at all.
pub const NEW_POD_PREFIX: &str = ".new-";
/// A pod directory being removed: `pods/.gone-<uid>-<pid>`, renamed so from `pods/<uid>` so
/// that the pod leaves every listing at once.
pub const GONE_POD_PREFIX: &str = ".gone-";

/// The name of a directory beside the pods that process `pid` makes or removes for `uid`.
pub fn transient_pod_dir(paths: &Paths, prefix: &str, uid: &str) -> PathBuf {
    paths
        .pods()
        .join(format!("{prefix}{uid}-{}", std::process::id()))
}

/// The process that made a transient pod directory name (`.new-<uid>-<pid>`).
fn transient_owner(name: &str) -> Option<i32> {
    if !name.starts_with(NEW_POD_PREFIX) && !name.starts_with(GONE_POD_PREFIX) {
        return None;
    }
    name.rsplit_once('-')?.1.parse().ok()
}

/// Removes the transient pod directories whose process is gone: what an `apply` or a
/// teardown killed half-way (SIGKILL, a crash) left. A live process's directory is never
/// touched; a recycled pid only delays the cleanup to the next sweep.
pub fn sweep_transient(paths: &Paths) {
    let Ok(entries) = std::fs::read_dir(paths.pods()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = transient_owner(&name) else {
            continue;
        };
        if crate::procfs::stat(pid).is_some_and(|s| s.state != 'Z') {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(dir = %entry.path().display(), "removed a pod directory left by a dead process")
            }
            Err(e) => {
                tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove a stale pod directory")
            }
        }
    }
}

/// A process we started, identified by pid and by its start time (field 22 of
/// `/proc/<pid>/stat`), so that a recycled pid is never mistaken for ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessRef {
    /// The process `pid` as it is now, or None if it does not exist.
    pub fn of(pid: i32) -> Option<ProcessRef> {
        crate::procfs::stat(pid).map(|s| ProcessRef {
            pid,
            start_time: s.start_time,
        })
    }

    /// True while the very process we recorded (same pid, same start time) exists and has not
    /// exited: a zombie waiting for its parent to reap it counts as gone.
    pub fn is_alive(&self) -> bool {
        crate::procfs::stat(self.pid)
            .is_some_and(|s| s.start_time == self.start_time && s.state != 'Z')
    }
}

/// The sandbox (pause) process and the network it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxState {
    pub process: Option<ProcessRef>,
    /// Increments each time the sandbox is re-created.
    pub attempt: u32,
    pub ip: Option<Ipv4Addr>,
    /// Host-side veth name.
    pub veth: Option<String>,
}

/// One container instance (a restart makes a new one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`, hashed to a 64-hex container ID.
    pub id: String,
    pub restart_count: u32,
    pub process: Option<ProcessRef>,
    /// The instance's bundle directory (config.json, writable layer).
    pub bundle: Option<PathBuf>,
    pub cgroup: Option<PathBuf>,
    pub log_path: Option<PathBuf>,
    /// When the instance ended, in nanoseconds since the epoch (the status has seconds; the
    /// CRI reports nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ns: Option<i64>,
}

/// Everything on the host the pod holds, recorded before each resource is created so that
/// delete and crash recovery can always find it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub supervisor: Option<ProcessRef>,
    /// The supervisor's keeper (`pod::keeper`): it starts a new supervisor if this one is
    /// killed; `delete` waits for it to end too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeper: Option<ProcessRef>,
    pub sandbox: SandboxState,
    /// The pod cgroup: peapod's own (`peapod/pod-<uid>`), or a CRI sandbox's cgroup parent,
    /// which is not peapod's (see `cgroup_parent`).
    pub pod_cgroup: Option<PathBuf>,
    /// For a pod whose cgroup is a CRI sandbox's `cgroup_parent`: what peapod made there, the
    /// only cgroups its teardown removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<ParentCgroups>,
    /// By container name (init and app containers).
    pub containers: BTreeMap<String, ContainerState>,
    /// The pod finished: its host resources are released and its supervisor exited; the
    /// status is final (not `Unknown`) until the pod is deleted.
    #[serde(default)]
    pub finished: bool,
    /// The nftables table of the pod's host ports (`network::hostport`), recorded before it
    /// is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_table: Option<String>,
    /// The boot the supervisor ran in (`procfs::boot_id`): a pod whose supervisor is gone
    /// and whose boot is not this one lost its processes to a reboot (`node::recovery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// What peapod made in a cgroup parent it does not own (`cgroup::parent`), each recorded
/// before it is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentCgroups {
    /// Components of the parent that were missing, outermost first: removed with the pod,
    /// innermost first, once nothing is left in them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<PathBuf>,
    /// peapod's cgroups in the parent (the sandbox's, the containers'): killed and removed
    /// with the pod; forgotten once removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<PathBuf>,
}

impl ParentCgroups {
    /// Records a cgroup about to be made in the parent (once).
    pub fn add_child(&mut self, path: &std::path::Path) {
        if !self.children.iter().any(|c| c == path) {
            self.children.push(path.to_path_buf());
        }
    }

    /// Records components about to be made (once each, in order).
    pub fn add_created(&mut self, paths: &[PathBuf]) {
        for p in paths {
            if !self.created.contains(p) {
                self.created.push(p.clone());
            }
        }
    }
}

impl PodState {
    /// Forgets what `teardown::release_host` gave back: the sandbox's process and network,
    /// host ports, cgroups (the cgroup parent's record too), and each instance's process,
    /// cgroup and bundle.
    pub fn host_released(&mut self) {
        self.sandbox.veth = None;
        self.sandbox.process = None;
        self.sandbox.ip = None;
        self.host_port_table = None;
        self.pod_cgroup = None;
        self.cgroup_parent = None;
        for c in self.containers.values_mut() {
            c.cgroup = None;
            c.bundle = None;
            c.process = None;
        }
    }
}

/// A request to stop and remove the pod, written by `peapod delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    pub grace_period_seconds: i64,
    /// RFC 3339 time of the request.
    pub requested_at: String,
}

/// A Kubernetes-style event, deduplicated by (type, reason, message, object) with a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    /// `spec.containers{name}` or empty for the pod.
    #[serde(default)]
    pub field_path: String,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub count: u32,
}

/// Everything the CLI reads about one pod.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub pod: Pod,
    pub status: Option<PodStatus>,
    pub state: Option<PodState>,
    pub events: Vec<Event>,
    pub deleting: Option<DeleteRequest>,
}

fn optional<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl PodRecord {
    pub fn load(paths: &Paths, uid: &str) -> Result<PodRecord, StoreError> {
        let dir = paths.pod_dir(uid);
        Ok(PodRecord {
            pod: read_json(&dir.join(POD_FILE))?,
            status: read_json_volatile(&dir.join(STATUS_FILE))?,
            state: read_json_volatile(&dir.join(STATE_FILE))?,
            events: read_json_volatile(&dir.join(EVENTS_FILE))?.unwrap_or_default(),
            deleting: optional(read_json(&dir.join(DELETE_FILE)))?,
        })
    }

    pub fn namespace(&self) -> &str {
        self.pod
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(crate::manifest::defaults::DEFAULT_NAMESPACE)
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
}

/// The uids of every pod on record (directories under `Paths::pods`).
pub fn list_uids(paths: &Paths) -> Result<Vec<String>, StoreError> {
    let dir = paths.pods();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut uids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
        // Pods being made or removed (`.new-`, `.gone-`) are not pods.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.path().join(POD_FILE).exists() {
            uids.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    uids.sort();
    Ok(uids)
}

/// Every pod on record, skipping pods removed while we read.
pub fn load_all(paths: &Paths) -> Result<Vec<PodRecord>, StoreError> {
    let mut out = Vec::new();
    for uid in list_uids(paths)? {
        match PodRecord::load(paths, &uid) {
            Ok(r) => out.push(r),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Finds a pod by namespace and name: each record's pod.json is read for its name only, and
/// the whole record of the pod found is loaded. (Loading every record, its status, state and
/// events decoded, made each `apply` read five files per pod on the host, twice.)
pub fn find(paths: &Paths, namespace: &str, name: &str) -> Result<Option<PodRecord>, StoreError> {
    for (uid, key) in list_keys(paths)? {
        if key.0 != namespace || key.1 != name {
            continue;
        }
        match PodRecord::load(paths, &uid) {
            Ok(r) => return Ok(Some(r)),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A pod's (namespace, name).
pub type PodName = (String, String);

/// Every pod on record as (uid, (namespace, name)), from its pod.json's metadata only.
pub fn list_keys(paths: &Paths) -> Result<Vec<(String, PodName)>, StoreError> {
    let mut out = Vec::new();
    for uid in list_uids(paths)? {
        let key: PodKey = match read_json(&paths.pod_dir(&uid).join(POD_FILE)) {
            Ok(key) => key,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let meta = key.metadata;
        let namespace = meta
            .namespace
            .unwrap_or_else(|| crate::manifest::defaults::DEFAULT_NAMESPACE.to_string());
        out.push((uid, (namespace, meta.name.unwrap_or_default())));
    }
    Ok(out)
}

/// What [`find`] reads of a pod.json: serde skips the rest without building it.
#[derive(Deserialize)]
struct PodKey {
    #[serde(default)]
    metadata: PodKeyMeta,
}

#[derive(Default, Deserialize)]
struct PodKeyMeta {
    name: Option<String>,
    namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_matches_name_and_namespace_and_reads_only_the_pod_found() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let pod = |uid: &str, meta: &str| {
            let dir = paths.pod_dir(uid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(POD_FILE), format!(r#"{{"metadata":{meta}}}"#)).unwrap();
            dir
        };
        pod("u1", r#"{"name":"web","namespace":"prod"}"#);
        // Another pod's unreadable status is not this lookup's business.
        let other = pod("u2", r#"{"name":"db"}"#);
        std::fs::write(other.join(STATUS_FILE), "{").unwrap();
        let web = pod("u3", r#"{"name":"web"}"#);
        std::fs::write(web.join(STATUS_FILE), r#"{"phase":"Running"}"#).unwrap();
        let found = find(&paths, "default", "web").unwrap().expect("found");
        assert_eq!(found.namespace(), "default");
        assert_eq!(found.status.unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(
            find(&paths, "prod", "web").unwrap().unwrap().namespace(),
            "prod"
        );
        assert!(find(&paths, "prod", "db").unwrap().is_none());
        // The pod found is loaded whole: its broken status is an error.
        assert!(find(&paths, "default", "db").is_err());
    }

    #[test]
    fn transient_pod_dirs_are_not_listed_and_only_dead_owners_are_swept() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let pod = |dir: &std::path::Path| {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(POD_FILE), "{}").unwrap();
        };
        pod(&paths.pod_dir("u1"));
        let mine = transient_pod_dir(&paths, NEW_POD_PREFIX, "u2");
        pod(&mine);
        // No process has pid 0x7ffffff0 (above pid_max's ceiling of 2^22).
        let dead = paths
            .pods()
            .join(format!("{GONE_POD_PREFIX}u3-{}", 0x7fff_fff0));
        pod(&dead);
        assert_eq!(list_uids(&paths).unwrap(), vec!["u1".to_string()]);
        sweep_transient(&paths);
        assert!(mine.exists(), "a live process's directory was swept");
        assert!(!dead.exists(), "a dead process's directory was kept");
        assert!(paths.pod_dir("u1").exists());
    }

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessRef::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcessRef {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!other.is_alive());
    }
}
