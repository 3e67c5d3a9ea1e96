//! The per-pod supervisor: one process per pod, detached from the CLI (`peapod __supervise
//! <uid>`). It starts the sandbox and the containers, captures their output into CRI logs,
//! restarts them per restartPolicy with the kubelet's back-off, re-creates the sandbox if it
//! dies, stops the pod on request, and writes status, state and events for the CLI.
//!
//! It is single-threaded on purpose: it forks (sandbox) and clones (containers), which is only
//! safe with one thread, and one poll loop over a signalfd and the containers' pipes is all the
//! concurrency it needs. It must not print: it logs through `tracing` to its log file.

mod containers;
mod dispatch;
mod eviction;
mod hostnet;
mod hostports;
mod pulls;
mod sandbox;
mod scheduling;
mod subpaths;
mod trim;
mod volumes;

pub use pulls::{pull_main, PULL_VERB};

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::cgroup::{CgroupManager, CgroupSupport};
use crate::image::Image;
use crate::logs::CriLogWriter;
use crate::network::NetworkConfig;
use crate::pod::backoff::{PullBackoff, RestartBackoff};
use crate::pod::events;
use crate::pod::model::{ContainerView, PodView};
use crate::pod::record::{
    DeleteRequest, Event, PodState, ProcessRef, DELETE_FILE, EVENTS_FILE, POD_FILE, STATE_FILE,
    STATUS_FILE,
};
use crate::store::{read_json, write_json_volatile, Paths, StoreError};

/// The hidden verb that runs [`main`].
pub const SUPERVISE_VERB: &str = "__supervise";
/// The supervisor's own log, in the pod's runtime directory.
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// After this long without anything to do, the supervisor releases its start-up code pages.
const IDLE_TRIM_AFTER: Duration = Duration::from_secs(2);
/// Sent by `peapod label`/`annotate` after they rewrote pod.json: re-read the metadata the
/// downward API shows.
pub const METADATA_SIGNAL: Signal = Signal::SIGUSR1;
/// How often logs are checked for rotation, as the kubelet does.
const LOG_ROTATION_CHECK: Duration = Duration::from_secs(10);
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const LOG_MAX_FILES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("pod {pod}: {message}")]
    Setup { pod: String, message: String },
}

/// Entry point of `peapod __supervise <uid>`; returns the process exit code.
pub fn main(uid: &str) -> i32 {
    run_main(uid, None)
}

/// Entry point of a supervisor forked by `apply`: `ready` gets one byte once the pod's state
/// file exists, then is closed.
pub fn main_forked(uid: &str, ready: OwnedFd) -> i32 {
    run_main(uid, Some(ready))
}

/// Logging of the supervisor and its pull children: plain lines on stderr (the supervisor's
/// log file), level from `PEAPOD_LOG`, `info` by default.
pub(crate) fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEAPOD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

fn run_main(uid: &str, ready: Option<OwnedFd>) -> i32 {
    init_logging();
    let paths = Paths::from_env();
    match Supervisor::new(paths, uid).and_then(|mut s| {
        s.ready = ready;
        s.run()
    }) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(%uid, error = %e, "supervisor failed");
            1
        }
    }
}

/// A running container instance.
pub(crate) struct Instance {
    pub pid: Pid,
    pub container_id: String,
    pub dir: PathBuf,
    pub cgroup: Option<PathBuf>,
    pub started_at: Timestamp,
    pub started: Instant,
    /// stdout, stderr read ends; None once at EOF.
    pub pipes: [Option<OwnedFd>; 2],
    pub log: CriLogWriter,
    pub termination_log: PathBuf,
    pub stop_signal: Signal,
}

/// One container of the pod across its instances.
pub(crate) struct ContainerRun {
    pub spec: Container,
    pub init: bool,
    pub view: ContainerView,
    pub backoff: RestartBackoff,
    pub next_start: Option<Instant>,
    pub instance: Option<Instance>,
    /// Instances started so far; the next instance's restartCount.
    pub instances: u32,
    /// Killed because the sandbox went away: restart without back-off.
    pub killed_by_sandbox: bool,
    /// A pull for this container's next start has just succeeded (pull policy Always must
    /// not pull again for the same start).
    pub image_pulled: bool,
}

impl ContainerRun {
    pub fn field_path(&self) -> String {
        let list = if self.init {
            "spec.initContainers"
        } else {
            "spec.containers"
        };
        format!("{list}{{{}}}", self.spec.name)
    }
}

