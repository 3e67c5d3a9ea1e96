//! The per-host zygote: a process the node agent forks first thing, before it does anything
//! else, that forks the keeper of every pod started on the host, so that every pod shares the
//! pages of one exec of peapod (above all its relocated `.data.rel.ro` and `.got`, ~700 kB that
//! each exec dirties for itself: docs/design.md, "Memory per idle pod").
//!
//! It serves the CLI spawner's protocol (`pod::spawner`) on a unix socket,
//! `<run dir>/spawner.sock` (SOCK_SEQPACKET, mode 0600, peers of uid 0 only, SO_PEERCRED).
//! It sends each client its [`Fingerprint`] (its binary, namespaces, root, credentials,
//! process attributes and configuration, the `PEAPOD_*` environment): a client whose own
//! fingerprint differs closes the connection and forks its own spawner, as without a zygote.
//! Then it forks the connection's server (through an intermediate that exits at once, so the
//! server is no child of the zygote's), which:
//! 1. receives the client's [`Context`] (environment, working directory, umask, rlimits,
//!    signal mask and ignored signals, nice value, OOM score adjustment, CPU affinity) and
//!    takes it on, so that what it forks is what the client would have forked; it answers `ok`
//!    (or `no`, and the client forks its keepers itself), read by the client at its first
//!    request;
//! 2. serves the client's requests as the spawner does, each keeper cloned with
//!    `CLONE_PARENT` (the keeper is nobody's child), until the client closes; the client then
//!    waits for the server's exit (`spawner::finish`).
//!
//! The zygote itself only accepts. The agent hands it the listening socket once it holds the
//! node lock, and keeps the other end of a socket pair open for its life: when the agent exits
//! (or is killed) the zygote exits, and removes the socket file unless another agent holds the
//! lock by then. A connection waiting in the backlog is then refused and its client falls back;
//! a server already forked goes on serving its client.

use std::ffi::{OsStr, OsString};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, sendmsg, socket, sockopt, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::unistd::Pid;

/// The socket's name in the run directory.
pub const SOCKET_NAME: &str = "spawner.sock";
/// The CLIs' zygote's socket, and the lock its zygote holds for its life, in the run directory.
pub const CLI_SOCKET_NAME: &str = "cli-spawner.sock";
const CLI_LOCK_NAME: &str = "cli-spawner.lock";
/// How long the CLIs' zygote waits without a connection before it gives memory back.
const CLI_ZYGOTE_QUIET_MS: u16 = 2000;
/// How long a CLI that removed the last pod waits for the CLIs' zygote to exit (a fraction
/// of it but on a loaded host: the wait ends with the exit).
const CLI_ZYGOTE_EXIT_WAIT: Duration = Duration::from_secs(3);
/// The zygote's process name (`comm`).
pub const ZYGOTE_NAME: &std::ffi::CStr = c"peapod-zygote";
/// The first bytes of the hello: the protocol's version.
const HELLO: &[u8] = b"peapod-zygote/1\n";
/// The longest hello and the longest context a client sends; a larger environment is served by
/// the client's own spawner.
const MAX_HELLO: usize = 16 * 1024;
const MAX_CONTEXT: usize = 64 * 1024;
/// How long a client waits for the hello and for the answer to its context: a zygote that does
/// not answer is not used.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// `PEAPOD_*` variables that are per-command diagnostics, not configuration: they travel with
/// the context like the rest of the environment and need not be the zygote's.
const PER_COMMAND_ENV: [&str; 2] = [crate::starttrace::ENV_TRACE_START, "PEAPOD_LOG"];
/// The lines of /proc/self/status that a forked process keeps and a zygote cannot change.
const STATUS_FIELDS: [&str; 11] = [
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

/// Linux's resource limits: RLIMIT_CPU (0) to RLIMIT_RTTIME (15).
const RLIMITS: u32 = 16;

/// The zygote of this agent, once forked: its pid and the agent's end of the link.
static ZYGOTE: Mutex<Option<(Pid, OwnedFd)>> = Mutex::new(None);

/// Whether a command line (`args[1..]`) runs the node agent in the foreground (`peapod node`,
/// not `--once` nor `node install`).
pub fn is_agent(args: &[String]) -> bool {
    let mut words = args.iter().skip(1).filter(|a| !a.starts_with('-'));
    words.next().is_some_and(|v| v == "node")
        && !args.iter().any(|a| a == "--once" || a == "install")
}

/// What a process that forks a keeper hands it and cannot change afterwards: the zygote
/// serves a client only when the two are equal. Pairs sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(String, String)>);

impl Fingerprint {
    /// This process's: None when a part cannot be read (no zygote is used then). `cgroup`:
    /// with the process's cgroups, which the CLIs' zygote shares with what it forks (the
    /// agent's forks its keepers into the agent's own, deliberately: see docs/design.md).
    pub fn of_self(cgroup: bool) -> Option<Fingerprint> {
        let stat = |path: &str| nix::sys::stat::stat(path).ok();
        let exe = stat("/proc/self/exe")?;
        let root = stat("/")?;
        let mut parts = vec![
            (
                "exe".to_string(),
                format!(
                    "{}:{}:{}:{}.{}:{}.{}",
                    exe.st_dev,
                    exe.st_ino,
                    exe.st_size,
                    exe.st_mtime,
                    exe.st_mtime_nsec,
                    exe.st_ctime,
                    exe.st_ctime_nsec
                ),
            ),
            (
                "root".to_string(),
                format!("{}:{}", root.st_dev, root.st_ino),
            ),
            ("process".to_string(), process_attributes()),
        ];
        for entry in std::fs::read_dir("/proc/self/ns").ok()?.flatten() {
            let target = std::fs::read_link(entry.path()).ok()?;
            parts.push((
                format!("ns:{}", entry.file_name().to_string_lossy()),
                target.to_string_lossy().into_owned(),
            ));
        }
        if cgroup {
            let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
            parts.push(("cgroup".into(), text.trim_end().replace('\n', " ")));
        }
        if let Ok(label) = std::fs::read("/proc/self/attr/current") {
            let label = String::from_utf8_lossy(&label);
            parts.push(("lsm".into(), label.trim_end_matches(['\0', '\n']).into()));
        }
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        Some(Fingerprint::from_parts(parts, &status, std::env::vars_os()))
    }

    /// Assembles a fingerprint from what [`Fingerprint::of_self`] read.
    fn from_parts(
        mut parts: Vec<(String, String)>,
        status: &str,
        env: impl Iterator<Item = (OsString, OsString)>,
    ) -> Fingerprint {
        for line in status.lines() {
            if let Some((key, value)) = line.split_once(':') {
                if STATUS_FIELDS.contains(&key) {
                    parts.push((format!("status:{key}"), value.trim().to_string()));
                }
            }
        }
        for (key, value) in env {
            let key = key.to_string_lossy();
            if is_configuration(&key) {
                parts.push((format!("env:{key}"), value.to_string_lossy().into_owned()));
            }
        }
        parts.sort();
        Fingerprint(parts)
    }

    /// `key=value` records, each ended by a NUL (no key or value holds one).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Fingerprint> {
        let mut parts = Vec::new();
        for record in bytes.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let text = std::str::from_utf8(record).ok()?;
            let (k, v) = text.split_once('=')?;
            parts.push((k.to_string(), v.to_string()));
        }
        Some(Fingerprint(parts))
    }

    /// Ok when a zygote whose fingerprint is `self` may fork the keepers of a client whose
    /// fingerprint is `client`; else the first part that differs.
    pub fn serves(&self, client: &Fingerprint) -> Result<(), String> {
        let keys = self.0.iter().chain(&client.0).map(|(k, _)| k.as_str());
        let value = |fp: &Fingerprint, key: &str| {
            fp.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        for key in keys {
            if value(self, key) != value(client, key) {
                return Err(key.to_string());
            }
        }
        Ok(())
    }
}

