//! `peapod exec`: runs a command inside a running container, with the container's namespaces,
//! cgroup, env, cwd, user and capabilities, and the caller's stdio or a new terminal.
//!
//! setns(2) with CLONE_NEWPID changes only the pid namespace of the caller's future children,
//! so the caller joins the pid namespace and then forks; the child joins the other namespaces
//! (the mount namespace last, because after it the host's /proc paths are gone) and execs.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{Process, Spec};

use super::error::RuntimeError;
use super::init::finish_and_exec;

/// Namespaces joined by the forked child, in order; `mnt` must stay last.
const CHILD_NAMESPACES: &[(&str, CloneFlags)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Exit code for a command that could not be found or executed, as runc and kubectl use.
pub const EXIT_NOT_FOUND: i32 = 127;

/// How `peapod exec` connects the command, as kubectl's `-i` and `-t` ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecMode {
    /// Pass the caller's stdin (`-i`); without, the command reads /dev/null.
    pub stdin: bool,
    /// A new pseudo-terminal inside the container (`-t`, with `-i` and a terminal as stdin).
    pub tty: bool,
}

/// Runs `command` in the container whose pid 1 is `target_pid` (a host pid) and returns its
/// exit code, `128 + N` when it was killed by signal N.
///
/// A command that is not found (or cannot be executed) is reported like kubectl does: the
/// message (`exec: "x": executable file not found in $PATH`) goes to the caller's stderr and the
/// result is `Ok(127)`. A failure to enter the container returns `RuntimeError::Exec`.
///
/// Without `mode.tty` the command has the caller's stdout and stderr, and its stdin when
/// `mode.stdin`. With it, the command gets a pseudo-terminal of the container's own devpts as
/// its controlling terminal and stdio, relayed to the caller's terminal in raw mode
/// (`super::terminal`). The caller must be single-threaded (it forks and the child allocates).
pub fn exec_in(
    target_pid: i32,
    spec: &Spec,
    command: &[String],
    mode: ExecMode,
) -> Result<i32, RuntimeError> {
    if mode.tty {
        let (ours, theirs) = super::terminal::socket_pair()?;
        let child = spawn_inner(target_pid, spec, command, true, Streams::Terminal(theirs))?;
        return super::terminal::relay(child.pid, child.failure, ours, mode.stdin);
    }
    let streams = Streams::Caller { stdin: mode.stdin };
    let child = spawn_inner(target_pid, spec, command, false, streams)?;
    parent(child.pid, child.failure)
}

/// Where a command started in a container gets its stdio.
enum Streams {
    /// The caller's stdout and stderr; its stdin or /dev/null.
    Caller { stdin: bool },
    /// A new pseudo-terminal in the container; the master is sent on this socket.
    Terminal(OwnedFd),
    /// The given streams (probes and hooks); a failure to exec is reported, not printed.
    Given(ExecStdio),
}

/// The standard streams of a command started by [`spawn_in`]; stdin is `/dev/null` when None.
#[derive(Debug)]
pub struct ExecStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A command started inside a container by [`spawn_in`]. The caller reaps `pid`.
#[derive(Debug)]
pub struct ExecChild {
    /// The command's pid as the host sees it; it stays in the caller's process group.
    pub pid: Pid,
    /// Read end of the child's report pipe: EOF without a byte once the command is exec'd.
    failure: OwnedFd,
}

impl ExecChild {
    /// Waits until the command runs. `Err(message)` when entering the container or exec'ing
    /// failed (`exec: "x": executable file not found in $PATH`); the child then exits 127.
    pub fn started(self) -> Result<Pid, String> {
        let mut message = String::new();
        if let Err(e) = std::fs::File::from(self.failure).read_to_string(&mut message) {
            return Err(format!("reading the exec report: {e}"));
        }
        if message.is_empty() {
            Ok(self.pid)
        } else {
            Err(message)
        }
    }
}

/// Starts `command` in the container whose pid 1 is `target_pid` without waiting for it: the
/// common part of `peapod exec` and of exec probes and hooks. With `stdio` the command gets
/// those streams and a command that cannot be exec'd is reported through [`ExecChild::started`];
/// without, it inherits the caller's stdio and the message goes to stderr (exit code 127), as
/// `peapod exec` shows it. The caller must be single-threaded.
pub fn spawn_in(
    target_pid: i32,
    spec: &Spec,
    command: &[String],
    tty: bool,
    stdio: Option<ExecStdio>,
) -> Result<ExecChild, RuntimeError> {
    let streams = match stdio {
        Some(io) => Streams::Given(io),
        None => Streams::Caller { stdin: true },
    };
    spawn_inner(target_pid, spec, command, tty, streams)
}

