//! The CLI's spawner: a child forked when a command that may start pods begins, before the
//! CLI decodes anything, which later forks each new pod's keeper (and so its supervisor) on
//! request.
//!
//! Why: a forked process shares its parent's pages copy-on-write, and the keeper holds, for
//! its whole life, the original of every inherited page its supervisor writes afterwards.
//! Forked from the CLI after decoding and checking the pods, it inherited a heap full of the
//! CLI's data (the YAML, the decoded objects, the store's reads), pages the supervisor then
//! reuses: about 100 kB of private memory per keeper, measured with `scripts/supervisor-pss`.
//! Forked from the spawner, it inherits the heap of a process that has done nothing yet.
//!
//! The CLI sends each request on a SOCK_SEQPACKET pair: the pod's uid, with the supervisor's
//! readiness pipe and log file (SCM_RIGHTS). The spawner answers `A` (before it forks: a CLI
//! that gets no answer knows that no keeper was forked, and forks it itself; the CLI reads it
//! after its fsync of the pod's file, which the fork overlaps), then its child
//! becomes the keeper in its own session (`lifecycle::fork_keeper`, which the CLI runs itself
//! when it has no spawner). The first request's keeper is forked before the request, waiting
//! for it: by the CLI itself, just before its spawner, and asked directly (it answers `A` too;
//! see [`start`]); by a zygote's server for its client (see [`serve`]). At the CLI's end (or
//! its death) the sockets close, and the spawner and an unused waiting keeper exit; [`finish`]
//! waits for them so that no process of the command outlives it.
//!
//! When the host runs a zygote (`pod::zygote`) that can serve this CLI exactly as its own
//! spawner would, [`start`] connects to it instead of forking: the zygote's server for this
//! connection speaks the same protocol, and every pod it forks shares one exec's pages. The
//! zygote is the node agent's, or, without an agent, the CLIs': a spawner that finds pods on
//! record when its CLI is done stays on as one (`zygote::linger`) until the last pod is gone.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use nix::unistd::Pid;

/// The CLI verbs that may start pods.
const STARTING_VERBS: [&str; 4] = ["apply", "create", "replace", "run"];
/// The longest request: a pod uid (a UUID, or one given by a client).
const MAX_REQUEST: usize = 256;
/// The spawner's answer to a request, sent before it forks.
const ACK: &[u8] = b"A";

/// Who forks this process's keepers.
enum Spawner {
    /// Its own spawner child: pid and our end of its socket.
    Local(Pid, OwnedFd),
    /// A zygote's server for this process (not our child); whether it has answered our
    /// context yet.
    Zygote(OwnedFd, bool),
}

/// The spawner of this process, once started.
static SPAWNER: Mutex<Option<Spawner>> = Mutex::new(None);

/// The first pod's keeper, forked by the CLI itself before its spawner and waiting for its
/// request (see [`start`]); whether the request was sent to it.
static FIRST: Mutex<Option<(Waiting, bool)>> = Mutex::new(None);

/// Whether a command line (`args[1..]`) may remove the host's last pod: `delete`, or a verb
/// that starts pods (a failed start removes its pod).
pub fn may_end_pods(args: &[String]) -> bool {
    verb(args).is_some_and(|verb| verb == "delete" || STARTING_VERBS.contains(&verb))
}

/// The command line's verb: its first word after the program that is not a flag.
fn verb(args: &[String]) -> Option<&str> {
    args.iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
}

/// Whether a command line (`args[1..]`) may start pods: a verb that starts them, without a
/// dry run (`--dry-run`, `--dry-run=client`; not `--dry-run=none`), which would only pay for
/// the fork.
pub fn starts_pods(args: &[String]) -> bool {
    let dry_run = args
        .iter()
        .skip(1)
        .any(|a| a == "--dry-run" || a.strip_prefix("--dry-run=").is_some_and(|v| v != "none"));
    !dry_run && verb(args).is_some_and(|verb| STARTING_VERBS.contains(&verb))
}

