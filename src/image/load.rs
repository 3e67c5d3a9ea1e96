//! `peapod load`: copies an OCI image layout (a directory, or an OCI archive: a tar, optionally
//! gzip, of one) into the store, verifying every blob, names the images, unpacks their layers
//! and records them in the store's `index.json`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Arch, Descriptor, ImageIndex, Os};

use super::error::ImageError;
use super::reference::{is_bare_tag, normalize_reference};
use super::store::{kind, layer_compression, read_index_file, ImageStore, Kind, INDEX_FILE};
use super::unpack::sha256_hex;
use super::{
    ImageSummary, CONTAINERD_NAME_ANNOTATION, INDEX_DIGEST_ANNOTATION, REF_NAME_ANNOTATION,
};

/// How deep indexes may nest before a layout is considered malformed.
const MAX_INDEX_DEPTH: usize = 4;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A directory removed when dropped (archive extraction).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            tracing::warn!(path = ?self.0, error = %e, "failed to remove a temp directory");
        }
    }
}

impl ImageStore {
    /// Loads the images of an OCI layout directory or OCI archive at `src`. `name` names the
    /// image (the layout must then hold exactly one); otherwise the index annotations do.
    pub fn load(&self, src: &Path, name: Option<&str>) -> Result<Vec<ImageSummary>, ImageError> {
        let meta = fs::metadata(src).map_err(|e| ImageError::io(src, e))?;
        let _extracted;
        let layout = if meta.is_dir() {
            src.to_path_buf()
        } else {
            let dir = self.temp_path("load")?;
            fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
            _extracted = TempDir(dir.clone());
            extract_archive(src, &dir)?;
            dir
        };
        let index = read_index_file(&layout.join(INDEX_FILE)).map_err(|e| match e {
            ImageError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ImageError::invalid(src, "OCI image layout", "no index.json")
            }
            e => e,
        })?;
        let source_name = src.display().to_string();
        let names = image_names(&index, name, &source_name)?;

        let mut loaded = Vec::new();
        for (desc, name) in index.manifests().iter().zip(names) {
            let manifest_desc = self.copy_image(&layout, desc, 0)?;
            let digest = manifest_desc.digest().to_string();
            let manifest = self.read_manifest(&digest)?;
            let config = self.read_config(manifest.config().digest().as_ref())?;
            self.unpack_layers(&digest, &manifest, &config)?;
            tracing::info!(image = %name, manifest = %digest, "loaded image");
            loaded.push((name, manifest_desc));
        }
        self.record(&loaded)?;
        loaded
            .iter()
            .map(|(name, d)| self.summary(name, d))
            .collect()
    }

    /// Copies what `desc` reaches into the store; returns the linux/amd64 manifest descriptor.
    fn copy_image(
        &self,
        layout: &Path,
        desc: &Descriptor,
        depth: usize,
    ) -> Result<Descriptor, ImageError> {
        let digest = desc.digest().to_string();
        let blob = self.put_blob(desc, &source_blob(layout, &digest)?)?;
        match kind(desc.media_type()) {
            Kind::Index if depth < MAX_INDEX_DEPTH => {
                let nested: ImageIndex = read_index_file(&blob)?;
                let chosen = pick_platform(&nested, &digest)?;
                let mut manifest = self.copy_image(layout, chosen, depth + 1)?;
                let mut ann = manifest.annotations().clone().unwrap_or_default();
                ann.insert(INDEX_DIGEST_ANNOTATION.to_string(), digest);
                manifest.set_annotations(Some(ann));
                Ok(manifest)
            }
            Kind::Manifest => {
                let manifest = self.read_manifest(&digest)?;
                // Refuse unsupported layers before copying anything large.
                for layer in manifest.layers() {
                    layer_compression(layer)?;
                }
                let config = manifest.config();
                let config_digest = config.digest().to_string();
                self.put_blob(config, &source_blob(layout, &config_digest)?)?;
                for layer in manifest.layers() {
                    let d = layer.digest().to_string();
                    self.put_blob(layer, &source_blob(layout, &d)?)?;
                }
                let mut out = Descriptor::new(
                    desc.media_type().clone(),
                    desc.size(),
                    desc.digest().clone(),
                );
                out.set_platform(desc.platform().clone());
                Ok(out)
            }
            _ => Err(ImageError::invalid(
                &blob,
                "image descriptor",
                format!(
                    "{digest} has media type {} (expected an image manifest or index)",
                    desc.media_type()
                ),
            )),
        }
    }
}

