//! The probe runner end to end on the host: `peapod __probe` children (the test is
//! multi-threaded, so the runner re-executes the binary) probing real servers this test starts
//! on loopback ([`servers`]): HTTP (statuses, redirects, bodies, slow answers, the request's
//! bytes), HTTPS with a self-signed certificate, TCP, gRPC health over h2c (ours, and grpcio's
//! reference health service in [`grpcio`]), and, as root, exec
//! in a process's namespaces through the runtime's `spawn_in`. Results then go through
//! [`ContainerProbes`] as a supervisor's would: a server that turns from 200 to 500 gets the
//! container killed with the kubelet's words.

mod grpcio;
mod servers;

use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, LifecycleHandler, Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sys::wait::waitpid;
use peapod::probe::messages::{hook_failure_message, kill_message, pod_desc};
use peapod::probe::{
    hook_action, probe_action, Action, ContainerProbes, HookResult, HttpGet, ProbeKind,
    ProbeResult, ProbeRunner, Purpose, Report, Request, Transition, KUBE_VERSION,
};
use servers::{free_port, grpc_server, HttpServer, FLIP_HEALTHY, SECOND};

/// Runs one request through the runner, as a supervisor would, and reaps its child.
fn run(purpose: Purpose, action: Action) -> Report {
    run_request(
        Request {
            purpose,
            action,
            netns: None,
            exec: None,
        },
        Some(Instant::now() + 20 * SECOND),
    )
}

