//! The CRI server as a child of the node agent: `peapod __cri --socket PATH`, re-executed (the
//! agent stays single-threaded; the server is not), restarted when it dies (1 s doubling to
//! 30 s, back to 1 s after a run of a minute), stopped with SIGTERM (SIGKILL after 5 s) when the
//! agent stops. The child gets PR_SET_PDEATHSIG, so it also goes when the agent is killed.
//! The agent's loop reaps every child with `waitpid(-1)`; it hands the server's exit here
//! ([`CriChild::exited`]).

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cri::CRI_VERB;

const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A server that ran this long before dying restarts after the first delay again.
const STABLE_RUN: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The server process the agent keeps running.
#[derive(Debug)]
pub struct CriChild {
    socket: PathBuf,
    running: Option<(Pid, Instant)>,
    restart_at: Option<Instant>,
    delay: Duration,
}

impl CriChild {
    /// Starts the server on `socket` (a failure to start is retried like a death).
    pub fn start(socket: PathBuf) -> CriChild {
        let mut child = CriChild {
            socket,
            running: None,
            restart_at: None,
            delay: FIRST_RESTART_DELAY,
        };
        child.spawn();
        child
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(CRI_VERB)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => {
                let pid = Pid::from_raw(child.id() as i32);
                tracing::info!(%pid, socket = %self.socket.display(), "CRI server started");
                // The agent's loop reaps it (waitpid(-1)); dropping the handle neither waits
                // nor kills.
                drop(child);
                self.running = Some((pid, Instant::now()));
                self.restart_at = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the CRI server");
                self.schedule_restart(Duration::ZERO);
            }
        }
    }

    fn schedule_restart(&mut self, ran: Duration) {
        if ran >= STABLE_RUN {
            self.delay = FIRST_RESTART_DELAY;
        }
        self.restart_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_RESTART_DELAY);
    }

    /// The agent reaped `pid` with `status`: if it was the server, a restart is scheduled.
    pub fn exited(&mut self, pid: Pid, status: &WaitStatus) {
        let Some((ours, since)) = self.running else {
            return;
        };
        if ours != pid {
            return;
        }
        self.running = None;
        tracing::error!(%pid, ?status, "CRI server exited; restarting it");
        self.schedule_restart(since.elapsed());
    }

    /// When the loop must wake up to restart the server.
    pub fn due(&self) -> Option<Instant> {
        self.restart_at
    }

    /// Restarts the server if its delay is over.
    pub fn tick(&mut self, now: Instant) {
        if self.restart_at.is_some_and(|t| now >= t) {
            self.spawn();
        }
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<Pid> {
        self.running.map(|(pid, _)| pid)
    }

    /// Stops the server: SIGTERM (it removes its socket), SIGKILL after the grace period.
    pub fn stop(&mut self) {
        self.restart_at = None;
        let Some((pid, _)) = self.running.take() else {
            return;
        };
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(WaitStatus::StillAlive) => {
                    tracing::warn!(%pid, "CRI server did not stop in time; killing it");
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    return;
                }
                _ => return,
            }
        }
    }
}

impl Drop for CriChild {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_reset_after_a_long_run() {
        let mut c = CriChild {
            socket: PathBuf::from("/nonexistent"),
            running: None,
            restart_at: None,
            delay: FIRST_RESTART_DELAY,
        };
        let mut delays = Vec::new();
        for _ in 0..7 {
            let before = c.delay;
            c.schedule_restart(Duration::ZERO);
            delays.push(before.as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        c.schedule_restart(STABLE_RUN);
        assert_eq!(c.delay, Duration::from_secs(2), "reset to 1 s, next 2 s");
        // Another process's exit is not the server's.
        c.running = Some((Pid::from_raw(12345), Instant::now()));
        c.restart_at = None;
        c.exited(
            Pid::from_raw(999),
            &WaitStatus::Exited(Pid::from_raw(999), 0),
        );
        assert!(c.due().is_none() && c.pid().is_some());
        c.exited(
            Pid::from_raw(12345),
            &WaitStatus::Exited(Pid::from_raw(12345), 1),
        );
        assert!(c.due().is_some() && c.pid().is_none());
        c.restart_at = None; // no spawn in a unit test
    }
}
