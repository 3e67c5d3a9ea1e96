//! The servers the probes meet on loopback, each on its own port, a thread per connection:
//! HTTP and HTTPS (rustls, a self-signed certificate) answering by path, with `/flip` healthy
//! for its first two requests and failing after, and a gRPC health server over h2c.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

pub const SECOND: Duration = Duration::from_secs(1);

/// How many `/flip` requests are answered 200 before it answers 500.
pub const FLIP_HEALTHY: usize = 2;

/// A self-signed P-256 certificate for CN=probe-test (openssl req -x509, valid until 2126):
/// the probe does not verify it, as the kubelet does not.
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASegAwIBAgIUMbiYE8PkJn8nTutUoB5vjFBb07MwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKcHJvYmUtdGVzdDAgFw0yNjExMzAxNTQ1MTdaGA8yMTI2MTEw
NjE1NDUxN1owFTETMBEGA1UEAwwKcHJvYmUtdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABLg9VbLYWkV7uzzXLUm+pW2U6Wn/Y3fIHU9jtUYrW+MReAHX2lKL
3XM7Gi9JfOrRZ04f9xnn1uVjNRthwqe8fQ6jUzBRMB0GA1UdDgQWBBQTlIDyFyZ1
GJTvo/Rj+ifMDO0cdjAfBgNVHSMEGDAWgBQTlIDyFyZ1GJTvo/Rj+ifMDO0cdjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCbDO9jAq23GthA9WEw
X2G8fC4snzNomuGmoLxj9RfscwIhAJpvYPjJFChy0gEBe1jz6tlufXfjiSQiw53g
2CwJb3Gc
-----END CERTIFICATE-----
";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgaZNd6j3AqtfLj6p2
oL+X58V0XFbQ4VJRiANUG3DnFkyhRANCAAS4PVWy2FpFe7s81y1JvqVtlOlp/2N3
yB1PY7VGK1vjEXgB19pSi91zOxovSXzq0WdOH/cZ59blYzUbYcKnvH0O
-----END PRIVATE KEY-----
";

/// An HTTP or HTTPS server; every request head it read is sent to `heads`.
pub struct HttpServer {
    pub port: u16,
    pub heads: mpsc::Receiver<String>,
}

impl HttpServer {
    pub fn plain() -> Self {
        Self::start(None)
    }

    pub fn tls() -> Self {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let provider = peapod::tls::provider();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        Self::start(Some(Arc::new(config)))
    }

    fn start(tls: Option<Arc<ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, heads) = mpsc::channel();
        let flips = Arc::new(AtomicUsize::new(0));
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (tx, flips, tls) = (tx.clone(), flips.clone(), tls.clone());
                thread::spawn(move || match tls {
                    None => serve(conn, port, &tx, &flips),
                    Some(config) => {
                        let Ok(session) = ServerConnection::new(config) else {
                            return;
                        };
                        serve(StreamOwned::new(session, conn), port, &tx, &flips);
                    }
                });
            }
        });
        HttpServer { port, heads }
    }
}

fn serve(
    mut conn: impl Read + Write,
    port: u16,
    heads: &mpsc::Sender<String>,
    flips: &AtomicUsize,
) {
    let mut head = String::new();
    {
        let mut reader = BufReader::new(&mut conn);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
    }
    let _ = heads.send(head.clone());
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let answer = match path.as_str() {
        "/ok" => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
        "/fail" => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nsad!".into(),
        "/flip" if flips.fetch_add(1, Ordering::SeqCst) < FLIP_HEALTHY => {
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into()
        }
        "/flip" => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".into(),
        "/redirect" => "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".into(),
        "/redirect-fail" => "HTTP/1.1 301 Moved\r\nLocation: /fail\r\n\r\n".into(),
        "/loop" => "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".into(),
        "/away" => format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:{port}/ok\r\nContent-Length: 5\r\n\r\nmoved"
        ),
        "/nocontent" => "HTTP/1.1 204 No Content\r\n\r\n".into(),
        "/chunked503" => {
            "HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n".into()
        }
        "/big" => format!("HTTP/1.0 200 OK\r\n\r\n{}", "x".repeat(100_000)),
        "/slow" => {
            thread::sleep(3 * SECOND);
            "HTTP/1.1 200 OK\r\n\r\n".into()
        }
        "/garbage" => "garbage\r\n\r\n".into(),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
    };
    let _ = conn.write_all(answer.as_bytes()).and_then(|_| conn.flush());
}

/// A port nothing listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gRPC health server over h2c. The service name picks the answer: "" SERVING, "down"
/// NOT_SERVING, "missing" NotFound, "slow" none at all, anything else Unimplemented. Its
/// response headers use the dynamic table and a Huffman-coded value, as real servers' do.
pub fn grpc_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || grpc_conn(conn));
        }
    });
    port
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

fn read_frame(conn: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    conn.read_exact(&mut payload).ok()?;
    Some((head[3], head[4], payload))
}

/// A literal header field without indexing, new name, raw strings (RFC 7541 §6.2.2).
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend(name.as_bytes());
    out.push(value.len() as u8);
    out.extend(value.as_bytes());
    out
}

fn grpc_conn(mut conn: TcpStream) {
    let mut preface = [0u8; 24];
    if conn.read_exact(&mut preface).is_err() {
        return;
    }
    // Our SETTINGS, a connection WINDOW_UPDATE and a PING, as grpc-go's server sends them.
    let mut hello = frame(4, 0, 0, &[0, 5, 0, 0, 0x40, 0]);
    hello.extend(frame(8, 0, 0, &[0, 0, 0xff, 0xff]));
    hello.extend(frame(6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
    let _ = conn.write_all(&hello);
    let mut data = Vec::new();
    while let Some((kind, flags, payload)) = read_frame(&mut conn) {
        if kind == 0 {
            data.extend(payload);
            if flags & 1 != 0 {
                break;
            }
        }
    }
    // HealthCheckRequest: [0 flag][len][0x0a len service].
    let service = String::from_utf8_lossy(data.get(7..).unwrap_or_default()).into_owned();
    if service == "slow" {
        thread::sleep(3 * SECOND);
        return;
    }
    // :status 200 (static 8); content-type with incremental indexing (dynamic 62); a
    // cache-control Huffman-coded `no-cache` (RFC 7541 C.4.2).
    let mut headers = vec![0x88, 0x5f, 16];
    headers.extend(b"application/grpc");
    headers.extend([0x0f, 0x09, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]);
    let (status, trailers): (u8, Vec<u8>) = match service.as_str() {
        "" => (1, literal("grpc-status", "0")),
        "down" => (2, literal("grpc-status", "0")),
        "missing" => (
            0,
            [
                literal("grpc-status", "5"),
                literal("grpc-message", "unknown%20service"),
            ]
            .concat(),
        ),
        _ => (
            0,
            [literal("grpc-status", "12"), literal("grpc-message", "no")].concat(),
        ),
    };
    let mut out = frame(1, 4, 1, &headers);
    if trailers.starts_with(&literal("grpc-status", "0")) {
        out.extend(frame(0, 0, 1, &[0, 0, 0, 0, 2, 0x08, status]));
    }
    // The trailers refer back to the dynamic entry (index 62).
    let mut block = vec![0xbe];
    block.extend(trailers);
    out.extend(frame(1, 4 | 1, 1, &block));
    let _ = conn.write_all(&out);
    // Drain until the client closes.
    while read_frame(&mut conn).is_some() {}
}
