//! Exec, attach and port-forward over SPDY/3.1, as kubectl, crictl and the kubelet's proxy
//! speak them to the kubelet's streaming server (httpstream/spdy + remotecommand/portforward).
//!
//! The client sends `Upgrade: SPDY/3.1` with the protocol versions it knows in
//! `X-Stream-Protocol-Version`; the server answers 101 with the first of them it supports, and
//! the client then opens one SPDY stream per remotecommand stream, named by its `streamType`
//! header (error, stdin, stdout, stderr, resize), or per port-forward connection a pair (`error`
//! and `data`) sharing `port` and `requestID` headers. Every stream is answered (SYN_REPLY);
//! the server's side of a stream ends with a FIN.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::http::{respond, Upgrade};
use super::session::{
    io_for, Backend, Run, Session, TermSize, END, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};
use super::spdy_frame::{self as f, Frame, Headers};
use super::StreamOptions;

/// The Upgrade header's value.
pub const UPGRADE: &str = "SPDY/3.1";
const PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
/// remotecommand's protocols, newest first (the kubelet's SupportedStreamingProtocols).
pub const REMOTECOMMAND: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
pub const PORTFORWARD: &[&str] = &["portforward.k8s.io"];
/// How long the client has to open the streams it asked for (the kubelet's
/// streamCreationTimeout).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// After one direction of a forwarded connection ends, how long the other gets (containerd).
const FORWARD_DRAIN: Duration = Duration::from_secs(1);

/// The first protocol the client lists that the server supports (httpstream.Handshake).
pub fn negotiate(offered: &[String], supported: &[&'static str]) -> Option<&'static str> {
    offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()).copied())
}

/// What the writer sends; header blocks are compressed there, in wire order.
enum Out {
    Reply(u32),
    Data {
        stream: u32,
        data: Vec<u8>,
        fin: bool,
    },
    Ping(Vec<u8>),
    /// GOAWAY, then the connection ends.
    GoAway,
}

impl Out {
    /// The end of the server's side of `stream`.
    fn fin(stream: u32) -> Out {
        Out::Data {
            stream,
            data: Vec::new(),
            fin: true,
        }
    }
}

/// A stream the client opened.
struct Opened {
    id: u32,
    headers: Headers,
    /// Its data; closed at the client's FIN or RST_STREAM.
    input: mpsc::Receiver<Vec<u8>>,
}

pub async fn serve(up: Upgrade) {
    let Upgrade {
        backend,
        mut stream,
        rest,
        head,
        session,
    } = up;
    let supported = match session {
        Session::Forward { .. } => PORTFORWARD,
        Session::Command { .. } => REMOTECOMMAND,
    };
    let offered = head.values(PROTOCOL_HEADER);
    if offered.is_empty() {
        let why = format!("unable to upgrade: {PROTOCOL_HEADER} is required");
        return respond(&mut stream, "400 Bad Request", &why).await;
    }
    let Some(protocol) = negotiate(&offered, supported) else {
        let why = format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
        );
        return respond(&mut stream, "403 Forbidden", &why).await;
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE}\r\n{PROTOCOL_HEADER}: {protocol}\r\n\r\n"
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let (rd, wr) = stream.into_split();
    let (out, out_rx) = mpsc::channel::<Out>(64);
    let writing = tokio::spawn(writer(wr, out_rx));
    let (opened_tx, opened) = mpsc::channel::<Opened>(16);
    let reading = tokio::spawn(reader(rd, rest, out.clone(), opened_tx));
    match session {
        Session::Command { options, run } => {
            remotecommand(protocol, options, opened, out.clone(), run).await
        }
        Session::Forward {
            sandbox_id,
            pod_uid,
        } => portforward(backend, sandbox_id, pod_uid, opened, out.clone()).await,
    }
    let _ = out.send(Out::GoAway).await;
    drop(out);
    let _ = writing.await;
    reading.abort();
}

