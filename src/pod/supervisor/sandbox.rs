//! The supervisor's side of the sandbox: the pod cgroup, the shared files and /dev/shm, the
//! pause process and its network; what happens when it dies (the kubelet's SandboxChanged:
//! every container stopped, then a new sandbox if the pod is to run again).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::stop::{End, PodRun};
use super::Supervisor;
use crate::cgroup::{CgroupError, CgroupManager};
use crate::manifest::ManifestError;
use crate::network::{self, NetworkError};
use crate::pod::backoff::RestartBackoff;
use crate::pod::events;
use crate::pod::machine::order::recreate_sandbox;
use crate::pod::machine::StopCause;
use crate::pod::record::ProcessRef;
use crate::sandbox::files::{self, FilesError};
use crate::sandbox::pause;
use crate::store::{write_volatile, StoreError};

/// Size of the pod-wide /dev/shm, as the kubelet's default.
pub const SHM_SIZE_BYTES: u64 = 64 * 1024 * 1024;
pub const HOSTS_FILE: &str = "hosts";
pub const RESOLV_FILE: &str = "resolv.conf";
pub const HOSTNAME_FILE: &str = "hostname";
pub const SHM_DIR: &str = "shm";
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// A failed sandbox is tried again after its back-off, but not sooner than this.
const MIN_RETRY: Duration = Duration::from_secs(1);
/// The event when the sandbox died [kuberuntime_manager.go SyncPod].
const SANDBOX_CHANGED_MESSAGE: &str = "Pod sandbox changed, it will be killed and re-created.";

