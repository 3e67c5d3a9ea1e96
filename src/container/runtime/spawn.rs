//! `spawn`: creates the container's pid 1 as a direct child of the caller, which then runs the
//! init (rootfs, mounts, pivot_root, credentials, exec) inside the new pid and mount
//! namespaces: directly when the caller is single-threaded (the supervisor), else by
//! re-executing peapod as `peapod __init <bundle>`.
//!
//! Why a raw `clone(2)` and not `fork` + `unshare`: `unshare(CLONE_NEWPID)` does not move the
//! caller, only its future children (see pid_namespaces(7)), so the caller would have to fork
//! twice and would no longer be the parent that waitpid()s the container. `clone` with
//! `CLONE_NEWPID` makes the child itself pid 1 of the new namespace, and SIGCHLD as the exit
//! signal keeps it an ordinary waitable child. With a NULL stack the kernel gives the child a
//! copy-on-write copy of the caller's stack, like fork.
//!
//! On the re-exec path the child may only use async-signal-safe calls until execve
//! (signal-safety(7)): a multi-threaded caller may hold allocator locks it will never release in
//! the child. Everything that allocates (C strings, argv/envp arrays, opened namespace and
//! cgroup fds) is prepared first. The direct path is taken only when the caller has one thread,
//! so no lock can be held by a thread that does not exist in the child.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::error::{errno_text, RuntimeError};
use super::{
    ContainerStdio, Spawned, AT_GATE, INIT_ARG, INIT_CONSOLE_ENV, INIT_GATE_ENV, INIT_PIPE_ENV,
};
use crate::cgroup::clone::Cloned;

/// Lowest fd number used for the child's prepared copies of its stdio, so that the final dup2
/// onto 0, 1 and 2 can never overwrite a source that has not been duplicated yet.
const HIGH_FD: RawFd = 100;

/// The running binary: the supervisor is peapod itself, so the init is the same executable.
const SELF_EXE: &str = "/proc/self/exe";

/// Separates the failed step from the errno digits in a message written by the raw child,
/// which cannot format strerror text without allocating; the parent formats it.
const ERRNO_MARK: u8 = 0;

/// A namespace to enter with setns(2) in the child.
struct Join {
    target: JoinTarget,
    nstype: libc::c_int,
    what: &'static [u8],
}

/// The namespace file: opened here, or (a sandbox still making its namespaces) by the child
/// once the sandbox is ready, as the path names another namespace until then.
enum JoinTarget {
    Fd(OwnedFd),
    Path(CString),
}

/// Everything the child needs, prepared before clone.
struct Prepared {
    exe: CString,
    // Keep the CStrings alive: argv/envp point into them.
    _argv_store: Vec<CString>,
    _envp_store: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// The container's cgroup directory: the child is created in it (or joins it).
    cgroup_dir: Option<OwnedFd>,
    new_cgroup_ns: bool,
    joins: Vec<Join>,
    /// Hung up once the sandbox's namespaces exist (a pipe whose write end the sandbox process
    /// holds until then, and writes a message to if it fails): the child polls it before it
    /// opens the namespaces of [`JoinTarget::Path`].
    sandbox_ready: Option<RawFd>,
    /// An existing pid namespace to create the child in (a pod that shares one), instead of a
    /// new one: setns(2) on the caller's pid_for_children around the clone.
    pid_ns: Option<OwnedFd>,
    stdio: [OwnedFd; 3],
    /// The socket the init sends its terminal's master on (`process.terminal`).
    console: Option<OwnedFd>,
    clone_flags: u64,
}

/// Starts the container described by `spec`, whose `config.json` is in `bundle`.
///
/// The caller becomes the parent of the container's pid 1 and must waitpid() it. Between clone
/// and exec the child runs async-signal-safe code only, so calling this from a multi-threaded
/// process is sound too (the integration test does), though peapod calls it from the
/// single-threaded per-pod supervisor.
/// Returns once the init has exec'd the user program, or `RuntimeError::Start` with the init's
/// message (`exec: "x": executable file not found in $PATH`) after reaping it.
pub fn spawn(spec: &Spec, bundle: &Path, stdio: ContainerStdio) -> Result<Spawned, RuntimeError> {
    create(spec, bundle, stdio)?.start()
}

