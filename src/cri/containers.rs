//! The CRI's container calls. A container is one more container of its sandbox's pod: Create
//! records it (pod.json, `cri/containers/<id>.json`) once its image is in the store (no
//! pulls: the kubelet pulls first); Start asks the pod's supervisor to make and start it
//! (`pod::control`), as containerd makes the task at start; Stop asks it to stop it and
//! waits for the exit in the status; Remove forgets it. The state, exit code and reason
//! (`Completed`, `Error`, `OOMKilled`) come from the pod's status.json.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ContainerStatus as K8sStatus, Pod};
use tonic::Status;

use super::records::{self, internal, ContainerRecord, Live, SandboxRecord};
use super::sandboxes::{reserve_lock, CONTROL_TIMEOUT};
use super::translate;
use crate::container::spec;
use crate::pod::control::{self, Request};
use crate::pod::record::POD_FILE;
use crate::store::{read_json, write_json, FileLock, Paths};

/// How long a container may take to be made and started (software-emulated VMs are slow).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Beyond a stop's timeout, how long the exit may take to show (SIGKILL, status write).
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// What the status says of one container, as the CRI reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub state: i32,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
}

fn ns_of(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_nanosecond() as i64
}

/// The CRI state of a container from its record and its status in the pod: CREATED until
/// started, then RUNNING or EXITED as the status says; UNKNOWN when the status lost it.
/// `finished_ns`: when the supervisor saw it end (state.json), finer than the status's seconds.
pub fn observe(
    rec: &ContainerRecord,
    status: Option<&K8sStatus>,
    finished_ns: Option<i64>,
) -> Observed {
    let Some(started) = rec.started_at else {
        return Observed {
            state: cri::ContainerState::ContainerCreated as i32,
            ..Default::default()
        };
    };
    let state = status.and_then(|s| s.state.as_ref());
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return Observed {
            state: cri::ContainerState::ContainerExited as i32,
            started_at: started,
            finished_at: finished_ns
                .or_else(|| t.finished_at.as_ref().map(ns_of))
                .unwrap_or_default(),
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone().unwrap_or_default(),
        };
    }
    let state = if state.is_some_and(|s| s.running.is_some()) {
        cri::ContainerState::ContainerRunning
    } else {
        cri::ContainerState::ContainerUnknown
    };
    Observed {
        state: state as i32,
        started_at: started,
        ..Default::default()
    }
}

fn status_in<'a>(live: &'a Live, name: &str) -> Option<&'a K8sStatus> {
    live.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == name))
}

fn finished_ns(live: &Live, name: &str) -> Option<i64> {
    live.state
        .as_ref()
        .and_then(|s| s.containers.get(name))
        .and_then(|c| c.finished_at_ns)
}

pub(crate) fn observe_in(live: &Live, rec: &ContainerRecord) -> Observed {
    observe(
        rec,
        status_in(live, &rec.name),
        finished_ns(live, &rec.name),
    )
}

fn observe_live(paths: &Paths, rec: &ContainerRecord) -> Observed {
    observe_in(&Live::read(paths, &rec.pod_uid), rec)
}

/// The host paths of the mounts that ask for propagation are on mounts that give it
/// (`translate::check_propagation`, against this namespace's mounts: the server runs in the
/// host's), symlinks resolved as containerd resolves them.
fn check_mount_propagation(config: &cri::ContainerConfig) -> Result<(), String> {
    let private = cri::MountPropagation::PropagationPrivate as i32;
    if config.mounts.iter().all(|m| m.propagation == private) {
        return Ok(());
    }
    let mountinfo = std::fs::read_to_string(crate::procfs::MOUNTINFO)
        .map_err(|e| format!("{}: {e}", crate::procfs::MOUNTINFO))?;
    for m in &config.mounts {
        let path = std::fs::canonicalize(&m.host_path)
            .unwrap_or_else(|_| std::path::PathBuf::from(&m.host_path));
        translate::check_propagation(m, &path, &mountinfo)?;
    }
    Ok(())
}

/// Rewrites the pod's pod.json under the pods lock (as `peapod label` does).
fn edit_pod(paths: &Paths, uid: &str, f: impl FnOnce(&mut Pod)) -> Result<(), Status> {
    let _lock = FileLock::exclusive(&paths.pods_lock()).map_err(internal)?;
    let file = paths.pod_dir(uid).join(POD_FILE);
    let mut pod: Pod = read_json(&file).map_err(internal)?;
    f(&mut pod);
    write_json(&file, &pod).map_err(internal)
}

