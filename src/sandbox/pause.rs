//! The pause process: peapod's own binary re-executed as `peapod __sandbox`, holding a pod's
//! network, UTS and IPC namespaces for as long as the pod lives. No image is pulled for it.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sched::{unshare, CloneFlags};

/// The hidden verb that runs [`pause_main`].
pub const SANDBOX_VERB: &str = "__sandbox";
/// The sandbox's oom_score_adj, as the kubelet gives the pause container.
pub const SANDBOX_OOM_SCORE_ADJ: i32 = -998;

/// Starts the pause process in new net, uts and ipc namespaces with `hostname` set, inside
/// `cgroup` (a cgroup v2 directory) when given.
///
/// Must be called from a single-threaded process: the child runs code between fork and exec.
pub fn spawn(hostname: &str, cgroup: Option<&Path>) -> io::Result<Child> {
    let host = CString::new(hostname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "hostname contains NUL"))?;
    // Opened before fork: the child only writes to it (allocation-free).
    let procs = match cgroup {
        Some(cg) => Some(
            OpenOptions::new()
                .write(true)
                .open(cg.join("cgroup.procs"))?,
        ),
        None => None,
    };
    let procs_fd = procs.as_ref().map(|f| f.as_raw_fd());
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(SANDBOX_VERB)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec the closure only makes async-signal-safe syscalls
    // (write, unshare, sethostname) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = procs_fd {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
                .map_err(io::Error::from)?;
            if libc::sethostname(host.as_ptr(), host.as_bytes().len()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The body of `peapod __sandbox`: waits for a signal. SIGTERM/SIGINT/SIGKILL end it with
/// their default action; nothing else needs handling since it starts no children.
pub fn pause_main() -> ! {
    // Lower than any container, like the kubelet's pause; hosts without CAP_SYS_RESOURCE refuse
    // negative values, which only costs OOM protection.
    if let Ok(mut f) = OpenOptions::new()
        .write(true)
        .open("/proc/self/oom_score_adj")
    {
        let _ = f.write_all(SANDBOX_OOM_SCORE_ADJ.to_string().as_bytes());
    }
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}
