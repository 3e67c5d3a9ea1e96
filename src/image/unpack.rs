//! Safe layer unpacking: one directory per layer under `Paths::layers`, named by diff_id.
//!
//! A layer is streamed (never held in memory) through the decompressor and a sha256 of the
//! uncompressed tar, unpacked into a private temp directory and renamed into place only when
//! its diff_id matches the image config. Entries that could write outside the layer (`..`,
//! absolute paths, symlinked parents, escaping hardlinks) are refused. OCI whiteouts become
//! overlayfs whiteouts. This module knows nothing about manifests or references.
//!
//! What a hostile layer meets (the malicious-layer corpus is `unpack_hostile_tests.rs`):
//! - `..`, absolute paths, writes through a symlink (to `/`, `..`, or one that replaced a
//!   directory), hardlinks leaving the layer, whiteouts naming `..` or lying under a symlink:
//!   the layer is refused, naming the entry, and its temp directory removed.
//! - Device nodes are made as in the image when unpacking as root (containerd does the same),
//!   skipped otherwise. A container cannot use one it could not `mknod` anyway: every container
//!   cgroup carries the device allowlist (`cgroup::devices`), checked at open(2) by (type,
//!   major, minor) wherever the node lives, the overlay lowerdir included. On the host the
//!   layers directory is 0700 (as containerd's snapshots directory), so neither these nodes nor
//!   setuid files, which are kept as in the image, are reachable by unprivileged host users.
//! - Tar metadata is bounded: at most [`MAX_ENTRY_METADATA`] bytes of headers, PAX records and
//!   GNU long names per entry (the tar crate holds those in memory). File data is not: a layer
//!   of many entries or huge files is bounded by the store's disk space and inodes, as with
//!   containerd; GNU sparse files, the one way to expand a small stream into a huge file
//!   without compression, are refused.
//! - Duplicate entries: the later one wins, as with tar.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::error::ImageError;
use crate::store::FileLock;
use sys::{chown, is_root, mknod, set_mtime, set_xattr};

#[path = "unpack_sys.rs"]
mod sys;

/// The OCI whiteout prefix and opaque marker (image-spec layer.md, "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to hide a lower directory's content (overlayfs.rst).
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// The most bytes of tar headers, PAX records and GNU long names (with their padding) that may
/// precede one entry. The tar crate reads PAX records and long names into memory, so without a
/// bound a few MiB of gzip could make it allocate gigabytes; Go's archive/tar (containerd,
/// Docker) refuses each such record over 1 MiB, this allows any one of them up to about 2 MiB.
pub const MAX_ENTRY_METADATA: u64 = 2 << 20;
/// Entry names are cut to this many bytes in messages (a GNU long name may be a megabyte).
const MAX_NAME_IN_MESSAGE: usize = 256;
/// The layers directory's mode: only root reaches unpacked layers, which hold the images'
/// setuid files and device nodes as they are (containerd's snapshots directory is 0700 too).
const LAYERS_DIR_MODE: u32 = 0o700;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The hex part of a `sha256:` digest, checked to be 64 lowercase hex digits.
pub fn sha256_hex(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(ImageError::UnsupportedDigest {
            digest: digest.to_string(),
        }),
    }
}

/// Unpacks the layer `blob` (digest `digest`) into `layers_dir/<diff_id hex>` unless it is
/// there already, and returns that directory. Safe against concurrent callers: a per-layer
/// lock serializes unpackers, and the final directory only ever appears complete (rename).
pub fn ensure_unpacked(
    layers_dir: &Path,
    blob: &Path,
    digest: &str,
    compression: Compression,
    diff_id: &str,
) -> Result<PathBuf, ImageError> {
    let hex = sha256_hex(diff_id)?;
    let dest = layers_dir.join(hex);
    if dest.is_dir() {
        return Ok(dest);
    }
    let _lock = lock_layer(layers_dir, hex)?;
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = fresh_layer_tmp(layers_dir, hex)?;
    let result = unpack_layer(&tmp, blob, digest, compression, diff_id)
        .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| ImageError::io(&dest, e)));
    if let Err(e) = result {
        if let Err(rm) = fs::remove_dir_all(&tmp) {
            tracing::warn!(?tmp, error = %rm, "failed to remove a partly unpacked layer");
        }
        return Err(e);
    }
    tracing::debug!(layer = digest, ?dest, "unpacked layer");
    Ok(dest)
}

