//! Pod volumes on the host: each volume of a pod that needs one gets a host directory, laid
//! out as the kubelet lays them out (`<pod dir>/volumes/kubernetes.io~<plugin>/<name>`), which
//! the containers bind-mount (`container::mounts`). The supervisor calls [`setup`] before it
//! creates containers; everything set up here lives under the pod's directory, so teardown
//! (`pod::teardown`) finds every mount and file by the pod's uid alone.
//!
//! One file a volume kind: [`empty_dir`], [`host_path`]. What every kind shares: [`ownership`]
//! (fsGroup), [`subpath`] (subPath bind mounts, made safely), [`usage`] (disk usage for the
//! emptyDir sizeLimit). Must not start processes or know about containers beyond the paths it
//! hands out.

pub mod claim;
pub mod empty_dir;
pub mod host_path;
pub mod ownership;
pub mod subpath;
pub mod usage;

pub use ownership::{
    apply_ownership, pod_fs_group, FsGroupChangePolicy, OwnershipError, OwnershipPolicy,
};

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, Volume};

use crate::store::Paths;

/// The directory of a pod's volumes, under its record directory.
pub const VOLUMES_DIR: &str = "volumes";

/// The directory of a pod's subPath bind mounts, under its record directory
/// [pkg/volume/util/subpath/subpath_linux.go containerSubPathDirectoryName].
pub const VOLUME_SUBPATHS_DIR: &str = "volume-subpaths";

/// The kubelet's plugin directory names [pkg/volume/*: `kubernetes.io~<plugin>`].
pub const PLUGIN_EMPTY_DIR: &str = "kubernetes.io~empty-dir";

/// The prefix of the kubelet's FailedMount event message
/// [pkg/volume/util/operationexecutor/operation_generator.go GenerateMountVolumeFunc].
pub const MOUNT_SETUP_FAILED: &str = "MountVolume.SetUp failed";

/// Errors setting up a volume; each names the volume. The message after the volume is what
/// the kubelet reports in its `FailedMount` event.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {volume:?}: {reason}")]
    Invalid { volume: String, reason: String },
    /// The claim behind a persistentVolumeClaim or ephemeral volume cannot be used (yet).
    #[error("volume {volume:?}: {source}")]
    Claim {
        volume: String,
        #[source]
        source: claim::ClaimError,
    },
    #[error("volume {volume:?}: mount {what} at {path}: {source}")]
    Mount {
        volume: String,
        what: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("volume {volume:?}: {error}")]
    HostPath {
        volume: String,
        #[source]
        error: host_path::HostPathError,
    },
}

impl VolumeError {
    /// The volume at fault.
    pub fn volume(&self) -> &str {
        match self {
            VolumeError::Io { volume, .. }
            | VolumeError::Invalid { volume, .. }
            | VolumeError::Claim { volume, .. }
            | VolumeError::Mount { volume, .. }
            | VolumeError::HostPath { volume, .. } => volume,
        }
    }

    /// The message without the volume: for a hostPath check, the kubelet's text word for word.
    pub fn kubelet_message(&self) -> String {
        let full = self.to_string();
        let prefix = format!("volume {:?}: ", self.volume());
        full.strip_prefix(&prefix).unwrap_or(&full).to_string()
    }

    /// The kubelet's FailedMount event message:
    /// `MountVolume.SetUp failed for volume "v" : hostPath /x doesn't exist`.
    pub fn mount_failed_message(&self) -> String {
        format!(
            "{MOUNT_SETUP_FAILED} for volume {:?} : {}",
            self.volume(),
            self.kubelet_message()
        )
    }
}

/// What [`setup`] needs to know about the pod.
#[derive(Debug, Clone, Copy)]
pub struct PodVolumes<'a> {
    pub paths: &'a Paths,
    pub uid: &'a str,
    pub pod: &'a Pod,
    /// This host's name (a bound claim's selected node).
    pub node: &'a str,
}

impl PodVolumes<'_> {
    /// `<pod dir>/volumes/<plugin>/<name>`.
    pub fn dir(&self, plugin: &str, name: &str) -> PathBuf {
        self.paths
            .pod_dir(self.uid)
            .join(VOLUMES_DIR)
            .join(plugin)
            .join(name)
    }

    /// Where a subPath of `volume` is bind-mounted for `container`'s volumeMount `index`:
    /// `<pod dir>/volume-subpaths/<volume>/<container>/<index>`.
    pub fn sub_path_target(&self, volume: &str, container: &str, index: usize) -> PathBuf {
        self.paths
            .pod_dir(self.uid)
            .join(VOLUME_SUBPATHS_DIR)
            .join(volume)
            .join(container)
            .join(index.to_string())
    }

    fn volumes(&self) -> &[Volume] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
    }
}

/// The directory of a claim, bound now if this pod is its first consumer.
fn claim_dir(pod: &PodVolumes, volume: &str, claim: &str) -> Result<PathBuf, VolumeError> {
    let namespace = pod.pod.metadata.namespace.as_deref().unwrap_or_default();
    claim::bind(pod.paths, namespace, claim, pod.node).map_err(|source| VolumeError::Claim {
        volume: volume.to_string(),
        source,
    })
}

/// Sets up every volume of the pod that needs a host directory (idempotent: a volume already
/// set up is left as it is) and returns the host directory or file of each volume by name.
pub fn setup(pod: &PodVolumes) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut dirs = BTreeMap::new();
    for v in pod.volumes() {
        let dir = if let Some(ed) = &v.empty_dir {
            let medium = ed.medium.as_deref().unwrap_or(empty_dir::MEDIUM_DEFAULT);
            if ![empty_dir::MEDIUM_DEFAULT, empty_dir::MEDIUM_MEMORY].contains(&medium) {
                return Err(VolumeError::Invalid {
                    volume: v.name.clone(),
                    reason: format!("unknown storage medium {medium:?}"),
                });
            }
            empty_dir::setup(pod, &v.name, ed)?
        } else if let Some(hp) = &v.host_path {
            host_path::setup(&v.name, hp)?
        } else if let Some(source) = &v.persistent_volume_claim {
            claim_dir(pod, &v.name, &source.claim_name)?
        } else if let Some(template) = v
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
        {
            let claim = claim::ensure_ephemeral(pod.paths, pod.pod, &v.name, template).map_err(
                |source| VolumeError::Claim {
                    volume: v.name.clone(),
                    source,
                },
            )?;
            claim_dir(pod, &v.name, &claim)?
        } else {
            continue;
        };
        dirs.insert(v.name.clone(), dir);
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_mount_message_is_the_kubelets() {
        let err = VolumeError::HostPath {
            volume: "v".into(),
            error: host_path::HostPathError::Missing("/x".into()),
        };
        assert_eq!(err.to_string(), "volume \"v\": hostPath /x doesn't exist");
        assert_eq!(err.kubelet_message(), "hostPath /x doesn't exist");
        assert_eq!(
            err.mount_failed_message(),
            "MountVolume.SetUp failed for volume \"v\" : hostPath /x doesn't exist"
        );
    }

    #[test]
    fn sub_path_targets_follow_the_kubelet_layout() {
        let paths = Paths {
            lib: "/var/lib/peapod".into(),
            run: "/run/peapod".into(),
            log: "/var/log/pods".into(),
        };
        let pod = Pod::default();
        let volumes = PodVolumes {
            paths: &paths,
            uid: "u1",
            pod: &pod,
            node: "n",
        };
        assert_eq!(
            volumes.sub_path_target("data", "app", 2),
            std::path::Path::new("/var/lib/peapod/pods/u1/volume-subpaths/data/app/2")
        );
    }
}
