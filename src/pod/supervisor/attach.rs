//! `peapod attach`'s other end: the pod's attach socket, as a CRI runtime exposes one (conmon's
//! attach socket, containerd's shim FIFOs). Clients ask for one container's streams
//! ([`crate::pod::attach`]); the poll loop accepts them, copies the container's output to them
//! as it logs it, writes their input to the container's stdin, passes window sizes to its
//! terminal, and closes them when the instance ends. Detaching never touches the container.
//!
//! Nothing here blocks: every descriptor is non-blocking and the loop polls them. Output a
//! client cannot take at once is dropped for that client (the log keeps it); stdin the
//! container does not take at once waits in the instance, and meanwhile no client's stdin is
//! read, so a slow reader holds its writers back instead of filling the supervisor's memory.
//!
//! `stdinOnce`: the container's stdin is closed when the first session that attached stdin
//! ends, as containerd closes it (not on a terminal, whose master is also its output).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{
    accept4, bind, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

use super::Supervisor;
use crate::logs::Stream;
use crate::pod::attach::{Message, MAX_MESSAGE};

/// One attached client.
struct Client {
    id: u64,
    fd: OwnedFd,
    /// None until its request has arrived.
    target: Option<Target>,
}

/// What an attached client gets: the container (index into the supervisor's runs) and streams.
#[derive(Clone, Copy)]
struct Target {
    run: usize,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// The listening socket and the clients.
pub(crate) struct Attach {
    listener: Option<OwnedFd>,
    path: PathBuf,
    clients: Vec<Client>,
    next_id: u64,
}

/// What the poll loop watches for attach, and what it found ready.
#[derive(Default)]
pub(super) struct AttachReady {
    pub listener: bool,
    pub clients: Vec<u64>,
    /// Runs whose stdin can take the pending bytes.
    pub inputs: Vec<usize>,
}

impl Attach {
    /// Listens on `path` (a stale file from an earlier supervisor is replaced). A failure is
    /// logged: the pod runs without attach.
    pub fn open(path: &Path) -> Attach {
        let listener = match listen_on(path) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no attach socket");
                None
            }
        };
        Attach {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
            next_id: 0,
        }
    }

    /// Closes the socket and removes its file.
    pub fn close(&mut self) {
        self.clients.clear();
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    pub fn listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(|l| l.as_fd())
    }

    /// The clients to read from; those that write stdin to a container whose stdin is still
    /// full are left out until it drains. `blocked(run)` says which.
    pub fn client_fds(&self, blocked: impl Fn(usize) -> bool) -> Vec<(u64, BorrowedFd<'_>)> {
        self.clients
            .iter()
            .filter(|c| !c.target.is_some_and(|t| t.stdin && blocked(t.run)))
            .map(|c| (c.id, c.fd.as_fd()))
            .collect()
    }

    /// Sends `data` from `stream` of run `run` to every client attached to it that wants it.
    pub fn broadcast(&mut self, run: usize, stream: Stream, data: &[u8]) {
        let mut message = None;
        for c in &self.clients {
            let Some(t) = c.target.filter(|t| t.run == run) else {
                continue;
            };
            let wanted = match stream {
                Stream::Stdout => t.stdout,
                Stream::Stderr => t.stderr,
            };
            if !wanted {
                continue;
            }
            let bytes = message.get_or_insert_with(|| {
                match stream {
                    Stream::Stdout => Message::Stdout(data.to_vec()),
                    Stream::Stderr => Message::Stderr(data.to_vec()),
                }
                .encode()
            });
            if let Err(e) = send(c.fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
                tracing::debug!(client = c.id, error = %e, "attach output dropped");
            }
        }
    }

    /// Ends the sessions of run `run` (its instance ended): the clients see the socket close.
    pub fn end_run(&mut self, run: usize) {
        self.clients
            .retain(|c| c.target.is_none_or(|t| t.run != run));
    }

    /// Takes every pending connection.
    fn accept_all(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match accept4(
                listener.as_raw_fd(),
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(fd) => {
                    // SAFETY: accept4 returned a new descriptor that nothing else owns.
                    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                    self.next_id += 1;
                    self.clients.push(Client {
                        id: self.next_id,
                        fd,
                        target: None,
                    });
                }
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "attach accept failed");
                    return;
                }
            }
        }
    }
}

/// A non-blocking SOCK_SEQPACKET listener at `path` (a stale file replaced), mode 0600: only
/// root may connect (the attach and control sockets).
pub(super) fn listen_on(path: &Path) -> nix::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // Only root (the CLI runs as root) may attach: the streams carry what users type.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    listen(&fd, Backlog::new(16)?)?;
    Ok(fd)
}

/// What one read of a client came to.
enum Received {
    Message(Message),
    /// Nothing more for now.
    Drained,
    /// The client went away (or sent something we cannot take).
    Gone,
}

fn receive(fd: &OwnedFd) -> Received {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return Received::Gone,
            Ok(n) => {
                return match Message::decode(&buf[..n]) {
                    Some(m) => Received::Message(m),
                    None => Received::Gone,
                }
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Received::Drained,
            Err(_) => return Received::Gone,
        }
    }
}

fn reply(fd: &OwnedFd, m: Message) {
    if let Err(e) = send(fd.as_raw_fd(), &m.encode(), MsgFlags::MSG_NOSIGNAL) {
        tracing::debug!(error = %e, "attach reply failed");
    }
}