pub fn create(paths: &Paths, req: cri::CreateContainerRequest) -> Result<String, Status> {
    let sandbox = records::find_sandbox(paths, &req.pod_sandbox_id)?;
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: container config is required"))?;
    let meta = config.metadata.clone().ok_or_else(|| {
        Status::invalid_argument("config.metadata: container config must include metadata")
    })?;
    if meta.name.is_empty() {
        return Err(Status::invalid_argument("config.metadata.name is required"));
    }
    if !Live::read(paths, &sandbox.uid).sandbox_ready() {
        return Err(Status::unknown(format!(
            "failed to create container in sandbox {:?}: sandbox container is not running",
            sandbox.id
        )));
    }
    let wanted = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("config.image.image is required"))?;
    let image = local_image(paths, &wanted)?;
    let reserved = translate::container_name(&sandbox.metadata(), &meta);
    let _guard = reserve_lock();
    if let Some((_, other)) = records::containers(paths)?
        .into_iter()
        .find(|(_, c)| c.reserved == reserved)
    {
        return Err(Status::already_exists(format!(
            "failed to reserve container name {reserved:?}: name {reserved:?} is reserved for {:?}",
            other.id
        )));
    }
    let id = translate::new_id(&reserved);
    let name = translate::peapod_name(&meta.name, meta.attempt);
    let log_path = log_path(paths, &sandbox, &config, &name);
    let spec_error =
        |e: String| Status::unknown(format!("failed to generate container {id:?} spec: {e}"));
    let (container, volumes) =
        translate::container(&name, &image.store_name, &config).map_err(spec_error)?;
    check_mount_propagation(&config).map_err(spec_error)?;
    // Whether the host can apply its AppArmor profile, judged now as containerd judges it (and
    // its default profile loaded now); the supervisor applies it when it makes the container.
    let armor = crate::container::apparmor::asked(&Pod::default(), &container);
    crate::container::apparmor::spec_profile(armor.as_ref(), spec::is_privileged(&container))
        .map_err(|e| spec_error(spec::SpecError::from(e).to_string()))?;
    let groups = translate::supplemental_groups(&config);
    let mut settings = translate::settings(&config);
    for (k, d) in config.devices.iter().enumerate() {
        let found = crate::container::devices::devices_at(
            std::path::Path::new(&d.host_path),
            std::path::Path::new(&d.container_path),
        )
        .map_err(|e| {
            Status::unknown(format!(
                "failed to generate container {id:?} spec: config.devices[{k}]: {}: {e}",
                d.host_path
            ))
        })?;
        let permissions = if d.permissions.is_empty() {
            "rwm"
        } else {
            &d.permissions
        };
        settings
            .devices
            .extend(found.into_iter().map(|device| control::CriDevice {
                device,
                permissions: permissions.to_string(),
            }));
    }
    let settings = serde_json::to_string(&settings).map_err(internal)?;
    let rec = ContainerRecord {
        id: id.clone(),
        sandbox_id: sandbox.id.clone(),
        pod_uid: sandbox.uid.clone(),
        name: name.clone(),
        reserved,
        created_at: records::now_ns(),
        started_at: None,
        image: image.shown,
        image_ref: image.image_ref,
        image_id: image.id,
        log_path,
        config,
    };
    edit_pod(paths, &sandbox.uid, |pod| {
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(control::CriContainerSettings::key(&name), settings);
        let spec = pod.spec.get_or_insert_with(Default::default);
        if let Some(groups) = groups {
            spec.security_context
                .get_or_insert_with(Default::default)
                .supplemental_groups = Some(groups);
        }
        spec.containers.retain(|c| c.name != name);
        spec.containers.push(container);
        let list = spec.volumes.get_or_insert_with(Vec::new);
        list.retain(|v| !volumes.iter().any(|n| n.name == v.name));
        list.extend(volumes);
    })?;
    records::save_container(paths, &rec).map_err(internal)?;
    Ok(id)
}