/// Connects to the host's zygote if it can serve this process, else forks the spawner. Called
/// first thing in `main`, from a single-threaded process; on any failure there is none, and
/// supervisors are forked from the CLI as before.
pub fn start() {
    let paths = crate::store::Paths::from_env();
    if connect_zygote(&paths.run) {
        return;
    }
    if crate::pod::zygote::await_cli_zygote(&paths) && connect_zygote(&paths.run) {
        return;
    }
    // The first pod's keeper first, forked from here: it prepares on the other core while this
    // process forks its spawner and decodes, and takes the first request from this process
    // directly (two forks and a hop fewer before it than when the spawner forks it).
    let first = Waiting::fork(false);
    let first_link = first.as_ref().map(|w| w.link.as_raw_fd());
    if let (Some(w), Ok(mut slot)) = (first, FIRST.lock()) {
        *slot = Some((w, false));
    }
    let forked = fork_with_socket(0, |theirs| {
        if let Some(fd) = first_link {
            // SAFETY: this child's copy of the CLI's end of the first keeper's socket, which
            // must close with the CLI alone.
            unsafe { libc::close(fd) };
        }
        crate::pod::zygote::null_stdio();
        let code = serve(theirs, false, first_link.is_none());
        if code == 0 {
            // Its CLI is done: later CLIs' pods may share this exec (`zygote::linger`).
            crate::pod::zygote::linger();
        }
        code
    });
    if let Some((child, ours)) = forked {
        if let Ok(mut slot) = SPAWNER.lock() {
            *slot = Some(Spawner::Local(child, ours));
        }
    }
}

/// Forks a child that runs `child` on its end of a new SOCK_SEQPACKET pair and leaves through
/// `_exit` with what it returns (never returning into the caller); the parent gets the child's
/// pid and its own end. `flags`: clone flags besides a fork's (`CLONE_PARENT`). None, and no
/// child, unless the caller is single-threaded (the spawner and the zygote, both forked first
/// thing in `main`, and their servers) and the pair and fork succeed.
pub(crate) fn fork_with_socket(
    flags: u64,
    child: impl FnOnce(OwnedFd) -> i32,
) -> Option<(Pid, OwnedFd)> {
    if crate::procfs::thread_count() != 1 {
        return None;
    }
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ok()?;
    // SAFETY: single-threaded (checked above): the child may run ordinary code. It leaves
    // through _exit and never returns into the caller.
    match unsafe { crate::cgroup::clone::clone_into(flags, None) }.ok()? {
        crate::cgroup::clone::Cloned::Child { .. } => {
            drop(ours);
            let code = child(theirs);
            // SAFETY: _exit without the caller's destructors or buffers.
            unsafe { libc::_exit(code) }
        }
        crate::cgroup::clone::Cloned::Parent { pid } => Some((Pid::from_raw(pid), ours)),
    }
}

/// Uses the zygote of `run_dir` for this process's keepers if it can serve this process (the
/// node agent, the CRI server, a CLI); false when it cannot, or there is none.
pub fn connect_zygote(run_dir: &std::path::Path) -> bool {
    let Some(sock) = crate::pod::zygote::connect(run_dir) else {
        return false;
    };
    match SPAWNER.lock() {
        Ok(mut slot) => {
            *slot = Some(Spawner::Zygote(sock, false));
            true
        }
        Err(_) => false,
    }
}

/// Whether a zygote forks this process's keepers (a threaded process may then ask it).
pub fn has_zygote() -> bool {
    SPAWNER
        .lock()
        .is_ok_and(|slot| matches!(*slot, Some(Spawner::Zygote(..))))
}