/// The sandbox process.
pub(crate) struct SandboxRun {
    pub pid: Pid,
}

/// The state of a requested stop.
pub(crate) struct Stopping {
    pub deadline: Instant,
    pub killed: bool,
}

pub(crate) struct Supervisor {
    pub paths: Paths,
    pub uid: String,
    pub pod: Pod,
    pub state: PodState,
    pub events: Vec<Event>,
    pub status: Option<PodStatus>,
    pub runs: Vec<ContainerRun>,
    pub sandbox: Option<SandboxRun>,
    pub sandbox_backoff: RestartBackoff,
    pub sandbox_next: Option<Instant>,
    /// The sandbox died: containers are being killed before it is re-created.
    pub sandbox_lost: bool,
    pub net: NetworkConfig,
    /// The pod's cgroups; None on a host without any cgroup2 hierarchy, where containers are
    /// refused (see `cgroup_support`).
    pub cgroups: Option<CgroupManager>,
    pub cgroup_support: CgroupSupport,
    pub images: HashMap<String, Image>,
    /// Pull children in flight, one per image reference.
    pub pulls: Vec<pulls::PullJob>,
    /// Per image reference: the pull back-off and when the next pull may start.
    pub pull_backoff: HashMap<String, (PullBackoff, Instant)>,
    /// The pod's image pull secrets as a docker config file, for pull children.
    pub pull_secrets: Option<PathBuf>,
    pub stopping: Option<Stopping>,
    pub start_time: Timestamp,
    pub node_name: String,
    pub node_memory: u64,
    pub host_ip: Option<String>,
    pub init_failed: bool,
    /// The pod was evicted (emptyDir over its sizeLimit), with the kubelet's message.
    pub evicted: Option<String>,
    /// When the emptyDir sizeLimits are measured next.
    pub next_volume_check: Instant,
    /// The pod's volumes: set up before the sandbox, kept up to date while it runs.
    volumes: volumes::VolumeState,
    /// The node refused the pod (forbidden sysctl, AppArmor): nothing is started.
    pub admission: Option<crate::pod::admission::Verdict>,
    /// Unschedulable while another pod holds one of its host ports.
    pub(crate) scheduling: scheduling::Scheduling,
    /// Told (and closed) once the state file exists, when `apply` forked us.
    ready: Option<OwnedFd>,
    /// When something last happened, and whether code pages were released since.
    last_activity: Instant,
    trimmed: bool,
    dirty: bool,
    signals: SignalFd,
    next_rotation: Instant,
}

