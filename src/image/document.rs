//! The JSON documents a registry serves for an image, decoded as a pull decodes them: the
//! top-level document a tag or digest names (an image manifest, or an index from which this
//! host's manifest is picked), the manifest an index entry points to, and the image config.
//!
//! Pure functions of the bytes: `image::pull` calls them after fetching and verifying, and the
//! fuzz targets in `fuzz/` call the very same functions on hostile input. Where the bytes came
//! from ([`Origin`]) only names the registry in errors. No I/O here.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::error::ImageError;
use super::load::pick_platform;
use super::registry::config::Endpoint;
use super::store::{kind, layer_compression, Kind};

/// The media types guessed for a document without a `mediaType` field.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Where a document came from, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub endpoint: &'a Endpoint,
    pub repository: &'a str,
}

/// What a tag or digest named at a registry.
#[derive(Debug, Clone)]
pub enum TopLevel {
    /// A multi-platform index and the entry picked for this host (linux/amd64).
    Index {
        media_type: String,
        index: ImageIndex,
        chosen: Descriptor,
    },
    /// A single image manifest whose layers peapod can unpack.
    Manifest {
        media_type: String,
        manifest: ImageManifest,
    },
}

/// Decodes the document a tag or digest named (`digest` is the sha256 of `bytes`): an index
/// with this host's entry picked, or a manifest whose layers all have a supported media type.
pub fn decode_top_level(
    origin: Origin<'_>,
    digest: &str,
    bytes: &[u8],
) -> Result<TopLevel, ImageError> {
    let media_type = media_type_of(origin, digest, bytes)?;
    match kind(&MediaType::from(media_type.as_str())) {
        Kind::Index => {
            let index = ImageIndex::from_reader(bytes)
                .map_err(|e| bad(origin, "image index", digest, e))?;
            let chosen = pick_platform(&index, digest)?.clone();
            Ok(TopLevel::Index {
                media_type,
                index,
                chosen,
            })
        }
        Kind::Manifest => Ok(TopLevel::Manifest {
            manifest: decode_manifest(origin, digest, bytes)?,
            media_type,
        }),
        _ => Err(bad(
            origin,
            "manifest",
            digest,
            format!("unsupported media type {media_type}"),
        )),
    }
}

/// Decodes the manifest `digest` that the entry of index `index_digest` pointed to; returns
/// its media type and the manifest. Anything but an image manifest is refused (an index may
/// not point to another index here).
pub fn decode_index_entry(
    origin: Origin<'_>,
    index_digest: &str,
    digest: &str,
    bytes: &[u8],
) -> Result<(String, ImageManifest), ImageError> {
    let media_type = media_type_of(origin, digest, bytes)?;
    if kind(&MediaType::from(media_type.as_str())) != Kind::Manifest {
        return Err(bad(
            origin,
            "image index",
            index_digest,
            format!("entry {digest} is a {media_type}, not an image manifest"),
        ));
    }
    Ok((media_type, decode_manifest(origin, digest, bytes)?))
}

/// Decodes the image config `digest`.
pub fn decode_config(
    origin: Origin<'_>,
    digest: &str,
    bytes: &[u8],
) -> Result<ImageConfiguration, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| bad(origin, "image config", digest, e))
}

/// The document's media type: its `mediaType` field, else guessed from its shape (both are
/// optional in OCI). Docker schema 1 is refused here with a clear message.
fn media_type_of(origin: Origin<'_>, digest: &str, bytes: &[u8]) -> Result<String, ImageError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Peek {
        schema_version: Option<i64>,
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    let peek: Peek =
        serde_json::from_slice(bytes).map_err(|e| bad(origin, "manifest", digest, e))?;
    let mt = peek.media_type.unwrap_or_default();
    if peek.schema_version == Some(1)
        || mt.starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err(ImageError::Schema1 {
            endpoint: origin.endpoint.host.clone(),
            repository: origin.repository.to_string(),
        });
    }
    if !mt.is_empty() {
        return Ok(mt);
    }
    if peek.manifests.is_some() {
        Ok(OCI_INDEX.to_string())
    } else if peek.layers.is_some() {
        Ok(OCI_MANIFEST.to_string())
    } else {
        Err(bad(
            origin,
            "manifest",
            digest,
            "neither an image manifest nor an index",
        ))
    }
}

fn decode_manifest(
    origin: Origin<'_>,
    digest: &str,
    bytes: &[u8],
) -> Result<ImageManifest, ImageError> {
    let m =
        ImageManifest::from_reader(bytes).map_err(|e| bad(origin, "image manifest", digest, e))?;
    // Refuse layers we cannot unpack before downloading anything large.
    for l in m.layers() {
        layer_compression(l)?;
    }
    Ok(m)
}

fn bad(origin: Origin<'_>, what: &'static str, digest: &str, reason: impl ToString) -> ImageError {
    ImageError::BadManifest {
        endpoint: origin.endpoint.url(),
        what,
        digest: digest.to_string(),
        reason: reason.to_string(),
    }
}