/// What a fork keeps of a process's attributes that a server does not take on: the persona, the
/// scheduling policy and priority, the I/O priority, the securebits, the timer slack and
/// whether transparent huge pages are off.
fn process_attributes() -> String {
    // SAFETY: queries of this process's attributes, into values we own.
    unsafe {
        let mut param: libc::sched_param = std::mem::zeroed();
        libc::sched_getparam(0, &mut param);
        format!(
            "persona {} sched {}/{} ioprio {} securebits {} timerslack {} thp-off {}",
            libc::personality(0xffff_ffff),
            libc::sched_getscheduler(0),
            param.sched_priority,
            libc::syscall(libc::SYS_ioprio_get, 1, 0),
            libc::prctl(libc::PR_GET_SECUREBITS),
            libc::prctl(libc::PR_GET_TIMERSLACK),
            libc::prctl(libc::PR_GET_THP_DISABLE),
        )
    }
}

/// Whether an environment variable is configuration the zygote must share with a client: every
/// `PEAPOD_*` variable but the per-command diagnostics.
fn is_configuration(key: &str) -> bool {
    key.starts_with("PEAPOD_") && !PER_COMMAND_ENV.contains(&key)
}

/// What a forked keeper inherits from its client that a server can take on before forking it:
/// the client's, sent with each connection (its working directory as a descriptor beside it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub umask: u32,
    /// (resource, soft, hard)
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Signals blocked and ignored, bit N-1 for signal N.
    pub blocked: u64,
    pub ignored: u64,
    pub nice: i32,
    pub oom_score_adj: i32,
    /// The CPU affinity mask's bytes (`cpu_set_t`).
    pub affinity: Vec<u8>,
}

const TAG_ENV: u8 = b'E';
const TAG_UMASK: u8 = b'U';
const TAG_RLIMIT: u8 = b'L';
const TAG_BLOCKED: u8 = b'B';
const TAG_IGNORED: u8 = b'I';
const TAG_NICE: u8 = b'N';
const TAG_OOM: u8 = b'O';
const TAG_AFFINITY: u8 = b'A';