/// RFC 3339 with second precision, as Kubernetes timestamps are shown.
pub(crate) fn now_string() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Supervisor {
    fn new(paths: Paths, uid: &str) -> Result<Supervisor, SupervisorError> {
        let dir = paths.pod_dir(uid);
        let pod: Pod = read_json(&dir.join(POD_FILE))?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let setup_err = |message: String| SupervisorError::Setup {
            pod: format!("{namespace}/{name}"),
            message,
        };

        // Signals arrive through a signalfd; children get a clean mask (the runtime and std
        // reset it before exec).
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            METADATA_SIGNAL,
        ] {
            mask.add(s);
        }
        mask.thread_block()
            .map_err(|e| setup_err(format!("block signals: {e}")))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| setup_err(format!("signalfd: {e}")))?;

        let net = NetworkConfig::load(&paths).map_err(|e| setup_err(e.to_string()))?;
        let cgroup_support =
            crate::cgroup::detect(std::path::Path::new(crate::cgroup::CGROUP_ROOT));
        match &cgroup_support {
            CgroupSupport::V2 { .. } => {}
            CgroupSupport::DevicesOnly { root, reason } => tracing::warn!(
                %reason, root = %root.display(),
                "no cgroup v2 controllers: pod cgroups carry only the device allowlist"
            ),
            CgroupSupport::Unavailable { reason } => {
                tracing::error!(%reason, "no cgroup2 hierarchy: containers will not run")
            }
        }
        let cgroups = cgroup_support.manager();

        let spec = pod.spec.clone().unwrap_or_default();
        let mut runs = Vec::new();
        for c in spec.init_containers.unwrap_or_default() {
            runs.push(ContainerRun::new(c, true));
        }
        for c in spec.containers {
            runs.push(ContainerRun::new(c, false));
        }
        let state = PodState {
            uid: uid.to_string(),
            namespace,
            name,
            supervisor: ProcessRef::of(std::process::id() as i32),
            ..Default::default()
        };
        let events = read_json(&dir.join(EVENTS_FILE)).unwrap_or_default();
        let volumes = volumes::VolumeState::new(&paths, &pod);
        let admission = crate::pod::admission::admit(&pod);
        Ok(Supervisor {
            paths,
            uid: uid.to_string(),
            pod,
            state,
            events,
            status: None,
            runs,
            sandbox: None,
            sandbox_backoff: RestartBackoff::default(),
            sandbox_next: Some(Instant::now()),
            sandbox_lost: false,
            net,
            cgroups,
            cgroup_support,
            images: HashMap::new(),
            pulls: Vec::new(),
            pull_backoff: HashMap::new(),
            pull_secrets: None,
            stopping: None,
            start_time: Timestamp::now(),
            node_name: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            node_memory: crate::procfs::mem_total_bytes(),
            host_ip: None,
            init_failed: false,
            evicted: None,
            next_volume_check: Instant::now() + eviction::VOLUME_CHECK_INTERVAL,
            volumes,
            admission,
            scheduling: scheduling::Scheduling::default(),
            ready: None,
            last_activity: Instant::now(),
            trimmed: false,
            dirty: true,
            signals,
            next_rotation: Instant::now() + LOG_ROTATION_CHECK,
        })
    }

    pub fn pod_name(&self) -> &str {
        &self.state.name
    }

    pub fn namespace(&self) -> &str {
        &self.state.namespace
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn event(&mut self, type_: &str, reason: &str, field_path: &str, message: String) {
        tracing::info!(%reason, %message, "event");
        events::record(
            &mut self.events,
            type_,
            reason,
            field_path,
            message,
            &now_string(),
        );
        self.dirty = true;
    }

    /// Records the state file now: called before each host resource is created.
    pub fn save_state(&self) -> Result<(), StoreError> {
        write_json_volatile(&self.paths.pod_dir(&self.uid).join(STATE_FILE), &self.state)
    }

    fn write_status(&mut self) -> Result<(), StoreError> {
        let view = PodView {
            init: self
                .runs
                .iter()
                .filter(|r| r.init)
                .map(|r| r.view.clone())
                .collect(),
            app: self
                .runs
                .iter()
                .filter(|r| !r.init)
                .map(|r| r.view.clone())
                .collect(),
            pod_ip: self.state.sandbox.ip,
            host_ip: self.host_ip.clone(),
            start_time: Some(self.start_time),
            qos_class: crate::manifest::resources::qos_class(&self.pod)
                .as_str()
                .to_string(),
            sandbox_ready: self.sandbox.is_some() && !self.sandbox_lost,
            init_failed: self.init_failed,
            evicted: self.evicted.clone(),
        };
        let mut status =
            crate::pod::model::pod_status(&view, self.status.as_ref(), Timestamp::now());
        if let Some(verdict) = &self.admission {
            verdict.apply(&mut status);
        }
        self.scheduling.apply(&mut status);
        let dir = self.paths.pod_dir(&self.uid);
        // State first (it is what teardown needs), then what readers wait on.
        self.save_state()?;
        write_json_volatile(&dir.join(STATUS_FILE), &status)?;
        write_json_volatile(&dir.join(EVENTS_FILE), &self.events)?;
        self.status = Some(status);
        self.dirty = false;
        Ok(())
    }

    fn run(&mut self) -> Result<(), SupervisorError> {
        tracing::debug!("supervisor started");
        self.save_state()?;
        if let Some(ready) = self.ready.take() {
            let _ = nix::unistd::write(&ready, b"1");
        }
        if self.schedule() {
            self.on_scheduled();
        }
        loop {
            self.on_timers();
            if self.finished() {
                break;
            }
            // A full or failing disk must not end the supervision of a running pod: the files
            // stay dirty and are written at the next wake.
            if self.dirty {
                if let Err(e) = self.write_status() {
                    tracing::error!(error = %e, "cannot write the pod's status; retrying");
                }
            }
            self.wait_and_dispatch();
        }
        self.finish()
    }

    /// Scheduled on the node: the Scheduled event, then the kubelet's admission.
    fn on_scheduled(&mut self) {
        let node = self.node_name.clone();
        self.event(
            events::NORMAL,
            events::REASON_SCHEDULED,
            "",
            format!(
                "Successfully assigned {}/{} to {node}",
                self.namespace(),
                self.pod_name()
            ),
        );
        if let Some(verdict) = self.admission.clone() {
            tracing::warn!(
                reason = verdict.reason(),
                message = verdict.message(),
                "pod not admitted"
            );
            self.event(
                events::WARNING,
                verdict.reason(),
                "",
                verdict.message().to_string(),
            );
            self.sandbox_next = None;
        }
    }

    /// Acts on what is due: sandbox (re)creation, container starts, the stop deadline, log
    /// rotation.
    fn on_timers(&mut self) {
        let now = Instant::now();
        if let Some(stop) = &self.stopping {
            if !stop.killed && now >= stop.deadline {
                self.kill_all_containers();
            }
            if !self.any_running() {
                self.stop_sandbox();
            }
            return;
        }
        self.retry_scheduling(now);
        self.on_volume_timers(now);
        // Volumes first: the sandbox (and its IP) is made only once they are set up.
        if self.sandbox.is_none()
            && !self.sandbox_lost
            && self.sandbox_next.is_some_and(|t| now >= t)
            && self.volume_gate(now)
        {
            self.start_sandbox();
        }
        if self.sandbox.is_some() && !self.sandbox_lost && self.evicted.is_none() {
            self.start_due_containers(now);
        }
        self.check_volume_limits(now);
        if now >= self.next_rotation {
            self.next_rotation = now + LOG_ROTATION_CHECK;
            for r in self.runs.iter_mut() {
                if let Some(i) = r.instance.as_mut() {
                    if let Err(e) = i.log.rotate_if_needed(LOG_MAX_BYTES, LOG_MAX_FILES) {
                        tracing::warn!(container = %r.spec.name, error = %e, "log rotation failed");
                    }
                }
            }
        }
    }

    fn any_running(&self) -> bool {
        self.runs.iter().any(|r| r.instance.is_some())
    }

    /// Done when a stop was requested and everything is gone.
    fn finished(&self) -> bool {
        self.stopping.is_some()
            && !self.any_running()
            && self.sandbox.is_none()
            && self.pulls.is_empty()
    }

    /// The next moment something is due, for the poll timeout.
    fn next_deadline(&self) -> Instant {
        let mut next = self.next_rotation;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        if let Some(s) = &self.stopping {
            if !s.killed {
                consider(Some(s.deadline));
            }
            // While stopping, poll briskly: processes may exit without a SIGCHLD of ours
            // (the sandbox is killed by us and reaped below).
            consider(Some(Instant::now() + Duration::from_millis(100)));
        } else {
            if self.sandbox.is_none() && !self.sandbox_lost {
                consider(self.sandbox_next.map(|t| self.volumes.gate_not_before(t)));
            }
            consider(self.volumes.next_refresh());
            consider(self.scheduling.retry_at());
            for r in &self.runs {
                consider(r.next_start);
            }
            if self.watches_volume_limits() {
                consider(Some(self.next_volume_check));
            }
        }
        next
    }

    /// A stop was requested (`peapod delete` wrote delete.json and sent SIGTERM).
    fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let req: Option<DeleteRequest> =
            read_json(&self.paths.pod_dir(&self.uid).join(DELETE_FILE)).ok();
        let grace = req.map(|r| r.grace_period_seconds).unwrap_or_else(|| {
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
        });
        let grace = Duration::from_secs(grace.max(0) as u64);
        tracing::info!(grace_secs = grace.as_secs(), "stopping pod");
        for r in self.runs.iter_mut() {
            r.next_start = None;
        }
        self.stopping = Some(Stopping {
            deadline: Instant::now() + grace,
            killed: false,
        });
        self.kill_pulls();
        self.stop_containers_gracefully();
        if grace.is_zero() {
            self.kill_all_containers();
        }
    }

    /// Releases everything and removes the pod's files.
    fn finish(&mut self) -> Result<(), SupervisorError> {
        let pod = format!("{}/{}", self.namespace(), self.pod_name());
        crate::pod::teardown::release_all(&self.paths, &self.state).map_err(|e| {
            SupervisorError::Setup {
                pod,
                message: e.to_string(),
            }
        })
    }
}

impl ContainerRun {
    fn new(spec: Container, init: bool) -> Self {
        let waiting = if init {
            crate::pod::model::REASON_POD_INITIALIZING
        } else {
            crate::pod::model::REASON_CONTAINER_CREATING
        };
        let view = ContainerView::new(&spec.name, spec.image.as_deref().unwrap_or(""), waiting);
        ContainerRun {
            spec,
            init,
            view,
            backoff: RestartBackoff::default(),
            next_start: None,
            instance: None,
            instances: 0,
            killed_by_sandbox: false,
            image_pulled: false,
        }
    }
}
