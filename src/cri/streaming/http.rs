//! The streaming server's HTTP side: a listener on 127.0.0.1 (port 0: a random free one, as
//! containerd's default `stream_server_port`), each connection's request head, the token it
//! redeems, and the upgrade to WebSocket (any protocol the kubelet serves) or SPDY/3.1.
//!
//! The kubelet's streaming server is a Go `http.Server`; its clients send one upgrade request
//! per connection and wait for the answer before speaking, so the head is read here with
//! `httparse` and the connection handed to the protocol as a plain socket.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::cache::RequestCache;
use super::session::{Backend, Session};
use super::websocket;
use super::{Request, StreamingServer};

/// The largest request head read.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("binding the streaming server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Listens on `addr` and serves on the current tokio runtime until it stops.
pub async fn start(
    addr: SocketAddr,
    backend: Arc<dyn Backend>,
) -> Result<StreamingServer, HttpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let server = StreamingServer {
        base_url: format!("http://{local}"),
        cache: Arc::new(RequestCache::default()),
        backend,
    };
    let serving = server.clone();
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let server = serving.clone();
                    tokio::spawn(async move { connection(server, stream).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    tracing::info!(url = %server.base_url, "CRI streaming server listening");
    Ok(server)
}

/// The request head a client sent: what routing and the upgrade need.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Every value of header `name` (case-insensitive), comma-separated lists split.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn first(&self, name: &str) -> Option<String> {
        self.values(name).into_iter().next()
    }

    /// Every value of query parameter `name`.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a complete head; `Ok(None)` while more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let target = req.path.unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let head = Head {
                method: req.method.unwrap_or("").to_string(),
                path: path.to_string(),
                query: query.to_string(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a plain HTTP answer and ends the connection.
pub async fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A connection whose request head asked for an upgrade, for the protocol to answer.
pub struct Upgrade {
    pub backend: Arc<dyn Backend>,
    pub stream: TcpStream,
    /// Bytes read past the head.
    pub rest: Vec<u8>,
    pub head: Head,
    pub session: Session,
}

/// The route of a path: the request kind and the token.
fn route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (kind, token) = rest.split_once('/')?;
    matches!(kind, "exec" | "attach" | "portforward")
        .then_some((kind, token))
        .filter(|(_, t)| !t.is_empty() && !t.contains('/'))
}

fn kind_of(request: &Request) -> &'static str {
    match request {
        Request::Exec { .. } => "exec",
        Request::Attach { .. } => "attach",
        Request::PortForward { .. } => "portforward",
    }
}

async fn connection(server: StreamingServer, mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let (head, used) = loop {
        let mut chunk = [0u8; 2048];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse_head(&buf) {
            Ok(Some(done)) => break done,
            Ok(None) if buf.len() < MAX_HEAD => continue,
            Ok(None) => {
                return respond(&mut stream, "431 Request Header Fields Too Large", "").await
            }
            Err(e) => return respond(&mut stream, "400 Bad Request", &e).await,
        }
    };
    let rest = buf.split_off(used);
    if head.method != "GET" && head.method != "POST" {
        return respond(&mut stream, "405 Method Not Allowed", "").await;
    }
    let Some((kind, token)) = route(&head.path) else {
        return respond(&mut stream, "404 Not Found", "404 page not found\n").await;
    };
    // Spent whatever follows: a token is good for one try.
    let Some(request) = server.cache().consume(token) else {
        return respond(&mut stream, "404 Not Found", "").await;
    };
    if kind_of(&request) != kind {
        return respond(
            &mut stream,
            "400 Bad Request",
            &format!("token is for {}, not {kind}", kind_of(&request)),
        )
        .await;
    }
    let upgrade = head.first("Upgrade").unwrap_or_default();
    let websocket = upgrade.eq_ignore_ascii_case("websocket");
    if websocket || upgrade.eq_ignore_ascii_case(super::spdy::UPGRADE) {
        let up = Upgrade {
            backend: server.backend.clone(),
            stream,
            rest,
            head,
            session: Session::of(server.backend.clone(), request),
        };
        if websocket {
            websocket::serve(up).await
        } else {
            super::spdy::serve(up).await
        }
    } else {
        respond(
            &mut stream,
            "400 Bad Request",
            "unable to upgrade: missing upgrade headers in request",
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_routes_and_queries() {
        let raw = b"GET /portforward/abc?port=80&port=81,82&x=%2F HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: v4.channel.k8s.io, v4.base64.channel.k8s.io\r\n\r\nrest";
        let (head, used) = parse_head(raw).unwrap().unwrap();
        assert_eq!(&raw[used..], b"rest");
        assert_eq!(head.path, "/portforward/abc");
        assert_eq!(head.query_values("port"), ["80", "81,82"]);
        assert_eq!(head.query_values("x"), ["/"]);
        assert_eq!(
            head.values("sec-websocket-protocol"),
            ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"]
        );
        assert_eq!(route(&head.path), Some(("portforward", "abc")));
        assert_eq!(route("/exec/"), None);
        assert_eq!(route("/other/x"), None);
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
    }
}
