//! HTTP/2 frames (RFC 9113 §4, §6), the few a unary gRPC call over cleartext needs: the
//! client preface, SETTINGS and its ACK, HEADERS/CONTINUATION, DATA, PING ACK, RST_STREAM and
//! GOAWAY. Header blocks are HPACK ([`super::hpack`]).

use std::io::{self, Read, Write};

/// The client connection preface (§3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// SETTINGS_MAX_FRAME_SIZE's initial value: we advertise nothing larger.
pub const MAX_FRAME: usize = 16_384;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> Self {
        Frame {
            kind,
            flags,
            stream,
            payload,
        }
    }

    /// The 9-byte header and the payload.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len() as u32;
        let mut out = Vec::with_capacity(9 + self.payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The payload of a DATA or HEADERS frame without its padding and priority fields.
    pub fn content(&self) -> io::Result<&[u8]> {
        let mut p = &self.payload[..];
        let mut pad = 0usize;
        if matches!(self.kind, DATA | HEADERS) && self.has(PADDED) {
            let (&n, rest) = p
                .split_first()
                .ok_or_else(|| protocol("empty padded frame"))?;
            pad = n.into();
            p = rest;
        }
        if self.kind == HEADERS && self.has(PRIORITY) {
            p = p
                .get(5..)
                .ok_or_else(|| protocol("short priority fields"))?;
        }
        p.get(
            ..p.len()
                .checked_sub(pad)
                .ok_or_else(|| protocol("padding too long"))?,
        )
        .ok_or_else(|| protocol("padding too long"))
    }
}

pub fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("http2: {what}"))
}

/// Reads one frame; a frame larger than [`MAX_FRAME`] is a protocol error.
pub fn read_frame(r: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        return Err(protocol("frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

pub fn write_frames(w: &mut impl Write, frames: &[Frame]) -> io::Result<()> {
    let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
    w.write_all(&bytes)?;
    w.flush()
}

/// RST_STREAM error codes (§7) as grpc-go maps them to gRPC codes (http2ErrConvTab).
pub fn reset_code_to_grpc(code: u32) -> &'static str {
    match code {
        0x3 | 0xb => "ResourceExhausted", // FLOW_CONTROL_ERROR, ENHANCE_YOUR_CALM
        0x7 => "Unavailable",             // REFUSED_STREAM
        0x8 => "Canceled",                // CANCEL
        0xc => "PermissionDenied",        // INADEQUATE_SECURITY
        _ => "Internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_strip_padding() {
        let f = Frame::new(HEADERS, END_HEADERS | PADDED | PRIORITY, 1, {
            let mut p = vec![2u8];
            p.extend([0, 0, 0, 0, 16]);
            p.extend(b"block");
            p.extend([0, 0]);
            p
        });
        let bytes = f.encode();
        assert_eq!(&bytes[..9], &[0, 0, 13, 1, 0x2c, 0, 0, 0, 1]);
        let back = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.content().unwrap(), b"block");
        let bad = Frame::new(DATA, PADDED, 1, vec![9, 1]);
        assert!(bad.content().is_err());
        let mut huge = Frame::new(DATA, 0, 1, vec![0; MAX_FRAME + 1]).encode();
        assert!(read_frame(&mut &huge[..]).is_err());
        huge.truncate(5);
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
