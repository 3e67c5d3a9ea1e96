//! The pod's keeper: a tiny process above the supervisor that lets a killed supervisor be
//! replaced without touching the pod's containers (re-adoption, `pod::adopt`).
//!
//! Where a supervisor is started (forked by `apply` or the node agent, or `peapod __supervise`),
//! the detached process first becomes the keeper: a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`) that forks the supervisor. The kernel hands the children of a
//! dying process to its nearest living subreaper ancestor, so when the supervisor dies, the
//! pause process and every container (each the init of its own pid namespace) become the
//! keeper's children: their exits are still collected, with their status.
//!
//! Over a socket pair (SOCK_SEQPACKET, one message a record) the supervisor sends the keeper a
//! copy of each descriptor a container instance needs to outlive it (the stdout and stderr pipes'
//! read ends, the stdin pipe's write end, a terminal's master), tagged `<container>/<instance>/
//! <role>`, and releases them when that instance is done. While no supervisor runs, a container
//! writing its output finds its pipe full, not readerless: it blocks instead of dying of SIGPIPE.
//!
//! When the supervisor exits (its pod finished or was deleted, or it failed), the keeper exits
//! with its code. When it is killed (a signal), the keeper forks a new one in adopt mode, which
//! inherits the held descriptors and the exits the keeper collected ([`Handoff`]); afterwards
//! every exit the keeper collects is relayed (`X` records). The keeper does nothing else, holds
//! no pod state and allocates only its small tables: it costs a few pages per pod.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::unistd::Pid;

/// How many recent exits the keeper remembers for the next supervisor: an exit relayed to a
/// supervisor that died before reading it is handed over again.
const EXITS_KEPT: usize = 64;
/// A supervisor killed this often within [`RESPAWN_WINDOW`] is not started again: the pod stays
/// `Unknown` (as without a keeper) rather than looping.
const RESPAWNS_MAX: usize = 5;
const RESPAWN_WINDOW: Duration = Duration::from_secs(60);
/// How long a new supervisor waits for the keeper to answer its sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// The keeper's and the supervisor's process names (`comm`).
const KEEPER_NAME: &std::ffi::CStr = c"peapod-keeper";
const SUPERVISOR_NAME: &std::ffi::CStr = c"peapod";
/// The longest record: a tag (container names are at most 63 bytes).
const MAX_RECORD: usize = 256;

/// What the keeper hands a supervisor it starts in adopt mode: the descriptors it holds, by tag,
/// and the recent exits of processes it collected (pid, wait status).
#[derive(Debug, Default)]
pub struct Handoff {
    pub held: Vec<(String, OwnedFd)>,
    pub exits: Vec<(i32, i32)>,
}

/// The tag of one descriptor of a container instance.
pub fn tag(container: &str, instance: u32, role: Role) -> String {
    format!("{}{}", instance_prefix(container, instance), role.as_str())
}

/// The prefix of every tag of one container instance.
pub fn instance_prefix(container: &str, instance: u32) -> String {
    format!("{container}/{instance}/")
}

/// Which descriptor of an instance a tag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Stdout,
    Stderr,
    Stdin,
    Terminal,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stdout => "out",
            Role::Stderr => "err",
            Role::Stdin => "in",
            Role::Terminal => "tty",
        }
    }
}

