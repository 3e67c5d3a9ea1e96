//! The WebSocket protocols of the kubelet's streaming server (apimachinery's `wsstream`): each
//! message is one channel's, its first byte the channel number (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`, `channel.k8s.io` and no protocol) or, in the base64 variants, an ASCII
//! digit and the data in base64. Exec and attach use channels 0-4 (stdin, stdout, stderr, error,
//! resize); v5 adds channel 255, on which the client closes a channel (`[255, 0]`: end of
//! stdin). Port-forward (`v4.channel.k8s.io`, no protocol) has a data and an error channel per
//! port (2i, 2i+1), each opened with the port in two little-endian bytes.

use std::sync::Arc;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::http::{respond, Head, Upgrade};
use super::session::{
    io_for, Backend, Run, Session, TermSize, END, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};
use super::StreamOptions;

/// v5's close channel.
const CLOSE_CHANNEL: u8 = 255;

/// What a negotiated protocol changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub name: &'static str,
    pub base64: bool,
    /// The error channel carries a metav1.Status (v4, v5) instead of a bare message.
    pub json_status: bool,
    pub close_channel: bool,
}

const fn protocol(name: &'static str, base64: bool, json_status: bool, close: bool) -> Protocol {
    Protocol {
        name,
        base64,
        json_status,
        close_channel: close,
    }
}

/// Exec and attach, as the kubelet's remotecommand serves them ("" is the client that names
/// none).
pub const REMOTECOMMAND: &[Protocol] = &[
    protocol("v5.channel.k8s.io", false, true, true),
    protocol("v4.channel.k8s.io", false, true, false),
    protocol("v4.base64.channel.k8s.io", true, true, false),
    protocol("channel.k8s.io", false, false, false),
    protocol("base64.channel.k8s.io", true, false, false),
    protocol("", false, false, false),
];

/// Port-forward, as the kubelet's portforward serves it.
pub const PORTFORWARD: &[Protocol] = &[
    protocol("v4.channel.k8s.io", false, false, false),
    protocol("v4.base64.channel.k8s.io", true, false, false),
    protocol("", false, false, false),
];

/// The first protocol the client offers that is supported (the kubelet's wsstream handshake).
pub fn negotiate(offered: &[String], supported: &[Protocol]) -> Option<Protocol> {
    let none = [String::new()];
    let offered = if offered.is_empty() {
        &none[..]
    } else {
        offered
    };
    offered
        .iter()
        .find_map(|o| supported.iter().find(|p| p.name == o.as_str()).copied())
}

/// One message's bytes on the wire for `channel`.
pub fn encode(protocol: Protocol, channel: u8, data: &[u8]) -> Message {
    if protocol.base64 {
        let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        text.push(char::from(b'0' + channel));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::text(text)
    } else {
        let mut bytes = Vec::with_capacity(1 + data.len());
        bytes.push(channel);
        bytes.extend_from_slice(data);
        Message::binary(bytes)
    }
}

/// A client message's channel and data; None for an empty or undecodable one.
pub fn decode(protocol: Protocol, message: Message) -> Option<(u8, Vec<u8>)> {
    let bytes = match message {
        Message::Binary(b) => b.to_vec(),
        Message::Text(t) => t.as_bytes().to_vec(),
        _ => return None,
    };
    let (&first, rest) = bytes.split_first()?;
    if protocol.base64 {
        let channel = first.checked_sub(b'0')?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        Some((channel, data))
    } else {
        Some((first, rest.to_vec()))
    }
}

