//! `peapod attach`: kubectl attach against the pod's supervisor. It connects to the pod's
//! attach socket ([`crate::pod::attach`]), prints the container's output, sends its stdin with
//! `-i`, and with `-t` on a container that has a terminal puts the caller's terminal in raw
//! mode and passes window size changes on. Ending the session (EOF from the supervisor when
//! the container ends, ctrl-p ctrl-q, or the client killed) never stops the container.

use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::Container;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::UnixAddr;
use nix::sys::socket::{connect, recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::container::runtime::{window_size, RawMode};
use crate::pod::attach::{Message, Request, MAX_MESSAGE, SOCKET_FILE};
use crate::pod::record::PodRecord;
use crate::store::Paths;

/// kubectl's notices before the session [kubectl/pkg/cmd/attach AttachOptions.Run].
const RECORDED: &str = "All commands and output from this session will be recorded in container logs, including credentials and sensitive information passed through the command prompt.";
const PRESS_ENTER: &str = "If you don't see a command prompt, try pressing enter.";
/// The command kubectl names in its reattach message (`cmd.CommandPath()`).
const COMMAND_NAME: &str = "peapod attach";
/// kubectl's default detach sequence, ctrl-p then ctrl-q [attach.go defaultDetachSequence].
const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub stream: super::exec::StreamArgs,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// How the session runs once kubectl's flags met the container's spec and the caller's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Session {
    pub stdin: bool,
    /// Raw mode: stdin is a terminal and the container has one.
    pub raw: bool,
}

/// What kubectl prints and decides from `-i`/`-t`, the container's `tty`, and whether the
/// caller's stdin is a terminal [attach.go Run, exec.go StreamOptions.SetupTTY]. Returns the
/// session and the warnings to print.
pub(super) fn session(
    args_stdin: bool,
    args_tty: bool,
    quiet: bool,
    container: &Container,
    stdin_is_terminal: bool,
) -> (Session, Vec<String>) {
    let mut warnings = Vec::new();
    let has_tty = container.tty == Some(true);
    let mut tty = args_tty;
    if tty && !has_tty {
        tty = false;
        if !quiet {
            warnings.push(format!(
                "error: Unable to use a TTY - container {} did not allocate one",
                container.name
            ));
        }
    } else if !tty && has_tty {
        // The container has a terminal: its output is raw terminal output either way.
        tty = true;
    }
    let raw = if !args_stdin || !tty {
        false
    } else if !stdin_is_terminal {
        if !quiet {
            warnings.push(super::exec::NOT_A_TERMINAL.to_string());
        }
        false
    } else {
        true
    };
    (
        Session {
            stdin: args_stdin,
            raw,
        },
        warnings,
    )
}

/// Finds ctrl-p ctrl-q in what the user typed, across reads: the bytes to forward, and whether
/// the sequence was completed (the session then ends; the keys are not sent).
#[derive(Debug, Default)]
pub(super) struct DetachKeys {
    matched: usize,
}

impl DetachKeys {
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == DETACH_KEYS[self.matched] {
                self.matched += 1;
                if self.matched == DETACH_KEYS.len() {
                    return (out, true);
                }
                continue;
            }
            // A partial match that did not go on is ordinary input after all.
            out.extend_from_slice(&DETACH_KEYS[..self.matched]);
            self.matched = 0;
            if b == DETACH_KEYS[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

fn container_spec<'a>(rec: &'a PodRecord, name: &str) -> Option<&'a Container> {
    let spec = rec.pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

pub fn run(paths: &Paths, attach: &AttachArgs) -> Result<i32> {
    let args = &attach.stream;
    let quiet = attach.quiet;
    let rec = super::exec::running_pod(paths, args, "attach")?;
    let name = super::exec::pick(&rec, args.container.as_deref(), quiet)
        .map_err(|e| anyhow!("cannot attach to the container: {e}"))?;
    let container = container_spec(&rec, &name)
        .ok_or_else(|| anyhow!("cannot attach to the container: container {name} not found"))?;
    let (session, warnings) = session(
        args.stdin,
        args.tty,
        quiet,
        container,
        std::io::stdin().is_terminal(),
    );
    for w in warnings {
        eprintln!("{w}");
    }
    let socket = connect_to(paths, &rec, &name, session)?;
    if !quiet {
        eprintln!("{RECORDED}");
        eprintln!("{PRESS_ENTER}");
    }
    relay(&socket, session)?;
    if !quiet && session.stdin && session.raw {
        println!(
            "Session ended, resume using '{COMMAND_NAME} {} -c {name} -n {} -i -t' command",
            args.pod, args.namespace
        );
    }
    Ok(0)
}

/// Connects to the pod's attach socket and makes the request; the supervisor's refusal is
/// the error, worded as kubectl shows the kubelet's.
fn connect_to(paths: &Paths, rec: &PodRecord, name: &str, session: Session) -> Result<OwnedFd> {
    let uid = rec.pod.metadata.uid.as_deref().unwrap_or_default();
    let path = paths.pod_run_dir(uid).join(SOCKET_FILE);
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("attach socket")?;
    let addr = UnixAddr::new(&path).with_context(|| format!("{}", path.display()))?;
    connect(fd.as_raw_fd(), &addr).map_err(|e| {
        anyhow!(
            "unable to upgrade connection: pod {} has no attach socket ({}: {e})",
            rec.name(),
            path.display()
        )
    })?;
    let request = Message::Request(Request {
        container: name.to_string(),
        stdin: session.stdin,
        stdout: true,
        // kubectl asks for no stderr in raw mode: a terminal has one stream.
        stderr: !session.raw,
    });
    send(fd.as_raw_fd(), &request.encode(), MsgFlags::MSG_NOSIGNAL).context("attach request")?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).context("attach reply")?;
    match Message::decode(&buf[..n]) {
        Some(Message::Ready) => Ok(fd),
        Some(Message::Refused(why)) => bail!("unable to upgrade connection: {why}"),
        _ => bail!(
            "unable to upgrade connection: the supervisor of pod {} hung up",
            rec.name()
        ),
    }
}