fn run_request(request: Request, deadline: Option<Instant>) -> Report {
    let mut runner: ProbeRunner<u32> =
        ProbeRunner::with_exe(Path::new(env!("CARGO_BIN_EXE_peapod")));
    runner.start(7, request, deadline).unwrap();
    assert_eq!(runner.fds().len(), 1, "one report pipe to poll");
    let until = Instant::now() + 30 * SECOND;
    let report = loop {
        let mut done = runner.collect(Instant::now());
        if let Some((key, report)) = done.pop() {
            assert_eq!(key, 7);
            break report;
        }
        assert!(Instant::now() < until, "no report");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(!runner.is_running(&7));
    for pid in runner.unreaped().to_vec() {
        waitpid(pid, None).unwrap();
        assert!(runner.on_exit(pid));
    }
    report
}

fn probe_for(timeout: Duration, action: Action) -> ProbeResult {
    match run(Purpose::Probe { timeout }, action) {
        Report::Probe(r) => r,
        other => panic!("not a probe report: {other:?}"),
    }
}

fn probe(action: Action) -> ProbeResult {
    probe_for(SECOND, action)
}

fn hook(action: Action) -> HookResult {
    match run(Purpose::Hook, action) {
        Report::Hook(h) => h,
        other => panic!("not a hook report: {other:?}"),
    }
}

fn get(port: u16, path: &str) -> HttpGet {
    HttpGet {
        scheme: "http".into(),
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: vec![],
    }
}

fn https(port: u16, path: &str) -> HttpGet {
    HttpGet {
        scheme: "https".into(),
        ..get(port, path)
    }
}

#[test]
fn http_statuses_redirects_and_bodies() {
    let HttpServer { port, heads } = HttpServer::plain();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let status = |code| ProbeResult::Failure(format!("HTTP probe failed with statuscode: {code}"));
    for (path, expected) in [
        ("/ok", ProbeResult::Success),
        ("/fail", status(500)),
        ("/redirect", ProbeResult::Success),
        ("/redirect-fail", status(500)),
        // Another host name is not followed: the redirect is the answer, a warning.
        (
            "/away",
            ProbeResult::Warning("Probe terminated redirects, Response body: moved".into()),
        ),
        (
            "/loop",
            ProbeResult::Failure("Get \"/loop\": stopped after 10 redirects".into()),
        ),
        ("/nocontent", ProbeResult::Success),
        ("/chunked503", status(503)),
        ("/big", ProbeResult::Success),
    ] {
        assert_eq!(probe(Action::Http(get(port, path))), expected, "{path}");
    }
    assert_eq!(
        probe(Action::Http(get(port, "/garbage"))),
        ProbeResult::Failure(format!(
            "Get \"{}\": net/http: HTTP/1.x transport connection broken: malformed HTTP response \"garbage\"",
            url("/garbage")
        ))
    );
    let started = Instant::now();
    assert_eq!(
        probe(Action::Http(get(port, "/slow"))),
        ProbeResult::Failure(format!(
            "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            url("/slow")
        ))
    );
    assert!(started.elapsed() < 3 * SECOND, "the timeout ends the probe");
    drop(heads);
}

#[test]
fn http_request_bytes_and_refused_connections() {
    let HttpServer { port, heads } = HttpServer::plain();
    let mut custom = get(port, "/ok");
    custom.headers = vec![
        ("Host".into(), "example.com".into()),
        ("x-token".into(), "t".into()),
    ];
    assert_eq!(probe(Action::Http(custom)), ProbeResult::Success);
    let head = heads.recv_timeout(5 * SECOND).unwrap();
    assert_eq!(
        head,
        format!(
            "GET /ok HTTP/1.1\r\nHost: example.com\r\nUser-Agent: kube-probe/{KUBE_VERSION}\r\n\
             Accept: */*\r\nX-Token: t\r\nConnection: close\r\n\r\n"
        )
    );
    let closed = free_port();
    assert_eq!(
        probe(Action::Http(get(closed, "/"))),
        ProbeResult::Failure(format!(
            "Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
        ))
    );
    // A hook accepts any status; an HTTPS hook answered over HTTP falls back to HTTP.
    assert_eq!(
        hook(Action::Http(get(port, "/fail"))),
        HookResult::Done {
            http_fallback: None
        }
    );
    assert_eq!(
        hook(Action::Http(https(port, "/ok"))),
        HookResult::Done {
            http_fallback: Some(format!("127.0.0.1:{port}"))
        }
    );
    assert_eq!(
        probe(Action::Http(https(port, "/ok"))),
        ProbeResult::Failure(format!(
            "Get \"https://127.0.0.1:{port}/ok\": http: server gave HTTP response to HTTPS client"
        ))
    );
    assert_eq!(
        hook(Action::Http(get(closed, "/"))),
        HookResult::Failed {
            error: format!(
                "Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ),
            output: None
        }
    );
}

#[test]
fn tcp_connects_or_says_why_not() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = |port| Action::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    assert_eq!(probe(tcp(port)), ProbeResult::Success);
    drop(listener);
    assert_eq!(
        probe(tcp(port)),
        ProbeResult::Failure(format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[test]
fn grpc_health_over_h2c() {
    let port = grpc_server();
    let grpc = |service: &str| Action::Grpc {
        host: "127.0.0.1".into(),
        port,
        service: service.into(),
    };
    assert_eq!(probe(grpc("")), ProbeResult::Success);
    assert_eq!(
        probe(grpc("down")),
        ProbeResult::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    assert_eq!(
        probe(grpc("missing")),
        ProbeResult::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                .into()
        )
    );
    assert_eq!(
        probe(grpc("unimpl")),
        ProbeResult::Failure(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): no".into()
        )
    );
    let closed = free_port();
    assert_eq!(
        probe(Action::Grpc {
            host: "127.0.0.1".into(),
            port: closed,
            service: String::new()
        }),
        ProbeResult::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s: context deadline exceeded"
        ))
    );
}

#[test]
fn grpc_call_without_answer_times_out() {
    let port = grpc_server();
    let started = Instant::now();
    assert_eq!(
        probe(Action::Grpc {
            host: "127.0.0.1".into(),
            port,
            service: "slow".into()
        }),
        ProbeResult::Failure("timeout: health rpc did not complete within 1s".into())
    );
    assert!(started.elapsed() < 3 * SECOND, "the timeout ends the probe");
}

#[test]
fn https_without_verification() {
    let HttpServer { port, heads } = HttpServer::tls();
    assert_eq!(
        probe(Action::Http(https(port, "/ok"))),
        ProbeResult::Success
    );
    assert_eq!(
        heads.recv_timeout(5 * SECOND).unwrap(),
        format!(
            "GET /ok HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/{KUBE_VERSION}\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        ),
        "the request went through the TLS session"
    );
    assert_eq!(
        probe(Action::Http(https(port, "/fail"))),
        ProbeResult::Failure("HTTP probe failed with statuscode: 500".into())
    );
    let started = Instant::now();
    assert_eq!(
        probe(Action::Http(https(port, "/slow"))),
        ProbeResult::Failure(format!(
            "Get \"https://127.0.0.1:{port}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    assert!(started.elapsed() < 3 * SECOND, "the timeout ends the probe");
    // An HTTPS hook to an HTTPS server needs no fallback.
    assert_eq!(
        hook(Action::Http(https(port, "/ok"))),
        HookResult::Done {
            http_fallback: None
        }
    );
}

/// A container `app` whose port `http` is `port`, with `probe` as the probe of `kind`.
fn container_with(kind: ProbeKind, port: u16, probe: Probe) -> Container {
    let mut c = Container {
        name: "app".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(port),
            ..Default::default()
        }]),
        ..Default::default()
    };
    match kind {
        ProbeKind::Liveness => c.liveness_probe = Some(probe),
        ProbeKind::Readiness => c.readiness_probe = Some(probe),
        ProbeKind::Startup => c.startup_probe = Some(probe),
    }
    c
}

/// An httpGet probe of `/flip` on the named port `http`.
fn flip_probe(scheme: &str, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::String("http".into()),
            path: Some("/flip".into()),
            scheme: Some(scheme.into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        termination_grace_period_seconds: Some(5),
        ..Default::default()
    }
}

/// Probes `container`'s probe of `kind` on the period grid (the clock is simulated, the probes
/// real) until a transition or `rounds` probes; returns the events' messages and transitions.
fn drive(container: &Container, kind: ProbeKind, rounds: usize) -> (Vec<String>, Vec<Transition>) {
    let probe = match kind {
        ProbeKind::Liveness => container.liveness_probe.as_ref(),
        ProbeKind::Readiness => container.readiness_probe.as_ref(),
        ProbeKind::Startup => container.startup_probe.as_ref(),
    }
    .unwrap();
    let action = probe_action(probe, container, "127.0.0.1").unwrap();
    let mut probes = ContainerProbes::new(container);
    let mut now = Instant::now();
    probes.on_container_started(now);
    let (mut events, mut transitions) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        assert_eq!(probes.due(now), vec![kind]);
        let state = probes.get_mut(kind).unwrap();
        state.on_probe_started(now);
        let timeout = state.config().timeout;
        let Report::Probe(result) = run(Purpose::Probe { timeout }, action.clone()) else {
            panic!("not a probe report");
        };
        let outcome = state.on_result(&result);
        events.extend(outcome.event.map(|e| format!("{} {}", e.reason, e.message)));
        transitions.extend(outcome.transition);
        match probes.next_due() {
            Some(next) => now = next,
            None => break,
        }
    }
    (events, transitions)
}

#[test]
fn liveness_turning_500_kills_the_container_with_the_kubelets_words() {
    let server = HttpServer::plain();
    let c = container_with(ProbeKind::Liveness, server.port, flip_probe("HTTP", 2));
    let (events, transitions) = drive(&c, ProbeKind::Liveness, 10);
    let failed = "Unhealthy Liveness probe failed: HTTP probe failed with statuscode: 500";
    assert_eq!(events, vec![failed, failed]);
    assert_eq!(
        transitions,
        vec![Transition::Kill {
            kind: ProbeKind::Liveness,
            grace_period: Some(5)
        }]
    );
    assert_eq!(
        kill_message(&c.name, ProbeKind::Liveness, true),
        "Container app failed liveness probe, will be restarted"
    );
    let heads: Vec<String> = server.heads.try_iter().collect();
    assert_eq!(heads.len(), FLIP_HEALTHY + 2, "probing stopped at the kill");
}

#[test]
fn readiness_over_https_turns_ready_then_not_ready() {
    let server = HttpServer::tls();
    let c = container_with(ProbeKind::Readiness, server.port, flip_probe("HTTPS", 1));
    let (events, transitions) = drive(&c, ProbeKind::Readiness, FLIP_HEALTHY + 2);
    assert_eq!(transitions, vec![Transition::Ready, Transition::NotReady]);
    assert_eq!(
        events,
        vec!["Unhealthy Readiness probe failed: HTTP probe failed with statuscode: 500"; 2]
    );
}

#[test]
fn an_overdue_child_is_killed_at_the_deadline() {
    // A hook has no timeout of its own: the caller's deadline (a preStop's grace period)
    // ends it; the kubelet stops waiting and says nothing.
    let HttpServer { port, .. } = HttpServer::plain();
    let started = Instant::now();
    let report = run_request(
        Request {
            purpose: Purpose::Hook,
            action: Action::Http(get(port, "/slow")),
            netns: None,
            exec: None,
        },
        Some(Instant::now() + Duration::from_millis(300)),
    );
    assert_eq!(report, Report::Hook(HookResult::Unfinished));
    assert!(started.elapsed() < 2 * SECOND, "{:?}", started.elapsed());
}

#[test]
fn startup_over_tcp_on_a_named_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = Probe {
        tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
            port: IntOrString::String("http".into()),
            host: None,
        }),
        ..Default::default()
    };
    let c = container_with(ProbeKind::Startup, port, tcp);
    let (events, transitions) = drive(&c, ProbeKind::Startup, 3);
    assert_eq!(transitions, vec![Transition::Started]);
    assert!(events.is_empty(), "{events:?}");
}