impl Context {
    /// This thread's (the environment, umask and the rest are the process's).
    pub fn of_self() -> Option<Context> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let umask = u32::from_str_radix(field("Umask")?, 8).ok()?;
        let ignored = u64::from_str_radix(field("SigIgn")?, 16).ok()?;
        let mut rlimits = Vec::new();
        for resource in 0..RLIMITS {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes the struct we own.
            if unsafe { libc::getrlimit(resource as _, &mut lim) } != 0 {
                return None;
            }
            rlimits.push((resource, lim.rlim_cur, lim.rlim_max));
        }
        // SAFETY: a query of this thread's mask into a set we own.
        let blocked = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set) != 0 {
                return None;
            }
            (1..=64).fold(0u64, |acc, sig| {
                if libc::sigismember(&set, sig) == 1 {
                    acc | 1 << (sig - 1)
                } else {
                    acc
                }
            })
        };
        nix::errno::Errno::clear();
        // SAFETY: getpriority reads; -1 is a valid value, told apart by errno.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        if nice == -1 && nix::errno::Errno::last_raw() != 0 {
            return None;
        }
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // SAFETY: sched_getaffinity writes the set we own, of the size given.
        let affinity = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return None;
            }
            std::slice::from_raw_parts(
                (&set as *const libc::cpu_set_t).cast::<u8>(),
                std::mem::size_of::<libc::cpu_set_t>(),
            )
            .to_vec()
        };
        Some(Context {
            env: std::env::vars_os()
                .map(|(k, v)| (k.into_vec(), v.into_vec()))
                .collect(),
            umask,
            rlimits,
            blocked,
            ignored,
            nice,
            oom_score_adj,
            affinity,
        })
    }

    /// Records of a tag byte, a length (u32 LE) and the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |tag: u8, payload: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
        };
        for (k, v) in &self.env {
            put(TAG_ENV, &[k.as_slice(), b"=", v.as_slice()].concat());
        }
        put(TAG_UMASK, &self.umask.to_le_bytes());
        for (res, cur, max) in &self.rlimits {
            let rec = [
                &res.to_le_bytes()[..],
                &cur.to_le_bytes(),
                &max.to_le_bytes(),
            ]
            .concat();
            put(TAG_RLIMIT, &rec);
        }
        put(TAG_BLOCKED, &self.blocked.to_le_bytes());
        put(TAG_IGNORED, &self.ignored.to_le_bytes());
        put(TAG_NICE, &self.nice.to_le_bytes());
        put(TAG_OOM, &self.oom_score_adj.to_le_bytes());
        put(TAG_AFFINITY, &self.affinity);
        out
    }

    /// None for anything malformed, an environment entry without `=` or with an empty name.
    pub fn decode(mut bytes: &[u8]) -> Option<Context> {
        fn num<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
            p.get(at..at + N)?.try_into().ok()
        }
        let mut ctx = Context::default();
        let mut seen_umask = false;
        while !bytes.is_empty() {
            let tag = bytes[0];
            let len = u32::from_le_bytes(num(bytes, 1)?) as usize;
            let payload = bytes.get(5..5 + len)?;
            bytes = &bytes[5 + len..];
            match tag {
                TAG_ENV => {
                    let eq = payload.iter().position(|&b| b == b'=')?;
                    if eq == 0 {
                        return None;
                    }
                    ctx.env
                        .push((payload[..eq].to_vec(), payload[eq + 1..].to_vec()));
                }
                TAG_UMASK if len == 4 => {
                    ctx.umask = u32::from_le_bytes(num(payload, 0)?);
                    seen_umask = true;
                }
                TAG_RLIMIT if len == 20 => ctx.rlimits.push((
                    u32::from_le_bytes(num(payload, 0)?),
                    u64::from_le_bytes(num(payload, 4)?),
                    u64::from_le_bytes(num(payload, 12)?),
                )),
                TAG_BLOCKED if len == 8 => ctx.blocked = u64::from_le_bytes(num(payload, 0)?),
                TAG_IGNORED if len == 8 => ctx.ignored = u64::from_le_bytes(num(payload, 0)?),
                TAG_NICE if len == 4 => ctx.nice = i32::from_le_bytes(num(payload, 0)?),
                TAG_OOM if len == 4 => ctx.oom_score_adj = i32::from_le_bytes(num(payload, 0)?),
                TAG_AFFINITY => ctx.affinity = payload.to_vec(),
                _ => return None,
            }
        }
        seen_umask.then_some(ctx)
    }

    /// Takes this context on (a server, single-threaded, before it forks any keeper); `cwd`:
    /// the client's working directory. Err names the step that failed.
    fn apply(&self, cwd: &OwnedFd) -> Result<(), &'static str> {
        nix::unistd::fchdir(cwd).map_err(|_| "working directory")?;
        let keys: Vec<OsString> = std::env::vars_os().map(|(k, _)| k).collect();
        for k in keys {
            // SAFETY: this process is single-threaded (a server forked from the zygote).
            unsafe { std::env::remove_var(k) };
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(&b'=') || k.contains(&0) || v.contains(&0) {
                return Err("environment");
            }
            // SAFETY: as above.
            unsafe { std::env::set_var(OsStr::from_bytes(k), OsStr::from_bytes(v)) };
        }
        // SAFETY: plain system calls on this process's attributes, with values we own.
        unsafe {
            libc::umask(self.umask as libc::mode_t);
            for &(res, cur, max) in &self.rlimits {
                let lim = libc::rlimit {
                    rlim_cur: cur,
                    rlim_max: max,
                };
                if libc::setrlimit(res as _, &lim) != 0 {
                    return Err("rlimit");
                }
            }
            if libc::setpriority(libc::PRIO_PROCESS, 0, self.nice) != 0 {
                return Err("nice");
            }
            if !self.affinity.is_empty() {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                let n = self
                    .affinity
                    .len()
                    .min(std::mem::size_of::<libc::cpu_set_t>());
                std::ptr::copy_nonoverlapping(
                    self.affinity.as_ptr(),
                    (&mut set as *mut libc::cpu_set_t).cast::<u8>(),
                    n,
                );
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err("cpu affinity");
                }
            }
        }
        std::fs::write("/proc/self/oom_score_adj", self.oom_score_adj.to_string())
            .map_err(|_| "oom_score_adj")?;
        // SAFETY: sigaction and sigprocmask on this single-threaded process; a handler this
        // binary installed (Rust's stack overflow guard) is left alone, only default and ignored
        // dispositions are set, as the client's were.
        unsafe {
            for sig in 1..=64 {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue; // the C library's own signals
                }
                if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = if self.ignored & (1 << (sig - 1)) != 0 {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in 1..=64 {
                if self.blocked & (1 << (sig - 1)) != 0 {
                    libc::sigaddset(&mut set, sig);
                }
            }
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err("signal mask");
            }
        }
        Ok(())
    }
}

