//! The CRI streaming server on the host, against a stand-in backend (commands answered by the
//! test, a loopback echo server as the pod's port): the four calls' checks and tokens, exec,
//! attach and port-forward over WebSocket (v5, v4, base64, the unversioned protocol) and SPDY/3.1
//! (v4, v2), terminal resizes, ExecSync's output, exit code, cap and timeout; and real clients:
//! Python's `kubernetes` package (WebSocket exec and port-forward) and kubectl (WebSocket and
//! SPDY, through a stand-in API server that hands the stream to the streaming server).
//!
//! The Python client lives in a venv under target/ (`python3 -m venv target/cri-stream-venv &&
//! target/cri-stream-venv/bin/pip install kubernetes`), made on first use; the test says so and
//! skips only when PyPI cannot be reached. kubectl is used when it is on PATH.
//! The real backend (pods, `peapod __exec`, the attach socket, the pod's netns) is covered by
//! tests/vm_cri_stream.rs in the VM.

#[path = "common/stream_client.rs"]
mod stream_client;

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use peapod::cri::streaming::session::{Backend, BoxFuture, Io};
use peapod::cri::streaming::{self, ContainerTarget, Resolver, StreamingServer};
use stream_client::{Received, Send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

struct Containers;

impl Resolver for Containers {
    fn container(&self, id: &str) -> Result<ContainerTarget, tonic::Status> {
        match id {
            "missing" => Err(tonic::Status::not_found(format!(
                "container {id:?} not found"
            ))),
            _ => Ok(ContainerTarget {
                pod_uid: "uid-1".into(),
                container_name: id.into(),
                running: id != "stopped",
            }),
        }
    }

    fn sandbox(&self, id: &str) -> Result<String, tonic::Status> {
        match id {
            "missing" => Err(tonic::Status::not_found(format!(
                "sandbox {id:?} not found"
            ))),
            _ => Ok(format!("uid-of-{id}")),
        }
    }
}

/// Commands the stand-in answers: `echo ARGS` (stdout), `warn ARGS` (stderr), `exit N`, `cat`
/// (stdin to stdout), `sizes` (each resize as "WxH\n", until stdin ends), `sleep`, `fail`
/// (cannot start), `flood N` (N MiB on stdout).
struct Stand;

impl Backend for Stand {
    fn exec(
        &self,
        _t: ContainerTarget,
        cmd: Vec<String>,
        mut io: Io,
    ) -> BoxFuture<Result<i32, String>> {
        Box::pin(async move {
            let args = cmd[1..].join(" ");
            match cmd[0].as_str() {
                "echo" => {
                    io.stdout
                        .as_ref()
                        .unwrap()
                        .write(format!("{args}\n").into_bytes())
                        .await;
                    Ok(0)
                }
                "warn" => {
                    io.stderr
                        .as_ref()
                        .unwrap()
                        .write(format!("{args}\n").into_bytes())
                        .await;
                    Ok(1)
                }
                "exit" => Ok(args.parse().unwrap()),
                "cat" => {
                    let mut stdin = io.stdin.take().unwrap();
                    while let Some(d) = stdin.recv().await {
                        io.stdout.as_ref().unwrap().write(d).await;
                    }
                    Ok(0)
                }
                "sizes" => {
                    let mut stdin = io.stdin.take().unwrap();
                    let mut resize = io.resize.take().unwrap();
                    loop {
                        tokio::select! {
                            s = resize.recv() => match s {
                                Some(s) => { io.stdout.as_ref().unwrap().write(format!("{}x{}\n", s.width, s.height).into_bytes()).await; }
                                None => return Ok(0),
                            },
                            d = stdin.recv() => if d.is_none() { return Ok(0) },
                        }
                    }
                }
                "sleep" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(0)
                }
                "flood" => {
                    let mib: usize = args.parse().unwrap();
                    for _ in 0..mib * 16 {
                        io.stdout
                            .as_ref()
                            .unwrap()
                            .write(vec![b'x'; 64 * 1024])
                            .await;
                    }
                    Ok(0)
                }
                _ => Err(format!(
                    "exec: {:?}: executable file not found in $PATH",
                    cmd[0]
                )),
            }
        })
    }

    fn attach(&self, t: ContainerTarget, io: Io) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            if let Some(out) = &io.stdout {
                out.write(format!("attached to {}\n", t.container_name).into_bytes())
                    .await;
            }
            if let Some(err) = &io.stderr {
                err.write(b"on stderr\n".to_vec()).await;
            }
            Ok(())
        })
    }

    fn dial(&self, _pod: String, port: u16) -> BoxFuture<Result<tokio::net::TcpStream, String>> {
        Box::pin(async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("dial tcp4 127.0.0.1:{port}: {e}"))
        })
    }
}