/// The log file: the sandbox's log directory joined with the container's log path, as the
/// kubelet asks; peapod's own layout when the kubelet gave none.
fn log_path(
    paths: &Paths,
    sandbox: &SandboxRecord,
    config: &cri::ContainerConfig,
    name: &str,
) -> std::path::PathBuf {
    if !sandbox.config.log_directory.is_empty() && !config.log_path.is_empty() {
        return std::path::Path::new(&sandbox.config.log_directory).join(&config.log_path);
    }
    let m = sandbox.metadata();
    paths.container_log(
        &m.namespace,
        &translate::peapod_name(&m.name, m.attempt),
        &sandbox.uid,
        name,
        0,
    )
}

/// An image of the store as a container uses it.
struct LocalImage {
    /// A name the store resolves (what pod.json names).
    store_name: String,
    /// What the status shows: its first tag, else what was asked.
    shown: String,
    image_ref: String,
    id: String,
}

/// The image `wanted` names, from the store only (the kubelet pulled it); NotFound names it.
fn local_image(paths: &Paths, wanted: &str) -> Result<LocalImage, Status> {
    let catalog = super::image_service::store_catalog(paths)?;
    let not_found = || {
        Status::not_found(format!(
            "failed to resolve image {wanted:?}: not found in peapod's image store \
             (pull it first: PullImage or `peapod pull`)"
        ))
    };
    let found = super::images::find(&catalog, wanted)
        .map_err(|e| Status::invalid_argument(format!("config.image.image: {e}")))?
        .ok_or_else(not_found)?;
    Ok(LocalImage {
        store_name: found
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| found.id.clone()),
        shown: found
            .repo_tags
            .first()
            .cloned()
            .unwrap_or_else(|| wanted.to_string()),
        image_ref: found
            .repo_digests
            .first()
            .cloned()
            .unwrap_or_else(|| found.id.clone()),
        id: found.id.clone(),
    })
}

pub fn start(paths: &Paths, id: &str) -> Result<(), Status> {
    let (_, mut rec) = records::find_container(paths, id)?;
    let seen = observe_live(paths, &rec);
    if seen.state != cri::ContainerState::ContainerCreated as i32 {
        return Err(Status::unknown(format!(
            "container {:?} is in {} state",
            rec.id,
            state_name(seen.state)
        )));
    }
    let request = Request::Start {
        container: rec.name.clone(),
        id: rec.id.clone(),
        log_path: rec.log_path.clone(),
    };
    let reply = control::call(
        &records::control_socket(paths, &rec.pod_uid),
        &request,
        START_TIMEOUT,
    )
    .map_err(|e| Status::unknown(format!("failed to start container {:?}: {e}", rec.id)))?;
    if let Some(e) = reply.error {
        return Err(Status::unknown(format!(
            "failed to start container {:?}: {e}",
            rec.id
        )));
    }
    rec.started_at = Some(reply.started_at_ns.unwrap_or_else(records::now_ns));
    records::save_container(paths, &rec).map_err(internal)
}

fn state_name(state: i32) -> &'static str {
    cri::ContainerState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("CONTAINER_UNKNOWN")
}

