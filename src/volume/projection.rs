//! What configMap, secret, downwardAPI and projected volumes share: payloads built from
//! key/path items with modes [pkg/volume/configmap/configmap.go, pkg/volume/secret/secret.go
//! MakePayload], the kubelet's aggregated errors, and publishing a payload into the volume's
//! directory (on disk, or on a tmpfs for the memory-backed kinds) through the atomic writer.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, KeyToPath, SecretProjection, SecretVolumeSource,
};
use nix::mount::MsFlags;

use super::atomic_writer::{self, AtomicWriteError, FileProjection, Payload};
use super::downward_api::FieldPathError;
use super::{HostVolume, PodVolumes, VolumeError};
use crate::gofmt;
use crate::object::Missing;

/// `defaultMode` when the manifest sets none [pkg/apis/core/v1/defaults.go:
/// `SetDefaults_{ConfigMap,Secret,DownwardAPI,Projected}VolumeSource`].
pub const DEFAULT_MODE: i32 = 0o644;
/// The volume directory before any tmpfs is mounted on it: the kubelet's emptyDir, which
/// these volumes wrap, makes it world-writable.
const VOLUME_DIR_MODE: u32 = 0o777;

/// Why a volume's files could not be made. The messages are the kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// `configmap "x" not found`, `secret "x" not found`.
    #[error(transparent)]
    Missing(#[from] Missing),
    #[error("configmap references non-existent config key: {key}")]
    ConfigMapKey { key: String },
    #[error("references non-existent secret key: {key}")]
    SecretKey { key: String },
    #[error(transparent)]
    Field(#[from] FieldPathError),
    /// A projected source peapod refuses at apply; named if one is found anyway.
    #[error("projected source {0} is not supported by peapod")]
    UnsupportedSource(&'static str),
    /// Several sources failed: `[first, second]`, as Go's aggregated errors print.
    #[error("{}", gofmt::aggregate(.0))]
    Aggregate(Vec<ProjectionError>),
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    #[error("mount tmpfs at {path}: {source}")]
    Mount {
        path: std::path::PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ProjectionError {
    /// Ok when `errors` is empty, the error alone, or their aggregate.
    pub fn aggregate(mut errors: Vec<ProjectionError>) -> Result<(), ProjectionError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ProjectionError::Aggregate(errors)),
        }
    }
}

/// A file mode from the API (`int32`, 0 to 0777 after validation).
pub(super) fn file_mode(mode: Option<i32>, default: u32) -> u32 {
    mode.map(|m| (m as u32) & 0o7777).unwrap_or(default)
}

/// The default mode of a volume source.
pub(super) fn default_mode(mode: Option<i32>) -> u32 {
    file_mode(mode, DEFAULT_MODE as u32)
}

/// What a configMap or secret source names: the object, the keys to project (all when None)
/// and whether a missing object or key is allowed.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeySource<'a> {
    pub name: &'a str,
    pub items: Option<&'a [KeyToPath]>,
    pub optional: Option<bool>,
}

impl<'a> From<&'a ConfigMapVolumeSource> for KeySource<'a> {
    fn from(s: &'a ConfigMapVolumeSource) -> Self {
        KeySource {
            name: &s.name,
            items: s.items.as_deref(),
            optional: s.optional,
        }
    }
}

impl<'a> From<&'a SecretVolumeSource> for KeySource<'a> {
    fn from(s: &'a SecretVolumeSource) -> Self {
        KeySource {
            name: s.secret_name.as_deref().unwrap_or_default(),
            items: s.items.as_deref(),
            optional: s.optional,
        }
    }
}

impl<'a> From<&'a ConfigMapProjection> for KeySource<'a> {
    fn from(s: &'a ConfigMapProjection) -> Self {
        KeySource {
            name: &s.name,
            items: s.items.as_deref(),
            optional: s.optional,
        }
    }
}

impl<'a> From<&'a SecretProjection> for KeySource<'a> {
    fn from(s: &'a SecretProjection) -> Self {
        KeySource {
            name: &s.name,
            items: s.items.as_deref(),
            optional: s.optional,
        }
    }
}

/// The object a volume source names, an empty one when it is missing and optional (the
/// kubelet's volumes then hold no files), else the kubelet's not-found error.
pub(super) fn present_or_empty<'a, T>(
    found: Result<&'a T, Missing>,
    optional: bool,
    empty: &'a T,
) -> Result<&'a T, ProjectionError> {
    match found {
        Ok(object) => Ok(object),
        Err(_) if optional => Ok(empty),
        Err(missing) => Err(missing.into()),
    }
}

