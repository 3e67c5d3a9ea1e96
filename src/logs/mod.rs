//! Container logs in the CRI format the kubelet uses, their rotation, and reading them back.
//!
//! The supervisor feeds raw pipe chunks to a [`CriLogWriter`]; `peapod logs` reads the files
//! back with [`read_log`] or follows them with a [`LogTail`]. Line format (cri-api):
//! `<RFC3339Nano UTC> <stdout|stderr> <P|F> <content>`. This module never prints.

mod reader;
mod rotate;
mod writer;

use std::path::PathBuf;

pub use reader::{parse_line, read_log, CriLine, LogEntry, LogTail, ReadOptions};
pub use rotate::{rotate_file, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES};
pub use writer::{CriLogWriter, MAX_LINE_BYTES};

/// Tag of a complete line.
pub const TAG_FULL: &str = "F";
/// Tag of a fragment of a longer line (the rest follows in later records).
pub const TAG_PARTIAL: &str = "P";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid CRI log line {line:?}: {reason}")]
    Parse { line: String, reason: String },
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the log file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Which of the container's output pipes a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl std::str::FromStr for Stream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            other => Err(format!("unknown stream {other:?}")),
        }
    }
}

/// The CRI timestamp: RFC 3339 in UTC with all nine fractional digits. (Go's RFC3339Nano trims
/// trailing zeros; a fixed width keeps the columns aligned and parses the same.)
pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    format!("{ts:.9}")
}
