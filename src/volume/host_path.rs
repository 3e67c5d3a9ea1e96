//! hostPath: a path of the node, bind-mounted as it is (never chowned for fsGroup). Its `type`
//! checks the path first, and the `...OrCreate` types create it, with the kubelet's messages
//! [pkg/volume/hostpath/host_path.go checkType, typeMatchedOrError, makeDir, makeFile;
//! k8s.io/mount-utils getFileType].

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::VolumeError;
use crate::container::runtime::errno_text;

// `hostPath.type` values [core/v1 types.go HostPathType].
pub const TYPE_UNSET: &str = "";
pub const TYPE_DIRECTORY_OR_CREATE: &str = "DirectoryOrCreate";
pub const TYPE_DIRECTORY: &str = "Directory";
pub const TYPE_FILE_OR_CREATE: &str = "FileOrCreate";
pub const TYPE_FILE: &str = "File";
pub const TYPE_SOCKET: &str = "Socket";
pub const TYPE_CHAR_DEVICE: &str = "CharDevice";
pub const TYPE_BLOCK_DEVICE: &str = "BlockDevice";
/// Every valid `hostPath.type`, sorted as the API server lists them.
pub const TYPES: &[&str] = &[
    TYPE_UNSET,
    TYPE_BLOCK_DEVICE,
    TYPE_CHAR_DEVICE,
    TYPE_DIRECTORY,
    TYPE_DIRECTORY_OR_CREATE,
    TYPE_FILE,
    TYPE_FILE_OR_CREATE,
    TYPE_SOCKET,
];

/// Modes of what the `...OrCreate` types make [host_path.go makeDir, makeFile].
const CREATED_DIR_MODE: u32 = 0o755;
const CREATED_FILE_MODE: u32 = 0o644;

/// A failed hostPath check; the Display is the kubelet's text, word for word (it follows
/// `MountVolume.SetUp failed for volume "<name>" : ` in the FailedMount event).
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    #[error("invalid HostPath `{0}`: must not contain '..'")]
    Backsteps(String),
    #[error("hostPath {0} doesn't exist")]
    Missing(String),
    #[error("hostPath type check failed: {path} is not a {expected}, it's a {found}")]
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "hostPath type check failed, {path} is not a {expected}, unable to determine its type: {reason}"
    )]
    Undetermined {
        path: String,
        expected: &'static str,
        reason: String,
    },
    /// Go's `*PathError` text: `mkdir /a/b: permission denied`.
    #[error("{op} {path}: {reason}")]
    Create {
        op: &'static str,
        path: String,
        reason: String,
    },
    #[error("{0} is an invalid volume type")]
    InvalidType(String),
}

/// The file types mount-utils reports, named as `HostPathType`s.
fn file_type(path: &Path) -> Result<&'static str, String> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("path {:?} does not exist", path.display().to_string()),
        _ => io_text(&e),
    })?;
    let t = meta.file_type();
    Ok(if t.is_dir() {
        TYPE_DIRECTORY
    } else if t.is_file() {
        TYPE_FILE
    } else if t.is_socket() {
        TYPE_SOCKET
    } else if t.is_char_device() {
        TYPE_CHAR_DEVICE
    } else if t.is_block_device() {
        TYPE_BLOCK_DEVICE
    } else {
        return Err(
            "only recognise file, directory, socket, block device and character device".into(),
        );
    })
}

fn io_text(e: &io::Error) -> String {
    e.raw_os_error()
        .map(errno_text)
        .unwrap_or_else(|| e.to_string())
}

/// mount-utils PathExists: stat, following symlinks.
fn exists(path: &Path) -> bool {
    fs::metadata(path).is_ok()
}

fn type_matched(
    path: &Path,
    expected: &'static str,
    what: &'static str,
) -> Result<(), HostPathError> {
    let shown = path.display().to_string();
    if !exists(path) {
        return Err(HostPathError::Missing(shown));
    }
    match file_type(path) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(HostPathError::WrongType {
            path: shown,
            expected: what,
            found,
        }),
        Err(reason) => Err(HostPathError::Undetermined {
            path: shown,
            expected: what,
            reason,
        }),
    }
}

