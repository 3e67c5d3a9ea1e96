//! `httpGet` for probes and hooks: a small HTTP/1.1 client that behaves as the kubelet's Go
//! client does where a user can see it [pkg/probe/http/{http,request}.go; net/http]: the
//! request's header lines and their order, redirects followed to the same host only (up to 10),
//! at most 10 KiB of body read, 200-399 a success (3xx left unfollowed a warning), and Go's
//! error texts (`Get "http://10.88.0.5:8080/": dial tcp ...: connect: connection refused`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub(super) use super::http_request::{build_headers, canonical_key, first, request_head, Url};
use super::http_tls::{self, TlsStream, HTTP_RESPONSE_TO_HTTPS};
use super::messages::{http_status_failure, redirect_warning};
use super::net;
use super::{ErroredState, HookResult, HttpGet, ProbeResult, MAX_OUTPUT};
use crate::gofmt::quote;

/// Go's client stops after this many requests in one chain.
const MAX_REQUESTS: usize = 10;
const AWAITING_HEADERS: &str = "(Client.Timeout exceeded while awaiting headers)";
const READING_BODY: &str =
    "context deadline exceeded (Client.Timeout or context cancellation while reading body)";
const BROKEN: &str = "net/http: HTTP/1.x transport connection broken";
/// Longest status or header line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Which client: the prober's (`kube-probe`, compression off, no keep-alive) or the hook
/// runner's (`kube-lifecycle`, Go's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Client {
    Probe,
    Hook,
}

/// What one GET chain ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fetched {
    Response {
        status: u16,
        body: String,
    },
    /// The client returned an error (`Get "<url>": <cause>`).
    Failed(String),
    /// The response came but its body could not be read.
    BodyFailed(String),
}

/// One response as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// Why a round trip failed: before the response (wrapped as `Get "url": ...`) or in its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fail {
    Transport(String),
    Body(String),
}

