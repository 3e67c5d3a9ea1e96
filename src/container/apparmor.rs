//! Which AppArmor profile a container runs under, and the host's side of it: whether AppArmor
//! is on, which profiles the kernel has loaded, and peapod's own default profile
//! ([`DEFAULT_PROFILE`]), loaded with apparmor_parser the first time a container needs it.
//! The executor applies the Spec's `process.apparmorProfile` (`runtime::apparmor`).
//!
//! What a container asks for is read as the kubelet reads it (pkg/security/apparmor/helpers.go
//! `GetProfile`): its own `securityContext.appArmorProfile`, else the deprecated
//! `container.apparmor.security.beta.kubernetes.io/<container>` annotation, else the pod's
//! field. What is made of it follows containerd's CRI plugin (internal/cri/sputil
//! `GenerateApparmorSpecOpts`): a container that asks for nothing gets RuntimeDefault, a
//! privileged one runs unconfined unless it names a Localhost profile, and a Localhost profile
//! must already be loaded. Unlike containerd, a container that asked for nothing still runs
//! (unconfined, with a warning) when the default profile cannot be loaded.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{AppArmorProfile, Container, Pod};

// `appArmorProfile.type` uses the words of `seccompProfile.type` [core/v1 types.go].
use super::seccomp::{TYPE_LOCALHOST, TYPE_UNCONFINED};

/// runc's test for AppArmor (libcontainer/apparmor `IsEnabled`): securityfs shows it and the
/// module parameter says Y.
const SECURITYFS_DIR: &str = "/sys/kernel/security/apparmor";
const ENABLED_PARAM: &str = "/sys/module/apparmor/parameters/enabled";
/// One loaded profile a line: `name (mode)`.
const PROFILES_FILE: &str = "/sys/kernel/security/apparmor/profiles";
/// The profile a RuntimeDefault container runs under (containerd's is `cri-containerd.apparmor.d`).
pub const DEFAULT_PROFILE: &str = "peapod-default";
/// Where apparmor_parser is looked for (the apparmor package installs it in /sbin).
const PARSER_PATHS: [&str; 2] = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"];
/// The deprecated per-container annotation and its values [core/v1 annotation_key_constants.go].
pub const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
pub const ANNOTATION_RUNTIME_DEFAULT: &str = "runtime/default";
pub const ANNOTATION_UNCONFINED: &str = "unconfined";
pub const ANNOTATION_LOCALHOST_PREFIX: &str = "localhost/";

/// A profile as a pod (or the CRI) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Unconfined,
    RuntimeDefault,
    /// The name of a profile the host has loaded.
    Localhost(String),
}

/// Why a container's profile cannot be applied. The first two are containerd's words, which
/// the kubelet shows in a `CreateContainerError`.
#[derive(Debug, thiserror::Error)]
pub enum AppArmorError {
    #[error("apparmor is not supported")]
    NotSupported,
    #[error("apparmor profile not found {0}")]
    NotFound(String),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the default AppArmor profile {DEFAULT_PROFILE:?}: apparmor_parser not found in /sbin or /usr/sbin (install the apparmor package)")]
    NoParser,
    #[error("cannot load the default AppArmor profile {DEFAULT_PROFILE:?}: {} -Kr: {reason}", parser.display())]
    Parser { parser: PathBuf, reason: String },
}

fn from_field(p: &AppArmorProfile) -> Choice {
    match p.type_.as_str() {
        TYPE_UNCONFINED => Choice::Unconfined,
        TYPE_LOCALHOST => Choice::Localhost(p.localhost_profile.clone().unwrap_or_default()),
        // Validation admits only the three types; RuntimeDefault is the safe reading.
        _ => Choice::RuntimeDefault,
    }
}

/// The annotation's value; None for a value the kubelet does not understand (it ignores it).
fn from_annotation(value: &str) -> Option<Choice> {
    match value {
        ANNOTATION_RUNTIME_DEFAULT => Some(Choice::RuntimeDefault),
        ANNOTATION_UNCONFINED => Some(Choice::Unconfined),
        v => v
            .strip_prefix(ANNOTATION_LOCALHOST_PREFIX)
            .map(|name| Choice::Localhost(name.to_string())),
    }
}

/// The profile the pod asks for the container, None when it asks for none [helpers.go
/// GetProfile].
pub fn asked(pod: &Pod, container: &Container) -> Option<Choice> {
    let own = container
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref());
    let annotated = || {
        let key = format!("{ANNOTATION_PREFIX}{}", container.name);
        pod.metadata
            .annotations
            .as_ref()?
            .get(&key)
            .map(String::as_str)
            .and_then(from_annotation)
    };
    let pod_wide = || {
        pod.spec
            .as_ref()?
            .security_context
            .as_ref()?
            .app_armor_profile
            .as_ref()
            .map(from_field)
    };
    own.map(from_field).or_else(annotated).or_else(pod_wide)
}

/// What the runtime makes of a container's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Unconfined,
    /// peapod's default profile; `asked`: the container named it (a failure to load it is
    /// then the container's error, not a reason to run it unconfined).
    RuntimeDefault {
        asked: bool,
    },
    Localhost(String),
    /// A profile other than Unconfined on a host without AppArmor.
    NotSupported,
}

