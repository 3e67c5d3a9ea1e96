//! The per-pod supervisor: one process per pod, detached from the CLI (`peapod __supervise
//! <uid>`). It starts the sandbox and the containers, captures their output into CRI logs,
//! restarts them per restartPolicy with the kubelet's back-off, re-creates the sandbox if it
//! dies, stops the pod on request or when it is done, and writes status, state and events for
//! the CLI. A pod that finished releases what it holds on the host and its supervisor exits.
//!
//! The decisions (what starts, restarts, stops, when the pod is done) are pure functions in
//! [`crate::pod::machine`]; this module applies them: processes, files, events. Its parts own
//! their fields: `run` (one container), `start`/`create` (making instances), `exit`, `stop`
//! (termination and the pod's end), `sandbox`, `pulls`, `volumes`, `eviction`, `dispatch` (the
//! poll loop), `hooks` (the call-outs to the probe and hook module), `update` (pod updates).
//!
//! It is single-threaded on purpose: it forks (sandbox) and clones (containers), which is only
//! safe with one thread, and one poll loop over a signalfd and the containers' pipes is all the
//! concurrency it needs. It must not print: it logs through `tracing` to its log file.

mod adopt;
mod attach;
mod control;
mod create;
mod dispatch;
mod eviction;
mod exit;
mod hooks;
mod hostnet;
mod hostports;
mod pulls;
mod reboot;
mod restart_all;
mod run;
mod sandbox;
mod scheduling;
mod start;
mod stop;
mod subpaths;
mod trim;
mod update;
mod volumes;

pub(crate) use dispatch::IDLE_TRIM_AFTER;
pub use pulls::{pull_main, PULL_VERB};
pub(crate) use trim::{release_for_good, release_idle_memory};

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use nix::sys::signal::Signal;

use crate::cgroup::{CgroupManager, CgroupSupport};
use crate::network::NetworkConfig;
use crate::pod::events;
use crate::pod::keeper::{Handoff, Link};
use crate::pod::machine::{ContainerPolicy, Kind, RestartPolicy};
use crate::pod::model::{PodFailure, PodView};
use crate::pod::record::{
    Event, PodState, ProcessRef, EVENTS_FILE, POD_FILE, STATE_FILE, STATUS_FILE,
};
use crate::store::{read_json, write_json_volatile, Paths, StoreError};

use run::ContainerRun;
use stop::PodRun;

/// The hidden verb that runs [`main`].
pub const SUPERVISE_VERB: &str = "__supervise";
/// The supervisor's own log, in the pod's runtime directory.
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// Sent by `peapod label`/`annotate`/`apply` after they rewrote pod.json: re-read the
/// metadata the downward API shows and the spec's updatable fields (`update`).
pub const METADATA_SIGNAL: Signal = Signal::SIGUSR1;
pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const LOG_MAX_FILES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("pod {pod}: {what}: {source}")]
    Signals {
        pod: String,
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("pod {pod}: {source}")]
    Network {
        pod: String,
        #[source]
        source: crate::network::NetworkError,
    },
    #[error(transparent)]
    Teardown(#[from] crate::pod::teardown::TeardownError),
}

/// Entry point of `peapod __supervise <uid>`; returns the process exit code. The process
/// becomes the pod's keeper, which forks the supervisor (`pod::keeper`).
pub fn main(uid: &str) -> i32 {
    crate::pod::keeper::run(uid, None)
}

/// Entry point of a supervisor forked by `apply`: `ready` gets one byte once the pod's state
/// file exists, then is closed. The process becomes the pod's keeper first.
pub fn main_forked(uid: &str, ready: OwnedFd) -> i32 {
    crate::pod::keeper::run(uid, Some(ready))
}

