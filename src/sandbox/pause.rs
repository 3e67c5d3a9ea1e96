//! The pause process: it holds a pod's network, UTS and IPC namespaces for as long as the pod
//! lives. No image is pulled for it: it is forked from the pod's supervisor for its setup,
//! then executes the pause program peapod carries (`pause_exe.rs`, built by `build.rs`).
//!
//! Why fork for the setup: a fork of the single-threaded supervisor makes the namespaces, sets
//! the hostname and reports a failure with ordinary code, and shares every page with the
//! supervisor copy-on-write meanwhile. Forking without exec is safe only from a
//! single-threaded process, which the supervisor is (see `pod::supervisor`); `spawn` checks it
//! and refuses otherwise. Why exec afterwards: a fork that stays keeps, for the pod's whole
//! life, its own share of the binary's relocated data (a PIE's `.data.rel.ro`, dirtied at
//! every exec of peapod: ~700 kB, shared by the processes of one exec), its stack and what
//! the kernel counts of its libraries: 146 kB PSS per pause process with 6 pods from one
//! apply (`scripts/supervisor-pss`). The pause program is a static PIE with no relocation, no
//! libc and no heap (`readelf -r`: none): 9-12 kB. (With one apply per pod, the share of the
//! relocated data the pause process carried moves to the pod's keeper and supervisor: only its
//! private pages are saved there.) It runs from a sealed memfd, as runc runs its own copy: no
//! file to install, and no process of the pod (pid 1 of a shared pid namespace is visible
//! through /proc/1/exe) can write it. Where the kernel refuses (no memfd exec:
//! vm.memfd_noexec=2, or no CLOSE_RANGE_CLOEXEC before Linux 5.11), the forked process stays
//! and pauses itself, as it did before.
//!
//! With `shareProcessNamespace` the pause process is also pid 1 of a new pid namespace that
//! every container of the pod joins, as the kubelet's pause container is. It then reaps the
//! processes reparented to it: SIGCHLD is ignored, so the kernel frees an orphan as soon as it
//! exits (and the zombies it inherits), without a waitpid loop or any allocation. SIGTERM and
//! SIGINT end it with exit code 0, as they end the kubelet's pause: pid 1 of a namespace gets
//! only the signals it handles or waits for.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::Pid;

use crate::cgroup::clone::Cloned;
use crate::network::{self, NetworkConfig};

use super::HostNamespaces;

/// The name the pause process shows in `ps -o comm` and `/proc/<pid>/comm`.
pub const PAUSE_COMM: &str = "peapod-pause";
/// The sandbox's oom_score_adj, as the kubelet gives the pause container.
pub const SANDBOX_OOM_SCORE_ADJ: &str = "-998";

/// A forked pause process whose namespaces may still be in the making.
#[derive(Debug)]
pub struct Pause {
    pub pid: Pid,
    report: OwnedFd,
    /// Hung up once the pod's network is wired (holds the failure's message instead), when
    /// the pause process was asked to wire it ([`Wiring`]).
    wired: Option<OwnedFd>,
}

/// The pod network the pause process wires from inside its new network namespace, while the
/// supervisor prepares the containers: the veth pair on the bridge, eth0's address, the
/// routes ([`network::attach_own`]). Its host-side netlink socket is opened before it leaves
/// the host's namespace.
pub struct Wiring<'a> {
    pub net: &'a NetworkConfig,
    /// The pod's UID: the host end's name.
    pub owner: &'a str,
    pub ip: Ipv4Addr,
}

/// A pause process whose namespaces exist; its network may still be in the making.
#[derive(Debug)]
pub struct Made {
    pid: Pid,
    wired: Option<OwnedFd>,
}

impl Made {
    /// Waits until the pause process has wired the pod's network: true then, false at once
    /// when it was not asked to; on failure it is reaped and the error's text returned.
    pub fn wait_wired(self) -> Result<bool, String> {
        let Some(fd) = self.wired else {
            return Ok(false);
        };
        let mut msg = Vec::new();
        let _ = io::Read::read_to_end(&mut std::fs::File::from(fd), &mut msg);
        if msg.is_empty() {
            return Ok(true);
        }
        let _ = nix::sys::wait::waitpid(self.pid, None);
        Err(String::from_utf8_lossy(&msg).into_owned())
    }
}

