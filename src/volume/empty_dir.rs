//! emptyDir: a directory of the pod's, on the node's disk or (medium Memory) a tmpfs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
use nix::mount::MsFlags;

use super::{PodVolumes, VolumeError, PLUGIN_EMPTY_DIR};

/// The kubelet makes emptyDirs world-writable.
const EMPTY_DIR_MODE: u32 = 0o777;
const MEDIUM_MEMORY: &str = "Memory";

pub(super) fn setup(
    pod: &PodVolumes,
    name: &str,
    source: &EmptyDirVolumeSource,
) -> Result<PathBuf, VolumeError> {
    let dir = pod.dir(PLUGIN_EMPTY_DIR, name);
    if dir.exists() {
        return Ok(dir);
    }
    let io = |source| VolumeError::Io {
        volume: name.to_string(),
        path: dir.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(io)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(EMPTY_DIR_MODE)).map_err(io)?;
    if source.medium.as_deref() == Some(MEDIUM_MEMORY) {
        let mut opts = format!("mode={EMPTY_DIR_MODE:o}");
        if let Some(limit) = &source.size_limit {
            let bytes = crate::manifest::quantity::parse_quantity(&limit.0)
                .map_err(|e| VolumeError::Invalid {
                    volume: name.to_string(),
                    reason: format!("emptyDir.sizeLimit: {e}"),
                })?
                .value_ceil();
            opts.push_str(&format!(",size={bytes}"));
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
    Ok(dir)
}
