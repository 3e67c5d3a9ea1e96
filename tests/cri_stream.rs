//! The CRI streaming server on the host, against a stand-in backend (commands answered by the
//! test, a loopback echo server as the pod's port): the four calls' checks and tokens, exec,
//! attach and port-forward over WebSocket (v5, v4, base64, the unversioned protocol) and SPDY/3.1
//! (v4, v2), terminal resizes, ExecSync's output, exit code, cap and timeout, with the test's
//! own clients (tests/common/stream_client.rs); real clients are in tests/cri_stream_clients.rs.
//! The real backend (pods, `peapod __exec`, the attach socket, the pod's netns) is covered by
//! tests/vm/vm_cri_stream.rs in the VM.

#[path = "common/stream_client.rs"]
mod stream_client;
#[path = "common/stream_stand.rs"]
mod stream_stand;

use k8s_cri::v1 as cri;
use peapod::cri::streaming;
use stream_client::{Received, Send};
use stream_stand::{echo_server, exec_request, exec_url, server, Containers};
use tonic::Code;

fn status(r: &Received) -> serde_json::Value {
    serde_json::from_slice(r.channels.get(&3).expect("an error stream")).unwrap()
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
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unknown, "container is in CONTAINER_EXITED state")
    );
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
    assert_eq!(e.code(), Code::Unknown);
}
