//! The probe runner as the supervisor drives it: one thread, one poll loop, three probes of one
//! container (startup tcpSocket, liveness and readiness httpGet on a named port) on their
//! real periods, children forked (not re-executed) and reaped by `waitpid(-1)`, and the memory
//! the runner and the probes' states add to the process once idle, read from
//! /proc/self/smaps_rollup.
//!
//! `harness = false`: libtest runs each test on a thread of its own, and the runner forks only
//! from a single-threaded process. The HTTP server is served from the same loop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerPort, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use peapod::probe::{
    probe_action, ContainerProbes, ProbeKind, ProbeRunner, Purpose, Report, Request, Transition,
    PROBE_VERB,
};

/// How long the probes run: a few periods of each.
const RUN_FOR: Duration = Duration::from_secs(4);
/// The most the runner and three probe states may add to the idle process's anonymous memory
/// (heap, stacks). The file-backed part is the code the loop ran, shared with every other
/// peapod process and much smaller in a release build: it is printed, not bounded.
const MAX_ADDED_ANON_KIB: u64 = 64;

fn main() {
    if std::env::args().nth(1).as_deref() == Some(PROBE_VERB) {
        // A re-executed child gets no answer from this binary: its probe fails, and so does
        // the test. The children must be forked.
        std::process::exit(3);
    }
    assert_eq!(
        peapod::procfs::thread_count(),
        1,
        "the runner forks only from a single-threaded process"
    );
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    http.set_nonblocking(true).unwrap();
    // Never accepted: the kernel completes the handshake from the backlog.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let container = container(
        http.local_addr().unwrap().port(),
        tcp.local_addr().unwrap().port(),
    );
    // Everything the loop itself uses, once, before the baseline.
    let _ = poll(&mut [], PollTimeout::ZERO);
    let _ = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG));
    let before = Memory::now();

    let mut runner: ProbeRunner<ProbeKind> = ProbeRunner::new();
    let mut probes = ContainerProbes::new(&container);
    let started_at = Instant::now();
    probes.on_container_started(started_at);
    let mut transitions = Vec::new();
    let mut runs = 0;
    while started_at.elapsed() < RUN_FOR || !runner.unreaped().is_empty() {
        let now = Instant::now();
        if started_at.elapsed() < RUN_FOR {
            for kind in probes.due(now) {
                start(&mut runner, &mut probes, &container, kind, now);
                runs += 1;
            }
        }
        wait(&runner, &probes, &http);
        serve(&http);
        for (kind, report) in runner.collect(Instant::now()) {
            let Report::Probe(result) = report else {
                panic!("a hook report for a probe");
            };
            let outcome = probes.get_mut(kind).unwrap().on_result(&result);
            assert_eq!(outcome.event, None, "{kind} probe: {result:?}");
            transitions.extend(outcome.transition);
        }
        reap(&mut runner);
    }
    let after = Memory::now();

    assert_eq!(transitions, vec![Transition::Started, Transition::Ready]);
    assert!(probes.started() && probes.ready());
    assert!(runs >= 6, "{runs} probes in {RUN_FOR:?}");
    assert_eq!(peapod::procfs::thread_count(), 1, "no thread was started");
    println!(
        "probe runner with three probes, {runs} probes run, idle: PSS {} KiB -> {} KiB \
         (anonymous {} -> {}, file {} -> {})",
        before.pss_kib,
        after.pss_kib,
        before.pss_anon_kib,
        after.pss_anon_kib,
        before.pss_file_kib,
        after.pss_file_kib
    );
    let added = after.pss_anon_kib.saturating_sub(before.pss_anon_kib);
    assert!(
        added <= MAX_ADDED_ANON_KIB,
        "the runner and three probes added {added} KiB of anonymous memory"
    );
    drop(tcp);
}

/// `app` with ports `http` and `tcp`; startup on tcp, liveness and readiness on http.
fn container(http: u16, tcp: u16) -> Container {
    let port = |name: &str, number: u16| ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(number),
        ..Default::default()
    };
    let get = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("http".into()),
            path: Some(path.into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    };
    Container {
        name: "app".into(),
        ports: Some(vec![port("http", http), port("tcp", tcp)]),
        startup_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("tcp".into()),
                host: None,
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        liveness_probe: Some(get("/healthz")),
        readiness_probe: Some(get("/ready")),
        ..Default::default()
    }
}

fn start(
    runner: &mut ProbeRunner<ProbeKind>,
    probes: &mut ContainerProbes,
    container: &Container,
    kind: ProbeKind,
    now: Instant,
) {
    let probe = match kind {
        ProbeKind::Liveness => &container.liveness_probe,
        ProbeKind::Readiness => &container.readiness_probe,
        ProbeKind::Startup => &container.startup_probe,
    };
    let action = probe_action(probe.as_ref().unwrap(), container, "127.0.0.1").unwrap();
    let state = probes.get_mut(kind).unwrap();
    let request = Request {
        purpose: Purpose::Probe {
            timeout: state.config().timeout,
        },
        action,
        netns: None,
        exec: None,
    };
    runner.start(kind, request, None).unwrap();
    state.on_probe_started(now);
}

/// One poll over the report pipes and the HTTP listener, until the next deadline or probe.
fn wait(runner: &ProbeRunner<ProbeKind>, probes: &ContainerProbes, http: &TcpListener) {
    let next = [runner.next_deadline(), probes.next_due()]
        .into_iter()
        .flatten()
        .min();
    let timeout = next
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(Duration::from_millis(50))
        .min(Duration::from_millis(50));
    let mut fds: Vec<PollFd> = runner
        .fds()
        .into_iter()
        .chain([http.as_fd()])
        .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
        .collect();
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::ZERO);
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => panic!("poll: {e}"),
    }
}

/// Answers every waiting connection 200.
fn serve(http: &TcpListener) {
    while let Ok((conn, _)) = http.accept() {
        answer(conn);
    }
}

fn answer(mut conn: TcpStream) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        line.clear();
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

/// The supervisor's `waitpid(-1)` loop: every child that ended must be the runner's.
fn reap(runner: &mut ProbeRunner<ProbeKind>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(status) => {
                let pid = status.pid().unwrap();
                assert!(runner.on_exit(pid), "{pid} is not a probe child");
                assert!(
                    matches!(status, WaitStatus::Exited(_, 0)),
                    "a probe child ended with {status:?}"
                );
            }
            Err(Errno::EINTR) => {}
            Err(e) => panic!("waitpid: {e}"),
        }
    }
}

/// The process's proportional set size, in all, anonymous and file-backed, in KiB.
struct Memory {
    pss_kib: u64,
    pss_anon_kib: u64,
    pss_file_kib: u64,
}

impl Memory {
    fn now() -> Self {
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let field = |name: &str| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in smaps_rollup"))
        };
        Memory {
            pss_kib: field("Pss:"),
            pss_anon_kib: field("Pss_Anon:"),
            pss_file_kib: field("Pss_File:"),
        }
    }
}
