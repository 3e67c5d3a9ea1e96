//! The container init, `peapod __init <bundle>`: runs as pid 1 of the container's new pid and
//! mount namespaces (already in its cgroup and the sandbox's net/uts/ipc namespaces, with its
//! stdio installed by `spawn`), prepares the rootfs and the process, and execs the user program.
//!
//! It reports the first failing step on the pipe named by `PEAPOD_INIT_PIPE` and exits 127.
//! Once everything before the user program's execve has succeeded, it writes one byte,
//! [`AT_GATE`], on that pipe and waits at its start gate: after the gate only the execve can
//! fail (its message follows the byte). The pipe is close-on-exec, so a successful execve
//! closes it with nothing more written.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

use super::error::InitError;
use super::mounts::{self, Kind};
use super::seccomp::{self, Compiled};
use super::{creds, devices, read_bundle, AT_GATE, INIT_CONSOLE_ENV, INIT_GATE_ENV, INIT_PIPE_ENV};

// PATH used when the Spec's env has none (the value runc and Docker use).
use crate::container::env::DEFAULT_PATH;

/// Entry point of the hidden `peapod __init <bundle>` mode. Never returns: it execs the user
/// program or exits 127 after writing what failed to the init pipe.
pub fn init_main(bundle: &Path) -> ! {
    let pipe_fd: Option<RawFd> = std::env::var(INIT_PIPE_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let Some(pipe_fd) = pipe_fd else {
        // No pipe means no one to report to but our stderr: this mode was started by hand.
        eprintln!("peapod __init: {INIT_PIPE_ENV} is not set: this mode is only started by peapod");
        std::process::exit(127);
    };
    // SAFETY: the fd number was handed to us by `spawn`, which left exactly this fd open for
    // us; nothing else in this fresh process owns it.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(pipe_fd) };
    // SAFETY: fcntl on an fd we own; restores close-on-exec so the user program never sees it.
    unsafe { libc::fcntl(pipe_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let gate: Option<RawFd> = std::env::var(INIT_GATE_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    if let Some(fd) = gate {
        // SAFETY: fcntl on the gate fd `spawn` left open for us.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let console: Option<RawFd> = std::env::var(INIT_CONSOLE_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    // SAFETY: the fd number was handed to us by `spawn`, which left exactly this fd open for
    // us; nothing else in this process owns it.
    let console = console.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    match run(bundle, gate, pipe_fd, console) {
        Ok(never) => match never {},
        Err(err) => {
            let _ = pipe.write_all(err.to_string().as_bytes());
            std::process::exit(127);
        }
    }
}

/// The init run directly in the child `spawn` cloned from a single-threaded caller, with the
/// Spec already in memory: the same steps as `peapod __init` without the cost of executing
/// peapod again (dynamic loading and relocation, parsing config.json: about 2 ms).
/// Reports a failure on `pipe` (close-on-exec, so a successful exec closes it) and exits 127.
pub(crate) fn run_direct(spec: &Spec, pipe: RawFd, gate: RawFd, console: Option<RawFd>) -> ! {
    // SAFETY: `spawn` prepared this socket for this child alone; the copy is ours to close.
    let console = console.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    // The caller's log subscriber writes to fd 2, which is now the container's stderr: nothing
    // of peapod's own logging may end up in the container's log.
    let result =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            run_spec(spec, Some(gate), pipe, console)
        });
    let Err(err) = result;
    let msg = err.to_string();
    // SAFETY: write(2) of a buffer we own to the pipe fd we were given, then _exit without
    // running the caller's destructors or atexit handlers in this copy of its process.
    unsafe {
        libc::write(pipe, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn run(
    bundle: &Path,
    gate: Option<RawFd>,
    report: RawFd,
    console: Option<OwnedFd>,
) -> Result<Infallible, InitError> {
    let spec = read_bundle(bundle).map_err(|e| InitError::new("read spec", e.to_string()))?;
    run_spec(&spec, gate, report, console)
}

/// Blocks until the parent opens the start gate; EOF means it gave up on this container, so
/// the init leaves quietly.
fn wait_at_gate(gate: RawFd) {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: read(2) into a one-byte buffer we own, from the gate fd we were given.
        let n = unsafe { libc::read(gate, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            // SAFETY: closing our own gate fd; nothing uses it afterwards.
            unsafe { libc::close(gate) };
            return;
        }
        if n == 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            // SAFETY: leaving without unwinding; nothing was started.
            unsafe { libc::_exit(0) };
        }
    }
}

/// The init's steps; `report` is the pipe that gets [`AT_GATE`] before the gate.
fn run_spec(
    spec: &Spec,
    gate: Option<RawFd>,
    report: RawFd,
    console: Option<OwnedFd>,
) -> Result<Infallible, InitError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| InitError::new("read spec", "process: missing"))?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(InitError::new("read spec", "process.args: empty"));
    }

    crate::starttrace::mark("init entered");
    mounts::isolate_root(spec)?;
    let rootfs = mounts::mount_rootfs(spec)?;
    mounts::mount_all(&rootfs, spec)?;
    devices::create_devices(&rootfs, spec)?;
    crate::starttrace::mark("init rootfs mounted");
    // Kubernetes creates a missing workingDir; resolve it inside the rootfs like a mount target.
    mounts::resolve_in_root(&rootfs, process.cwd(), Some(Kind::Dir))
        .map_err(|e| InitError::io(format!("create cwd {}", process.cwd().display()), &e))?;
    mounts::pivot_into(&rootfs)?;
    crate::starttrace::mark("init pivoted");
    // After pivot_root: the terminal comes from the container's own devpts.
    if let Some(socket) = console {
        super::terminal::take_console(socket, process)
            .map_err(|e| InitError::new("make the console", e))?;
    }
    // Before the read-only paths: /proc/sys is usually one of them.
    apply_sysctls(spec)?;
    mounts::mask_paths(spec)?;
    mounts::readonly_paths(spec)?;
    // Armed now for the user program's execve, while the init is still root in its own
    // /proc, as runc's init does it before seccomp and the credentials.
    super::apparmor::apply(process)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mounts::remount_readonly(Path::new("/"))
            .map_err(|e| InitError::sys("remount / read-only", e))?;
    }
    // Compiled and (without no_new_privs) loaded before the gate, as runc loads it before it
    // waits on its exec fifo: the cost (about 0.6 ms, mostly the kernel's BPF JIT) stays off
    // the start path.
    let compiled = compile_seccomp(spec)?;
    crate::starttrace::mark("init seccomp compiled");
    let late = load_privileged(process, compiled)?;
    // Credentials, cwd, the program's path and fd hygiene before the gate too, as runc's init
    // does them before it blocks on its exec fifo (finalizeNamespace, then the fifo): what
    // can fail is reported at create, and only the signal mask, a no_new_privs filter and the
    // execve are left between the gate and the user program.
    let ready = prepare_exec(process, &args)?;
    crate::starttrace::mark("init at gate");
    if let Some(gate) = gate {
        // SAFETY: write(2) of one byte we own to the report pipe we were given. A failed
        // write (the parent gone) leaves the gate's EOF to end this init.
        unsafe { libc::write(report, [AT_GATE].as_ptr().cast(), 1) };
        wait_at_gate(gate);
        crate::starttrace::mark("init gate open");
    }
    exec_prepared(&ready, late.as_ref())
}

/// Loads the filter now unless the process sets no_new_privs, and returns the filter left to
/// load right before execve.
///
/// The order is runc's (libcontainer/standard_init_linux.go): without no_new_privs, loading
/// needs CAP_SYS_ADMIN, so it happens before the user and capabilities change (the profile must
/// then allow setgroups, setresuid, capset, prctl and execve, as containerd's does); with
/// no_new_privs, as late as possible, so that a profile need not allow the init's own calls.
pub(crate) fn load_privileged(
    process: &Process,
    filter: Option<Compiled>,
) -> Result<Option<Compiled>, InitError> {
    match filter {
        Some(f) if process.no_new_privileges() != Some(true) => {
            seccomp::load(&f)?;
            Ok(None)
        }
        other => Ok(other),
    }
}

/// The Spec's seccomp profile, compiled; None when the Spec has none (unconfined).
pub(crate) fn compile_seccomp(spec: &Spec) -> Result<Option<Compiled>, InitError> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(seccomp::compile_or_take_ahead)
        .transpose()
}