impl Pause {
    /// Hangs up once the namespaces exist and the hostname is set (and holds the failure's
    /// message if the setup failed): a container's init may wait on it (`poll`, not read)
    /// instead of the caller.
    pub fn ready_fd(&self) -> BorrowedFd<'_> {
        self.report.as_fd()
    }

    /// Waits until the namespaces exist and the hostname is set; on failure the child is
    /// reaped and its message returned.
    pub fn wait_ready(self) -> io::Result<Made> {
        let mut msg = Vec::new();
        let _ = io::Read::read_to_end(&mut std::fs::File::from(self.report), &mut msg);
        if msg.is_empty() {
            Ok(Made {
                pid: self.pid,
                wired: self.wired,
            })
        } else {
            let _ = nix::sys::wait::waitpid(self.pid, None);
            Err(io::Error::other(String::from_utf8_lossy(&msg).into_owned()))
        }
    }
}

/// A pod's net, uts and ipc namespaces made ahead, before the pod was asked for, by a keeper
/// forked ahead (`spawner`'s waiting keeper, `supervisor::prepare`): a child of the keeper
/// makes them while the CLI decodes the pod, and the first pause process its supervisor forks
/// joins them (one `setns` of the child's pidfd) instead of making them on the pod's start
/// path (the kernel builds a network namespace in ~0.5 ms of CPU, loopback and sysctl tables
/// included). The child holds them until every copy of `hold` is closed (the pause process's
/// last at its exec, the keeper's once its supervisor is forked), then exits; its namespaces
/// hold no host resource, and die with it unless a pause process joined them.
struct Ahead {
    pid: Pid,
    /// The child's pidfd: a `setns` on it joins its namespaces, or fails if it is gone.
    pidfd: OwnedFd,
    /// Reads one byte once the child has made its namespaces (EOF alone: it failed).
    made: OwnedFd,
    /// The child exits at this pipe's end of file.
    _hold: OwnedFd,
}

/// What [`make_ahead`] started, for the first [`spawn`] of this process (it takes it).
static AHEAD: std::sync::Mutex<Option<Ahead>> = std::sync::Mutex::new(None);

/// Forks the child that makes a pod's usual namespaces (new net, uts and ipc) for the first
/// pause process to come, and returns at once: the child makes them on its own CPU time.
/// Nothing is kept on any failure: the pause process then makes its own.
pub(crate) fn make_ahead() {
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let (Ok((hold_r, hold_w)), Ok((made_r, made_w))) =
        (nix::unistd::pipe2(cloexec), nix::unistd::pipe2(cloexec))
    else {
        return;
    };
    // SAFETY: like fork(2); the child makes only async-signal-safe raw calls (safe even after
    // a fork of a threaded process) and leaves through _exit.
    let pid = match unsafe { crate::cgroup::clone::clone_into(0, None) } {
        Ok(Cloned::Child { .. }) => hold_namespaces(hold_r.as_raw_fd(), made_w.as_raw_fd()),
        Ok(Cloned::Parent { pid }) => pid,
        Err(e) => {
            tracing::debug!(error = %e, "namespaces ahead: clone refused");
            return;
        }
    };
    drop((hold_r, made_w));
    // SAFETY: pidfd_open(2) of our own child, which cannot be reaped before we wait for it.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd < 0 {
        // Without a pidfd (before Linux 5.3) nothing is joined: the child exits at our EOF.
        return;
    }
    // SAFETY: a descriptor pidfd_open just returned to us, owned from here.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    if let Ok(mut slot) = AHEAD.lock() {
        *slot = Some(Ahead {
            pid: Pid::from_raw(pid),
            pidfd,
            made: made_r,
            _hold: hold_w,
        });
    }
}

/// The child of [`make_ahead`]: keeps only its two pipe ends, makes the namespaces, says so
/// with one byte, and waits for its end of file.
fn hold_namespaces(hold: i32, made: i32) -> ! {
    let (low, high) = (hold.min(made) as u32, hold.max(made) as u32);
    let flags = libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    let mut byte = 0u8;
    // SAFETY: closing every other descriptor of ours (the keeper's socket to its spawner
    // above all: its end must close with the keeper), then unshare, write, read and _exit
    // on our own descriptors and stack.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, low.saturating_sub(1), 0u32);
        if high > low + 1 {
            libc::syscall(libc::SYS_close_range, low + 1, high - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, high + 1, u32::MAX, 0u32);
        if libc::unshare(flags) != 0 {
            libc::_exit(1);
        }
        libc::write(made, b"1".as_ptr().cast(), 1);
        libc::close(made);
        libc::read(hold, (&mut byte as *mut u8).cast(), 1);
        libc::_exit(0)
    }
}