/// Creates the container without starting it: the child prepares its root filesystem, mounts
/// and devices, then waits at a gate until [`Created::start`]; dropping the handle instead makes
/// it exit. The caller can do other work (the pod's network) while the child mounts.
pub fn create(spec: &Spec, bundle: &Path, stdio: ContainerStdio) -> Result<Created, RuntimeError> {
    create_in_sandbox(spec, bundle, stdio, None)
}

/// [`create`] for a container whose sandbox may still be making the namespaces the Spec
/// joins (net, uts, ipc): `sandbox_ready` hangs up once they exist (see `Prepared`). The child
/// is cloned at once and waits for them itself, so the clone overlaps the kernel's work on the
/// network namespace; a multi-threaded caller waits here instead. A single-threaded caller
/// writes the bundle (`write_bundle`) before it starts the container; for a multi-threaded one,
/// whose child re-executes peapod to read it, it is written here before the clone.
pub fn create_in_sandbox(
    spec: &Spec,
    bundle: &Path,
    stdio: ContainerStdio,
    sandbox_ready: Option<BorrowedFd>,
) -> Result<Created, RuntimeError> {
    // From a single-threaded caller (the supervisor) the child may run the init directly; a
    // multi-threaded caller gets the async-signal-safe path that re-executes peapod.
    let direct = crate::procfs::thread_count() == 1;
    let mut sandbox_ready = sandbox_ready.map(|fd| fd.as_raw_fd());
    if !direct {
        // `peapod __init` reads the Spec from the bundle (a direct caller may write it after
        // the clone, while the init mounts).
        super::write_bundle(bundle, spec)?;
        if let Some(fd) = sandbox_ready.take() {
            wait_hangup(fd);
        }
    }
    create_inner(
        spec,
        bundle,
        stdio,
        Path::new(SELF_EXE),
        direct,
        sandbox_ready,
    )
}

/// Blocks until `fd` hangs up; true when data waits in it too (the sandbox's failure message,
/// left for its owner to read). Allocates nothing: the child calls it.
fn wait_hangup(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: poll(2) on one pollfd we own, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, -1) };
        if n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return p.revents & libc::POLLIN != 0;
        }
        if n > 0 && p.revents & libc::POLLIN != 0 {
            // A message before the hang-up: the sandbox failed.
            return true;
        }
        if n < 0 && Errno::last() != Errno::EINTR {
            // Cannot wait (ENOMEM): counted as a failed sandbox rather than spun on.
            return true;
        }
    }
}

/// A container whose init is prepared and waiting to exec the user program.
#[derive(Debug)]
pub struct Created {
    pid: i32,
    pipe_rd: Option<OwnedFd>,
    gate_w: Option<OwnedFd>,
    /// Our end of the console socket, when the Spec asks for a terminal.
    console: Option<OwnedFd>,
}

impl Created {
    /// The container's pid 1 as seen from the host.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Opens the gate and waits until the init has exec'd the user program; returns
    /// `RuntimeError::Start` with the init's message (after reaping it) if any step failed.
    pub fn start(self) -> Result<Spawned, RuntimeError> {
        self.start_with(|| ())
    }

    /// [`Created::start`], running `meanwhile` once the gate is open, while the init execs
    /// the user program on another CPU (work that needs only the pid, such as recording it).
    pub fn start_with(self, meanwhile: impl FnOnce()) -> Result<Spawned, RuntimeError> {
        let pid = self.pid;
        let mut spawned = self.start_at_gate(meanwhile)?;
        if let Some(pipe) = spawned.exec_report.take() {
            let mut message = Vec::new();
            if let Err(e) = std::fs::File::from(pipe).read_to_end(&mut message) {
                tracing::warn!(pid, error = %e, "reading the init pipe failed");
            }
            if !message.is_empty() {
                return Err(failed_init(pid, &message));
            }
        }
        Ok(spawned)
    }