/// A stand-in container for exec: a `sleep` whose namespaces the command joins, and a bundle
/// whose Spec gives the command its env and cwd. Root only (setns, as peapod exec).
struct ExecTarget {
    sleeper: std::process::Child,
    bundle: tempfile::TempDir,
}

impl ExecTarget {
    fn start() -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let sleeper = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let bundle = tempfile::tempdir().unwrap();
        let mut spec = oci_spec::runtime::Spec::default();
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_env(Some(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "GREETING=hi".into(),
        ]));
        process.set_cwd("/".into());
        spec.set_process(Some(process));
        peapod::container::runtime::write_bundle(bundle.path(), &spec).unwrap();
        Some(ExecTarget { sleeper, bundle })
    }

    fn request(&self, purpose: Purpose, command: &[&str]) -> Request {
        Request {
            purpose,
            action: Action::Exec {
                command: command.iter().map(|s| s.to_string()).collect(),
            },
            netns: None,
            exec: Some(peapod::probe::ExecTarget {
                pid: self.sleeper.id() as i32,
                bundle: self.bundle.path().to_path_buf(),
            }),
        }
    }

    fn probe(&self, command: &[&str]) -> ProbeResult {
        let purpose = Purpose::Probe { timeout: SECOND };
        match run_request(self.request(purpose, command), None) {
            Report::Probe(r) => r,
            other => panic!("not a probe report: {other:?}"),
        }
    }
}

