//! The CRI streaming server and ExecSync against real pods (made by `peapod apply`): the
//! server runs in the test process with the real backend (`peapod __exec` re-executed from
//! the binary under test, the supervisor's attach socket, dials inside the pod's netns), and
//! the test's WebSocket and SPDY clients (tests/common/stream_client.rs) redeem its URLs.
//! ExecSync's output, exit code, start failure and timeout (the command killed); exec over both
//! transports with stdin, and with a terminal that a resize reaches; attach to a container's
//! output; port-forward to a busybox `nc -ll` server in a pod.
//! Runs only in the test VM (`scripts/test --vm-only --only vm_cri_stream`).

use crate::common;
use crate::stream_client;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use k8s_cri::v1 as cri;
use peapod::cri::streaming::backend::PodBackend;
use peapod::cri::streaming::{self, ContainerTarget, Resolver, StreamingServer};
use peapod::store::Paths;
use stream_client::Send;
use tonic::Code;

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// Container ids `POD/CONTAINER` and sandbox ids `POD`, for pods made by `peapod apply`.
struct ApplyPods;

impl Resolver for ApplyPods {
    fn container(&self, id: &str) -> Result<ContainerTarget, tonic::Status> {
        let (pod, container) = id.split_once('/').unwrap_or((id, "app"));
        let json = try_pod_json(pod)
            .ok_or_else(|| tonic::Status::not_found(format!("container {id:?} not found")))?;
        let running =
            container_status(pod, container).is_some_and(|c| c["state"]["running"].is_object());
        Ok(ContainerTarget {
            pod_uid: json["metadata"]["uid"].as_str().unwrap_or("").to_string(),
            container_name: container.to_string(),
            sandbox_id: pod.to_string(),
            running,
            state: if running {
                "CONTAINER_RUNNING"
            } else {
                "CONTAINER_EXITED"
            }
            .to_string(),
        })
    }

    fn sandbox(&self, id: &str) -> Result<String, tonic::Status> {
        let json = try_pod_json(id)
            .ok_or_else(|| tonic::Status::not_found(format!("sandbox {id:?} not found")))?;
        Ok(json["metadata"]["uid"].as_str().unwrap_or("").to_string())
    }
}

/// Runs `f` on a runtime of its own, then ends the runtime without waiting on the blocking
/// threads a failed session may have left (a reader blocked on a supervisor's attach socket
/// ends only with its container). Also when `f` panics: a runtime dropped while unwinding waits
/// for those threads with no bound, and the test would hang instead of failing.
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f)));
    rt.shutdown_timeout(Duration::from_secs(5));
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn server() -> StreamingServer {
    let backend = PodBackend::new(Paths::from_env(), peapod_bin());
    streaming::start("127.0.0.1:0".parse().unwrap(), Arc::new(backend))
        .await
        .unwrap()
}

/// `f`, or a failure naming `what` when it has not ended in a minute (no test hangs).
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    eprintln!("vm_cri_stream: {what}");
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no end after 60 s"))
}

/// `peapod __exec` processes still alive (each session's must end with it).
fn exec_children() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"__exec"))
        })
        .collect()
}

fn no_exec_child_left() {
    let gone = wait_for(|| exec_children().is_empty(), Duration::from_secs(10));
    assert!(gone, "peapod __exec left running: {:?}", exec_children());
}

fn strings(cmd: &[&str]) -> Vec<String> {
    cmd.iter().map(|s| s.to_string()).collect()
}

fn exec_url(s: &StreamingServer, id: &str, cmd: &[&str], stdin: bool, tty: bool) -> String {
    let request = cri::ExecRequest {
        container_id: id.into(),
        cmd: strings(cmd),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    };
    streaming::exec(s, &ApplyPods, request).unwrap().url
}

