//! The supervisor's poll loop: one `poll(2)` over the signalfd, the object-store watch and
//! every container pipe, then the handlers for what became ready (output, signals, exited
//! children, changed objects). Idle for a while, it gives back the memory start-up left resident (`trim`).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{trim, Supervisor, METADATA_SIGNAL};

/// After this long without anything to do, the supervisor (and the keeper) gives back what
/// start-up left resident (code pages, the deep stack, free heap).
pub(crate) const IDLE_TRIM_AFTER: Duration = Duration::from_secs(2);
/// How often logs are checked for rotation, as the kubelet does.
pub(super) const LOG_ROTATION_CHECK: Duration = Duration::from_secs(10);

/// The loop's own state: the signals it reads, when it last had work, log rotation.
pub(crate) struct Idle {
    signals: SignalFd,
    /// Told (and closed) once the state file exists, when `apply` forked us.
    ready: Option<OwnedFd>,
    last_activity: Instant,
    trimmed: bool,
    /// A timer woke the loop while trimmed: its handlers (the log rotation check every 10 s)
    /// fault code pages back in, given back again before the next wait.
    retrim: bool,
    pub next_rotation: Instant,
}

impl Idle {
    /// Blocks the signals the loop reads through a signalfd (`pod::loop_signalfd`, with the
    /// metadata signal). The error names the step.
    pub fn new(ready: Option<OwnedFd>) -> Result<Idle, (&'static str, nix::Error)> {
        let signals = crate::pod::loop_signalfd(&[METADATA_SIGNAL])?;
        Ok(Idle {
            signals,
            ready,
            last_activity: Instant::now(),
            trimmed: false,
            retrim: false,
            next_rotation: Instant::now() + LOG_ROTATION_CHECK,
        })
    }

    /// Gives back idle memory now (after a round of frequent probes, which would never
    /// leave the loop idle for long enough).
    pub fn trim(&mut self) {
        trim::release_idle_memory();
        self.trimmed = true;
    }

    /// Tells `apply` (when it forked us) that the state file exists.
    pub fn tell_ready(&mut self) {
        if let Some(ready) = self.ready.take() {
            if let Err(e) = nix::unistd::write(&ready, b"1") {
                tracing::warn!(error = %e, "cannot tell apply that the supervisor is up");
            }
        }
    }
}

/// What one poll found ready.
#[derive(Default)]
struct Ready {
    signals: bool,
    objects: bool,
    /// The keeper relayed exits (or went away).
    keeper: bool,
    /// A CRI request waits on the control socket.
    control: bool,
    /// (container run, pipe) pairs.
    pipes: Vec<(usize, usize)>,
    attach: super::attach::AttachReady,
}

