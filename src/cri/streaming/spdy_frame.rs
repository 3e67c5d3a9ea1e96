//! SPDY/3.1 framing as the kubelet's streams use it (moby/spdystream, draft-mbelshe-httpbis-spdy
//! section 2): control frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
//! HEADERS, WINDOW_UPDATE) and data frames, and the name/value header blocks, compressed with one
//! zlib stream per direction primed with the SPDY/3 dictionary and flushed (Z_SYNC_FLUSH) after
//! each block. No crate implements SPDY today, so it is written here; flate2's zlib-rs backend
//! provides the preset dictionary.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY/3 header-compression dictionary (the spec's, 1423 bytes).
pub const DICTIONARY: &[u8] = include_bytes!("spdy3.dict");

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

/// The largest frame accepted (24-bit length; spdystream's buffers are far smaller).
pub const MAX_FRAME: usize = 1 << 24;

/// A frame as read: the 8-byte header split out, the payload whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Control {
        kind: u16,
        flags: u8,
        data: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("SPDY frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("SPDY version {0} is not supported (3 is)")]
    Version(u16),
    #[error("malformed SPDY {0}")]
    Malformed(&'static str),
    #[error("SPDY header block: {0}")]
    Compression(String),
}

/// The frame at the start of `buf` and its length on the wire; None while incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let flags = buf[4];
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len >= MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let data = buf[8..8 + len].to_vec();
    let frame = if word & 0x8000_0000 != 0 {
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        Frame::Control {
            kind: (word & 0xffff) as u16,
            flags,
            data,
        }
    } else {
        Frame::Data {
            stream: word & 0x7fff_ffff,
            flags,
            data,
        }
    };
    Ok(Some((frame, 8 + len)))
}

/// The next frame from `rd`, `buf` holding what was read past the frames returned so far;
/// None at the end of the connection.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<Frame>, FrameError> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some((frame, used)) = parse(buf)? {
            buf.drain(..used);
            return Ok(Some(frame));
        }
        let mut chunk = [0u8; 16 * 1024];
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header(first: u32, flags: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&first.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out
}

pub fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut out = header(
        0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind),
        flags,
        data.len(),
    );
    out.extend_from_slice(data);
    out
}

pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(stream & 0x7fff_ffff, flags, payload.len());
    out.extend_from_slice(payload);
    out
}

/// The first 31-bit big-endian word of a control frame's payload (its stream id).
pub fn stream_id(data: &[u8]) -> Result<u32, FrameError> {
    let b = data.get(..4).ok_or(FrameError::Malformed("stream id"))?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
}

/// Headers as pairs, names lowercase as SPDY sends them; a NUL-joined value is several.
pub type Headers = Vec<(String, String)>;

pub fn header_value<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One direction's header compression.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::fast(), true);
        // A fresh stream: the dictionary can only fail on a stream already written to.
        let _ = c.set_dictionary(DICTIONARY);
        Deflater(c)
    }
}

impl Deflater {
    /// The compressed block of `headers`.
    pub fn block(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, FrameError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for part in [name.to_ascii_lowercase().as_bytes(), value.as_bytes()] {
                raw.extend_from_slice(&(part.len() as u32).to_be_bytes());
                raw.extend_from_slice(part);
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.0.total_in();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let consumed = (self.0.total_in() - start) as usize;
            self.0
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            // Flushed once all input is taken and the output buffer was not filled up.
            if (self.0.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The other direction's header decompression.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(true))
    }
}

impl Inflater {
    /// The headers of one compressed block.
    pub fn block(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let zerr = |e: flate2::DecompressError| FrameError::Compression(e.to_string());
        let mut raw = Vec::with_capacity(compressed.len() * 4 + 64);
        let start = self.0.total_in();
        loop {
            let consumed = (self.0.total_in() - start) as usize;
            if raw.capacity() - raw.len() < 256 {
                raw.reserve(1024);
            }
            match self
                .0
                .decompress_vec(&compressed[consumed..], &mut raw, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    let done = (self.0.total_in() - start) as usize == compressed.len();
                    if done && raw.len() < raw.capacity() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(DICTIONARY).map_err(zerr)?;
                }
                Err(e) => return Err(zerr(e)),
            }
        }
        parse_block(&raw)
    }
}

fn parse_block(raw: &[u8]) -> Result<Headers, FrameError> {
    let mut at = 0usize;
    let word = |at: &mut usize| -> Result<usize, FrameError> {
        let b = raw
            .get(*at..*at + 4)
            .ok_or(FrameError::Malformed("header block"))?;
        *at += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(&mut at)?;
    let mut headers = Vec::new();
    for _ in 0..count {
        let field = |at: &mut usize| -> Result<String, FrameError> {
            let len = word(at)?;
            let bytes = raw
                .get(*at..*at + len)
                .ok_or(FrameError::Malformed("header block"))?;
            *at += len;
            Ok(String::from_utf8_lossy(bytes).into_owned())
        };
        let name = field(&mut at)?.to_ascii_lowercase();
        let value = field(&mut at)?;
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_string()));
        }
    }
    Ok(headers)
}

/// SYN_STREAM's payload: the stream id, then the header block after 10 bytes.
pub fn syn_stream(data: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    let id = stream_id(data)?;
    let block = data.get(10..).ok_or(FrameError::Malformed("SYN_STREAM"))?;
    Ok((id, block))
}

pub fn syn_reply(stream: u32, block: &[u8]) -> Vec<u8> {
    let mut payload = stream.to_be_bytes().to_vec();
    payload.extend_from_slice(block);
    control(SYN_REPLY, 0, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_specs() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(DICTIONARY.ends_with(b",enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_through_shared_streams() {
        let (mut d, mut i) = (Deflater::default(), Inflater::default());
        for n in 0..3 {
            let port = n.to_string();
            let block = d
                .block(&[("streamType", "data"), ("port", &port), ("requestID", "7")])
                .unwrap();
            let h = i.block(&block).unwrap();
            assert_eq!(header_value(&h, "streamtype"), Some("data"));
            assert_eq!(header_value(&h, "port"), Some(port.as_str()));
            assert_eq!(header_value(&h, "requestid"), Some("7"));
        }
        // Go's zlib writer primes the same way: an empty block still decodes.
        let block = d.block(&[]).unwrap();
        assert!(i.block(&block).unwrap().is_empty());
    }

    #[test]
    fn frames_parse_back() {
        let f = data(5, FLAG_FIN, b"abc");
        assert_eq!(
            parse(&f).unwrap(),
            Some((
                Frame::Data {
                    stream: 5,
                    flags: FLAG_FIN,
                    data: b"abc".to_vec()
                },
                11
            ))
        );
        assert_eq!(parse(&f[..10]).unwrap(), None);
        let c = control(PING, 0, &7u32.to_be_bytes());
        let (frame, _) = parse(&c).unwrap().unwrap();
        assert_eq!(
            frame,
            Frame::Control {
                kind: PING,
                flags: 0,
                data: 7u32.to_be_bytes().to_vec()
            }
        );
        let mut bad = c.clone();
        bad[1] = 2;
        assert_eq!(parse(&bad), Err(FrameError::Version(2)));
    }
}