/// Answers the upgrade and serves `request` on the WebSocket.
pub async fn serve(up: Upgrade) {
    let (backend, mut stream, rest) = (up.backend, up.stream, up.rest);
    let (head, session) = (up.head, up.session);
    let (supported, ports) = match &session {
        Session::Forward { .. } => match ports(&head) {
            Ok(p) => (PORTFORWARD, p),
            Err(e) => return respond(&mut stream, "400 Bad Request", &e).await,
        },
        Session::Command { .. } => (REMOTECOMMAND, Vec::new()),
    };
    let Some(key) = head.first("Sec-WebSocket-Key") else {
        return respond(&mut stream, "400 Bad Request", "missing Sec-WebSocket-Key").await;
    };
    let offered = head.values("Sec-WebSocket-Protocol");
    let Some(protocol) = negotiate(&offered, supported) else {
        let names: Vec<&str> = supported.iter().map(|p| p.name).collect();
        let why =
            format!("requested protocol(s) are not supported: {offered:?}; supports {names:?}");
        return respond(&mut stream, "403 Forbidden", &why).await;
    };
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if !protocol.name.is_empty() {
        answer.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocol.name));
    }
    answer.push_str("\r\n");
    if tokio::io::AsyncWriteExt::write_all(&mut stream, answer.as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, None).await;
    match session {
        Session::Command { options, run } => remotecommand(ws, protocol, options, run).await,
        Session::Forward {
            sandbox_id,
            pod_uid,
        } => portforward(ws, protocol, backend, sandbox_id, pod_uid, ports).await,
    }
}

/// The ports of a port-forward WebSocket: every `port` query value, comma-separated lists
/// allowed, each 1-65535 (the kubelet's portforward.NewV4Options).
pub fn ports(head: &Head) -> Result<Vec<u16>, String> {
    let values = head.query_values("port");
    if values.is_empty() {
        return Err("query parameter \"port\" is required".to_string());
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".to_string());
        }
        for p in value.split(',') {
            let port: u16 = p
                .parse()
                .map_err(|e| format!("unable to parse {value:?} as a port: {e}"))?;
            if port < 1 {
                return Err(format!("port {value:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Sends the queue's messages until [`END`] (then a close frame) or the client is gone.
fn writer(
    mut sink: futures::stream::SplitSink<WebSocketStream<TcpStream>, Message>,
    protocol: Protocol,
    mut queue: mpsc::Receiver<(u8, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((channel, data)) = queue.recv().await {
            if channel == END {
                break;
            }
            if sink.send(encode(protocol, channel, &data)).await.is_err() {
                return;
            }
        }
        // With a status: Go clients (gorilla) report a close without one (1005) as an error.
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    })
}

async fn remotecommand(
    ws: WebSocketStream<TcpStream>,
    protocol: Protocol,
    options: StreamOptions,
    run: Run,
) {
    let (sink, mut source) = ws.split();
    let (io, ends) = io_for(options);
    // An empty message on the lowest writable channel tells the client the streams are up
    // (the kubelet's createWebSocketStreams).
    let first = if options.stdout {
        STDOUT
    } else if options.stderr {
        STDERR
    } else {
        ERROR
    };
    let _ = ends.status.send((first, Vec::new())).await;
    let writing = writer(sink, protocol, ends.output);
    let (mut stdin, resize) = (ends.stdin, ends.resize);
    let reading = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            if message.is_close() {
                break;
            }
            let Some((channel, data)) = decode(protocol, message) else {
                continue;
            };
            match channel {
                STDIN => {
                    if let Some(tx) = &stdin {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                RESIZE => {
                    let size = serde_json::from_slice::<TermSize>(&data);
                    if let (Some(tx), Ok(size)) = (&resize, size) {
                        let _ = tx.send(size).await;
                    }
                }
                CLOSE_CHANNEL if protocol.close_channel && data.first() == Some(&STDIN) => {
                    stdin = None;
                }
                _ => {}
            }
        }
    });
    let ending = run(io).await;
    if let Some(data) = ending.error_stream(protocol.json_status) {
        let _ = ends.status.send((ERROR, data)).await;
    }
    let _ = ends.status.send((END, Vec::new())).await;
    drop(ends.status);
    let _ = writing.await;
    reading.abort();
}

async fn portforward(
    ws: WebSocketStream<TcpStream>,
    protocol: Protocol,
    backend: Arc<dyn Backend>,
    sandbox_id: String,
    pod_uid: String,
    ports: Vec<u16>,
) {
    let (sink, mut source) = ws.split();
    let (out, queue) = mpsc::channel::<(u8, Vec<u8>)>(64);
    for (i, port) in ports.iter().enumerate() {
        let data = (2 * i) as u8;
        let _ = out.send((data, port.to_le_bytes().to_vec())).await;
        let _ = out.send((data + 1, port.to_le_bytes().to_vec())).await;
    }
    let writing = writer(sink, protocol, queue);
    let mut inputs = Vec::new();
    let mut relays = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        inputs.push(tx);
        let (backend, out) = (backend.clone(), out.clone());
        let (pod, uid) = (sandbox_id.clone(), pod_uid.clone());
        relays.push(tokio::spawn(async move {
            let data = (2 * i) as u8;
            if let Err(e) = forward(backend, uid, port, rx, data, &out).await {
                // The kubelet's words; over the CRI the pod is the sandbox id and the uid empty.
                let msg = format!("error forwarding port {port} to pod {pod}, uid : {e}");
                let _ = out.send((data + 1, msg.into_bytes())).await;
            }
        }));
    }
    let reading = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            if message.is_close() {
                break;
            }
            if let Some((channel, data)) = decode(protocol, message) {
                let port = usize::from(channel / 2);
                if channel % 2 == 0 && !data.is_empty() {
                    if let Some(tx) = inputs.get(port) {
                        let _ = tx.send(data).await;
                    }
                }
            }
        }
    });
    let all = futures::future::join_all(relays);
    tokio::select! {
        _ = all => {}
        _ = reading => {}
    }
    let _ = out.send((END, Vec::new())).await;
    drop(out);
    let _ = writing.await;
}

