//! Clients of the CRI streaming server for the tests: WebSocket (the channel protocols) and
//! SPDY/3.1 (written with peapod's own framing module, as kubectl's spdystream speaks it).
//! Each runs one session to its end and returns what every stream carried.

use futures::{SinkExt, StreamExt};
use peapod::cri::streaming::spdy_frame::{self as f, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// What each stream of a session carried, by channel (0 stdin ... 4 resize; port-forward data
/// and error channels 0 and 1), and the HTTP status when there was no upgrade.
#[derive(Debug, Default)]
pub struct Received {
    pub channels: std::collections::BTreeMap<u8, Vec<u8>>,
    pub http_status: Option<u16>,
    pub protocol: Option<String>,
}

impl Received {
    fn refused(status: u16) -> Received {
        Received {
            http_status: Some(status),
            ..Received::default()
        }
    }

    pub fn text(&self, channel: u8) -> String {
        String::from_utf8_lossy(
            self.channels
                .get(&channel)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        )
        .into_owned()
    }
}

/// What a client sends: stdin (then closed, where the protocol can say so), a resize.
#[derive(Debug, Default, Clone)]
pub struct Send {
    pub stdin: Option<Vec<u8>>,
    pub close_stdin: bool,
    pub resize: Option<(u16, u16)>,
    /// Wait this long before sending stdin (let the command start).
    pub delay_ms: u64,
}

fn host_port(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (host.to_string(), format!("/{path}"))
}

/// A WebSocket session offering `protocols`.
pub async fn websocket(url: &str, protocols: &[&str], send: Send) -> Received {
    let (host, _) = host_port(url);
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url.into_client_request().expect("a request");
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.join(", ").parse().expect("a header"),
        );
    }
    let tcp = TcpStream::connect(&host).await.expect("connect");
    let mut received = Received::default();
    let (ws, response) = match tokio_tungstenite::client_async(request, tcp).await {
        Ok(done) => done,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            received.http_status = Some(r.status().as_u16());
            return received;
        }
        Err(e) => panic!("websocket handshake: {e}"),
    };
    received.protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let base64 = received
        .protocol
        .as_deref()
        .unwrap_or("")
        .contains("base64");
    let (mut sink, mut source) = ws.split();
    let encode = move |channel: u8, data: &[u8]| {
        if base64 {
            use base64::Engine;
            let mut t = String::from(char::from(b'0' + channel));
            t.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
            Message::text(t)
        } else {
            let mut b = vec![channel];
            b.extend_from_slice(data);
            Message::binary(b)
        }
    };
    let sender = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(send.delay_ms)).await;
        if let Some((w, h)) = send.resize {
            let size = format!(r#"{{"Width":{w},"Height":{h}}}"#);
            let _ = sink.send(encode(4, size.as_bytes())).await;
        }
        if let Some(data) = send.stdin {
            let _ = sink.send(encode(0, &data)).await;
        }
        if send.close_stdin {
            let _ = sink.send(Message::binary(vec![255u8, 0])).await;
        }
        sink
    });
    while let Some(Ok(m)) = source.next().await {
        let (channel, data) = match m {
            Message::Binary(b) if !b.is_empty() => (b[0], b[1..].to_vec()),
            Message::Text(t) if !t.is_empty() => {
                use base64::Engine;
                let bytes = t.as_bytes();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&bytes[1..])
                    .expect("base64");
                (bytes[0] - b'0', data)
            }
            Message::Close(_) => break,
            _ => continue,
        };
        received.channels.entry(channel).or_default().extend(data);
    }
    let _ = sender.await;
    received
}

/// Sends an upgrade request for SPDY and returns the socket after a 101, else the status.
async fn spdy_upgrade(url: &str, protocols: &[&str]) -> Result<(TcpStream, String), u16> {
    let (host, path) = host_port(url);
    let mut tcp = TcpStream::connect(&host).await.expect("connect");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    );
    for p in protocols {
        head.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        return Err(status);
    }
    let protocol = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Stream-Protocol-Version: "))
        .unwrap_or("")
        .to_string();
    Ok((tcp, protocol))
}

fn syn_stream(deflater: &mut f::Deflater, id: u32, headers: &[(&str, &str)], fin: bool) -> Vec<u8> {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0; 6]);
    payload.extend_from_slice(&deflater.block(headers).expect("compress"));
    f::control(f::SYN_STREAM, if fin { f::FLAG_FIN } else { 0 }, &payload)
}

