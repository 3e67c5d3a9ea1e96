//! The `grpc` probe: one grpc.health.v1.Health/Check over cleartext HTTP/2, worded as the
//! kubelet's prober [pkg/probe/grpc/grpc.go]: the connection is retried until the timeout
//! (grpc-go's `WithBlock`), then the call gets what is left of it; SERVING is a success.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::h2::{self, Frame};
use super::hpack::{self, Decoder};
use super::messages::{
    grpc_connect_timeout, grpc_rpc_failed, grpc_rpc_timeout, grpc_unhealthy, grpc_unimplemented,
};
use super::net::{self, join_host_port};
use super::{ProbeResult, KUBE_VERSION};

pub const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// grpc-go's first reconnect back-off.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// The stream of our only call.
const STREAM: u32 = 1;
/// gRPC status codes by number (grpc-go codes.Code.String()).
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const UNIMPLEMENTED: u32 = 12;
const DEADLINE_EXCEEDED: u32 = 4;

/// HealthCheckResponse.ServingStatus names.
fn serving_status_name(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// Runs the probe.
pub(super) fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> ProbeResult {
    let deadline = Instant::now() + timeout;
    let addr = join_host_port(host, port);
    let mut conn = loop {
        match connect(host, port, deadline) {
            Ok(c) => break c,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "grpc probe connection failed");
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return ProbeResult::Failure(grpc_connect_timeout(&addr, timeout));
                }
                std::thread::sleep(RECONNECT_BACKOFF.min(left));
            }
        }
    };
    match call(&mut conn, &addr, service, deadline) {
        Ok(Answer::Status(code, _)) if code == DEADLINE_EXCEEDED => {
            ProbeResult::Failure(grpc_rpc_timeout(timeout))
        }
        Ok(Answer::Status(code, message)) if code == UNIMPLEMENTED => {
            ProbeResult::Failure(grpc_unimplemented(&message))
        }
        Ok(Answer::Status(code, message)) => {
            let name = CODES
                .get(code as usize)
                .map_or_else(|| format!("Code({code})"), |c| c.to_string());
            ProbeResult::Failure(grpc_rpc_failed(&name, &message))
        }
        Ok(Answer::Serving(1)) => ProbeResult::Success,
        Ok(Answer::Serving(other)) => {
            ProbeResult::Failure(grpc_unhealthy(&serving_status_name(other)))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            ProbeResult::Failure(grpc_rpc_timeout(timeout))
        }
        Err(e) => ProbeResult::Failure(grpc_rpc_failed(
            "Unavailable",
            &format!("error reading from server: {e}"),
        )),
    }
}

/// The result of a call that got an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// grpc-status 0 and the response's `status` field.
    Serving(u64),
    /// A non-zero grpc-status (or one derived from the HTTP status) and its message.
    Status(u32, String),
}

/// A ready connection: preface and SETTINGS exchanged (grpc-go's READY).
fn connect(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let mut sock = net::dial(host, port, deadline).map_err(|e| io::Error::other(e.message))?;
    sock.set_read_timeout(Some(net::remaining(deadline)))?;
    sock.set_write_timeout(Some(net::remaining(deadline)))?;
    sock.write_all(h2::PREFACE)?;
    h2::write_frames(&mut sock, &[Frame::new(h2::SETTINGS, 0, 0, Vec::new())])?;
    loop {
        let f = h2::read_frame(&mut sock)?;
        if f.kind == h2::SETTINGS && !f.has(h2::ACK) {
            h2::write_frames(
                &mut sock,
                &[Frame::new(h2::SETTINGS, h2::ACK, 0, Vec::new())],
            )?;
            return Ok(sock);
        }
    }
}

/// The HEADERS and DATA of the Check request.
pub(super) fn request_frames(authority: &str, service: &str, timeout: Duration) -> Vec<Frame> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", HEALTH_CHECK_PATH),
        (":authority", authority),
        ("content-type", "application/grpc"),
        (
            "user-agent",
            &format!("kube-probe/{KUBE_VERSION} grpc-rust/peapod"),
        ),
        ("te", "trailers"),
        ("grpc-timeout", &format!("{}m", timeout.as_millis().max(1))),
    ] {
        hpack::encode_field(&mut block, name, value);
    }
    vec![
        Frame::new(h2::HEADERS, h2::END_HEADERS, STREAM, block),
        Frame::new(
            h2::DATA,
            h2::END_STREAM,
            STREAM,
            grpc_message(&encode_request(service)),
        ),
    ]
}

