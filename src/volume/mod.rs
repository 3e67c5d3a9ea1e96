//! Pod volumes on the host: each volume of a pod that needs one gets a host directory, laid
//! out as the kubelet lays them out (`<pod dir>/volumes/kubernetes.io~<plugin>/<name>`), which
//! the containers bind-mount (`container::mounts`). The supervisor calls [`setup`] before it
//! creates the pod sandbox, and again to bring API-data volumes up to date; everything set up
//! here lives under the pod's directory, so teardown (`pod::teardown`) finds every mount and
//! file by the pod's uid alone (claims' data lives in the provisioner's directory instead).
//!
//! One file a volume kind: [`empty_dir`], [`host_path`], [`claim`] (persistentVolumeClaim and
//! ephemeral), `config_map`, `secret`, [`downward_api`], `projected`; the API-data kinds share
//! [`projection`] and write through the kubelet's [`atomic_writer`]. What every kind shares:
//! [`ownership`] (fsGroup), [`subpath`] (subPath bind mounts, made safely), [`usage`] (disk
//! usage for the emptyDir sizeLimit). Must not start processes or know about containers beyond
//! the paths it hands out.

pub mod atomic_writer;
pub mod claim;
mod config_map;
pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
pub mod ownership;
mod projected;
pub mod projection;
mod secret;
pub mod subpath;
pub mod usage;

pub use ownership::{
    apply_ownership, pod_fs_group, FsGroupChangePolicy, OwnershipError, OwnershipPolicy,
};

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, Volume};

use crate::container::env::NodeAllocatable;
use crate::object::{Refs, Snapshot};
use crate::store::Paths;

pub use projection::ProjectionError;
use projection::{default_mode, publish, Medium};

/// The directory of a pod's volumes, under its record directory.
pub const VOLUMES_DIR: &str = "volumes";

/// The directory of a pod's subPath bind mounts, under its record directory
/// [pkg/volume/util/subpath/subpath_linux.go containerSubPathDirectoryName].
pub const VOLUME_SUBPATHS_DIR: &str = "volume-subpaths";

/// The kubelet's plugin directory names [pkg/volume/*: `kubernetes.io~<plugin>`].
pub const PLUGIN_EMPTY_DIR: &str = "kubernetes.io~empty-dir";
pub const PLUGIN_CONFIG_MAP: &str = "kubernetes.io~configmap";
pub const PLUGIN_SECRET: &str = "kubernetes.io~secret";
pub const PLUGIN_DOWNWARD_API: &str = "kubernetes.io~downward-api";
pub const PLUGIN_PROJECTED: &str = "kubernetes.io~projected";

/// Errors setting up a volume; each names the volume. [`VolumeError::reason`] is what the
/// kubelet reports after the volume in its `FailedMount` event.
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
    /// A configMap, secret, downwardAPI or projected volume could not be projected.
    #[error("volume {volume:?}: {source}")]
    Project {
        volume: String,
        #[source]
        source: ProjectionError,
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
            | VolumeError::HostPath { volume, .. }
            | VolumeError::Project { volume, .. } => volume,
        }
    }

    /// The message without the volume: the kubelet's `MountVolume.SetUp failed for volume
    /// "v" : <reason>` (for a hostPath check, its text word for word).
    pub fn reason(&self) -> String {
        match self {
            VolumeError::Io { path, source, .. } => format!("{}: {source}", path.display()),
            VolumeError::Invalid { reason, .. } => reason.clone(),
            VolumeError::Claim { source, .. } => source.to_string(),
            VolumeError::Mount {
                what, path, source, ..
            } => format!("mount {what} at {}: {source}", path.display()),
            VolumeError::HostPath { error, .. } => error.to_string(),
            VolumeError::Project { source, .. } => source.to_string(),
        }
    }

    /// A claim the pod needs is missing, being deleted or not provisionable: the scheduler's
    /// business (the pod is not scheduled), not a mount failure.
    pub fn is_unschedulable(&self) -> bool {
        matches!(self, VolumeError::Claim { source, .. } if source.is_unschedulable())
    }
}

/// A volume's place on the host, as the containers mount it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    pub path: PathBuf,
    /// The kubelet mounts API-data volumes read-only whatever the volumeMount says
    /// [kubelet_pods.go makeMounts: `ReadOnly: mount.ReadOnly || mustMountRO`]; so are claims
    /// whose volume source says `readOnly: true`.
    pub read_only: bool,
}

impl HostVolume {
    fn writable(path: PathBuf) -> Self {
        HostVolume {
            path,
            read_only: false,
        }
    }
}

/// What [`setup`] needs to know about the pod.
#[derive(Debug, Clone, Copy)]
pub struct PodVolumes<'a> {
    pub paths: &'a Paths,
    pub uid: &'a str,
    pub pod: &'a Pod,
    /// The ConfigMaps and Secrets the volumes refer to.
    pub objects: &'a Snapshot,
    /// For downwardAPI resource values of containers without a limit.
    pub node: NodeAllocatable,
    /// This host's name (a bound claim's selected node).
    pub node_name: &'a str,
}

/// `<pod dir>/volumes/<plugin>/<name>`.
pub fn volume_dir(paths: &Paths, uid: &str, plugin: &str, name: &str) -> PathBuf {
    paths.pod_dir(uid).join(VOLUMES_DIR).join(plugin).join(name)
}

/// Where a subPath of `volume` is bind-mounted for `container`'s volumeMount `index`:
/// `<pod dir>/volume-subpaths/<volume>/<container>/<index>`.
pub fn sub_path_target(
    paths: &Paths,
    uid: &str,
    volume: &str,
    container: &str,
    index: usize,
) -> PathBuf {
    paths
        .pod_dir(uid)
        .join(VOLUME_SUBPATHS_DIR)
        .join(volume)
        .join(container)
        .join(index.to_string())
}