/// Logging of the supervisor and its pull children: plain lines on stderr (the supervisor's
/// log file), level from `PEAPOD_LOG`, `info` by default. A no-op where it is set already (a
/// supervisor forked by its keeper inherits the keeper's): building the filter costs ~0.2 ms
/// of a pod's start.
pub(crate) fn init_logging() {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEAPOD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// Runs the supervisor of pod `uid` to its end; `keeper`: the socket to the keeper above it;
/// `handoff`: a supervisor started by the keeper after the previous one was killed, to adopt
/// the pod (`adopt`). Returns the process exit code.
pub(crate) fn run_main(
    uid: &str,
    ready: Option<OwnedFd>,
    keeper: Option<Link>,
    handoff: Option<Handoff>,
) -> i32 {
    crate::starttrace::mark("sup main");
    init_logging();
    let paths = Paths::from_env();
    // On the heap: the struct is several kB, and each move through these closures would
    // leave a copy in a frame below the idle loop's, dirty stack pages held for the pod's life.
    let supervisor = Supervisor::new(paths, uid, ready, keeper)
        .map(Box::new)
        .map(|mut s| match handoff {
            None => Some(s),
            Some(h) => s.adopt(h).then_some(s),
        });
    match supervisor.and_then(|s| s.map_or(Ok(()), |mut s| s.run())) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(%uid, error = %e, "supervisor failed");
            1
        }
    }
}

/// The host the pod runs on: its network, cgroups and node facts.
pub(crate) struct Host {
    pub net: NetworkConfig,
    /// The pod's cgroups; None on a host without any cgroup2 hierarchy, where containers are
    /// refused (see `cgroup_support`).
    pub cgroups: Option<CgroupManager>,
    pub cgroup_support: CgroupSupport,
    pub node_name: String,
    pub node_memory: u64,
}

impl Host {
    fn detect(paths: &Paths, pod: &str) -> Result<Host, SupervisorError> {
        let host = Host::learn(paths).map_err(|source| SupervisorError::Network {
            pod: pod.to_string(),
            source,
        })?;
        host.report();
        Ok(host)
    }

    /// Says in the pod's log what this host lacks.
    fn report(&self) {
        match &self.cgroup_support {
            CgroupSupport::V2 { .. } => {}
            CgroupSupport::DevicesOnly { root, reason } => tracing::warn!(
                %reason, root = %root.display(),
                "no cgroup v2 controllers: pod cgroups carry only the device allowlist"
            ),
            CgroupSupport::Unavailable { reason } => {
                tracing::error!(%reason, "no cgroup2 hierarchy: containers will not run")
            }
        }
    }

    /// The facts, without a word in the log.
    fn learn(paths: &Paths) -> Result<Host, crate::network::NetworkError> {
        let net = NetworkConfig::load(paths)?;
        let cgroup_support =
            crate::cgroup::detect(std::path::Path::new(crate::cgroup::CGROUP_ROOT));
        Ok(Host {
            net,
            cgroups: cgroup_support.manager(),
            cgroup_support,
            node_name: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            node_memory: crate::procfs::mem_total_bytes(),
        })
    }
}

/// What a supervisor learns first thing about its host, learnt ahead by a keeper forked before
/// its pod was asked for (`spawner`'s waiting keeper), while the CLI still decodes the pod.
struct Prepared {
    host: Host,
    boot_id: String,
}

/// The facts [`prepare`] learnt, for the first supervisor forked after it (only: a supervisor
/// forked later, to adopt the pod, learns them afresh).
static PREPARED: std::sync::Mutex<Option<Prepared>> = std::sync::Mutex::new(None);

