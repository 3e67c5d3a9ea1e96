//! What the network kinds share: joining the pod's network namespace, and dialing TCP with a
//! deadline, with errors worded as Go's `net` package words them (the kubelet's probe output is
//! `err.Error()`: `dial tcp 10.88.0.5:8080: connect: connection refused`).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::container::runtime::errno_text;

/// Go's `net.errTimeout` text.
pub const IO_TIMEOUT: &str = "i/o timeout";

/// `net.JoinHostPort`: IPv6 literals in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Moves the calling process into the network namespace at `path` (`/proc/<pid>/ns/net`).
/// Only for a probe child: the whole process changes namespace.
pub fn join_netns(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns {}: {}", path.display(), errno_text(e as i32)))
}

/// A failed dial: `timed_out` tells a deadline from a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialError {
    /// The full Go-style text (`dial tcp 127.0.0.1:1: connect: connection refused`).
    pub message: String,
    pub timed_out: bool,
}

/// Connects to `host:port` before `deadline`, trying each resolved address in turn as Go's
/// dialer does (and failing with the first error). The socket lingers one second on close, as
/// the kubelet's ProbeDialer sets it [pkg/probe/dialer_others.go], so probes leave no
/// TIME-WAIT behind.
pub fn dial(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, DialError> {
    let addrs = resolve(host, port)?;
    let mut first: Option<DialError> = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(first.unwrap_or_else(|| timeout_error(addr)));
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(stream) => {
                set_linger(&stream);
                return Ok(stream);
            }
            Err(e) => {
                let err = connect_error(addr, &e);
                first.get_or_insert(err);
            }
        }
    }
    Err(first.unwrap_or(DialError {
        message: format!("dial tcp: lookup {host}: no such host"),
        timed_out: false,
    }))
}

fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, DialError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|_| DialError {
            message: format!("dial tcp: lookup {host}: no such host"),
            timed_out: false,
        })
}

fn timeout_error(addr: SocketAddr) -> DialError {
    DialError {
        message: format!("dial tcp {addr}: {IO_TIMEOUT}"),
        timed_out: true,
    }
}

fn connect_error(addr: SocketAddr, e: &io::Error) -> DialError {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::TimedOut, _) | (io::ErrorKind::WouldBlock, _) => timeout_error(addr),
        (_, Some(errno)) => DialError {
            message: format!("dial tcp {addr}: connect: {}", errno_text(errno)),
            timed_out: false,
        },
        _ => DialError {
            message: format!("dial tcp {addr}: {e}"),
            timed_out: false,
        },
    }
}

fn set_linger(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 1,
    };
    // SAFETY: setsockopt reads a `linger` we own, of the size given, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "SO_LINGER not set on a probe socket");
    }
}

/// The `tcpSocket` probe [pkg/probe/tcp/tcp.go]: a connection is a success.
pub(super) fn tcp_probe(host: &str, port: u16, timeout: Duration) -> super::ProbeResult {
    match dial(host, port, Instant::now() + timeout) {
        Ok(_) => super::ProbeResult::Success,
        Err(e) => super::ProbeResult::Failure(e.message),
    }
}

/// The time left before `deadline`, at least a millisecond (a zero socket timeout means none).
pub fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_timeout_texts_are_gos() {
        // Nothing listens on port 1 of loopback.
        let err = dial("127.0.0.1", 1, Instant::now() + Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            err.message,
            "dial tcp 127.0.0.1:1: connect: connection refused"
        );
        assert!(!err.timed_out);
        let gone = dial("127.0.0.1", 1, Instant::now()).unwrap_err();
        assert_eq!(gone.message, "dial tcp 127.0.0.1:1: i/o timeout");
        assert!(dial(
            "no-such-host.invalid",
            80,
            Instant::now() + Duration::from_secs(1)
        )
        .unwrap_err()
        .message
        .starts_with("dial tcp: lookup no-such-host.invalid"));
    }

    #[test]
    fn hosts_join_like_go() {
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
