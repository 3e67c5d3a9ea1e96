//! The content store: an OCI image layout under `Paths::images` (`oci-layout`, `index.json`,
//! `blobs/sha256/`). Blobs land only after their sha256 matches (temp file + rename); images
//! are the manifest descriptors of `index.json` named by `org.opencontainers.image.ref.name`.
//! Other tools (skopeo, umoci) can read the store as a plain layout.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};

use super::error::ImageError;
use super::reference::{normalize_reference, split_reference};
use super::unpack::{ensure_unpacked, sha256_hex, Compression};
use super::{
    Image, ImageSummary, INDEX_DIGEST_ANNOTATION, REF_NAME_ANNOTATION, REPO_DIGEST_ANNOTATION,
};
use crate::store::{write_atomic, FileLock, Paths};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
pub const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = ".lock";
pub(crate) const TMP_DIR: &str = ".tmp";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a descriptor's media type says it points to (OCI and Docker v2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
    Layer(Compression),
    Other,
}

pub(crate) fn kind(mt: &MediaType) -> Kind {
    match mt.to_string().as_str() {
        "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json" => Kind::Index,
        "application/vnd.oci.image.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v2+json" => Kind::Manifest,
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Kind::Layer(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            Kind::Layer(Compression::Gzip)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/zstd" => Kind::Layer(Compression::Zstd),
        _ => Kind::Other,
    }
}

/// The compression of a layer descriptor, refusing what is not a layer peapod can unpack.
pub(crate) fn layer_compression(layer: &Descriptor) -> Result<Compression, ImageError> {
    match kind(layer.media_type()) {
        Kind::Layer(c) => Ok(c),
        _ => Err(ImageError::UnsupportedLayer {
            digest: layer.digest().to_string(),
            media_type: layer.media_type().to_string(),
            hint: "",
        }),
    }
}

/// One name of the store with what a pull recorded beside it ([`ImageStore::list_named`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedImage {
    pub summary: ImageSummary,
    /// `<repository>@sha256:...` of what the registry served; `None` for a loaded image.
    pub repo_digest: Option<String>,
    /// The manifest's size as `index.json` records it.
    pub manifest_size: u64,
}

/// The local content store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    layers: PathBuf,
}

