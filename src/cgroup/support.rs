//! Whether this host can enforce limits (cgroup v2 with cpu, memory, pids), pod-level limit sums,
//! and the check that refuses a pod whose limits could not be enforced.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

use super::{CgroupError, FILE_CONTROLLERS, REQUIRED_CONTROLLERS};
use crate::manifest::resources::Resources;

/// What the host offers for resource control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupSupport {
    /// A cgroup2 mount at `root` with the cpu, memory and pids controllers.
    V2 { root: PathBuf },
    /// No usable cgroup v2; `reason` says why, for error messages.
    Unavailable { reason: String },
}

/// Finds out whether `root` is a cgroup2 mount with the controllers peapod needs. A hybrid host
/// (v1 cpu/memory, cgroup2 with only hugetlb) is `Unavailable`.
pub fn detect(root: &Path) -> CgroupSupport {
    let file = root.join(FILE_CONTROLLERS);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            return CgroupSupport::Unavailable {
                reason: format!(
                    "this host has no cgroup v2 hierarchy at {} ({}: {e})",
                    root.display(),
                    file.display()
                ),
            }
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
        CgroupSupport::Unavailable {
            reason: format!(
                "this host has no cgroup v2 {} controller(s) at {} (a hybrid cgroup v1 layout?)",
                missing.join("/"),
                root.display()
            ),
        }
    }
}

/// Pod-level limits: each is Some only when every container has that limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodLimits {
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// The kubelet's pod limit: max(sum over app containers, largest init container), and only
/// when every container (app and init) has the limit [pkg/kubelet/cm/helpers_linux.go].
pub fn pod_limits(app: &[Resources], init: &[Resources]) -> PodLimits {
    fn combine(
        app: &[Resources],
        init: &[Resources],
        get: fn(&Resources) -> Option<u64>,
    ) -> Option<u64> {
        let sum = app
            .iter()
            .map(get)
            .try_fold(0u64, |acc, v| v.map(|v| acc.saturating_add(v)))?;
        let init_max = init
            .iter()
            .map(get)
            .try_fold(0u64, |acc, v| v.map(|v| acc.max(v)))?;
        Some(sum.max(init_max))
    }
    PodLimits {
        cpu_limit_millis: combine(app, init, |r| r.cpu_limit_millis),
        memory_limit_bytes: combine(app, init, |r| r.memory_limit_bytes),
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
    let CgroupSupport::Unavailable { reason } = support else {
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