/// Reads frames until GOAWAY or EOF (or every stream in `until_fin` ended), collecting data by
/// the stream ids given in `names`.
async fn collect(tcp: &mut TcpStream, names: &[(u32, u8)], until_fin: &[u32]) -> Received {
    let mut received = Received::default();
    let mut inflater = f::Inflater::default();
    let mut buf = Vec::new();
    let mut open: Vec<u32> = until_fin.to_vec();
    while let Some(frame) = f::read_frame(tcp, &mut buf).await.expect("a frame") {
        match frame {
            Frame::Control {
                kind: f::SYN_REPLY,
                data,
                ..
            } => {
                inflater.block(&data[4..]).expect("reply headers");
            }
            Frame::Control {
                kind: f::GOAWAY, ..
            } => break,
            Frame::Control { .. } => {}
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if let Some((_, ch)) = names.iter().find(|(id, _)| *id == stream) {
                    received.channels.entry(*ch).or_default().extend(data);
                }
                if flags & f::FLAG_FIN != 0 {
                    open.retain(|s| *s != stream);
                    if !until_fin.is_empty() && open.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    received
}

/// A remotecommand session over SPDY: opens error, stdin (with `send.stdin`), stdout, stderr
/// (with `stderr`) and resize (with `send.resize`) streams, as client-go does.
pub async fn spdy_exec(url: &str, protocols: &[&str], stderr: bool, send: Send) -> Received {
    let (mut tcp, protocol) = match spdy_upgrade(url, protocols).await {
        Ok(done) => done,
        Err(status) => return Received::refused(status),
    };
    let mut deflater = f::Deflater::default();
    let mut names = vec![(1u32, 3u8)];
    let mut frames = syn_stream(&mut deflater, 1, &[("streamType", "error")], true);
    let mut next = 3u32;
    let mut stdin_id = None;
    if send.stdin.is_some() {
        frames.extend(syn_stream(
            &mut deflater,
            next,
            &[("streamType", "stdin")],
            false,
        ));
        stdin_id = Some(next);
        next += 2;
    }
    frames.extend(syn_stream(
        &mut deflater,
        next,
        &[("streamType", "stdout")],
        true,
    ));
    names.push((next, 1));
    next += 2;
    if stderr {
        frames.extend(syn_stream(
            &mut deflater,
            next,
            &[("streamType", "stderr")],
            true,
        ));
        names.push((next, 2));
        next += 2;
    }
    let mut resize_id = None;
    if send.resize.is_some() {
        frames.extend(syn_stream(
            &mut deflater,
            next,
            &[("streamType", "resize")],
            false,
        ));
        resize_id = Some(next);
    }
    tcp.write_all(&frames).await.expect("streams");
    tokio::time::sleep(std::time::Duration::from_millis(send.delay_ms)).await;
    if let (Some(id), Some((w, h))) = (resize_id, send.resize) {
        let size = format!(r#"{{"Width":{w},"Height":{h}}}"#);
        tcp.write_all(&f::data(id, 0, size.as_bytes()))
            .await
            .expect("resize");
    }
    if let (Some(id), Some(data)) = (stdin_id, &send.stdin) {
        let flags = if send.close_stdin { f::FLAG_FIN } else { 0 };
        tcp.write_all(&f::data(id, flags, data))
            .await
            .expect("stdin");
    }
    let mut received = collect(&mut tcp, &names, &[]).await;
    received.protocol = Some(protocol);
    received
}

/// One port-forward connection over SPDY: the data and error streams of request 0 for `port`,
/// `send` written (then half-closed); returns channels 0 (data) and 1 (error).
pub async fn spdy_portforward(url: &str, port: u16, send: &[u8]) -> Received {
    let (mut tcp, protocol) = match spdy_upgrade(url, &["portforward.k8s.io"]).await {
        Ok(done) => done,
        Err(status) => return Received::refused(status),
    };
    let mut deflater = f::Deflater::default();
    let port = port.to_string();
    let mut frames = syn_stream(
        &mut deflater,
        1,
        &[("streamType", "error"), ("port", &port), ("requestID", "0")],
        true,
    );
    frames.extend(syn_stream(
        &mut deflater,
        3,
        &[("streamType", "data"), ("port", &port), ("requestID", "0")],
        false,
    ));
    frames.extend(f::data(3, f::FLAG_FIN, send));
    tcp.write_all(&frames).await.expect("streams");
    let mut received = collect(&mut tcp, &[(3, 0), (1, 1)], &[1, 3]).await;
    received.protocol = Some(protocol);
    received
}

/// One port-forward over WebSocket (`v4.channel.k8s.io`, `?port=`): `send` on the data
/// channel; returns channels 0 and 1 with their 2-byte port prefixes.
pub async fn websocket_portforward(url: &str, port: u16, send: &[u8]) -> Received {
    let url = format!("{url}?port={port}");
    let ws_url = url.replacen("http://", "ws://", 1);
    let (host, _) = host_port(&url);
    let mut request = ws_url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().expect("header"),
    );
    let tcp = TcpStream::connect(&host).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("upgrade");
    let (mut sink, mut source) = ws.split();
    let mut msg = vec![0u8];
    msg.extend_from_slice(send);
    sink.send(Message::binary(msg)).await.expect("send");
    let mut received = Received::default();
    while let Some(Ok(m)) = source.next().await {
        match m {
            Message::Binary(b) if !b.is_empty() => {
                received.channels.entry(b[0]).or_default().extend(&b[1..]);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    received
}