/// What [`make_ahead`] kept, taken (none is left behind).
fn take_ahead() -> Option<Ahead> {
    AHEAD.lock().ok().and_then(|mut slot| slot.take())
}

/// Closes what [`make_ahead`] kept (in a keeper, once its first supervisor is forked: the
/// supervisor has its own copies of the descriptors; the keeper reaps the child with its
/// other children).
pub(crate) fn forget_ahead() {
    drop(take_ahead());
}

/// Ends and reaps the child of [`make_ahead`]: in a keeper whose pod was never asked for, so
/// that no process of the command outlives it.
pub(crate) fn end_ahead() {
    if let Some(ahead) = take_ahead() {
        let pid = ahead.pid;
        drop(ahead);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// Forks the pause process into new net, uts and ipc namespaces with `hostname` set, inside
/// `cgroup` (a cgroup v2 directory) when given; the namespaces `host` names are the host's
/// (no new one, and no hostname set in the host's UTS namespace). With `new_pid_ns`
/// (shareProcessNamespace) it is pid 1 of a new pid namespace; with `wiring` (a new network
/// namespace only) it wires the pod's network once its namespaces are made. Returns at once:
/// the caller can work while the kernel builds the network namespace, and calls
/// [`Pause::wait_ready`] before using it, then [`Made::wait_wired`]. The caller reaps the
/// process.
pub fn spawn(
    hostname: &str,
    cgroup: Option<&Path>,
    host: HostNamespaces,
    new_pid_ns: bool,
    wiring: Option<Wiring>,
) -> io::Result<Pause> {
    if crate::procfs::thread_count() != 1 {
        return Err(io::Error::other(
            "the pause process must be forked from a single-threaded process",
        ));
    }
    let mut unshare_flags = CloneFlags::empty();
    if !host.network {
        unshare_flags |= CloneFlags::CLONE_NEWNET;
    }
    if !host.uts() {
        unshare_flags |= CloneFlags::CLONE_NEWUTS;
    }
    if !host.ipc {
        unshare_flags |= CloneFlags::CLONE_NEWIPC;
    }
    let host = CString::new(hostname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "hostname contains NUL"))?;
    // The namespaces made ahead, if any, taken (used once: a later sandbox of the pod makes
    // its own); the pause process joins only those of the kinds the pod wants new, and none
    // when it wants the host's of every kind.
    let ahead = take_ahead().filter(|_| !unshare_flags.is_empty());
    // Opened before the fork so that the child allocates nothing: every heap page it touched
    // would become its own copy.
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let comm = CString::new(PAUSE_COMM).unwrap_or_default();
    let cgroup_dir = cgroup.map(crate::cgroup::clone::open_dir).transpose()?;
    // The child reports a failed setup step through this pipe before it pauses.
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let wiring = wiring.filter(|_| unshare_flags.contains(CloneFlags::CLONE_NEWNET));
    let wired = match wiring {
        Some(_) => Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?),
        None => None,
    };
    // With shareProcessNamespace the child is pid 1 of a new pid namespace: a clone flag, as
    // unshare(CLONE_NEWPID) would only move the caller's future children; clone keeps the
    // child a direct, waitable child of ours.
    let clone_flags = if new_pid_ns {
        libc::CLONE_NEWPID as u64
    } else {
        0
    };
    let dir_fd = cgroup_dir.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: like fork(2); the caller is single-threaded (checked above), so the child may run
    // ordinary code, and it never returns from `pause_child`. Created in the sandbox cgroup (no
    // migration: see `cgroup::clone`) where the kernel can.
    match unsafe { crate::cgroup::clone::clone_into(clone_flags, dir_fd) }? {
        Cloned::Child { joined } => {
            drop(err_r);
            let fd = err_w.as_raw_fd();
            let fds = ChildFds {
                cgroup_dir: dir_fd.filter(|_| !joined),
                null: null.as_raw_fd(),
                report: fd,
                wired: wired.as_ref().map(|(_, w)| w.as_raw_fd()),
                ahead: ahead.as_ref(),
            };
            pause_child(&host, &comm, &fds, unshare_flags, wiring.as_ref())
        }
        Cloned::Parent { pid } => {
            drop(err_w);
            // It wires the pod's network while the caller prepares the containers.
            crate::cgroup::clone::start_elsewhere(pid);
            Ok(Pause {
                pid: Pid::from_raw(pid),
                report: err_r,
                wired: wired.map(|(r, _)| r),
            })
        }
    }
}