/// Asks the spawner to start the keeper of pod `uid`, whose supervisor signals `ready` and
/// logs to `log`. Ok once the spawner has taken the request (it forks next); Err when there is
/// no spawner or it did not take it (it is gone): no keeper was forked, the caller forks it.
/// For threaded callers: the request and its answer are one step.
pub fn request(uid: &str, ready: &OwnedFd, log: &std::fs::File) -> std::io::Result<()> {
    if send_first(uid, ready, log) {
        return taken_first().unwrap_or(Ok(()));
    }
    let mut slot = lock()?;
    send_on(&mut slot, uid, ready, log)?;
    taken_on(&slot)
}

/// The first half of [`request`], for a single-threaded caller that does something else (its
/// fsync) while the spawner forks, then reads the answer with [`taken`]. Err: not sent.
pub fn send(uid: &str, ready: &OwnedFd, log: &std::fs::File) -> std::io::Result<()> {
    if send_first(uid, ready, log) {
        return Ok(());
    }
    send_on(&mut *lock()?, uid, ready, log)
}

/// The second half of [`request`]: Ok when the spawner took the request [`send`] sent.
pub fn taken() -> std::io::Result<()> {
    if let Some(answer) = taken_first() {
        return answer;
    }
    taken_on(&*lock()?)
}

/// Sends the request to the first keeper, unless it has had one (or is gone: then ended, and
/// the spawner is asked instead); true when sent.
fn send_first(uid: &str, ready: &OwnedFd, log: &std::fs::File) -> bool {
    let Ok(mut slot) = FIRST.lock() else {
        return false;
    };
    let Some((w, asked)) = slot.as_mut() else {
        return false;
    };
    if *asked {
        return false;
    }
    let fds = [ready.as_raw_fd(), log.as_raw_fd()];
    if crate::pod::zygote::send(&w.link, uid.as_bytes(), &fds).is_ok() {
        *asked = true;
        return true;
    }
    if let Some((w, _)) = slot.take() {
        w.end();
    }
    false
}

/// The first keeper's answer to the request [`send_first`] sent it (None: it was not sent
/// there): Ok once it took it and goes on as the pod's keeper; Err if it ended first (it
/// is reaped, and the caller forks the keeper itself).
fn taken_first() -> Option<std::io::Result<()>> {
    let mut slot = FIRST.lock().ok()?;
    if !matches!(slot.as_ref(), Some((_, true))) {
        return None;
    }
    let (w, _) = slot.take()?;
    let mut answer = [0u8; 8];
    let n = loop {
        match nix::sys::socket::recv(w.link.as_raw_fd(), &mut answer, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break 0,
            Ok(n) => break n,
        }
    };
    if answer.get(..n) == Some(ACK) {
        // Its socket closes here; the keeper is on its own (in its own session).
        return Some(Ok(()));
    }
    w.end();
    Some(Err(std::io::Error::other("the first keeper is gone")))
}

fn lock() -> std::io::Result<std::sync::MutexGuard<'static, Option<Spawner>>> {
    SPAWNER
        .lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))
}

fn socket_of(slot: &Option<Spawner>) -> std::io::Result<&OwnedFd> {
    match slot.as_ref() {
        Some(Spawner::Local(_, sock) | Spawner::Zygote(sock, _)) => Ok(sock),
        None => Err(std::io::Error::other("no spawner")),
    }
}

fn send_on(
    slot: &mut Option<Spawner>,
    uid: &str,
    ready: &OwnedFd,
    log: &std::fs::File,
) -> std::io::Result<()> {
    if let Some(Spawner::Zygote(sock, answered)) = slot.as_mut() {
        if !*answered {
            if !crate::pod::zygote::answered(sock) {
                // Refused or silent: it reads no request; this process forks its keepers.
                *slot = None;
                return Err(std::io::Error::other("the zygote refused this process"));
            }
            *answered = true;
        }
    }
    let sock = socket_of(slot)?;
    let fds = [ready.as_raw_fd(), log.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(uid.as_bytes())],
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(drop).map_err(std::io::Error::from),
        }
    }
}

