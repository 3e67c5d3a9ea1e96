//! The real [`Backend`]: exec through a re-executed `peapod __exec` (this process is threaded
//! and must not fork without exec), attach through the pod supervisor's attach socket, and
//! port-forward by dialing localhost from a thread that entered the pod's network namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::socket::{
    connect, recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exec_child::{EXEC_VERB, REPORT_FD};
use super::session::{Backend, BoxFuture, Io, Output, TermSize};
use super::ContainerTarget;
use crate::pod::attach::{Message, Request, MAX_MESSAGE, SOCKET_FILE};
use crate::pod::record::PodRecord;
use crate::store::Paths;

/// How long a connection inside the pod may take (as `peapod port-forward`).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
const BUF: usize = 32 * 1024;

/// Execs, attaches and dials for pods in `paths`.
#[derive(Debug, Clone)]
pub struct PodBackend {
    paths: Paths,
    /// The peapod binary `__exec` runs from (this one in the CRI server).
    exe: std::path::PathBuf,
}

impl PodBackend {
    pub fn new(paths: Paths, exe: std::path::PathBuf) -> PodBackend {
        PodBackend { paths, exe }
    }
}

impl Backend for PodBackend {
    fn exec(
        &self,
        target: ContainerTarget,
        cmd: Vec<String>,
        io: Io,
    ) -> BoxFuture<Result<i32, String>> {
        Box::pin(exec(self.exe.clone(), target, cmd, io))
    }

    fn attach(&self, target: ContainerTarget, io: Io) -> BoxFuture<Result<(), String>> {
        let path = self.paths.pod_run_dir(&target.pod_uid).join(SOCKET_FILE);
        Box::pin(attach(path, target.container_name, io))
    }

    fn dial(&self, pod_uid: String, port: u16) -> BoxFuture<Result<tokio::net::TcpStream, String>> {
        let paths = self.paths.clone();
        Box::pin(async move {
            let stream = tokio::task::spawn_blocking(move || dial_in_pod(&paths, &pod_uid, port))
                .await
                .map_err(|e| format!("dialer: {e}"))??;
            stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream))
                .map_err(|e| format!("port {port}: {e}"))
        })
    }
}

/// Connects to `port` on localhost in the network namespace of pod `uid`'s sandbox, from a
/// thread of its own that enters it (setns(2) with CLONE_NEWNET applies to the calling thread
/// only) and ends with the call, so no pooled thread is left in the pod.
pub fn dial_in_pod(paths: &Paths, uid: &str, port: u16) -> Result<StdTcpStream, String> {
    let rec = PodRecord::load(paths, uid).map_err(|e| format!("pod {uid}: {e}"))?;
    let sandbox = rec
        .state
        .as_ref()
        .and_then(|s| s.sandbox.process.clone())
        .filter(|p| p.is_alive())
        .ok_or_else(|| format!("pod {uid} has no running sandbox"))?;
    let netns_path = format!("/proc/{}/ns/net", sandbox.pid);
    let netns = std::fs::File::open(&netns_path).map_err(|e| format!("{netns_path}: {e}"))?;
    std::thread::Builder::new()
        .name("pod-netns-dial".into())
        .spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering the network namespace {netns_path}: {e}"))?;
            dial_localhost(port)
        })
        .map_err(|e| format!("starting the dialer thread: {e}"))?
        .join()
        .map_err(|_| "the dialer thread panicked".to_string())?
}

/// 127.0.0.1 first and ::1 when that fails, as containerd dials `localhost` in the pod.
pub fn dial_localhost(port: u16) -> Result<StdTcpStream, String> {
    let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let e4 = match StdTcpStream::connect_timeout(&v4, DIAL_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
    match StdTcpStream::connect_timeout(&v6, DIAL_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e6) => Err(format!(
            "failed to connect to localhost:{port} inside the pod's network namespace, IPv4: dial tcp4 {v4}: {e4} IPv6: dial tcp6 {v6}: {e6}"
        )),
    }
}

/// The `peapod __exec` command line for `target`.
fn exec_command(
    exe: &std::path::Path,
    target: &ContainerTarget,
    cmd: &[String],
    stdin: bool,
    tty: bool,
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(exe);
    c.arg(EXEC_VERB)
        .arg(&target.pod_uid)
        .arg(&target.container_name);
    if stdin {
        c.arg("--stdin");
    }
    if tty {
        c.arg("--tty");
    }
    c.arg("--").args(cmd);
    c
}

