//! The kubelet's atomic writer [pkg/volume/util/atomic_writer.go]: projects a set of files into
//! a volume directory so that a reader sees either the old set or the new one, never a mix.
//!
//! The files live in a hidden timestamped directory (`..2006_01_02_15_04_05.<random>`); the
//! `..data` symlink points at it, and each user-visible top-level entry is a symlink into
//! `..data`. An update writes a new timestamped directory, points `..data_tmp` at it, renames
//! `..data_tmp` over `..data` (one atomic step), then removes stale entries and the old
//! directory. Consumers can watch `..data` to learn of updates.
//!
//! Pure file-system work on one directory: no mounts, no knowledge of pods or objects.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The symlink to the current timestamped directory.
pub const DATA_DIR: &str = "..data";
/// The symlink that is renamed over [`DATA_DIR`].
pub const NEW_DATA_DIR: &str = "..data_tmp";
/// Timestamped directories are world-readable whatever the umask, so that any user of the
/// container can reach the files (their own modes decide the rest).
const TS_DIR_MODE: u32 = 0o755;
/// Directories of nested paths (`a/b`): `os.MkdirAll(dir, os.ModePerm)` under the kubelet's
/// usual umask 022.
const NESTED_DIR_MODE: u32 = 0o755;
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;
/// How many random names a new timestamped directory may try (`os.MkdirTemp` retries too).
const TS_DIR_ATTEMPTS: u32 = 100;

/// One file to project: its content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path -> file, what one volume holds.
pub type Payload = BTreeMap<String, FileProjection>;

/// Runs on the new timestamped directory's name before it is published (fsGroup).
pub type SetPerms<'a> = &'a dyn Fn(&str) -> io::Result<()>;

/// Why a projection could not be written. The path messages are the kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("invalid path: must not be empty: {0:?}")]
    EmptyPath(String),
    #[error("invalid path: must be relative path: {0}")]
    AbsolutePath(String),
    #[error("invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")]
    PathTooLong(String),
    #[error("invalid path: must not contain '..': {0}")]
    DotDot(String),
    #[error(
        "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
    )]
    FileNameTooLong(String),
    #[error("invalid path: must not start with '..': {0}")]
    Reserved(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AtomicWriteError + '_ {
    move |source| AtomicWriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The kubelet's path rules: relative, no `..` element, not starting with `..`, names of at
/// most 255 bytes and paths of at most 4096.
fn validate_path(path: &str) -> Result<(), AtomicWriteError> {
    if path.is_empty() {
        return Err(AtomicWriteError::EmptyPath(path.into()));
    }
    if path.starts_with('/') {
        return Err(AtomicWriteError::AbsolutePath(path.into()));
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(AtomicWriteError::PathTooLong(path.into()));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(AtomicWriteError::DotDot(path.into()));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(AtomicWriteError::FileNameTooLong(path.into()));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(AtomicWriteError::Reserved(path.into()));
    }
    Ok(())
}

/// Go's `filepath.Clean` for a relative path without `..`: no `.`, no empty elements.
fn clean(path: &str) -> String {
    let parts: Vec<&str> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The payload with validated, cleaned paths.
fn clean_payload(payload: &Payload) -> Result<Payload, AtomicWriteError> {
    let mut out = Payload::new();
    for (path, file) in payload {
        validate_path(path)?;
        out.insert(clean(path), file.clone());
    }
    Ok(out)
}

/// Every path below `dir`, relative to it (files and directories, not following links).
fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &rel, out)?;
        }
        out.insert(rel);
    }
    Ok(())
}

/// The paths of the old version that the new payload no longer has (a payload path's parent
/// directories count as kept).
fn paths_to_remove(payload: &Payload, old_ts: &Path) -> Result<BTreeSet<String>, AtomicWriteError> {
    let mut current = BTreeSet::new();
    match walk(old_ts, "", &mut current) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io_err(old_ts)(e)),
    }
    let mut kept = BTreeSet::new();
    for path in payload.keys() {
        let mut p = path.as_str();
        loop {
            kept.insert(p.to_string());
            match p.rsplit_once('/') {
                Some((parent, _)) => p = parent,
                None => break,
            }
        }
    }
    Ok(current.difference(&kept).cloned().collect())
}