impl Drop for ExecTarget {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

#[test]
fn exec_in_the_container_with_its_env_output_and_timeout() {
    let Some(target) = ExecTarget::start() else {
        eprintln!("not root: exec probes are tested in the VM only");
        return;
    };
    assert_eq!(
        target.probe(&["sh", "-c", "test \"$GREETING\" = hi"]),
        ProbeResult::Success,
        "the Spec's env"
    );
    assert_eq!(
        target.probe(&["sh", "-c", "echo out; echo err >&2; exit 1"]),
        ProbeResult::Failure("out\nerr\n".into())
    );
    assert_eq!(
        target.probe(&["no-such-command"]),
        ProbeResult::unknown("exec: \"no-such-command\": executable file not found in $PATH"),
        "a command that cannot start is an error, not a failure"
    );
    // Past its timeout the command and what it started are killed.
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    assert_eq!(
        target.probe(&["sh", "-c", &script]),
        ProbeResult::Failure(format!("command \"sh -c {script}\" timed out"))
    );
    assert!(started.elapsed() < 3 * SECOND, "{:?}", started.elapsed());
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    let until = Instant::now() + 5 * SECOND;
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < until, "the background sleep survived");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_hooks_report_the_cri_error_and_output() {
    let Some(target) = ExecTarget::start() else {
        eprintln!("not root: exec hooks are tested in the VM only");
        return;
    };
    let command = ["sh", "-c", "echo o; echo e >&2; exit 2"];
    assert_eq!(
        run_request(target.request(Purpose::Hook, &command), None),
        Report::Hook(HookResult::Failed {
            error: "command 'sh -c echo o; echo e >&2; exit 2' exited with 2: e\n".into(),
            output: Some("o\ne\n".into())
        })
    );
    assert_eq!(
        run_request(target.request(Purpose::Hook, &["true"]), None),
        Report::Hook(HookResult::Done {
            http_fallback: None
        })
    );
}

#[test]
fn network_probes_run_in_the_given_network_namespace() {
    let HttpServer { port, .. } = HttpServer::plain();
    let request = |netns: &str| Request {
        purpose: Purpose::Probe { timeout: SECOND },
        action: Action::Http(get(port, "/ok")),
        netns: Some(netns.into()),
        exec: None,
    };
    assert_eq!(
        run_request(request("/nonexistent/ns/net"), None),
        Report::Probe(ProbeResult::unknown(
            "open /nonexistent/ns/net: No such file or directory (os error 2)"
        ))
    );
    if nix::unistd::geteuid().is_root() {
        // Our own namespace: the server is there.
        assert_eq!(
            run_request(request("/proc/self/ns/net"), None),
            Report::Probe(ProbeResult::Success)
        );
    }
}

#[test]
fn a_failed_post_start_hook_is_told_as_the_kubelet_tells_it() {
    let closed = free_port();
    let handler = LifecycleHandler {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(i32::from(closed)),
            path: Some("/started".into()),
            host: Some("127.0.0.1".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = Container {
        name: "app".into(),
        ..Default::default()
    };
    let action = hook_action(&handler, &c, "10.88.0.5").unwrap();
    let result = hook(action.clone());
    let pod = pod_desc("web", "default", "u-1");
    assert_eq!(
        hook_failure_message(&action, &c.name, &pod, &result).unwrap(),
        format!(
            "HTTP lifecycle hook (/started) for Container \"app\" in Pod \"web_default(u-1)\" \
             failed - error: Get \"http://127.0.0.1:{closed}/started\": dial tcp \
             127.0.0.1:{closed}: connect: connection refused"
        )
    );
}
