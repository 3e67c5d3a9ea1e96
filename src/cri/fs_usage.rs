//! `ImageFsInfo`: the disk space and inodes images take, measured as du(1) does (allocated
//! blocks, each inode once however many hard links it has, symlinks not followed) over the
//! content store's blobs and the unpacked layers. containerd reports its snapshotter's usage
//! only; peapod's images also hold their compressed blobs, and both count against the disk the
//! kubelet's image garbage collector watches. The walk runs on every call (on a blocking
//! thread): a few milliseconds for a store of ordinary images.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use k8s_cri::v1 as cri;

use crate::store::Paths;

/// Bytes and inodes of a set of trees.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// What every tree under `roots` uses; a root that does not exist counts nothing.
pub fn measure(roots: &[&Path]) -> io::Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    for root in roots {
        match std::fs::symlink_metadata(root) {
            Ok(_) => walk(root, &mut seen, &mut usage)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(usage)
}

fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>, usage: &mut Usage) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        // A layer being removed by a prune meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    if seen.insert((meta.dev(), meta.ino())) {
        usage.bytes += meta.blocks() * 512;
        usage.inodes += 1;
    }
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        for entry in entries {
            walk(&entry?.path(), seen, usage)?;
        }
    }
    Ok(())
}

/// The `ImageFsInfo` answer: one image filesystem, identified by the content store's
/// directory, and no separate container filesystem (containerd's answer on one disk).
pub fn image_fs_info(paths: &Paths) -> io::Result<cri::ImageFsInfoResponse> {
    let images = paths.images();
    let layers = paths.layers();
    let usage = measure(&[&images, &layers])?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default();
    Ok(cri::ImageFsInfoResponse {
        image_filesystems: vec![cri::FilesystemUsage {
            timestamp,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: images.display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value { value: usage.bytes }),
            inodes_used: Some(cri::UInt64Value {
                value: usage.inodes,
            }),
        }],
        container_filesystems: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_and_inodes_once_per_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("f"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(a.join("f"), a.join("g")).unwrap();
        std::os::unix::fs::symlink("/etc", a.join("link")).unwrap();
        let u = measure(&[&a, &dir.path().join("missing")]).unwrap();
        // The dir, one file (two names), the symlink.
        assert_eq!(u.inodes, 3);
        assert!(u.bytes >= 10_000, "{u:?}");
        let f_blocks = std::fs::metadata(a.join("f")).unwrap().blocks() * 512;
        assert!(
            u.bytes < 2 * f_blocks + 8192,
            "the hard link counted once: {u:?}"
        );
    }
}
