//! How much disk a volume uses, measured like `du -x`: allocated blocks of every file and
//! directory on the volume's filesystem, hard links counted once. The kubelet measures emptyDir
//! volumes this way for its sizeLimit eviction [pkg/volume/metrics_du.go, pkg/volume/util/fs].
//!
//! The walk is bounded: a volume with more entries than the bound is reported with what was
//! counted so far, which is a lower bound of its usage (enough to evict, never too much).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// st_blocks counts 512-byte units (stat(2)).
const BLOCK_SIZE: u64 = 512;

/// A measured usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    /// False when the walk stopped at its bound: `bytes` is then a lower bound.
    pub complete: bool,
}

/// The disk usage of the tree at `dir`, looking at `max_entries` entries at most. Entries that
/// vanish during the walk (the pod is writing) are skipped.
pub fn disk_usage(dir: &Path, max_entries: usize) -> io::Result<Usage> {
    let root = fs::symlink_metadata(dir)?;
    let device = root.dev();
    let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
    let mut bytes = root.blocks() * BLOCK_SIZE;
    let mut entries = 1usize;
    let mut pending: Vec<PathBuf> = if root.is_dir() {
        vec![dir.to_path_buf()]
    } else {
        Vec::new()
    };
    while let Some(current) = pending.pop() {
        let listing = match fs::read_dir(&current) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in listing {
            if entries >= max_entries {
                return Ok(Usage {
                    bytes,
                    complete: false,
                });
            }
            let Ok(entry) = entry else { continue };
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            entries += 1;
            // -x: another filesystem mounted inside the volume is not the volume's usage.
            if meta.dev() != device {
                continue;
            }
            if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            bytes = bytes.saturating_add(meta.blocks() * BLOCK_SIZE);
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(Usage {
        bytes,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_allocated_blocks_once_per_inode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let empty = disk_usage(p, 1000).unwrap();
        assert!(empty.complete);
        fs::create_dir(p.join("sub")).unwrap();
        // Written data is allocated (unlike a sparse file of the same length).
        fs::write(p.join("sub/data"), vec![7u8; 256 * 1024]).unwrap();
        fs::hard_link(p.join("sub/data"), p.join("again")).unwrap();
        let full = disk_usage(p, 1000).unwrap();
        assert!(full.complete);
        let grown = full.bytes - empty.bytes;
        assert!(
            (256 * 1024..512 * 1024).contains(&grown),
            "the hard link counts once: grew by {grown}"
        );
        let sparse = fs::File::create(p.join("sparse")).unwrap();
        sparse.set_len(64 * 1024 * 1024).unwrap();
        assert!(disk_usage(p, 1000).unwrap().bytes < 64 * 1024 * 1024);
    }

    #[test]
    fn the_walk_stops_at_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            fs::write(dir.path().join(i.to_string()), b"x").unwrap();
        }
        let u = disk_usage(dir.path(), 5).unwrap();
        assert!(!u.complete);
        assert!(disk_usage(dir.path(), 100).unwrap().complete);
        assert!(disk_usage(&dir.path().join("missing"), 5).is_err());
    }
}
