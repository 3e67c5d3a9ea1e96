//! Talking to registries: the registries configuration (mirrors, plain-HTTP hosts, CAs), the
//! credentials files, and a client over `oci-client` that fetches manifests and streams blobs
//! with the right Accept headers, auth, retries and error classification. What to do with the
//! bytes (verify, store, unpack) belongs to `image::pull` and `image::push`.

pub mod auth;
pub(crate) mod client;
pub mod config;
pub(crate) mod retry;

use std::time::Duration;

use crate::image::error::ImageError;
use crate::store::Paths;

pub use auth::{Credential, Credentials, PullAuth, PullSecret, ENV_AUTH_FILE};
pub use config::{
    Endpoint, RegistriesConfig, RegistryConfig, DEFAULT_REGISTRIES_CONFIG, ENV_REGISTRIES_CONFIG,
};

/// Layers downloaded at once unless told otherwise (containerd and Docker use 3 too).
pub const DEFAULT_MAX_CONCURRENT_DOWNLOADS: usize = 3;

/// What a pull or push needs besides the reference.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub registries: RegistriesConfig,
    pub credentials: Credentials,
    /// Credentials given with this pull: when set, the files are not consulted.
    pub request_auth: Option<PullAuth>,
    pub max_concurrent_downloads: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            registries: RegistriesConfig::default(),
            credentials: Credentials::none(),
            request_auth: None,
            max_concurrent_downloads: DEFAULT_MAX_CONCURRENT_DOWNLOADS,
        }
    }
}

impl PullOptions {
    /// The registries configuration and credentials files as the environment names them.
    pub fn from_env(paths: &Paths) -> Result<PullOptions, ImageError> {
        Ok(PullOptions {
            registries: RegistriesConfig::load()?,
            credentials: Credentials::load(paths)?,
            request_auth: None,
            max_concurrent_downloads: DEFAULT_MAX_CONCURRENT_DOWNLOADS,
        })
    }
}

/// Progress of a pull, delivered from any thread, in order for each layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    Resolving {
        reference: String,
        endpoint: String,
    },
    Resolved {
        reference: String,
        manifest_digest: String,
        /// (digest, compressed size) of each layer, bottom first.
        layers: Vec<(String, u64)>,
    },
    LayerStarted {
        digest: String,
        size: u64,
    },
    /// Throttled: at most one every [`PROGRESS_STEP`] bytes, plus the last one.
    LayerProgress {
        digest: String,
        done: u64,
        total: u64,
    },
    /// `cached`: the blob and the unpacked layer were already there.
    LayerDone {
        digest: String,
        cached: bool,
    },
    Retrying {
        what: String,
        attempt: u32,
        error: String,
        delay: Duration,
    },
}

/// How many bytes between two `LayerProgress` events.
pub const PROGRESS_STEP: u64 = 256 * 1024;
