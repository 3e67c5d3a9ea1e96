//! Whether this host can enforce limits (cgroup v2 with cpu, memory, pids) and device allowlists
//! (any cgroup2 hierarchy), and the checks that refuse a pod whose limits could not be enforced
//! or whose containers could not be confined.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

use super::{
    CgroupError, CgroupManager, FILE_CONTROLLERS, HYBRID_UNIFIED_DIR, REQUIRED_CONTROLLERS,
};

/// What the host offers for resource control and device confinement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupSupport {
    /// A cgroup2 mount at `root` with the cpu, memory and pids controllers.
    V2 { root: PathBuf },
    /// A cgroup2 mount at `root` without them (a hybrid host: v1 controllers, cgroup2 at
    /// `/sys/fs/cgroup/unified`): device programs work, limits cannot be enforced (`reason`).
    DevicesOnly { root: PathBuf, reason: String },
    /// No cgroup2 hierarchy; `reason` says why, for error messages.
    Unavailable { reason: String },
}

impl CgroupSupport {
    /// The manager of this host's pod cgroups, if there is a cgroup2 hierarchy.
    pub fn manager(&self) -> Option<CgroupManager> {
        match self {
            CgroupSupport::V2 { root } => Some(CgroupManager::new(root.clone())),
            CgroupSupport::DevicesOnly { root, .. } => {
                Some(CgroupManager::without_controllers(root.clone()))
            }
            CgroupSupport::Unavailable { .. } => None,
        }
    }

    /// Why cpu and memory limits cannot be enforced here, if they cannot.
    fn limits_unavailable(&self) -> Option<&str> {
        match self {
            CgroupSupport::V2 { .. } => None,
            CgroupSupport::DevicesOnly { reason, .. } | CgroupSupport::Unavailable { reason } => {
                Some(reason)
            }
        }
    }
}

fn read_controllers(root: &Path) -> Result<String, String> {
    let file = root.join(FILE_CONTROLLERS);
    std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Finds the cgroup2 hierarchy at `root` (unified host) or at `root/unified` (systemd's hybrid
/// layout) and whether it has the controllers peapod needs for limits.
pub fn detect(root: &Path) -> CgroupSupport {
    let text = match read_controllers(root) {
        Ok(t) => t,
        Err(at_root) => {
            let unified = root.join(HYBRID_UNIFIED_DIR);
            return match read_controllers(&unified) {
                Ok(_) => CgroupSupport::DevicesOnly {
                    reason: format!(
                        "this host has no cgroup v2 cpu/memory/pids controllers (a hybrid \
                         cgroup v1 layout: cgroup2 only at {})",
                        unified.display()
                    ),
                    root: unified,
                },
                Err(at_unified) => CgroupSupport::Unavailable {
                    reason: format!(
                        "this host has no cgroup v2 hierarchy at {} or {} ({at_root}; {at_unified})",
                        root.display(),
                        unified.display()
                    ),
                },
            };
        }
    };
    let present: Vec<&str> = text.split_whitespace().collect();
    let missing: Vec<&str> = REQUIRED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !present.contains(c))
        .collect();
    if missing.is_empty() {
        CgroupSupport::V2 {
            root: root.to_path_buf(),
        }
    } else {
        CgroupSupport::DevicesOnly {
            root: root.to_path_buf(),
            reason: format!(
                "this host has no cgroup v2 {} controller(s) at {} (a hybrid cgroup v1 layout?)",
                missing.join("/"),
                root.display()
            ),
        }
    }
}

/// Refuses to run containers on a host without any cgroup2 hierarchy: there is nowhere to
/// attach their device allowlist, and peapod never runs a container with open device access.
pub fn check_devices_supported(support: &CgroupSupport) -> Result<(), CgroupError> {
    match support {
        CgroupSupport::Unavailable { reason } => Err(CgroupError::NoDeviceAllowlist {
            reason: reason.clone(),
        }),
        _ => Ok(()),
    }
}

fn check_requirements(
    reqs: Option<&ResourceRequirements>,
    field: &str,
    reason: &str,
) -> Result<(), CgroupError> {
    let Some(limits) = reqs.and_then(|r| r.limits.as_ref()) else {
        return Ok(());
    };
    for resource in ["cpu", "memory"] {
        if limits.contains_key(resource) {
            return Err(CgroupError::LimitUnsupported {
                field: format!("{field}.resources.limits.{resource}"),
                reason: reason.to_string(),
            });
        }
    }
    Ok(())
}

/// Refuses a pod with cpu or memory limits on a host that cannot enforce them, naming the first
/// such field; peapod never runs a pod with a silently dropped limit.
pub fn check_limits_supported(pod: &Pod, support: &CgroupSupport) -> Result<(), CgroupError> {
    let Some(reason) = support.limits_unavailable() else {
        return Ok(());
    };
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    check_requirements(spec.resources.as_ref(), "spec", reason)?;
    let groups: [(&str, &[Container]); 2] = [
        (
            "spec.initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("spec.containers", &spec.containers),
    ];
    for (prefix, containers) in groups {
        for (i, c) in containers.iter().enumerate() {
            check_requirements(c.resources.as_ref(), &format!("{prefix}[{i}]"), reason)?;
        }
    }
    Ok(())
}
