//! Reading CRI log files back: parsing records, joining `P` fragments into lines, `--tail`, and
//! following a file as it grows.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::{format_timestamp, LogError, Stream, TAG_FULL, TAG_PARTIAL};

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine {
    pub time: Timestamp,
    pub stream: Stream,
    /// `P`: a fragment; the line continues in the stream's next record.
    pub partial: bool,
    pub content: String,
}

/// One whole line of output, its `P` fragments joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The time of the line's first record.
    pub time: Timestamp,
    pub stream: Stream,
    pub content: String,
}

impl LogEntry {
    /// The line as `kubectl logs` prints it (without the newline); `--timestamps` prefixes the
    /// RFC 3339 time.
    pub fn render(&self, timestamps: bool) -> String {
        if timestamps {
            format!("{} {}", format_timestamp(self.time), self.content)
        } else {
            self.content.clone()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last N lines.
    pub tail: Option<usize>,
}

fn parse_err(line: &str, reason: &str) -> LogError {
    LogError::Parse {
        line: line.chars().take(80).collect(),
        reason: reason.to_string(),
    }
}

/// Parses `<time> <stream> <P|F> <content>`. The content may be empty (`... F ` or `... F`).
pub fn parse_line(line: &str) -> Result<CriLine, LogError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut parts = line.splitn(4, ' ');
    let time = parts.next().unwrap_or_default();
    let stream = parts
        .next()
        .ok_or_else(|| parse_err(line, "missing stream"))?;
    let tag = parts.next().ok_or_else(|| parse_err(line, "missing tag"))?;
    let content = parts.next().unwrap_or_default();
    let time: Timestamp = time
        .parse()
        .map_err(|e| parse_err(line, &format!("bad timestamp: {e}")))?;
    let stream: Stream = stream.parse().map_err(|e: String| parse_err(line, &e))?;
    let partial = match tag {
        TAG_PARTIAL => true,
        TAG_FULL => false,
        _ => return Err(parse_err(line, "tag is neither P nor F")),
    };
    Ok(CriLine {
        time,
        stream,
        partial,
        content: content.to_string(),
    })
}

/// Joins records into lines, keeping one pending fragment per stream.
#[derive(Debug, Default)]
struct Joiner {
    pending: [Option<LogEntry>; 2],
}

impl Joiner {
    fn push(&mut self, rec: CriLine, out: &mut Vec<LogEntry>) {
        let slot = &mut self.pending[rec.stream.index()];
        let mut entry = match slot.take() {
            Some(mut e) => {
                e.content.push_str(&rec.content);
                e
            }
            None => LogEntry {
                time: rec.time,
                stream: rec.stream,
                content: rec.content,
            },
        };
        if rec.partial {
            *slot = Some(entry);
        } else {
            out.push(std::mem::take(&mut entry));
        }
    }

    /// Fragments whose continuation never came (a truncated file).
    fn finish(&mut self, out: &mut Vec<LogEntry>) {
        let mut rest: Vec<LogEntry> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by_key(|e| e.time);
        out.extend(rest);
    }
}

impl Default for LogEntry {
    fn default() -> Self {
        LogEntry {
            time: Timestamp::UNIX_EPOCH,
            stream: Stream::Stdout,
            content: String::new(),
        }
    }
}

/// Reads a whole log file into lines. Unparseable records are skipped, as the kubelet does.
pub fn read_log(path: &Path, opts: &ReadOptions) -> Result<Vec<LogEntry>, LogError> {
    let data = std::fs::read(path).map_err(|e| LogError::io(path, e))?;
    let text = String::from_utf8_lossy(&data);
    let mut out = Vec::new();
    let mut joiner = Joiner::default();
    for line in text.lines() {
        if let Ok(rec) = parse_line(line) {
            joiner.push(rec, &mut out);
        }
    }
    joiner.finish(&mut out);
    if let Some(n) = opts.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    Ok(out)
}

/// Follows a log file from an offset: each [`LogTail::poll`] returns the lines completed since
/// the last one. Only whole records (ending in a newline) are consumed.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    joiner: Joiner,
}