/// Builds a payload from an object's data: every key under its own name with the default
/// mode, or only the `items` (key -> path, mode). A missing item key is `missing_key`'s error
/// unless the source is optional.
pub(super) fn key_payload(
    data: &BTreeMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    missing_key: impl Fn(&str) -> ProjectionError,
) -> Result<Payload, ProjectionError> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, bytes) in data {
                payload.insert(
                    key.to_string(),
                    FileProjection {
                        data: bytes.to_vec(),
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = data.get(item.key.as_str()) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&item.key));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: bytes.to_vec(),
                        mode: file_mode(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// Where a volume's files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Medium {
    /// The node's disk (configMap, as the kubelet keeps it).
    Disk,
    /// A tmpfs mounted on the volume's directory: Secrets and the other API data never touch
    /// the disk [secret.go, downwardapi.go, projected.go `wrappedVolumeSpec`: medium Memory].
    Memory,
}

/// Publishes a payload computed for volume `name` of `plugin`: the payload is computed
/// before anything is made (a missing object leaves no directory and no mount), the
/// directory and its tmpfs are made on first use, then the atomic writer projects the files
/// and the pod's fsGroup is applied.
pub(super) fn publish(
    pod: &PodVolumes,
    plugin: &str,
    name: &str,
    medium: Medium,
    payload: Result<Payload, ProjectionError>,
) -> Result<HostVolume, VolumeError> {
    let project = |source| VolumeError::Project {
        volume: name.to_string(),
        source,
    };
    let payload = payload.map_err(project)?;
    let dir = pod.dir(plugin, name);
    prepare_dir(&dir, medium).map_err(project)?;
    let fs_group = pod.fs_group();
    let set_perms = |_ts: &str| {
        super::apply_ownership(&dir, fs_group, super::OwnershipPolicy::READ_ONLY)
            .map_err(std::io::Error::other)
    };
    atomic_writer::write(&dir, &payload, Some(&set_perms))
        .map_err(|e| project(ProjectionError::Write(e)))?;
    Ok(HostVolume {
        path: dir,
        read_only: true,
    })
}

/// The volume directory (0777), with a tmpfs on it for [`Medium::Memory`] unless one is there
/// already (its root then lies on another device than its parent).
fn prepare_dir(dir: &Path, medium: Medium) -> Result<(), ProjectionError> {
    let io = |source| ProjectionError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(VOLUME_DIR_MODE)).map_err(io)?;
    }
    if medium == Medium::Disk {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    let mounted = fs::metadata(dir).map_err(io)?.dev()
        != fs::metadata(parent)
            .map_err(|source| ProjectionError::Io {
                path: parent.to_path_buf(),
                source,
            })?
            .dev();
    if !mounted {
        // The kubelet's emptyDir mounts tmpfs with no options: the root gets tmpfs's 1777.
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|source| ProjectionError::Mount {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
            ..Default::default()
        }
    }

    fn data() -> BTreeMap<&'static str, &'static [u8]> {
        BTreeMap::from([("a", &b"1"[..]), ("b", &b"2"[..])])
    }

    fn missing(key: &str) -> ProjectionError {
        ProjectionError::ConfigMapKey { key: key.into() }
    }

    #[test]
    fn every_key_with_the_default_mode_without_items() {
        let p = key_payload(&data(), None, 0o644, false, missing).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p["a"].data, b"1");
        assert_eq!(p["b"].mode, 0o644);
    }

    #[test]
    fn items_pick_keys_paths_and_modes() {
        let items = [kp("a", "dir/x", Some(0o400)), kp("b", "y", None)];
        let p = key_payload(&data(), Some(&items), 0o640, false, missing).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["dir/x", "y"]);
        assert_eq!(p["dir/x"].mode, 0o400);
        assert_eq!(p["y"].mode, 0o640);
    }

    #[test]
    fn a_missing_key_fails_unless_optional() {
        let items = [kp("nope", "x", None), kp("a", "a", None)];
        let err = key_payload(&data(), Some(&items), 0o644, false, missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configmap references non-existent config key: nope"
        );
        let p = key_payload(&data(), Some(&items), 0o644, true, missing).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn aggregates_print_as_go_does() {
        let one = ProjectionError::aggregate(vec![missing("a")]).unwrap_err();
        assert_eq!(
            one.to_string(),
            "configmap references non-existent config key: a"
        );
        let two =
            ProjectionError::aggregate(vec![missing("a"), missing("b"), missing("a")]).unwrap_err();
        assert_eq!(
            two.to_string(),
            "[configmap references non-existent config key: a, \
             configmap references non-existent config key: b]"
        );
        assert!(ProjectionError::aggregate(Vec::new()).is_ok());
    }

    #[test]
    fn disk_volume_dir_is_world_writable() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("kubernetes.io~configmap/cfg");
        prepare_dir(&v, Medium::Disk).unwrap();
        assert_eq!(fs::metadata(&v).unwrap().mode() & 0o777, 0o777);
    }
}
