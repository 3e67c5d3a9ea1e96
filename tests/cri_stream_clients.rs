//! Real clients of the CRI streaming server on the host, against the stand-in backend
//! (tests/common/stream_stand.rs): Python's `kubernetes` package (WebSocket exec and
//! port-forward) and kubectl (exec over WebSocket and SPDY, port-forward over SPDY, through a
//! stand-in API server that hands each stream to the streaming server as the kubelet does).
//!
//! The Python client lives in a venv under target/ (`python3 -m venv target/cri-stream-venv &&
//! target/cri-stream-venv/bin/pip install kubernetes`), made on first use; the test says so and
//! skips only when PyPI cannot be reached. kubectl is used when it is on PATH (else skipped,
//! saying so).

#[path = "common/stream_stand.rs"]
mod stream_stand;

use std::time::Duration;

use k8s_cri::v1 as cri;
use peapod::cri::streaming::{self, StreamingServer};
use stream_stand::{echo_server, exec_url, server, Containers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
