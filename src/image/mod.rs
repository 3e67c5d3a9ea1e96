//! Images: references, the content store (an OCI image layout under `Paths::images`), pulling
//! from and pushing to registries, loading OCI layouts and archives, and safe layer unpacking
//! into `Paths::layers`.
//!
//! - [`ImageStore::open`] creates/opens the store; [`ImageStore::list`] lists,
//!   [`ImageStore::resolve`] finds an image by reference or id prefix and unpacks its layers on
//!   demand.
//! - [`ImageStore::pull`] (`pull.rs`, layers streamed by `fetch.rs`) brings an image in from a
//!   registry: endpoints and credentials come from [`PullOptions`] (`registry::config`,
//!   `registry::auth`), the HTTP side is `registry::client` over oci-client, retries are
//!   `registry::retry`. Layers are verified and unpacked while they download; nothing is named
//!   in `index.json` until every piece is in place. [`ImageStore::push`] and [`check_login`]
//!   are in `push.rs`.
//! - [`decode_top_level`], [`decode_index_entry`], [`decode_config`] (`document.rs`): the
//!   registry's JSON documents as a pull decodes them, pure functions of the bytes.
//! - [`ImageStore::load`] copies a layout or archive in (every blob verified).
//! - [`Image::layers`] are unpacked layer directories, bottom first, ready as overlay lowerdirs
//!   (overlay wants them top first: reverse them).
//! - [`ImageStore::remove`] untags and deletes images (`rmi`), [`ImageStore::prune`] deletes
//!   the blobs and unpacked layers no image reaches (`image prune`).

mod document;
mod error;
mod fetch;
mod gc;
mod load;
mod pull;
mod push;
mod reference;
pub mod registry;
mod store;
mod unpack;

use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;

pub use document::{decode_config, decode_index_entry, decode_top_level, Origin, TopLevel};
pub use error::ImageError;
pub use gc::{Pruned, RemovalCheck, Removed, TMP_MAX_AGE};
pub use pull::{PullOutcome, RemoteRef};
pub use push::check_login;
pub use reference::{is_bare_tag, normalize_reference, split_reference, NO_TAG};
pub use registry::{
    Credential, Credentials, PullAuth, PullEvent, PullOptions, PullSecret, RegistriesConfig,
    DEFAULT_REGISTRIES_CONFIG,
};
pub use store::{ImageStore, NamedImage};
pub use unpack::{unpack_layer_from, Compression, OVERLAY_OPAQUE_XATTR};

/// The OCI annotation naming an image in an index (image-spec annotations.md).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The full image name containerd's `ctr export` writes next to a bare-tag ref.name.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// Set on a stored manifest descriptor that was picked out of a multi-platform index.
pub const INDEX_DIGEST_ANNOTATION: &str = "dev.peapod.image.index.digest";
/// Set on a pulled image's manifest descriptor: `<repository>@<top-level digest>`.
pub const REPO_DIGEST_ANNOTATION: &str = "dev.peapod.image.repo.digest";

/// One image of the store, as `peapod images` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageSummary {
    /// The full normalized reference, `docker.io/library/busybox:latest`.
    pub reference: String,
    pub repository: String,
    /// The tag, or [`NO_TAG`] for an image named by digest only.
    pub tag: String,
    pub manifest_digest: String,
    /// The digest of the multi-platform index the manifest was picked from, if it was: what a
    /// registry knows the image by (`images --digests`, Docker's RepoDigests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// The config digest, as Docker's image id.
    pub id: String,
    pub created: Option<String>,
    /// Compressed layer sizes plus the config size.
    pub size: u64,
}

/// A resolved image with its layers unpacked.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: String,
    pub manifest_digest: String,
    pub id: String,
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
    /// `<repository>@sha256:...` of what the registry served (the index digest when the
    /// reference named an index); `None` for images that came in through `peapod load`.
    pub repo_digest: Option<String>,
}
