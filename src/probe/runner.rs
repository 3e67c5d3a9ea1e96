//! Running probes and hooks without blocking a single-threaded supervisor: each one is a
//! short-lived child (forked when the caller is single-threaded, else `peapod __probe` reading
//! its [`Request`] on stdin) that leads its own process group, does the work, writes one
//! [`Report`] as a JSON line on a pipe and exits. The runner keeps the pipes (non-blocking, for
//! the caller's poll), the deadlines (past one, the child's whole group is SIGKILLed and the
//! kubelet's timeout text reported) and the pids until the caller's `waitpid(-1)` reaps them.
//! A `sleep` hook needs no child: it is a deadline.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, setpgid, ForkResult, Pid};

use super::messages::{exec_timeout, grpc_connect_timeout, SLEEP_TERMINATED};
use super::net::{join_host_port, IO_TIMEOUT};
use super::{
    exec, grpc, http, net, Action, HookResult, ProbeError, ProbeResult, Purpose, Report, Request,
};
use crate::gofmt::quote;

/// The hidden verb of a re-executed probe child: `peapod __probe` (the request on stdin).
pub const PROBE_VERB: &str = "__probe";
/// How long past a probe's own timeout the runner waits for the child's report before it
/// kills the child (the child enforces the timeout itself and reports the kubelet's text).
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// The most a report may be (outputs are limited to 10 KiB each before).
const MAX_REPORT: usize = 256 * 1024;
const SELF_EXE: &str = "/proc/self/exe";
/// When a child ends without a report.
const NO_REPORT: &str = "the probe process ended without a result";

enum Work {
    Child {
        pid: Pid,
        out: OwnedFd,
        buf: Vec<u8>,
    },
    /// A `sleep` hook: done at `ends`, unfinished if the job's deadline comes first.
    Sleep { ends: Instant },
}

struct Job<K> {
    key: K,
    purpose: Purpose,
    action: Action,
    deadline: Option<Instant>,
    work: Work,
}

/// The probes and hooks in flight of one supervisor, keyed by the caller's `K` (say, container
/// index and probe kind).
pub struct ProbeRunner<K> {
    exe: PathBuf,
    jobs: Vec<Job<K>>,
    /// Children not reaped yet (a job may be finished before its child is reaped).
    unreaped: Vec<Pid>,
}

impl<K: Clone + PartialEq> Default for ProbeRunner<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + PartialEq> ProbeRunner<K> {
    pub fn new() -> Self {
        Self::with_exe(Path::new(SELF_EXE))
    }

    /// A runner whose re-executed children run `exe __probe` (tests: the peapod binary).
    pub fn with_exe(exe: &Path) -> Self {
        ProbeRunner {
            exe: exe.to_path_buf(),
            jobs: Vec::new(),
            unreaped: Vec::new(),
        }
    }

    /// Starts `request` under `key`. A probe is given up at its timeout plus [`KILL_GRACE`]; a
    /// hook at `deadline` if any (the kubelet gives hooks none of their own: a preStop's is the
    /// grace period); a sleep ends at its seconds.
    pub fn start(
        &mut self,
        key: K,
        request: Request,
        deadline: Option<Instant>,
    ) -> Result<(), ProbeError> {
        let now = Instant::now();
        let sleep_ends = match &request.action {
            Action::Sleep { seconds } => Some(now + Duration::from_secs((*seconds).max(0) as u64)),
            _ => None,
        };
        let own = match (&request.purpose, &request.action) {
            (_, Action::Sleep { .. }) => sleep_ends,
            (Purpose::Probe { timeout }, _) => Some(now + *timeout + KILL_GRACE),
            (Purpose::Hook, _) => None,
        };
        let deadline = match (own, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let work = match sleep_ends {
            Some(ends) => Work::Sleep { ends },
            None => {
                let (pid, out) = if crate::procfs::thread_count() == 1 {
                    fork_child(&request)?
                } else {
                    reexec_child(&self.exe, &request)?
                };
                self.unreaped.push(pid);
                Work::Child {
                    pid,
                    out,
                    buf: Vec::new(),
                }
            }
        };
        tracing::debug!(action = ?request.action, "probe started");
        self.jobs.push(Job {
            key,
            purpose: request.purpose,
            action: request.action,
            deadline,
            work,
        });
        Ok(())
    }

    pub fn is_running(&self, key: &K) -> bool {
        self.jobs.iter().any(|j| &j.key == key)
    }

    /// The report pipes, for the caller's poll set (POLLIN).
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.jobs
            .iter()
            .filter_map(|j| match &j.work {
                Work::Child { out, .. } => Some(out.as_fd()),
                Work::Sleep { .. } => None,
            })
            .collect()
    }

