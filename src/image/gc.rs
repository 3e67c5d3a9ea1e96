//! Garbage collection of the content store. [`ImageStore::remove`] untags and deletes images
//! (names in `index.json`, `rmi`); [`ImageStore::prune`] deletes every blob and unpacked layer
//! that no named image reaches, and the temp leftovers of crashed writers (`image prune`).
//!
//! Which pods use an image or a layer is the caller's knowledge, passed in: this module must
//! not know what a pod is. Anything that adds blobs or layers before naming them in
//! `index.json` (load, pull, push) holds [`ImageStore::content_guard`] meanwhile, so that a
//! prune never collects content that is about to be named.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use oci_spec::image::Descriptor;

use super::error::ImageError;
use super::fetch::LOCKS_DIR;
use super::reference::{normalize_reference, split_reference};
use super::store::{kind, read_index_file, ref_name, Kind, TMP_DIR};
use super::unpack::sha256_hex;
use super::{ImageStore, ImageSummary, INDEX_DIGEST_ANNOTATION};
use crate::store::FileLock;

/// Temp entries younger than this are left alone by `prune`: a writer that does not hold a
/// lock on them may still be working.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);
/// Shared by writers for as long as they hold unnamed content, exclusive for `prune`.
const GC_LOCK_FILE: &str = ".gc.lock";
/// A layer directory being deleted is renamed first, so a half-deleted layer never looks
/// complete to `ensure_unpacked`.
const GC_PREFIX: &str = ".gc-";
/// `ensure_unpacked`'s temp directory and lock names: `.tmp-<hex>`, `.<hex>.lock`.
const UNPACK_TMP_PREFIX: &str = ".tmp-";
/// Nested indexes followed when marking (as `load` does).
const MAX_INDEX_DEPTH: usize = 4;

/// What `remove` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The names removed from `index.json`, in index order.
    pub untagged: Vec<String>,
    /// Image IDs (config digests) left without any name: their content is now garbage.
    pub deleted: Vec<String>,
}

/// What `remove` asks its caller before it removes a name.
#[derive(Debug)]
pub struct RemovalCheck<'a> {
    pub image: &'a ImageSummary,
    /// True when no other name keeps the image: a pod that runs it by ID (its status
    /// `imageID`) loses it too.
    pub deletes_image: bool,
}

/// What `prune` reclaimed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Blobs deleted (manifests, configs, layers, indexes).
    pub blobs: usize,
    /// Unpacked layer directories deleted.
    pub layers: usize,
    /// Stale temp files and directories deleted.
    pub temp: usize,
    /// Apparent size of the regular files deleted.
    pub bytes: u64,
    /// Unreferenced layer directories (diff_id hex) kept because a pod's overlay uses them.
    pub layers_in_use: Vec<String>,
}

/// One name of `index.json`, readable or not (a broken image must still be removable).
struct Entry {
    summary: ImageSummary,
}

impl ImageStore {
    /// Held (shared) by anything that writes blobs or layers before naming them in
    /// `index.json`; `prune` takes it exclusively, so it waits for those writers to finish.
    pub fn content_guard(&self) -> Result<FileLock, ImageError> {
        Ok(FileLock::shared(&self.root().join(GC_LOCK_FILE))?)
    }