async fn writer(mut wr: tokio::net::tcp::OwnedWriteHalf, mut queue: mpsc::Receiver<Out>) {
    let mut deflater = f::Deflater::default();
    while let Some(item) = queue.recv().await {
        let bytes = match item {
            Out::Reply(id) => match deflater.block(&[]) {
                Ok(block) => f::syn_reply(id, &block),
                Err(e) => {
                    tracing::warn!(error = %e, "SPDY: compressing a reply");
                    return;
                }
            },
            Out::Data { stream, data, fin } => {
                f::data(stream, if fin { f::FLAG_FIN } else { 0 }, &data)
            }
            Out::Ping(id) => f::control(f::PING, 0, &id),
            Out::GoAway => {
                let _ = wr.write_all(&f::control(f::GOAWAY, 0, &[0; 8])).await;
                let _ = wr.shutdown().await;
                return;
            }
        };
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// Reads frames: answers new streams and pings, routes data to its stream's input.
async fn reader(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut buf: Vec<u8>,
    out: mpsc::Sender<Out>,
    opened: mpsc::Sender<Opened>,
) {
    let mut inflater = f::Inflater::default();
    let mut inputs: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    loop {
        let frame = match f::read_frame(&mut rd, &mut buf).await {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY: bad frame");
                None
            }
        };
        let Some(frame) = frame else { return };
        match frame {
            Frame::Control {
                kind: f::SYN_STREAM,
                flags,
                data,
            } => {
                let Ok((id, block)) = f::syn_stream(&data) else {
                    return;
                };
                let Ok(headers) = inflater.block(block) else {
                    return;
                };
                let _ = out.send(Out::Reply(id)).await;
                let (tx, rx) = mpsc::channel(64);
                if flags & f::FLAG_FIN == 0 {
                    inputs.insert(id, tx);
                }
                let _ = opened
                    .send(Opened {
                        id,
                        headers,
                        input: rx,
                    })
                    .await;
            }
            // Keeps the shared decompression in step; nothing here needs them.
            Frame::Control {
                kind: f::HEADERS,
                data,
                ..
            } => {
                if inflater.block(data.get(4..).unwrap_or_default()).is_err() {
                    return;
                }
            }
            Frame::Control {
                kind: f::RST_STREAM,
                data,
                ..
            } => {
                if let Ok(id) = f::stream_id(&data) {
                    inputs.remove(&id);
                }
            }
            Frame::Control {
                kind: f::PING,
                data,
                ..
            } => {
                let _ = out.send(Out::Ping(data)).await;
            }
            Frame::Control {
                kind: f::GOAWAY, ..
            } => return,
            // SETTINGS, WINDOW_UPDATE: spdystream does no flow control; nor do we.
            Frame::Control { .. } => {}
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if !data.is_empty() {
                    if let Some(tx) = inputs.get(&stream) {
                        let _ = tx.send(data).await;
                    }
                }
                if flags & f::FLAG_FIN != 0 {
                    inputs.remove(&stream);
                }
            }
        }
    }
}

fn stream_kind(headers: &Headers) -> Option<u8> {
    match f::header_value(headers, "streamtype")? {
        "error" => Some(ERROR),
        "stdin" => Some(STDIN),
        "stdout" => Some(STDOUT),
        "stderr" => Some(STDERR),
        "resize" => Some(RESIZE),
        _ => None,
    }
}

/// The streams the kubelet waits for: error, those asked for, and resize with a terminal from
/// v3 on (v2 and later send no stderr with a terminal).
fn expected(protocol: &str, options: StreamOptions) -> Vec<u8> {
    let mut kinds = vec![ERROR];
    if options.stdin {
        kinds.push(STDIN);
    }
    if options.stdout {
        kinds.push(STDOUT);
    }
    if options.stderr && !(options.tty && protocol != "channel.k8s.io") {
        kinds.push(STDERR);
    }
    if options.tty && matches!(protocol, "v4.channel.k8s.io" | "v3.channel.k8s.io") {
        kinds.push(RESIZE);
    }
    kinds
}

async fn remotecommand(
    protocol: &str,
    options: StreamOptions,
    mut opened: mpsc::Receiver<Opened>,
    out: mpsc::Sender<Out>,
    run: Run,
) {
    let want = expected(protocol, options);
    let mut streams: HashMap<u8, Opened> = HashMap::new();
    let waited = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        while streams.len() < want.len() {
            let Some(s) = opened.recv().await else {
                return false;
            };
            if let Some(kind) = stream_kind(&s.headers).filter(|k| want.contains(k)) {
                streams.insert(kind, s);
            }
        }
        true
    })
    .await;
    if !matches!(waited, Ok(true)) {
        tracing::info!("SPDY: the client did not open its streams in time");
        return;
    }
    let ids: HashMap<u8, u32> = streams.iter().map(|(k, s)| (*k, s.id)).collect();
    let (io, mut ends) = io_for(options);
    let mut pumps = Vec::new();
    if let (Some(tx), Some(mut s)) = (ends.stdin.take(), streams.remove(&STDIN)) {
        pumps.push(tokio::spawn(async move {
            while let Some(data) = s.input.recv().await {
                if tx.send(data).await.is_err() {
                    return;
                }
            }
        }));
    }
    if let (Some(tx), Some(mut s)) = (ends.resize.take(), streams.remove(&RESIZE)) {
        pumps.push(tokio::spawn(async move {
            // A stream of JSON objects, possibly split or joined across frames.
            let mut pending = Vec::new();
            while let Some(data) = s.input.recv().await {
                pending.extend_from_slice(&data);
                let mut sizes =
                    serde_json::Deserializer::from_slice(&pending).into_iter::<TermSize>();
                let mut used = 0;
                while let Some(Ok(size)) = sizes.next() {
                    used = sizes.byte_offset();
                    let _ = tx.send(size).await;
                }
                pending.drain(..used);
            }
        }));
    }
    // The output queue, in order, onto the streams.
    let forwarding = {
        let out = out.clone();
        let ids = ids.clone();
        let mut queue = ends.output;
        tokio::spawn(async move {
            while let Some((kind, data)) = queue.recv().await {
                if kind == END {
                    return;
                }
                if let Some(&stream) = ids.get(&kind) {
                    let _ = out
                        .send(Out::Data {
                            stream,
                            data,
                            fin: false,
                        })
                        .await;
                }
            }
        })
    };
    let ending = run(io).await;
    if let Some(data) = ending.error_stream(protocol == "v4.channel.k8s.io") {
        let _ = ends.status.send((ERROR, data)).await;
    }
    let _ = ends.status.send((END, Vec::new())).await;
    let _ = forwarding.await;
    for kind in [STDOUT, STDERR, ERROR] {
        if let Some(&stream) = ids.get(&kind) {
            let _ = out.send(Out::fin(stream)).await;
        }
    }
    for p in pumps {
        p.abort();
    }
}