/// A started `__exec`: the command's pid once it reports it; dropped early (a timeout, a
/// client gone), it kills the command, then itself.
struct Running {
    child: tokio::process::Child,
    command_pid: Option<i32>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only while `__exec` lives is the pid surely still the command's (it is unreaped).
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(pid) = self.command_pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = self.child.start_kill();
        }
    }
}

/// What `__exec` says on its report descriptor: the command's pid once it runs, or why it
/// could not start.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    Started(i32),
    Failed(String),
    /// Nothing: a terminal session (the command's pid is not reported) or a crash.
    Silent,
}

fn parse_report(text: &str) -> Report {
    if let Some(pid) = text
        .strip_prefix("pid ")
        .and_then(|p| p.trim().parse().ok())
    {
        return Report::Started(pid);
    }
    match text.strip_prefix("error ") {
        Some(why) => Report::Failed(why.trim_end().to_string()),
        None => Report::Silent,
    }
}

/// A pipe whose write end `__exec` gets as [`REPORT_FD`].
fn report_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

async fn exec(
    exe: std::path::PathBuf,
    target: ContainerTarget,
    cmd: Vec<String>,
    io: Io,
) -> Result<i32, String> {
    let (report_rd, report_wr) = report_pipe()?;
    let mut command = exec_command(&exe, &target, &cmd, io.stdin.is_some(), io.tty);
    let report_raw = report_wr.as_raw_fd();
    let master = if io.tty {
        let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
        // Neither end for `__exec`'s children (the copies on its stdio are made by dup2).
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|e| format!("pty: {e}"))?;
        }
        let slave = std::fs::File::from(pty.slave);
        let dup = |f: &std::fs::File| f.try_clone().map(Stdio::from);
        command
            .stdin(dup(&slave).map_err(|e| e.to_string())?)
            .stdout(dup(&slave).map_err(|e| e.to_string())?)
            .stderr(Stdio::from(slave));
        Some(pty.master)
    } else {
        command
            .stdin(if io.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        None
    };
    let tty = io.tty;
    // SAFETY: between fork and exec only async-signal-safe calls: dup2, fcntl, setsid, ioctl.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it then.
            let kept = if report_raw == REPORT_FD {
                libc::fcntl(REPORT_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(report_raw, REPORT_FD)
            };
            if kept < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tty {
                // A session of its own with the terminal as its controlling one, so a resize
                // (TIOCSWINSZ on the master) reaches it as SIGWINCH.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("starting peapod {EXEC_VERB}: {e}"))?;
    // The command holds the terminal's peer while it lives: the master would never hang up.
    drop(command);
    drop(report_wr);
    let mut running = Running {
        child,
        command_pid: None,
    };
    let relays = match master {
        Some(master) => relay_terminal(master, io),
        None => relay_pipes(&mut running.child, io),
    };
    let mut report = String::new();
    let mut report_file = tokio::fs::File::from_std(std::fs::File::from(report_rd));
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        // The first line, without waiting for the end of the pipe (that is the command's end).
        while report_file.read(&mut byte).await.unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    })
    .await
    .unwrap_or_default();
    report.push_str(&started);
    match parse_report(&report) {
        Report::Started(pid) => running.command_pid = Some(pid),
        Report::Failed(why) => {
            let _ = running.child.wait().await;
            return Err(why);
        }
        Report::Silent => {}
    }
    // The rest of the report: an error after the start (a terminal session's).
    let mut rest = String::new();
    let _ = report_file.read_to_string(&mut rest).await;
    let status = running
        .child
        .wait()
        .await
        .map_err(|e| format!("waiting for peapod {EXEC_VERB}: {e}"))?;
    for r in relays {
        let _ = r.await;
    }
    if let Report::Failed(why) = parse_report(rest.trim_start()) {
        return Err(why);
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1))
}

/// Copies stdin to the child and its stdout and stderr to the client; the output tasks end at
/// the pipes' end, which the caller awaits after the exit.
fn relay_pipes(child: &mut tokio::process::Child, io: Io) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let (Some(mut stdin), Some(mut rx)) = (child.stdin.take(), io.stdin) {
        // Not awaited: stdin stays open for as long as the client sends.
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
    }
    async fn copy(mut from: impl tokio::io::AsyncRead + Unpin, to: Option<Output>) {
        let mut buf = vec![0u8; BUF];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(to) = &to {
                        // A client that left: keep draining so the command is not blocked.
                        let _ = to.write(buf[..n].to_vec()).await;
                    }
                }
            }
        }
    }
    if let Some(out) = child.stdout.take() {
        tasks.push(tokio::spawn(copy(out, io.stdout)));
    }
    if let Some(err) = child.stderr.take() {
        tasks.push(tokio::spawn(copy(err, io.stderr)));
    }
    tasks
}