/// HealthCheckRequest { string service = 1; } in protobuf.
pub(super) fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a);
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// The gRPC length-prefixed message: uncompressed flag, 4-byte length.
pub(super) fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// HealthCheckResponse's `status` (field 1), skipping unknown fields; 0 when absent.
pub(super) fn decode_status(mut msg: &[u8]) -> Option<u64> {
    let mut status = 0;
    while !msg.is_empty() {
        let key = get_varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut msg)?,
            (_, 0) => {
                get_varint(&mut msg)?;
            }
            (_, 1) => msg = msg.get(8..)?,
            (_, 2) => {
                let len = usize::try_from(get_varint(&mut msg)?).ok()?;
                msg = msg.get(len..)?;
            }
            (_, 5) => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

/// Sends the request and reads the answer of stream 1.
fn call(
    sock: &mut TcpStream,
    authority: &str,
    service: &str,
    deadline: Instant,
) -> io::Result<Answer> {
    sock.set_read_timeout(Some(net::remaining(deadline)))?;
    h2::write_frames(
        sock,
        &request_frames(authority, service, net::remaining(deadline)),
    )?;
    let mut decoder = Decoder::default();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut block: Vec<u8> = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut stream_ended = false;
    loop {
        let f = h2::read_frame(sock)?;
        match f.kind {
            h2::SETTINGS if !f.has(h2::ACK) => {
                h2::write_frames(sock, &[Frame::new(h2::SETTINGS, h2::ACK, 0, Vec::new())])?
            }
            h2::PING if !f.has(h2::ACK) => {
                h2::write_frames(sock, &[Frame::new(h2::PING, h2::ACK, 0, f.payload.clone())])?
            }
            h2::GOAWAY => return Err(io::Error::other("the server sent GOAWAY")),
            h2::RST_STREAM if f.stream == STREAM => {
                let code = f
                    .payload
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                let name = h2::reset_code_to_grpc(code);
                let number = CODES.iter().position(|c| *c == name).unwrap_or(13) as u32;
                return Ok(Answer::Status(
                    number,
                    format!("stream terminated by RST_STREAM with error code: {code}"),
                ));
            }
            h2::HEADERS | h2::CONTINUATION if f.stream == STREAM => {
                if f.kind == h2::HEADERS {
                    stream_ended = f.has(h2::END_STREAM);
                }
                block.extend_from_slice(f.content()?);
                if f.has(h2::END_HEADERS) {
                    let decoded = decoder
                        .decode(&block)
                        .map_err(|e| h2::protocol(&e.to_string()))?;
                    fields.extend(decoded);
                    block.clear();
                    if stream_ended {
                        return Ok(answer(&fields, &data));
                    }
                }
            }
            h2::DATA if f.stream == STREAM => {
                data.extend_from_slice(f.content()?);
                if f.has(h2::END_STREAM) {
                    return Ok(answer(&fields, &data));
                }
            }
            _ => {}
        }
    }
}

/// The answer from the response's headers, trailers and message.
pub(super) fn answer(fields: &[(String, String)], data: &[u8]) -> Answer {
    let get = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(status) = get(":status").filter(|s| *s != "200") {
        return Answer::Status(
            http_status_to_code(status),
            format!("unexpected HTTP status code received from server: {status}"),
        );
    }
    let Some(code) = get("grpc-status") else {
        return Answer::Status(
            13,
            "server closed the stream without sending trailers".into(),
        );
    };
    let code: u32 = code.parse().unwrap_or(2);
    if code != 0 {
        return Answer::Status(
            code,
            percent_decode(get("grpc-message").unwrap_or_default()),
        );
    }
    let status = data
        .get(5..)
        .filter(|_| data.first() == Some(&0))
        .and_then(decode_status);
    match status {
        Some(s) => Answer::Serving(s),
        None => Answer::Status(13, "failed to unmarshal the response".into()),
    }
}

/// grpc-go's HTTP-status mapping for a non-200 answer (doc/http-grpc-status-mapping.md).
fn http_status_to_code(status: &str) -> u32 {
    match status {
        "400" => 13,
        "401" => 16,
        "403" => 7,
        "404" => 12,
        "429" | "502" | "503" | "504" => 14,
        _ => 2,
    }
}

/// grpc-message is percent-encoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_health_check_message() {
        assert_eq!(encode_request(""), Vec::<u8>::new());
        assert_eq!(encode_request("db"), vec![0x0a, 2, b'd', b'b']);
        assert_eq!(
            grpc_message(&[0x0a, 1, b'x']),
            vec![0, 0, 0, 0, 3, 0x0a, 1, b'x']
        );
        let frames = request_frames("10.0.0.1:9000", "db", Duration::from_secs(1));
        let fields = Decoder::default().decode(&frames[0].payload).unwrap();
        assert!(fields.contains(&(":path".into(), HEALTH_CHECK_PATH.into())));
        assert!(fields.contains(&(":authority".into(), "10.0.0.1:9000".into())));
        assert!(fields.contains(&("grpc-timeout".into(), "1000m".into())));
        assert!(frames[1].has(h2::END_STREAM));
    }

    #[test]
    fn answers_from_trailers_and_messages() {
        let ok = |extra: &[(&str, &str)]| {
            let mut f = vec![(":status".to_string(), "200".to_string())];
            f.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
            f
        };
        let serving = grpc_message(&[0x08, 1]);
        assert_eq!(
            answer(&ok(&[("grpc-status", "0")]), &serving),
            Answer::Serving(1)
        );
        assert_eq!(
            answer(&ok(&[("grpc-status", "0")]), &grpc_message(&[])),
            Answer::Serving(0)
        );
        assert_eq!(
            answer(
                &ok(&[("grpc-status", "5"), ("grpc-message", "unknown%20service")]),
                &[]
            ),
            Answer::Status(5, "unknown service".into())
        );
        assert_eq!(
            answer(&ok(&[]), &serving),
            Answer::Status(
                13,
                "server closed the stream without sending trailers".into()
            )
        );
        assert_eq!(
            answer(&[(":status".into(), "404".into())], &[]),
            Answer::Status(
                12,
                "unexpected HTTP status code received from server: 404".into()
            )
        );
        // Unknown fields are skipped.
        assert_eq!(decode_status(&[0x12, 1, b'x', 0x08, 2]), Some(2));
        assert_eq!(decode_status(&[0x08]), None);
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(serving_status_name(9), "9");
    }
}
