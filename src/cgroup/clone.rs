//! Creating a process directly inside a cgroup: `clone3(2)` with `CLONE_INTO_CGROUP` (Linux
//! 5.7+), as crun and systemd do, instead of a child that writes itself into `cgroup.procs`.
//!
//! Why: a write to `cgroup.procs` migrates a task, and a migration takes the cgroup mutex and
//! then the threadgroup rwsem for writing, whose first writer waits for an RCU grace period
//! with the mutex held. Every other cgroup operation of the host (the next container's mkdir,
//! a device program's attach) queued behind it: 8-12 ms of the pod's start measured here. A
//! process created in its cgroup is no migration: the fork only reads the rwsem.
//!
//! Where the kernel refuses the flag (ENOSYS before 5.3 or under a seccomp filter that hides
//! clone3, E2BIG/EINVAL before 5.7) the process is cloned as before and joins by writing
//! `cgroup.procs` itself ([`join`]); the refusal is remembered for the life of the process.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

/// `CLONE_INTO_CGROUP` from linux/sched.h (the libc crate does not name it).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Set once the kernel refused `CLONE_INTO_CGROUP`: later clones go the old way directly.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// What [`clone_into`] returned, in the parent and in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloned {
    /// In the child. `joined`: it was created in the cgroup asked for (or none was asked); if
    /// not, it must call [`join`] itself.
    Child { joined: bool },
    /// In the parent: the child's pid (in the caller's pid namespace).
    Parent { pid: i32 },
}

/// Clones the caller like fork(2) (the child runs on a copy of this stack) with the namespace
/// `flags` (`CLONE_NEW*`) and SIGCHLD as its exit signal, created in the cgroup whose
/// directory `cgroup` is open (`O_DIRECTORY`) when given.
///
/// # Safety
/// As a raw fork: the child must run only async-signal-safe code unless the caller is
/// single-threaded, and must end in exec or `_exit` rather than return into code that
/// believes it is the parent.
pub unsafe fn clone_into(flags: u64, cgroup: Option<RawFd>) -> Result<Cloned, Errno> {
    if let Some(fd) = cgroup.filter(|_| !UNSUPPORTED.load(Ordering::Relaxed)) {
        let mut args: libc::clone_args = std::mem::zeroed();
        args.flags = flags | CLONE_INTO_CGROUP;
        args.exit_signal = libc::SIGCHLD as u64;
        args.cgroup = fd as u64;
        // SAFETY: clone3 with a NULL stack behaves like fork (the caller's contract above);
        // `args` is a valid clone_args of the size passed.
        let ret = libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        );
        match ret {
            0 => return Ok(Cloned::Child { joined: true }),
            pid if pid > 0 => return Ok(Cloned::Parent { pid: pid as i32 }),
            _ => match Errno::last() {
                Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL => {
                    tracing::debug!(
                        error = %Errno::last(),
                        "clone3 with CLONE_INTO_CGROUP refused: joining cgroups through cgroup.procs"
                    );
                    UNSUPPORTED.store(true, Ordering::Relaxed);
                }
                e => return Err(e),
            },
        }
    }
    // SAFETY: the raw clone syscall with a NULL stack behaves like fork(2) (the caller's
    // contract). x86_64 argument order: flags, stack, parent_tid, child_tid, tls.
    let ret = libc::syscall(
        libc::SYS_clone,
        flags | libc::SIGCHLD as u64,
        0usize,
        0usize,
        0usize,
        0usize,
    );
    match ret {
        0 => Ok(Cloned::Child {
            joined: cgroup.is_none(),
        }),
        pid if pid > 0 => Ok(Cloned::Parent { pid: pid as i32 }),
        _ => Err(Errno::last()),
    }
}