/// Serves port-forward stream pairs until the client leaves.
async fn portforward(
    backend: Arc<dyn Backend>,
    sandbox_id: String,
    pod_uid: String,
    mut opened: mpsc::Receiver<Opened>,
    out: mpsc::Sender<Out>,
) {
    // Halves of pairs waiting for their other half, by requestID.
    let mut waiting: HashMap<String, (Option<Opened>, Option<Opened>)> = HashMap::new();
    while let Some(s) = opened.recv().await {
        let request = f::header_value(&s.headers, "requestid")
            .unwrap_or("")
            .to_string();
        let kind = f::header_value(&s.headers, "streamtype")
            .unwrap_or("")
            .to_string();
        let slot = waiting.entry(request.clone()).or_default();
        match kind.as_str() {
            "data" => slot.0 = Some(s),
            "error" => slot.1 = Some(s),
            _ => continue,
        }
        let complete = matches!(waiting.get(&request), Some((Some(_), Some(_))));
        if let Some((Some(data), Some(error))) =
            complete.then(|| waiting.remove(&request)).flatten()
        {
            let (backend, out) = (backend.clone(), out.clone());
            let (pod, uid) = (sandbox_id.clone(), pod_uid.clone());
            tokio::spawn(forward_pair(backend, pod, uid, data, error, out));
        }
    }
}

async fn forward_pair(
    backend: Arc<dyn Backend>,
    sandbox_id: String,
    pod_uid: String,
    mut data: Opened,
    error: Opened,
    out: mpsc::Sender<Out>,
) {
    let port = f::header_value(&data.headers, "port")
        .unwrap_or("")
        .to_string();
    let result = match port.parse::<u16>() {
        Ok(p) if p > 0 => relay(&backend, pod_uid, p, &mut data, &out).await,
        _ => Err(format!("invalid port {port:?}")),
    };
    if let Err(e) = result {
        let msg = format!("error forwarding port {port} to pod {sandbox_id}, uid : {e}");
        let _ = out
            .send(Out::Data {
                stream: error.id,
                data: msg.into_bytes(),
                fin: false,
            })
            .await;
    }
    for stream in [data.id, error.id] {
        let _ = out.send(Out::fin(stream)).await;
    }
}

async fn relay(
    backend: &Arc<dyn Backend>,
    pod_uid: String,
    port: u16,
    data: &mut Opened,
    out: &mpsc::Sender<Out>,
) -> Result<(), String> {
    let conn = backend.dial(pod_uid, port).await?;
    let (mut rd, mut wr) = conn.into_split();
    let stream = data.id;
    let input = &mut data.input;
    let to_pod = async move {
        while let Some(chunk) = input.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let from_pod = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    let chunk = buf[..n].to_vec();
                    if out
                        .send(Out::Data {
                            stream,
                            data: chunk,
                            fin: false,
                        })
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::pin!(to_pod);
    tokio::pin!(from_pod);
    // As containerd: the first direction to end leaves the other a second to finish.
    tokio::select! {
        r = &mut from_pod => r,
        () = &mut to_pod => {
            tokio::time::timeout(FORWARD_DRAIN, from_pod).await.unwrap_or(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_expected_streams() {
        let offered = vec![
            "v5.channel.k8s.io".to_string(),
            "v4.channel.k8s.io".to_string(),
        ];
        assert_eq!(
            negotiate(&offered, REMOTECOMMAND),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(negotiate(&offered, PORTFORWARD), None);
        let tty = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        assert_eq!(
            expected("v4.channel.k8s.io", tty),
            [ERROR, STDIN, STDOUT, RESIZE]
        );
        assert_eq!(expected("v2.channel.k8s.io", tty), [ERROR, STDIN, STDOUT]);
        let pipes = StreamOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
        };
        assert_eq!(
            expected("v4.channel.k8s.io", pipes),
            [ERROR, STDOUT, STDERR]
        );
    }
}
