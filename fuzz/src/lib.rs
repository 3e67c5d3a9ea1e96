//! What the fuzz targets share: where they may write, and sha256 digests as peapod spells them.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Set by `scripts/fuzz` to a private directory on tmpfs, removed when it ends.
pub const ENV_SCRATCH: &str = "PEAPOD_FUZZ_DIR";

/// Where a target makes its files: `$PEAPOD_FUZZ_DIR`, else `peapod-fuzz` in /dev/shm (tmpfs:
/// the store's fsyncs cost nothing there) or in the temp dir.
pub fn scratch_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV_SCRATCH).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let dir = base.join("peapod-fuzz");
    // A harness cannot run without it; the panic names the directory.
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
    dir
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