impl PodVolumes<'_> {
    /// `<pod dir>/volumes/<plugin>/<name>`.
    pub fn dir(&self, plugin: &str, name: &str) -> PathBuf {
        volume_dir(self.paths, self.uid, plugin, name)
    }

    fn volumes(&self) -> &[Volume] {
        pod_volumes(self.pod)
    }

    /// The pod's fsGroup, applied to API-data volumes as the kubelet's SetVolumeOwnership.
    fn fs_group(&self) -> Option<i64> {
        pod_fs_group(self.pod)
    }

    /// The directory of a claim, bound now if this pod is its first consumer.
    fn claim(&self, volume: &str, claim: &str, read_only: bool) -> Result<HostVolume, VolumeError> {
        let namespace = self.pod.metadata.namespace.as_deref().unwrap_or_default();
        let path = claim::bind(self.paths, namespace, claim, self.node_name).map_err(|source| {
            VolumeError::Claim {
                volume: volume.to_string(),
                source,
            }
        })?;
        Ok(HostVolume { path, read_only })
    }
}

fn pod_volumes(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

/// The volumes set up, and the errors of those that could not be (one `FailedMount` each).
#[derive(Debug, Default)]
pub struct SetUp {
    pub volumes: BTreeMap<String, HostVolume>,
    pub errors: Vec<VolumeError>,
}

/// Sets up every volume of the pod that needs a host directory and returns the host
/// directory of each by name. Idempotent: an emptyDir already set up is left as it is, a bound
/// claim keeps its directory, and API-data volumes are re-projected (the atomic writer
/// rewrites only what changed), which is also how they are updated. A volume that fails does
/// not stop the others.
pub fn setup(pod: &PodVolumes) -> SetUp {
    let mut out = SetUp::default();
    for v in pod.volumes() {
        let result = if let Some(ed) = &v.empty_dir {
            empty_dir_volume(pod, v, ed)
        } else if let Some(hp) = &v.host_path {
            host_path::setup(&v.name, hp).map(HostVolume::writable)
        } else if let Some(source) = &v.persistent_volume_claim {
            pod.claim(&v.name, &source.claim_name, source.read_only == Some(true))
        } else if let Some(template) = v
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
        {
            claim::ensure_ephemeral(pod.paths, pod.pod, &v.name, template)
                .map_err(|source| VolumeError::Claim {
                    volume: v.name.clone(),
                    source,
                })
                .and_then(|name| pod.claim(&v.name, &name, false))
        } else if let Some(cm) = &v.config_map {
            let files = config_map::payload(pod.objects, cm.into(), default_mode(cm.default_mode));
            publish(pod, PLUGIN_CONFIG_MAP, &v.name, Medium::Disk, files)
        } else if let Some(s) = &v.secret {
            let files = secret::payload(pod.objects, s.into(), default_mode(s.default_mode));
            publish(pod, PLUGIN_SECRET, &v.name, Medium::Memory, files)
        } else if let Some(d) = &v.downward_api {
            downward_api::setup(pod, &v.name, d)
        } else if let Some(p) = &v.projected {
            projected::setup(pod, &v.name, p)
        } else {
            continue;
        };
        match result {
            Ok(dir) => {
                out.volumes.insert(v.name.clone(), dir);
            }
            Err(e) => out.errors.push(e),
        }
    }
    out
}

fn empty_dir_volume(
    pod: &PodVolumes,
    v: &Volume,
    ed: &k8s_openapi::api::core::v1::EmptyDirVolumeSource,
) -> Result<HostVolume, VolumeError> {
    let medium = ed.medium.as_deref().unwrap_or(empty_dir::MEDIUM_DEFAULT);
    if ![empty_dir::MEDIUM_DEFAULT, empty_dir::MEDIUM_MEMORY].contains(&medium) {
        return Err(VolumeError::Invalid {
            volume: v.name.clone(),
            reason: format!("unknown storage medium {medium:?}"),
        });
    }
    empty_dir::setup(pod, &v.name, ed).map(HostVolume::writable)
}

/// True when the pod has a volume whose content follows the API (configMap, secret,
/// downwardAPI, projected): those the supervisor keeps up to date.
pub fn has_api_data(pod: &Pod) -> bool {
    pod_volumes(pod).iter().any(|v| {
        v.config_map.is_some()
            || v.secret.is_some()
            || v.downward_api.is_some()
            || v.projected.is_some()
    })
}

/// The ConfigMaps and Secrets the pod's volumes read.
pub fn volume_refs(pod: &Pod) -> Refs {
    let mut refs = Refs::default();
    for v in pod_volumes(pod) {
        if let Some(cm) = &v.config_map {
            refs.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = &v.secret {
            refs.secrets
                .insert(s.secret_name.clone().unwrap_or_default());
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                refs.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_mount_reason_is_the_kubelets() {
        let err = VolumeError::HostPath {
            volume: "v".into(),
            error: host_path::HostPathError::Missing("/x".into()),
        };
        assert_eq!(err.to_string(), "volume \"v\": hostPath /x doesn't exist");
        assert_eq!(err.reason(), "hostPath /x doesn't exist");
    }

    #[test]
    fn sub_path_targets_follow_the_kubelet_layout() {
        let paths = Paths {
            lib: "/var/lib/peapod".into(),
            run: "/run/peapod".into(),
            log: "/var/log/pods".into(),
        };
        assert_eq!(
            sub_path_target(&paths, "u1", "data", "app", 2),
            std::path::Path::new("/var/lib/peapod/pods/u1/volume-subpaths/data/app/2")
        );
    }
}