/// The common tail of the init and `exec_in`: [`prepare_exec`] then [`exec_prepared`]. Only
/// returns on failure.
pub(crate) fn finish_and_exec(
    process: &Process,
    args: &[String],
    late_filter: Option<&Compiled>,
) -> Result<Infallible, InitError> {
    let ready = prepare_exec(process, args)?;
    exec_prepared(&ready, late_filter)
}

/// The execve(2) arguments, made by [`prepare_exec`].
pub(crate) struct ReadyExec {
    program: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// The name the Spec gave (`args[0]`), for the error message.
    name: String,
}

/// Everything before the execve that may fail: umask, credentials, cwd, the program found in
/// the Spec's PATH, the argument and environment strings; then every fd above 2 made
/// close-on-exec and the signal handlers reset.
pub(crate) fn prepare_exec(process: &Process, args: &[String]) -> Result<ReadyExec, InitError> {
    if let Some(mask) = process.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    creds::apply_all(process)?;
    let cwd = process.cwd();
    std::env::set_current_dir(cwd)
        .map_err(|e| InitError::io(format!("chdir {}", cwd.display()), &e))?;

    let env = process.env().clone().unwrap_or_default();
    let program = resolve_program(&args[0], &env)?;
    let ready = ReadyExec {
        program: to_cstring(program.as_os_str().as_bytes())?,
        args: args
            .iter()
            .map(|a| to_cstring(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?,
        env: env
            .iter()
            .map(|e| to_cstring(e.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?,
        name: args[0].clone(),
    };
    close_stray_fds();
    reset_signals();
    Ok(ready)
}

/// The last steps: a clean signal mask (a blocked signal survives execve, signal(7)), the
/// seccomp filter [`load_privileged`] left (no_new_privs: as late as possible), and the
/// execve. Only returns on failure.
pub(crate) fn exec_prepared(
    ready: &ReadyExec,
    late_filter: Option<&Compiled>,
) -> Result<Infallible, InitError> {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    if let Some(f) = late_filter {
        seccomp::load(f)?;
    }
    crate::starttrace::mark("init exec");
    let err = nix::unistd::execve(&ready.program, &ready.args, &ready.env).unwrap_err();
    Err(InitError::new(
        format!("exec: \"{}\"", ready.name),
        super::errno_text(err as i32),
    ))
}

/// Writes `linux.sysctl` under /proc/sys. Names are dotted; a '/' inside a segment stands
/// for a '.' of the file name (`net.ipv4.conf.eth0/100.rp_filter` ->
/// `net/ipv4/conf/eth0.100/rp_filter`), as sysctl(8) and the kubelet write them. Namespaced
/// sysctls only make sense here; the pod's admission decides which are allowed.
fn apply_sysctls(spec: &Spec) -> Result<(), InitError> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().clone());
    for (key, value) in sysctls.unwrap_or_default() {
        let segments: Vec<String> = key.split('.').map(|s| s.replace('/', ".")).collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(InitError::new(format!("sysctl {key}"), "invalid name"));
        }
        let path = Path::new("/proc/sys").join(segments.join("/"));
        std::fs::write(&path, value.as_bytes())
            .map_err(|e| InitError::io(format!("sysctl {key}"), &e))?;
    }
    Ok(())
}

/// Resets every signal to its default disposition. Ignored signals survive execve
/// (signal(7)), and the Rust runtime ignores SIGPIPE at startup: without this, `yes | head`
/// inside the container would spin instead of dying on a closed pipe. The raw rt_sigaction
/// syscall is used because glibc refuses to touch the two real-time signals it reserves for
/// itself (32 and 33), which an ignoring parent may still have passed down.
fn reset_signals() {
    /// The kernel's `struct sigaction` for rt_sigaction(2) on x86_64.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads the struct we own (sized for the 8-byte kernel sigset)
        // and writes nothing (NULL old action); SIG_DFL installs no handler code.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
}

fn to_cstring(bytes: &[u8]) -> Result<CString, InitError> {
    CString::new(bytes).map_err(|_| {
        InitError::new(
            "exec",
            format!("{:?} contains a NUL byte", String::from_utf8_lossy(bytes)),
        )
    })
}

/// Finds `name` like execvp(3) but with the container's PATH (from `env`, not ours). A name
/// with a '/' is used as is. The error text matches what kubectl users know from runc.
pub(crate) fn resolve_program(name: &str, env: &[String]) -> Result<PathBuf, InitError> {
    if name.contains('/') {
        // Checked before the gate as runc's init checks it before its exec fifo, with Go's
        // LookPath and its words: a missing or non-executable program is a StartError, never
        // Running.
        let path = PathBuf::from(name);
        let refused = match std::fs::metadata(&path) {
            Err(e) => Some(format!(
                "stat {name}: {}",
                super::errno_text(e.raw_os_error().unwrap_or(libc::ENOENT))
            )),
            Ok(m) if m.is_dir() => Some(super::errno_text(libc::EISDIR)),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(super::errno_text(libc::EACCES)),
            Ok(_) => None,
        };
        return match refused {
            None => Ok(path),
            Some(reason) => Err(InitError::new(format!("exec: \"{name}\""), reason)),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(InitError::new(
        format!("exec: \"{name}\""),
        "executable file not found in $PATH",
    ))
}

/// Marks every fd above 2 close-on-exec so that nothing of peapod's leaks into the user
/// program. close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11); older kernels: walk
/// /proc/self/fd.
fn close_stray_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret == 0 {
        return;
    }
    for fd in crate::procfs::open_fds() {
        // SAFETY: setting FD_CLOEXEC on a possibly already closed fd is harmless (EBADF).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_not_found_message() {
        let err = resolve_program("nosuch-peapod", &["PATH=/nonexistent".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"nosuch-peapod\": executable file not found in $PATH"
        );
    }

    #[test]
    fn program_found_on_path() {
        let p = resolve_program("sh", &["PATH=/nonexistent:/bin".into()]).unwrap();
        assert_eq!(p, Path::new("/bin/sh"));
        assert_eq!(
            resolve_program("/bin/sh", &[]).unwrap(),
            Path::new("/bin/sh")
        );
    }

    #[test]
    fn a_path_is_checked_before_the_gate_in_go_lookpaths_words() {
        let err = |name: &str| resolve_program(name, &[]).unwrap_err().to_string();
        assert_eq!(
            err("/nonexistent-peapod/x"),
            "exec: \"/nonexistent-peapod/x\": stat /nonexistent-peapod/x: no such file or directory"
        );
        assert_eq!(err("/tmp"), "exec: \"/tmp\": is a directory");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "data").unwrap();
        let name = plain.display().to_string();
        assert_eq!(err(&name), format!("exec: \"{name}\": permission denied"));
    }
}