/// One record on the keeper's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Supervisor to keeper: hold the descriptor that comes with it under this tag.
    Hold(String),
    /// Supervisor to keeper: close every descriptor whose tag starts with this.
    Release(String),
    /// Supervisor to keeper: collect every exited child now, then answer [`Record::Synced`].
    Sync,
    /// Keeper to supervisor: a process it collected (pid, wait status).
    Exit(i32, i32),
    Synced,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Hold(t) => {
                out.push(b'H');
                out.extend_from_slice(t.as_bytes());
            }
            Record::Release(p) => {
                out.push(b'R');
                out.extend_from_slice(p.as_bytes());
            }
            Record::Sync => out.push(b'S'),
            Record::Exit(pid, status) => {
                out.push(b'X');
                out.extend_from_slice(&pid.to_le_bytes());
                out.extend_from_slice(&status.to_le_bytes());
            }
            Record::Synced => out.push(b'Y'),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let (&kind, rest) = bytes.split_first()?;
        let text = || String::from_utf8(rest.to_vec()).ok();
        let int = |i: usize| Some(i32::from_le_bytes(rest.get(i..i + 4)?.try_into().ok()?));
        match kind {
            b'H' => text().map(Record::Hold),
            b'R' => text().map(Record::Release),
            b'S' if rest.is_empty() => Some(Record::Sync),
            b'X' if rest.len() == 8 => Some(Record::Exit(int(0)?, int(4)?)),
            b'Y' if rest.is_empty() => Some(Record::Synced),
            _ => None,
        }
    }
}

/// A wait status as the supervisor's own reaping sees it: (exit code, signal); a signal N is
/// exit code 128 + N. None for a status that is not an end (stopped, continued).
pub fn exit_of(status: i32) -> Option<(i32, Option<i32>)> {
    if libc::WIFEXITED(status) {
        Some((libc::WEXITSTATUS(status), None))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        Some((128 + sig, Some(sig)))
    } else {
        None
    }
}

/// Whether a supervisor killed now is started again, given the times of the earlier restarts
/// (pruned here to the window).
pub fn may_respawn(restarts: &mut Vec<Instant>, now: Instant) -> bool {
    restarts.retain(|t| now.saturating_duration_since(*t) < RESPAWN_WINDOW);
    if restarts.len() >= RESPAWNS_MAX {
        return false;
    }
    restarts.push(now);
    true
}

fn seqpacket_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

fn send(sock: BorrowedFd<'_>, record: &Record, fd: Option<BorrowedFd<'_>>) -> nix::Result<()> {
    let bytes = record.encode();
    let raw: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage<'_>> = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &cmsgs,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// Reads one record (and the descriptor it carries). Ok(None) at the peer's end, Err(EAGAIN)
/// when nothing waits.
fn receive(sock: BorrowedFd<'_>) -> nix::Result<Option<(Option<Record>, Option<OwnedFd>)>> {
    let mut buf = [0u8; MAX_RECORD];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let n = msg.bytes;
    let mut fd = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: SCM_RIGHTS installed these descriptors in our table for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
    }
    if n == 0 && fd.is_none() {
        return Ok(None);
    }
    Ok(Some((Record::decode(&buf[..n]), fd)))
}

/// The supervisor's end of the socket to its keeper.
pub struct Link {
    sock: OwnedFd,
}

impl Link {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Gives the keeper a copy of `fd` to hold under `tag`.
    pub fn hold(&self, tag: &str, fd: BorrowedFd<'_>) -> nix::Result<()> {
        send(self.sock.as_fd(), &Record::Hold(tag.to_string()), Some(fd))
    }

    /// The keeper closes every descriptor whose tag starts with `prefix`.
    pub fn release(&self, prefix: &str) -> nix::Result<()> {
        send(
            self.sock.as_fd(),
            &Record::Release(prefix.to_string()),
            None,
        )
    }

    /// The exits relayed since the last read; None once the keeper is gone.
    pub fn read_exits(&self) -> Option<Vec<(i32, i32)>> {
        let mut exits = Vec::new();
        loop {
            match receive(self.sock.as_fd()) {
                Ok(None) => return None,
                Ok(Some((Some(Record::Exit(pid, status)), _))) => exits.push((pid, status)),
                Ok(Some(_)) => {}
                Err(nix::errno::Errno::EAGAIN) => return Some(exits),
                Err(_) => return None,
            }
        }
    }