fn spawn_inner(
    target_pid: i32,
    spec: &Spec,
    command: &[String],
    tty: bool,
    streams: Streams,
) -> Result<ExecChild, RuntimeError> {
    if command.is_empty() {
        return Err(RuntimeError::Exec {
            message: "no command given".into(),
        });
    }
    let mut process: Process = spec.process().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    process.set_args(Some(command.to_vec()));
    // The container's seccomp profile confines exec'd processes too, as with `runc exec`.
    let filter = super::init::compile_seccomp(spec).map_err(|e| RuntimeError::Exec {
        message: e.to_string(),
    })?;

    let ns_dir = PathBuf::from(format!("/proc/{target_pid}/ns"));
    let pid_ns = open_ro(&ns_dir.join("pid"))?;
    let mut joins = Vec::new();
    for (name, flag) in CHILD_NAMESPACES {
        joins.push((open_ro(&ns_dir.join(name))?, *flag, *name));
    }
    let cgroup_procs = container_cgroup_procs(target_pid)?;
    let null = match &streams {
        Streams::Given(ExecStdio { stdin: None, .. }) | Streams::Caller { stdin: false } => {
            Some(open_ro(Path::new("/dev/null"))?)
        }
        _ => None,
    };

    // Our own pid namespace, to restore our pid_for_children after the fork: left pointing at
    // the container's namespace, a later clone(CLONE_NEWPID) by this process (spawn) would
    // fail with EINVAL once that container is gone.
    let own_pid_ns = open_ro(Path::new("/proc/self/ns/pid"))?;
    setns(&pid_ns, CloneFlags::CLONE_NEWPID)
        .map_err(|e| RuntimeError::sys(format!("setns {}", ns_dir.join("pid").display()), e))?;
    let (pipe_rd, pipe_wr) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("pipe2", e))?;

    // SAFETY: the caller is single-threaded (documented requirement), so the child may use the
    // allocator and any library code; it ends in execve or exit.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        setns(&own_pid_ns, CloneFlags::CLONE_NEWPID)
            .map_err(|e| RuntimeError::sys("setns back to our own pid namespace", e))?;
    }
    match forked.map_err(|e| RuntimeError::sys("fork", e))? {
        ForkResult::Child => {
            drop(pipe_rd);
            drop(own_pid_ns);
            let report_exec_failure = matches!(streams, Streams::Given(_));
            let fds = match &streams {
                Streams::Given(io) => [
                    io.stdin.as_ref().or(null.as_ref()).map(AsRawFd::as_raw_fd),
                    Some(io.stdout.as_raw_fd()),
                    Some(io.stderr.as_raw_fd()),
                ],
                Streams::Caller { .. } => [null.as_ref().map(AsRawFd::as_raw_fd), None, None],
                Streams::Terminal(_) => [None; 3],
            };
            for (target, fd) in fds.into_iter().enumerate() {
                // SAFETY: dup2 of descriptors this process owns onto 0-2; it clears
                // FD_CLOEXEC on the copies, so they survive the exec.
                if fd.is_some_and(|fd| unsafe { libc::dup2(fd, target as i32) } < 0) {
                    let _ = nix::unistd::write(&pipe_wr, b"dup2 stdio");
                    std::process::exit(EXIT_NOT_FOUND);
                }
            }
            let terminal = match streams {
                Streams::Terminal(socket) => Some(socket),
                _ => None,
            };
            child(
                &process,
                command,
                filter.as_ref(),
                cgroup_procs,
                &joins,
                pipe_wr,
                ChildOutput {
                    report_exec_failure,
                    terminal,
                },
            )
        }
        ForkResult::Parent { child } => {
            drop(pipe_wr);
            drop(joins);
            Ok(ExecChild {
                pid: child,
                failure: pipe_rd,
            })
        }
    }
}

fn open_ro(path: &Path) -> Result<OwnedFd, RuntimeError> {
    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| RuntimeError::sys(format!("open {}", path.display()), e))
}