/// SIGTERM and SIGINT end the pause process (pid 1 of a pid namespace ignores them otherwise).
extern "C" fn exit_on_signal(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// Descriptors the pause child uses, opened by the parent.
struct ChildFds<'a> {
    /// The sandbox cgroup to join, when the child was not created in it.
    cgroup_dir: Option<i32>,
    null: i32,
    report: i32,
    /// Where the network's wiring is reported, when asked for.
    wired: Option<i32>,
    /// Namespaces made ahead to join instead of making them ([`make_ahead`]).
    ahead: Option<&'a Ahead>,
}

/// The forked child: join the cgroup, make the namespaces, name itself, report, wire the
/// network if asked, then pause.
fn pause_child(
    host: &CString,
    comm: &CString,
    fds: &ChildFds<'_>,
    flags: CloneFlags,
    wiring: Option<&Wiring>,
) -> ! {
    let report = fds.report;
    let fail = |step: &str, e: io::Error| -> ! {
        let msg = format!("{step}: {e}");
        // SAFETY: writing a buffer we own to a pipe fd we own, then leaving without unwinding.
        unsafe {
            libc::write(report, msg.as_ptr().cast(), msg.len());
            libc::_exit(1)
        }
    };
    if let Some(fd) = fds.cgroup_dir {
        if let Err(e) = crate::cgroup::clone::join(fd) {
            fail("join the sandbox cgroup", e.into());
        }
    }
    // A socket stays in the namespace it was opened in: the host side's, before leaving.
    let session = wiring.map(|_| network::Session::open());
    if !fds.ahead.is_some_and(|a| join_ahead(a, flags)) {
        if let Err(e) = unshare(flags) {
            fail("unshare net, uts, ipc", e.into());
        }
    }
    // SAFETY: sethostname with a NUL-terminated buffer and its length, in our own UTS
    // namespace only: the host's keeps its name.
    if flags.contains(CloneFlags::CLONE_NEWUTS)
        && unsafe { libc::sethostname(host.as_ptr(), host.as_bytes().len()) } != 0
    {
        fail("sethostname", io::Error::last_os_error());
    }
    let _ = nix::sys::prctl::set_name(comm);
    // Lower than any container, like the kubelet's pause; hosts without CAP_SYS_RESOURCE refuse
    // negative values, which only costs OOM protection. Raw calls: no allocation.
    // SAFETY: open/write/close on a constant NUL-terminated path and a static buffer.
    unsafe {
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(
                fd,
                SANDBOX_OOM_SCORE_ADJ.as_ptr().cast(),
                SANDBOX_OOM_SCORE_ADJ.len(),
            );
            libc::close(fd);
        }
    }
    // The namespaces are made: the parent, and the containers' inits waiting to join them,
    // see the report pipe's end of file now, while the network is wired.
    // SAFETY: closing our own pipe end; nothing writes to it afterwards.
    unsafe { libc::close(report) };
    if let (Some(w), Some(session), Some(fd)) = (wiring, session, fds.wired) {
        let wired = session.and_then(|s| network::attach_own(s, w.net, w.owner, w.ip));
        if let Err(e) = wired {
            let msg = e.to_string();
            // SAFETY: writing a buffer we own to a pipe fd we own, then leaving without
            // unwinding: the namespace and the pair in it go with us.
            unsafe {
                libc::write(fd, msg.as_ptr().cast(), msg.len());
                libc::_exit(1)
            }
        }
        // SAFETY: closing our own pipe end: the parent reads "wired".
        unsafe { libc::close(fd) };
    }
    // Orphans of a shared pid namespace are reaped by the kernel; SIGTERM/SIGINT end us.
    // SAFETY: signal(2) with SIG_IGN and an async-signal-safe handler; no memory involved.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(
            libc::SIGTERM,
            exit_on_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            exit_on_signal as *const () as libc::sighandler_t,
        );
    }
    // The supervisor blocks the signals it reads from a signalfd; the pause process must die
    // of any other signal like any process. SIGTERM and SIGINT stay blocked until the pause
    // program waits for them: one sent during the exec stays pending (the mask is kept across
    // exec; the handlers are not).
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&ending_signals()), None);
    // Keep nothing of the supervisor's open files (pipes, logs, locks): fds 0-2 go to
    // /dev/null, everything else is closed.
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe { libc::dup2(fds.null, target) };
    }
    #[cfg(peapod_pause_exe)]
    exec::pause_program();
    // SAFETY: close_range(2) on descriptors this process owns; nothing uses them afterwards.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Ready: what follows allocates nothing, so the heap (the originals of every page the
    // supervisor wrote since the fork), the unused code and the dead stack go back.
    crate::pod::supervisor::release_for_good();
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Joins the namespaces `flags` names among those made ahead, once they are made; false (none
/// joined) if they could not be: the caller makes its own.
fn join_ahead(ahead: &Ahead, flags: CloneFlags) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: read(2) of one byte into our stack from a pipe end we hold.
        let n = unsafe { libc::read(ahead.made.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        if n >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            break;
        }
    }
    byte == b'1' && nix::sched::setns(&ahead.pidfd, flags).is_ok()
}