    /// Asks the keeper to collect every exited child, and returns the exits it relays until it
    /// answers: after this, a process of the pod that is gone and not among them (nor in the
    /// handoff) ended before the keeper could see it.
    pub fn sync(&self) -> nix::Result<Vec<(i32, i32)>> {
        send(self.sock.as_fd(), &Record::Sync, None)?;
        let deadline = Instant::now() + SYNC_TIMEOUT;
        let mut exits = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(nix::errno::Errno::ETIMEDOUT);
            }
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            let ms = left.as_millis().min(u16::MAX as u128) as u16;
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
            loop {
                match receive(self.sock.as_fd()) {
                    Ok(None) => return Err(nix::errno::Errno::EPIPE),
                    Ok(Some((Some(Record::Exit(pid, status)), _))) => exits.push((pid, status)),
                    Ok(Some((Some(Record::Synced), _))) => return Ok(exits),
                    Ok(Some(_)) => {}
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The keeper's own state.
struct Keeper {
    uid: String,
    signals: SignalFd,
    /// The socket to the running supervisor; None between its death and the next one.
    sock: Option<OwnedFd>,
    supervisor: Option<Pid>,
    held: Vec<(String, OwnedFd)>,
    exits: VecDeque<(i32, i32)>,
    restarts: Vec<Instant>,
    /// The keeper's exit code, once its supervisor has ended for good.
    done: Option<i32>,
}

/// Where the forked supervisor goes on.
enum Forked {
    Keeper,
    /// In the child: the supervisor's exit code.
    Supervisor(i32),
}

/// Becomes the pod's keeper and starts its supervisor; returns the exit code of the keeper (or,
/// in the forked supervisor, the supervisor's). `ready` goes to the supervisor, which tells
/// `apply` through it that it recorded itself. The caller is single-threaded and detached
/// (its own session).
pub fn run(uid: &str, ready: Option<OwnedFd>) -> i32 {
    crate::starttrace::mark("keeper main");
    crate::pod::supervisor::init_logging();
    // SAFETY: prctl with integer arguments touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot become a subreaper: a killed supervisor will not be replaced");
    }
    let signals = match crate::pod::loop_signalfd(&[]) {
        Ok(s) => s,
        Err((step, e)) => {
            // No keeper then: this process is the supervisor, as before.
            tracing::warn!(error = %e, step, "cannot set up the keeper; supervising without one");
            return crate::pod::supervisor::run_main(uid, ready, None, None);
        }
    };
    // Told apart in `ps` from the supervisor it forks (which takes peapod's name back).
    let _ = nix::sys::prctl::set_name(KEEPER_NAME);
    let mut k = Keeper {
        uid: uid.to_string(),
        signals,
        sock: None,
        supervisor: None,
        held: Vec::new(),
        exits: VecDeque::with_capacity(EXITS_KEPT),
        restarts: Vec::new(),
        done: None,
    };
    match k.start_supervisor(ready, false) {
        Forked::Supervisor(code) => return code,
        Forked::Keeper => {}
    }
    if k.supervisor.is_none() {
        return 1;
    }
    // What start-up left resident is given back once the pod's start is over (`serve`'s
    // first quiet wait), not now: reading /proc/self/smaps and dropping pages here would take
    // a CPU from the supervisor and the container being started.
    k.serve()
}

impl Keeper {
    /// Forks a supervisor (`adopt`: in adopt mode, handed what the keeper holds). In the
    /// child, runs it to its end.
    fn start_supervisor(&mut self, ready: Option<OwnedFd>, adopt: bool) -> Forked {
        let (mine, theirs) = match seqpacket_pair() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "keeper: cannot make the supervisor's socket");
                return Forked::Keeper;
            }
        };
        crate::starttrace::mark("keeper forking");
        // SAFETY: the keeper is single-threaded; the child runs the supervisor and leaves
        // through the caller's exit, never returning into the keeper's loop.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(mine);
                let _ = nix::sys::prctl::set_name(SUPERVISOR_NAME);
                // The keeper's own descriptors are not the supervisor's; the held ones are
                // handed over (the keeper's copies stay in the keeper).
                self.sock = None;
                let handoff = adopt.then(|| Handoff {
                    held: std::mem::take(&mut self.held),
                    exits: self.exits.drain(..).collect(),
                });
                let uid = std::mem::take(&mut self.uid);
                let code = crate::pod::supervisor::run_main(
                    &uid,
                    ready,
                    Some(Link { sock: theirs }),
                    handoff,
                );
                Forked::Supervisor(code)
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                // Learnt for this supervisor only (a later one learns them afresh).
                crate::pod::supervisor::forget_prepared();
                drop(theirs);
                drop(ready);
                self.sock = Some(mine);
                self.supervisor = Some(child);
                tracing::debug!(supervisor = %child, "keeper: supervisor started");
                Forked::Keeper
            }
            Err(e) => {
                crate::pod::supervisor::forget_prepared();
                tracing::error!(error = %e, "keeper: cannot fork the supervisor");
                Forked::Keeper
            }
        }
    }

    /// The keeper's loop, until its supervisor ends; returns the exit code. Once it has had
    /// nothing to do for [`IDLE_TRIM_AFTER`] after some work (the supervisor's records while
    /// it starts containers), it gives back the code pages and stack that work faulted in, as
    /// the supervisor does: the kernel maps code 64 kB around each fault, ~300 kB resident.
    fn serve(&mut self) -> i32 {
        let idle_trim = PollTimeout::try_from(crate::pod::supervisor::IDLE_TRIM_AFTER)
            .unwrap_or(PollTimeout::NONE);
        let mut trimmed = false;
        loop {
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            if let Some(s) = &self.sock {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            let timeout = if trimmed {
                PollTimeout::NONE
            } else {
                idle_trim
            };
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    drop(fds);
                    crate::pod::supervisor::release_idle_memory();
                    trimmed = true;
                    continue;
                }
                Ok(_) => trimmed = false,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!(error = %e, "keeper: poll failed");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let (signals, socket) = (ready(&fds[0]), fds.get(1).is_some_and(ready));
            drop(fds);
            if socket {
                self.read_records();
            }
            if signals {
                self.on_signals();
            }
            if let Some(code) = self.done {
                return code;
            }
        }
    }

    fn read_records(&mut self) {
        loop {
            let Some(sock) = &self.sock else { return };
            match receive(sock.as_fd()) {
                Ok(Some((Some(Record::Hold(tag)), Some(fd)))) => self.held.push((tag, fd)),
                Ok(Some((Some(Record::Release(prefix)), _))) => {
                    self.held.retain(|(t, _)| !t.starts_with(&prefix))
                }
                Ok(Some((Some(Record::Sync), _))) => {
                    self.reap();
                    if let Some(sock) = &self.sock {
                        let _ = send(sock.as_fd(), &Record::Synced, None);
                    }
                }
                Ok(Some(_)) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                // The supervisor's end closed: it died (its exit comes as SIGCHLD).
                Ok(None) | Err(_) => {
                    self.sock = None;
                    return;
                }
            }
        }
    }

    fn on_signals(&mut self) {
        let mut child = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => child = true,
                Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP)) => {
                    if let Some(s) = self.supervisor {
                        let _ = kill(s, sig);
                    }
                }
                _ => {}
            }
        }
        if child {
            self.reap();
        }
    }

    /// Collects every exited child: the supervisor's end decides what follows (`done` once
    /// the keeper is to exit); any other's is relayed (and remembered for the next supervisor).
    fn reap(&mut self) {
        while self.done.is_none() {
            let mut status = 0;
            // SAFETY: waitpid writes the status into our local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if Some(Pid::from_raw(pid)) != self.supervisor {
                self.relay(pid, status);
                continue;
            }
            self.supervisor = None;
            if libc::WIFEXITED(status) {
                // It ended the pod (finished, deleted) or failed on its own: so does the keeper.
                self.done = Some(libc::WEXITSTATUS(status));
                return;
            }
            tracing::warn!(
                status,
                "keeper: the supervisor was killed; starting a new one to adopt the pod"
            );
            self.sock = None;
            if !may_respawn(&mut self.restarts, Instant::now()) {
                tracing::error!(
                    "keeper: the supervisor was killed too often; the pod is left unsupervised"
                );
                self.done = Some(1);
                return;
            }
            // The exits collected so far are handed over; the next ones are relayed.
            self.reap_others();
            match self.start_supervisor(None, true) {
                Forked::Supervisor(code) => {
                    // SAFETY: the new supervisor leaves here, without the keeper's destructors.
                    unsafe { libc::_exit(code) }
                }
                Forked::Keeper if self.supervisor.is_none() => self.done = Some(1),
                Forked::Keeper => {}
            }
        }
    }

    /// Collects the children other than the supervisor that have ended, without waiting.
    fn reap_others(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into our local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            self.relay(pid, status);
        }
    }

    fn relay(&mut self, pid: i32, status: i32) {
        if self.exits.len() == EXITS_KEPT {
            self.exits.pop_front();
        }
        self.exits.push_back((pid, status));
        if let Some(sock) = &self.sock {
            let _ = send(sock.as_fd(), &Record::Exit(pid, status), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_refused() {
        for r in [
            Record::Hold(tag("app", 3, Role::Stdout)),
            Record::Release(instance_prefix("app", 3)),
            Record::Sync,
            Record::Exit(4242, 3 << 8),
            Record::Synced,
        ] {
            assert_eq!(Record::decode(&r.encode()), Some(r));
        }
        assert_eq!(Record::decode(b""), None);
        assert_eq!(Record::decode(b"X123"), None);
        assert_eq!(Record::decode(b"Sx"), None);
        assert_eq!(Record::decode(b"Q"), None);
    }

    #[test]
    fn a_release_prefix_covers_one_instance_only() {
        let prefix = instance_prefix("app", 1);
        assert!(tag("app", 1, Role::Stdin).starts_with(&prefix));
        assert!(!tag("app", 10, Role::Stdin).starts_with(&prefix));
        assert!(!tag("app2", 1, Role::Stdin).starts_with(&prefix));
    }

    #[test]
    fn wait_statuses_read_as_the_supervisor_reaps_them() {
        assert_eq!(exit_of(7 << 8), Some((7, None)));
        assert_eq!(exit_of(libc::SIGKILL), Some((137, Some(9))));
        // Stopped by SIGSTOP: not an end.
        assert_eq!(exit_of((libc::SIGSTOP << 8) | 0x7f), None);
    }

    #[test]
    fn respawns_are_limited_within_the_window() {
        let mut restarts = Vec::new();
        let t0 = Instant::now();
        for i in 0..RESPAWNS_MAX {
            assert!(may_respawn(
                &mut restarts,
                t0 + Duration::from_secs(i as u64)
            ));
        }
        assert!(!may_respawn(&mut restarts, t0 + Duration::from_secs(10)));
        assert!(may_respawn(
            &mut restarts,
            t0 + RESPAWN_WINDOW + Duration::from_secs(5)
        ));
    }

    #[test]
    fn held_descriptors_travel_and_exits_come_back() {
        let (k, s) = seqpacket_pair().unwrap();
        let link = Link { sock: s };
        let (r, _w) = nix::unistd::pipe().unwrap();
        link.hold(&tag("app", 0, Role::Stdout), r.as_fd()).unwrap();
        let (record, fd) = receive(k.as_fd()).unwrap().unwrap();
        assert_eq!(record, Some(Record::Hold("app/0/out".into())));
        assert!(fd.is_some());
        send(k.as_fd(), &Record::Exit(12, 3 << 8), None).unwrap();
        assert_eq!(link.read_exits(), Some(vec![(12, 3 << 8)]));
        drop(k);
        assert_eq!(link.read_exits(), None);
    }
}
