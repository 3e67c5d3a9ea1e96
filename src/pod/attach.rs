//! The attach protocol between `peapod attach` and a pod's supervisor, as a CRI runtime's
//! attach socket carries it (conmon's: one socket, each message tagged with its stream).
//!
//! The supervisor listens on `<run dir>/attach.sock`, a `SOCK_SEQPACKET` Unix socket, so every
//! message keeps its boundaries and needs no length prefix: its first byte says what it is.
//! The client's first message is a [`Request`] (JSON); the supervisor answers [`Message::Ready`]
//! or [`Message::Refused`], then streams the container's output until the instance ends, when
//! it closes the connection. This module is pure: it encodes and decodes, it does no I/O.

use serde::{Deserialize, Serialize};

/// The socket's file name in the pod's run directory.
pub const SOCKET_FILE: &str = "attach.sock";
/// The largest message either side sends (a tag byte and up to 16 KiB of data).
pub const MAX_MESSAGE: usize = 1 + 16 * 1024;

/// What the client asks for, as the kubelet's attach request (PodAttachOptions) says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub container: String,
    /// The client will send stdin.
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// One message on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client, first: what it attaches to.
    Request(Request),
    /// Server: attached; output follows.
    Ready,
    /// Server: the attach cannot be made, and why.
    Refused(String),
    /// Server: the container wrote this on its stdout (all of a terminal's output).
    Stdout(Vec<u8>),
    /// Server: the container wrote this on its stderr.
    Stderr(Vec<u8>),
    /// Client: bytes for the container's stdin.
    Stdin(Vec<u8>),
    /// Client: its stdin ended.
    StdinClosed,
    /// Client: its terminal's size, columns and rows.
    Resize { cols: u16, rows: u16 },
}

const TAG_REQUEST: u8 = b'Q';
const TAG_READY: u8 = b'R';
const TAG_REFUSED: u8 = b'E';
const TAG_STDOUT: u8 = b'1';
const TAG_STDERR: u8 = b'2';
const TAG_STDIN: u8 = b'0';
const TAG_STDIN_CLOSED: u8 = b'C';
const TAG_RESIZE: u8 = b'W';

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let with = |tag: u8, data: &[u8]| {
            let mut out = Vec::with_capacity(1 + data.len());
            out.push(tag);
            out.extend_from_slice(data);
            out
        };
        match self {
            Message::Request(r) => with(TAG_REQUEST, &serde_json::to_vec(r).unwrap_or_default()),
            Message::Ready => vec![TAG_READY],
            Message::Refused(why) => with(TAG_REFUSED, why.as_bytes()),
            Message::Stdout(d) => with(TAG_STDOUT, d),
            Message::Stderr(d) => with(TAG_STDERR, d),
            Message::Stdin(d) => with(TAG_STDIN, d),
            Message::StdinClosed => vec![TAG_STDIN_CLOSED],
            Message::Resize { cols, rows } => {
                let mut out = vec![TAG_RESIZE];
                out.extend_from_slice(&cols.to_le_bytes());
                out.extend_from_slice(&rows.to_le_bytes());
                out
            }
        }
    }

    /// None for a message this version does not know (ignored by the reader).
    pub fn decode(raw: &[u8]) -> Option<Message> {
        let (&tag, data) = raw.split_first()?;
        Some(match tag {
            TAG_REQUEST => Message::Request(serde_json::from_slice(data).ok()?),
            TAG_READY => Message::Ready,
            TAG_REFUSED => Message::Refused(String::from_utf8_lossy(data).into_owned()),
            TAG_STDOUT => Message::Stdout(data.to_vec()),
            TAG_STDERR => Message::Stderr(data.to_vec()),
            TAG_STDIN => Message::Stdin(data.to_vec()),
            TAG_STDIN_CLOSED => Message::StdinClosed,
            TAG_RESIZE => {
                let b: [u8; 4] = data.try_into().ok()?;
                Message::Resize {
                    cols: u16::from_le_bytes([b[0], b[1]]),
                    rows: u16::from_le_bytes([b[2], b[3]]),
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_decodes_to_itself() {
        for m in [
            Message::Request(Request {
                container: "c".into(),
                stdin: true,
                stdout: true,
                stderr: true,
            }),
            Message::Ready,
            Message::Refused("container \"x\" is not running".into()),
            Message::Stdout(b"out\r\n".to_vec()),
            Message::Stderr(Vec::new()),
            Message::Stdin(b"ls\n".to_vec()),
            Message::StdinClosed,
            Message::Resize {
                cols: 132,
                rows: 43,
            },
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
    }

    #[test]
    fn unknown_and_malformed_messages_are_none() {
        assert_eq!(Message::decode(b""), None);
        assert_eq!(Message::decode(b"?x"), None);
        assert_eq!(Message::decode(b"W\x01\x02\x03"), None);
        assert_eq!(Message::decode(b"Q{not json"), None);
    }

    #[test]
    fn the_request_is_json() {
        let r = Request {
            container: "shell".into(),
            stdin: true,
            stdout: true,
            stderr: false,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"container":"shell","stdin":true,"stdout":true,"stderr":false}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
    }
}