/// Takes the lock that serializes unpackers of the layer with diff_id hex `hex`.
pub(crate) fn lock_layer(layers_dir: &Path, hex: &str) -> Result<FileLock, ImageError> {
    private_layers_dir(layers_dir)?;
    Ok(FileLock::exclusive(
        &layers_dir.join(format!(".{hex}.lock")),
    )?)
}

/// Creates the layers directory with [`LAYERS_DIR_MODE`], or narrows an existing one (a store
/// made by an older peapod) to it. Its parents are created as usual.
fn private_layers_dir(layers_dir: &Path) -> Result<(), ImageError> {
    let io_err = |e| ImageError::io(layers_dir, e);
    if let Some(parent) = layers_dir.parent() {
        fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
    }
    match fs::DirBuilder::new()
        .mode(LAYERS_DIR_MODE)
        .create(layers_dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(e)),
    }
    // The umask may have narrowed the mode further; set it exactly either way.
    let mode = fs::metadata(layers_dir)
        .map_err(io_err)?
        .permissions()
        .mode()
        & 0o7777;
    if mode != LAYERS_DIR_MODE {
        fs::set_permissions(layers_dir, fs::Permissions::from_mode(LAYERS_DIR_MODE))
            .map_err(io_err)?;
    }
    Ok(())
}

/// The (new, empty) temp directory a layer unpacks into; call with [`lock_layer`] held.
pub(crate) fn fresh_layer_tmp(layers_dir: &Path, hex: &str) -> Result<PathBuf, ImageError> {
    // Under the lock no one else uses this temp name: whatever is there is a crash leftover.
    let tmp = layers_dir.join(format!(".tmp-{hex}"));
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_dir_all(&tmp).map_err(|e| ImageError::io(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| ImageError::io(&tmp, e))?;
    Ok(tmp)
}

/// Passes bytes through while hashing them: the diff_id is the sha256 of the uncompressed tar.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Limits the bytes the tar reader may take while it looks for the next entry: its headers, PAX
/// records and GNU long names (see [`MAX_ENTRY_METADATA`]). `None`: no limit (entry data).
struct MetadataBudget<'a, R> {
    inner: R,
    left: &'a std::cell::Cell<Option<u64>>,
}

impl<R: Read> Read for MetadataBudget<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.left.get() else {
            return self.inner.read(buf);
        };
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "tar metadata over its limit",
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left.set(Some(left - n as u64));
        Ok(n)
    }
}