/// SIGTERM and SIGINT: what ends a pause process.
fn ending_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.add(nix::sys::signal::Signal::SIGINT);
    set
}

/// The pause program, run from a sealed memfd.
#[cfg(peapod_pause_exe)]
mod exec {
    /// The static executable `build.rs` compiled from `pause_exe.rs`.
    static PAUSE_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/peapod-pause"));
    /// close_range(2)'s flag (Linux 5.11): mark the range close-on-exec rather than close it.
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    /// memfd_create(2)'s flag (Linux 6.3): executable even where vm.memfd_noexec is 1.
    const MFD_EXEC: u32 = 0x10;

    /// Marks every descriptor but 0-2 close-on-exec and executes the pause program. Returns
    /// only where the kernel refused (the caller then closes what is left and pauses in this
    /// process).
    pub(super) fn pause_program() {
        // SAFETY: close_range(2) marking descriptors this process owns close-on-exec.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) } != 0
        {
            return;
        }
        let Some(memfd) = sealed_memfd() else { return };
        let argv = [c"peapod-pause".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        // SAFETY: execveat(2) of a descriptor we own with NULL-terminated argv and envp arrays
        // on our stack. It returns only on failure, which the caller survives.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                memfd,
                c"".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::close(memfd);
        }
    }

    /// A close-on-exec memfd holding the pause program, sealed against any change.
    pub(super) fn sealed_memfd() -> Option<i32> {
        let name = c"peapod-pause";
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: memfd_create(2) with a NUL-terminated name; older kernels refuse MFD_EXEC
        // (EINVAL), and make every memfd executable.
        let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
        if fd < 0 {
            // SAFETY: as above.
            fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        }
        if fd < 0 {
            return None;
        }
        let mut written = 0;
        while written < PAUSE_PROGRAM.len() {
            let rest = &PAUSE_PROGRAM[written..];
            // SAFETY: write(2) from a static buffer to our memfd.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                // SAFETY: closing our own descriptor.
                unsafe { libc::close(fd) };
                return None;
            }
            written += n as usize;
        }
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl(2) F_ADD_SEALS on our memfd, which nothing maps.
        if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
            // SAFETY: closing our own descriptor.
            unsafe { libc::close(fd) };
            return None;
        }
        Some(fd)
    }
}

#[cfg(all(test, peapod_pause_exe))]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Starts the embedded pause program and waits until it waits for its signals (named,
    /// asleep: its only blocking call is rt_sigtimedwait).
    // The child is returned to the caller, which waits for it.
    #[allow(clippy::zombie_processes)]
    fn start_pause_program() -> std::process::Child {
        let fd = super::exec::sealed_memfd().expect("a sealed memfd");
        // SAFETY: write(2) to our own memfd, which the seals must refuse.
        let written = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
        assert_eq!(written, -1, "the memfd is sealed against writes");
        let mut child = Command::new(format!("/proc/self/fd/{fd}"))
            .spawn()
            .expect("exec the pause program");
        // SAFETY: closing our own descriptor (the child has its image mapped).
        unsafe { libc::close(fd) };
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            if text.contains("(peapod-pause) S") {
                return child;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the pause program never waited: {text}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_pause_program_ends_with_code_0_on_sigterm_or_sigint_and_dies_of_others() {
        for (signal, code, killed_by) in [
            (libc::SIGTERM, Some(0), None),
            (libc::SIGINT, Some(0), None),
            (libc::SIGHUP, None, Some(libc::SIGHUP)),
        ] {
            let mut child = start_pause_program();
            // SAFETY: kill(2) of our own child.
            assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
            let status = child.wait().expect("wait for the pause program");
            assert_eq!(status.code(), code, "after signal {signal}: {status:?}");
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                killed_by,
                "after signal {signal}: {status:?}"
            );
        }
    }
}