/// Forks the zygote (the agent, first thing in `main`, single-threaded). On any failure there
/// is none, and the agent and the CLIs fork their keepers themselves.
pub fn start() {
    if let Some((child, ours)) = crate::pod::spawner::fork_with_socket(0, run) {
        if let Ok(mut slot) = ZYGOTE.lock() {
            *slot = Some((child, ours));
        }
    }
}

/// The agent's hold on its zygote's socket: the socket file is removed and the zygote stopped
/// when it is dropped.
pub struct Listening {
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let taken = ZYGOTE.lock().ok().and_then(|mut slot| slot.take());
        if let Some((pid, link)) = taken {
            drop(link);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The agent, holding the node lock `lock_path`: makes the zygote's socket in `run_dir` and
/// hands it to the zygote. None when there is no zygote or the socket cannot be made (then
/// every CLI forks its own keepers).
pub fn listen(run_dir: &Path, lock_path: &Path) -> Option<Listening> {
    let slot = ZYGOTE.lock().ok()?;
    let (_, link) = slot.as_ref()?;
    let path = run_dir.join(SOCKET_NAME);
    let listener = bind(&path).ok()?;
    let guard = Listening { path };
    let fds = [listener.as_raw_fd()];
    let sent = sendmsg::<()>(
        link.as_raw_fd(),
        &[IoSlice::new(lock_path.as_os_str().as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    );
    drop(slot);
    sent.ok().map(|_| guard)
}

/// A listening socket at `path` (a stale one removed: the caller holds the node lock), mode
/// 0600 before it listens.
fn bind(path: &Path) -> nix::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    nix::sys::socket::bind(sock.as_raw_fd(), &UnixAddr::new(path)?)?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    nix::sys::socket::listen(&sock, nix::sys::socket::Backlog::new(64)?)?;
    Ok(sock)
}

/// The zygote: waits for its socket, then forks a server for each connection of a root peer,
/// until the agent's end of `link` closes.
fn run(link: OwnedFd) -> i32 {
    // SAFETY: setsid and prctl on this process; stdio onto /dev/null: the zygote holds none of
    // the agent's output (a terminal's or the journal's).
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, ZYGOTE_NAME.as_ptr());
    }
    null_stdio();
    let mut buf = [0u8; 4096];
    let (listener, lock_path) = match receive_with_fds(&link, &mut buf) {
        Err(_) => return 0,
        Ok((n, fds)) => match fds.into_iter().next() {
            Some(listener) => (listener, PathBuf::from(OsStr::from_bytes(&buf[..n]))),
            None => return 0,
        },
    };
    let Some(hello) = Fingerprint::of_self(false).map(|fp| [HELLO, &fp.encode()].concat()) else {
        return 0;
    };
    let socket_path = listener_path(&listener);
    loop {
        let mut fds = [
            nix::poll::PollFd::new(link.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        if ready(0) {
            // The agent sends nothing more: anything readable is its end closing.
            break;
        }
        if ready(1) {
            accept_one(&listener, &[link.as_raw_fd()], &hello);
        }
    }
    drop(listener);
    // The agent is gone. Its socket goes too, unless a new agent (holding the lock) made its own.
    if let (Some(path), Ok(Some(_lock))) = (
        socket_path,
        crate::store::FileLock::try_exclusive(&lock_path),
    ) {
        let _ = std::fs::remove_file(path);
    }
    0
}

/// A CLI's spawner whose client is gone (`spawner::start`): stays on as the CLIs' zygote when
/// pods are on record and no other one runs, so that the pods of later CLIs share this exec's
/// pages as the node agent's zygote makes them share its own. The spawner returns at once
/// either way (its CLI waits for it): the zygote is a child it forks, which exits at once
/// unless it takes the CLIs' lock.
pub(crate) fn linger() {
    let paths = crate::store::Paths::from_env();
    if !pods_on_record(&paths.pods()) {
        return;
    }
    // SAFETY: the spawner is single-threaded; the child leaves through _exit.
    if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
        let lock = crate::store::FileLock::try_exclusive(&paths.run.join(CLI_LOCK_NAME));
        let code = match lock {
            Ok(Some(lock)) => serve_clis(&paths, lock),
            _ => 0,
        };
        // SAFETY: as above.
        unsafe { libc::_exit(code) }
    }
}

/// How long a CLI that found no zygote, while pods are on record, waits for the CLIs' zygote's
/// socket to appear.
const CLI_ZYGOTE_BIND_WAIT: Duration = Duration::from_millis(20);

/// Whether the CLIs' zygote's socket appeared within [`CLI_ZYGOTE_BIND_WAIT`], for a CLI that
/// found no zygote to connect to. The spawner of the CLI that started the first pod becomes
/// the zygote only after that CLI returned (`linger`): a CLI run right after it used to miss
/// the socket by a fraction of a millisecond (6 of 130 back-to-back applies on an empty host)
/// and fork a spawner of its own, whose pod then paid a whole exec's relocated pages
/// (~650 kB). No wait when no pod is on record (no zygote is coming) or when the socket is
/// there already (the connection failed for another reason).
pub fn await_cli_zygote(paths: &crate::store::Paths) -> bool {
    let socket = paths.run.join(CLI_SOCKET_NAME);
    if socket.exists() || !pods_on_record(&paths.pods()) {
        return false;
    }
    let deadline = std::time::Instant::now() + CLI_ZYGOTE_BIND_WAIT;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(250));
        if socket.exists() {
            return true;
        }
    }
    false
}