/// An entry name for messages: lossy UTF-8, cut to [`MAX_NAME_IN_MESSAGE`] bytes.
fn display_name(raw: &[u8]) -> String {
    if raw.len() <= MAX_NAME_IN_MESSAGE {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let head = String::from_utf8_lossy(&raw[..MAX_NAME_IN_MESSAGE]);
    format!("{head}... ({} bytes)", raw.len())
}

/// Unpacks the whole layer into the (empty) directory `root` and checks its diff_id.
pub fn unpack_layer(
    root: &Path,
    blob: &Path,
    digest: &str,
    compression: Compression,
    diff_id: &str,
) -> Result<(), ImageError> {
    let file = File::open(blob).map_err(|e| ImageError::io(blob, e))?;
    unpack_layer_from(root, BufReader::new(file), digest, compression, diff_id)
}

/// Unpacks a layer read from `input` (compressed as `compression`) into the (empty) directory
/// `root` and checks its diff_id. Reads `input` to its end.
pub fn unpack_layer_from<R: Read>(
    root: &Path,
    input: R,
    digest: &str,
    compression: Compression,
    diff_id: &str,
) -> Result<(), ImageError> {
    let stream_err = |source| ImageError::Entry {
        digest: digest.to_string(),
        entry: "<tar stream>".to_string(),
        source,
    };
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input).map_err(stream_err)?),
    };
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    {
        let budget = std::cell::Cell::new(None);
        let mut archive = tar::Archive::new(MetadataBudget {
            inner: &mut hashing,
            left: &budget,
        });
        let mut dirs = BTreeMap::new();
        let mut entries = archive.entries().map_err(stream_err)?;
        // Stream errors name the last good entry: the bad one has no name yet.
        let mut previous: Option<String> = None;
        loop {
            budget.set(Some(MAX_ENTRY_METADATA));
            let next = entries.next();
            let exhausted = budget.get() == Some(0);
            budget.set(None);
            let after = || match &previous {
                Some(p) => format!("<the entry after {p}>"),
                None => "<the first entry>".to_string(),
            };
            let mut entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(_)) if exhausted => {
                    return Err(ImageError::UnsafeEntry {
                        digest: digest.to_string(),
                        entry: after(),
                        reason: format!(
                            "more than {MAX_ENTRY_METADATA} bytes of tar headers, PAX records \
                             and GNU long names; refused"
                        ),
                    })
                }
                Some(Err(source)) => {
                    return Err(ImageError::Entry {
                        digest: digest.to_string(),
                        entry: after(),
                        source,
                    })
                }
            };
            unpack_entry(root, &mut entry, digest, &mut dirs)?;
            let name = display_name(&entry.path_bytes());
            // Data unpack_entry did not take (a directory or link that carries some, a skipped
            // entry) is streamed past here, outside the metadata budget.
            io::copy(&mut entry, &mut io::sink()).map_err(|source| ImageError::Entry {
                digest: digest.to_string(),
                entry: name.clone(),
                source,
            })?;
            previous = Some(name);
        }
        // Directory modes and mtimes last: creating children would change the mtime, and a
        // read-only directory would stop a non-root unpacker from filling it.
        for (path, (mode, mtime)) in dirs {
            let still_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            if !still_dir {
                continue;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .and_then(|()| set_mtime(&path, mtime))
                .map_err(|e| ImageError::io(&path, e))?;
        }
    }
    // The tar reader stops at the end-of-archive blocks; the padding after them is part of the
    // diff_id too.
    io::copy(&mut hashing, &mut io::sink()).map_err(stream_err)?;
    let actual = hex::encode(hashing.hasher.finalize());
    if format!("sha256:{actual}") != diff_id {
        return Err(ImageError::DiffIdMismatch {
            digest: digest.to_string(),
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(())
}

/// A tar path made relative and free of `.`/`..`; `None` for the layer root itself.
fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path refused");
    }
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` component refused"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path refused"),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Walks `rel`'s parent directories below `root` without following symlinks, creating missing
/// ones (0755) when `create`; refuses a parent that is a symlink or not a directory. Only this
/// process writes into `root` (a private temp dir), so lstat per component cannot race.
fn safe_parent(root: &Path, rel: &Path, create: bool) -> Result<PathBuf, String> {
    let mut cur = root.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    // Relative and cut: the path may be as long as the entry's name.
    let shown =
        |cur: &Path| display_name(cur.strip_prefix(root).unwrap_or(cur).as_os_str().as_bytes());
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "parent {} is a symlink; refusing to write through it",
                    shown(&cur)
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(format!("parent {} is not a directory", shown(&cur)))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(|e| format!("creating {}: {e}", shown(&cur)))?;
            }
            Err(e) => return Err(format!("{}: {e}", shown(&cur))),
        }
    }
    Ok(cur)
}

fn unpack_entry<R: Read>(
    root: &Path,
    entry: &mut tar::Entry<'_, R>,
    digest: &str,
    dirs: &mut BTreeMap<PathBuf, (u32, u64)>,
) -> Result<(), ImageError> {
    let raw = entry.path_bytes().into_owned();
    let name = display_name(&raw);
    let refuse = |reason: String| ImageError::UnsafeEntry {
        digest: digest.to_string(),
        entry: name.clone(),
        reason,
    };
    let io_err = |source| ImageError::Entry {
        digest: digest.to_string(),
        entry: name.clone(),
        source,
    };
    let header = entry.header().clone();
    let kind = header.entry_type();
    if matches!(
        kind,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    ) {
        return Ok(());
    }
    let mode = header.mode().map_err(io_err)? & 0o7777;
    let mtime = header.mtime().map_err(io_err)?;
    let uid = header.uid().map_err(io_err)?;
    let gid = header.gid().map_err(io_err)?;

    let Some(rel) = clean_path(&raw).map_err(|r| refuse(r.to_string()))? else {
        if kind.is_dir() {
            dirs.insert(root.to_path_buf(), (mode, mtime));
            chown(root, uid, gid).map_err(io_err)?;
        }
        return Ok(());
    };
    let parent = safe_parent(root, &rel, true).map_err(refuse)?;
    let file_name = rel.file_name().unwrap_or_default().as_bytes().to_vec();

    if file_name == OPAQUE_WHITEOUT.as_bytes() {
        return set_xattr(&parent, OVERLAY_OPAQUE_XATTR, b"y").map_err(io_err);
    }
    if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        // `.wh.` alone, `.wh..` and `.wh...` would whiteout the parent or escape it.
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(refuse("whiteout names no file".into()));
        }
        let target = parent.join(std::ffi::OsStr::from_bytes(hidden));
        remove_existing(&target, dirs).map_err(io_err)?;
        return mknod(&target, libc::S_IFCHR, 0, 0).map_err(io_err);
    }

    let target = root.join(&rel);
    match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() && kind.is_dir() => {}
        Ok(_) => remove_existing(&target, dirs).map_err(io_err)?,
        Err(_) => {}
    }

    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&target)
                .map_err(io_err)?;
            io::copy(entry, &mut f).map_err(io_err)?;
        }
        tar::EntryType::Directory => {
            if !target.is_dir() {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&target)
                    .map_err(io_err)?;
            }
            chown(&target, uid, gid).map_err(io_err)?;
            apply_xattrs(entry, &target).map_err(io_err)?;
            dirs.insert(target, (mode, mtime));
            return Ok(());
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| refuse("symlink without a target".into()))?;
            let link = std::ffi::OsString::from_vec(link.into_owned());
            std::os::unix::fs::symlink(&link, &target).map_err(io_err)?;
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| refuse("hardlink without a target".into()))?
                .into_owned();
            let link_rel = clean_path(&link)
                .map_err(|r| refuse(format!("hardlink target: {r}")))?
                .ok_or_else(|| refuse("hardlink to the layer root".into()))?;
            safe_parent(root, &link_rel, false)
                .map_err(|r| refuse(format!("hardlink target: {r}")))?;
            let source = root.join(&link_rel);
            match fs::symlink_metadata(&source) {
                Ok(m) if m.is_dir() => return Err(refuse("hardlink to a directory".into())),
                Ok(_) => {}
                Err(e) => return Err(refuse(format!("hardlink target missing: {e}"))),
            }
            // link(2) does not follow a symlink source, so the link stays inside the layer.
            return fs::hard_link(&source, &target).map_err(io_err);
        }
        tar::EntryType::Char | tar::EntryType::Block if !is_root() => {
            tracing::warn!(layer = digest, entry = %name, "skipping a device node: not root");
            return Ok(());
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let (fmt, major, minor) = match kind {
                tar::EntryType::Fifo => (libc::S_IFIFO, 0, 0),
                k => (
                    if k == tar::EntryType::Char {
                        libc::S_IFCHR
                    } else {
                        libc::S_IFBLK
                    },
                    header.device_major().map_err(io_err)?.unwrap_or(0),
                    header.device_minor().map_err(io_err)?.unwrap_or(0),
                ),
            };
            mknod(&target, fmt, major, minor).map_err(io_err)?;
        }
        tar::EntryType::GNUSparse => return Err(refuse("sparse files are not supported".into())),
        other => {
            tracing::warn!(layer = digest, entry = %name, ?other, "skipping unsupported tar entry type");
            return Ok(());
        }
    }
    chown(&target, uid, gid).map_err(io_err)?;
    if kind != tar::EntryType::Symlink {
        // After chown: chown clears setuid/setgid bits.
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err)?;
    }
    apply_xattrs(entry, &target).map_err(io_err)?;
    set_mtime(&target, mtime).map_err(io_err)
}

/// Removes what an entry replaces, and forgets the deferred metadata of directories at or
/// below it: a later symlink in their place must not redirect the final chmod.
fn remove_existing(path: &Path, dirs: &mut BTreeMap<PathBuf, (u32, u64)>) -> io::Result<()> {
    dirs.retain(|p, _| !p.starts_with(path));
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies `SCHILY.xattr.*` PAX records (GNU tar's xattr encoding).
fn apply_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, path: &Path) -> io::Result<()> {
    let Some(exts) = entry.pax_extensions()? else {
        return Ok(());
    };
    let mut attrs = Vec::new();
    for ext in exts {
        let ext = ext?;
        if let Ok(key) = ext.key() {
            match key.strip_prefix(PAX_XATTR_PREFIX) {
                // overlayfs trusts these (redirect, metacopy, opaque): only whiteouts set them.
                Some(name) if name.starts_with(OVERLAY_XATTR_PREFIX) => {
                    tracing::warn!(?path, xattr = %name, "ignoring an overlay xattr from a layer");
                }
                Some(name) => attrs.push((name.to_string(), ext.value_bytes().to_vec())),
                None => {}
            }
        }
    }
    for (name, value) in attrs {
        if let Err(e) = set_xattr(path, &name, &value) {
            tracing::warn!(?path, xattr = %name, error = %e, "could not set xattr from layer");
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "unpack_hostile_tests.rs"]
mod hostile_tests;