    /// Opens the gate, runs `meanwhile`, and returns once the init has passed its gate:
    /// everything that can fail before the user program's execve succeeded (as `runc start`
    /// returns once its init has passed the exec fifo), and the execve runs on another CPU.
    /// If the execve fails, its message comes on [`Spawned::exec_report`]: [`exec_failure`]
    /// once the process has ended. A step that failed before the gate is
    /// `RuntimeError::Start` with the init's message, after reaping it.
    pub fn start_at_gate(mut self, meanwhile: impl FnOnce()) -> Result<Spawned, RuntimeError> {
        let pid = self.pid;
        if let Some(gate) = self.gate_w.take() {
            // EPIPE means the init already failed; its message is on the pipe.
            let _ = nix::unistd::write(&gate, b"1");
        }
        meanwhile();
        let mut exec_report = None;
        if let Some(pipe) = self.pipe_rd.take() {
            let mut reader = std::fs::File::from(pipe);
            let mut first = [0u8; 1];
            let n = loop {
                match reader.read(&mut first) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!(pid, error = %e, "reading the init pipe failed");
                        break 0;
                    }
                    Ok(n) => break n,
                }
            };
            if n == 1 && first[0] == AT_GATE {
                exec_report = Some(OwnedFd::from(reader));
            } else if n == 1 {
                let mut message = first.to_vec();
                if let Err(e) = reader.read_to_end(&mut message) {
                    tracing::warn!(pid, error = %e, "reading the init pipe failed");
                }
                return Err(failed_init(pid, &message));
            }
            // EOF with nothing: the init ended without a word (killed); its exit tells.
        }
        tracing::debug!(pid, "container started");
        // The init sent the master before its gate, so it is waiting in the socket.
        let terminal = match self.console.take() {
            Some(socket) => match super::terminal::receive_master(&socket) {
                Ok(Some(master)) => Some(master),
                other => {
                    // Running without the terminal it was made for: stop it, reap it.
                    let _ = nix::sys::signal::kill(
                        Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = waitpid(Pid::from_raw(pid), None);
                    return Err(match other {
                        Err(e) => e,
                        _ => RuntimeError::Start {
                            message: "the init sent no terminal".into(),
                        },
                    });
                }
            },
            None => None,
        };
        Ok(Spawned {
            pid,
            terminal,
            exec_report,
        })
    }
}

/// The init failed and exits 127: reaped, so that no zombie is left behind; its message.
fn failed_init(pid: i32, raw: &[u8]) -> RuntimeError {
    let _ = waitpid(Pid::from_raw(pid), None);
    let message = decode_child_message(raw);
    tracing::error!(pid, %message, "container init failed");
    RuntimeError::Start { message }
}

/// What a container's execve reported after its gate ([`Spawned::exec_report`]), read once
/// its process has ended (so the pipe's writer is gone): the failure's message, or None when
/// the execve succeeded (the close-on-exec pipe closed with nothing more on it).
pub fn exec_failure(report: OwnedFd) -> Option<String> {
    let mut raw = Vec::new();
    // Never blocks the caller's loop, even if a writer were somehow left.
    if nix::fcntl::fcntl(&report, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).is_ok() {
        let _ = std::fs::File::from(report).read_to_end(&mut raw);
    }
    (!raw.is_empty()).then(|| decode_child_message(&raw))
}

impl Drop for Created {
    /// Not started: closing the gate makes the init exit; reap it.
    fn drop(&mut self) {
        if self.gate_w.take().is_some() {
            let _ = waitpid(Pid::from_raw(self.pid), None);
        }
    }
}

/// [`spawn`] with an explicit peapod binary to run as `<init_exe> __init <bundle>`, for callers
/// that are not the peapod binary themselves (integration tests use `CARGO_BIN_EXE_peapod`).
pub fn spawn_with_init(
    spec: &Spec,
    bundle: &Path,
    stdio: ContainerStdio,
    init_exe: &Path,
) -> Result<Spawned, RuntimeError> {
    create_inner(spec, bundle, stdio, init_exe, false, None)?.start()
}