/// Waits until the container no longer runs.
fn wait_stopped(paths: &Paths, rec: &ContainerRecord, within: Duration) -> Result<(), Status> {
    let deadline = Instant::now() + within;
    loop {
        if observe_live(paths, rec).state != cri::ContainerState::ContainerRunning as i32 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Status::unknown(format!(
                "container {:?} did not stop in {within:?}",
                rec.id
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops a running container: its stop signal, SIGKILL after `timeout` seconds; returns once
/// it exited. A container that does not run is left as it is.
pub fn stop(paths: &Paths, id: &str, timeout: i64) -> Result<(), Status> {
    let (_, rec) = records::find_container(paths, id)?;
    stop_record(paths, &rec, timeout)
}

fn stop_record(paths: &Paths, rec: &ContainerRecord, timeout: i64) -> Result<(), Status> {
    if observe_live(paths, rec).state != cri::ContainerState::ContainerRunning as i32 {
        return Ok(());
    }
    let request = Request::Stop {
        container: rec.name.clone(),
        timeout_seconds: timeout,
    };
    match control::call(
        &records::control_socket(paths, &rec.pod_uid),
        &request,
        CONTROL_TIMEOUT,
    ) {
        Ok(r) => {
            if let Some(e) = r.error {
                return Err(Status::unknown(format!(
                    "failed to stop container {:?}: {e}",
                    rec.id
                )));
            }
        }
        // The pod stopped meanwhile: so did the container.
        Err(control::ControlError::Unreachable { .. }) => return Ok(()),
        Err(e) => return Err(Status::unknown(e.to_string())),
    }
    let within = Duration::from_secs(timeout.max(0).unsigned_abs()) + STOP_MARGIN;
    wait_stopped(paths, rec, within)
}

/// Removes a container (stopped at once if it runs, as containerd does); an unknown ID is
/// fine.
pub fn remove(paths: &Paths, id: &str) -> Result<(), Status> {
    let all = records::containers(paths)?;
    let Some((_, rec)) = records::by_id(&all, id, |(_, c)| &c.id)?.cloned() else {
        tracing::debug!(container = %id, "RemoveContainer of a container that does not exist");
        return Ok(());
    };
    stop_record(paths, &rec, 0)?;
    let socket = records::control_socket(paths, &rec.pod_uid);
    if Live::read(paths, &rec.pod_uid).supervised() {
        let request = Request::Remove {
            container: rec.name.clone(),
        };
        match control::call(&socket, &request, CONTROL_TIMEOUT) {
            Ok(r) => {
                if let Some(e) = r.error.filter(|e| !e.starts_with("no container")) {
                    return Err(Status::unknown(format!(
                        "failed to remove container {:?}: {e}",
                        rec.id
                    )));
                }
            }
            Err(control::ControlError::Unreachable { .. }) => {}
            Err(e) => return Err(Status::unknown(e.to_string())),
        }
    }
    let _guard = reserve_lock();
    if paths.pod_dir(&rec.pod_uid).exists() {
        edit_pod(paths, &rec.pod_uid, |pod| {
            if let Some(a) = pod.metadata.annotations.as_mut() {
                a.remove(&control::CriContainerSettings::key(&rec.name));
            }
            let Some(spec) = pod.spec.as_mut() else {
                return;
            };
            let mounted: Vec<String> = spec
                .containers
                .iter()
                .filter(|c| c.name == rec.name)
                .flat_map(|c| c.volume_mounts.iter().flatten())
                .map(|m| m.name.clone())
                .collect();
            spec.containers.retain(|c| c.name != rec.name);
            if let Some(v) = spec.volumes.as_mut() {
                v.retain(|v| !mounted.contains(&v.name));
            }
        })?;
    }
    records::remove_container_record(paths, &rec);
    Ok(())
}

/// UpdateContainerResources: a running container's cgroup gets the new CPU and memory
/// limits (cgroup v2, as runc's update converts them); the record and pod.json keep them.
pub fn update_resources(
    paths: &Paths,
    id: &str,
    linux: Option<cri::LinuxContainerResources>,
) -> Result<(), Status> {
    let (_, mut rec) = records::find_container(paths, id)?;
    let Some(new) = linux else {
        return Ok(());
    };
    let seen = observe_live(paths, &rec);
    if seen.state == cri::ContainerState::ContainerRunning as i32 {
        let live = Live::read(paths, &rec.pod_uid);
        let cgroup = live
            .state
            .as_ref()
            .and_then(|s| s.containers.get(&rec.name))
            .and_then(|c| c.cgroup.clone())
            .ok_or_else(|| Status::unknown(format!("container {:?} has no cgroup", rec.id)))?;
        let res = crate::container::spec::update_resources(
            new.cpu_shares.max(0).unsigned_abs(),
            new.cpu_quota,
            new.cpu_period.max(0).unsigned_abs(),
            new.memory_limit_in_bytes,
        )
        .map_err(|e| Status::invalid_argument(format!("linux: {e}")))?;
        let mgr = crate::cgroup::detect(std::path::Path::new(crate::cgroup::CGROUP_ROOT))
            .manager()
            .ok_or_else(|| Status::failed_precondition("no cgroup2 hierarchy on this host"))?;
        mgr.update(&cgroup, &res).map_err(|e| {
            Status::unknown(format!("failed to update resources of {:?}: {e}", rec.id))
        })?;
    } else if seen.state != cri::ContainerState::ContainerCreated as i32 {
        return Err(Status::unknown(format!(
            "container {:?} is in {} state",
            rec.id,
            state_name(seen.state)
        )));
    }
    let linux_config = rec.config.linux.get_or_insert_with(Default::default);
    linux_config.resources = Some(new);
    let (container, _) =
        translate::container(&rec.name, &rec.image, &rec.config).map_err(Status::unknown)?;
    let _guard = reserve_lock();
    edit_pod(paths, &rec.pod_uid, |pod| {
        if let Some(c) = pod
            .spec
            .as_mut()
            .and_then(|s| s.containers.iter_mut().find(|c| c.name == rec.name))
        {
            c.resources = container.resources;
        }
    })?;
    records::save_container(paths, &rec).map_err(internal)
}

/// ReopenContainerLog: the running container's log file opened again at its path.
pub fn reopen_log(paths: &Paths, id: &str) -> Result<(), Status> {
    let (_, rec) = records::find_container(paths, id)?;
    if observe_live(paths, &rec).state != cri::ContainerState::ContainerRunning as i32 {
        return Err(Status::unknown(format!(
            "can't reopen log for non-running container {:?}",
            rec.id
        )));
    }
    let request = Request::ReopenLog {
        container: rec.name.clone(),
    };
    let reply = control::call(
        &records::control_socket(paths, &rec.pod_uid),
        &request,
        CONTROL_TIMEOUT,
    )
    .map_err(|e| Status::unknown(e.to_string()))?;
    match reply.error {
        Some(e) => Err(Status::unknown(format!(
            "failed to reopen the log of {:?}: {e}",
            rec.id
        ))),
        None => Ok(()),
    }
}

fn resources(c: &cri::ContainerConfig) -> Option<cri::ContainerResources> {
    c.linux
        .as_ref()
        .and_then(|l| l.resources.clone())
        .map(|r| cri::ContainerResources {
            linux: Some(r),
            windows: None,
        })
}

pub fn status(
    paths: &Paths,
    id: &str,
    verbose: bool,
) -> Result<cri::ContainerStatusResponse, Status> {
    let (_, rec) = records::find_container(paths, id)?;
    Ok(cri_status_in(
        &Live::read(paths, &rec.pod_uid),
        &rec,
        verbose,
    ))
}

/// The status of `rec` from its pod's live records.
pub(crate) fn cri_status_in(
    live: &Live,
    rec: &ContainerRecord,
    verbose: bool,
) -> cri::ContainerStatusResponse {
    let seen = observe_in(live, rec);
    let mut info = std::collections::HashMap::new();
    if verbose {
        let pid = live
            .state
            .as_ref()
            .and_then(|s| s.containers.get(&rec.name))
            .and_then(|c| c.process.as_ref())
            .filter(|p| p.is_alive())
            .map(|p| p.pid);
        let value = serde_json::json!({
            "pid": pid,
            "sandboxID": rec.sandbox_id,
            "peapodPodUid": rec.pod_uid,
            "peapodContainer": rec.name,
            "config": rec.config,
        });
        info.insert("info".to_string(), value.to_string());
    }
    cri::ContainerStatusResponse {
        status: Some(cri::ContainerStatus {
            id: rec.id.clone(),
            metadata: rec.config.metadata.clone(),
            state: seen.state,
            created_at: rec.created_at,
            started_at: seen.started_at,
            finished_at: seen.finished_at,
            exit_code: seen.exit_code,
            image: Some(image_spec(rec)),
            image_ref: rec.image_ref.clone(),
            reason: seen.reason,
            message: seen.message,
            labels: rec.config.labels.clone(),
            annotations: rec.config.annotations.clone(),
            mounts: rec.config.mounts.clone(),
            log_path: rec.log_path.display().to_string(),
            resources: resources(&rec.config),
            image_id: rec.image_id.clone(),
            user: None,
        }),
        info,
    }
}

fn image_spec(rec: &ContainerRecord) -> cri::ImageSpec {
    let mut spec = rec.config.image.clone().unwrap_or_default();
    spec.image = rec.image.clone();
    spec
}

/// Whether a container passes the filter: ID and sandbox ID (or prefixes), state, labels.
pub fn matches(item: &cri::Container, filter: &cri::ContainerFilter) -> bool {
    (filter.id.is_empty() || item.id.starts_with(&filter.id))
        && (filter.pod_sandbox_id.is_empty()
            || item.pod_sandbox_id.starts_with(&filter.pod_sandbox_id))
        && filter.state.is_none_or(|s| s.state == item.state)
        && translate::labels_match(&item.labels, &filter.label_selector)
}

pub fn list(
    paths: &Paths,
    filter: Option<cri::ContainerFilter>,
) -> Result<Vec<cri::Container>, Status> {
    let filter = filter.unwrap_or_default();
    let mut out = Vec::new();
    for (sandbox, recs) in records::sandboxes(paths)?.into_iter().map(|s| {
        let recs = records::containers_of(paths, &s.uid);
        (s, recs)
    }) {
        let live = Live::read(paths, &sandbox.uid);
        for rec in recs {
            let seen = observe_in(&live, &rec);
            let item = cri::Container {
                id: rec.id.clone(),
                pod_sandbox_id: rec.sandbox_id.clone(),
                metadata: rec.config.metadata.clone(),
                image: Some(image_spec(&rec)),
                image_ref: rec.image_ref.clone(),
                state: seen.state,
                created_at: rec.created_at,
                labels: rec.config.labels.clone(),
                annotations: rec.config.annotations.clone(),
                image_id: rec.image_id.clone(),
            };
            if matches(&item, &filter) {
                out.push(item);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn rec(started: Option<i64>) -> ContainerRecord {
        ContainerRecord {
            id: "c1".into(),
            sandbox_id: "s1".into(),
            pod_uid: "u".into(),
            name: "app".into(),
            reserved: "app_web_ns_u_0".into(),
            created_at: 1,
            started_at: started,
            image: "busybox".into(),
            image_ref: "sha256:aa".into(),
            image_id: "sha256:aa".into(),
            log_path: "/var/log/pods/x/app/0.log".into(),
            config: Default::default(),
        }
    }

    fn status(state: ContainerState) -> K8sStatus {
        K8sStatus {
            name: "app".into(),
            state: Some(state),
            ..Default::default()
        }
    }

    #[test]
    fn states_come_from_the_record_and_the_pods_status() {
        assert_eq!(
            observe(&rec(None), None, None).state,
            cri::ContainerState::ContainerCreated as i32
        );
        let running = status(ContainerState {
            running: Some(ContainerStateRunning { started_at: None }),
            ..Default::default()
        });
        let seen = observe(&rec(Some(5)), Some(&running), None);
        assert_eq!(seen.state, cri::ContainerState::ContainerRunning as i32);
        assert_eq!(seen.started_at, 5);
        let finished = jiff::Timestamp::from_second(100).unwrap();
        let exited = status(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 3,
                reason: Some("Error".into()),
                finished_at: Some(Time(finished)),
                ..Default::default()
            }),
            ..Default::default()
        });
        let seen = observe(&rec(Some(5)), Some(&exited), None);
        assert_eq!(seen.state, cri::ContainerState::ContainerExited as i32);
        assert_eq!((seen.exit_code, seen.reason.as_str()), (3, "Error"));
        assert_eq!(seen.finished_at, 100_000_000_000);
        // The supervisor's own record of the end is finer than the status's seconds.
        let seen = observe(&rec(Some(5)), Some(&exited), Some(100_123_456_789));
        assert_eq!(seen.finished_at, 100_123_456_789);
        assert_eq!(
            observe(&rec(Some(5)), None, None).state,
            cri::ContainerState::ContainerUnknown as i32
        );
    }

    #[test]
    fn container_filters_take_ids_sandboxes_states_and_labels() {
        let item = cri::Container {
            id: "c123".into(),
            pod_sandbox_id: "s456".into(),
            state: cri::ContainerState::ContainerRunning as i32,
            labels: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let mut f = cri::ContainerFilter::default();
        assert!(matches(&item, &f));
        f.pod_sandbox_id = "s4".into();
        assert!(matches(&item, &f));
        f.pod_sandbox_id = "s5".into();
        assert!(!matches(&item, &f));
        f.pod_sandbox_id.clear();
        f.id = "c12".into();
        f.state = Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerExited as i32,
        });
        assert!(!matches(&item, &f));
        f.state = None;
        f.label_selector = [("k".to_string(), "v".to_string())].into();
        assert!(matches(&item, &f));
    }
}