/// Checks `path` against `type_` (creating it for the `...OrCreate` types).
pub fn check_type(path: &Path, type_: &str) -> Result<(), HostPathError> {
    // A path that appeared meanwhile is not an error (os.IsExist is ignored upstream).
    let created = |op, result: io::Result<()>| match result {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(HostPathError::Create {
            op,
            path: path.display().to_string(),
            reason: io_text(&e),
        }),
        _ => Ok(()),
    };
    let (expected, what) = match type_ {
        TYPE_UNSET => return Ok(()),
        TYPE_DIRECTORY_OR_CREATE | TYPE_DIRECTORY => (TYPE_DIRECTORY, "directory"),
        TYPE_FILE_OR_CREATE | TYPE_FILE => (TYPE_FILE, "file"),
        TYPE_SOCKET => (TYPE_SOCKET, "socket file"),
        TYPE_CHAR_DEVICE => (TYPE_CHAR_DEVICE, "character device"),
        TYPE_BLOCK_DEVICE => (TYPE_BLOCK_DEVICE, "block device"),
        other => return Err(HostPathError::InvalidType(other.to_string())),
    };
    if !exists(path) {
        match type_ {
            TYPE_DIRECTORY_OR_CREATE => return created("mkdir", make_dir(path)),
            TYPE_FILE_OR_CREATE => return created("open", make_file(path)),
            _ => {}
        }
    }
    type_matched(path, expected, what)
}

/// MkdirAll: parents are made too.
fn make_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(CREATED_DIR_MODE)
        .create(path)
}

/// O_CREATE alone: the parent directory must exist.
fn make_file(path: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .read(true)
        .create(true)
        .append(true)
        .mode(CREATED_FILE_MODE)
        .open(path)
        .map(drop)
}

/// The host path of the volume, checked per its type.
pub(super) fn setup(name: &str, source: &HostPathVolumeSource) -> Result<PathBuf, VolumeError> {
    let path = Path::new(&source.path);
    let fail = |error| VolumeError::HostPath {
        volume: name.to_string(),
        error,
    };
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(fail(HostPathError::Backsteps(source.path.clone())));
    }
    check_type(path, source.type_.as_deref().unwrap_or(TYPE_UNSET)).map_err(fail)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn text(path: &Path, type_: &str) -> String {
        check_type(path, type_).unwrap_err().to_string()
    }

    #[test]
    fn type_checks_word_for_word() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = d.join("f");
        fs::write(&file, b"").unwrap();
        let missing = d.join("missing");
        let f = file.display();
        let m = missing.display();
        let dd = d.display();
        assert!(check_type(d, TYPE_DIRECTORY).is_ok());
        assert!(check_type(&file, TYPE_FILE).is_ok());
        assert!(check_type(&missing, TYPE_UNSET).is_ok());
        assert_eq!(
            text(&file, TYPE_DIRECTORY),
            format!("hostPath type check failed: {f} is not a directory, it's a File")
        );
        assert_eq!(
            text(d, TYPE_FILE),
            format!("hostPath type check failed: {dd} is not a file, it's a Directory")
        );
        assert_eq!(
            text(&missing, TYPE_FILE),
            format!("hostPath {m} doesn't exist")
        );
        assert_eq!(
            text(&missing, TYPE_DIRECTORY),
            format!("hostPath {m} doesn't exist")
        );
        assert_eq!(
            text(&file, TYPE_SOCKET),
            format!("hostPath type check failed: {f} is not a socket file, it's a File")
        );
        assert_eq!(
            text(Path::new("/dev/null"), TYPE_BLOCK_DEVICE),
            "hostPath type check failed: /dev/null is not a block device, it's a CharDevice"
        );
        assert!(check_type(Path::new("/dev/null"), TYPE_CHAR_DEVICE).is_ok());
        assert_eq!(text(d, "Dir"), "Dir is an invalid volume type");
    }

    #[test]
    fn or_create_types_make_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let new_dir = dir.path().join("a/b");
        check_type(&new_dir, TYPE_DIRECTORY_OR_CREATE).unwrap();
        let meta = fs::metadata(&new_dir).unwrap();
        assert!(meta.is_dir());
        // 0755 less the umask, which never takes rwx from the owner.
        assert_eq!(meta.permissions().mode() & 0o700, 0o700);
        let new_file = dir.path().join("a/f");
        check_type(&new_file, TYPE_FILE_OR_CREATE).unwrap();
        assert!(fs::metadata(&new_file).unwrap().is_file());
        // Existing and of the other kind: the check applies.
        assert!(check_type(&new_file, TYPE_DIRECTORY_OR_CREATE).is_err());
        // FileOrCreate does not make parents.
        let orphan = dir.path().join("nodir/f");
        assert_eq!(
            text(&orphan, TYPE_FILE_OR_CREATE),
            format!("open {}: no such file or directory", orphan.display())
        );
    }

    #[test]
    fn backsteps_are_refused() {
        let source = HostPathVolumeSource {
            path: "/srv/../etc".into(),
            type_: None,
        };
        let err = setup("v", &source).unwrap_err();
        assert_eq!(
            err.reason(),
            "invalid HostPath `/srv/../etc`: must not contain '..'"
        );
    }
}
