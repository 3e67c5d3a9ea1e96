//! The pause process: it holds a pod's network, UTS and IPC namespaces for as long as the pod
//! lives. No image is pulled for it: it is peapod itself, forked from the pod's supervisor.
//!
//! Why fork and not re-exec: a re-executed binary pays its dynamic relocations and start-up
//! allocations again in private memory (about 500 kB here), while a forked child shares every
//! page with the supervisor copy-on-write and dirties only its stack. Forking without exec is
//! safe only from a single-threaded process, which the supervisor is (see
//! `pod::supervisor`); `spawn` checks it and refuses otherwise.
//!
//! With `shareProcessNamespace` the pause process is also pid 1 of a new pid namespace that
//! every container of the pod joins, as the kubelet's pause container is. It then reaps the
//! processes reparented to it: SIGCHLD is ignored, so the kernel frees an orphan as soon as it
//! exits (and the zombies it inherits), without a waitpid loop or any allocation. SIGTERM and
//! SIGINT end it, as they end the kubelet's pause: pid 1 of a namespace gets only the signals
//! it handles.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::Pid;

use crate::cgroup::clone::Cloned;

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
}

impl Pause {
    /// Waits until the namespaces exist and the hostname is set; on failure the child is
    /// reaped and its message returned.
    pub fn wait_ready(self) -> io::Result<Pid> {
        let mut msg = Vec::new();
        let _ = io::Read::read_to_end(&mut std::fs::File::from(self.report), &mut msg);
        if msg.is_empty() {
            Ok(self.pid)
        } else {
            let _ = nix::sys::wait::waitpid(self.pid, None);
            Err(io::Error::other(String::from_utf8_lossy(&msg).into_owned()))
        }
    }
}

/// Forks the pause process into new net, uts and ipc namespaces with `hostname` set, inside
/// `cgroup` (a cgroup v2 directory) when given; the namespaces `host` names are the host's
/// (no new one, and no hostname set in the host's UTS namespace). With `new_pid_ns`
/// (shareProcessNamespace) it is pid 1 of a new pid namespace. Returns at once: the caller can
/// work while the kernel builds the network namespace, and calls [`Pause::wait_ready`] before
/// using it. The caller reaps the process.
pub fn spawn(
    hostname: &str,
    cgroup: Option<&Path>,
    host: HostNamespaces,
    new_pid_ns: bool,
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
            };
            pause_child(&host, &comm, &fds, unshare_flags)
        }
        Cloned::Parent { pid } => {
            drop(err_w);
            Ok(Pause {
                pid: Pid::from_raw(pid),
                report: err_r,
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
struct ChildFds {
    /// The sandbox cgroup to join, when the child was not created in it.
    cgroup_dir: Option<i32>,
    null: i32,
    report: i32,
}

/// The forked child: join the cgroup, make the namespaces, name itself, report, then pause.
fn pause_child(host: &CString, comm: &CString, fds: &ChildFds, flags: CloneFlags) -> ! {
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
    if let Err(e) = unshare(flags) {
        fail("unshare net, uts, ipc", e.into());
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
    // of SIGTERM like any process.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Keep nothing of the supervisor's open files (pipes, logs, locks): fds 0-2 go to
    // /dev/null, everything else is closed, the report pipe last, which tells the parent we
    // are ready.
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe { libc::dup2(fds.null, target) };
    }
    // SAFETY: close_range(2) on descriptors this process owns; nothing uses them afterwards.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // Ready: what follows allocates nothing, so the heap (the originals of every page the
    // supervisor wrote since the fork), the unused code and the dead stack go back.
    crate::pod::supervisor::release_for_good();
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}