/// True when a file of the payload is missing from the old version or differs from it. Like
/// the kubelet, only contents are compared: a mode change alone does not rewrite.
fn should_write(payload: &Payload, old_ts: &Path) -> Result<bool, AtomicWriteError> {
    for (path, file) in payload {
        let full = old_ts.join(path);
        match fs::symlink_metadata(&full) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_err(&full)(e)),
            Ok(_) => {}
        }
        if fs::read(&full).map_err(io_err(&full))? != file.data {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A fresh `..<UTC timestamp>.<random>` directory in `target`, mode 0755.
fn new_ts_dir(target: &Path) -> Result<PathBuf, AtomicWriteError> {
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    let mut last = None;
    for _ in 0..TS_DIR_ATTEMPTS {
        let random = uuid::Uuid::new_v4().as_u128() as u32;
        let dir = target.join(format!("{stamp}{random}"));
        match fs::DirBuilder::new().mode(TS_DIR_MODE).create(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(TS_DIR_MODE))
                    .map_err(io_err(&dir))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err(&dir)(e)),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
    Err(io_err(target)(e))
}

/// Writes each file with its mode, whatever the umask.
fn write_payload(payload: &Payload, dir: &Path) -> Result<(), AtomicWriteError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(NESTED_DIR_MODE)
                .create(parent)
                .map_err(io_err(parent))?;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&full)
            .map_err(io_err(&full))?;
        io::Write::write_all(&mut f, &file.data).map_err(io_err(&full))?;
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode)).map_err(io_err(&full))?;
    }
    Ok(())
}

