//! `exec` probes and hooks, in the probe child: the command runs in the container by the path
//! of `peapod exec` (its namespaces, cgroup, user, env, seccomp: `container::runtime::spawn_in`)
//! with stdout and stderr on pipes read here. The kubelet sees stdout then stderr, at most 10
//! KiB in all [pkg/kubelet/kuberuntime RunInContainer, pkg/probe/exec/exec.go]; a probe past its
//! timeout fails with the CRI client's `command "..." timed out`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, getpid, Pid};

use super::messages::{exec_exit_error, exec_timeout};
use super::{limit_output, ExecTarget, HookResult, ProbeResult, MAX_OUTPUT};
use crate::container::runtime::{read_bundle, spawn_in, ExecStdio};

/// How long output is still collected after the command exited (a background child may hold
/// the pipes open; the kubelet's runtime does not wait for it either).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);
/// Poll granularity while the command runs.
const TICK: Duration = Duration::from_millis(50);

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExecEnd {
    Exited(i32),
    TimedOut,
    /// It could not be started: the runtime's message.
    Failed(String),
}

/// A finished command: how it ended and what it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExecRun {
    pub end: ExecEnd,
    pub stdout: String,
    pub stderr: String,
}

impl ExecRun {
    /// stdout then stderr, at most 10 KiB: the output the kubelet shows.
    pub fn output(&self) -> String {
        limit_output(format!("{}{}", self.stdout, self.stderr))
    }

    /// The probe's verdict [pkg/probe/exec/exec.go Probe].
    pub fn probe_result(&self, command: &[String]) -> ProbeResult {
        match &self.end {
            ExecEnd::Exited(0) => ProbeResult::Success,
            ExecEnd::Exited(_) => ProbeResult::Failure(self.output()),
            ExecEnd::TimedOut => ProbeResult::Failure(exec_timeout(command)),
            ExecEnd::Failed(message) => ProbeResult::unknown(message.clone()),
        }
    }

    /// The hook's verdict [pkg/kubelet/lifecycle/handlers.go Run].
    pub fn hook_result(&self, command: &[String]) -> HookResult {
        match &self.end {
            ExecEnd::Exited(0) => HookResult::Done {
                http_fallback: None,
            },
            ExecEnd::Exited(code) => HookResult::Failed {
                error: exec_exit_error(command, *code, &self.stderr),
                output: Some(self.output()),
            },
            ExecEnd::TimedOut => HookResult::Unfinished,
            ExecEnd::Failed(message) => HookResult::Failed {
                error: message.clone(),
                output: Some(String::new()),
            },
        }
    }
}

/// Runs `command` in the container of `target` until it exits or `deadline` passes (then it
/// is killed). Must run in a single-threaded process: the probe child.
pub(super) fn run(target: &ExecTarget, command: &[String], deadline: Option<Instant>) -> ExecRun {
    let failed = |m: String| ExecRun {
        end: ExecEnd::Failed(m),
        stdout: String::new(),
        stderr: String::new(),
    };
    let spec = match read_bundle(&target.bundle) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    let pipes = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .and_then(|out| nix::unistd::pipe2(OFlag::O_CLOEXEC).map(|err| (out, err)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => return failed(format!("pipe2: {e}")),
    };
    let stdio = ExecStdio {
        stdin: None,
        stdout: out_w,
        stderr: err_w,
    };
    let child = match spawn_in(target.pid, &spec, command, false, Some(stdio)) {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let pid = child.pid;
    if let Err(message) = child.started() {
        reap(pid);
        return failed(message);
    }
    collect(pid, [out_r, err_r], deadline)
}

/// Reads both pipes until the command exited (and its output is drained) or the deadline.
fn collect(pid: Pid, pipes: [OwnedFd; 2], deadline: Option<Instant>) -> ExecRun {
    let mut open: [Option<OwnedFd>; 2] = pipes.map(Some);
    let mut bufs = [Vec::new(), Vec::new()];
    let mut exited: Option<(i32, Instant)> = None;
    loop {
        let now = Instant::now();
        if exited.is_none() && deadline.is_some_and(|d| now >= d) {
            kill_command(pid);
            return ExecRun {
                end: ExecEnd::TimedOut,
                stdout: text(&bufs[0]),
                stderr: text(&bufs[1]),
            };
        }
        if let Some((code, at)) = exited {
            if open.iter().all(Option::is_none) || now >= at + DRAIN_AFTER_EXIT {
                return ExecRun {
                    end: ExecEnd::Exited(code),
                    stdout: text(&bufs[0]),
                    stderr: text(&bufs[1]),
                };
            }
        }
        let mut fds: Vec<PollFd> = open
            .iter()
            .flatten()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        if fds.is_empty() {
            std::thread::sleep(TICK);
        } else {
            let wait = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::ZERO);
            let _ = poll(&mut fds, wait);
        }
        drop(fds);
        for (slot, buf) in open.iter_mut().zip(bufs.iter_mut()) {
            if let Some(fd) = slot {
                if !read_some(fd, buf) {
                    *slot = None;
                }
            }
        }
        if exited.is_none() {
            exited = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => Some((code, Instant::now())),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some((128 + sig as i32, Instant::now())),
                Ok(_) => None,
                Err(e) => Some((-1, Instant::now())).filter(|_| e != nix::errno::Errno::EINTR),
            };
        }
    }
}

