//! The supervisor's side of volumes and of the objects the pod reads.
//!
//! - The gate: volumes are set up before the pod sandbox is made, as the kubelet mounts them
//!   before it creates the sandbox; a volume that fails (its ConfigMap is missing, ...) records
//!   the kubelet's `FailedMount` event and the pod stays Pending/ContainerCreating without a
//!   sandbox or IP, retried with the kubelet's back-off (0.5 s doubling to 2m2s)
//!   [pkg/volume/util/nestedpendingoperations].
//! - Updates: an inotify watch on the object-store directories of the kinds the pod reads
//!   wakes the poll loop; after a short debounce the API-data volumes are re-projected through
//!   the atomic writer, and containers waiting in CreateContainerConfigError retry at once. A
//!   slow periodic resync stands in for the kubelet's sync loop.
//! - Pod metadata: `peapod label`/`annotate` rewrite pod.json and signal; the labels and
//!   annotations are re-read and the downwardAPI files follow.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolumeClaim, Pod, Secret};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::Supervisor;
use crate::container::env::{env_refs, NodeAllocatable};
use crate::object::{ObjectError, ObjectStore, Refs, Snapshot};
use crate::pod::events;
use crate::pod::machine::Lifecycle;
use crate::pod::model::REASON_CREATE_CONTAINER_CONFIG_ERROR;
use crate::store::Paths;
use crate::volume::{self, HostVolume, PodVolumes};

/// The kubelet's first retry of a failed volume operation, doubled up to [`RETRY_MAX`].
const RETRY_INITIAL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(122);
/// Objects written together (one `apply` of several) are read once.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// The periodic re-projection, as the kubelet's pod sync refreshes API-data volumes.
const RESYNC: Duration = Duration::from_secs(60);

/// Where the pod's volumes stand.
enum Gate {
    /// Not set up yet: the next attempt and the delay after it.
    Waiting { next_try: Instant, delay: Duration },
    /// Set up: each volume's host directory.
    Ready(BTreeMap<String, HostVolume>),
}