/// `name -> ..data/name` for each top-level entry of the payload that has no link yet.
fn create_user_visible_files(payload: &Payload, target: &Path) -> Result<(), AtomicWriteError> {
    for path in payload.keys() {
        let top = path.split('/').next().unwrap_or(path);
        let visible = target.join(top);
        match fs::read_link(&visible) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &visible)
                    .map_err(io_err(&visible))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes the top-level entries of paths the payload no longer has (nested paths go with
/// the old timestamped directory).
fn remove_user_visible_paths(
    paths: &BTreeSet<String>,
    target: &Path,
) -> Result<(), AtomicWriteError> {
    let mut last = Ok(());
    for p in paths.iter().filter(|p| !p.contains('/')) {
        let full = target.join(p);
        if let Err(e) = fs::remove_file(&full) {
            tracing::warn!(path = %full.display(), error = %e, "cannot prune an old visible path");
            last = Err(io_err(&full)(e));
        }
    }
    last
}

/// Projects `payload` into `target` (which must exist). `set_perms` runs on the new
/// timestamped directory's name before it is published (the kubelet applies fsGroup there).
/// Returns whether the published data changed.
pub fn write(
    target: &Path,
    payload: &Payload,
    set_perms: Option<SetPerms>,
) -> Result<bool, AtomicWriteError> {
    let payload = clean_payload(payload)?;
    let data_dir = target.join(DATA_DIR);
    let mut old_ts = match fs::read_link(&data_dir) {
        Ok(link) => Some(link),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&data_dir)(e)),
    };
    let mut to_remove = BTreeSet::new();
    let mut write = true;
    if let Some(old) = &old_ts {
        let old_path = target.join(old);
        to_remove = paths_to_remove(&payload, &old_path)?;
        if !should_write(&payload, &old_path)? && to_remove.is_empty() {
            // Up to date; the visible links are still checked below (kubernetes#121472).
            write = false;
            old_ts = None;
        }
    }
    if write {
        let ts_dir = new_ts_dir(target)?;
        let ts_name = ts_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let published = (|| {
            write_payload(&payload, &ts_dir)?;
            if let Some(set_perms) = set_perms {
                set_perms(&ts_name).map_err(io_err(&ts_dir))?;
            }
            let new_data_dir = target.join(NEW_DATA_DIR);
            // A link left by a writer that died between its two steps.
            let _ = fs::remove_file(&new_data_dir);
            std::os::unix::fs::symlink(&ts_name, &new_data_dir).map_err(io_err(&new_data_dir))?;
            fs::rename(&new_data_dir, &data_dir).map_err(|e| {
                let _ = fs::remove_file(&new_data_dir);
                io_err(&data_dir)(e)
            })
        })();
        if let Err(e) = published {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(e);
        }
    }
    create_user_visible_files(&payload, target)?;
    remove_user_visible_paths(&to_remove, target)?;
    if let Some(old) = old_ts {
        let old_path = target.join(old);
        fs::remove_dir_all(&old_path).map_err(io_err(&old_path))?;
    }
    Ok(write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileProjection {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn ts_dirs(dir: &Path) -> Vec<String> {
        entries(dir)
            .into_iter()
            .filter(|n| n.starts_with("..") && n != DATA_DIR)
            .collect()
    }

    #[test]
    fn first_write_lays_out_data_link_and_visible_links() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let p = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]);
        assert!(write(t, &p, None).unwrap());
        let ts = ts_dirs(t);
        assert_eq!(ts.len(), 1, "{:?}", entries(t));
        assert!(ts[0].starts_with("..20") && ts[0].matches('_').count() == 5);
        assert_eq!(fs::read_link(t.join(DATA_DIR)).unwrap(), Path::new(&ts[0]));
        assert_eq!(fs::read_link(t.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(
            fs::read_link(t.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(t.join("sub/b")).unwrap(), "2");
        let mode = |p: &str| fs::metadata(t.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("a"), 0o644);
        assert_eq!(mode("sub/b"), 0o400);
        assert_eq!(mode(&ts[0]), 0o755);
        assert_eq!(entries(t), [ts[0].as_str(), "..data", "a", "sub"]);
    }

    #[test]
    fn update_swaps_the_data_link_and_prunes_stale_entries() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        write(
            t,
            &payload(&[("a", "1", 0o644), ("gone", "x", 0o644)]),
            None,
        )
        .unwrap();
        let old = ts_dirs(t);
        // A reader that opened the old file keeps its content.
        let mut held = fs::File::open(t.join("a")).unwrap();
        assert!(write(t, &payload(&[("a", "2", 0o600), ("new", "n", 0o644)]), None).unwrap());
        let new = ts_dirs(t);
        assert_eq!(new.len(), 1);
        assert_ne!(new, old, "a new timestamped directory");
        assert_eq!(entries(t), [new[0].as_str(), "..data", "a", "new"]);
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "2");
        assert_eq!(fs::metadata(t.join("a")).unwrap().mode() & 0o777, 0o600);
        let mut old_content = String::new();
        io::Read::read_to_string(&mut held, &mut old_content).unwrap();
        assert_eq!(old_content, "1");
    }

    #[test]
    fn unchanged_payload_is_not_rewritten_but_links_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let p = payload(&[("a", "1", 0o644)]);
        write(t, &p, None).unwrap();
        let before = ts_dirs(t);
        fs::remove_file(t.join("a")).unwrap();
        assert!(!write(t, &p, None).unwrap());
        assert_eq!(ts_dirs(t), before);
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "1");
    }

    #[test]
    fn empty_payload_publishes_an_empty_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        write(t, &Payload::new(), None).unwrap();
        assert_eq!(entries(t).len(), 2);
        assert!(fs::read_link(t.join(DATA_DIR)).is_ok());
        write(t, &payload(&[("a", "1", 0o644)]), None).unwrap();
        write(t, &Payload::new(), None).unwrap();
        assert_eq!(entries(t).len(), 2, "{:?}", entries(t));
    }

    #[test]
    fn set_perms_sees_the_new_directory_before_it_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().to_path_buf();
        let check = |ts: &str| {
            assert!(t.join(ts).join("a").exists());
            assert!(fs::read_link(t.join(DATA_DIR)).is_err());
            Ok(())
        };
        write(&t, &payload(&[("a", "1", 0o644)]), Some(&check)).unwrap();
    }

    #[test]
    fn paths_are_validated_with_the_kubelet_messages() {
        let dir = tempfile::tempdir().unwrap();
        let bad = |p: &str| {
            write(dir.path(), &payload(&[(p, "x", 0o644)]), None)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(bad("/abs"), "invalid path: must be relative path: /abs");
        assert_eq!(bad("a/../b"), "invalid path: must not contain '..': a/../b");
        assert_eq!(bad("..x"), "invalid path: must not start with '..': ..x");
        assert_eq!(bad(""), "invalid path: must not be empty: \"\"");
        assert!(bad(&"n".repeat(256)).contains("filenames must be less than or equal to 255"));
        assert_eq!(clean("./a//b/"), "a/b");
    }
}