impl LogTail {
    pub fn new(path: &Path, offset: u64) -> Self {
        LogTail {
            path: path.to_path_buf(),
            offset,
            joiner: Joiner::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// New complete lines since the last poll. A missing file yields nothing; a file that
    /// shrank (rotated) is read again from its start.
    pub fn poll(&mut self) -> Result<Vec<LogEntry>, LogError> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LogError::io(&self.path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| LogError::io(&self.path, e))?
            .len();
        if len < self.offset {
            self.offset = 0;
        }
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| LogError::io(&self.path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| LogError::io(&self.path, e))?;
        let end = match data.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => return Ok(Vec::new()),
        };
        self.offset += end as u64;
        let text = String::from_utf8_lossy(&data[..end]);
        let mut out = Vec::new();
        for line in text.lines() {
            if let Ok(rec) = parse_line(line) {
                self.joiner.push(rec, &mut out);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::CriLogWriter;
    use std::io::Write;

    #[test]
    fn parses_the_kubelet_example() {
        let l = parse_line("2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(l.content, "hello world");
        assert_eq!(format_timestamp(l.time), "2016-10-06T00:17:09.669794202Z");
    }

    #[test]
    fn parses_trimmed_fractions_and_empty_content() {
        let l = parse_line("2016-10-06T00:17:09.5Z stderr P ").unwrap();
        assert!(l.partial);
        assert_eq!(l.stream, Stream::Stderr);
        assert_eq!(l.content, "");
        assert_eq!(
            parse_line("2016-10-06T00:17:09Z stdout F").unwrap().content,
            ""
        );
    }

    #[test]
    fn rejects_bad_records() {
        assert!(parse_line("garbage").is_err());
        assert!(parse_line("2016-10-06T00:17:09Z stdin F x").is_err());
        assert!(parse_line("2016-10-06T00:17:09Z stdout X x").is_err());
        assert!(parse_line("yesterday stdout F x").is_err());
    }

    #[test]
    fn round_trip_with_timestamps_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        w.write(Stream::Stdout, b"a\nb\nc\n").unwrap();
        w.write(Stream::Stderr, b"d\n").unwrap();
        let all = read_log(&p, &ReadOptions::default()).unwrap();
        let text: Vec<_> = all.iter().map(|e| e.render(false)).collect();
        assert_eq!(text, ["a", "b", "c", "d"]);
        let two = read_log(&p, &ReadOptions { tail: Some(2) }).unwrap();
        assert_eq!(
            two.iter().map(|e| e.content.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
        let stamped = two[0].render(true);
        assert!(stamped.ends_with("Z c"), "{stamped}");
        assert!(read_log(&p, &ReadOptions { tail: Some(0) })
            .unwrap()
            .is_empty());
        assert_eq!(
            read_log(&p, &ReadOptions { tail: Some(99) }).unwrap().len(),
            4
        );
    }

    #[test]
    fn partial_records_of_two_streams_join_separately() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(
            &p,
            "2024-01-01T00:00:00Z stdout P ab\n\
             2024-01-01T00:00:01Z stderr F err\n\
             2024-01-01T00:00:02Z stdout F cd\n",
        )
        .unwrap();
        let got = read_log(&p, &ReadOptions::default()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].content, "err");
        assert_eq!(got[1].content, "abcd");
        assert_eq!(
            format_timestamp(got[1].time),
            "2024-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn tail_follows_growth_and_waits_for_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut t = LogTail::new(&p, 0);
        assert!(t.poll().unwrap().is_empty());
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"2024-01-01T00:00:00Z stdout F one\n2024-01-01T00:00:01Z stdout F tw")
            .unwrap();
        let got = t.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].content, "one");
        f.write_all(b"o\n").unwrap();
        let got = t.poll().unwrap();
        assert_eq!(got[0].content, "two");
        assert!(t.poll().unwrap().is_empty());
        // The file was rotated and started afresh.
        std::fs::write(&p, "2024-01-01T00:00:02Z stdout F three\n").unwrap();
        assert_eq!(t.poll().unwrap()[0].content, "three");
    }
}