    /// Removes the image names `reference` designates: one exact name, `repo@digest`, or an
    /// ID prefix (every name of that image). Refuses, unless `force`, an ID that names images
    /// of several repositories, and a name `in_use` reports pods for (`in_use` returns them
    /// as display names). Blobs and layers stay until [`ImageStore::prune`].
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &dyn Fn(&RemovalCheck) -> Vec<String>,
    ) -> Result<Removed, ImageError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let entries = self.entries(index.manifests());
        let targets = select(reference, &entries, force)?;
        let remaining: Vec<&Entry> = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !targets.contains(i))
            .map(|(_, e)| e)
            .collect();
        let keeps = |s: &ImageSummary| remaining.iter().any(|r| same_image(&r.summary, s));
        let mut removed = Removed::default();
        for &i in &targets {
            let image = &entries[i].summary;
            let deletes_image = !keeps(image);
            let pods = in_use(&RemovalCheck {
                image,
                deletes_image,
            });
            if !pods.is_empty() && !force {
                let noun = if pods.len() == 1 { "pod" } else { "pods" };
                return Err(ImageError::InUse {
                    reference: image.reference.clone(),
                    pods: format!("{noun} {}", pods.join(", ")),
                });
            }
            removed.untagged.push(image.reference.clone());
            let id = if image.id.is_empty() {
                &image.manifest_digest
            } else {
                &image.id
            };
            if deletes_image && !removed.deleted.contains(id) {
                removed.deleted.push(id.clone());
            }
        }
        let manifests = index
            .manifests()
            .iter()
            .enumerate()
            .filter(|(i, _)| !targets.contains(i))
            .map(|(_, d)| d.clone())
            .collect();
        index.set_manifests(manifests);
        self.write_index(&index)?;
        tracing::info!(reference, untagged = ?removed.untagged, deleted = ?removed.deleted, "removed image");
        Ok(removed)
    }

    /// Summaries of the index's entries (unnamed descriptors get their digest as name);
    /// an unreadable image gets an empty id so that it can still be removed by name.
    fn entries(&self, manifests: &[Descriptor]) -> Vec<Entry> {
        manifests
            .iter()
            .map(|d| {
                let name = ref_name(d).unwrap_or(d.digest().as_ref()).to_string();
                let summary = self.summary(&name, d).unwrap_or_else(|e| {
                    tracing::warn!(image = %name, error = %e, "unreadable image");
                    let (repository, tag) = split_reference(&name);
                    ImageSummary {
                        reference: name.clone(),
                        repository,
                        tag,
                        manifest_digest: d.digest().to_string(),
                        index_digest: None,
                        id: String::new(),
                        created: None,
                        size: 0,
                    }
                });
                Entry { summary }
            })
            .collect()
    }

    /// Deletes every blob and unpacked layer no name in `index.json` reaches, except layer
    /// directories named (by diff_id hex) in `layers_in_use`, and temp entries older than
    /// [`TMP_MAX_AGE`] that no process holds a lock on. Waits for writers holding
    /// [`ImageStore::content_guard`].
    pub fn prune(&self, layers_in_use: &HashSet<String>) -> Result<Pruned, ImageError> {
        let _gc = FileLock::exclusive(&self.root().join(GC_LOCK_FILE))?;
        self.prune_locked(layers_in_use)
    }

    /// [`ImageStore::prune`] unless a writer holds [`ImageStore::content_guard`] now (None):
    /// for `rmi`, which should not wait for an unrelated pull.
    pub fn try_prune(&self, layers_in_use: &HashSet<String>) -> Result<Option<Pruned>, ImageError> {
        match FileLock::try_exclusive(&self.root().join(GC_LOCK_FILE))? {
            Some(_gc) => self.prune_locked(layers_in_use).map(Some),
            None => Ok(None),
        }
    }

    fn prune_locked(&self, layers_in_use: &HashSet<String>) -> Result<Pruned, ImageError> {
        let _lock = self.lock()?;
        let (blobs, layers) = self.reachable()?;
        let mut out = Pruned::default();
        self.prune_blobs(&blobs, &mut out)?;
        self.prune_layers(&layers, layers_in_use, &mut out)?;
        // Per-blob download locks of blobs that are gone (a pull holding one would hold the
        // content guard too, so none is live here; the probe is a second safety).
        let locks = self.root().join(LOCKS_DIR);
        for name in read_dir_or_empty(&locks)? {
            let path = locks.join(&name);
            let gone = name
                .strip_suffix(".lock")
                .is_some_and(|hex| is_hex64(hex) && !blobs.contains(hex));
            if gone && !FileLock::is_held(&path)? {
                fs::remove_file(&path).map_err(|e| ImageError::io(&path, e))?;
            }
        }
        let tmp = self.root().join(TMP_DIR);
        for entry in read_dir_or_empty(&tmp)? {
            let path = tmp.join(&entry);
            if is_stale(&path)? {
                out.bytes += remove_tree(&path)?;
                out.temp += 1;
            }
        }
        tracing::info!(?out, "pruned the image store");
        Ok(out)
    }

    /// The blob hexes and layer diff_id hexes reachable from `index.json`.
    fn reachable(&self) -> Result<(HashSet<String>, HashSet<String>), ImageError> {
        let index = self.read_index()?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for d in index.manifests() {
            let name = ref_name(d).unwrap_or(d.digest().as_ref());
            let unreadable = |e: ImageError| ImageError::PruneUnreadable {
                reference: name.to_string(),
                reason: e.to_string(),
            };
            self.mark(d, &mut blobs, &mut layers, 0)
                .map_err(unreadable)?;
            if let Some(idx) = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(INDEX_DIGEST_ANNOTATION))
            {
                blobs.insert(sha256_hex(idx).map_err(unreadable)?.to_string());
            }
        }
        Ok((blobs, layers))
    }

    fn mark(
        &self,
        d: &Descriptor,
        blobs: &mut HashSet<String>,
        layers: &mut HashSet<String>,
        depth: usize,
    ) -> Result<(), ImageError> {
        let digest = d.digest().to_string();
        if !blobs.insert(sha256_hex(&digest)?.to_string()) {
            return Ok(());
        }
        match kind(d.media_type()) {
            Kind::Manifest => {
                let manifest = self.read_manifest(&digest)?;
                let config_digest = manifest.config().digest().to_string();
                blobs.insert(sha256_hex(&config_digest)?.to_string());
                for layer in manifest.layers() {
                    blobs.insert(sha256_hex(layer.digest().as_ref())?.to_string());
                }
                let config = self.read_config(&config_digest)?;
                for diff_id in config.rootfs().diff_ids() {
                    layers.insert(sha256_hex(diff_id)?.to_string());
                }
            }
            Kind::Index if depth < MAX_INDEX_DEPTH => {
                let index = read_index_file(&self.blob_path(&digest)?)?;
                // A stored index keeps only the platforms that were pulled: skip the others.
                for child in index.manifests() {
                    if self.blob_path(child.digest().as_ref())?.is_file() {
                        self.mark(child, blobs, layers, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn prune_blobs(&self, keep: &HashSet<String>, out: &mut Pruned) -> Result<(), ImageError> {
        let dir = self.root().join("blobs").join("sha256");
        for name in read_dir_or_empty(&dir)? {
            if !is_hex64(&name) || keep.contains(&name) {
                continue;
            }
            let path = dir.join(&name);
            let size = fs::symlink_metadata(&path)
                .map(|m| m.len())
                .map_err(|e| ImageError::io(&path, e))?;
            fs::remove_file(&path).map_err(|e| ImageError::io(&path, e))?;
            out.blobs += 1;
            out.bytes += size;
        }
        Ok(())
    }

    fn prune_layers(
        &self,
        keep: &HashSet<String>,
        in_use: &HashSet<String>,
        out: &mut Pruned,
    ) -> Result<(), ImageError> {
        let dir = self.layers_dir();
        let mut kept_in_use = BTreeSet::new();
        let mut locks = Vec::new();
        for name in read_dir_or_empty(dir)? {
            let path = dir.join(&name);
            if is_hex64(&name) {
                if keep.contains(&name) {
                    continue;
                }
                if in_use.contains(&name) {
                    kept_in_use.insert(name);
                    continue;
                }
                let doomed = dir.join(format!("{GC_PREFIX}{name}"));
                fs::rename(&path, &doomed).map_err(|e| ImageError::io(&path, e))?;
                out.bytes += remove_tree(&doomed)?;
                out.layers += 1;
            } else if name.starts_with(GC_PREFIX) {
                // An earlier prune died while deleting it.
                out.bytes += remove_tree(&path)?;
                out.temp += 1;
            } else if let Some(hex) = name.strip_prefix(UNPACK_TMP_PREFIX) {
                let lock = dir.join(format!(".{hex}.lock"));
                let locked = lock.exists() && FileLock::is_held(&lock)?;
                if !locked && is_stale(&path)? {
                    out.bytes += remove_tree(&path)?;
                    out.temp += 1;
                }
            } else if unpack_lock_hex(&name).is_some() {
                locks.push(name);
            }
        }
        // After the layers, so that the lock of a layer deleted above goes too.
        for name in locks {
            let Some(hex) = unpack_lock_hex(&name) else {
                continue;
            };
            let path = dir.join(&name);
            // The lock of a layer that is gone; a live unpacker of a named layer keeps it.
            if !keep.contains(hex) && !dir.join(hex).exists() && !FileLock::is_held(&path)? {
                fs::remove_file(&path).map_err(|e| ImageError::io(&path, e))?;
            }
        }
        out.layers_in_use = kept_in_use.into_iter().collect();
        Ok(())
    }
}

/// The entries of `index.json` that `reference` designates (indexes into `entries`).
fn select(reference: &str, entries: &[Entry], force: bool) -> Result<Vec<usize>, ImageError> {
    let pick = |f: &dyn Fn(&ImageSummary) -> bool| -> Vec<usize> {
        (0..entries.len())
            .filter(|&i| f(&entries[i].summary))
            .collect()
    };
    if let Ok(normalized) = normalize_reference(reference) {
        let exact = pick(&|s| s.reference == normalized);
        if !exact.is_empty() {
            return Ok(exact);
        }
        if let Some((name, digest)) = normalized.split_once('@') {
            let (repository, _) = split_reference(name);
            let by_digest = pick(&|s| {
                s.repository == repository
                    && (s.manifest_digest == digest || s.index_digest.as_deref() == Some(digest))
            });
            if !by_digest.is_empty() {
                return Ok(by_digest);
            }
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let not_found = || ImageError::NotFound {
        reference: reference.to_string(),
    };
    if hex.len() < 4 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(not_found());
    }
    let hit = |d: &str| {
        d.strip_prefix("sha256:")
            .is_some_and(|h| h.starts_with(hex))
    };
    let found = pick(&|s| hit(&s.id) || hit(&s.manifest_digest));
    let Some(&first) = found.first() else {
        return Err(not_found());
    };
    let names = || {
        found
            .iter()
            .map(|&i| entries[i].summary.reference.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first = &entries[first].summary;
    if found
        .iter()
        .any(|&i| !same_image(&entries[i].summary, first))
    {
        return Err(ImageError::Ambiguous {
            reference: reference.to_string(),
            matches: names(),
        });
    }
    // As Docker: an ID that names images of several repositories needs --force.
    let repositories: HashSet<&str> = found
        .iter()
        .map(|&i| entries[i].summary.repository.as_str())
        .collect();
    if repositories.len() > 1 && !force {
        return Err(ImageError::ManyNames {
            reference: reference.to_string(),
            id: first.id.clone(),
            names: names(),
        });
    }
    Ok(found)
}

/// Same image: same config (Docker's image ID), or the same manifest when a config is unknown.
fn same_image(a: &ImageSummary, b: &ImageSummary) -> bool {
    if a.id.is_empty() || b.id.is_empty() {
        a.manifest_digest == b.manifest_digest
    } else {
        a.id == b.id
    }
}

fn is_hex64(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `.<hex>.lock` -> `hex`.
fn unpack_lock_hex(name: &str) -> Option<&str> {
    let hex = name.strip_prefix('.')?.strip_suffix(".lock")?;
    is_hex64(hex).then_some(hex)
}

/// The names in `dir`; none if it does not exist.
fn read_dir_or_empty(dir: &Path) -> Result<Vec<String>, ImageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ImageError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ImageError::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// A temp entry is stale when it is older than [`TMP_MAX_AGE`] and no process holds a lock
/// on it (a writer may lock its temp file while it fills it).
fn is_stale(path: &Path) -> Result<bool, ImageError> {
    let meta = fs::symlink_metadata(path).map_err(|e| ImageError::io(path, e))?;
    let modified = meta.modified().map_err(|e| ImageError::io(path, e))?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    if age < TMP_MAX_AGE {
        return Ok(false);
    }
    if meta.file_type().is_symlink() {
        return Ok(true);
    }
    Ok(!FileLock::is_held(path)?)
}

/// Deletes a file or directory tree; returns the apparent size of the regular files in it
/// (hard links counted once).
fn remove_tree(path: &Path) -> Result<u64, ImageError> {
    let mut bytes = 0;
    let mut seen = HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).map_err(|e| ImageError::io(&p, e))?;
        if meta.is_dir() {
            let entries = fs::read_dir(&p).map_err(|e| ImageError::io(&p, e))?;
            for entry in entries {
                stack.push(entry.map_err(|e| ImageError::io(&p, e))?.path());
            }
        } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino()))) {
            bytes += meta.len();
        }
    }
    let meta = fs::symlink_metadata(path).map_err(|e| ImageError::io(path, e))?;
    let result = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    result.map_err(|e| ImageError::io(path, e))?;
    Ok(bytes)
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