async fn server() -> StreamingServer {
    let addr = "127.0.0.1:0".parse().unwrap();
    streaming::start(addr, Arc::new(Stand)).await.unwrap()
}

fn exec_request(id: &str, cmd: &[&str], stdin: bool, stderr: bool, tty: bool) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr,
    }
}

fn exec_url(s: &StreamingServer, cmd: &[&str], stdin: bool, stderr: bool, tty: bool) -> String {
    streaming::exec(s, &Containers, exec_request("app", cmd, stdin, stderr, tty))
        .unwrap()
        .url
}

fn status(r: &Received) -> serde_json::Value {
    serde_json::from_slice(r.channels.get(&3).expect("an error stream")).unwrap()
}

/// A loopback server standing in for the pod's port: answers "echo: " and what it read, then
/// closes.
async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let mut answer = b"echo: ".to_vec();
                answer.extend_from_slice(&buf[..n]);
                let _ = c.write_all(&answer).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_checked_and_tokens_spent_once() {
    let s = server().await;
    let e = streaming::exec(
        &s,
        &Containers,
        exec_request("app", &["sh"], true, true, true),
    )
    .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "tty and stderr cannot both be true")
    );
    let none = cri::ExecRequest {
        stdout: false,
        ..exec_request("app", &["sh"], false, false, false)
    };
    let e = streaming::exec(&s, &Containers, none).unwrap_err();
    assert_eq!(e.message(), "one of stdin, stdout, or stderr must be set");
    let e = streaming::exec(
        &s,
        &Containers,
        exec_request("missing", &["sh"], false, false, false),
    )
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = streaming::attach(
        &s,
        &Containers,
        cri::AttachRequest {
            container_id: "stopped".into(),
            stdout: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("stopped"), "{}", e.message());
    let e =
        streaming::port_forward(&s, &Containers, cri::PortForwardRequest::default()).unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "missing required pod_sandbox_id")
    );
    let e = streaming::exec_sync(
        &s,
        &Containers,
        cri::ExecSyncRequest {
            container_id: "missing".into(),
            cmd: vec!["x".into()],
            timeout: 0,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let url = exec_url(&s, &["echo", "once"], false, false, false);
    let prefix = format!("{}/exec/", s.base_url());
    assert!(
        url.starts_with("http://127.0.0.1:") && url.starts_with(&prefix),
        "{url}"
    );
    assert_eq!(url.len(), prefix.len() + 11, "an 8-byte token: {url}");
    let first = stream_client::websocket(&url, &["v4.channel.k8s.io"], Send::default()).await;
    assert_eq!(first.text(1), "once\n");
    let again = stream_client::websocket(&url, &["v4.channel.k8s.io"], Send::default()).await;
    assert_eq!(again.http_status, Some(404));
    // A token redeemed at another kind's path is refused (and spent).
    let url = exec_url(&s, &["echo", "x"], false, false, false).replace("/exec/", "/attach/");
    let r = stream_client::websocket(&url, &["v4.channel.k8s.io"], Send::default()).await;
    assert_eq!(r.http_status, Some(400));
    let url = exec_url(&s, &["echo", "x"], false, false, false);
    let r = stream_client::websocket(&url, &["v9.channel.k8s.io"], Send::default()).await;
    assert_eq!(r.http_status, Some(403));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_over_websocket_protocols() {
    let s = server().await;
    let url = exec_url(&s, &["echo", "hello"], false, true, false);
    let r = stream_client::websocket(
        &url,
        &["v5.channel.k8s.io", "v4.channel.k8s.io"],
        Send::default(),
    )
    .await;
    assert_eq!(r.protocol.as_deref(), Some("v5.channel.k8s.io"));
    assert_eq!(r.text(1), "hello\n");
    assert_eq!(r.text(3), r#"{"metadata":{},"status":"Success"}"#);

    let url = exec_url(&s, &["exit", "3"], false, true, false);
    let r = stream_client::websocket(&url, &["v4.channel.k8s.io"], Send::default()).await;
    let st = status(&r);
    assert_eq!(st["reason"], "NonZeroExitCode");
    assert_eq!(
        st["details"]["causes"][0],
        serde_json::json!({"reason": "ExitCode", "message": "3"})
    );
    assert_eq!(
        st["message"],
        "command terminated with non-zero exit code: error executing command [exit 3], exit code 3"
    );

    // v5: stdin ends with the close channel, so cat ends.
    let url = exec_url(&s, &["cat"], true, false, false);
    let send = Send {
        stdin: Some(b"typed\n".to_vec()),
        close_stdin: true,
        ..Send::default()
    };
    let r = stream_client::websocket(&url, &["v5.channel.k8s.io"], send).await;
    assert_eq!(r.text(1), "typed\n");
    assert_eq!(status(&r)["status"], "Success");

    let url = exec_url(&s, &["warn", "careful"], false, true, false);
    let r = stream_client::websocket(&url, &["v4.base64.channel.k8s.io"], Send::default()).await;
    assert_eq!(r.protocol.as_deref(), Some("v4.base64.channel.k8s.io"));
    assert_eq!(r.text(2), "careful\n");
    assert_eq!(status(&r)["details"]["causes"][0]["message"], "1");

    // Before v4 the error stream carries the message alone, and nothing on success.
    let url = exec_url(&s, &["exit", "2"], false, true, false);
    let r = stream_client::websocket(&url, &["channel.k8s.io"], Send::default()).await;
    assert_eq!(
        r.text(3),
        "command terminated with non-zero exit code: error executing command [exit 2], exit code 2"
    );
    let url = exec_url(&s, &["echo", "old"], false, true, false);
    let r = stream_client::websocket(&url, &[], Send::default()).await;
    assert_eq!((r.text(1).as_str(), r.text(3).as_str()), ("old\n", ""));

    let url = exec_url(&s, &["nonesuch"], false, true, false);
    let r = stream_client::websocket(&url, &["v4.channel.k8s.io"], Send::default()).await;
    let st = status(&r);
    assert_eq!(
        (st["reason"].as_str(), st["code"].as_i64()),
        (Some("InternalError"), Some(500))
    );
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("executable file not found"),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_over_spdy() {
    let s = server().await;
    let url = exec_url(&s, &["cat"], true, true, false);
    let send = Send {
        stdin: Some(b"via spdy".to_vec()),
        close_stdin: true,
        ..Send::default()
    };
    let r = stream_client::spdy_exec(
        &url,
        &["v4.channel.k8s.io", "v3.channel.k8s.io"],
        true,
        send,
    )
    .await;
    assert_eq!(r.protocol.as_deref(), Some("v4.channel.k8s.io"));
    assert_eq!(r.text(1), "via spdy");
    assert_eq!(r.text(3), r#"{"metadata":{},"status":"Success"}"#);

    let url = exec_url(&s, &["exit", "7"], false, true, false);
    let r = stream_client::spdy_exec(&url, &["v4.channel.k8s.io"], true, Send::default()).await;
    assert_eq!(status(&r)["details"]["causes"][0]["message"], "7");
    let url = exec_url(&s, &["exit", "7"], false, true, false);
    let r = stream_client::spdy_exec(&url, &["v2.channel.k8s.io"], true, Send::default()).await;
    assert!(r.text(3).ends_with("exit code 7"), "{}", r.text(3));

    let url = exec_url(&s, &["echo", "x"], false, true, false);
    assert_eq!(
        stream_client::spdy_exec(&url, &[], true, Send::default())
            .await
            .http_status,
        Some(400)
    );
    let url = exec_url(&s, &["echo", "x"], false, true, false);
    let r = stream_client::spdy_exec(&url, &["v5.channel.k8s.io"], true, Send::default()).await;
    assert_eq!(r.http_status, Some(403));
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_resizes_reach_the_backend() {
    let s = server().await;
    let send = Send {
        resize: Some((120, 40)),
        stdin: Some(b"x".to_vec()),
        close_stdin: true,
        delay_ms: 100,
    };
    let url = exec_url(&s, &["sizes"], true, false, true);
    let r = stream_client::websocket(&url, &["v5.channel.k8s.io"], send.clone()).await;
    assert_eq!(r.text(1), "120x40\n");
    let url = exec_url(&s, &["sizes"], true, false, true);
    let r = stream_client::spdy_exec(&url, &["v4.channel.k8s.io"], false, send).await;
    assert_eq!(r.text(1), "120x40\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_over_both_transports() {
    let s = server().await;
    let req = cri::AttachRequest {
        container_id: "web".into(),
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let url = streaming::attach(&s, &Containers, req.clone()).unwrap().url;
    assert!(url.contains("/attach/"), "{url}");
    let r = stream_client::websocket(&url, &["v5.channel.k8s.io"], Send::default()).await;
    assert_eq!(
        (r.text(1).as_str(), r.text(2).as_str()),
        ("attached to web\n", "on stderr\n")
    );
    let url = streaming::attach(&s, &Containers, req).unwrap().url;
    let r = stream_client::spdy_exec(&url, &["v4.channel.k8s.io"], true, Send::default()).await;
    assert_eq!(
        (r.text(1).as_str(), r.text(2).as_str()),
        ("attached to web\n", "on stderr\n")
    );
    assert_eq!(status(&r)["status"], "Success");
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_over_both_transports() {
    let s = server().await;
    let port = echo_server().await;
    let forward = || cri::PortForwardRequest {
        pod_sandbox_id: "sb".into(),
        port: vec![],
    };
    let url = streaming::port_forward(&s, &Containers, forward())
        .unwrap()
        .url;
    assert!(url.contains("/portforward/"), "{url}");
    let r = stream_client::websocket_portforward(&url, port, b"ping").await;
    let mut expected = port.to_le_bytes().to_vec();
    expected.extend_from_slice(b"echo: ping");
    assert_eq!(r.channels[&0], expected);
    assert_eq!(r.channels[&1], port.to_le_bytes());

    let url = streaming::port_forward(&s, &Containers, forward())
        .unwrap()
        .url;
    let r = stream_client::spdy_portforward(&url, port, b"pong").await;
    assert_eq!(r.protocol.as_deref(), Some("portforward.k8s.io"));
    assert_eq!(r.text(0), "echo: pong");
    assert_eq!(r.text(1), "");

    // Nothing listens: the error stream says so, as the kubelet words it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = streaming::port_forward(&s, &Containers, forward())
        .unwrap()
        .url;
    let r = stream_client::spdy_portforward(&url, closed, b"x").await;
    let text = r.text(1);
    assert!(
        text.starts_with(&format!("error forwarding port {closed} to pod sb, uid : ")),
        "{text}"
    );
    let url = streaming::port_forward(&s, &Containers, forward())
        .unwrap()
        .url;
    let r = stream_client::websocket_portforward(&url, closed, b"x").await;
    assert!(String::from_utf8_lossy(&r.channels[&1][2..]).starts_with("error forwarding port"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_sync_output_exit_code_cap_and_timeout() {
    let s = server().await;
    let sync = |cmd: &[&str], timeout: i64| cri::ExecSyncRequest {
        container_id: "app".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    };
    let r = streaming::exec_sync(&s, &Containers, sync(&["echo", "hi"], 0))
        .await
        .unwrap();
    assert_eq!((r.stdout.as_slice(), r.exit_code), (&b"hi\n"[..], 0));
    let r = streaming::exec_sync(&s, &Containers, sync(&["warn", "w"], 5))
        .await
        .unwrap();
    assert_eq!((r.stderr.as_slice(), r.exit_code), (&b"w\n"[..], 1));
    let r = streaming::exec_sync(&s, &Containers, sync(&["exit", "42"], 5))
        .await
        .unwrap();
    assert_eq!(r.exit_code, 42);
    let r = streaming::exec_sync(&s, &Containers, sync(&["flood", "17"], 0))
        .await
        .unwrap();
    assert_eq!(r.stdout.len(), 16 * 1024 * 1024);
    let e = streaming::exec_sync(&s, &Containers, sync(&["sleep"], 1))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded);
    assert_eq!(
        e.message(),
        "failed to exec in container: timeout 1s exceeded: context deadline exceeded"
    );
    let e = streaming::exec_sync(&s, &Containers, sync(&["nonesuch"], 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unknown);
    assert!(
        e.message().contains("executable file not found"),
        "{}",
        e.message()
    );
    let e = streaming::exec_sync(&s, &Containers, sync(&["echo"], 0).clone()).await;
    assert!(e.is_ok());
    let stopped = cri::ExecSyncRequest {
        container_id: "stopped".into(),
        ..sync(&["echo"], 0)
    };
    let e = streaming::exec_sync(&s, &Containers, stopped)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

/// The venv with Python's `kubernetes` client: made on first use under target/; None (the test
/// then skips, saying why) only when PyPI cannot be reached.
fn python_kubernetes() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cri-stream-venv");
    let python = venv.join("bin/python");
    let importable = |p: &std::path::Path| {
        std::process::Command::new(p)
            .args(["-c", "import kubernetes.stream.ws_client"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if importable(&python) {
        return Some(python);
    }
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "python3 -m venv {} failed", venv.display());
    let pip = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "kubernetes"])
        .output()
        .expect("running pip");
    if !pip.status.success() {
        eprintln!(
            "SKIPPED: `pip install kubernetes` failed (PyPI unreachable?): {}",
            String::from_utf8_lossy(&pip.stderr)
        );
        return None;
    }
    assert!(
        importable(&python),
        "kubernetes installed but not importable"
    );
    Some(python)
}

/// Exec (v5 offered first, as the client does) and port-forward with the Python client's own
/// classes, pointed at URLs the server handed out.
const PYTHON_CLIENT: &str = r#"
import json, sys
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import WSClient, PortForward, create_websocket
cfg = Configuration()
ws = lambda u: u.replace("http://", "ws://", 1)
result = {}
for name, url in (("ok", sys.argv[1]), ("failed", sys.argv[2])):
    c = WSClient(cfg, ws(url), None, True)
    c.run_forever(timeout=10)
    result[name] = {"stdout": c.read_stdout(), "stderr": c.read_stderr(),
                    "code": c.returncode, "protocol": c.subprotocol}
port = int(sys.argv[4])
pf = PortForward(create_websocket(cfg, ws(sys.argv[3]) + "?port=%d" % port), [port])
s = pf.socket(port)
s.sendall(b"from python")
got = b""
while True:
    chunk = s.recv(1024)
    if not chunk:
        break
    got += chunk
result["forwarded"] = got.decode()
result["forward_error"] = pf.error(port)
print(json.dumps(result))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn python_kubernetes_client_execs_and_forwards() {
    let Some(python) = tokio::task::spawn_blocking(python_kubernetes)
        .await
        .unwrap()
    else {
        return;
    };
    let s = server().await;
    let ok = exec_url(&s, &["echo", "from", "python"], false, true, false);
    let failed = exec_url(&s, &["exit", "9"], false, true, false);
    let forward = cri::PortForwardRequest {
        pod_sandbox_id: "sb".into(),
        port: vec![],
    };
    let pf = streaming::port_forward(&s, &Containers, forward)
        .unwrap()
        .url;
    let port = echo_server().await;
    let out = tokio::process::Command::new(python)
        .args(["-c", PYTHON_CLIENT, &ok, &failed, &pf, &port.to_string()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"]["stdout"], "from python\n");
    assert_eq!(v["ok"]["code"], 0);
    assert_eq!(v["ok"]["protocol"], "v5.channel.k8s.io");
    assert_eq!(v["failed"]["code"], 9);
    assert_eq!(v["forwarded"], "echo: from python");
    assert_eq!(v["forward_error"], serde_json::Value::Null);
}

/// An API server stand-in for kubectl: discovery and one running pod `p` (container `app`);
/// each exec or port-forward request becomes a CRI request whose URL the connection is then
/// handed to (path rewritten, bytes relayed), as the kubelet proxies the runtime's stream.
async fn apiserver(s: StreamingServer) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            tokio::spawn(api_connection(s.clone(), c));
        }
    });
    port
}

const POD_JSON: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"app","image":"busybox"}]},"status":{"phase":"Running","containerStatuses":[{"name":"app","ready":true,"restartCount":0,"image":"busybox","imageID":"","state":{"running":{}}}]}}"#;
const API_V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#;

async fn api_connection(s: StreamingServer, mut c: tokio::net::TcpStream) {
    use peapod::cri::streaming::http::parse_head;
    let mut buf = Vec::new();
    loop {
        let (head, used) = loop {
            if let Ok(Some(done)) = parse_head(&buf) {
                break done;
            }
            let mut chunk = [0u8; 4096];
            match c.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let raw = buf[..used].to_vec();
        let rest = buf.split_off(used);
        buf.clear();
        let stream_url = if head.path.ends_with("/exec") {
            let flag = |n: &str| {
                head.query_values(n)
                    .first()
                    .is_some_and(|v| v == "true" || v == "1")
            };
            let cmd = head.query_values("command");
            let request = cri::ExecRequest {
                container_id: "app".into(),
                cmd,
                tty: flag("tty"),
                stdin: flag("stdin"),
                stdout: flag("stdout"),
                stderr: flag("stderr"),
            };
            Some(streaming::exec(&s, &Containers, request).unwrap().url)
        } else if head.path.ends_with("/portforward") {
            let request = cri::PortForwardRequest {
                pod_sandbox_id: "p".into(),
                port: vec![],
            };
            Some(
                streaming::port_forward(&s, &Containers, request)
                    .unwrap()
                    .url,
            )
        } else {
            None
        };
        if let Some(url) = stream_url {
            let target = url.split_once("://").unwrap().1;
            let (host, path) = target.split_once('/').unwrap();
            let text = String::from_utf8_lossy(&raw).into_owned();
            let (line, headers) = text.split_once("\r\n").unwrap();
            let mut parts = line.splitn(3, ' ');
            let (method, old, version) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            // The query stays: the kubelet's port-forward reads `port` from it.
            let query = old
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            let forwarded = format!("{method} /{path}{query} {version}\r\n{headers}");
            let mut upstream = tokio::net::TcpStream::connect(host).await.unwrap();
            upstream.write_all(forwarded.as_bytes()).await.unwrap();
            upstream.write_all(&rest).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut c, &mut upstream).await;
            return;
        }
        let body = match head.path.as_str() {
            "/api" => {
                r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#
            }
            "/apis" => r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#,
            "/api/v1" => API_V1,
            "/api/v1/namespaces/default/pods/p" => POD_JSON,
            _ => "",
        };
        let status = if body.is_empty() {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let answer = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        if c.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// kubectl, when installed: exec over WebSocket (its default) and SPDY, exit codes as kubectl
/// reports them, and port-forward over SPDY.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_execs_and_forwards() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    }
    let s = server().await;
    let api = apiserver(s.clone()).await;
    let server = format!("--server=http://127.0.0.1:{api}");
    let kubectl = |args: &[&str], websockets: bool| {
        let mut c = tokio::process::Command::new("kubectl");
        c.arg(&server)
            .args(["--kubeconfig=/dev/null", "-n", "default"])
            .args(args);
        c.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets.to_string());
        c.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        c.kill_on_drop(true);
        c
    };
    for websockets in [true, false] {
        let out = kubectl(&["exec", "p", "--", "echo", "from", "kubectl"], websockets)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from kubectl\n",
            "websockets={websockets}: {stderr}"
        );
        assert!(out.status.success(), "{stderr}");
        let out = kubectl(&["exec", "p", "--", "exit", "3"], websockets)
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "websockets={websockets}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = kubectl(&["exec", "-i", "p", "--", "cat"], websockets)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"piped through\n").await.unwrap();
        drop(stdin);
        // Over v4 (SPDY) the end of stdin is a FIN; over v5 the close channel.
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("kubectl exec -i ended")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "piped through\n",
            "websockets={websockets}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let target = echo_server().await;
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut pf = kubectl(&["port-forward", "p", &format!("{local}:{target}")], false)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut answer = Vec::new();
    for _ in 0..50 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            c.write_all(b"via kubectl").await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut answer)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = pf.start_kill();
    let out = pf.wait_with_output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "echo: via kubectl",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