impl ImageStore {
    /// Opens the store, creating the OCI layout (`oci-layout`, `index.json`, `blobs/sha256/`)
    /// if missing.
    pub fn open(paths: &Paths) -> Result<ImageStore, ImageError> {
        let store = ImageStore {
            root: paths.images(),
            layers: paths.layers(),
        };
        let blobs = store.root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
        let layout = store.root.join(OCI_LAYOUT_FILE);
        if !layout.exists() {
            write_atomic(&layout, OCI_LAYOUT_CONTENT.as_bytes())?;
        }
        let index = store.root.join(INDEX_FILE);
        if !index.exists() {
            let _lock = store.lock()?;
            if !index.exists() {
                store.write_index(&ImageIndex::default())?;
            }
        }
        Ok(store)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where unpacked layers live (`Paths::layers`).
    pub(crate) fn layers_dir(&self) -> &Path {
        &self.layers
    }

    pub(crate) fn lock(&self) -> Result<FileLock, ImageError> {
        Ok(FileLock::exclusive(&self.root.join(LOCK_FILE))?)
    }

    /// A fresh path under the store's temp directory (same filesystem, so renames work).
    pub(crate) fn temp_path(&self, what: &str) -> Result<PathBuf, ImageError> {
        let dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!("{what}-{}-{n}", std::process::id())))
    }

    /// Removes temp files whose writer is gone (`<what>-<pid>-<n>` with no process `<pid>`):
    /// what a pull killed with SIGKILL left behind. A recycled PID only delays the cleanup
    /// (to the next pull or to `image prune`); a live writer's file is never touched.
    pub(crate) fn sweep_orphan_temps(&self) {
        let dir = self.root.join(TMP_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = temp_owner(&name.to_string_lossy()) else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let path = entry.path();
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => tracing::info!(?path, "removed a temp file left by a dead process"),
                Err(e) => tracing::warn!(?path, error = %e, "cannot remove an orphaned temp file"),
            }
        }
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(digest)?;
        Ok(self.root.join("blobs").join("sha256").join(hex))
    }

    /// Copies `src` into the store as the blob `desc` names, verifying size and sha256 while
    /// streaming; a blob that does not match never lands. An existing blob is kept.
    pub(crate) fn put_blob(&self, desc: &Descriptor, src: &Path) -> Result<PathBuf, ImageError> {
        let digest = desc.digest().to_string();
        let dest = self.blob_path(&digest)?;
        if dest.is_file() {
            return Ok(dest);
        }
        let tmp = self.temp_path("blob")?;
        let result = copy_verified(src, &tmp, &digest, desc.size())
            .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| ImageError::io(&dest, e)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| dest)
    }

    pub(crate) fn read_index(&self) -> Result<ImageIndex, ImageError> {
        let path = self.root.join(INDEX_FILE);
        read_index_file(&path)
    }

    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<(), ImageError> {
        let path = self.root.join(INDEX_FILE);
        let data = index
            .to_string_pretty()
            .map_err(|e| ImageError::invalid(&path, "image index", e))?;
        Ok(write_atomic(&path, data.as_bytes())?)
    }

    /// Records `images` (normalized reference, manifest descriptor) in `index.json`, replacing
    /// any entry of the same name, under the store lock.
    pub(crate) fn record(&self, images: &[(String, Descriptor)]) -> Result<(), ImageError> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d).is_none_or(|n| !images.iter().any(|(name, _)| name == n)))
            .cloned()
            .collect();
        for (name, desc) in images {
            let mut d = desc.clone();
            let mut ann = d.annotations().clone().unwrap_or_default();
            ann.insert(REF_NAME_ANNOTATION.to_string(), name.clone());
            d.set_annotations(Some(ann));
            manifests.push(d);
        }
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    pub(crate) fn read_manifest(&self, digest: &str) -> Result<ImageManifest, ImageError> {
        let path = self.blob_path(digest)?;
        let f = File::open(&path).map_err(|e| ImageError::io(&path, e))?;
        ImageManifest::from_reader(BufReader::new(f))
            .map_err(|e| ImageError::invalid(&path, "image manifest", e))
    }

    pub(crate) fn read_config(&self, digest: &str) -> Result<ImageConfiguration, ImageError> {
        let path = self.blob_path(digest)?;
        let f = File::open(&path).map_err(|e| ImageError::io(&path, e))?;
        ImageConfiguration::from_reader(BufReader::new(f))
            .map_err(|e| ImageError::invalid(&path, "image config", e))
    }

    /// The images in the store, in `index.json` order.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for d in index.manifests() {
            let Some(name) = ref_name(d) else { continue };
            match self.summary(name, d) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(image = name, error = %e, "skipping a broken image"),
            }
        }
        Ok(out)
    }

    /// The images in the store with what a pull recorded beside each name (its repository
    /// digest) and the size of its manifest: what a CRI image listing is made of.
    pub fn list_named(&self) -> Result<Vec<NamedImage>, ImageError> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for d in index.manifests() {
            let Some(name) = ref_name(d) else { continue };
            match self.summary(name, d) {
                Ok(summary) => out.push(NamedImage {
                    summary,
                    repo_digest: d
                        .annotations()
                        .as_ref()
                        .and_then(|a| a.get(REPO_DIGEST_ANNOTATION))
                        .cloned(),
                    manifest_size: d.size(),
                }),
                Err(e) => tracing::warn!(image = name, error = %e, "skipping a broken image"),
            }
        }
        Ok(out)
    }

    pub(crate) fn summary(&self, name: &str, d: &Descriptor) -> Result<ImageSummary, ImageError> {
        let manifest_digest = d.digest().to_string();
        let manifest = self.read_manifest(&manifest_digest)?;
        let id = manifest.config().digest().to_string();
        let config = self.read_config(&id)?;
        let (repository, tag) = split_reference(name);
        let size =
            manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>();
        Ok(ImageSummary {
            reference: name.to_string(),
            repository,
            tag,
            manifest_digest,
            index_digest: d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(INDEX_DIGEST_ANNOTATION))
                .cloned(),
            id,
            created: config.created().clone(),
            size,
        })
    }

    /// Finds an image by reference (normalized Docker-style) or by a prefix of its id or
    /// manifest digest, and makes sure its layers are unpacked.
    pub fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        let images = self.list()?;
        let found = match normalize_reference(reference)
            .ok()
            .and_then(|n| find_by_name(&n, &images))
        {
            Some(s) => s.clone(),
            None => by_prefix(reference, &images)?,
        };
        let manifest = self.read_manifest(&found.manifest_digest)?;
        let config = self.read_config(&found.id)?;
        let layers = self.unpack_layers(&found.manifest_digest, &manifest, &config)?;
        let repo_digest = self.repo_digest_of(&found.reference)?;
        Ok(Image {
            repo_digest,
            reference: found.reference,
            manifest_digest: found.manifest_digest,
            id: found.id,
            config,
            layers,
        })
    }

    /// The `<repo>@<digest>` a pull recorded for the image named `name`.
    fn repo_digest_of(&self, name: &str) -> Result<Option<String>, ImageError> {
        let index = self.read_index()?;
        Ok(index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(name))
            .and_then(|d| d.annotations().as_ref())
            .and_then(|a| a.get(REPO_DIGEST_ANNOTATION))
            .cloned())
    }

    /// Unpacks every layer of `manifest` (once each); returns their directories, bottom first.
    pub(crate) fn unpack_layers(
        &self,
        manifest_digest: &str,
        manifest: &ImageManifest,
        config: &ImageConfiguration,
    ) -> Result<Vec<PathBuf>, ImageError> {
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::LayerCountMismatch {
                manifest: manifest_digest.to_string(),
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| {
                let digest = layer.digest().to_string();
                let compression = layer_compression(layer)?;
                let blob = self.blob_path(&digest)?;
                ensure_unpacked(&self.layers, &blob, &digest, compression, diff_id)
            })
            .collect()
    }
}