/// Why the sandbox could not be made (the `FailedCreatePodSandBox` event says it).
#[derive(Debug, thiserror::Error)]
pub(super) enum SandboxError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Resources(#[from] ManifestError),
    #[error("mount /dev/shm tmpfs at {}: {source}", path.display())]
    Shm {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("start sandbox process: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("sandbox process: {0}")]
    Pause(#[source] std::io::Error),
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The pause process's failure to wire the network: a [`NetworkError`]'s text.
    #[error("{0}")]
    Wiring(String),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    HostPorts(#[from] crate::network::hostport::HostPortError),
    #[error("the sandbox is gone")]
    Gone,
}

/// Where the sandbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not made (yet, or again): the next attempt, None when none is to be made.
    Pending {
        next_try: Option<Instant>,
    },
    Ready {
        pid: Pid,
    },
    /// It died: its containers are being stopped before anything else happens.
    Lost,
    /// Being killed at the pod's end.
    Stopping {
        pid: Pid,
    },
    /// Gone for good.
    Released,
}

/// The pod's sandbox: its state, its creation back-off, and the addresses the status shows.
pub(crate) struct Sandbox {
    state: State,
    backoff: RestartBackoff,
    /// The pod IP, kept for the status after a finished pod gave it back (as the API keeps it).
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Option<String>,
    /// A container was created in some sandbox: a Never pod is then not run again in a new one.
    pub ran: bool,
    /// The pause process of a sandbox being made, whose namespaces the kernel may still be
    /// building (the first containers are prepared and cloned meanwhile, their inits waiting
    /// for them; see `await_namespaces`).
    building: Option<pause::Pause>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            state: State::Pending {
                next_try: Some(Instant::now()),
            },
            backoff: RestartBackoff::default(),
            pod_ip: None,
            host_ip: None,
            ran: false,
            building: None,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    pub fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Ready { pid } => Some(pid),
            _ => None,
        }
    }

    /// While the pause process may still be making its namespaces: what hangs up once they
    /// exist ([`pause::Pause::ready_fd`]).
    pub fn namespaces_pending(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.building.as_ref().map(pause::Pause::ready_fd)
    }

    /// When the next attempt to make it is due.
    pub fn next_try(&self) -> Option<Instant> {
        match self.state {
            State::Pending { next_try } => next_try,
            _ => None,
        }
    }

    /// The sandbox is to be made at `at` (the pod was scheduled after all), unless it exists.
    pub fn try_at(&mut self, at: Instant) {
        if let State::Pending { .. } = self.state {
            self.state = State::Pending { next_try: Some(at) };
        }
    }

    /// The sandbox a killed supervisor made, taken over as it is (`adopt`).
    pub fn adopt(&mut self, pid: Pid, pod_ip: Option<Ipv4Addr>, host_ip: Option<String>) {
        self.state = State::Ready { pid };
        self.pod_ip = pod_ip;
        self.host_ip = host_ip;
        self.ran = true;
    }

    /// No new sandbox is to be made (the pod ends, or it is not scheduled yet).
    pub fn cancel_retry(&mut self) {
        if let State::Pending { .. } = self.state {
            self.state = State::Pending { next_try: None };
        }
    }
}

impl Supervisor {
    /// Makes the sandbox when it is due (and the volumes are set up: the sandbox and its IP
    /// are made only then).
    pub(super) fn sandbox_timers(&mut self, now: Instant) {
        if self.sandbox.next_try().is_some_and(|t| now >= t) && self.volume_gate(now) {
            self.start_sandbox(now);
        }
    }

    /// Creates the sandbox; on failure records an event, releases what it took and retries
    /// with back-off. The first containers are prepared (writable layer, Spec, cgroup) and
    /// cloned while the kernel builds the pause process's namespaces (their inits wait for
    /// them), mount their rootfs while the network is wired, and are started once it is.
    fn start_sandbox(&mut self, now: Instant) {
        self.sandbox.state = State::Pending { next_try: None };
        crate::starttrace::mark("sup sandbox begin");
        let mut result = self.try_start_sandbox();
        crate::starttrace::mark("sup sandbox made");
        if result.is_ok() {
            let first = self.begin_sandbox_run(now);
            let mut created = Vec::new();
            for i in first {
                self.runs[i].life.schedule(None);
                if let Some(p) = self.create_container(i) {
                    created.push((i, p));
                }
            }
            // The network recorded while the pause process may still be making the
            // namespaces and wiring them.
            result = self.prepare_network().and_then(|()| {
                let made = self.await_namespaces()?;
                crate::starttrace::mark("sup namespaces awaited");
                self.connect_network(made)
            });
            crate::starttrace::mark("sup network wired");
            match result {
                Ok(()) => {
                    for (i, p) in created {
                        self.start_created(i, p);
                    }
                }
                Err(_) => self.abandon_created(created),
            }
            // Their inits and cgroups took the programs made ahead, if any: not kept for the
            // pod's life.
            crate::container::runtime::seccomp::forget_ahead();
            crate::cgroup::devices::forget_ahead();
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "sandbox creation failed");
            self.sandbox.building = None;
            if let Some(pid) = self.sandbox.pid() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            if let Some(veth) = &self.state.sandbox.veth {
                if let Err(e) = network::detach(veth) {
                    tracing::warn!(%veth, error = %e, "veth removal failed");
                }
            }
            let delay = self.sandbox.backoff.on_exit(Duration::ZERO).max(MIN_RETRY);
            self.sandbox.state = State::Pending {
                next_try: Some(Instant::now() + delay),
            };
            self.event(
                events::WARNING,
                events::REASON_FAILED_SANDBOX,
                "",
                format!("Failed to create pod sandbox: {e}"),
            );
        }
        self.mark_dirty();
    }

    /// The pod cgroup, /dev/shm, the pause process, the pod IP and the shared files. The pause
    /// process builds its namespaces meanwhile, and after: `await_namespaces` waits for them.
    fn try_start_sandbox(&mut self) -> Result<(), SandboxError> {
        let uid = self.uid.clone();
        let run_dir = self.paths.pod_run_dir(&uid);
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::Io { path, source }
        };
        fs::create_dir_all(&run_dir).map_err(io(&run_dir))?;

        // The pod cgroup, recorded before it is made.
        let mut sandbox_cgroup = None;
        if let Some(cg) = self.host.cgroups.clone() {
            let sb = match self.cri_cgroup_parent() {
                Some((parent, id)) => self.parent_cgroups(&cg, &parent, &id)?,
                None => self.own_cgroups(&cg, &uid)?,
            };
            sandbox_cgroup = Some(sb);
            crate::starttrace::mark("sup pod cgroups");
        }

        // The pod-wide /dev/shm: a 64 MiB tmpfs.
        let shm = run_dir.join(SHM_DIR);
        if !shm.exists() {
            fs::create_dir_all(&shm).map_err(io(&shm))?;
            mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some(format!("mode=1777,size={SHM_SIZE_BYTES}").as_str()),
            )
            .map_err(|source| SandboxError::Shm {
                path: shm.clone(),
                source,
            })?;
        }

        crate::starttrace::mark("sup shm");
        // The pod's IP and its veth's name (recorded before the veth exists, `wire_network`),
        // for the pause process to wire.
        let ip = self.sandbox_address()?;
        self.sandbox.pod_ip = Some(ip);
        tracing::debug!(%ip, "address allocated");
        crate::starttrace::mark("sup ip allocated");

        // The pause process; with shareProcessNamespace it is pid 1 of the pod's pid namespace.
        // Unless the pod is in the host's network, it wires the pod's network itself, from
        // inside its new namespace, on the other CPU while the containers are prepared.
        let hostname = files::pod_hostname(&self.pod);
        let wiring = pause::Wiring {
            net: &self.host.net,
            owner: &self.uid,
            ip,
        };
        let pause = pause::spawn(
            &hostname,
            sandbox_cgroup.as_deref(),
            self.host_namespaces(),
            crate::sandbox::shares_process_namespace(&self.pod),
            Some(wiring),
        )
        .map_err(SandboxError::Spawn)?;
        let pid = pause.pid.as_raw();
        tracing::debug!(%pid, "pause process forked");
        crate::starttrace::mark("sup pause forked");
        self.sandbox.state = State::Ready { pid: pause.pid };
        self.state.sandbox.process = ProcessRef::of(pid);
        self.state.sandbox.attempt = self.state.sandbox.attempt.saturating_add(1);

        // The files every container shares (bind-mounted: final before any container starts).
        let host_resolv = fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
        let resolv = files::resolv_conf(&self.pod, &host_resolv, None)?;
        let (hosts, hostname) = self.hosts_and_hostname(ip);
        for (name, content) in [
            (HOSTS_FILE, hosts),
            (RESOLV_FILE, resolv),
            (HOSTNAME_FILE, hostname),
        ] {
            write_volatile(&run_dir.join(name), content.as_bytes())?;
        }
        crate::starttrace::mark("sup files written");
        self.sandbox.building = Some(pause);
        Ok(())
    }

    /// Names peapod's own pod cgroup (`peapod/pod-<uid>`) in the state before the supervisor's
    /// first write of it, so that making the cgroup with the sandbox needs no write of its own
    /// (one file fewer written per start; a cgroup recorded and never made is nothing to
    /// teardown). Not for a CRI pod in the kubelet's cgroup parent, recorded as it is made.
    pub(super) fn name_own_pod_cgroup(&mut self) {
        if self.state.pod_cgroup.is_some() || self.cri_cgroup_parent().is_some() {
            return;
        }
        if let Some(cg) = &self.host.cgroups {
            self.state.pod_cgroup = Some(cg.pod_path(&self.uid));
        }
    }

    /// peapod's own pod cgroup (`peapod/pod-<uid>`, with the pod's cpu.weight and limits) and
    /// the sandbox's in it; returns the sandbox's.
    fn own_cgroups(&mut self, cg: &CgroupManager, uid: &str) -> Result<PathBuf, SandboxError> {
        // Usually named already by the supervisor's first state write (`name_own_pod_cgroup`);
        // recorded here when a finished sandbox's release forgot it (`host_released`).
        if self.state.pod_cgroup.is_none() {
            self.state.pod_cgroup = Some(cg.pod_path(uid));
            if let Err(e) = self.save_state() {
                // Not recorded (a full disk): not made either, and recorded at the next try.
                self.state.pod_cgroup = None;
                return Err(e.into());
            }
        }
        // Made (idempotently) with every sandbox: a try that failed after recording it
        // must not leave the next one without it.
        let resources = crate::cgroup::pod_resources(&self.pod)?;
        cg.create_pod(uid, resources)?;
        let sb = cg.sandbox_path(uid);
        cg.create(&sb, &Default::default())?;
        Ok(sb)
    }

    /// The CRI sandbox's cgroup parent (the kubelet's pod cgroup) and its sandbox ID, if it
    /// was given one.
    pub(super) fn cri_cgroup_parent(&self) -> Option<(PathBuf, String)> {
        let parent = crate::pod::control::cri_cgroup_parent(&self.pod)?;
        let id = self
            .pod
            .metadata
            .annotations
            .as_ref()?
            .get(crate::pod::control::CRI_SANDBOX_ANNOTATION)?;
        Some((parent, id.clone()))
    }

    /// The kubelet's pod cgroup as this pod's, its missing components made (and recorded
    /// first), and the sandbox's cgroup `<parent>/<sandbox id>` in it; returns the sandbox's.
    /// No pod-level limit is written: they are the kubelet's (`cgroup::parent`).
    fn parent_cgroups(
        &mut self,
        cg: &CgroupManager,
        parent: &Path,
        sandbox_id: &str,
    ) -> Result<PathBuf, SandboxError> {
        let before = (
            self.state.pod_cgroup.clone(),
            self.state.cgroup_parent.clone(),
        );
        let missing = crate::cgroup::parent::missing(cg.root(), parent, Path::exists);
        let sb = cg.child_path(parent, sandbox_id);
        self.state.pod_cgroup = Some(cg.parent_path(parent));
        let record = self
            .state
            .cgroup_parent
            .get_or_insert_with(Default::default);
        record.add_created(&missing);
        record.add_child(&sb);
        if let Err(e) = self.save_state() {
            // Not recorded: not made either.
            (self.state.pod_cgroup, self.state.cgroup_parent) = before;
            return Err(e.into());
        }
        let made = cg.create_parent(parent)?;
        if let Some(record) = self.state.cgroup_parent.as_mut() {
            // What appeared meanwhile is not peapod's; what an earlier try made stays ours.
            let earlier = before.1.map(|b| b.created).unwrap_or_default();
            record
                .created
                .retain(|p| made.contains(p) || earlier.contains(p));
        }
        self.save_state_or_log();
        cg.create(&sb, &Default::default())?;
        Ok(sb)
    }

    /// Waits until the pause process of the sandbox being made has its namespaces (a no-op
    /// once it has): before a container joins them, and before the network is wired.
    pub(super) fn await_namespaces(&mut self) -> Result<Option<pause::Made>, SandboxError> {
        match self.sandbox.building.take() {
            Some(pause) => pause.wait_ready().map(Some).map_err(SandboxError::Pause),
            None => Ok(None),
        }
    }

    /// The pod's veth, eth0, address and route, as the pause process `made` wired them, then
    /// the host ports.
    fn connect_network(&mut self, made: Option<pause::Made>) -> Result<(), SandboxError> {
        let (Some(pid), Some(ip)) = (self.sandbox.pid(), self.state.sandbox.ip) else {
            return Err(SandboxError::Gone);
        };
        self.wire_network(pid.as_raw(), ip, made)?;
        tracing::info!(%pid, %ip, "sandbox ready");
        Ok(())
    }

    /// Whether the sandbox process is `pid`; reaped: what follows its end.
    pub(super) fn on_sandbox_exit(&mut self, pid: Pid) -> bool {
        match self.sandbox.state {
            State::Ready { pid: p } if p == pid => {}
            State::Stopping { pid: p } if p == pid => {
                self.sandbox.state = State::Released;
                self.state.sandbox.process = None;
                self.mark_dirty();
                return true;
            }
            _ => return false,
        }
        self.state.sandbox.process = None;
        self.mark_dirty();
        // A restart of all containers keeps the sandbox: losing it then is a loss like any.
        if !matches!(
            self.pod_run,
            PodRun::Active { .. } | PodRun::Restarting { .. }
        ) {
            self.sandbox.state = State::Released;
            return true;
        }
        tracing::warn!("sandbox died; its containers are stopped and the sandbox re-created");
        self.sandbox.state = State::Lost;
        self.event(
            events::NORMAL,
            events::REASON_SANDBOX_CHANGED,
            "",
            SANDBOX_CHANGED_MESSAGE.into(),
        );
        // Every container is stopped as the kubelet kills the pod: within its grace period,
        // with a Killing event each [SyncPod: killPodWithSyncResult].
        let (now, grace) = (Instant::now(), self.pod_grace());
        for i in 0..self.runs.len() {
            self.stop_container(i, StopCause::SandboxLost, grace, now);
        }
        self.drive_stops(now);
        self.sandbox_lost_check();
        true
    }

    /// After a reboot (`reboot`): the sandbox went with the boot and its containers with it.
    /// The kubelet says SandboxChanged only when it makes a new one [SyncPod: KillPod with
    /// CreateSandbox]; a pod not to run again (Never) just ends.
    pub(super) fn sandbox_lost_at_boot(&mut self) {
        if !matches!(self.pod_run, PodRun::Active { .. }) {
            return;
        }
        self.sandbox.state = State::Lost;
        if recreate_sandbox(self.policy, &self.entries(), self.sandbox.ran) {
            self.event(
                events::NORMAL,
                events::REASON_SANDBOX_CHANGED,
                "",
                SANDBOX_CHANGED_MESSAGE.into(),
            );
        }
        self.sandbox_lost_check();
    }

    /// Once every container of a lost sandbox is gone: a new sandbox, or the pod's end when
    /// it is not to run again (`machine::order::recreate_sandbox`).
    pub(super) fn sandbox_lost_check(&mut self) {
        if self.sandbox.state != State::Lost
            || !matches!(self.pod_run, PodRun::Active { .. })
            || self.runs.iter().any(|r| r.life.instance().is_some())
        {
            return;
        }
        if let Some(veth) = self.state.sandbox.veth.clone() {
            if let Err(e) = network::detach(&veth) {
                tracing::warn!(%veth, error = %e, "veth removal failed");
            }
        }
        // Through the CRI the kubelet makes a new sandbox itself (NOTREADY tells it to).
        if !self.cri && recreate_sandbox(self.policy, &self.entries(), self.sandbox.ran) {
            self.sandbox.state = State::Pending {
                next_try: Some(Instant::now()),
            };
        } else {
            tracing::info!("the pod is not run again in a new sandbox");
            self.sandbox.state = State::Released;
            let grace = self.pod_grace();
            self.terminate(End::Finish, grace, None);
        }
        self.mark_dirty();
    }

    /// At the pod's end: kills the sandbox. True once it is gone (or there never was one).
    pub(super) fn stop_sandbox(&mut self) -> bool {
        match self.sandbox.state {
            State::Ready { pid } | State::Stopping { pid } => {
                if let Err(e) = kill(pid, Signal::SIGKILL) {
                    tracing::debug!(%pid, error = %e, "sandbox kill");
                }
                self.sandbox.state = State::Stopping { pid };
                false
            }
            State::Pending { .. } | State::Lost => {
                self.sandbox.state = State::Released;
                true
            }
            State::Released => true,
        }
    }
}