/// containerd's `GenerateApparmorSpecOpts`: nothing asked is RuntimeDefault (kubernetes#51746),
/// RuntimeDefault is unconfined for a privileged container, Localhost is applied even then.
pub fn decide(asked: Option<&Choice>, privileged: bool, host_enabled: bool) -> Decision {
    if !host_enabled {
        return match asked {
            Some(Choice::RuntimeDefault | Choice::Localhost(_)) => Decision::NotSupported,
            _ => Decision::Unconfined,
        };
    }
    match asked {
        Some(Choice::Unconfined) => Decision::Unconfined,
        Some(Choice::Localhost(name)) => Decision::Localhost(
            name.strip_prefix(ANNOTATION_LOCALHOST_PREFIX)
                .unwrap_or(name)
                .to_string(),
        ),
        _ if privileged => Decision::Unconfined,
        Some(Choice::RuntimeDefault) => Decision::RuntimeDefault { asked: true },
        None => Decision::RuntimeDefault { asked: false },
    }
}

/// Whether the host enforces AppArmor, read once per process (the kubelet, too, checks the
/// host at startup only).
pub fn host_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        Path::new(SECURITYFS_DIR).exists()
            && std::fs::read(ENABLED_PARAM).is_ok_and(|b| b.first() == Some(&b'Y'))
    })
}

/// The names in the kernel's profile list (`name (mode)` lines).
pub fn parse_profiles(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|l| l.rfind(" (").map(|i| l[..i].trim().to_string()))
        .collect()
}

/// The profiles the kernel has loaded.
pub fn loaded_profiles() -> Result<HashSet<String>, AppArmorError> {
    std::fs::read_to_string(PROFILES_FILE)
        .map(|t| parse_profiles(&t))
        .map_err(|source| AppArmorError::Read {
            path: PROFILES_FILE.into(),
            source,
        })
}

/// Loads [`DEFAULT_PROFILE`] unless the kernel has it, as containerd loads its own
/// (contrib/apparmor `LoadDefaultProfile`: `apparmor_parser -Kr`, no cache).
pub fn ensure_default() -> Result<(), AppArmorError> {
    if loaded_profiles()?.contains(DEFAULT_PROFILE) {
        return Ok(());
    }
    let parser = PARSER_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or(AppArmorError::NoParser)?;
    let failed = |reason: String| AppArmorError::Parser {
        parser: parser.to_path_buf(),
        reason,
    };
    // The profile on stdin: no file to write and remove.
    let mut child = Command::new(parser)
        .arg("-Kr")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(default_profile_text().as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tracing::info!(
        profile = DEFAULT_PROFILE,
        "loaded the default AppArmor profile"
    );
    Ok(())
}

/// The Spec's `process.apparmorProfile` for a container, None to run it unconfined; loads the
/// default profile when it is needed and missing.
pub fn spec_profile(
    asked: Option<&Choice>,
    privileged: bool,
) -> Result<Option<String>, AppArmorError> {
    match decide(asked, privileged, host_enabled()) {
        Decision::Unconfined => Ok(None),
        Decision::NotSupported => Err(AppArmorError::NotSupported),
        Decision::Localhost(name) => {
            if name.trim().is_empty() || !loaded_profiles()?.contains(&name) {
                return Err(AppArmorError::NotFound(name));
            }
            Ok(Some(name))
        }
        Decision::RuntimeDefault { asked } => match ensure_default() {
            Ok(()) => Ok(Some(DEFAULT_PROFILE.to_string())),
            // Never refuse a container that asked for nothing.
            Err(e) if !asked => {
                tracing::warn!(error = %e, "running the container without an AppArmor profile");
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

/// peapod's default profile: what containerd's and Docker's default templates aim at,
/// written self-contained (no `#include`: a host with the kernel module and apparmor_parser
/// but no /etc/apparmor.d still loads it). Everything is allowed but what would reach the host
/// through kernel interfaces: mounting, the kernel's writable /proc and /sys files, the
/// security filesystem, and signals or ptrace to processes of other profiles.
pub fn default_profile_text() -> String {
    let p = DEFAULT_PROFILE;
    format!(
        "profile {p} flags=(attach_disconnected,mediate_deleted) {{
  # What a container does by itself: files, networking, capabilities of its bounding set.
  file,
  network,
  capability,
  umount,
  # The runtime (unconfined) may signal it; it signals and traces only its own kind.
  signal (receive) peer=unconfined,
  signal (send,receive) peer={p},
  ptrace (trace,read,tracedby,readby) peer={p},
  # No new mounts, whatever the capabilities.
  deny mount,
  # /proc: nothing written at its top (sysrq-trigger, kcore, ...) nor in the host's subtrees,
  # and of /proc/sys only the IPC namespace's kernel.shm* files.
  deny /proc/* w,
  deny /proc/{{acpi,bus,driver,fs,irq,scsi,sysvipc,tty}}/** w,
  deny /proc/sys/[^k]** w,
  deny /proc/sys/kernel/{{?,??,[^s][^h][^m]**}} w,
  deny /proc/sysrq-trigger rwklx,
  deny /proc/kcore rwklx,
  # /sys: nothing written outside the cgroup filesystem; firmware and LSM files not read.
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
}}
"
    )
}

#[cfg(test)]
mod tests;
