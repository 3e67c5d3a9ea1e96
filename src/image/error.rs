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

    #[error("registries config {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },

    /// Wraps whatever went wrong while pulling, naming the reference as the user wrote it.
    #[error("pulling image {reference:?}: {cause}")]
    Pull {
        reference: String,
        cause: Box<ImageError>,
    },

    #[error("pushing image {reference:?}: {cause}")]
    Push {
        reference: String,
        cause: Box<ImageError>,
    },

    #[error("manifest unknown: {endpoint} has no {what} in {repository} (404)")]
    ManifestUnknown {
        endpoint: String,
        repository: String,
        /// `tag "latest"` or `manifest sha256:...`.
        what: String,
    },

    #[error("blob unknown: {endpoint} has no blob {digest} in {repository} (404)")]
    BlobUnknown {
        endpoint: String,
        repository: String,
        digest: String,
    },

    #[error("{}: {endpoint} {} for {repository} ({status}); log in with \"peapod login {login_host}\"",
        if *status == 403 { "denied" } else { "unauthorized" },
        if *had_credentials { "refused the credentials" } else { "requires credentials" })]
    Unauthorized {
        endpoint: String,
        repository: String,
        status: u16,
        had_credentials: bool,
        login_host: String,
    },

    #[error("blob {digest} has digest {actual} (corrupt or tampered); nothing was stored")]
    BlobCorrupt { digest: String, actual: String },

    #[error("blob {digest}: the registry sent {actual} bytes, the manifest says {expected}; nothing was stored")]
    BlobSize {
        digest: String,
        expected: u64,
        actual: u64,
    },

    #[error("{endpoint}: manifest of {repository} has digest {actual}, expected {expected} (corrupt or tampered)")]
    ManifestCorrupt {
        endpoint: String,
        repository: String,
        expected: String,
        actual: String,
    },

    #[error("{endpoint}: {repository} is a Docker schema 1 manifest, which peapod does not support (deprecated since 2017); push the image again with a current docker, buildah or skopeo")]
    Schema1 {
        endpoint: String,
        repository: String,
    },

    #[error("{endpoint}: invalid {what} {digest}: {reason}")]
    BadManifest {
        endpoint: String,
        what: &'static str,
        digest: String,
        reason: String,
    },

    /// A registry answer that is neither success nor one of the cases above.
    #[error("{endpoint}: {message}")]
    Registry {
        endpoint: String,
        status: Option<u16>,
        message: String,
        transient: bool,
    },

    /// A connection-level failure (refused, reset, timeout, truncated body).
    #[error("{endpoint}: {cause}")]
    Network { endpoint: String, cause: String },

    #[error("cannot reach {endpoint} after {attempts} attempts: {cause}")]
    Unreachable {
        endpoint: String,
        attempts: u32,
        cause: String,
    },

    /// Every endpoint (mirrors, then the registry) failed; each error names its endpoint.
    #[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; then "))]
    AllEndpoints { errors: Vec<ImageError> },
}

impl ImageError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    /// True for failures that may go away by themselves: connection refused/reset, timeouts,
    /// 5xx and 429 answers. 401, 403, 404 and digest mismatches are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            ImageError::Network { .. } | ImageError::Unreachable { .. } => true,
            ImageError::Registry { transient, .. } => *transient,
            ImageError::Pull { cause, .. } | ImageError::Push { cause, .. } => cause.is_transient(),
            ImageError::AllEndpoints { errors } => errors.last().is_some_and(|e| e.is_transient()),
            _ => false,
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