/// Relays one port's connection: client data in, the pod's answers out on `data`.
async fn forward(
    backend: Arc<dyn Backend>,
    pod_uid: String,
    port: u16,
    mut input: mpsc::Receiver<Vec<u8>>,
    data: u8,
    out: &mpsc::Sender<(u8, Vec<u8>)>,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let conn = backend.dial(pod_uid, port).await?;
    let (mut rd, mut wr) = conn.into_split();
    let to_pod = tokio::spawn(async move {
        while let Some(chunk) = input.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if out.send((data, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                to_pod.abort();
                return Err(e.to_string());
            }
        }
    }
    to_pod.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_first_offered_protocol_supported_wins() {
        let p = negotiate(
            &offered(&["v5.channel.k8s.io", "v4.channel.k8s.io"]),
            REMOTECOMMAND,
        );
        assert_eq!(p.unwrap().name, "v5.channel.k8s.io");
        let p = negotiate(&offered(&["x", "v4.base64.channel.k8s.io"]), REMOTECOMMAND).unwrap();
        assert!(p.base64 && p.json_status && !p.close_channel);
        assert_eq!(negotiate(&[], REMOTECOMMAND).unwrap().name, "");
        assert!(negotiate(&offered(&["v5.channel.k8s.io"]), PORTFORWARD).is_none());
        assert!(negotiate(&offered(&["SPDY/3.1"]), REMOTECOMMAND).is_none());
    }

    #[test]
    fn frames_in_both_encodings() {
        let raw = REMOTECOMMAND[1];
        let b64 = REMOTECOMMAND[2];
        let m = encode(raw, STDOUT, b"hi");
        assert_eq!(m, Message::binary(vec![1u8, b'h', b'i']));
        assert_eq!(decode(raw, m), Some((STDOUT, b"hi".to_vec())));
        let m = encode(b64, STDERR, b"hi");
        assert_eq!(m, Message::text("2aGk="));
        assert_eq!(decode(b64, m), Some((STDERR, b"hi".to_vec())));
        assert_eq!(decode(raw, Message::binary(Vec::new())), None);
    }

    #[test]
    fn port_query_as_the_kubelet_reads_it() {
        let head = |q: &str| Head {
            query: q.to_string(),
            ..Head::default()
        };
        assert_eq!(ports(&head("port=80&port=81,82")).unwrap(), [80, 81, 82]);
        assert!(ports(&head("")).unwrap_err().contains("is required"));
        assert!(ports(&head("port="))
            .unwrap_err()
            .contains("cannot be empty"));
        assert!(ports(&head("port=0")).unwrap_err().contains("must be > 0"));
        assert!(ports(&head("port=x"))
            .unwrap_err()
            .contains("unable to parse"));
    }
}