/// Moves the calling process into the cgroup whose directory `cgroup` is open: for a child of
/// [`clone_into`] that was not created there. Async-signal-safe: no allocation.
pub fn join(cgroup: RawFd) -> Result<(), Errno> {
    // SAFETY: openat/write/close on a descriptor we own, a constant NUL-terminated name and a
    // static buffer. Writing "0" moves the writer itself (cgroups(7)).
    unsafe {
        let procs = libc::openat(
            cgroup,
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if procs < 0 {
            return Err(Errno::last());
        }
        let written = libc::write(procs, b"0".as_ptr().cast(), 1);
        let err = Errno::last();
        libc::close(procs);
        if written != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// Opens a cgroup directory for [`clone_into`] and [`join`].
pub fn open_dir(path: &std::path::Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)?;
    Ok(dir.into())
}

/// Starts the new child `pid` on a CPU other than the caller's, where there is one: its CPU set
/// is narrowed to the others, which moves it there while it waits for its first run, then
/// given back whole (it stays where it was moved). For a child that has work of its own to do
/// while its parent goes on: this host's kernel (`sched_vcpu_pack` on its command line) leaves
/// a new child queued behind its parent on the parent's CPU until the parent blocks, even
/// with the other CPU idle (docs/design.md, "A child forked to work beside its parent"). The
/// CPU set the child ends with is the caller's, which it inherited at the fork.
pub fn start_elsewhere(pid: i32) {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let Ok(all) = sched_getaffinity(Pid::from_raw(0)) else {
        return;
    };
    // SAFETY: sched_getcpu(3) reads the calling thread's CPU and touches no memory of ours.
    let here = unsafe { libc::sched_getcpu() };
    let Ok(here) = usize::try_from(here) else {
        return;
    };
    let mut others = all;
    if others.unset(here).is_err()
        || !(0..CpuSet::count()).any(|cpu| others.is_set(cpu).unwrap_or(false))
    {
        return;
    }
    let child = Pid::from_raw(pid);
    if sched_setaffinity(child, &others).is_ok() {
        let _ = sched_setaffinity(child, &all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Without a cgroup the clone is a plain fork: the child exits with a code the parent
    /// reads (no root, no cgroupfs needed).
    #[test]
    fn clones_without_a_cgroup() {
        // SAFETY: the child only calls _exit.
        match unsafe { clone_into(0, None) }.expect("clone") {
            Cloned::Child { joined } => unsafe { libc::_exit(if joined { 7 } else { 8 }) },
            Cloned::Parent { pid } => {
                let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                assert_eq!(
                    status.expect("waitpid"),
                    nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 7)
                );
            }
        }
    }

    /// A child started elsewhere ends with the CPU set it was forked with, never narrowed to
    /// the other CPUs (its own children, a pod's processes, inherit it).
    #[test]
    fn a_child_started_elsewhere_keeps_every_cpu_it_had() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let before = nix::sched::sched_getaffinity(pid).expect("affinity");
        start_elsewhere(pid.as_raw());
        let after = nix::sched::sched_getaffinity(pid).expect("affinity");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(after, before);
    }

    /// Where the kernel refuses CLONE_INTO_CGROUP, the child is cloned outside and writes "0"
    /// into the directory's cgroup.procs itself. A plain directory with a plain cgroup.procs
    /// file stands in for cgroupfs: the kernel refuses it in clone3 (EBADF, not a fallback
    /// case), and takes the child's write.
    #[test]
    fn a_refused_flag_falls_back_to_cgroup_procs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let procs = dir.path().join("cgroup.procs");
        std::fs::write(&procs, "").expect("write cgroup.procs");
        let fd = open_dir(dir.path()).expect("open dir");
        let raw = fd.as_raw_fd();
        if !UNSUPPORTED.load(Ordering::Relaxed) {
            // SAFETY: refused before any child exists.
            assert_eq!(unsafe { clone_into(0, Some(raw)) }, Err(Errno::EBADF));
        }
        UNSUPPORTED.store(true, Ordering::Relaxed);
        // SAFETY: the child only calls async-signal-safe functions and _exit.
        match unsafe { clone_into(0, Some(raw)) }.expect("clone") {
            Cloned::Child { joined } => {
                let code = if !joined && join(raw).is_ok() { 0 } else { 1 };
                unsafe { libc::_exit(code) }
            }
            Cloned::Parent { pid } => {
                let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                assert_eq!(
                    status.expect("waitpid"),
                    nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0)
                );
            }
        }
        assert_eq!(std::fs::read_to_string(&procs).expect("read"), "0");
    }
}