/// The container's cgroup v2 `cgroup.procs`, opened for writing, when the container is in a
/// different cgroup v2 directory than we are. Read from /proc/<pid>/cgroup (line `0::<path>`)
/// and the host's cgroup2 mount point in /proc/self/mountinfo.
fn container_cgroup_procs(pid: i32) -> Result<Option<OwnedFd>, RuntimeError> {
    let theirs = unified_path(&format!("/proc/{pid}/cgroup"))?;
    let ours = unified_path("/proc/self/cgroup")?;
    let (Some(theirs), Some(mount)) = (theirs.clone(), cgroup2_mount()?) else {
        return Ok(None);
    };
    if Some(&theirs) == ours.as_ref() {
        return Ok(None);
    }
    let path = mount
        .join(theirs.trim_start_matches('/'))
        .join("cgroup.procs");
    Ok(Some(
        open(
            path.as_path(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::sys(format!("open {}", path.display()), e))?,
    ))
}

fn unified_path(file: &str) -> Result<Option<String>, RuntimeError> {
    let text = std::fs::read_to_string(file).map_err(|e| RuntimeError::io(file, e))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string))
}

fn cgroup2_mount() -> Result<Option<PathBuf>, RuntimeError> {
    let file = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(file).map_err(|e| RuntimeError::io(file, e))?;
    // mountinfo: "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
    Ok(text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mountpoint = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(mountpoint))
    }))
}

/// What the forked child does with its output: report a failure to exec on the pipe (probes,
/// hooks) rather than on stderr; make a terminal (and send it on this socket).
struct ChildOutput {
    report_exec_failure: bool,
    terminal: Option<OwnedFd>,
}

fn child(
    process: &Process,
    command: &[String],
    filter: Option<&super::seccomp::Compiled>,
    cgroup_procs: Option<OwnedFd>,
    joins: &[(OwnedFd, CloneFlags, &str)],
    pipe: OwnedFd,
    output: ChildOutput,
) -> ! {
    let ChildOutput {
        report_exec_failure,
        terminal,
    } = output;
    let mut pipe = std::fs::File::from(pipe);
    let mut fail = |message: String| -> ! {
        let _ = pipe.write_all(message.as_bytes());
        std::process::exit(EXIT_NOT_FOUND);
    };
    if let Some(fd) = cgroup_procs {
        // "0" moves the writer itself (cgroups(7)).
        if let Err(e) = nix::unistd::write(&fd, b"0") {
            fail(format!("join cgroup: {}", super::errno_text(e as i32)));
        }
    }
    for (fd, flag, name) in joins {
        if let Err(e) = setns(fd, *flag) {
            fail(format!("setns {name}: {}", super::errno_text(e as i32)));
        }
    }
    // Inside the container's mount namespace: /dev/ptmx is its own devpts's.
    if let Some(socket) = terminal {
        if let Err(e) = super::terminal::take_new_terminal(socket, process) {
            fail(e);
        }
    }
    // The container's AppArmor profile confines exec'd processes too, as with `runc exec`.
    if let Err(e) = super::apparmor::apply(process) {
        fail(e.to_string());
    }
    let late = match super::init::load_privileged(process, filter.cloned()) {
        Ok(late) => late,
        Err(e) => fail(e.to_string()),
    };
    let err = match finish_and_exec(process, command, late.as_ref()) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if err.step.starts_with("exec: ") && !report_exec_failure {
        // What the user asked to run is not there: tell them on their stderr, like kubectl.
        let _ = writeln!(std::io::stderr(), "{err}");
        std::process::exit(EXIT_NOT_FOUND);
    }
    fail(err.to_string())
}

pub(super) fn parent(child: Pid, pipe: OwnedFd) -> Result<i32, RuntimeError> {
    // Like system(3): while the command runs, ^C and ^\ are for it, not for us.
    // SAFETY: SIG_IGN installs no handler code.
    let old_int = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }.ok();
    // SAFETY: as above.
    let old_quit = unsafe { signal(Signal::SIGQUIT, SigHandler::SigIgn) }.ok();
    let mut message = String::new();
    let _ = std::fs::File::from(pipe).read_to_string(&mut message);
    let status = loop {
        match waitpid(child, None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break Ok(s),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(RuntimeError::sys("waitpid", e)),
        }
    };
    for (sig, old) in [(Signal::SIGINT, old_int), (Signal::SIGQUIT, old_quit)] {
        if let Some(handler) = old {
            // SAFETY: restores the disposition that was installed before.
            unsafe { signal(sig, handler) }.ok();
        }
    }
    let status = status?;
    if !message.is_empty() {
        return Err(RuntimeError::Exec { message });
    }
    Ok(match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => EXIT_NOT_FOUND,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_unified_path_is_readable() {
        // Every Linux process has a v2 line, even on hybrid hosts.
        assert!(unified_path("/proc/self/cgroup").unwrap().is_some());
    }
}