fn create_inner(
    spec: &Spec,
    bundle: &Path,
    stdio: ContainerStdio,
    init_exe: &Path,
    direct: bool,
    sandbox_ready: Option<RawFd>,
) -> Result<Created, RuntimeError> {
    // The gate's read end goes to the child (moved up like the pipe, so stdio cannot clobber
    // it); the write end stays here and is close-on-exec.
    let (gate_rd, gate_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("pipe2", e))?;
    let gate_rd = {
        let high = high_dup(&gate_rd)?;
        drop(gate_rd);
        high
    };
    let (pipe_rd, pipe_wr) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("pipe2", e))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (console, console_child) = if terminal {
        let (ours, theirs) = super::terminal::socket_pair()?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };
    // A daemonized caller may have closed 0-2, so pipe2 could hand out one of them and the
    // child's dup2 of the stdio would clobber it: move the write end up as well.
    let pipe_wr = {
        let high = high_dup(&pipe_wr)?;
        // Drop the low copy now: a stray write end in the parent would keep the read below
        // from ever seeing EOF.
        drop(pipe_wr);
        high
    };
    let fds = InitFds {
        pipe: pipe_wr.as_raw_fd(),
        gate: gate_rd.as_raw_fd(),
        console: console_child.as_ref(),
    };
    let prepared = prepare(spec, bundle, stdio, fds, init_exe, sandbox_ready)?;
    drop(console_child);

    // Joining a pid namespace moves only the children made afterwards (pid_namespaces(7)), so
    // the caller enters it for the clone and returns to its own right after, as `exec_in` does.
    let own_pid_ns = match &prepared.pid_ns {
        Some(target) => {
            let own = open(
                Path::new("/proc/self/ns/pid"),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| RuntimeError::sys("open /proc/self/ns/pid", e))?;
            nix::sched::setns(target, nix::sched::CloneFlags::CLONE_NEWPID)
                .map_err(|e| RuntimeError::sys("setns into the pod's pid namespace", e))?;
            Some(own)
        }
        None => None,
    };
    // SAFETY: like fork(2), the child continues on a copy of this stack. It only runs
    // `child_main`, which uses async-signal-safe syscalls on memory prepared above and never
    // returns. Created in its cgroup (no migration: see `cgroup::clone`) where the kernel can.
    let cloned = unsafe {
        crate::cgroup::clone::clone_into(
            prepared.clone_flags,
            prepared.cgroup_dir.as_ref().map(AsRawFd::as_raw_fd),
        )
    };
    let pid = match cloned {
        Ok(Cloned::Child { joined }) => {
            let gate = Gate {
                read: gate_rd.as_raw_fd(),
                write: gate_w.as_raw_fd(),
            };
            child_main(
                &prepared,
                joined,
                pipe_wr.as_raw_fd(),
                gate,
                direct.then_some(spec),
            );
        }
        Ok(Cloned::Parent { pid }) => Ok(pid),
        Err(e) => Err(e),
    };
    if let Some(own) = &own_pid_ns {
        if let Err(e) = nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID) {
            // Our later children would land in the pod's pid namespace: refuse to go on.
            if let Ok(pid) = pid {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            return Err(RuntimeError::sys("setns back to our own pid namespace", e));
        }
    }
    let pid = pid.map_err(|e| {
        let what = match &prepared.cgroup_dir {
            Some(_) => "clone into the container's cgroup",
            None => "clone",
        };
        RuntimeError::sys(what, e)
    })?;
    drop(pipe_wr);
    drop(gate_rd);
    drop(prepared);
    Ok(Created {
        pid,
        pipe_rd: Some(pipe_rd),
        gate_w: Some(gate_w),
        console,
    })
}

/// The start gate's two ends as the child sees them: it closes `write` (else it could never see
/// EOF) and waits on `read`.
#[derive(Clone, Copy)]
struct Gate {
    read: RawFd,
    write: RawFd,
}