/// Relays the terminal's master: output to stdout (a terminal has one stream), stdin and
/// resizes in. The reader ends when the terminal hangs up (every holder of the peer gone).
fn relay_terminal(master: OwnedFd, io: Io) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let Ok(reader) = master.try_clone() else {
        return tasks;
    };
    let out = io.stdout;
    tasks.push(tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::from(reader);
        let mut buf = vec![0u8; BUF];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(out) = &out {
                        let data = buf[..n].to_vec();
                        let handle = tokio::runtime::Handle::current();
                        let _ = handle.block_on(out.write(data));
                    }
                }
            }
        }
    }));
    if let Some(mut resize) = io.resize {
        let Ok(fd) = master.try_clone() else {
            return tasks;
        };
        tokio::spawn(async move {
            while let Some(size) = resize.recv().await {
                set_window_size(&fd, size);
            }
        });
    }
    if let Some(mut stdin) = io.stdin {
        let writer = master;
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(data) = stdin.recv().await {
                if tx.send(data).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            let mut file = std::fs::File::from(writer);
            for data in rx {
                if file.write_all(&data).is_err() {
                    break;
                }
            }
        });
    }
    tasks
}

fn set_window_size(master: &OwnedFd, size: TermSize) {
    let ws = libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize through the pointer, which lives across the call.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Attaches to `container` through the supervisor's socket at `path` (pod::attach's
/// messages) and relays until the supervisor closes the session.
async fn attach(path: std::path::PathBuf, container: String, io: Io) -> Result<(), String> {
    let request = Request {
        container: container.clone(),
        stdin: io.stdin.is_some(),
        stdout: io.stdout.is_some(),
        stderr: io.stderr.is_some(),
    };
    let socket = tokio::task::spawn_blocking(move || connect_attach(&path, &request))
        .await
        .map_err(|e| format!("attach: {e}"))??;
    let writer = socket.try_clone().map_err(|e| format!("dup: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<Message>();
    let Io {
        stdin,
        stdout,
        stderr,
        resize,
        ..
    } = io;
    let feeder = tokio::spawn(async move {
        let mut stdin = stdin;
        let mut resize = resize;
        loop {
            let message = tokio::select! {
                data = recv_opt(&mut stdin) => match data {
                    Some(d) => Message::Stdin(d),
                    None => { stdin = None; Message::StdinClosed }
                },
                size = recv_opt(&mut resize) => match size {
                    Some(s) => Message::Resize { cols: s.width, rows: s.height },
                    None => { resize = None; continue }
                },
            };
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for m in rx {
            if send(writer.as_raw_fd(), &m.encode(), MsgFlags::MSG_NOSIGNAL).is_err() {
                return;
            }
        }
    });
    let reader = tokio::task::spawn_blocking(move || {
        let handle = tokio::runtime::Handle::current();
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let n = match recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let (out, data) = match Message::decode(&buf[..n]) {
                Some(Message::Stdout(d)) => (&stdout, d),
                Some(Message::Stderr(d)) => (&stderr, d),
                _ => continue,
            };
            if let Some(out) = out {
                if !handle.block_on(out.write(data)) {
                    return;
                }
            }
        }
    });
    let _ = reader.await;
    feeder.abort();
    Ok(())
}

/// The next item of an optional receiver; pending forever without one.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn connect_attach(path: &std::path::Path, request: &Request) -> Result<OwnedFd, String> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("attach socket: {e}"))?;
    let addr = UnixAddr::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
    connect(fd.as_raw_fd(), &addr)
        .map_err(|e| format!("the pod has no attach socket ({}: {e})", path.display()))?;
    let hello = Message::Request(request.clone()).encode();
    send(fd.as_raw_fd(), &hello, MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| format!("attach request: {e}"))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| format!("attach reply: {e}"))?;
    match Message::decode(&buf[..n]) {
        Some(Message::Ready) => Ok(fd),
        Some(Message::Refused(why)) => Err(why),
        _ => Err("the pod's supervisor hung up".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_the_exec_child() {
        assert_eq!(parse_report("pid 42"), Report::Started(42));
        assert_eq!(
            parse_report("error exec: \"x\": executable file not found in $PATH\n"),
            Report::Failed("exec: \"x\": executable file not found in $PATH".into())
        );
        assert_eq!(parse_report(""), Report::Silent);
    }

    #[test]
    fn nothing_listens_on_a_free_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(dial_localhost(port).is_ok());
        drop(l);
        let e = dial_localhost(port).unwrap_err();
        assert!(e.contains(&format!("localhost:{port}")), "{e}");
    }
}
