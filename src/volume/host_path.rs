//! hostPath: a path of the node, bind-mounted as it is.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::VolumeError;

pub(super) fn setup(_name: &str, source: &HostPathVolumeSource) -> Result<PathBuf, VolumeError> {
    Ok(PathBuf::from(&source.path))
}
