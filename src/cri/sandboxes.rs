//! The CRI's pod sandbox calls. A sandbox is a peapod pod (`translate::sandbox_pod`: its own
//! directory, keeper and supervisor, pause process, IP on peapod's bridge) whose supervisor
//! is driven through its control socket (`pod::control`); `peapod get`/`describe` show it
//! like any pod. Errors are containerd's: NotFound for an unknown ID (but Remove, which is
//! idempotent), AlreadyExists for a second sandbox with the same metadata.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use tonic::Status;

use super::records::{self, internal, Live, SandboxRecord};
use super::translate;
use crate::pod::control::{self, Request};
use crate::pod::lifecycle::{self, ApplyOutcome, LifecycleError};
use crate::store::Paths;

/// How long a new sandbox may take to be ready (software-emulated VMs are slow).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping pod may take to give everything back.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a supervisor may take to answer a request it handles at once.
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// Serializes what reserves names and edits pod.json files in this server.
pub(crate) fn reserve_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn state_of(live: &Live) -> cri::PodSandboxState {
    if live.sandbox_ready() {
        cri::PodSandboxState::SandboxReady
    } else {
        cri::PodSandboxState::SandboxNotready
    }
}

/// The annotations the kubelet gave (the marker peapod adds is not shown).
fn sandbox_item(rec: &SandboxRecord, live: &Live) -> cri::PodSandbox {
    cri::PodSandbox {
        id: rec.id.clone(),
        metadata: Some(rec.metadata()),
        state: state_of(live) as i32,
        created_at: rec.created_at,
        labels: rec.config.labels.clone(),
        annotations: rec.config.annotations.clone(),
        runtime_handler: rec.runtime_handler.clone(),
    }
}