fn taken_on(slot: &Option<Spawner>) -> std::io::Result<()> {
    let sock = socket_of(slot)?;
    let mut answer = [0u8; 8];
    loop {
        let mut iov = [IoSliceMut::new(&mut answer)];
        let n = match recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => msg.bytes,
        };
        if answer.get(..n) == Some(ACK) {
            return Ok(());
        }
        return Err(std::io::Error::other("the spawner is gone"));
    }
}

/// Closes the socket (the spawner exits at its end) and reaps our own spawner, or waits for a
/// zygote's server to exit.
pub fn finish() {
    // An unused first keeper ends; one that was asked is a keeper now, not waited for.
    if let Some((w, asked)) = FIRST.lock().ok().and_then(|mut slot| slot.take()) {
        if !asked {
            w.end();
        }
    }
    let taken = SPAWNER.lock().ok().and_then(|mut slot| slot.take());
    match taken {
        Some(Spawner::Local(pid, sock)) => {
            drop(sock);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        Some(Spawner::Zygote(sock, _)) => await_peer_exit(sock),
        None => {}
    }
}

/// How long a CLI waits for its zygote server to exit.
const SERVER_EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends a connection and waits (briefly) until the process at its other end has exited: its
/// end closes with it. A CLI's zygote server (the keepers it forks keep no copy), so that no
/// process of the command outlives it, as with a spawner of its own; a server's unused
/// waiting keeper, likewise.
fn await_peer_exit(sock: OwnedFd) {
    // SAFETY: shutdown(2) of our own socket's sending side: the server reads its end.
    unsafe { libc::shutdown(sock.as_raw_fd(), libc::SHUT_WR) };
    let timeout = nix::sys::time::TimeVal::new(SERVER_EXIT_WAIT.as_secs() as _, 0);
    if nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 16];
    loop {
        match nix::sys::socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(n) if n > 0 => continue,
            _ => return,
        }
    }
}

/// The spawner's loop: one keeper per request, until the client closes its end. `detach`: a
/// zygote's server, whose keepers are made children of its own parent (`CLONE_PARENT`: init or
/// the host's subreaper, the server being nobody's child), so that none is ours.
///
/// The first request's keeper is forked ahead, as soon as the client is here: while the CLI
/// reads and decodes its pod on one core, the keeper is forked on the other and learns the
/// host's facts for its supervisor (`supervisor::prepare`), work that would otherwise come
/// after the request, on the pod's start path. Unused (the CLI starts no pod), it is ended
/// before this loop returns, so that no process of the command outlives it.
pub(crate) fn serve(sock: OwnedFd, detach: bool, ahead: bool) -> i32 {
    // The trace file is the client's (a zygote's server took on its environment).
    crate::starttrace::reopen();
    let mut waiting = if ahead { Waiting::fork(detach) } else { None };
    let code = loop {
        let mut buf = [0u8; MAX_REQUEST];
        let Ok((n, fds)) = crate::pod::zygote::receive_with_fds(&sock, &mut buf) else {
            break 1;
        };
        crate::starttrace::mark("spawner request");
        if n == 0 && fds.is_empty() {
            break 0;
        }
        let uid = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut fds = fds.into_iter();
        let (Some(ready), Some(log)) = (fds.next(), fds.next()) else {
            continue;
        };
        // Taken: from here a failure drops `ready` unwritten, and the client reports the
        // supervisor's failure. Not taken (the client is gone): nothing is forked.
        if !answer_taken(&sock) {
            continue;
        }
        if let Some(w) = waiting.take() {
            if w.hand(&uid, &ready, &log) {
                continue;
            }
        }
        // A zygote's server is nobody's child: its keepers become nobody's child too.
        let _ = crate::pod::lifecycle::fork_keeper(&uid, ready, log.into(), detach);
    };
    if let Some(w) = waiting {
        w.end();
    }
    code
}

/// Answers a request `A` (taken) on `sock`; false if the client is gone.
fn answer_taken(sock: &OwnedFd) -> bool {
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(ACK)],
        &[],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .is_ok()
}

