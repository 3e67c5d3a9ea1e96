//! HPACK (RFC 7541), as much as one gRPC health check needs: an encoder that writes literal
//! fields (no dynamic table, no Huffman: always valid, and our request is a few hundred bytes),
//! and a complete decoder for the server's response headers and trailers, which may use the
//! dynamic table and Huffman-coded strings (grpc-go does both).

use std::collections::VecDeque;

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Code lengths of the Huffman code (RFC 7541 Appendix B), symbols 0..=255 then EOS. The
/// code is canonical (codes of one length are consecutive, ordered by symbol), so the
/// lengths alone define it.
const HUFFMAN_LEN: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// A malformed header block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hpack: {0}")]
pub struct HpackError(pub &'static str);

/// (symbol, code, length) of every symbol, in canonical order (length, then symbol).
fn canonical_codes() -> Vec<(u16, u32, u8)> {
    let mut symbols: Vec<u16> = (0..257).collect();
    symbols.sort_by_key(|&s| (HUFFMAN_LEN[s as usize], s));
    let mut out = Vec::with_capacity(257);
    let (mut code, mut prev_len) = (0u32, 0u8);
    for s in symbols {
        let len = HUFFMAN_LEN[s as usize];
        if !out.is_empty() {
            code = (code + 1) << (len - prev_len);
        } else {
            code <<= len;
        }
        out.push((s, code, len));
        prev_len = len;
    }
    out
}

/// Decodes a Huffman-coded string: the padding must be at most 7 bits of the EOS prefix.
pub fn huffman_decode(data: &[u8]) -> Result<Vec<u8>, HpackError> {
    // Canonical decoding: per length, the first code and where its symbols start.
    let codes = canonical_codes();
    let mut first_code = [0u32; 31];
    let mut first_index = [0usize; 31];
    let mut count = [0usize; 31];
    for (i, &(_, code, len)) in codes.iter().enumerate() {
        let l = len as usize;
        if count[l] == 0 {
            first_code[l] = code;
            first_index[l] = i;
        }
        count[l] += 1;
    }
    let mut out = Vec::with_capacity(data.len() * 8 / 5);
    let (mut acc, mut len) = (0u32, 0usize);
    for byte in data {
        for bit in (0..8).rev() {
            acc = (acc << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if count[len] > 0 && acc >= first_code[len] && acc - first_code[len] < count[len] as u32
            {
                let symbol = codes[first_index[len] + (acc - first_code[len]) as usize].0;
                if symbol == 256 {
                    return Err(HpackError("EOS in a Huffman string"));
                }
                out.push(symbol as u8);
                acc = 0;
                len = 0;
            } else if len >= 30 {
                return Err(HpackError("invalid Huffman code"));
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
    if len > 7 || acc != (1u32 << len) - 1 {
        return Err(HpackError("invalid Huffman padding"));
    }
    Ok(out)
}

/// Encodes `data` with the Huffman code (tests: peers that use it).
#[cfg(test)]
pub fn huffman_encode(data: &[u8]) -> Vec<u8> {
    let mut table = [(0u32, 0u8); 257];
    for (s, code, len) in canonical_codes() {
        table[s as usize] = (code, len);
    }
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in data {
        let (code, len) = table[b as usize];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}

/// Appends an HPACK integer with an `n`-bit prefix whose high bits are `flags` (§5.1).
pub fn encode_int(out: &mut Vec<u8>, flags: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// Appends a literal field without indexing (§6.2.2), naming it by a static index when one has
/// that name; strings are not Huffman-coded.
pub fn encode_field(out: &mut Vec<u8>, name: &str, value: &str) {
    match STATIC.iter().position(|(n, _)| *n == name) {
        Some(i) => encode_int(out, 0x00, 4, i + 1),
        None => {
            out.push(0x00);
            encode_string(out, name.as_bytes());
        }
    }
    encode_string(out, value.as_bytes());
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// The decoding side of one connection: the dynamic table survives across header blocks.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<(String, String)>,
    size: usize,
    max_size: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            // SETTINGS_HEADER_TABLE_SIZE default (§6.5.2 of RFC 9113).
            max_size: 4096,
        }
    }
}

impl Decoder {
    /// Decodes one complete header block into (name, value) pairs.
    pub fn decode(&mut self, mut block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
        let mut fields = Vec::new();
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let (index, rest) = decode_int(block, 7)?;
                block = rest;
                fields.push(self.lookup(index)?);
            } else if first & 0xc0 == 0x40 {
                // Literal with incremental indexing (§6.2.1).
                let (field, rest) = self.literal(block, 6)?;
                block = rest;
                self.insert(field.clone());
                fields.push(field);
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                let (size, rest) = decode_int(block, 5)?;
                block = rest;
                if size > 4096 {
                    return Err(HpackError("table size update over the limit"));
                }
                self.max_size = size;
                self.evict(0);
            } else {
                // Literal without indexing / never indexed (§6.2.2, §6.2.3).
                let (field, rest) = self.literal(block, 4)?;
                block = rest;
                fields.push(field);
            }
        }
        Ok(fields)
    }

    fn literal<'b>(
        &self,
        block: &'b [u8],
        prefix: u32,
    ) -> Result<((String, String), &'b [u8]), HpackError> {
        let (index, rest) = decode_int(block, prefix)?;
        let (name, rest) = if index == 0 {
            decode_string(rest)?
        } else {
            (self.lookup(index)?.0, rest)
        };
        let (value, rest) = decode_string(rest)?;
        Ok(((name, value), rest))
    }

    fn lookup(&self, index: usize) -> Result<(String, String), HpackError> {
        if index == 0 {
            return Err(HpackError("index 0"));
        }
        if let Some((n, v)) = STATIC.get(index - 1) {
            return Ok((n.to_string(), v.to_string()));
        }
        self.table
            .get(index - 1 - STATIC.len())
            .cloned()
            .ok_or(HpackError("index out of the table"))
    }

    fn insert(&mut self, field: (String, String)) {
        let size = entry_size(&field);
        self.evict(size);
        if size <= self.max_size {
            self.size += size;
            self.table.push_front(field);
        }
    }

    /// Evicts the oldest entries until `room` more octets fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some(old) => self.size -= entry_size(&old),
                None => break,
            }
        }
    }
}