/// Whether a pod is on record in `pods` (a directory beside them being made or removed, `.`,
/// is not one).
fn pods_on_record(pods: &Path) -> bool {
    std::fs::read_dir(pods).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| !e.file_name().as_bytes().starts_with(b".")))
    })
}

/// The CLIs' zygote: serves CLIs as the agent's does, until no pod is on record.
fn serve_clis(paths: &crate::store::Paths, lock: crate::store::FileLock) -> i32 {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    // SAFETY: setsid and prctl on this process.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, ZYGOTE_NAME.as_ptr());
    }
    let Ok(inotify) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) else {
        return 0;
    };
    let gone = AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR;
    if inotify.add_watch(&paths.pods(), gone).is_err() || !pods_on_record(&paths.pods()) {
        return 0;
    }
    let path = paths.run.join(CLI_SOCKET_NAME);
    // A stale socket is removed: only a holder of the lock binds this path.
    let Ok(listener) = bind(&path) else {
        return 0;
    };
    // The hello is made at the first connection: this process is born while its CLI's pod
    // starts, and reading /proc for the fingerprint then would compete with that start.
    let mut hello: Option<Vec<u8>> = None;
    // The waiters of `await_cli_zygote_exit` read whose pods it serves.
    let _ = nix::unistd::ftruncate(lock.as_fd(), 0)
        .and_then(|()| nix::sys::uio::pwrite(lock.as_fd(), paths.pods().as_os_str().as_bytes(), 0));
    let own = [
        listener.as_raw_fd(),
        inotify.as_fd().as_raw_fd(),
        lock.as_raw_fd(),
    ];
    close_all_but(&own);
    // Trimmed once quiet for a while (as a supervisor is), not after each connection: a
    // trim's reading of smaps would compete with the start the connection asked for.
    let mut trimmed = false;
    loop {
        let mut fds = [
            nix::poll::PollFd::new(inotify.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        let wait = if trimmed {
            nix::poll::PollTimeout::NONE
        } else {
            nix::poll::PollTimeout::from(CLI_ZYGOTE_QUIET_MS)
        };
        match nix::poll::poll(&mut fds, wait) {
            Ok(0) => {
                // The CLI's code and deep stack, faulted in before this process lingered, and
                // each connection's since: given back (`supervisor::release_idle_memory`).
                crate::pod::supervisor::release_idle_memory();
                trimmed = true;
                continue;
            }
            Ok(_) => trimmed = false,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        if ready(0) {
            while inotify.read_events().is_ok_and(|events| !events.is_empty()) {}
            if !pods_on_record(&paths.pods()) {
                break;
            }
        }
        if ready(1) {
            if hello.is_none() {
                hello = Fingerprint::of_self(true).map(|fp| [HELLO, &fp.encode()].concat());
            }
            let Some(hello) = hello.as_deref() else {
                break;
            };
            accept_one(&listener, &own[1..], hello);
        }
    }
    let _ = std::fs::remove_file(&path);
    drop((listener, lock));
    0
}

/// Closes every descriptor of this process but stdio and `keep`.
fn close_all_but(keep: &[RawFd]) {
    for fd in crate::procfs::open_fds()
        .into_iter()
        .filter(|fd| !keep.contains(fd))
    {
        // SAFETY: closes a descriptor nothing in this process uses (the directory's own is
        // closed already, and fails harmlessly).
        unsafe { libc::close(fd) };
    }
}

/// At the end of a CLI command that may have removed the last pod: waits (briefly) for the
/// CLIs' zygote to see it and exit, so that no process of peapod's outlives the host's pods.
pub fn await_cli_zygote_exit() {
    let paths = crate::store::Paths::from_env();
    let lock = paths.run.join(CLI_LOCK_NAME);
    // The lock names the pods its zygote serves: a zygote of other pods is not waited for.
    let serves = std::fs::read(&lock).is_ok_and(|p| p == paths.pods().as_os_str().as_bytes());
    if !serves || pods_on_record(&paths.pods()) {
        return;
    }
    // The lock goes with the zygote's descriptors, before its exit is over: its pid (the lock's
    // holder) is watched for the exit itself, once the pidfd is known to be the holder's (not
    // a process that took its pid after an exit meanwhile).
    let holder = flock_holder(&lock).and_then(|pid| {
        let fd = crate::procfs::pidfd_open(pid)?;
        (flock_holder(&lock) == Some(pid)).then_some(fd)
    });
    let deadline = std::time::Instant::now() + CLI_ZYGOTE_EXIT_WAIT;
    while let Ok(None) = crate::store::FileLock::try_exclusive(&lock) {
        if std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if let Some(pidfd) = holder {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        crate::procfs::await_any_pidfd(&[pidfd], left);
    }
}

/// The pid of the process that holds a `flock` on `path`, from /proc/locks; None if no one
/// does or it cannot be told.
fn flock_holder(path: &Path) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let file = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    flock_holder_in(&std::fs::read_to_string("/proc/locks").ok()?, &file)
}

/// In /proc/locks' text, the pid holding a FLOCK on `file` (`major:minor:inode`, as that
/// file writes it); waiters (`->` lines) are not holders.
fn flock_holder_in(locks: &str, file: &str) -> Option<i32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, id, ..] if *id == file => pid.parse().ok(),
            _ => None,
        }
    })
}