/// Reads what is ready (non-blocking: poll said so, or EOF). False at EOF or error. Bytes past
/// the limit are read and dropped, so that the command never blocks on a full pipe.
fn read_some(fd: &OwnedFd, buf: &mut Vec<u8>) -> bool {
    let mut ready = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    if poll(&mut ready, PollTimeout::ZERO).unwrap_or(0) == 0 {
        return true;
    }
    let mut chunk = [0u8; 8192];
    match nix::unistd::read(fd, &mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            let room = MAX_OUTPUT.saturating_sub(buf.len()).min(n);
            buf.extend_from_slice(&chunk[..room]);
            true
        }
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Kills the command and reaps it. Its own children stay in our process group and die with
/// [`kill_process_group`] once the result is reported.
fn kill_command(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    reap(pid);
}

fn reap(pid: Pid) {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Ends what is left of a timed-out command (its descendants), with this process: only when
/// this process leads its own group, as a probe child does.
pub(super) fn kill_process_group() {
    if getpgrp() == getpid() {
        let _ = kill(Pid::from_raw(0), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(end: ExecEnd, out: &str, err: &str) -> ExecRun {
        ExecRun {
            end,
            stdout: out.into(),
            stderr: err.into(),
        }
    }

    #[test]
    fn probe_results_as_the_kubelet() {
        let cmd = vec!["cat".to_string(), "/tmp/healthy".into()];
        assert_eq!(
            run_of(ExecEnd::Exited(0), "ok", "").probe_result(&cmd),
            ProbeResult::Success
        );
        assert_eq!(
            run_of(
                ExecEnd::Exited(1),
                "out\n",
                "cat: can't open '/tmp/healthy': No such file or directory\n"
            )
            .probe_result(&cmd),
            ProbeResult::Failure(
                "out\ncat: can't open '/tmp/healthy': No such file or directory\n".into()
            )
        );
        assert_eq!(
            run_of(ExecEnd::TimedOut, "", "").probe_result(&cmd),
            ProbeResult::Failure("command \"cat /tmp/healthy\" timed out".into())
        );
        assert_eq!(
            run_of(
                ExecEnd::Failed("exec: \"nope\": executable file not found in $PATH".into()),
                "",
                ""
            )
            .probe_result(&cmd),
            ProbeResult::unknown("exec: \"nope\": executable file not found in $PATH")
        );
        let long = run_of(ExecEnd::Exited(1), &"o".repeat(MAX_OUTPUT), "e");
        assert_eq!(
            long.output().len(),
            MAX_OUTPUT,
            "stderr past the limit is cut"
        );
    }

    #[test]
    fn hook_results_carry_the_cri_error_and_output() {
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 2".into()];
        assert_eq!(
            run_of(ExecEnd::Exited(2), "o\n", "e\n").hook_result(&cmd),
            HookResult::Failed {
                error: "command 'sh -c exit 2' exited with 2: e\n".into(),
                output: Some("o\ne\n".into())
            }
        );
        assert_eq!(
            run_of(ExecEnd::TimedOut, "", "").hook_result(&cmd),
            HookResult::Unfinished
        );
    }

    #[test]
    fn a_missing_bundle_is_a_failure_to_start() {
        let target = ExecTarget {
            pid: 1,
            bundle: "/nonexistent-peapod-bundle".into(),
        };
        let run = run(&target, &["true".into()], None);
        assert!(matches!(run.end, ExecEnd::Failed(_)), "{run:?}");
    }

    #[test]
    #[allow(clippy::zombie_processes)] // `collect` reaps them with waitpid
    fn collects_output_and_exit_of_a_local_child() {
        // The collection loop on an ordinary child (no container needed).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out: OwnedFd = child.stdout.take().unwrap().into();
        let err: OwnedFd = child.stderr.take().unwrap().into();
        let pid = Pid::from_raw(child.id() as i32);
        let run = collect(
            pid,
            [out, err],
            Some(Instant::now() + Duration::from_secs(10)),
        );
        assert_eq!(run, run_of(ExecEnd::Exited(3), "out\n", "err\n"));
        let slow = std::process::Command::new("sleep")
            .arg("10")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut slow = slow;
        let pipes: [OwnedFd; 2] = [
            slow.stdout.take().unwrap().into(),
            slow.stderr.take().unwrap().into(),
        ];
        let started = Instant::now();
        let pid = Pid::from_raw(slow.id() as i32);
        let run = collect(
            pid,
            pipes,
            Some(Instant::now() + Duration::from_millis(200)),
        );
        assert_eq!(run.end, ExecEnd::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
