//! The image module's error type: every variant names the reference, digest, file or tar entry
//! at fault, so a user can tell which image or layer to fix.

use std::io;
use std::path::PathBuf;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("image {reference:?} is not in the local store; load it first with `peapod load <oci-layout-or-archive>`")]
    NotFound { reference: String },

    #[error("image reference {reference:?} is ambiguous: it matches {matches}")]
    Ambiguous { reference: String, matches: String },

    #[error("image {reference:?} is in use by {pods}; delete the pods first or pass --force")]
    InUse { reference: String, pods: String },

    #[error("image {reference:?} ({id}) is referenced by several names ({names}); remove them by name or pass --force")]
    ManyNames {
        reference: String,
        id: String,
        names: String,
    },

    #[error("cannot prune: image {reference:?} is unreadable ({reason}), so what it references is unknown; remove it with `peapod rmi --force {reference}` first")]
    PruneUnreadable { reference: String, reason: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("{path}: invalid {what}: {reason}")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },

    #[error("blob {digest} from {path}: content has digest sha256:{actual} (size {size}); refusing to store it")]
    DigestMismatch {
        digest: String,
        path: PathBuf,
        actual: String,
        size: u64,
    },

    #[error(
        "blob {digest} from {path}: size {actual} does not match the descriptor's size {expected}"
    )]
    SizeMismatch {
        digest: String,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    #[error("unsupported digest {digest:?}: only sha256 digests are supported")]
    UnsupportedDigest { digest: String },

    #[error("{source_name}: image name {name:?} is only a tag; pass --name <repository[:tag]> to name the image")]
    NameRequired { source_name: String, name: String },

    #[error(
        "{source_name}: no image name in the index annotations; pass --name <repository[:tag]>"
    )]
    NoName { source_name: String },

    #[error("{source_name}: the index holds {count} images but --name names one; load an index with a single image or drop --name")]
    NameForMany { source_name: String, count: usize },

    #[error("{index}: no linux/amd64 manifest in the image index")]
    NoPlatform { index: String },

    #[error("layer {digest}: unsupported media type {media_type}{hint}")]
    UnsupportedLayer {
        digest: String,
        media_type: String,
        hint: &'static str,
    },

    #[error("manifest {manifest}: {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCountMismatch {
        manifest: String,
        layers: usize,
        diff_ids: usize,
    },

    #[error("layer {digest}: uncompressed content has diff_id sha256:{actual}, the image config says {expected}")]
    DiffIdMismatch {
        digest: String,
        expected: String,
        actual: String,
    },

    #[error("layer {digest}: entry {entry:?}: {reason}")]
    UnsafeEntry {
        digest: String,
        entry: String,
        reason: String,
    },

    #[error("layer {digest}: entry {entry:?}: {source}")]
    Entry {
        digest: String,
        entry: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(path: impl Into<PathBuf>, what: &'static str, reason: impl ToString) -> Self {
        ImageError::Invalid {
            path: path.into(),
            what,
            reason: reason.to_string(),
        }
    }
}