/// The path a listening unix socket is bound to.
fn listener_path(listener: &OwnedFd) -> Option<PathBuf> {
    let addr: UnixAddr = nix::sys::socket::getsockname(listener.as_raw_fd()).ok()?;
    addr.path().map(Path::to_path_buf)
}

/// Accepts one connection and forks its server, if the peer is root; the server closes
/// `zygotes` (the zygote's own descriptors but the listener) first thing.
fn accept_one(listener: &OwnedFd, zygotes: &[RawFd], hello: &[u8]) {
    let Ok(raw) = nix::sys::socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) else {
        return;
    };
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(raw) };
    let root =
        nix::sys::socket::getsockopt(&conn, sockopt::PeerCredentials).is_ok_and(|c| c.uid() == 0);
    // The hello goes before the forks: the client compares it meanwhile.
    if !root || send(&conn, hello, &[]).is_err() {
        return;
    }
    // SAFETY: the zygote is single-threaded; both children leave through _exit.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // The intermediate: forks the server and exits, so the server is nobody's child.
            // SAFETY: as above.
            if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
                // SAFETY: closes descriptors this process owns (the zygote's) before serving.
                unsafe {
                    libc::close(listener.as_raw_fd());
                    for &fd in zygotes {
                        libc::close(fd);
                    }
                    libc::setsid();
                    libc::_exit(serve_client(conn))
                }
            }
            // SAFETY: as above.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(conn);
            let _ = nix::sys::wait::waitpid(child, None);
        }
        Err(_) => {}
    }
}

/// A connection's server: the client's context, then the spawner's loop.
fn serve_client(conn: OwnedFd) -> i32 {
    let mut buf = vec![0u8; MAX_CONTEXT];
    let (ctx, cwd) = match receive_with_fds(&conn, &mut buf) {
        Err(_) => return 1,
        Ok((n, fds)) => (Context::decode(&buf[..n]), fds.into_iter().next()),
    };
    drop(buf);
    let applied = match (ctx, cwd) {
        (Some(ctx), Some(cwd)) => ctx.apply(&cwd),
        // The client closed (its fingerprint differs), or sent what we cannot read.
        _ => return 0,
    };
    let answer: &[u8] = if applied.is_ok() { b"ok" } else { b"no" };
    if send(&conn, answer, &[]).is_err() || applied.is_err() {
        return 0;
    }
    crate::pod::spawner::serve(conn, true, true)
}

/// Sends one message with `fds` (SCM_RIGHTS), retrying after EINTR.
pub(crate) fn send(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// Receives one message of at most `max` bytes; None at the end or on an error.
fn receive(sock: &OwnedFd, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; max];
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(msg) if msg.bytes == 0 => return None,
            Ok(msg) => {
                let n = msg.bytes;
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
}

/// Receives one message into `buf`, with the descriptors it brought (at most two, taken
/// close-on-exec), retrying after EINTR: its length and the descriptors.
pub(crate) fn receive_with_fds(
    sock: &OwnedFd,
    buf: &mut [u8],
) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 2]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => return Ok((msg.bytes, received_fds(&msg))),
        }
    }
}

/// The descriptors a message brought (SCM_RIGHTS), owned.
pub(crate) fn received_fds<S>(msg: &nix::sys::socket::RecvMsg<'_, '_, S>) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: SCM_RIGHTS installed these descriptors in our table for us.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
    }
    fds
}

/// Stdio onto /dev/null.
pub(crate) fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for target in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process.
            unsafe { libc::dup2(null.as_raw_fd(), target) };
        }
    }
}

/// A client's connection to a zygote of `run_dir` (the node agent's, else the CLIs'), its
/// context sent, the server's answer to be read ([`answered`]): None (and nothing left behind)
/// when there is no zygote or none can serve this process as this process would serve itself.
pub fn connect(run_dir: &Path) -> Option<OwnedFd> {
    connect_to(&run_dir.join(SOCKET_NAME), false)
        .or_else(|| connect_to(&run_dir.join(CLI_SOCKET_NAME), true))
}