impl Supervisor {
    pub(super) fn wait_and_dispatch(&mut self) {
        if std::mem::take(&mut self.idle.retrim) {
            self.idle.trim();
        }
        let mut deadline = self.next_deadline();
        if !self.idle.trimmed {
            deadline = deadline.min(self.idle.last_activity + IDLE_TRIM_AFTER);
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = timeout.as_millis().min(10_000) as u16;
        let Some(ready) = self.poll_once(timeout_ms) else {
            // A timer, not activity: once its handlers ran, the next wait trims again.
            self.idle.retrim = self.idle.trimmed;
            return;
        };
        self.idle.last_activity = Instant::now();
        self.idle.trimmed = false;
        for (ri, pi) in ready.pipes {
            self.drain_pipe(ri, pi);
        }
        self.on_attach_ready(ready.attach);
        if ready.objects {
            self.on_objects_changed();
        }
        if ready.signals {
            self.handle_signals();
        }
        if ready.keeper {
            self.on_keeper();
        }
        if ready.control {
            self.on_control_ready();
        }
    }

    /// Exits the keeper collected: the processes this supervisor adopted (`adopt`) are its
    /// children, not ours. Unknown pids (a probe's orphaned grandchild) are ignored.
    fn on_keeper(&mut self) {
        let Some(k) = &self.keeper else {
            return;
        };
        match k.read_exits() {
            Some(exits) => {
                for (pid, status) in exits {
                    if let Some((code, signal)) = crate::pod::keeper::exit_of(status) {
                        self.on_child_exit(Pid::from_raw(pid), code, signal);
                    }
                }
            }
            None => {
                tracing::warn!(
                    "the pod's keeper is gone: if this supervisor dies, the pod is left Unknown"
                );
                self.keeper = None;
            }
        }
    }

    /// Polls the signalfd, the object watch and every open pipe. None on timeout (after
    /// trimming when idle long enough) or error.
    fn poll_once(&mut self, timeout_ms: u16) -> Option<Ready> {
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut fds = vec![PollFd::new(self.idle.signals.as_fd(), PollFlags::POLLIN)];
        let watch = self.volumes.watch_fd();
        if let Some(fd) = watch {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        // Probe and hook reports only wake the loop: `collect_runs` reads them.
        for fd in self.hooks.fds() {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let keeper_at = fds.len();
        if let Some(k) = &self.keeper {
            fds.push(PollFd::new(k.fd(), PollFlags::POLLIN));
        }
        let control_at = fds.len();
        if let Some(fd) = self.control.fd() {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let first_pipe = fds.len();
        for (ri, r) in self.runs.iter().enumerate() {
            if let Some(inst) = r.life.instance() {
                for (pi, p) in inst.pipes.iter().enumerate() {
                    if let Some(fd) = p {
                        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                        owners.push((ri, pi));
                    }
                }
            }
        }
        // Attach: the listener, the clients (not those held back by a full stdin), and the
        // stdin of containers with bytes waiting.
        let first_attach = fds.len();
        let listener = self.attach.listener_fd();
        if let Some(fd) = listener {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let first_client = fds.len();
        let clients = self.attach.client_fds(|run| self.input_blocked(run));
        for (_, fd) in &clients {
            fds.push(PollFd::new(*fd, PollFlags::POLLIN));
        }
        let first_input = fds.len();
        let mut inputs = Vec::new();
        for (ri, r) in self.runs.iter().enumerate() {
            if let Some(inst) = r.life.instance() {
                if let (Some(fd), false) = (&inst.input, inst.input_pending.is_empty()) {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
                    inputs.push(ri);
                }
            }
        }
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(0) => {
                if !self.idle.trimmed && self.idle.last_activity.elapsed() >= IDLE_TRIM_AFTER {
                    self.idle.trim();
                }
                return None;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return None,
            Err(e) => {
                tracing::error!(error = %e, "poll failed");
                std::thread::sleep(Duration::from_millis(100));
                return None;
            }
        }
        let is_ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let attach = super::attach::AttachReady {
            listener: listener.is_some() && is_ready(&fds[first_attach]),
            clients: fds[first_client..first_input]
                .iter()
                .zip(clients.iter())
                .filter(|(f, _)| is_ready(f))
                .map(|(_, (id, _))| *id)
                .collect(),
            inputs: fds[first_input..]
                .iter()
                .zip(inputs.iter())
                .filter(|(f, _)| is_ready(f))
                .map(|(_, ri)| *ri)
                .collect(),
        };
        Some(Ready {
            signals: is_ready(&fds[0]),
            keeper: keeper_at < control_at && is_ready(&fds[keeper_at]),
            control: control_at < first_pipe && is_ready(&fds[control_at]),
            objects: watch.is_some() && is_ready(&fds[1]),
            attach,
            pipes: fds[first_pipe..first_attach]
                .iter()
                .zip(owners.iter())
                .filter(|(f, _)| is_ready(f))
                .map(|(_, o)| *o)
                .collect(),
        })
    }

    fn handle_signals(&mut self) {
        let mut child = false;
        while let Ok(Some(info)) = self.idle.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => child = true,
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) | Ok(Signal::SIGHUP) => {
                    self.delete_requested();
                }
                // `peapod label`/`annotate`/`apply` rewrote pod.json.
                Ok(METADATA_SIGNAL) => self.reload_pod(),
                _ => {}
            }
        }
        if child {
            self.reap();
        }
    }

    /// Collects every exited child.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(WaitStatus::Exited(pid, code)) => self.on_child_exit(pid, code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.on_child_exit(pid, 128 + sig as i32, Some(sig as i32))
                }
                Ok(_) => continue,
            }
        }
    }

    fn on_child_exit(&mut self, pid: Pid, exit_code: i32, signal: Option<i32>) {
        if self.on_pull_exit(pid, exit_code) || self.on_sandbox_exit(pid) {
            return;
        }
        if self.hooks.on_exit(pid) {
            return;
        }
        let container = self
            .runs
            .iter()
            .position(|r| r.life.instance().is_some_and(|i| i.pid == pid));
        if let Some(ri) = container {
            self.on_container_exit(ri, exit_code, signal);
        }
    }
}