pub fn run(paths: &Paths, req: cri::RunPodSandboxRequest) -> Result<String, Status> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: sandbox config is required"))?;
    let meta = config.metadata.clone().ok_or_else(|| {
        Status::invalid_argument("config.metadata: sandbox config must include metadata")
    })?;
    if meta.name.is_empty() || meta.uid.is_empty() || meta.namespace.is_empty() {
        return Err(Status::invalid_argument(
            "config.metadata: name, uid and namespace are required",
        ));
    }
    if !req.runtime_handler.is_empty() {
        return Err(Status::unknown(format!(
            "failed to get sandbox runtime: no runtime for {:?} is configured",
            req.runtime_handler
        )));
    }
    if let Some(why) = translate::userns_refused(&config) {
        return Err(Status::unknown(format!(
            "failed to create the sandbox: config.linux.security_context.namespace_options.userns_options: {why}"
        )));
    }
    if let Some(why) = translate::sysctl_refused(&config) {
        return Err(Status::unknown(format!(
            "failed to create the sandbox: config.linux.sysctls: {why}"
        )));
    }
    translate::cgroup_parent(&config)
        .map_err(|e| Status::invalid_argument(format!("config.linux.cgroup_parent: {e}")))?;
    let reserved = translate::sandbox_name(&meta);
    let (id, uid) = {
        let _guard = reserve_lock();
        if let Some(other) = records::sandboxes(paths)?
            .into_iter()
            .find(|s| s.reserved == reserved)
        {
            return Err(Status::already_exists(format!(
                "failed to reserve sandbox name {reserved:?}: name {reserved:?} is reserved for {:?}",
                other.id
            )));
        }
        let id = translate::new_id(&reserved);
        let mut pod = translate::sandbox_pod(&id, &config);
        let uid = uuid::Uuid::new_v4().to_string();
        pod.metadata.uid = Some(uid.clone());
        let rec = SandboxRecord {
            id: id.clone(),
            uid: uid.clone(),
            reserved,
            created_at: records::now_ns(),
            runtime_handler: req.runtime_handler.clone(),
            config,
        };
        match lifecycle::apply_with_uid(paths, vec![pod]) {
            Ok(outcomes) => {
                if let Some(ApplyOutcome::AlreadyExists { namespace, name }) =
                    outcomes.into_iter().next()
                {
                    return Err(Status::already_exists(format!(
                        "pod {namespace}/{name} exists already (made with `peapod apply`)"
                    )));
                }
            }
            Err(e) => {
                return Err(Status::unknown(format!(
                    "failed to create the sandbox: {e}"
                )))
            }
        }
        if let Err(e) = records::save_sandbox(paths, &rec) {
            remove_pod(paths, &rec);
            return Err(internal(e));
        }
        (id, uid)
    };
    // The kubelet gets the sandbox once its network is up, as from containerd.
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let live = Live::read(paths, &uid);
        if live.sandbox_ready() {
            return Ok(id);
        }
        let finished = live.state.as_ref().is_some_and(|s| s.finished);
        if finished || !live.supervised() || unschedulable(&live) || Instant::now() >= deadline {
            let why = last_warning(paths, &uid).unwrap_or_else(|| {
                format!(
                    "the sandbox was not ready in {READY_TIMEOUT:?}; see {}",
                    paths
                        .pod_run_dir(&uid)
                        .join(crate::pod::supervisor::SUPERVISOR_LOG)
                        .display()
                )
            });
            if let Ok(rec) = records::find_sandbox(paths, &id) {
                remove_pod(paths, &rec);
            }
            return Err(Status::unknown(format!(
                "failed to start sandbox {id:?}: {why}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The node cannot take the pod (a host port claimed by another): PodScheduled False.
fn unschedulable(live: &Live) -> bool {
    live.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
}

/// The pod's last Warning event, to say why its sandbox failed.
fn last_warning(paths: &Paths, uid: &str) -> Option<String> {
    let events: Vec<crate::pod::record::Event> =
        crate::store::read_json(&paths.pod_dir(uid).join(crate::pod::record::EVENTS_FILE)).ok()?;
    events
        .iter()
        .rev()
        .find(|e| e.type_ == crate::pod::events::WARNING)
        .map(|e| format!("{}: {}", e.reason, e.message))
}

/// Removes the pod as `peapod delete --force` does (no grace: the kubelet stopped it).
fn remove_pod(paths: &Paths, rec: &SandboxRecord) {
    let pod_file = paths.pod_dir(&rec.uid).join(crate::pod::record::POD_FILE);
    let Ok(pod) = crate::store::read_json::<k8s_openapi::api::core::v1::Pod>(&pod_file) else {
        return;
    };
    let ns = pod.metadata.namespace.unwrap_or_default();
    let name = pod.metadata.name.unwrap_or_default();
    match lifecycle::delete(paths, &ns, &name, Some(0), true) {
        Ok(()) | Err(LifecycleError::NotFound { .. }) => {}
        Err(e) => tracing::warn!(sandbox = %rec.id, error = %e, "sandbox removal failed"),
    }
}

/// Stops every container at once and gives back the sandbox, its network and cgroups; the
/// records stay (NOTREADY) until removed. Stopping a stopped sandbox is fine.
pub fn stop(paths: &Paths, id: &str) -> Result<(), Status> {
    let rec = records::find_sandbox(paths, id)?;
    let socket = records::control_socket(paths, &rec.uid);
    if Live::read(paths, &rec.uid).supervised() {
        match control::call(&socket, &Request::StopPod, CONTROL_TIMEOUT) {
            Ok(r) => {
                if let Some(e) = r.error {
                    return Err(Status::unknown(format!(
                        "failed to stop sandbox {:?}: {e}",
                        rec.id
                    )));
                }
            }
            // Gone meanwhile: stopped already.
            Err(control::ControlError::Unreachable { .. }) => {}
            Err(e) => return Err(Status::unknown(e.to_string())),
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Live::read(paths, &rec.uid).supervised() {
        if Instant::now() >= deadline {
            return Err(Status::unknown(format!(
                "sandbox {:?} did not stop in {STOP_TIMEOUT:?}",
                rec.id
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // No supervisor ended it (a reboot took it down): what it still holds goes now.
    crate::pod::teardown::finish_unsupervised(paths, &rec.uid)
        .map_err(|e| Status::unknown(format!("failed to stop sandbox {:?}: {e}", rec.id)))
}

/// Removes the sandbox and everything of it (as `peapod delete`); an unknown ID is fine.
pub fn remove(paths: &Paths, id: &str) -> Result<(), Status> {
    let all = records::sandboxes(paths)?;
    let Some(rec) = records::by_id(&all, id, |s| &s.id)? else {
        tracing::debug!(sandbox = %id, "RemovePodSandbox of a sandbox that does not exist");
        return Ok(());
    };
    let _guard = reserve_lock();
    remove_pod(paths, rec);
    if paths.pod_dir(&rec.uid).exists() {
        return Err(Status::unknown(format!(
            "failed to remove sandbox {:?}: its pod is still on record",
            rec.id
        )));
    }
    Ok(())
}

pub fn status(
    paths: &Paths,
    id: &str,
    verbose: bool,
) -> Result<cri::PodSandboxStatusResponse, Status> {
    let rec = records::find_sandbox(paths, id)?;
    let live = Live::read(paths, &rec.uid);
    let ns_options = translate::namespace_options(&rec.config).cloned();
    let mut info = std::collections::HashMap::new();
    if verbose {
        let value = serde_json::json!({
            "pid": live.sandbox_pid(),
            "peapodPodUid": rec.uid,
            "config": rec.config,
        });
        info.insert("info".to_string(), value.to_string());
    }
    Ok(cri::PodSandboxStatusResponse {
        status: Some(cri::PodSandboxStatus {
            id: rec.id.clone(),
            metadata: Some(rec.metadata()),
            state: state_of(&live) as i32,
            created_at: rec.created_at,
            // Empty once the network namespace is gone (containerd: a closed netns).
            network: Some(cri::PodSandboxNetworkStatus {
                ip: live
                    .sandbox_pid()
                    .and_then(|_| live.pod_ip())
                    .unwrap_or_default(),
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: ns_options,
                }),
            }),
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
            runtime_handler: rec.runtime_handler.clone(),
        }),
        info,
        containers_statuses: Vec::new(),
        timestamp: 0,
    })
}

/// Whether a sandbox passes the filter: ID (or prefix), state, every label of the selector.
pub fn matches(item: &cri::PodSandbox, filter: &cri::PodSandboxFilter) -> bool {
    (filter.id.is_empty() || item.id.starts_with(&filter.id))
        && filter.state.is_none_or(|s| s.state == item.state)
        && translate::labels_match(&item.labels, &filter.label_selector)
}

pub fn list(
    paths: &Paths,
    filter: Option<cri::PodSandboxFilter>,
) -> Result<Vec<cri::PodSandbox>, Status> {
    let filter = filter.unwrap_or_default();
    Ok(records::sandboxes(paths)?
        .iter()
        .map(|r| sandbox_item(r, &Live::read(paths, &r.uid)))
        .filter(|item| matches(item, &filter))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sandbox_filters_take_id_prefixes_states_and_labels() {
        let item = cri::PodSandbox {
            id: "abcdef".into(),
            state: cri::PodSandboxState::SandboxReady as i32,
            labels: HashMap::from([("app".into(), "web".into())]),
            ..Default::default()
        };
        let f = |id: &str, state: Option<cri::PodSandboxState>, l: &[(&str, &str)]| {
            cri::PodSandboxFilter {
                id: id.into(),
                state: state.map(|s| cri::PodSandboxStateValue { state: s as i32 }),
                label_selector: l
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        };
        assert!(matches(&item, &f("", None, &[])));
        assert!(matches(&item, &f("abc", None, &[])));
        assert!(!matches(&item, &f("abd", None, &[])));
        assert!(matches(
            &item,
            &f("", Some(cri::PodSandboxState::SandboxReady), &[])
        ));
        assert!(!matches(
            &item,
            &f("", Some(cri::PodSandboxState::SandboxNotready), &[])
        ));
        assert!(matches(&item, &f("", None, &[("app", "web")])));
        assert!(!matches(&item, &f("", None, &[("app", "db")])));
    }
}