/// Turns `step\0<errno>` (from the raw child) into `step: strerror`; init messages are text.
fn decode_child_message(raw: &[u8]) -> String {
    match raw.iter().position(|b| *b == ERRNO_MARK) {
        Some(i) => {
            let step = String::from_utf8_lossy(&raw[..i]);
            let errno = String::from_utf8_lossy(&raw[i + 1..])
                .parse::<i32>()
                .map(errno_text)
                .unwrap_or_else(|_| "unknown error".into());
            format!("{step}: {errno}")
        }
        None => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// The descriptors the init is given: its report pipe, its start gate, its console socket.
struct InitFds<'a> {
    pipe: RawFd,
    gate: RawFd,
    console: Option<&'a OwnedFd>,
}

fn prepare(
    spec: &Spec,
    bundle: &Path,
    stdio: ContainerStdio,
    fds: InitFds,
    init_exe: &Path,
    sandbox_ready: Option<RawFd>,
) -> Result<Prepared, RuntimeError> {
    let InitFds {
        pipe: pipe_fd,
        gate: gate_fd,
        console,
    } = fds;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidSpec("linux: missing".into()))?;
    // The init always needs its own mount namespace (the overlay must not leak to the host).
    let mut clone_flags = libc::CLONE_NEWNS as u64;
    let mut new_cgroup_ns = false;
    let mut has_pid = false;
    let mut pid_ns = None;
    let mut joins = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let typ = ns.typ();
        match (typ, ns.path()) {
            (LinuxNamespaceType::Pid, None) => {
                has_pid = true;
                clone_flags |= libc::CLONE_NEWPID as u64;
            }
            (LinuxNamespaceType::Pid, Some(path)) => {
                has_pid = true;
                let fd = open(
                    path.as_path(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| RuntimeError::sys(format!("open namespace {}", path.display()), e))?;
                pid_ns = Some(fd);
            }
            (LinuxNamespaceType::Mount, None) => {}
            (LinuxNamespaceType::Cgroup, None) => new_cgroup_ns = true,
            (
                LinuxNamespaceType::Network | LinuxNamespaceType::Uts | LinuxNamespaceType::Ipc,
                None,
            ) => {
                clone_flags |= typ as u64;
            }
            (
                LinuxNamespaceType::Network | LinuxNamespaceType::Uts | LinuxNamespaceType::Ipc,
                Some(path),
            ) => {
                let target = if sandbox_ready.is_some() {
                    JoinTarget::Path(cstring(path.as_os_str().as_bytes())?)
                } else {
                    JoinTarget::Fd(
                        open(
                            path.as_path(),
                            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(|e| {
                            RuntimeError::sys(format!("open namespace {}", path.display()), e)
                        })?,
                    )
                };
                let what: &'static [u8] = match typ {
                    LinuxNamespaceType::Network => b"setns net",
                    LinuxNamespaceType::Uts => b"setns uts",
                    _ => b"setns ipc",
                };
                joins.push(Join {
                    target,
                    nstype: typ as libc::c_int,
                    what,
                });
            }
            (other, _) => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "linux.namespaces: {other} namespace {} is not supported",
                    if ns.path().is_some() {
                        "joining"
                    } else {
                        "creation"
                    }
                )))
            }
        }
    }
    if !has_pid {
        // hostPID: the container's first process is an ordinary process of the host's pid
        // namespace, still our child (SIGCHLD); its own children are not killed with it, so
        // stopping the container goes through its cgroup.
        tracing::debug!("container in the host's pid namespace");
    }

    // A Spec that restricts device access names the cgroup that carries the allowlist (the
    // caller attached it); without one the container would run with every device open.
    let restricts_devices = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref())
        .is_some_and(|rules| rules.iter().any(|r| !r.allow()));
    if restricts_devices && linux.cgroups_path().is_none() {
        return Err(RuntimeError::InvalidSpec(
            "linux.resources.devices restricts device access but linux.cgroupsPath names no \
             cgroup to enforce it"
                .into(),
        ));
    }
    let cgroup_dir = match linux.cgroups_path() {
        Some(dir) if dir.is_absolute() => {
            Some(crate::cgroup::clone::open_dir(dir).map_err(|e| RuntimeError::io(dir, e))?)
        }
        Some(dir) => {
            return Err(RuntimeError::InvalidSpec(format!(
                "linux.cgroupsPath: {} is not an absolute cgroupfs directory",
                dir.display()
            )))
        }
        None => None,
    };

    let stdin = match stdio.stdin {
        Some(fd) => fd,
        None => open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::sys("open /dev/null", e))?,
    };
    let stdio = [
        high_dup(&stdin)?,
        high_dup(&stdio.stdout)?,
        high_dup(&stdio.stderr)?,
    ];
    let console = console.map(high_dup).transpose()?;

    let exe = cstring(init_exe.as_os_str().as_bytes())?;
    let bundle_abs: PathBuf =
        std::path::absolute(bundle).map_err(|e| RuntimeError::io(bundle, e))?;
    let argv_store = vec![
        cstring(b"peapod")?,
        cstring(INIT_ARG.as_bytes())?,
        cstring(bundle_abs.as_os_str().as_bytes())?,
    ];
    let mut envp_store = vec![
        cstring(format!("{INIT_PIPE_ENV}={pipe_fd}").as_bytes())?,
        cstring(format!("{INIT_GATE_ENV}={gate_fd}").as_bytes())?,
    ];
    if let Some(fd) = &console {
        envp_store.push(cstring(
            format!("{INIT_CONSOLE_ENV}={}", fd.as_raw_fd()).as_bytes(),
        )?);
    }
    for key in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(key) {
            envp_store.push(cstring(format!("{key}={v}").as_bytes())?);
        }
    }
    let argv = null_terminated(&argv_store);
    let envp = null_terminated(&envp_store);
    Ok(Prepared {
        exe,
        _argv_store: argv_store,
        _envp_store: envp_store,
        argv,
        envp,
        cgroup_dir,
        new_cgroup_ns,
        joins,
        sandbox_ready,
        pid_ns,
        stdio,
        console,
        clone_flags,
    })
}