    /// The earliest deadline, for the caller's poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.jobs.iter().filter_map(|j| j.deadline).min()
    }

    /// Reads what the children wrote and ends what is overdue; returns every finished job.
    /// Cheap to call after any wake-up.
    pub fn collect(&mut self, now: Instant) -> Vec<(K, Report)> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.jobs.len() {
            match self.step(i, now) {
                Some(report) => {
                    let job = self.jobs.swap_remove(i);
                    done.push((job.key, report));
                }
                None => i += 1,
            }
        }
        done
    }

    fn step(&mut self, i: usize, now: Instant) -> Option<Report> {
        let job = &mut self.jobs[i];
        let overdue = job.deadline.is_some_and(|d| now >= d);
        match &mut job.work {
            // Cut short by the caller's deadline (a preStop past the grace period), the kubelet
            // stops waiting and says nothing.
            Work::Sleep { ends } => overdue.then_some(Report::Hook(if now >= *ends {
                HookResult::Done {
                    http_fallback: None,
                }
            } else {
                HookResult::Unfinished
            })),
            Work::Child { pid, out, buf } => {
                if drain(out, buf) {
                    let report = parse_report(buf);
                    return Some(report.unwrap_or_else(|| lost(job.purpose)));
                }
                if !overdue {
                    return None;
                }
                // The child's group: the child and whatever it started (an exec'd command).
                let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
                tracing::warn!(action = ?job.action, "probe child overdue; killed");
                Some(timed_out(job.purpose, &job.action))
            }
        }
    }

    /// Stops the job of `key` (its container went away): the child's group is killed. A
    /// cancelled sleep reports the kubelet's `container terminated before sleep hook
    /// finished`; other jobs report nothing.
    pub fn cancel(&mut self, key: &K) -> Option<Report> {
        let pos = self.jobs.iter().position(|j| &j.key == key)?;
        let job = self.jobs.swap_remove(pos);
        match job.work {
            Work::Sleep { .. } => Some(Report::Hook(HookResult::Failed {
                error: SLEEP_TERMINATED.into(),
                output: None,
            })),
            Work::Child { pid, .. } => {
                let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
                None
            }
        }
    }

    /// Kills every child (the pod is going away); they are reaped as usual.
    pub fn kill_all(&mut self) {
        for key in self.jobs.iter().map(|j| j.key.clone()).collect::<Vec<_>>() {
            self.cancel(&key);
        }
    }

    /// The children started and not reaped yet.
    pub fn unreaped(&self) -> &[Pid] {
        &self.unreaped
    }

    /// From the caller's `waitpid(-1)` loop: true when `pid` was one of our children.
    pub fn on_exit(&mut self, pid: Pid) -> bool {
        match self.unreaped.iter().position(|p| *p == pid) {
            Some(i) => {
                self.unreaped.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

/// Reads what is available; true at EOF (the child has written all it will).
fn drain(out: &OwnedFd, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(out, &mut chunk) {
            Ok(0) => return true,
            Ok(n) => {
                if buf.len() + n > MAX_REPORT {
                    return true;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(nix::errno::Errno::EAGAIN) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

/// The last JSON line of what the child wrote.
fn parse_report(buf: &[u8]) -> Option<Report> {
    String::from_utf8_lossy(buf)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

fn lost(purpose: Purpose) -> Report {
    match purpose {
        Purpose::Probe { .. } => Report::Probe(ProbeResult::unknown(NO_REPORT)),
        Purpose::Hook => Report::Hook(HookResult::Failed {
            error: NO_REPORT.into(),
            output: None,
        }),
    }
}

/// What the kubelet says of a probe that ran out of time; a hook is just unfinished.
fn timed_out(purpose: Purpose, action: &Action) -> Report {
    let Purpose::Probe { timeout } = purpose else {
        return Report::Hook(HookResult::Unfinished);
    };
    let text = match action {
        Action::Exec { command } => exec_timeout(command),
        Action::Http(get) => format!(
            "Get {}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            quote(&http::Url::of(get).to_string())
        ),
        Action::Tcp { host, port } => {
            format!("dial tcp {}: {IO_TIMEOUT}", join_host_port(host, *port))
        }
        Action::Grpc { host, port, .. } => {
            grpc_connect_timeout(&join_host_port(host, *port), timeout)
        }
        Action::Sleep { .. } => return Report::Probe(ProbeResult::Success),
    };
    Report::Probe(ProbeResult::Failure(text))
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), ProbeError> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| ProbeError::Spawn {
        step: "set the report pipe non-blocking",
        source: e.into(),
    })?;
    Ok(())
}

/// Forks the child from a single-threaded caller: no exec, the pages stay shared.
fn fork_child(request: &Request) -> Result<(Pid, OwnedFd), ProbeError> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ProbeError::Spawn {
        step: "pipe2",
        source: e.into(),
    })?;
    // SAFETY: the caller checked that this process has one thread, so the child may allocate
    // and run any code; it never returns from `child_main`.
    match unsafe { fork() }.map_err(|e| ProbeError::Spawn {
        step: "fork",
        source: e.into(),
    })? {
        ForkResult::Child => {
            drop(rd);
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            detach_from_parent(wr.as_raw_fd());
            let mut out = std::fs::File::from(wr);
            child_main(request, &mut out);
            // SAFETY: _exit ends the forked copy without running the parent's exit handlers
            // or destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            // Also here, so that a kill of the group right away cannot miss it.
            let _ = setpgid(child, child);
            set_nonblocking(&rd)?;
            Ok((child, rd))
        }
    }
}

/// In a forked child: only stdio and the report pipe stay open (a lock, a socket or a pipe end
/// of the supervisor held by a probe would outlive its purpose: close_range(2)), and the mask
/// the supervisor blocks for its signalfd is cleared (sigprocmask(2); a command the probe
/// starts gets a clean one from the runtime anyway).
fn detach_from_parent(keep: RawFd) {
    let close = |from: RawFd, to: u32| {
        // SAFETY: close_range takes numbers only; the copies of the parent's descriptors it
        // closes are never used again in this child, which ends in _exit.
        unsafe { libc::syscall(libc::SYS_close_range, from as u32, to, 0u32) }
    };
    if keep > 3 {
        close(3, (keep - 1) as u32);
    }
    close((keep + 1).max(3), u32::MAX);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Re-executes `exe __probe` (the caller has threads: fork then run is not safe).
fn reexec_child(exe: &Path, request: &Request) -> Result<(Pid, OwnedFd), ProbeError> {
    let spawn_err = |step| move |source| ProbeError::Spawn { step, source };
    let mut child = Command::new(exe)
        .arg(PROBE_VERB)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(spawn_err("spawn"))?;
    let pid = Pid::from_raw(child.id() as i32);
    let json = serde_json::to_vec(request)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&json)
            .map_err(spawn_err("write the request"))?;
    }
    let out = child
        .stdout
        .take()
        .ok_or_else(|| spawn_err("stdout")(std::io::Error::other("no pipe")))?;
    let out = OwnedFd::from(out);
    set_nonblocking(&out)?;
    // The caller reaps the child (waitpid(-1)); the handle is dropped without waiting.
    Ok((pid, out))
}

/// Entry point of `peapod __probe`: the request on stdin, the report on stdout.
pub fn probe_main() -> i32 {
    crate::pod::supervisor::init_logging();
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        tracing::error!(error = %e, "cannot read the probe request");
        return 2;
    }
    let request: Request = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "invalid probe request");
            return 2;
        }
    };
    child_main(&request, &mut std::io::stdout());
    0
}