fn source_blob(layout: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    Ok(layout
        .join("blobs")
        .join("sha256")
        .join(sha256_hex(digest)?))
}

/// linux/amd64 from a multi-platform index, preferring an entry without a variant (or the
/// baseline `v1`) over micro-architecture variants such as `v3` this CPU may lack; a single
/// entry without a platform is taken as is.
pub(crate) fn pick_platform<'a>(
    index: &'a ImageIndex,
    digest: &str,
) -> Result<&'a Descriptor, ImageError> {
    let ms = index.manifests();
    let amd64 = |d: &&Descriptor| {
        d.platform()
            .as_ref()
            .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == Arch::Amd64)
    };
    let baseline = |d: &&Descriptor| {
        d.platform()
            .as_ref()
            .is_some_and(|p| matches!(p.variant().as_deref(), None | Some("v1")))
    };
    ms.iter()
        .filter(amd64)
        .find(baseline)
        .or_else(|| ms.iter().find(amd64))
        .or_else(|| match ms.as_slice() {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
        .ok_or_else(|| ImageError::NoPlatform {
            index: digest.to_string(),
        })
}

/// The normalized name of each top-level image of `index`.
fn image_names(
    index: &ImageIndex,
    name: Option<&str>,
    source_name: &str,
) -> Result<Vec<String>, ImageError> {
    let ms = index.manifests();
    if ms.is_empty() {
        return Err(ImageError::invalid(
            source_name,
            "OCI image layout",
            "index.json lists no images",
        ));
    }
    if let Some(n) = name {
        if ms.len() != 1 {
            return Err(ImageError::NameForMany {
                source_name: source_name.to_string(),
                count: ms.len(),
            });
        }
        return Ok(vec![normalize_reference(n)?]);
    }
    ms.iter()
        .map(|d| {
            let ann = d.annotations().clone().unwrap_or_default();
            let ref_name = ann.get(REF_NAME_ANNOTATION);
            if let Some(r) = ref_name.filter(|r| !is_bare_tag(r)) {
                return normalize_reference(r);
            }
            if let Some(c) = ann.get(CONTAINERD_NAME_ANNOTATION) {
                return normalize_reference(c);
            }
            Err(match ref_name {
                Some(tag) => ImageError::NameRequired {
                    source_name: source_name.to_string(),
                    name: tag.clone(),
                },
                None => ImageError::NoName {
                    source_name: source_name.to_string(),
                },
            })
        })
        .collect()
}

/// Extracts the layout files of an OCI archive (tar or tar+gzip) into `dest`. Only
/// `oci-layout`, `index.json` and `blobs/sha256/<hex>` regular files are taken; blobs are
/// verified later, when they are copied into the store.
fn extract_archive(archive: &Path, dest: &Path) -> Result<(), ImageError> {
    let open = || File::open(archive).map_err(|e| ImageError::io(archive, e));
    let mut magic = [0u8; 2];
    let gz = open()?.read_exact(&mut magic).is_ok() && magic == GZIP_MAGIC;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(open()?)))
    } else {
        Box::new(BufReader::new(open()?))
    };
    let bad = |e: io::Error| ImageError::invalid(archive, "OCI archive", e);
    let blobs = dest.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| ImageError::io(&blobs, e))?;
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let rel = path.trim_start_matches("./");
        let target = match rel {
            "oci-layout" | "index.json" => dest.join(rel),
            _ => match rel.strip_prefix("blobs/sha256/") {
                Some(hex) if sha256_hex(&format!("sha256:{hex}")).is_ok() => blobs.join(hex),
                _ => {
                    tracing::debug!(entry = %path, "ignoring a non-layout file in the archive");
                    continue;
                }
            },
        };
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&target)
            .map_err(|e| ImageError::io(&target, e))?;
        io::copy(&mut entry, &mut out).map_err(|e| ImageError::io(&target, e))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