pub(crate) fn read_index_file(path: &Path) -> Result<ImageIndex, ImageError> {
    let f = File::open(path).map_err(|e| ImageError::io(path, e))?;
    ImageIndex::from_reader(BufReader::new(f))
        .map_err(|e| ImageError::invalid(path, "image index", e))
}

pub(crate) fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a: &HashMap<String, String>| a.get(REF_NAME_ANNOTATION))
        .map(String::as_str)
}

/// An exact name, or `repo@digest` for any image of that repository with that manifest.
fn find_by_name<'a>(normalized: &str, images: &'a [ImageSummary]) -> Option<&'a ImageSummary> {
    if let Some(s) = images.iter().find(|s| s.reference == normalized) {
        return Some(s);
    }
    let (name, digest) = normalized.split_once('@')?;
    let (repository, _) = split_reference(name);
    images
        .iter()
        .find(|s| s.manifest_digest == digest && s.repository == repository)
}

fn by_prefix(reference: &str, images: &[ImageSummary]) -> Result<ImageSummary, ImageError> {
    let not_found = || ImageError::NotFound {
        reference: reference.to_string(),
    };
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() < 4 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(not_found());
    }
    let hit = |digest: &str| {
        digest
            .strip_prefix("sha256:")
            .is_some_and(|h| h.starts_with(hex))
    };
    let matches: Vec<&ImageSummary> = images
        .iter()
        .filter(|s| hit(&s.id) || hit(&s.manifest_digest))
        .collect();
    match matches.as_slice() {
        [] => Err(not_found()),
        [one] => Ok((*one).clone()),
        many if many
            .iter()
            .all(|s| s.manifest_digest == many[0].manifest_digest) =>
        {
            Ok(many[0].clone())
        }
        many => Err(ImageError::Ambiguous {
            reference: reference.to_string(),
            matches: many
                .iter()
                .map(|s| s.reference.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Streams `src` to a new file `tmp`, checking the sha256 and size against the descriptor.
fn copy_verified(src: &Path, tmp: &Path, digest: &str, size: u64) -> Result<(), ImageError> {
    let expected = sha256_hex(digest)?;
    let mut input = File::open(src).map_err(|e| ImageError::io(src, e))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(tmp)
        .map_err(|e| ImageError::io(tmp, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::io(src, e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| ImageError::io(tmp, e))?;
        total += n as u64;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(ImageError::DigestMismatch {
            digest: digest.to_string(),
            path: src.to_path_buf(),
            actual,
            size: total,
        });
    }
    if total != size {
        return Err(ImageError::SizeMismatch {
            digest: digest.to_string(),
            path: src.to_path_buf(),
            expected: size,
            actual: total,
        });
    }
    out.sync_all().map_err(|e| ImageError::io(tmp, e))
}

/// The writer's PID in a temp name made by [`ImageStore::temp_path`] (`<what>-<pid>-<n>`).
fn temp_owner(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(3, '-');
    let _n: u64 = parts.next()?.parse().ok()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

#[cfg(test)]
mod temp_tests {
    use super::*;

    #[test]
    fn temp_names_give_their_writer() {
        assert_eq!(temp_owner("blob-1234-7"), Some(1234));
        assert_eq!(temp_owner("load-99-0"), Some(99));
        assert_eq!(temp_owner("blob-x-7"), None);
        assert_eq!(temp_owner("1234-7"), None);
        assert_eq!(temp_owner("notes.txt"), None);
    }

    #[test]
    fn orphan_temps_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let store = ImageStore::open(&paths).unwrap();
        let mine = store.temp_path("blob").unwrap();
        fs::write(&mine, b"in flight").unwrap();
        // PIDs above the kernel's pid_max cannot exist.
        let orphan = store.root().join(TMP_DIR).join("blob-99999999-3");
        fs::write(&orphan, b"left by a SIGKILL").unwrap();
        store.sweep_orphan_temps();
        assert!(mine.exists());
        assert!(!orphan.exists());
    }
}