impl Supervisor {
    /// Runs whose stdin has bytes waiting for the container.
    pub(super) fn input_blocked(&self, run: usize) -> bool {
        self.runs[run]
            .life
            .instance()
            .is_some_and(|i| !i.input_pending.is_empty())
    }

    /// Handles what the poll found ready on the attach side.
    pub(super) fn on_attach_ready(&mut self, ready: AttachReady) {
        for run in ready.inputs {
            self.flush_input(run);
        }
        if ready.listener {
            self.attach.accept_all();
        }
        for id in ready.clients {
            self.read_client(id);
        }
    }

    fn read_client(&mut self, id: u64) {
        loop {
            let Some(ci) = self.attach.clients.iter().position(|c| c.id == id) else {
                return;
            };
            let target = self.attach.clients[ci].target;
            if target.is_some_and(|t| t.stdin && self.input_blocked(t.run)) {
                return;
            }
            match receive(&self.attach.clients[ci].fd) {
                Received::Drained => return,
                Received::Gone => {
                    self.attach.clients.remove(ci);
                    if let Some(t) = target.filter(|t| t.stdin) {
                        self.stdin_session_ended(t.run);
                    }
                    return;
                }
                Received::Message(m) => match target {
                    None => self.on_request(ci, &m),
                    Some(t) => self.on_client_message(ci, t, m),
                },
            }
        }
    }

    /// The client's first message: which container, which streams.
    fn on_request(&mut self, ci: usize, m: &Message) {
        let Message::Request(request) = m else {
            self.attach.clients.remove(ci);
            return;
        };
        let run = self
            .runs
            .iter()
            .position(|r| r.spec.name == request.container);
        let Some(run) = run.filter(|&r| self.runs[r].life.instance().is_some()) else {
            let fd = self.attach.clients.remove(ci).fd;
            reply(
                &fd,
                Message::Refused(format!("container not found (\"{}\")", request.container)),
            );
            return;
        };
        let client = &mut self.attach.clients[ci];
        client.target = Some(Target {
            run,
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
        });
        reply(&client.fd, Message::Ready);
        tracing::debug!(container = %request.container, stdin = request.stdin, "attached");
    }

    fn on_client_message(&mut self, ci: usize, t: Target, m: Message) {
        match m {
            Message::Stdin(data) if t.stdin => {
                if let Some(inst) = self.runs[t.run].life.instance_mut() {
                    if inst.input.is_some() {
                        inst.input_pending.extend_from_slice(&data);
                    }
                }
                self.flush_input(t.run);
            }
            Message::StdinClosed if t.stdin => {
                if let Some(c) = self.attach.clients.get_mut(ci) {
                    if let Some(target) = &mut c.target {
                        target.stdin = false;
                    }
                }
                self.stdin_session_ended(t.run);
            }
            Message::Resize { cols, rows } => {
                if let Some(master) = self.runs[t.run]
                    .life
                    .instance()
                    .and_then(|i| i.terminal.as_ref())
                {
                    set_window_size(master, cols, rows);
                }
            }
            _ => {}
        }
    }

    /// Writes what it can of the pending stdin; a container that closed its stdin (EPIPE)
    /// takes no more.
    pub(super) fn flush_input(&mut self, run: usize) {
        let Some(inst) = self.runs[run].life.instance_mut() else {
            return;
        };
        while !inst.input_pending.is_empty() {
            let Some(fd) = &inst.input else {
                inst.input_pending.clear();
                return;
            };
            match nix::unistd::write(fd, &inst.input_pending) {
                Ok(n) => {
                    inst.input_pending.drain(..n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "the container's stdin is closed");
                    inst.input = None;
                    inst.input_pending.clear();
                    let attempt = inst.attempt;
                    let name = self.runs[run].spec.name.clone();
                    self.release_kept(&name, attempt, Some(crate::pod::keeper::Role::Stdin));
                    return;
                }
            }
        }
    }

    /// A session that attached stdin ended: with `stdinOnce` the container's stdin closes
    /// (EOF), once what was typed has been written.
    fn stdin_session_ended(&mut self, run: usize) {
        let r = &mut self.runs[run];
        if r.spec.stdin_once != Some(true) {
            return;
        }
        let Some(inst) = r.life.instance_mut() else {
            return;
        };
        if inst.terminal.is_some() {
            return;
        }
        if !inst.input_pending.is_empty() {
            // Best effort: what the container has not taken by now is lost with the close.
            if let Some(fd) = &inst.input {
                let _ = nix::unistd::write(fd, &inst.input_pending);
            }
            inst.input_pending.clear();
        }
        if inst.input.take().is_some() {
            tracing::debug!(container = %r.spec.name, "stdinOnce: stdin closed");
            // The keeper's copy too, or the container would never see the end of its input.
            let (name, attempt) = (r.spec.name.clone(), inst.attempt);
            self.release_kept(&name, attempt, Some(crate::pod::keeper::Role::Stdin));
        }
    }

    /// The instance of run `run` ended: its attached clients are let go.
    pub(super) fn end_attach(&mut self, run: usize) {
        self.attach.end_run(run);
    }
}

/// TIOCSWINSZ on the terminal's master: the kernel sends SIGWINCH to its foreground group.
fn set_window_size(master: &OwnedFd, cols: u16, rows: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize through the pointer, which lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        tracing::debug!(error = %Errno::last(), "window size not set");
    }
}
