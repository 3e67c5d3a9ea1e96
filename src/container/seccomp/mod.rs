//! Which seccomp profile a container runs under, and the profile itself for the Spec's
//! `linux.seccomp`. Pure, except for reading a `Localhost` profile's file.
//!
//! Resolution follows the kubelet (pkg/kubelet/kuberuntime/helpers.go `getSeccompProfile`):
//! the container's `securityContext.seccompProfile`, else the pod's, else the node default.
//! peapod's node default is `RuntimeDefault`, the kubelet's with `SeccompDefault` on (GA since
//! 1.27; off by default there): a container that asks for nothing is confined. The deprecated
//! `seccomp.security.alpha.kubernetes.io/*` annotations are ignored, as the kubelet has ignored
//! them since 1.27. Privileged containers run unconfined whatever they ask, as containerd's CRI
//! plugin does (internal/cri/server/container_create_linux.go `generateSeccompSpecOpts`).

mod runtime_default;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};
use oci_spec::runtime::{Capabilities, LinuxSeccomp};

pub use runtime_default::{runtime_default, CLONE_NAMESPACE_FLAGS};

/// `seccompProfile.type` values [core/v1 types.go].
pub const TYPE_RUNTIME_DEFAULT: &str = "RuntimeDefault";
pub const TYPE_UNCONFINED: &str = "Unconfined";
pub const TYPE_LOCALHOST: &str = "Localhost";
/// Every valid `seccompProfile.type`, in the API server's order.
pub const PROFILE_TYPES: [&str; 3] = [TYPE_LOCALHOST, TYPE_RUNTIME_DEFAULT, TYPE_UNCONFINED];

/// A Localhost profile that cannot be used. The texts are containerd's
/// (contrib/seccomp/seccomp.go `WithProfile`); the kubelet shows them as the container's
/// `CreateContainerError` message.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot load seccomp profile \"{}\": open {}: {}", path.display(), path.display(), crate::container::runtime::errno_text(source.raw_os_error().unwrap_or(0)))]
    Load {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decoding seccomp profile failed \"{}\": {source}", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("building the default seccomp profile: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// The profile a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Unconfined,
    RuntimeDefault,
    /// `localhostProfile`, relative to the node's seccomp directory; or an absolute path, as
    /// the kubelet passes one through the CRI (manifest validation refuses absolute and `..`
    /// paths, so only a CRI container, whose pod skips it, names a file elsewhere).
    Localhost(String),
}

fn from_field(profile: &SeccompProfile) -> Choice {
    match profile.type_.as_str() {
        TYPE_UNCONFINED => Choice::Unconfined,
        TYPE_LOCALHOST => Choice::Localhost(profile.localhost_profile.clone().unwrap_or_default()),
        // Validation admits only the three types; RuntimeDefault is also the safe reading.
        _ => Choice::RuntimeDefault,
    }
}

/// The container's profile: its own field, else the pod's, else RuntimeDefault; privileged
/// containers are unconfined.
pub fn choose(pod: &Pod, container: &Container, privileged: bool) -> Choice {
    if privileged {
        return Choice::Unconfined;
    }
    let own = container
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let pod_wide = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.seccomp_profile.as_ref());
    own.or(pod_wide)
        .map(from_field)
        .unwrap_or(Choice::RuntimeDefault)
}

/// Reads a Localhost profile: JSON in the OCI `LinuxSeccomp` form (Docker's format without its
/// `archMap`/`includes` extensions, which are ignored as containerd ignores them).
pub fn load_localhost(root: &Path, profile: &str) -> Result<LinuxSeccomp, SeccompError> {
    let path = if Path::new(profile).is_absolute() {
        PathBuf::from(profile)
    } else {
        root.join(profile)
    };
    let data = std::fs::read(&path).map_err(|source| SeccompError::Load {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| SeccompError::Decode { path, source })
}

/// The Spec's `linux.seccomp` for a container: None when unconfined.
pub fn spec_profile(
    choice: &Choice,
    bounding: &Capabilities,
    root: &Path,
) -> Result<Option<LinuxSeccomp>, SeccompError> {
    Ok(match choice {
        Choice::Unconfined => None,
        Choice::RuntimeDefault => Some(runtime_default(bounding)?),
        Choice::Localhost(relative) => Some(load_localhost(root, relative)?),
    })
}

#[cfg(test)]
mod tests;