/// [`connect`] to the zygote listening at `path`; `cgroup`: whether it forks into its own
/// cgroups (the CLIs' zygote), which must then be this process's.
fn connect_to(path: &Path, cgroup: bool) -> Option<OwnedFd> {
    let addr = UnixAddr::new(path).ok()?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr).ok()?;
    // The socket is root's: a zygote of anyone else is not one.
    let peer = nix::sys::socket::getsockopt(&sock, sockopt::PeerCredentials).ok()?;
    if peer.uid() != 0 {
        return None;
    }
    // Read while the zygote accepts and sends its hello.
    let ours = Fingerprint::of_self(cgroup)?;
    let ctx = Context::of_self()?.encode();
    if ctx.len() > MAX_CONTEXT {
        return None;
    }
    let cwd = nix::fcntl::open(
        ".",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    let timeout = nix::sys::time::TimeVal::new(HANDSHAKE_TIMEOUT.as_secs() as _, 0);
    nix::sys::socket::setsockopt(&sock, sockopt::ReceiveTimeout, &timeout).ok()?;
    let hello = receive(&sock, MAX_HELLO)?;
    let theirs = Fingerprint::decode(hello.strip_prefix(HELLO)?)?;
    theirs.serves(&ours).ok()?;
    send(&sock, &ctx, &[cwd.as_raw_fd()]).ok()?;
    Some(sock)
}

