//! Validation of the security fields peapod runs: seccompProfile, sysctls, procMount and
//! appArmorProfile, with the API server's rules and words (pkg/apis/core/validation:
//! validateSeccompProfileField, validateSysctls, ValidateSecurityContext's procMount check,
//! validateAppArmorProfileField). What the node decides (which sysctls, whether AppArmor can
//! be enforced) is the supervisor's admission (`pod::admission`), as it is the kubelet's.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{AppArmorProfile, Container, PodSpec, SeccompProfile};

use super::validate::Check;
use super::Reason;
use crate::container::seccomp::{PROFILE_TYPES, TYPE_LOCALHOST};
use crate::container::sysctl::{is_valid_name, MAX_NAME_LENGTH, NAME_FORMAT};

/// `procMount` values [core/v1 types.go ProcMountType].
const PROC_MOUNT_DEFAULT: &str = "Default";
const PROC_MOUNT_UNMASKED: &str = "Unmasked";
/// `appArmorProfile.type` values, in the API server's order.
const APPARMOR_TYPES: [&str; 3] = ["Localhost", "RuntimeDefault", "Unconfined"];
/// PATH_MAX - 1, the API server's limit on an AppArmor localhost profile name.
const MAX_APPARMOR_PROFILE: usize = 4095;

/// Checks the pod-level and every container's security fields of `spec`.
pub(crate) fn validate(spec: &PodSpec, check: &mut Check) {
    if let Some(sc) = spec.security_context.as_ref() {
        let path = "spec.securityContext";
        if let Some(p) = sc.seccomp_profile.as_ref() {
            seccomp_profile(p, &format!("{path}.seccompProfile"), check);
        }
        if let Some(p) = sc.app_armor_profile.as_ref() {
            apparmor_profile(p, &format!("{path}.appArmorProfile"), check);
        }
        let mut names = HashSet::new();
        for (i, s) in sc.sysctls.iter().flatten().enumerate() {
            let p = format!("{path}.sysctls[{i}].name");
            if s.name.is_empty() {
                check.push(p, Reason::Required);
            } else if !is_valid_name(&s.name, false) {
                check.invalid(
                    p,
                    format!(
                        "{:?}: must have at most {MAX_NAME_LENGTH} characters and match regex {NAME_FORMAT}",
                        s.name
                    ),
                );
            } else if !names.insert(s.name.as_str()) {
                check.push(p, Reason::Duplicate(format!("{:?}", s.name)));
            }
        }
    }
    // hostUsers: false is refused by the support table, so the pod shares the host's users.
    let host_users = spec.host_users.unwrap_or(true);
    let lists = [
        (
            "spec.initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("spec.containers", &spec.containers[..]),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            container(
                c,
                &format!("{list}[{i}].securityContext"),
                host_users,
                check,
            );
        }
    }
}

fn container(c: &Container, path: &str, host_users: bool, check: &mut Check) {
    let Some(sc) = c.security_context.as_ref() else {
        return;
    };
    if let Some(p) = sc.seccomp_profile.as_ref() {
        seccomp_profile(p, &format!("{path}.seccompProfile"), check);
    }
    if let Some(p) = sc.app_armor_profile.as_ref() {
        apparmor_profile(p, &format!("{path}.appArmorProfile"), check);
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        let p = format!("{path}.procMount");
        if pm != PROC_MOUNT_DEFAULT && pm != PROC_MOUNT_UNMASKED {
            check.push(
                p,
                Reason::Unsupported {
                    value: pm.to_string(),
                    supported: vec![PROC_MOUNT_DEFAULT, PROC_MOUNT_UNMASKED],
                },
            );
        } else if pm == PROC_MOUNT_UNMASKED && host_users {
            check.invalid(
                p,
                format!("{pm:?}: `hostUsers` must be false to use `Unmasked`"),
            );
        }
    }
}

fn seccomp_profile(sp: &SeccompProfile, path: &str, check: &mut Check) {
    let t = sp.type_.as_str();
    if t.is_empty() {
        check.push(
            format!("{path}.type"),
            Reason::RequiredDetail("type is required when seccompProfile is set".into()),
        );
    } else if !PROFILE_TYPES.contains(&t) {
        check.push(
            format!("{path}.type"),
            Reason::Unsupported {
                value: t.to_string(),
                supported: PROFILE_TYPES.to_vec(),
            },
        );
    }
    let local = format!("{path}.localhostProfile");
    match (t == TYPE_LOCALHOST, sp.localhost_profile.as_deref()) {
        (true, None) => check.push(
            local,
            Reason::RequiredDetail("must be set when seccomp type is Localhost".into()),
        ),
        (true, Some(rel)) => {
            if rel.starts_with('/') {
                check.invalid(&local, format!("{rel:?}: must be a relative path"));
            }
            if rel.split('/').any(|s| s == "..") {
                check.invalid(&local, format!("{rel:?}: must not contain '..'"));
            }
        }
        (false, Some(rel)) => check.invalid(
            local,
            format!("{rel:?}: can only be set when seccomp type is Localhost"),
        ),
        (false, None) => {}
    }
}

fn apparmor_profile(p: &AppArmorProfile, path: &str, check: &mut Check) {
    let local = format!("{path}.localhostProfile");
    let required = || Reason::RequiredDetail("must be set when AppArmor type is Localhost".into());
    match p.type_.as_str() {
        "Localhost" => match p.localhost_profile.as_deref() {
            None => check.push(local, required()),
            Some(name) if name.trim() != name => check.invalid(
                local,
                format!("{name:?}: must not be padded with whitespace"),
            ),
            Some("") => check.push(local, required()),
            Some(name) if name.len() > MAX_APPARMOR_PROFILE => {
                check.push(local, Reason::TooLong(MAX_APPARMOR_PROFILE))
            }
            Some(_) => {}
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(name) = p.localhost_profile.as_deref() {
                check.invalid(
                    local,
                    format!("{name:?}: can only be set when AppArmor type is Localhost"),
                );
            }
        }
        "" => check.push(
            format!("{path}.type"),
            Reason::RequiredDetail("type is required when appArmorProfile is set".into()),
        ),
        other => check.push(
            format!("{path}.type"),
            Reason::Unsupported {
                value: other.to_string(),
                supported: APPARMOR_TYPES.to_vec(),
            },
        ),
    }
}