/// Copies the container's output to ours and our stdin to it until the supervisor closes the
/// session (the container ended) or the user detaches.
fn relay(socket: &OwnedFd, session: Session) -> Result<()> {
    let stdin = std::io::stdin();
    let _raw = if session.raw {
        RawMode::enter(stdin.as_fd())
    } else {
        None
    };
    let signals = if session.raw {
        let mut winch = SigSet::empty();
        winch.add(Signal::SIGWINCH);
        winch.thread_block().context("sigprocmask")?;
        let fd = SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("signalfd")?;
        if let Some((cols, rows)) = window_size() {
            // kubectl's redraw: one size larger, then the real one, so that a program that
            // is attached again repaints its screen.
            send_message(
                socket,
                &Message::Resize {
                    cols: cols + 1,
                    rows: rows + 1,
                },
            )?;
            send_message(socket, &Message::Resize { cols, rows })?;
        }
        Some(fd)
    } else {
        None
    };
    let mut stdin_open = session.stdin;
    let mut detach = DetachKeys::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        let mut fds = vec![PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        if let Some(s) = &signals {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let stdin_at = fds.len();
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("poll: {e}"),
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        let (socket_ready, winch_ready) = (ready(0), signals.is_some() && ready(1));
        let stdin_ready = stdin_open && ready(stdin_at);
        drop(fds);
        if winch_ready {
            if let Some(s) = &signals {
                while let Ok(Some(_)) = s.read_signal() {}
            }
            if let Some((cols, rows)) = window_size() {
                send_message(socket, &Message::Resize { cols, rows })?;
            }
        }
        if socket_ready {
            match recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => match Message::decode(&buf[..n]) {
                    Some(Message::Stdout(d)) => {
                        out.write_all(&d).and_then(|()| out.flush())?;
                    }
                    Some(Message::Stderr(d)) => {
                        err.write_all(&d).and_then(|()| err.flush())?;
                    }
                    _ => {}
                },
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin.as_fd(), &mut buf[..MAX_MESSAGE - 1]) {
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    send_message(socket, &Message::StdinClosed)?;
                }
                Ok(n) => {
                    let (data, detached) = if session.raw {
                        detach.feed(&buf[..n])
                    } else {
                        (buf[..n].to_vec(), false)
                    };
                    if !data.is_empty() {
                        send_message(socket, &Message::Stdin(data))?;
                    }
                    if detached {
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn send_message(socket: &OwnedFd, m: &Message) -> Result<()> {
    match send(socket.as_raw_fd(), &m.encode(), MsgFlags::MSG_NOSIGNAL) {
        Ok(_) | Err(nix::errno::Errno::EPIPE) => Ok(()),
        Err(e) => Err(anyhow!("attach: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(tty: bool) -> Container {
        Container {
            name: "shell".into(),
            tty: Some(tty),
            ..Default::default()
        }
    }

    #[test]
    fn a_terminal_is_used_only_when_the_container_has_one_and_stdin_is_a_terminal() {
        let (s, w) = session(true, true, false, &container(true), true);
        assert_eq!(
            s,
            Session {
                stdin: true,
                raw: true
            }
        );
        assert!(w.is_empty());
        let (s, w) = session(true, true, false, &container(false), true);
        assert_eq!(
            s,
            Session {
                stdin: true,
                raw: false
            }
        );
        assert_eq!(
            w,
            ["error: Unable to use a TTY - container shell did not allocate one"]
        );
        let (s, w) = session(true, true, false, &container(true), false);
        assert!(!s.raw);
        assert_eq!(
            w,
            ["Unable to use a TTY - input is not a terminal or the right kind of file"]
        );
        // -i alone on a tty container: kubectl forces the TTY, so raw on a terminal.
        let (s, _) = session(true, false, false, &container(true), true);
        assert!(s.raw);
        // No stdin: never raw.
        let (s, _) = session(false, true, false, &container(true), true);
        assert!(!s.raw);
        // -q silences the warnings.
        let (_, w) = session(true, true, true, &container(false), false);
        assert!(w.is_empty());
    }

    #[test]
    fn ctrl_p_ctrl_q_detaches_across_reads_and_is_not_sent() {
        let mut d = DetachKeys::default();
        assert_eq!(d.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(d.feed(b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(d.feed(b"\x11rest"), (Vec::new(), true));
        let mut d = DetachKeys::default();
        // ctrl-p then something else: both go through.
        assert_eq!(d.feed(b"\x10x"), (b"\x10x".to_vec(), false));
        assert_eq!(d.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