/// Done by a keeper that waits for its pod (stdout and stderr not yet the pod's log): the
/// logging set up, the host's facts learnt for its supervisor, the usual seccomp program
/// compiled for its first containers' inits (`seccomp::compile_ahead`) and the usual device
/// program loaded for their cgroups (`cgroup::devices::load_ahead`). What the host lacks (a
/// hybrid host's cgroup controllers) is logged by the supervisor that takes the facts, in its
/// pod's log.
pub(crate) fn prepare() {
    init_logging();
    let Ok(host) = Host::learn(&Paths::from_env()) else {
        return;
    };
    crate::container::runtime::seccomp::compile_ahead();
    if host.cgroups.is_some() {
        if let Ok(list) = crate::container::devices::device_cgroup_rules(false) {
            crate::cgroup::devices::load_ahead(&list);
        }
    }
    crate::sandbox::pause::make_ahead();
    if let Ok(mut slot) = PREPARED.lock() {
        let boot_id = crate::procfs::boot_id();
        *slot = Some(Prepared { host, boot_id });
    }
}

/// Drops what [`prepare`] learnt: in the keeper once its first supervisor is forked.
pub(crate) fn forget_prepared() {
    if let Ok(mut slot) = PREPARED.lock() {
        slot.take();
    }
    crate::container::runtime::seccomp::forget_ahead();
    crate::cgroup::devices::forget_ahead();
    crate::sandbox::pause::forget_ahead();
}

pub(crate) struct Supervisor {
    pub paths: Paths,
    pub uid: String,
    pub pod: Pod,
    pub policy: RestartPolicy,
    /// Every host resource the pod holds (state.json), and what the CLI reads besides.
    pub state: PodState,
    pub events: Vec<Event>,
    pub status: Option<PodStatus>,
    dirty: bool,
    /// What this process last wrote to state.json and events.json.
    written_state: Written,
    written_events: Written,
    pub runs: Vec<ContainerRun>,
    /// Where the pod as a whole stands (admitted, running, terminating, finished).
    pub pod_run: PodRun,
    /// The pod failed for a reason of its own (evicted, past its deadline).
    pub failure: Option<PodFailure>,
    pub sandbox: sandbox::Sandbox,
    pub host: Host,
    pub images: pulls::Images,
    /// The pod's volumes: set up before the sandbox, kept up to date while it runs.
    volumes: volumes::VolumeState,
    eviction: eviction::Watch,
    /// The node refused the pod (forbidden sysctl, AppArmor): nothing is started.
    pub admission: Option<crate::pod::admission::Verdict>,
    /// Unschedulable while another pod holds one of its host ports or a claim is not usable.
    pub(crate) scheduling: scheduling::Scheduling,
    /// When the pod started on this node (status.startTime; activeDeadlineSeconds counts
    /// from it).
    pub start_time: Timestamp,
    pub started: Instant,
    hooks: hooks::Hooks,
    /// Cgroups of ended instances still to be removed.
    leftovers: create::Leftovers,
    idle: dispatch::Idle,
    /// The pod's attach socket and its clients.
    attach: attach::Attach,
    /// The pod's processes were lost to a reboot (`reboot`): its sandbox is re-created once
    /// it is admitted again.
    after_reboot: bool,
    /// The socket to the pod's keeper (`pod::keeper`): it holds each instance's descriptors
    /// and relays the exits of the processes it adopted; None without a keeper (or once it
    /// is gone: a later death of this supervisor leaves the pod `Unknown`).
    pub keeper: Option<Link>,
    /// This supervisor adopted a running pod (`adopt`): no Scheduled event, no new sandbox.
    adopted: bool,
    /// The pod is driven through the CRI (`pod::control`): the kubelet starts, stops and
    /// removes its containers; nothing starts, restarts or ends the pod on its own.
    pub cri: bool,
    /// The control socket the CRI server drives such a pod through.
    control: control::Control,
    /// Per container: the CRI's container ID and log path, for its instance.
    pub cri_instances: std::collections::HashMap<String, (String, std::path::PathBuf)>,
}

/// The bytes this process last wrote to one of the pod's volatile files: writing the same bytes
/// again is skipped (a status write rewrote state.json and events.json each time, unchanged
/// since the start of a container had recorded them a moment before: about 0.3 ms of a pod's
/// start). Sound because the supervisor is the files' only writer; a failed write is tried
/// again in full.
#[derive(Default)]
struct Written(std::cell::RefCell<Vec<u8>>);

