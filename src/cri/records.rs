//! What the CRI server keeps of the sandboxes and containers it made, beside the peapod pod
//! each sandbox is: `pods/<uid>/cri/sandbox.json` (the sandbox's ID, reserved name, config)
//! and `pods/<uid>/cri/containers/<id>.json` (each container's), so they go with the pod's
//! directory. The live state comes from the pod's own state.json and status.json.

use std::path::PathBuf;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::PodStatus;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::pod::record::{self, PodState, STATE_FILE, STATUS_FILE};
use crate::store::{read_json, write_json, Paths, StoreError};

const CRI_DIR: &str = "cri";
const SANDBOX_FILE: &str = "sandbox.json";
const CONTAINERS_DIR: &str = "containers";

/// One sandbox made through the CRI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    pub id: String,
    /// The peapod pod's UID (its directory).
    pub uid: String,
    /// containerd's reserved name (`translate::sandbox_name`).
    pub reserved: String,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    pub runtime_handler: String,
    pub config: cri::PodSandboxConfig,
}

impl SandboxRecord {
    pub fn metadata(&self) -> cri::PodSandboxMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }
}

/// One container made through the CRI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub pod_uid: String,
    /// Its name in the peapod pod (`translate::peapod_name`).
    pub name: String,
    pub reserved: String,
    pub created_at: i64,
    /// Set once StartContainer succeeded.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// The image as the status shows it (its first tag, else what was asked).
    pub image: String,
    /// Its repo digest, else its ID, as containerd's image_ref.
    pub image_ref: String,
    /// The image ID (`sha256:` of its config).
    pub image_id: String,
    /// The sandbox's log directory joined with the container's log path.
    pub log_path: PathBuf,
    pub config: cri::ContainerConfig,
}

fn cri_dir(paths: &Paths, uid: &str) -> PathBuf {
    paths.pod_dir(uid).join(CRI_DIR)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

pub fn save_sandbox(paths: &Paths, rec: &SandboxRecord) -> Result<(), StoreError> {
    write_json(&cri_dir(paths, &rec.uid).join(SANDBOX_FILE), rec)
}

pub fn save_container(paths: &Paths, rec: &ContainerRecord) -> Result<(), StoreError> {
    write_json(
        &cri_dir(paths, &rec.pod_uid)
            .join(CONTAINERS_DIR)
            .join(format!("{}.json", rec.id)),
        rec,
    )
}

pub fn remove_container_record(paths: &Paths, rec: &ContainerRecord) {
    let _ = std::fs::remove_file(
        cri_dir(paths, &rec.pod_uid)
            .join(CONTAINERS_DIR)
            .join(format!("{}.json", rec.id)),
    );
}

/// Every sandbox on record, oldest first. Pods not made through the CRI have no record.
pub fn sandboxes(paths: &Paths) -> Result<Vec<SandboxRecord>, Status> {
    let mut out = Vec::new();
    for uid in record::list_uids(paths).map_err(internal)? {
        match read_json::<SandboxRecord>(&cri_dir(paths, &uid).join(SANDBOX_FILE)) {
            Ok(r) => out.push(r),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(%uid, error = %e, "unreadable CRI sandbox record"),
        }
    }
    out.sort_by_key(|r| r.created_at);
    Ok(out)
}

/// The containers of the sandbox of pod `uid`, oldest first.
pub fn containers_of(paths: &Paths, uid: &str) -> Vec<ContainerRecord> {
    let dir = cri_dir(paths, uid).join(CONTAINERS_DIR);
    let mut out: Vec<ContainerRecord> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| read_json(&e.path()).ok())
        .collect();
    out.sort_by_key(|r| r.created_at);
    out
}

/// Every container on record, with its sandbox.
pub fn containers(paths: &Paths) -> Result<Vec<(SandboxRecord, ContainerRecord)>, Status> {
    Ok(sandboxes(paths)?
        .into_iter()
        .flat_map(|s| {
            containers_of(paths, &s.uid)
                .into_iter()
                .map(move |c| (s.clone(), c))
        })
        .collect())
}

/// The one of `items` whose ID is `id` or starts with it (containerd accepts a unique
/// prefix). None when none does; an error naming both when the prefix is ambiguous.
pub fn by_id<'a, T>(
    items: &'a [T],
    id: &str,
    id_of: impl Fn(&T) -> &str,
) -> Result<Option<&'a T>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    if let Some(exact) = items.iter().find(|i| id_of(i) == id) {
        return Ok(Some(exact));
    }
    let mut hits = items.iter().filter(|i| id_of(i).starts_with(id));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Ok(Some(one)),
        (Some(a), Some(b)) => Err(Status::invalid_argument(format!(
            "ID prefix {id:?} is ambiguous: {} and {}",
            id_of(a),
            id_of(b)
        ))),
        _ => Ok(None),
    }
}

/// The sandbox `id` (or a unique prefix of it), or NotFound as containerd words it.
pub fn find_sandbox(paths: &Paths, id: &str) -> Result<SandboxRecord, Status> {
    let all = sandboxes(paths)?;
    by_id(&all, id, |s| &s.id)?.cloned().ok_or_else(|| {
        Status::not_found(format!(
            "an error occurred when try to find sandbox {id:?}: not found"
        ))
    })
}

/// The container `id` (or a unique prefix of it) and its sandbox, or NotFound.
pub fn find_container(paths: &Paths, id: &str) -> Result<(SandboxRecord, ContainerRecord), Status> {
    let all = containers(paths)?;
    by_id(&all, id, |(_, c)| &c.id)?.cloned().ok_or_else(|| {
        Status::not_found(format!(
            "an error occurred when try to find container {id:?}: not found"
        ))
    })
}

/// The peapod pod's live records: state.json and status.json.
pub struct Live {
    pub state: Option<PodState>,
    pub status: Option<PodStatus>,
}

impl Live {
    pub fn read(paths: &Paths, uid: &str) -> Live {
        let dir = paths.pod_dir(uid);
        Live {
            state: read_json(&dir.join(STATE_FILE)).ok(),
            status: read_json(&dir.join(STATUS_FILE)).ok(),
        }
    }

    /// The sandbox is ready: its pause process lives, its network is wired (an IP in the
    /// status), and the pod was not stopped.
    pub fn sandbox_ready(&self) -> bool {
        let Some(state) = &self.state else {
            return false;
        };
        !state.finished
            && state.sandbox.process.as_ref().is_some_and(|p| p.is_alive())
            && self.pod_ip().is_some()
    }

    pub fn pod_ip(&self) -> Option<String> {
        self.status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
    }

    /// The supervisor runs (the pod was not stopped).
    pub fn supervised(&self) -> bool {
        self.state
            .as_ref()
            .and_then(|s| s.supervisor.as_ref())
            .is_some_and(|p| p.is_alive())
    }

    pub fn sandbox_pid(&self) -> Option<i32> {
        self.state
            .as_ref()
            .and_then(|s| s.sandbox.process.as_ref())
            .filter(|p| p.is_alive())
            .map(|p| p.pid)
    }
}

/// The pod's control socket (`pod::control`).
pub fn control_socket(paths: &Paths, uid: &str) -> PathBuf {
    paths
        .pod_run_dir(uid)
        .join(crate::pod::control::SOCKET_FILE)
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}