fn exit_code(r: &stream_client::Received) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.channels[&3]).unwrap();
    if v["status"] == "Success" {
        "0".into()
    } else {
        v["details"]["causes"][0]["message"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn exec_sync_output_exit_code_and_timeout() {
    require_vm();
    let _pod = start_pod("cri-sync", &pod_yaml("cri-sync", "Always", "", SLEEP));
    run(async {
        let s = server().await;
        let sync = |cmd: &[&str], timeout: i64| cri::ExecSyncRequest {
            container_id: "cri-sync/app".into(),
            cmd: strings(cmd),
            timeout,
        };
        let r = streaming::exec_sync(
            &s,
            &ApplyPods,
            sync(&["sh", "-c", "echo out; echo err >&2; exit 3"], 10),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
            (&b"out\n"[..], &b"err\n"[..], 3)
        );
        let r = within(
            "exec_sync",
            streaming::exec_sync(&s, &ApplyPods, sync(&["cat", "/etc/hostname"], 0)),
        )
        .await
        .unwrap();
        assert_eq!(
            (String::from_utf8_lossy(&r.stdout).trim(), r.exit_code),
            ("cri-sync", 0)
        );

        let e = within(
            "exec_sync",
            streaming::exec_sync(&s, &ApplyPods, sync(&["nonesuch"], 5)),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::Unknown);
        assert!(
            e.message()
                .contains(r#"exec: "nonesuch": executable file not found in $PATH"#),
            "{}",
            e.message()
        );

        let started = Instant::now();
        let e = within(
            "exec_sync",
            streaming::exec_sync(&s, &ApplyPods, sync(&["sleep", "47"], 2)),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded, "{}", e.message());
        assert_eq!(
            e.message(),
            "failed to exec in container: timeout 2s exceeded: context deadline exceeded"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        // The command was killed, not left running in the container.
        let gone = wait_for(
            || {
                exec(
                    "cri-sync",
                    "app",
                    &["sh", "-c", "ps | grep -c '[s]leep 47'"],
                )
                .1
                .trim()
                    == "0"
            },
            Duration::from_secs(10),
        );
        assert!(gone, "sleep 47 still runs after the timeout");
    });
    no_exec_child_left();
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn exec_over_websocket_and_spdy_with_stdin_and_a_terminal() {
    require_vm();
    let _pod = start_pod("cri-exec", &pod_yaml("cri-exec", "Always", "", SLEEP));
    run(async {
        let s = server().await;
        let id = "cri-exec/app";
        let send = Send {
            stdin: Some(b"line one\n".to_vec()),
            close_stdin: true,
            delay_ms: 200,
            ..Send::default()
        };
        let url = exec_url(
            &s,
            id,
            &["sh", "-c", "cat; echo to-err >&2; exit 5"],
            true,
            false,
        );
        let r = within(
            "websocket",
            stream_client::websocket(&url, &["v5.channel.k8s.io"], send.clone()),
        )
        .await;
        assert_eq!(
            (r.text(1).as_str(), r.text(2).as_str()),
            ("line one\n", "to-err\n")
        );
        assert_eq!(exit_code(&r), "5");

        let url = exec_url(&s, id, &["sh", "-c", "cat; exit 6"], true, false);
        let r = within(
            "spdy_exec",
            stream_client::spdy_exec(&url, &["v4.channel.k8s.io"], true, send),
        )
        .await;
        assert_eq!(r.text(1), "line one\n");
        assert_eq!(exit_code(&r), "6");

        let url = exec_url(&s, id, &["nonesuch"], false, false);
        let r = within(
            "websocket",
            stream_client::websocket(&url, &["v4.channel.k8s.io"], Send::default()),
        )
        .await;
        let st: serde_json::Value = serde_json::from_slice(&r.channels[&3]).unwrap();
        assert_eq!(st["reason"], "InternalError", "{st}");

        // A terminal: the resize sent before the input is what stty reads; the exit code comes
        // back through the terminal's relay.
        let tty = Send {
            resize: Some((101, 33)),
            stdin: Some(b"go\n".to_vec()),
            close_stdin: false,
            delay_ms: 500,
        };
        let script = "read x; stty size; tty; exit 4";
        let url = exec_url(&s, id, &["sh", "-c", script], true, true);
        let r = within(
            "websocket",
            stream_client::websocket(&url, &["v5.channel.k8s.io"], tty.clone()),
        )
        .await;
        let out = r.text(1);
        assert!(out.contains("33 101"), "{out:?}");
        assert!(out.contains("/dev/pts/"), "{out:?}");
        assert_eq!(exit_code(&r), "4");
        let url = exec_url(&s, id, &["sh", "-c", script], true, true);
        let r = within(
            "spdy_exec",
            stream_client::spdy_exec(&url, &["v4.channel.k8s.io"], false, tty),
        )
        .await;
        let out = r.text(1);
        assert!(
            out.contains("33 101") && out.contains("/dev/pts/"),
            "{out:?}"
        );
        assert_eq!(exit_code(&r), "4");

        let e = streaming::exec(
            &s,
            &ApplyPods,
            cri::ExecRequest {
                container_id: "no-such-pod/app".into(),
                cmd: strings(&["sh"]),
                stdout: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    });
    no_exec_child_left();
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn attach_to_a_containers_output() {
    require_vm();
    // The output comes once the test says so (/tmp/go), when both clients are attached.
    let cmd = "until [ -e /tmp/go ]; do sleep 0.2; done; echo done-attach; echo to-stderr >&2";
    let _ws = start_pod(
        "cri-attach-ws",
        &pod_yaml("cri-attach-ws", "Never", "", cmd),
    );
    let _spdy = start_pod(
        "cri-attach-spdy",
        &pod_yaml("cri-attach-spdy", "Never", "", cmd),
    );
    run(async {
        let s = server().await;
        let attach = |id: &str| cri::AttachRequest {
            container_id: id.into(),
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let ws = streaming::attach(&s, &ApplyPods, attach("cri-attach-ws/app"))
            .unwrap()
            .url;
        let spdy = streaming::attach(&s, &ApplyPods, attach("cri-attach-spdy/app"))
            .unwrap()
            .url;
        let before = attach_connections();
        let go = async {
            await_attach_connections(&before, 2).await;
            tokio::task::spawn_blocking(|| {
                for pod in ["cri-attach-ws", "cri-attach-spdy"] {
                    assert_eq!(exec(pod, "app", &["touch", "/tmp/go"]).0, 0);
                }
            })
            .await
            .unwrap();
        };
        let (a, b, ()) = within("attach", async {
            tokio::join!(
                stream_client::websocket(&ws, &["v5.channel.k8s.io"], Send::default()),
                stream_client::spdy_exec(&spdy, &["v4.channel.k8s.io"], true, Send::default()),
                go,
            )
        })
        .await;
        for r in [a, b] {
            assert_eq!(
                (r.text(1).as_str(), r.text(2).as_str()),
                ("done-attach\n", "to-stderr\n"),
                "{}",
                r.text(3)
            );
            assert_eq!(exit_code(&r), "0");
        }
    });
    // Ended: attach is refused as containerd refuses it.
    wait_until(
        "cri-attach-ws",
        "Succeeded",
        || phase("cri-attach-ws") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    run(async {
        let s = server().await;
        let req = cri::AttachRequest {
            container_id: "cri-attach-ws/app".into(),
            stdout: true,
            ..Default::default()
        };
        let e = streaming::attach(&s, &ApplyPods, req).unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unknown, "container is in CONTAINER_EXITED state")
        );
    });
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn port_forward_reaches_nc_in_the_pod() {
    require_vm();
    let server_cmd = "printf '#!/bin/sh\\nread l\\necho pong $l\\n' > /srv.sh; chmod +x /srv.sh; exec nc -ll -p 8080 -e /srv.sh";
    let _pod = start_pod("cri-pf", &pod_yaml("cri-pf", "Always", "", server_cmd));
    run(async {
        let s = server().await;
        let forward = || cri::PortForwardRequest {
            pod_sandbox_id: "cri-pf".into(),
            port: vec![],
        };
        // nc may take a moment to listen.
        let mut answer = String::new();
        for _ in 0..20 {
            let url = streaming::port_forward(&s, &ApplyPods, forward())
                .unwrap()
                .url;
            let r = within(
                "spdy_portforward",
                stream_client::spdy_portforward(&url, 8080, b"ping\n"),
            )
            .await;
            answer = r.text(0);
            if answer == "pong ping\n" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(answer, "pong ping\n");
        let url = streaming::port_forward(&s, &ApplyPods, forward())
            .unwrap()
            .url;
        let r = within(
            "websocket_portforward",
            stream_client::websocket_portforward(&url, 8080, b"ws\n"),
        )
        .await;
        assert_eq!(&r.channels[&0][..2], &8080u16.to_le_bytes());
        assert_eq!(String::from_utf8_lossy(&r.channels[&0][2..]), "pong ws\n");
        // Nothing listens on 8081 in the pod (though the host may): the error stream says so.
        let url = streaming::port_forward(&s, &ApplyPods, forward())
            .unwrap()
            .url;
        let r = within(
            "spdy_portforward",
            stream_client::spdy_portforward(&url, 8081, b"x"),
        )
        .await;
        let err = r.text(1);
        assert!(err.starts_with("error forwarding port 8081 to pod cri-pf, uid : failed to connect to localhost:8081"), "{err}");
    });
}
