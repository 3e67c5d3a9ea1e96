//! emptyDir: a directory of the pod's, on the node's disk or (medium Memory) a tmpfs
//! [pkg/volume/emptydir/empty_dir.go]. World-writable (0777) unless the alpha `mode` field says
//! otherwise; with a pod fsGroup its ownership is set once, when it is made. A disk emptyDir's
//! `sizeLimit` is enforced by eviction (the supervisor measures it, see [`super::usage`]); a
//! memory one's is the tmpfs size.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod};
use nix::mount::MsFlags;

use super::{apply_ownership, pod_fs_group, OwnershipPolicy};
use super::{PodVolumes, VolumeError, PLUGIN_EMPTY_DIR};
use crate::manifest::quantity::parse_quantity;

/// The kubelet makes emptyDirs world-writable [empty_dir.go defaultPerm].
pub const DEFAULT_MODE: u32 = 0o777;
/// The largest `emptyDir.mode`: permission bits and the sticky bit [KEP-5502].
pub const MAX_MODE: i32 = 0o1777;
pub const MEDIUM_DEFAULT: &str = "";
pub const MEDIUM_MEMORY: &str = "Memory";
/// `HugePages` and `HugePages-<size>` media (hugetlbfs), which peapod does not offer.
pub const MEDIUM_HUGE_PAGES_PREFIX: &str = "HugePages";

/// The directory's mode: `emptyDir.mode`, else 0777.
pub fn dir_mode(source: &EmptyDirVolumeSource) -> u32 {
    source
        .mode
        .and_then(|m| u32::try_from(m).ok())
        .map(|m| m & 0o7777)
        .unwrap_or(DEFAULT_MODE)
}

/// The bytes of `sizeLimit`, when it is set and positive.
pub fn size_limit_bytes(source: &EmptyDirVolumeSource) -> Option<u64> {
    let q = parse_quantity(&source.size_limit.as_ref()?.0).ok()?;
    u64::try_from(q.value_ceil()).ok().filter(|b| *b > 0)
}

/// The tmpfs size of a memory emptyDir: the node's memory, lowered to the pod's memory limit
/// (its pod cgroup's) and to the volume's sizeLimit, whichever is smaller
/// [empty_dir.go calculateEmptyDirMemorySize].
pub fn memory_size(pod: &Pod, source: &EmptyDirVolumeSource, node_memory_bytes: u64) -> u64 {
    let mut size = if node_memory_bytes == 0 {
        u64::MAX
    } else {
        node_memory_bytes
    };
    // The pod cgroup's memory limit, as the kubelet computes it for both.
    let pod_limit = crate::cgroup::pod_resources(pod)
        .ok()
        .and_then(|r| r.memory_limit_bytes);
    if let Some(pod_limit) = pod_limit {
        if pod_limit > 0 && pod_limit <= size {
            size = pod_limit;
        }
    }
    if let Some(limit) = size_limit_bytes(source) {
        if limit <= size {
            size = limit;
        }
    }
    size
}

/// A tmpfs is mounted on the directory (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(own), Some(Ok(parent))) = (fs::metadata(dir), dir.parent().map(fs::metadata)) else {
        return false;
    };
    own.dev() != parent.dev()
}

pub(super) fn setup(
    pod: &PodVolumes,
    name: &str,
    source: &EmptyDirVolumeSource,
) -> Result<PathBuf, VolumeError> {
    let dir = pod.dir(PLUGIN_EMPTY_DIR, name);
    let memory = source.medium.as_deref() == Some(MEDIUM_MEMORY);
    if dir.exists() && (!memory || is_mount_point(&dir)) {
        return Ok(dir);
    }
    let io = |source| VolumeError::Io {
        volume: name.to_string(),
        path: dir.clone(),
        source,
    };
    let mode = dir_mode(source);
    fs::create_dir_all(&dir).map_err(io)?;
    // Exactly the mode: mkdir applied our umask.
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(io)?;
    if memory {
        let size = memory_size(pod.pod, source, crate::procfs::mem_total_bytes());
        // Without a mode the tmpfs root keeps the kernel's 1777, as under the kubelet (which
        // passes only the size).
        let mut opts = format!("size={size}");
        if source.mode.is_some() {
            opts.push_str(&format!(",mode={mode:o}"));
        }
        nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .map_err(|source| VolumeError::Mount {
            volume: name.to_string(),
            what: "tmpfs".into(),
            path: dir.clone(),
            source,
        })?;
    }
    // Once, when the volume is made; a failure is logged and the volume used as it is, as the
    // kubelet does.
    if let Err(e) = apply_ownership(&dir, pod_fs_group(pod.pod), OwnershipPolicy::READ_WRITE) {
        tracing::warn!(volume = name, error = %e, "emptyDir ownership for fsGroup failed");
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod(yaml: &str) -> Pod {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn memory_size_is_the_smallest_limit() {
        const GI: u64 = 1 << 30;
        let limited =
            pod("spec:\n  containers:\n  - name: a\n    resources: {limits: {memory: 1Gi}}\n");
        let unlimited = pod("spec:\n  containers:\n  - name: a\n  - name: b\n    resources: {limits: {memory: 1Gi}}\n");
        let mut ed = EmptyDirVolumeSource::default();
        assert_eq!(memory_size(&unlimited, &ed, 8 * GI), 8 * GI);
        assert_eq!(memory_size(&limited, &ed, 8 * GI), GI);
        ed.size_limit = Some(Quantity("64Mi".into()));
        assert_eq!(memory_size(&limited, &ed, 8 * GI), 64 << 20);
        ed.size_limit = Some(Quantity("2Gi".into()));
        assert_eq!(memory_size(&limited, &ed, 8 * GI), GI);
        assert_eq!(memory_size(&unlimited, &ed, 0), 2 * GI);
    }

    #[test]
    fn mode_defaults_to_0777() {
        let mut ed = EmptyDirVolumeSource::default();
        assert_eq!(dir_mode(&ed), 0o777);
        ed.mode = Some(0o1777);
        assert_eq!(dir_mode(&ed), 0o1777);
        ed.mode = Some(0o750);
        assert_eq!(dir_mode(&ed), 0o750);
        assert_eq!(size_limit_bytes(&ed), None);
        ed.size_limit = Some(Quantity("10Mi".into()));
        assert_eq!(size_limit_bytes(&ed), Some(10 << 20));
        ed.size_limit = Some(Quantity("0".into()));
        assert_eq!(size_limit_bytes(&ed), None);
    }
}