/// A keeper forked before its request, waiting on its socket for the pod's uid, readiness
/// pipe and log file (the message a spawner reads from its client).
struct Waiting {
    link: OwnedFd,
    /// Our child (a spawner's own, not a zygote server's), reaped when unused.
    child: Option<Pid>,
}

impl Waiting {
    /// None if the socket or the fork fails: the request's keeper is then forked on request.
    fn fork(detach: bool) -> Option<Waiting> {
        let flags = if detach { libc::CLONE_PARENT as u64 } else { 0 };
        let (pid, link) = fork_with_socket(flags, |theirs| {
            let keep = theirs.as_raw_fd();
            crate::pod::zygote::null_stdio();
            // SAFETY: setsid, and closing descriptors this process owns: all but its socket
            // end, the client's connection above all, whose end must close with the server.
            unsafe {
                libc::setsid();
                if keep > 3 {
                    libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
            }
            crate::pod::supervisor::prepare();
            await_request(theirs)
        })?;
        // Its preparation is meant to run beside the client's decoding, not after it.
        crate::cgroup::clone::start_elsewhere(pid.as_raw());
        Some(Waiting {
            link,
            child: (!detach).then_some(pid),
        })
    }

    /// Hands the request to the keeper; false if it cannot take it (gone).
    fn hand(self, uid: &str, ready: &OwnedFd, log: &OwnedFd) -> bool {
        let fds = [ready.as_raw_fd(), log.as_raw_fd()];
        if crate::pod::zygote::send(&self.link, uid.as_bytes(), &fds).is_ok() {
            return true;
        }
        self.end();
        false
    }

    /// Tells the unused keeper to exit and waits until it has.
    fn end(self) {
        await_peer_exit(self.link);
        if let Some(pid) = self.child {
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The waiting keeper's side: the request, then the keeper's life (as `fork_keeper`'s child).
/// Leaves with 0 if its spawner closes the socket first.
fn await_request(link: OwnedFd) -> i32 {
    let mut buf = [0u8; MAX_REQUEST];
    let Ok((n, fds)) = crate::pod::zygote::receive_with_fds(&link, &mut buf) else {
        crate::sandbox::pause::end_ahead();
        return 0;
    };
    let mut fds = fds.into_iter();
    let (Some(ready), Some(log)) = (fds.next(), fds.next()) else {
        crate::sandbox::pause::end_ahead();
        return 0;
    };
    // Taken (read by a CLI that forked this keeper itself; a spawner has answered already).
    answer_taken(&link);
    drop(link);
    // SAFETY: dup2 onto stdio, which this process owns.
    unsafe {
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    drop(log);
    crate::starttrace::reopen();
    let uid = String::from_utf8_lossy(&buf[..n]).into_owned();
    crate::pod::supervisor::main_forked(&uid, ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn only_verbs_that_start_pods_get_a_spawner() {
        assert!(starts_pods(&args("peapod apply -f pod.yaml")));
        assert!(starts_pods(&args("peapod --namespace=x create -f -")));
        assert!(starts_pods(&args("peapod run web --image=nginx")));
        assert!(!starts_pods(&args("peapod get pods")));
        assert!(!starts_pods(&args("peapod delete pod apply")));
        assert!(!starts_pods(&args("peapod")));
        assert!(!starts_pods(&args("peapod apply -f pod.yaml --dry-run")));
        assert!(!starts_pods(&args(
            "peapod create -f pod.yaml --dry-run=client"
        )));
        assert!(starts_pods(&args(
            "peapod create -f pod.yaml --dry-run=none"
        )));
    }

    #[test]
    fn deletes_and_starts_may_end_the_last_pod() {
        assert!(may_end_pods(&args("peapod delete pods --all")));
        assert!(may_end_pods(&args("peapod apply -f pod.yaml")));
        assert!(!may_end_pods(&args("peapod get pods")));
        assert!(!may_end_pods(&args("peapod logs delete")));
    }
}
