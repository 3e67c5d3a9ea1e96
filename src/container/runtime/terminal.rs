//! Terminals of the container's own: a `process.terminal` container's console
//! ([`take_console`], made by its init) and `peapod exec -it`'s, relayed to the caller's.
//!
//! As runc and crun make a container's console: the exec'd child, once inside the container's
//! mount namespace, opens `/dev/ptmx` there (the container's own devpts instance), so the
//! terminal belongs to the container and not to the host; it takes the peer as its controlling
//! terminal and stdio and sends the master back over a socket (SCM_RIGHTS). The caller puts its
//! own terminal in raw mode (restored on every way out: the guard's Drop), copies bytes both
//! ways, and passes window size changes (SIGWINCH) on to the master, until the terminal hangs
//! up when the command and whatever it started have closed it.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::error::RuntimeError;

const PTMX: &str = "/dev/ptmx";
const CONSOLE: &str = "/dev/console";
const BUF: usize = 16 * 1024;

/// The socket pair the child sends the terminal's master on (both ends close on exec).
pub(super) fn socket_pair() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| RuntimeError::sys("socketpair", e))
}

/// In the forked child, inside the container's mount namespace: a new terminal from the
/// container's devpts, its master sent on `socket`, its peer made this process's controlling
/// terminal (in a session of its own) and stdin, stdout and stderr, owned by the user the
/// command runs as.
pub(super) fn take_new_terminal(socket: OwnedFd, process: &Process) -> Result<(), String> {
    let sys = |what: &str, e: nix::errno::Errno| format!("{what}: {}", super::errno_text(e as i32));
    let master = open(
        PTMX,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open /dev/ptmx", e))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int through the pointer, which lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(sys("unlock the terminal", nix::errno::Errno::last()));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor or -1.
    let peer = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if peer < 0 {
        return Err(sys("open the terminal's peer", nix::errno::Errno::last()));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    let peer = unsafe { OwnedFd::from_raw_fd(peer) };
    let user = process.user();
    nix::unistd::fchown(&peer, Some(nix::unistd::Uid::from_raw(user.uid())), None)
        .map_err(|e| sys("chown the terminal", e))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"t")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| sys("send the terminal", e))?;
    drop(master);
    drop(socket);
    nix::unistd::setsid().map_err(|e| sys("setsid", e))?;
    // SAFETY: TIOCSCTTY takes an int by value; we are a session leader without a terminal.
    if unsafe { libc::ioctl(peer.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(sys(
            "take the controlling terminal",
            nix::errno::Errno::last(),
        ));
    }
    for target in 0..3 {
        // SAFETY: dup2 of a descriptor we own onto 0-2; the copies survive the exec.
        if unsafe { libc::dup2(peer.as_raw_fd(), target) } < 0 {
            return Err(sys("dup2 the terminal", nix::errno::Errno::last()));
        }
    }
    Ok(())
}

/// The container's console, in the init after pivot_root: a new terminal of the container's
/// devpts as its controlling terminal and stdio ([`take_new_terminal`]), also bind-mounted on
/// `/dev/console`, as runc makes a container's console for `process.terminal`.
pub(super) fn take_console(socket: OwnedFd, process: &Process) -> Result<(), String> {
    take_new_terminal(socket, process)?;
    let console = std::path::Path::new(CONSOLE);
    if !console.exists() {
        std::fs::File::create(console).map_err(|e| format!("create {CONSOLE}: {e}"))?;
    }
    nix::mount::mount(
        Some("/proc/self/fd/0"),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "bind the terminal on {CONSOLE}: {}",
            super::errno_text(e as i32)
        )
    })
}

/// Receives the master the child sends; None when the child failed before it could.
pub(super) fn receive_master(socket: &OwnedFd) -> Result<Option<OwnedFd>, RuntimeError> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.map_err(|e| RuntimeError::sys("receive the terminal", e))?,
        }
    };
    for cmsg in msg
        .cmsgs()
        .map_err(|e| RuntimeError::sys("receive the terminal", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS installed this descriptor in our table for us.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// The caller's terminal in raw mode while it lives; put back as it was when dropped.
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// None when `fd` is not a terminal.
    pub fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// The caller's window size, from its stdin or stdout terminal.
fn caller_winsize() -> Option<libc::winsize> {
    // SAFETY: winsize is plain data that TIOCGWINSZ fills.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: as above; the pointer lives across the call.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0 {
            return Some(size);
        }
    }
    None
}

/// The caller's window size as (columns, rows), when its stdin or stdout is a terminal.
pub fn window_size() -> Option<(u16, u16)> {
    caller_winsize().map(|s| (s.ws_col, s.ws_row))
}

/// Copies the caller's window size (from its stdin or stdout terminal) to the master.
fn copy_window_size(master: &OwnedFd) {
    if let Some(size) = caller_winsize() {
        // SAFETY: TIOCSWINSZ reads the winsize through the pointer, which lives across the call.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

/// The caller's side of `exec -t`: receives the master, relays until the terminal hangs up,
/// then reaps the command and returns its exit code (`128 + N` for signal N).
pub(super) fn relay(
    child: Pid,
    failure: OwnedFd,
    socket: OwnedFd,
    stdin: bool,
) -> Result<i32, RuntimeError> {
    let master = receive_master(&socket)?;
    drop(socket);
    let Some(master) = master else {
        // The child failed before it had a terminal: its report says why.
        return super::exec::parent(child, failure);
    };
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    let old_mask = winch
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(|e| RuntimeError::sys("sigprocmask", e))?;
    let signals = SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| RuntimeError::sys("signalfd", e))?;
    copy_window_size(&master);
    let stdin_fd = std::io::stdin();
    let result = {
        let _raw = if stdin {
            RawMode::enter(stdin_fd.as_fd())
        } else {
            None
        };
        pump(&master, &signals, stdin)
    };
    let _ = old_mask.thread_set_mask();
    drop(master);
    result?;
    super::exec::parent(child, failure)
}

/// Bytes both ways until the master hangs up (EIO once every holder of the peer is gone).
fn pump(master: &OwnedFd, signals: &SignalFd, stdin: bool) -> Result<(), RuntimeError> {
    let mut stdin_open = stdin;
    let mut buf = vec![0u8; BUF];
    let mut master_file =
        std::fs::File::from(master.try_clone().map_err(|e| RuntimeError::io("dup", e))?);
    let mut out = std::io::stdout().lock();
    loop {
        let stdin_fd = std::io::stdin();
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("poll", e)),
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        let (master_ready, winch_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if winch_ready {
            while let Ok(Some(_)) = signals.read_signal() {}
            copy_window_size(master);
        }
        if master_ready {
            match master_file.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    out.write_all(&buf[..n])
                        .and_then(|()| out.flush())
                        .map_err(|e| RuntimeError::io("stdout", e))?;
                }
            }
        }
        if stdin_ready {
            match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if master_file.write_all(&buf[..n]).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
