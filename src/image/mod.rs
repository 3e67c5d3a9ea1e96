//! Images: references, the content store (an OCI image layout under `Paths::images`), loading
//! OCI layouts and archives, and safe layer unpacking into `Paths::layers`.
//!
//! INTERFACE (filled in by the image work):
//! - `ImageStore::open(&Paths)`, `load(path, name: Option<&str>) -> Vec<ImageSummary>`,
//!   `list() -> Vec<ImageSummary>`, `resolve(reference) -> Image` (layers unpacked on demand).
//! - `Image { reference, manifest_digest, id, config: ImageConfiguration, layers: Vec<PathBuf> }`
//!   with `layers` bottom first.
