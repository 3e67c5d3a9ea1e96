//! Turns raw output chunks into CRI log records and appends them to the container's log file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{format_timestamp, rotate, LogError, Stream, TAG_FULL, TAG_PARTIAL};

/// Content longer than this is split into `P` records, as containerd does (16 KiB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Appends CRI records to one log file, keeping a partial-line buffer per stream so that a line
/// split across two pipe reads becomes one record.
#[derive(Debug)]
pub struct CriLogWriter {
    path: PathBuf,
    file: File,
    pending: [Vec<u8>; 2],
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LogError::io(path, e))
}

impl CriLogWriter {
    /// Opens `path` for appending, creating it and its parent directories.
    pub fn create(path: &Path) -> Result<Self, LogError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        }
        Ok(CriLogWriter {
            path: path.to_path_buf(),
            file: open_append(path)?,
            pending: [Vec::new(), Vec::new()],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Feeds one chunk read from `stream`'s pipe. Every complete line is written as an `F`
    /// record; pending content that reaches [`MAX_LINE_BYTES`] is written as `P` records.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<(), LogError> {
        let now = jiff::Timestamp::now();
        let mut out = Vec::new();
        let buf = &mut self.pending[stream.index()];
        buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= MAX_LINE_BYTES => {
                    // A full line that fits; a lone `\r` before the newline is kept, as containerd.
                    record(&mut out, now, stream, TAG_FULL, &rest[..nl]);
                    start += nl + 1;
                }
                _ if rest.len() >= MAX_LINE_BYTES => {
                    record(&mut out, now, stream, TAG_PARTIAL, &rest[..MAX_LINE_BYTES]);
                    start += MAX_LINE_BYTES;
                }
                _ => break,
            }
        }
        buf.drain(..start);
        self.write_out(&out)
    }

    /// Writes whatever partial line is pending on either stream as an `F` record. Called at EOF
    /// (the process exited without a final newline): the content is complete, so `F` lets
    /// readers print it as a line instead of waiting for a continuation that never comes.
    pub fn flush_partial(&mut self) -> Result<(), LogError> {
        let now = jiff::Timestamp::now();
        let mut out = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(&mut self.pending[stream.index()]);
            if !buf.is_empty() {
                record(&mut out, now, stream, TAG_FULL, &buf);
            }
        }
        self.write_out(&out)
    }

    /// Rotates the file when it has grown past `max_bytes`, keeping `max_files` files in all
    /// (see [`rotate::rotate_file`]). Returns whether it rotated.
    pub fn rotate_if_needed(&mut self, max_bytes: u64, max_files: usize) -> Result<bool, LogError> {
        let size = self
            .file
            .metadata()
            .map_err(|e| LogError::io(&self.path, e))?
            .len();
        if size < max_bytes {
            return Ok(false);
        }
        rotate::rotate_file(&self.path, max_files)?;
        self.file = open_append(&self.path)?;
        Ok(true)
    }

    fn write_out(&mut self, out: &[u8]) -> Result<(), LogError> {
        if out.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(out)
            .map_err(|e| LogError::io(&self.path, e))
    }
}

fn record(out: &mut Vec<u8>, now: jiff::Timestamp, stream: Stream, tag: &str, content: &[u8]) {
    out.extend_from_slice(format_timestamp(now).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::parse_line;

    fn lines(path: &Path) -> Vec<crate::logs::CriLine> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| parse_line(l).unwrap())
            .collect()
    }

    #[test]
    fn complete_lines_become_full_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        w.write(Stream::Stdout, b"hello\nworld\n").unwrap();
        let got = lines(&p);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].content, "hello");
        assert_eq!(got[1].content, "world");
        assert!(!got[0].partial);
        assert_eq!(got[0].stream, Stream::Stdout);
        let raw = fs::read_to_string(&p).unwrap();
        // 2016-10-06T00:17:09.669794202Z: 30 characters, nine fractional digits.
        let ts = raw.split(' ').next().unwrap();
        assert_eq!(ts.len(), 30, "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn a_line_split_across_chunks_is_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "");
        w.write(Stream::Stdout, b"lo\nnext").unwrap();
        w.flush_partial().unwrap();
        let got = lines(&p);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].content, "hello");
        assert_eq!(got[1].content, "next");
        assert!(!got[1].partial);
    }

    #[test]
    fn streams_keep_separate_partial_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        w.write(Stream::Stdout, b"out-").unwrap();
        w.write(Stream::Stderr, b"err-").unwrap();
        w.write(Stream::Stderr, b"line\n").unwrap();
        w.write(Stream::Stdout, b"line\n").unwrap();
        let got = lines(&p);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].stream, got[0].content.as_str()),
            (Stream::Stderr, "err-line")
        );
        assert_eq!(
            (got[1].stream, got[1].content.as_str()),
            (Stream::Stdout, "out-line")
        );
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        let mut data = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        data.push(b'\n');
        w.write(Stream::Stdout, &data[..100]).unwrap();
        w.write(Stream::Stdout, &data[100..]).unwrap();
        let got = lines(&p);
        assert_eq!(got.len(), 3);
        assert!(got[0].partial && got[1].partial && !got[2].partial);
        assert_eq!(got[0].content.len(), MAX_LINE_BYTES);
        assert_eq!(got[2].content.len(), 10);
        let opts = crate::logs::ReadOptions::default();
        let joined = crate::logs::read_log(&p, &opts).unwrap();
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].content.len(), MAX_LINE_BYTES * 2 + 10);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_one_full_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::create(&p).unwrap();
        let mut data = vec![b'y'; MAX_LINE_BYTES];
        data.push(b'\n');
        w.write(Stream::Stderr, &data).unwrap();
        let got = lines(&p);
        assert_eq!(got.len(), 1);
        assert!(!got[0].partial);
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        CriLogWriter::create(&p)
            .unwrap()
            .write(Stream::Stdout, b"one\n")
            .unwrap();
        CriLogWriter::create(&p)
            .unwrap()
            .write(Stream::Stdout, b"two\n")
            .unwrap();
        assert_eq!(lines(&p).len(), 2);
    }
}
