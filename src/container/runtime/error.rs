//! Errors of the executor: [`RuntimeError`] for the public entry points and [`InitError`] for
//! one failed step inside the container init, whose text travels back to `spawn` over the
//! sync pipe.

use std::io;
use std::path::PathBuf;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The Spec asks for something the executor cannot do (or lacks something it needs).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A syscall made by the calling process failed.
    #[error("{op}: {}", errno_text(*.errno as i32))]
    Sys {
        op: String,
        errno: nix::errno::Errno,
    },
    /// The container init reported a failed setup step or exec (the message names both).
    #[error("{message}")]
    Start { message: String },
    /// `exec_in` could not set up the process inside the container.
    #[error("exec: {message}")]
    Exec { message: String },
    #[error("write bundle: {0}")]
    Bundle(#[from] StoreError),
    #[error("/proc/{pid}/stat: {reason}")]
    Stat { pid: i32, reason: String },
}

impl RuntimeError {
    pub(crate) fn sys(op: impl Into<String>, errno: nix::errno::Errno) -> Self {
        RuntimeError::Sys {
            op: op.into(),
            errno,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            source,
        }
    }
}

/// One failed setup step inside the container: `"mount /proc: permission denied"`.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct InitError {
    pub step: String,
    pub reason: String,
}

impl InitError {
    pub(crate) fn new(step: impl Into<String>, reason: impl Into<String>) -> Self {
        InitError {
            step: step.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn sys(step: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Self::new(step, errno_text(errno as i32))
    }

    pub(crate) fn io(step: impl Into<String>, err: &io::Error) -> Self {
        let reason = match err.raw_os_error() {
            Some(n) => errno_text(n),
            None => err.to_string(),
        };
        Self::new(step, reason)
    }
}

/// The strerror text of `errno`, lowercase and without Rust's "(os error N)" suffix, the way
/// runc and crun print kernel errors: `permission denied`, `no such file or directory`.
pub fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {errno}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_lowercase_without_suffix() {
        assert_eq!(errno_text(libc::EACCES), "permission denied");
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
    }

    #[test]
    fn init_error_names_step() {
        let e = InitError::sys("mount /proc", nix::errno::Errno::EPERM);
        assert_eq!(e.to_string(), "mount /proc: operation not permitted");
    }
}