/// §4.1: name and value lengths plus 32.
fn entry_size((n, v): &(String, String)) -> usize {
    n.len() + v.len() + 32
}

fn decode_int(block: &[u8], n: u32) -> Result<(usize, &[u8]), HpackError> {
    let max = (1usize << n) - 1;
    let (&first, mut rest) = block.split_first().ok_or(HpackError("truncated integer"))?;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok((value, rest));
    }
    let mut shift = 0u32;
    loop {
        let (&b, r) = rest.split_first().ok_or(HpackError("truncated integer"))?;
        rest = r;
        if shift > 28 {
            return Err(HpackError("integer too large"));
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok((value, rest));
        }
    }
}

fn decode_string(block: &[u8]) -> Result<(String, &[u8]), HpackError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let (len, rest) = decode_int(block, 7)?;
    if rest.len() < len {
        return Err(HpackError("truncated string"));
    }
    let (raw, rest) = rest.split_at(len);
    let bytes = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Ok((String::from_utf8_lossy(&bytes).into_owned(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn canonical_codes_match_the_rfc_table() {
        let codes = canonical_codes();
        let code = |sym: u16| {
            codes
                .iter()
                .find(|c| c.0 == sym)
                .map(|c| (c.1, c.2))
                .unwrap()
        };
        assert_eq!(code(b'0'.into()), (0x0, 5));
        assert_eq!(code(b'a'.into()), (0x3, 5));
        assert_eq!(code(b' '.into()), (0x14, 6));
        assert_eq!(code(b'A'.into()), (0x21, 6));
        assert_eq!(code(0), (0x1ff8, 13));
        assert_eq!(code(256), (0x3fffffff, 30));
    }

    #[test]
    fn huffman_round_trips_the_rfc_examples() {
        // RFC 7541 C.4.1 - C.4.3.
        for (text, coded) in [
            ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            ("no-cache", "a8eb 1064 9cbf"),
            ("custom-key", "25a8 49e9 5ba9 7d7f"),
            ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        ] {
            assert_eq!(huffman_decode(&hex(coded)).unwrap(), text.as_bytes());
            assert_eq!(huffman_encode(text.as_bytes()), hex(coded));
        }
        assert!(huffman_decode(&[0x00]).is_err(), "padding of zeros");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all)).unwrap(), all);
    }

    #[test]
    fn decodes_the_rfc_response_examples_with_huffman_and_eviction() {
        // RFC 7541 C.6 (Huffman), with a 256-octet table so that entries are evicted.
        let mut d = Decoder {
            max_size: 256,
            ..Decoder::default()
        };
        let first = d
            .decode(&hex(
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            ))
            .unwrap();
        assert_eq!(
            first,
            vec![
                (":status".to_string(), "302".to_string()),
                ("cache-control".into(), "private".into()),
                ("date".into(), "Mon, 21 Oct 2013 20:13:21 GMT".into()),
                ("location".into(), "https://www.example.com".into()),
            ]
        );
        let second = d.decode(&hex("4883 640e ff c1 c0 bf")).unwrap();
        assert_eq!(second[0], (":status".into(), "307".into()));
        assert_eq!(second[3].1, "https://www.example.com");
        assert_eq!(d.size, 222);
    }

    #[test]
    fn integers_and_literals_round_trip() {
        let mut out = Vec::new();
        encode_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]); // RFC 7541 C.1.2
        let mut block = Vec::new();
        encode_field(&mut block, ":path", "/grpc.health.v1.Health/Check");
        encode_field(&mut block, "te", "trailers");
        let fields = Decoder::default().decode(&block).unwrap();
        assert_eq!(
            fields[0],
            (":path".into(), "/grpc.health.v1.Health/Check".into())
        );
        assert_eq!(fields[1], ("te".into(), "trailers".into()));
        assert!(Decoder::default().decode(&[0xff]).is_err());
        assert!(
            Decoder::default().decode(&[0xbf]).is_err(),
            "index past the tables"
        );
    }
}
