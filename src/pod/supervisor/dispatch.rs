//! The supervisor's poll loop: one `poll(2)` over the signalfd, the object-store watch and
//! every container pipe, then the handlers for what became ready (output, signals, exited
//! children, changed objects). Idle for a while, it releases its start-up code pages.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{trim, Supervisor, IDLE_TRIM_AFTER};

/// What one poll found ready.
#[derive(Default)]
struct Ready {
    signals: bool,
    objects: bool,
    /// (container run, pipe) pairs.
    pipes: Vec<(usize, usize)>,
}

impl Supervisor {
    pub(super) fn wait_and_dispatch(&mut self) {
        let mut deadline = self.next_deadline();
        if !self.trimmed {
            deadline = deadline.min(self.last_activity + IDLE_TRIM_AFTER);
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = timeout.as_millis().min(10_000) as u16;
        let Some(ready) = self.poll_once(timeout_ms) else {
            return;
        };
        self.last_activity = Instant::now();
        self.trimmed = false;
        for (ri, pi) in ready.pipes {
            self.drain_pipe(ri, pi);
        }
        if ready.objects {
            self.on_objects_changed();
        }
        if ready.signals {
            self.handle_signals();
        }
    }

    /// Polls the signalfd, the object watch and every open pipe. None on timeout (after
    /// trimming when idle long enough) or error.
    fn poll_once(&mut self, timeout_ms: u16) -> Option<Ready> {
        let mut owners: Vec<(usize, usize)> = Vec::new();
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        let watch = self.volumes.watch_fd();
        if let Some(fd) = watch {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let first_pipe = fds.len();
        for (ri, r) in self.runs.iter().enumerate() {
            if let Some(inst) = &r.instance {
                for (pi, p) in inst.pipes.iter().enumerate() {
                    if let Some(fd) = p {
                        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                        owners.push((ri, pi));
                    }
                }
            }
        }
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(0) => {
                if !self.trimmed && self.last_activity.elapsed() >= IDLE_TRIM_AFTER {
                    trim::release_code_pages();
                    self.trimmed = true;
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
        Some(Ready {
            signals: is_ready(&fds[0]),
            objects: watch.is_some() && is_ready(&fds[1]),
            pipes: fds[first_pipe..]
                .iter()
                .zip(owners.iter())
                .filter(|(f, _)| is_ready(f))
                .map(|(_, o)| *o)
                .collect(),
        })
    }

    fn handle_signals(&mut self) {
        let mut child = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => child = true,
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) | Ok(Signal::SIGHUP) => {
                    self.begin_stop();
                }
                // `peapod label`/`annotate` rewrote pod.json.
                Ok(super::METADATA_SIGNAL) => self.reload_metadata(),
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
        if self.on_pull_exit(pid, exit_code) {
            return;
        }
        if self.sandbox.as_ref().is_some_and(|s| s.pid == pid) {
            self.on_sandbox_exit();
            return;
        }
        if let Some(ri) = self
            .runs
            .iter()
            .position(|r| r.instance.as_ref().is_some_and(|i| i.pid == pid))
        {
            self.on_container_exit(ri, exit_code, signal);
        }
    }
}