/// The child's whole life: run, report, and for an exec past its timeout end what it left.
fn child_main(request: &Request, out: &mut impl Write) {
    let (report, timed_out) = run_request(request);
    match serde_json::to_string(&report) {
        Ok(line) => {
            if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                tracing::warn!(error = %e, "cannot write the probe report");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode the probe report"),
    }
    if timed_out {
        exec::kill_process_group();
    }
}

/// Does the work of a request in this (child) process; true when an exec ran out of time.
pub(super) fn run_request(request: &Request) -> (Report, bool) {
    let report = match &request.action {
        Action::Exec { command } => return run_exec(request, command),
        _ => run_network(request),
    };
    (report, false)
}

fn run_exec(request: &Request, command: &[String]) -> (Report, bool) {
    let Some(target) = request.exec.as_ref() else {
        let error = "no container to exec in".to_string();
        let report = match request.purpose {
            Purpose::Probe { .. } => Report::Probe(ProbeResult::unknown(error)),
            Purpose::Hook => Report::Hook(HookResult::Failed {
                error,
                output: None,
            }),
        };
        return (report, false);
    };
    let deadline = match request.purpose {
        Purpose::Probe { timeout } => Some(Instant::now() + timeout),
        Purpose::Hook => None,
    };
    let run = exec::run(target, command, deadline);
    let timed_out = run.end == exec::ExecEnd::TimedOut;
    let report = match request.purpose {
        Purpose::Probe { .. } => Report::Probe(run.probe_result(command)),
        Purpose::Hook => Report::Hook(run.hook_result(command)),
    };
    (report, timed_out)
}

fn run_network(request: &Request) -> Report {
    let network = !matches!(request.action, Action::Exec { .. } | Action::Sleep { .. });
    if let (true, Some(ns)) = (network, request.netns.as_deref()) {
        if let Err(e) = net::join_netns(ns) {
            return match request.purpose {
                Purpose::Probe { .. } => Report::Probe(ProbeResult::unknown(e)),
                Purpose::Hook => Report::Hook(HookResult::Failed {
                    error: e,
                    output: None,
                }),
            };
        }
    }
    match (request.purpose, &request.action) {
        (_, Action::Exec { .. }) => Report::Probe(ProbeResult::unknown("exec in the network path")),
        (Purpose::Probe { timeout }, Action::Http(get)) => Report::Probe(http::probe(get, timeout)),
        (Purpose::Hook, Action::Http(get)) => Report::Hook(http::hook(get)),
        (Purpose::Probe { timeout }, Action::Tcp { host, port }) => {
            Report::Probe(net::tcp_probe(host, *port, timeout))
        }
        (
            Purpose::Probe { timeout },
            Action::Grpc {
                host,
                port,
                service,
            },
        ) => Report::Probe(grpc::probe(host, *port, service, timeout)),
        (Purpose::Probe { .. }, Action::Sleep { .. }) => Report::Probe(ProbeResult::Success),
        (Purpose::Hook, Action::Sleep { seconds }) => {
            std::thread::sleep(Duration::from_secs((*seconds).max(0) as u64));
            Report::Hook(HookResult::Done {
                http_fallback: None,
            })
        }
        (Purpose::Hook, Action::Tcp { .. } | Action::Grpc { .. }) => {
            Report::Hook(HookResult::Failed {
                error: "invalid handler: not supported as a lifecycle handler".into(),
                output: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_end_at_their_deadline_and_cancel_as_the_kubelet_says() {
        let mut r: ProbeRunner<u8> = ProbeRunner::new();
        let sleep = |seconds| Request {
            purpose: Purpose::Hook,
            action: Action::Sleep { seconds },
            netns: None,
            exec: None,
        };
        r.start(1, sleep(0), None).unwrap();
        r.start(2, sleep(60), None).unwrap();
        assert!(r.fds().is_empty(), "a sleep has no child");
        let now = Instant::now();
        let done = r.collect(now);
        assert_eq!(
            done,
            vec![(
                1,
                Report::Hook(HookResult::Done {
                    http_fallback: None
                })
            )]
        );
        assert!(r
            .next_deadline()
            .is_some_and(|d| d > now + Duration::from_secs(50)));
        assert!(r.is_running(&2));
        assert_eq!(
            r.cancel(&2),
            Some(Report::Hook(HookResult::Failed {
                error: SLEEP_TERMINATED.into(),
                output: None
            }))
        );
        assert!(!r.is_running(&2));
        assert!(!r.on_exit(Pid::from_raw(1)));
    }

    #[test]
    fn a_sleep_cut_by_the_callers_deadline_is_unfinished() {
        // A preStop sleep longer than what is left of the grace period.
        let mut r: ProbeRunner<u8> = ProbeRunner::new();
        let now = Instant::now();
        let request = Request {
            purpose: Purpose::Hook,
            action: Action::Sleep { seconds: 30 },
            netns: None,
            exec: None,
        };
        r.start(1, request, Some(now + Duration::from_millis(10)))
            .unwrap();
        assert!(r
            .next_deadline()
            .is_some_and(|d| d <= now + Duration::from_millis(10)));
        assert!(r.collect(now).is_empty());
        assert_eq!(
            r.collect(now + Duration::from_secs(1)),
            vec![(1, Report::Hook(HookResult::Unfinished))]
        );
        assert!(r.unreaped().is_empty(), "a sleep has no child");
    }

    #[test]
    fn overdue_and_silent_children_get_the_kubelets_words() {
        let probe = Purpose::Probe {
            timeout: Duration::from_secs(1),
        };
        let tcp = Action::Tcp {
            host: "10.88.0.5".into(),
            port: 80,
        };
        assert_eq!(
            timed_out(probe, &tcp),
            Report::Probe(ProbeResult::Failure(
                "dial tcp 10.88.0.5:80: i/o timeout".into()
            ))
        );
        assert_eq!(
            timed_out(Purpose::Hook, &tcp),
            Report::Hook(HookResult::Unfinished)
        );
        assert_eq!(lost(probe), Report::Probe(ProbeResult::unknown(NO_REPORT)));
        let line = serde_json::to_string(&Report::Probe(ProbeResult::Success)).unwrap();
        assert_eq!(
            parse_report(format!("log noise\n{line}\n").as_bytes()),
            Some(Report::Probe(ProbeResult::Success))
        );
        assert_eq!(parse_report(b"garbage"), None);
    }
}