/// GETs `get`, following redirects as the kubelet's RedirectChecker(false) allows.
pub(super) fn fetch(get: &HttpGet, client: Client, deadline: Option<Instant>) -> Fetched {
    let first_url = Url::of(get);
    let mut headers = build_headers(&get.headers, client);
    let user_referer = first(&headers, "Referer").map(str::to_string);
    let host_override = first(&headers, "Host")
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    let mut host = host_override.clone();
    let mut url = first_url.clone();
    let mut made = 0;
    loop {
        made += 1;
        let head = request_head(&url, host.as_deref(), &headers, client);
        let resp = match round_trip(&url, &head, deadline) {
            Ok(r) => r,
            Err(Fail::Transport(m)) => {
                return Fetched::Failed(format!("Get {}: {m}", quote(&url.to_string())))
            }
            Err(Fail::Body(m)) => return Fetched::BodyFailed(m),
        };
        let location = resp.location.clone().filter(|l| !l.is_empty());
        let (true, Some(location)) = (is_redirect(resp.status), location) else {
            return Fetched::Response {
                status: resp.status,
                body: String::from_utf8_lossy(&resp.body).into_owned(),
            };
        };
        let next = match url.join(&location) {
            Ok(next) => next,
            Err(e) => {
                return Fetched::Failed(format!(
                    "Get {}: failed to parse Location header {}: {e}",
                    quote(&url.to_string()),
                    quote(&location)
                ))
            }
        };
        if next.host != first_url.host {
            // http.ErrUseLastResponse: the redirect itself is the answer.
            return Fetched::Response {
                status: resp.status,
                body: String::from_utf8_lossy(&resp.body).into_owned(),
            };
        }
        if made >= MAX_REQUESTS {
            return Fetched::Failed(format!(
                "Get {}: stopped after 10 redirects",
                quote(&location)
            ));
        }
        let absolute = location.contains("://") || location.starts_with("//");
        // A relative Location keeps a Host header given by the user [net/http client.go].
        host = host_override.clone().filter(|_| !absolute);
        // refererForURL: the user's Referer, else the previous URL unless https -> http.
        let referer = match (&user_referer, url.https && !next.https) {
            (Some(r), _) => Some(r.clone()),
            (None, false) => Some(url.to_string()),
            (None, true) => None,
        };
        match referer {
            Some(r) => headers.insert("Referer".into(), vec![r]),
            None => headers.remove("Referer"),
        };
        url = next;
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The probe's verdict [pkg/probe/http/http.go DoHTTPProbe].
pub(super) fn probe(get: &HttpGet, timeout: Duration) -> ProbeResult {
    match fetch(get, Client::Probe, Some(Instant::now() + timeout)) {
        Fetched::Response { status, body } => match status {
            200..=299 => ProbeResult::Success,
            300..=399 => ProbeResult::Warning(redirect_warning(&body)),
            _ => ProbeResult::Failure(http_status_failure(status)),
        },
        Fetched::Failed(m) => ProbeResult::Failure(m),
        Fetched::BodyFailed(m) => ProbeResult::Errored {
            state: ErroredState::Failure,
            error: m,
        },
    }
}

/// The hook's verdict [pkg/kubelet/lifecycle/handlers.go runHTTPHandler]: any response will
/// do (the status is not looked at); an HTTPS hook answered over HTTP is retried over HTTP.
pub(super) fn hook(get: &HttpGet) -> HookResult {
    let error = match fetch(get, Client::Hook, None) {
        Fetched::Failed(e) => e,
        Fetched::Response { .. } | Fetched::BodyFailed(_) => {
            return HookResult::Done {
                http_fallback: None,
            }
        }
    };
    if get.scheme.eq_ignore_ascii_case("https") && error.ends_with(HTTP_RESPONSE_TO_HTTPS) {
        let mut plain = get.clone();
        plain.scheme = "http".into();
        plain
            .headers
            .retain(|(n, _)| canonical_key(n) != "Authorization");
        if !matches!(fetch(&plain, Client::Hook, None), Fetched::Failed(_)) {
            return HookResult::Done {
                http_fallback: Some(Url::of(get).authority),
            };
        }
    }
    HookResult::Failed {
        error,
        output: None,
    }
}

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => t.sock.tcp(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

fn set_timeouts(tcp: &TcpStream, deadline: Option<Instant>) {
    let t = deadline.map(net::remaining);
    if let Err(e) = tcp
        .set_read_timeout(t)
        .and_then(|_| tcp.set_write_timeout(t))
    {
        tracing::debug!(error = %e, "probe socket timeouts not set");
    }
}

/// One request on a new connection.
pub(super) fn round_trip(
    url: &Url,
    head: &[u8],
    deadline: Option<Instant>,
) -> Result<Response, Fail> {
    let dial_deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
    let tcp = net::dial(&url.host, url.port, dial_deadline).map_err(|e| {
        Fail::Transport(if e.timed_out {
            format!("{} {AWAITING_HEADERS}", e.message)
        } else {
            e.message
        })
    })?;
    set_timeouts(&tcp, deadline);
    let mut conn = if url.https {
        let tls = http_tls::handshake(tcp, &url.host).map_err(|e| {
            Fail::Transport(if e.io_timeout {
                format!("context deadline exceeded {AWAITING_HEADERS}")
            } else {
                e.message
            })
        })?;
        Conn::Tls(Box::new(tls))
    } else {
        Conn::Plain(tcp)
    };
    let describe = |conn: &Conn, e: &io::Error, op: &str| io_text(conn.tcp(), e, op);
    if let Err(e) = conn.write_all(head).and_then(|_| conn.flush()) {
        return Err(Fail::Transport(format!(
            "{BROKEN}: {}",
            describe(&conn, &e, "write")
        )));
    }
    let peer = conn.tcp().try_clone().ok();
    let mut reader = BufReader::new(conn);
    let header_error = |e: io::Error, peer: &Option<TcpStream>| {
        if is_timeout(&e) {
            return Fail::Transport(format!("context deadline exceeded {AWAITING_HEADERS}"));
        }
        match (e.kind(), peer) {
            (io::ErrorKind::UnexpectedEof, _) => {
                Fail::Transport(format!("{BROKEN}: unexpected EOF"))
            }
            (_, Some(tcp)) => Fail::Transport(io_text(tcp, &e, "read")),
            _ => Fail::Transport(e.to_string()),
        }
    };
    let (status, location, chunked, length) = loop {
        let line = match read_line(&mut reader) {
            Ok(Some(line)) => line,
            Ok(None) => return Err(Fail::Transport("EOF".into())),
            Err(e) => return Err(header_error(e, &peer)),
        };
        let status = parse_status_line(&line).map_err(Fail::Transport)?;
        let mut location = None;
        let (mut chunked, mut length) = (false, None);
        loop {
            let line = match read_line(&mut reader) {
                Ok(Some(l)) => l,
                Ok(None) => return Err(Fail::Transport(format!("{BROKEN}: unexpected EOF"))),
                Err(e) => return Err(header_error(e, &peer)),
            };
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(Fail::Transport(format!(
                    "{BROKEN}: malformed MIME header line: {line}"
                )));
            };
            let value = value.trim();
            match canonical_key(name.trim()).as_str() {
                "Location" => location = Some(value.to_string()),
                "Transfer-Encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "Content-Length" => length = value.parse::<u64>().ok(),
                _ => {}
            }
        }
        // 1xx answers other than 101 come before the real one.
        if !(100..200).contains(&status) || status == 101 {
            break (status, location, chunked, length);
        }
    };
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let body = if no_body {
        Vec::new()
    } else {
        read_body(&mut reader, chunked, length).map_err(|e| {
            Fail::Body(if is_timeout(&e) {
                READING_BODY.into()
            } else if e.kind() == io::ErrorKind::UnexpectedEof {
                "unexpected EOF".into()
            } else {
                match &peer {
                    Some(tcp) => io_text(tcp, &e, "read"),
                    None => e.to_string(),
                }
            })
        })?
    };
    Ok(Response {
        status,
        location,
        body,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Go's `read tcp 10.88.0.1:40000->10.88.0.5:8080: read: connection reset by peer`.
fn io_text(tcp: &TcpStream, e: &io::Error, op: &str) -> String {
    let cause = match e.raw_os_error() {
        Some(errno) => crate::container::runtime::errno_text(errno),
        None => e.to_string(),
    };
    match (tcp.local_addr(), tcp.peer_addr()) {
        (Ok(l), Ok(p)) => format!("{op} tcp {l}->{p}: {op}: {cause}"),
        _ => format!("{op} tcp: {cause}"),
    }
}

/// A CRLF- (or LF-) terminated line without its terminator; None at EOF before any byte.
pub(super) fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if line.len() >= MAX_LINE {
            return Err(io::Error::other("header line too long"));
        }
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// `HTTP/1.1 200 OK` -> 200, with net/http's errors for anything else.
pub(super) fn parse_status_line(line: &str) -> Result<u16, String> {
    let malformed = || format!("{BROKEN}: malformed HTTP response {}", quote(line));
    let (proto, rest) = line.split_once(' ').ok_or_else(malformed)?;
    if !proto.starts_with("HTTP/") {
        return Err(malformed());
    }
    let code = rest.split(' ').next().unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{BROKEN}: malformed HTTP status code {}",
            quote(code)
        ));
    }
    code.parse().map_err(|_| malformed())
}

/// At most [`MAX_OUTPUT`] bytes of the body: chunked, sized, or up to EOF.
pub(super) fn read_body(
    r: &mut impl BufRead,
    chunked: bool,
    length: Option<u64>,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if chunked {
        while body.len() < MAX_OUTPUT {
            let line = read_line(r)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::other("invalid byte in chunk length"))?;
            if size == 0 {
                break;
            }
            let want = size.min((MAX_OUTPUT - body.len()) as u64);
            read_exact_into(r, want, &mut body)?;
            if want < size {
                break;
            }
            read_line(r)?;
        }
        return Ok(body);
    }
    match length {
        Some(n) => read_exact_into(r, n.min(MAX_OUTPUT as u64), &mut body)?,
        None => {
            r.take(MAX_OUTPUT as u64).read_to_end(&mut body)?;
        }
    }
    Ok(body)
}

fn read_exact_into(r: &mut impl BufRead, n: u64, out: &mut Vec<u8>) -> io::Result<()> {
    let got = r.take(n).read_to_end(out)?;
    if (got as u64) < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