fn cstring(bytes: &[u8]) -> Result<CString, RuntimeError> {
    CString::new(bytes).map_err(|_| {
        RuntimeError::InvalidSpec(format!(
            "{}: contains a NUL byte",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn high_dup(fd: &OwnedFd) -> Result<OwnedFd, RuntimeError> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd (or -1) and touches no memory.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if new < 0 {
        return Err(RuntimeError::sys("dup stdio", Errno::last()));
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The child between clone and execve: join the cgroup (unless it was `joined` at clone),
/// the cgroup and sandbox namespaces, install stdio, then either run the init right here
/// (`direct`: the caller was single-threaded, so ordinary code is safe in the child) or keep
/// the pipe open across exec and exec `peapod __init`.
fn child_main(p: &Prepared, joined: bool, pipe: RawFd, gate: Gate, direct: Option<&Spec>) -> ! {
    // SAFETY (whole function): only async-signal-safe syscalls on fds and memory prepared
    // before clone; every path ends in execve or _exit.
    unsafe {
        libc::close(gate.write);
        // In the cgroup before the cgroup namespace is created, so that the namespace root is
        // the container's cgroup. (Not CLONE_NEWCGROUP at clone: the kernel makes the
        // namespaces before it places the child, so the root would be the supervisor's.)
        if let Some(fd) = p.cgroup_dir.as_ref().filter(|_| !joined) {
            if let Err(e) = crate::cgroup::clone::join(fd.as_raw_fd()) {
                e.set();
                child_fail(pipe, b"join cgroup");
            }
        }
        if p.new_cgroup_ns && libc::unshare(libc::CLONE_NEWCGROUP) < 0 {
            child_fail(pipe, b"unshare cgroup namespace");
        }
        if let Some(fd) = p.sandbox_ready {
            if wait_hangup(fd) {
                // Its owner reads and reports the sandbox's own message.
                Errno::ECHILD.set();
                child_fail(pipe, b"sandbox namespaces");
            }
        }
        for join in &p.joins {
            let fd = match &join.target {
                JoinTarget::Fd(fd) => fd.as_raw_fd(),
                JoinTarget::Path(path) => {
                    let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        child_fail(pipe, b"open sandbox namespace");
                    }
                    fd
                }
            };
            if libc::setns(fd, join.nstype) < 0 {
                child_fail(pipe, join.what);
            }
        }
        for (target, fd) in p.stdio.iter().enumerate() {
            // dup2 clears FD_CLOEXEC on the new descriptor, so 0-2 survive the exec.
            if libc::dup2(fd.as_raw_fd(), target as RawFd) < 0 {
                child_fail(pipe, b"dup2 stdio");
            }
        }
        let console = p.console.as_ref().map(AsRawFd::as_raw_fd);
        if let Some(spec) = direct {
            super::init::run_direct(spec, pipe, gate.read, console);
        }
        if libc::fcntl(pipe, libc::F_SETFD, 0) < 0
            || libc::fcntl(gate.read, libc::F_SETFD, 0) < 0
            || console.is_some_and(|fd| libc::fcntl(fd, libc::F_SETFD, 0) < 0)
        {
            child_fail(pipe, b"clear cloexec on init pipe");
        }
        libc::execve(p.exe.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        child_fail(pipe, b"exec peapod init");
    }
}

/// Writes `what\0<errno>` to the pipe without allocating and exits 127.
fn child_fail(pipe: RawFd, what: &[u8]) -> ! {
    let errno = Errno::last_raw();
    let mut buf = [0u8; 12];
    let mut n = errno.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffers are valid for their
    // lengths.
    unsafe {
        libc::write(pipe, what.as_ptr().cast(), what.len());
        libc::write(pipe, [ERRNO_MARK].as_ptr().cast(), 1);
        libc::write(pipe, buf[i..].as_ptr().cast(), buf.len() - i);
        libc::_exit(127);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_raw_child_message() {
        assert_eq!(
            decode_child_message(b"setns net\x001"),
            "setns net: operation not permitted"
        );
        assert_eq!(decode_child_message(b"mount /proc: x"), "mount /proc: x");
    }
}