impl Written {
    fn write<T: serde::Serialize>(
        &self,
        path: &std::path::Path,
        value: &T,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_vec(value).map_err(|source| StoreError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if *self.0.borrow() == data {
            return Ok(());
        }
        crate::store::write_volatile(path, &data)?;
        *self.0.borrow_mut() = data;
        Ok(())
    }
}

/// RFC 3339 with second precision, as Kubernetes timestamps are shown.
pub(crate) fn now_string() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Supervisor {
    fn new(
        paths: Paths,
        uid: &str,
        ready: Option<OwnedFd>,
        keeper: Option<Link>,
    ) -> Result<Supervisor, SupervisorError> {
        let dir = paths.pod_dir(uid);
        let pod: Pod = read_json(&dir.join(POD_FILE))?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pod_ref = format!("{namespace}/{name}");
        let idle =
            dispatch::Idle::new(ready).map_err(|(what, source)| SupervisorError::Signals {
                pod: pod_ref.clone(),
                what,
                source,
            })?;
        let prepared = PREPARED.lock().ok().and_then(|mut slot| slot.take());
        let (host, boot_id) = match prepared {
            Some(p) => {
                p.host.report();
                (p.host, p.boot_id)
            }
            None => (Host::detect(&paths, &pod_ref)?, crate::procfs::boot_id()),
        };

        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec.init_containers.unwrap_or_default();
        let has_init = !init.is_empty();
        let mut runs = Vec::new();
        for c in init {
            let kind = Kind::of_init(&c);
            let policy = ContainerPolicy::of(&pod, &c);
            runs.push(ContainerRun::new(c, kind, has_init, policy));
        }
        for c in spec.containers {
            let policy = ContainerPolicy::of(&pod, &c);
            runs.push(ContainerRun::new(c, Kind::App, has_init, policy));
        }
        let hooks = hooks::Hooks::new(hooks::shortest_period(runs.iter().map(|r| &r.spec)));
        let state = PodState {
            uid: uid.to_string(),
            namespace,
            name,
            supervisor: ProcessRef::of(std::process::id() as i32),
            keeper: keeper
                .as_ref()
                .and_then(|_| ProcessRef::of(nix::unistd::getppid().as_raw())),
            boot_id: Some(boot_id),
            ..Default::default()
        };
        let events = read_json(&dir.join(EVENTS_FILE)).unwrap_or_default();
        let volumes = volumes::VolumeState::new(&paths, &pod);
        let admission = crate::pod::admission::admit(&pod);
        let attach =
            attach::Attach::open(&paths.pod_run_dir(uid).join(crate::pod::attach::SOCKET_FILE));
        let cri = crate::pod::control::is_cri(&pod);
        let control = if cri {
            control::Control::open(
                &paths
                    .pod_run_dir(uid)
                    .join(crate::pod::control::SOCKET_FILE),
            )
        } else {
            control::Control::none()
        };
        let mut supervisor = Supervisor {
            attach,
            policy: RestartPolicy::of(&pod),
            uid: uid.to_string(),
            state,
            events,
            status: None,
            dirty: true,
            written_state: Written::default(),
            written_events: Written::default(),
            runs,
            pod_run: PodRun::Active { progress: 0 },
            failure: None,
            sandbox: sandbox::Sandbox::new(),
            host,
            images: pulls::Images::default(),
            volumes,
            eviction: eviction::Watch::new(),
            admission,
            scheduling: scheduling::Scheduling::default(),
            start_time: Timestamp::now(),
            started: Instant::now(),
            hooks,
            leftovers: create::Leftovers::default(),
            idle,
            after_reboot: false,
            keeper,
            adopted: false,
            cri,
            control,
            cri_instances: Default::default(),
            paths,
            pod,
        };
        supervisor.after_reboot = supervisor.restore_after_reboot();
        Ok(supervisor)
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

    /// Records the state file now: called before each host resource is created. Skipped when
    /// the file already holds this state (written last by this supervisor, its only writer).
    pub fn save_state(&self) -> Result<(), StoreError> {
        self.written_state
            .write(&self.paths.pod_dir(&self.uid).join(STATE_FILE), &self.state)
    }

    /// Records the state file after a change that was already made (a process started or
    /// ended). A failure is logged: the next status write tries again, and `delete` falls back
    /// on the pod cgroup to find what the file missed.
    pub fn save_state_or_log(&self) {
        if let Err(e) = self.save_state() {
            tracing::error!(error = %e, "cannot record the pod's state");
        }
    }

    fn view(&self) -> PodView {
        let (init, app) = self
            .runs
            .iter()
            .filter(|r| !r.removed)
            .partition::<Vec<_>, _>(|r| r.kind.is_init());
        PodView {
            init: init.iter().map(|r| r.view()).collect(),
            app: app.iter().map(|r| r.view()).collect(),
            policy: self.policy,
            pod_ip: self.sandbox.pod_ip,
            host_ip: self.sandbox.host_ip.clone(),
            start_time: Some(self.start_time),
            qos_class: crate::manifest::resources::qos_class(&self.pod)
                .as_str()
                .to_string(),
            sandbox_ready: self.sandbox.is_ready(),
            failure: self.failure.clone(),
            restarting: self
                .runs
                .iter()
                .any(|r| r.policy.may_restart_all())
                .then_some(matches!(self.pod_run, PodRun::Restarting { .. })),
        }
    }

    fn write_status(&mut self) -> Result<(), StoreError> {
        let mut status =
            crate::pod::model::pod_status(&self.view(), self.status.as_ref(), Timestamp::now());
        if let Some(verdict) = &self.admission {
            verdict.apply(&mut status);
        }
        self.scheduling.apply(&mut status);
        let dir = self.paths.pod_dir(&self.uid);
        crate::starttrace::mark("sup status computed");
        // State first (it is what teardown needs), then what readers wait on: the events
        // before the status, so that a reader who sees a status (a phase, a reason) finds the
        // events recorded with it (`describe` right after a wait on the phase).
        self.save_state()?;
        crate::starttrace::mark("sup state written");
        self.written_events
            .write(&dir.join(EVENTS_FILE), &self.events)?;
        write_json_volatile(&dir.join(STATUS_FILE), &status)?;
        crate::starttrace::mark("sup status written");
        self.status = Some(status);
        self.dirty = false;
        Ok(())
    }

    /// [`Self::write_status`]; a failure is logged and the files stay dirty, written again
    /// at the next wake.
    pub(super) fn write_status_or_log(&mut self) {
        if let Err(e) = self.write_status() {
            tracing::error!(error = %e, "cannot write the pod's status; retrying");
        }
    }

    fn run(&mut self) -> Result<(), SupervisorError> {
        tracing::debug!("supervisor started");
        crate::starttrace::mark("sup new");
        self.name_own_pod_cgroup();
        self.name_first_instances();
        self.save_state()?;
        self.idle.tell_ready();
        crate::starttrace::mark("sup ready told");
        if !self.adopted && self.schedule() {
            let after_reboot = self.after_reboot;
            self.on_scheduled();
            // The status on record is still the lost boot's (its containers running): replaced
            // before the sandbox is made again, or readers would take it for the pod's until
            // the first start is done.
            if after_reboot {
                self.write_status_or_log();
            }
        }
        loop {
            self.on_timers();
            if self.pod_run.is_over() {
                break;
            }
            // A full or failing disk must not end the supervision of a running pod: the files
            // stay dirty and are written at the next wake.
            if self.dirty {
                self.write_status_or_log();
            }
            self.wait_and_dispatch();
        }
        self.finish()
    }

    /// Scheduled on the node: the Scheduled event, then the kubelet's admission. The pod's
    /// start time (status.startTime, which activeDeadlineSeconds counts from) is now.
    /// A pod recovered after a reboot keeps its start time and was scheduled long ago.
    fn on_scheduled(&mut self) {
        let after_reboot = std::mem::take(&mut self.after_reboot);
        if !after_reboot {
            self.start_time = Timestamp::now();
            self.started = Instant::now();
            let node = self.host.node_name.clone();
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
        }
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
            self.sandbox.cancel_retry();
            self.pod_run = match verdict {
                // Failed for good: nothing to run, the pod is finished at once.
                crate::pod::admission::Verdict::Rejected { .. } => PodRun::Terminating {
                    end: stop::End::Finish,
                },
                crate::pod::admission::Verdict::Blocked { .. } => PodRun::Blocked,
            };
        }
        if after_reboot {
            self.sandbox_lost_at_boot();
        }
    }

    /// Acts on what is due: the pod's deadline, sandbox (re)creation, container starts and
    /// stops, volume refreshes and limits, log rotation.
    fn on_timers(&mut self) {
        let now = Instant::now();
        self.collect_runs(now);
        match self.pod_run {
            PodRun::Blocked | PodRun::Over { .. } => {}
            PodRun::Terminating { .. } => self.drive_termination(now),
            PodRun::Restarting { .. } => {
                self.check_deadline(now);
                self.drive_restart_all(now);
            }
            PodRun::Active { .. } => {
                self.retry_scheduling(now);
                self.on_volume_timers(now);
                self.check_deadline(now);
                self.sandbox_timers(now);
                // Through the CRI, containers start when the kubelet says (`control`).
                if self.sandbox.is_ready() && !self.cri {
                    self.start_due_containers(now);
                }
                self.drive_stops(now);
                self.start_due_probes(now);
                self.check_volume_limits(now);
                self.retry_leftovers(now);
            }
        }
        self.rotate_logs(now);
    }

    /// The next moment something is due, for the poll timeout.
    fn next_deadline(&self) -> Instant {
        let mut next = self.idle.next_rotation;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        for r in &self.runs {
            if let crate::pod::machine::Lifecycle::Stopping { stop, .. } = &r.life {
                consider(stop.next_due());
            }
        }
        consider(self.hooks.next_deadline());
        match self.pod_run {
            PodRun::Terminating { .. } => {
                // While stopping, poll briskly: processes may exit without a SIGCHLD of ours
                // (the sandbox is killed by us and reaped below).
                consider(Some(Instant::now() + Duration::from_millis(100)));
            }
            PodRun::Restarting { at } => {
                consider(Some(Instant::now() + Duration::from_millis(100)));
                consider(Some(at));
                consider(self.deadline_at());
            }
            PodRun::Active { .. } => {
                consider(
                    self.sandbox
                        .next_try()
                        .map(|t| self.volumes.gate_not_before(t)),
                );
                consider(self.volumes.next_refresh());
                consider(self.scheduling.retry_at());
                for r in &self.runs {
                    consider(r.life.next_start());
                }
                if self.watches_volume_limits() {
                    consider(Some(self.eviction.next_check));
                }
                consider(self.deadline_at());
                consider(self.next_probe_due());
                consider(self.leftovers.next_try());
            }
            PodRun::Blocked | PodRun::Over { .. } => {}
        }
        next
    }

    /// Logs are checked for rotation every 10 s, as the kubelet does.
    fn rotate_logs(&mut self, now: Instant) {
        if now < self.idle.next_rotation {
            return;
        }
        self.idle.next_rotation = now + dispatch::LOG_ROTATION_CHECK;
        for r in self.runs.iter_mut() {
            let name = &r.spec.name;
            if let Some(i) = r.life.instance_mut() {
                if let Err(e) = i.log.rotate_if_needed(LOG_MAX_BYTES, LOG_MAX_FILES) {
                    tracing::warn!(container = %name, error = %e, "log rotation failed");
                }
            }
        }
    }
}
