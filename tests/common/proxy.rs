//! A loopback TCP proxy that plays a registry dying mid-pull, deterministically.
//!
//! [`CutProxy`] forwards connections to an upstream port. With a byte budget it counts what it
//! sends back to clients over all connections; when the budget runs out it sends the part that
//! fits, shuts every open connection down and stops listening, so that retries meet "connection
//! refused" exactly as if the registry had been killed. Killing the real registry after the
//! first progress line would race with a loopback transfer that finishes in milliseconds.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

struct Shared {
    upstream: u16,
    /// Bytes still allowed towards clients; `u64::MAX` for no limit.
    budget: AtomicU64,
    /// At the budget, hold every connection open without forwarding instead of cutting it.
    stall: bool,
    cut: AtomicBool,
    stopping: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    port: u16,
}

/// A forwarding proxy on 127.0.0.1; stopped on drop.
pub struct CutProxy {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl CutProxy {
    /// Forwards 127.0.0.1:`port` (0: a free port) to 127.0.0.1:`upstream`; after `cut_after`
    /// bytes towards clients (None: never) it cuts every connection and stops listening.
    pub fn start(upstream: u16, port: u16, cut_after: Option<u64>) -> CutProxy {
        Self::launch(upstream, port, cut_after, false)
    }

    /// Like [`CutProxy::start`] with a budget, but when it runs out the connections stay open
    /// and silent (a hung registry): the client waits mid-transfer until it is killed.
    pub fn stalling(upstream: u16, stall_after: u64) -> CutProxy {
        Self::launch(upstream, 0, Some(stall_after), true)
    }

    fn launch(upstream: u16, port: u16, cut_after: Option<u64>, stall: bool) -> CutProxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let shared = Arc::new(Shared {
            upstream,
            budget: AtomicU64::new(cut_after.unwrap_or(u64::MAX)),
            stall,
            cut: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            port,
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, s));
        CutProxy {
            shared,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// True once the byte budget ran out and the proxy cut (or stalled) the connections.
    pub fn has_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection; the port is free again afterwards.
    pub fn stop(&mut self) {
        stop_listening(&self.shared);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop_listening(shared: &Shared) {
    if !shared.stopping.swap(true, Ordering::SeqCst) {
        // Wakes the accept loop so that it sees `stopping` and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", shared.port));
    }
    if let Ok(conns) = shared.conns.lock() {
        for c in conns.iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let Ok(upstream) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
            continue;
        };
        let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
            continue;
        };
        if let Ok(mut conns) = shared.conns.lock() {
            conns.extend([c2, u2]);
        }
        let (Ok(c_read), Ok(u_write)) = (client.try_clone(), upstream.try_clone()) else {
            continue;
        };
        std::thread::spawn(move || pump(c_read, u_write, None));
        let s = shared.clone();
        std::thread::spawn(move || pump(upstream, client, Some(s)));
    }
}

/// Copies `from` to `to` until EOF; towards a client (`budget` set) it stops at the budget.
fn pump(mut from: TcpStream, mut to: TcpStream, budget: Option<Arc<Shared>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut allowed = n;
        if let Some(s) = &budget {
            let before = s
                .budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                    Some(b.saturating_sub(n as u64))
                })
                .unwrap_or(0);
            allowed = n.min(before.min(usize::MAX as u64) as usize);
        }
        if to.write_all(&buf[..allowed]).is_err() {
            break;
        }
        if allowed < n {
            if let Some(s) = budget.as_ref().filter(|s| s.stall) {
                s.cut.store(true, Ordering::SeqCst);
                while !s.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                break;
            }
            if let Some(s) = &budget {
                s.cut.store(true, Ordering::SeqCst);
                stop_listening(s);
            }
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