/// Errors of the volume side of the supervisor.
#[derive(Debug, thiserror::Error)]
pub(super) enum VolumeSetupError {
    #[error("the pod's volumes are not set up yet")]
    NotReady,
    #[error("watching the object store: {0}")]
    Store(#[from] ObjectError),
    #[error("inotify: {0}")]
    Inotify(#[source] nix::Error),
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: std::path::PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// The pod's volumes and the watch on the objects it reads.
pub(super) struct VolumeState {
    gate: Gate,
    store: ObjectStore,
    /// On the store directories of the kinds the pod reads (volumes and env); None when it
    /// reads none (or the watch could not be made: API-data volumes still resync).
    watch: Option<Inotify>,
    /// A change was seen: re-read at this time.
    refresh_at: Option<Instant>,
    /// The next periodic resync; None for pods without API-data volumes.
    resync_at: Option<Instant>,
}

impl VolumeState {
    pub(super) fn new(paths: &Paths, pod: &Pod) -> Self {
        let store = ObjectStore::new(paths);
        let mut refs = volume::volume_refs(pod);
        for c in all_containers(pod) {
            refs.extend(env_refs(c));
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let claims = !volume::claim::claims_of(pod).is_empty();
        let watch = if refs.is_empty() && !claims {
            None
        } else {
            match watch_store(&store, namespace, &refs, claims) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the object store");
                    None
                }
            }
        };
        // Only API-data volumes have something to resync; a pod that reads objects only for
        // env needs the watch until its containers start, and their own retry timers.
        let follows = volume::has_api_data(pod);
        VolumeState {
            gate: Gate::Waiting {
                next_try: Instant::now(),
                delay: RETRY_INITIAL,
            },
            store,
            watch,
            refresh_at: None,
            resync_at: follows.then(|| Instant::now() + RESYNC),
        }
    }

    pub(super) fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.watch.as_ref().map(|w| w.as_fd())
    }

    /// `t`, or later if the volumes' next attempt is later.
    pub(super) fn gate_not_before(&self, t: Instant) -> Instant {
        match &self.gate {
            Gate::Waiting { next_try, .. } => t.max(*next_try),
            Gate::Ready(_) => t,
        }
    }

    /// When a refresh or resync is due.
    pub(super) fn next_refresh(&self) -> Option<Instant> {
        match (self.refresh_at, self.resync_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Each volume's host directory, once set up.
    pub(super) fn dirs(&self) -> Result<BTreeMap<String, HostVolume>, VolumeSetupError> {
        match &self.gate {
            Gate::Ready(dirs) => Ok(dirs.clone()),
            Gate::Waiting { .. } => Err(VolumeSetupError::NotReady),
        }
    }

    fn snapshot(&self, namespace: &str, refs: &Refs) -> Result<Snapshot, ObjectError> {
        Snapshot::read(&self.store, namespace, refs)
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.into_iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

/// One inotify instance watching the namespace's directory of each kind the pod reads
/// (made if missing, so that a first object is seen too). Every store write is a rename into
/// the directory, a removal unlinks there.
fn watch_store(
    store: &ObjectStore,
    namespace: &str,
    refs: &Refs,
    claims: bool,
) -> Result<Inotify, VolumeSetupError> {
    let watch_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| VolumeSetupError::Watch { path, source }
    };
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(VolumeSetupError::Inotify)?;
    let mask = AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE;
    let mut dirs = Vec::new();
    if !refs.config_maps.is_empty() {
        dirs.push(store.ensure_dir::<ConfigMap>(namespace));
    }
    if !refs.secrets.is_empty() {
        dirs.push(store.ensure_dir::<Secret>(namespace));
    }
    // A claim applied after its pod is seen at once, not at the next retry.
    if claims {
        dirs.push(store.ensure_dir::<PersistentVolumeClaim>(namespace));
    }
    for dir in dirs {
        let dir = dir?;
        inotify.add_watch(&dir, mask).map_err(watch_error(&dir))?;
    }
    Ok(inotify)
}

impl Supervisor {
    fn node_allocatable(&self) -> NodeAllocatable {
        NodeAllocatable {
            cpu_millis: None,
            memory_bytes: self.host.node_memory,
        }
    }

    /// The objects one container's env reads, as they are now.
    pub(super) fn env_objects(&self, c: &Container) -> Result<Snapshot, ObjectError> {
        self.volumes.snapshot(self.namespace(), &env_refs(c))
    }

    /// True once the volumes are set up; else tries when due. Called when the sandbox is due.
    pub(super) fn volume_gate(&mut self, now: Instant) -> bool {
        let delay = match &self.volumes.gate {
            Gate::Ready(_) => return true,
            Gate::Waiting { next_try, .. } if now < *next_try => return false,
            Gate::Waiting { delay, .. } => *delay,
        };
        match self.set_up_volumes() {
            Some(dirs) => {
                tracing::debug!(volumes = dirs.len(), "volumes set up");
                self.volumes.gate = Gate::Ready(dirs);
                true
            }
            None => {
                self.volumes.gate = Gate::Waiting {
                    next_try: now + delay,
                    delay: (delay * 2).min(RETRY_MAX),
                };
                self.mark_dirty();
                false
            }
        }
    }

    /// Sets up (or refreshes) every volume; each failure is a `FailedMount` event. Returns the
    /// directories when all succeeded.
    fn set_up_volumes(&mut self) -> Option<BTreeMap<String, HostVolume>> {
        let namespace = self.namespace().to_string();
        let objects = match self
            .volumes
            .snapshot(&namespace, &volume::volume_refs(&self.pod))
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the objects the volumes refer to");
                return None;
            }
        };
        let set_up = volume::setup(&PodVolumes {
            paths: &self.paths,
            uid: &self.uid,
            pod: &self.pod,
            objects: &objects,
            node: self.node_allocatable(),
            node_name: &self.host.node_name,
        });
        let failed = !set_up.errors.is_empty();
        for e in set_up.errors {
            tracing::warn!(volume = %e.volume(), error = %e, "volume setup failed");
            if e.is_unschedulable() {
                // A missing or unusable claim keeps a pod from being scheduled at all.
                self.event(
                    events::WARNING,
                    events::REASON_FAILED_SCHEDULING,
                    "",
                    events::failed_scheduling_message(&e.reason()),
                );
                continue;
            }
            self.event(
                events::WARNING,
                events::REASON_FAILED_MOUNT,
                "",
                events::failed_mount_message(e.volume(), &e.reason()),
            );
        }
        (!failed).then_some(set_up.volumes)
    }

    /// The object watch woke the loop: drain it and schedule a refresh.
    pub(super) fn on_objects_changed(&mut self) {
        let Some(watch) = &self.volumes.watch else {
            return;
        };
        let mut changed = false;
        while let Ok(evs) = watch.read_events() {
            if evs.is_empty() {
                break;
            }
            changed = true;
        }
        if changed {
            self.scheduling.retry_now(Instant::now());
        }
        if changed && self.volumes.refresh_at.is_none() {
            self.volumes.refresh_at = Some(Instant::now() + DEBOUNCE);
        }
    }

    /// A refresh or the periodic resync is due: re-project the volumes, or retry them at once
    /// when they wait; containers waiting for an env object retry at once.
    pub(super) fn on_volume_timers(&mut self, now: Instant) {
        if self.volumes.next_refresh().is_none_or(|t| now < t) {
            return;
        }
        self.volumes.refresh_at = None;
        if self.volumes.resync_at.is_some() {
            self.volumes.resync_at = Some(now + RESYNC);
        }
        match &mut self.volumes.gate {
            Gate::Waiting { next_try, .. } => *next_try = now,
            Gate::Ready(_) => {
                // Volumes keep their last content when a refresh fails, as the kubelet's.
                if let Some(dirs) = self.set_up_volumes() {
                    self.volumes.gate = Gate::Ready(dirs);
                }
            }
        }
        for r in self.runs.iter_mut() {
            let waits_for_config = matches!(&r.life, Lifecycle::Waiting { waiting, next_start: Some(_) }
                if waiting.reason == REASON_CREATE_CONTAINER_CONFIG_ERROR);
            if waits_for_config {
                r.life.schedule(Some(now));
            }
        }
    }

    /// pod.json changed (labels, annotations): take its metadata and refresh the volumes.
    pub(super) fn reload_metadata(&mut self, pod: &Pod) {
        self.pod.metadata.labels = pod.metadata.labels.clone();
        self.pod.metadata.annotations = pod.metadata.annotations.clone();
        self.volumes.refresh_at = Some(Instant::now());
    }

    /// The `InvalidEnvironmentVariableNames` warnings of a container about to be created.
    pub(super) fn warn_invalid_env_names(&mut self, c: &Container, objects: &Snapshot) {
        for message in crate::container::env::env_from_warnings(c, objects) {
            self.event(
                events::WARNING,
                events::REASON_INVALID_ENV_NAMES,
                "",
                message,
            );
        }
    }
}
