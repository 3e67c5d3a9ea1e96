//! Pod volumes on the host: each volume of a pod that needs one gets a host directory, laid
//! out as the kubelet lays them out (`<pod dir>/volumes/kubernetes.io~<plugin>/<name>`), which
//! the containers bind-mount (`container::mounts`). The supervisor calls [`setup`] before it
//! creates containers; everything set up here lives under the pod's directory, so teardown
//! (`pod::teardown`) finds every mount and file by the pod's uid alone.
//!
//! One file a volume kind: [`empty_dir`], [`host_path`]; the kubelet's [`atomic_writer`] for
//! the volumes that project API data. Must not start processes or know about containers
//! beyond the paths it hands out.

pub mod atomic_writer;
mod empty_dir;
mod host_path;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, Volume};

use crate::store::Paths;

/// The directory of a pod's volumes, under its record directory.
pub const VOLUMES_DIR: &str = "volumes";

/// The kubelet's plugin directory names [pkg/volume/*: `kubernetes.io~<plugin>`].
pub const PLUGIN_EMPTY_DIR: &str = "kubernetes.io~empty-dir";

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
    #[error("volume {volume:?}: mount {what} at {path}: {source}")]
    Mount {
        volume: String,
        what: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

impl VolumeError {
    /// The volume at fault.
    pub fn volume(&self) -> &str {
        match self {
            VolumeError::Io { volume, .. }
            | VolumeError::Invalid { volume, .. }
            | VolumeError::Mount { volume, .. } => volume,
        }
    }
}

/// What [`setup`] needs to know about the pod.
#[derive(Debug, Clone, Copy)]
pub struct PodVolumes<'a> {
    pub paths: &'a Paths,
    pub uid: &'a str,
    pub pod: &'a Pod,
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

    fn volumes(&self) -> &[Volume] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
    }
}

/// Sets up every volume of the pod that needs a host directory (idempotent: a volume already
/// set up is left as it is) and returns the host directory or file of each volume by name.
pub fn setup(pod: &PodVolumes) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut dirs = BTreeMap::new();
    for v in pod.volumes() {
        let dir = if let Some(ed) = &v.empty_dir {
            empty_dir::setup(pod, &v.name, ed)?
        } else if let Some(hp) = &v.host_path {
            host_path::setup(&v.name, hp)?
        } else {
            continue;
        };
        dirs.insert(v.name.clone(), dir);
    }
    Ok(dirs)
}