/// The server's answer to the context [`connect`] sent, read before the first request (by
/// then it has long been sent): true for `ok`. False when it refused or did not answer in time:
/// it then never reads a request, and the caller forks its keepers itself.
pub fn answered(sock: &OwnedFd) -> bool {
    if receive(sock, 16).as_deref() != Some(b"ok") {
        return false;
    }
    // Requests wait for their answer without a limit: once the server has a request, it
    // answers before it forks (see `spawner::request`).
    let none = nix::sys::time::TimeVal::new(0, 0);
    nix::sys::socket::setsockopt(sock, sockopt::ReceiveTimeout, &none).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flock_holder_is_read_from_proc_locks() {
        let text = "1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 fe:00:77 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 4343 fe:00:77 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 99 fe:01:77 0 EOF\n";
        assert_eq!(flock_holder_in(text, "fe:00:77"), Some(4242));
        assert_eq!(flock_holder_in(text, "fe:01:77"), Some(99));
        assert_eq!(flock_holder_in(text, "fe:00:78"), None);
        // A lock of this process, as the kernel lists it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(flock_holder(&path), None);
        let held = crate::store::FileLock::try_exclusive(&path).unwrap();
        assert!(held.is_some());
        assert_eq!(flock_holder(&path), Some(std::process::id() as i32));
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    const STATUS: &str = "Name:\tpeapod\nUmask:\t0022\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
        Groups:\t\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nNoNewPrivs:\t0\n\
        Seccomp:\t0\nSigIgn:\t0000000000001000\n";

    fn fingerprint(exe: &str, status: &str, vars: &[(&str, &str)]) -> Fingerprint {
        Fingerprint::from_parts(
            vec![
                ("exe".into(), exe.into()),
                ("ns:mnt".into(), "mnt:[4026531841]".into()),
            ],
            status,
            env(vars),
        )
    }

    #[test]
    fn only_the_foreground_agent_forks_a_zygote() {
        assert!(is_agent(&args("peapod node")));
        assert!(is_agent(&args("peapod node --manifests /etc/m --no-cri")));
        assert!(!is_agent(&args("peapod node --once")));
        assert!(!is_agent(&args("peapod node install")));
        assert!(!is_agent(&args("peapod apply -f node")));
        assert!(!is_agent(&args("peapod")));
    }

    #[test]
    fn the_same_binary_namespaces_and_configuration_are_served() {
        let base = [("PEAPOD_LIB_DIR", "/var/lib/p"), ("HOME", "/root")];
        let zygote = fingerprint("1:2:3", STATUS, &base);
        // Variables that are not configuration, and per-command diagnostics, do not count:
        // they travel in the context.
        let client = fingerprint(
            "1:2:3",
            STATUS,
            &[
                ("PEAPOD_LIB_DIR", "/var/lib/p"),
                ("HOME", "/home/x"),
                ("TERM", "xterm"),
                ("PEAPOD_TRACE_START", "/tmp/t"),
                ("PEAPOD_LOG", "debug"),
            ],
        );
        assert_eq!(zygote.serves(&client), Ok(()));
        let round = Fingerprint::decode(&zygote.encode()).unwrap();
        assert_eq!(round, zygote);
    }

    #[test]
    fn any_difference_that_a_fork_would_keep_falls_back() {
        let base = [("PEAPOD_LIB_DIR", "/var/lib/p")];
        let zygote = fingerprint("1:2:3", STATUS, &base);
        let upgraded = fingerprint("1:9:3", STATUS, &base);
        assert_eq!(zygote.serves(&upgraded), Err("exe".into()));
        let other_dir = fingerprint("1:2:3", STATUS, &[("PEAPOD_LIB_DIR", "/tmp/x")]);
        assert_eq!(zygote.serves(&other_dir), Err("env:PEAPOD_LIB_DIR".into()));
        // A variable only one side has.
        let bridge = fingerprint(
            "1:2:3",
            STATUS,
            &[("PEAPOD_LIB_DIR", "/var/lib/p"), ("PEAPOD_BRIDGE", "br1")],
        );
        assert_eq!(zygote.serves(&bridge), Err("env:PEAPOD_BRIDGE".into()));
        assert_eq!(bridge.serves(&zygote), Err("env:PEAPOD_BRIDGE".into()));
        let confined = fingerprint(
            "1:2:3",
            &STATUS.replace("NoNewPrivs:\t0", "NoNewPrivs:\t1"),
            &base,
        );
        assert_eq!(zygote.serves(&confined), Err("status:NoNewPrivs".into()));
        let fewer_caps = fingerprint(
            "1:2:3",
            &STATUS.replace("CapBnd:\t000001ff", "CapBnd:\t000000ff"),
            &base,
        );
        assert_eq!(zygote.serves(&fewer_caps), Err("status:CapBnd".into()));
        let mut other_ns = zygote.clone();
        for (k, v) in &mut other_ns.0 {
            if k == "ns:mnt" {
                *v = "mnt:[4026532000]".into();
            }
        }
        assert_eq!(zygote.serves(&other_ns), Err("ns:mnt".into()));
    }

    #[test]
    fn fingerprint_of_this_process_reads_its_namespaces_and_binary() {
        let fp = Fingerprint::of_self(true).expect("a fingerprint of the test process");
        let keys: Vec<&str> = fp.0.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "exe",
            "root",
            "process",
            "ns:mnt",
            "ns:net",
            "ns:pid",
            "status:Uid",
            "status:CapBnd",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        assert_eq!(fp.serves(&Fingerprint::of_self(true).unwrap()), Ok(()));
    }

    #[test]
    fn the_clis_zygote_serves_only_clients_of_its_cgroups() {
        let with = Fingerprint::of_self(true).unwrap();
        let without = Fingerprint::of_self(false).unwrap();
        assert_eq!(with.serves(&without), Err("cgroup".to_string()));
        let mut elsewhere = with.clone();
        for (k, v) in &mut elsewhere.0 {
            if k == "cgroup" {
                v.push_str("/other.scope");
            }
        }
        assert_eq!(with.serves(&elsewhere), Err("cgroup".to_string()));
        assert_eq!(Fingerprint::decode(&with.encode()), Some(with));
    }

    #[test]
    fn a_pod_on_record_is_a_directory_not_being_made_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        assert!(!pods_on_record(&pods), "no directory: no pod");
        std::fs::create_dir(&pods).unwrap();
        assert!(!pods_on_record(&pods));
        std::fs::create_dir(pods.join(".new-0b1e-42")).unwrap();
        std::fs::create_dir(pods.join(".gone-77a0-43")).unwrap();
        assert!(
            !pods_on_record(&pods),
            "pods being made or removed are not on record"
        );
        std::fs::create_dir(pods.join("9d3c")).unwrap();
        assert!(pods_on_record(&pods));
    }

    #[test]
    fn context_round_trips_and_junk_is_refused() {
        let ctx = Context::of_self().expect("the test process's context");
        assert!(!ctx.rlimits.is_empty());
        assert_eq!(Context::decode(&ctx.encode()), Some(ctx.clone()));
        let mut bad = ctx.encode();
        bad.truncate(bad.len() - 1);
        assert_eq!(Context::decode(&bad), None);
        let mut no_name = Context {
            umask: 0o22,
            ..Context::default()
        };
        no_name.env.push((Vec::new(), b"x".to_vec()));
        assert_eq!(Context::decode(&no_name.encode()), None);
        assert_eq!(Context::decode(b""), None, "a context has a umask at least");
    }

    /// Where `a_server_takes_on_the_clients_context` hands its context to the process that
    /// takes it on.
    const CONTEXT_ENV: &str = "PEAPOD_TEST_ZYGOTE_CONTEXT";

    /// A server takes on the environment, working directory and umask of the context it is
    /// sent. In a process of its own (this test binary run again for the test below): a fork
    /// of the harness could inherit the environment's lock held by another test's thread and
    /// hang on it at the first `set_var`.
    #[test]
    fn a_server_takes_on_the_clients_context() {
        let ctx = Context {
            env: vec![(b"ZYGOTE_TEST".to_vec(), b"yes".to_vec())],
            umask: 0o027,
            ..Context::of_self().unwrap()
        };
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pod::zygote::tests::context_taken_on_alone"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(CONTEXT_ENV, hex::encode(ctx.encode()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let seen = stdout
            .lines()
            .find_map(|l| l.split_once("context taken on: ").map(|(_, seen)| seen));
        assert_eq!(seen, Some("true yes /tmp 27"), "{stdout}");
    }

    /// The other half of the test above, run by it alone in its own process.
    #[test]
    #[ignore = "run by a_server_takes_on_the_clients_context, in a process of its own"]
    fn context_taken_on_alone() {
        let Ok(hexed) = std::env::var(CONTEXT_ENV) else {
            return;
        };
        let encoded = hex::decode(hexed).unwrap();
        let dir = std::fs::File::open("/tmp").unwrap();
        let ok = Context::decode(&encoded).is_some_and(|c| c.apply(&OwnedFd::from(dir)).is_ok());
        // SAFETY: umask query in this process of the test's own.
        let mask = unsafe { libc::umask(0) };
        println!(
            "context taken on: {ok} {} {} {mask:o}",
            std::env::var("ZYGOTE_TEST").unwrap_or_default(),
            std::env::current_dir().unwrap().display()
        );
    }
}
