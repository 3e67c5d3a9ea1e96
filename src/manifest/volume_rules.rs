//! Validation of what every volume kind shares, after the API server's rules
//! [pkg/apis/core/validation/validation.go]: volumeMounts (subPath, subPathExpr,
//! mountPropagation, recursiveReadOnly) and the pod securityContext fields that decide volume
//! ownership and the containers' groups (fsGroup, fsGroupChangePolicy, supplementalGroups,
//! supplementalGroupsPolicy).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, VolumeMount};

use super::validate::Check;
use super::Reason;
use crate::container::spec::{
    PROPAGATION_BIDIRECTIONAL, PROPAGATION_HOST_TO_CONTAINER, PROPAGATION_NONE, RRO_DISABLED,
    RRO_ENABLED, RRO_IF_POSSIBLE, SUPPLEMENTAL_GROUPS_POLICY_MERGE,
    SUPPLEMENTAL_GROUPS_POLICY_STRICT,
};
use crate::volume::ownership::{FS_GROUP_CHANGE_ALWAYS, FS_GROUP_CHANGE_ON_ROOT_MISMATCH};

// Sorted, as the API server lists supported values.
const PROPAGATIONS: &[&str] = &[
    PROPAGATION_BIDIRECTIONAL,
    PROPAGATION_HOST_TO_CONTAINER,
    PROPAGATION_NONE,
];
const RECURSIVE_READ_ONLY: &[&str] = &[RRO_DISABLED, RRO_ENABLED, RRO_IF_POSSIBLE];
const FS_GROUP_CHANGE_POLICIES: &[&str] =
    &[FS_GROUP_CHANGE_ALWAYS, FS_GROUP_CHANGE_ON_ROOT_MISMATCH];
const SUPPLEMENTAL_GROUPS_POLICIES: &[&str] = &[
    SUPPLEMENTAL_GROUPS_POLICY_MERGE,
    SUPPLEMENTAL_GROUPS_POLICY_STRICT,
];
/// [validation.go ValidatePodSecurityContext]: ids in range, known policies.
pub(crate) fn validate_pod_security_context(sc: &PodSecurityContext, check: &mut Check) {
    let path = "spec.securityContext";
    for (field, id) in [
        ("runAsUser", sc.run_as_user),
        ("runAsGroup", sc.run_as_group),
        ("fsGroup", sc.fs_group),
    ] {
        check.id(format!("{path}.{field}"), id);
    }
    for (j, id) in sc.supplemental_groups.iter().flatten().enumerate() {
        check.id(format!("{path}.supplementalGroups[{j}]"), Some(*id));
    }
    if let Some(policy) = sc.fs_group_change_policy.as_deref() {
        check.supported(
            &format!("{path}.fsGroupChangePolicy"),
            policy,
            FS_GROUP_CHANGE_POLICIES,
        );
    }
    if let Some(policy) = sc.supplemental_groups_policy.as_deref() {
        check.supported(
            &format!("{path}.supplementalGroupsPolicy"),
            policy,
            SUPPLEMENTAL_GROUPS_POLICIES,
        );
    }
}

/// [validation.go ValidateVolumeMounts]. The subPath, subPathExpr, mountPropagation and
/// recursiveReadOnly errors name `volumeMounts.<field>` without the index, as the API server's
/// do (it builds those paths from the list's path, not the entry's).
pub(crate) fn validate_volume_mounts(
    c: &Container,
    path: &str,
    volumes: &HashSet<&str>,
    check: &mut Check,
) {
    let list = format!("{path}.volumeMounts");
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = format!("{list}[{i}]");
        if m.name.is_empty() {
            check.push(format!("{p}.name"), Reason::Required);
        } else if !volumes.contains(m.name.as_str()) {
            check.invalid(
                format!("{p}.name"),
                format!("{:?}: not found in spec.volumes", m.name),
            );
        }
        if m.mount_path.is_empty() {
            check.push(format!("{p}.mountPath"), Reason::Required);
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            check.push(
                format!("{p}.mountPath"),
                Reason::Duplicate(format!("{:?}", m.mount_path)),
            );
        }
        let sub_path = m.sub_path.as_deref().unwrap_or_default();
        if !sub_path.is_empty() {
            check.descending_path(&format!("{list}.subPath"), sub_path);
        }
        let expr = m.sub_path_expr.as_deref().unwrap_or_default();
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                check.invalid(
                    format!("{p}.subPathExpr"),
                    format!("{expr:?}: subPathExpr and subPath are mutually exclusive"),
                );
            }
            check.descending_path(&format!("{list}.subPathExpr"), expr);
        }
        validate_propagation(c, m, &format!("{list}.mountPropagation"), check);
        validate_recursive_read_only(m, &format!("{list}.recursiveReadOnly"), check);
    }
}

/// [validation.go validateMountPropagation]
fn validate_propagation(c: &Container, m: &VolumeMount, path: &str, check: &mut Check) {
    let Some(mode) = m.mount_propagation.as_deref() else {
        return;
    };
    check.supported(path, mode, PROPAGATIONS);
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    if mode == PROPAGATION_BIDIRECTIONAL && !privileged {
        check.push(
            path,
            Reason::Forbidden(
                "Bidirectional mount propagation is available only to privileged containers".into(),
            ),
        );
    }
}

/// [validation.go validateMountRecursiveReadOnly]
fn validate_recursive_read_only(m: &VolumeMount, path: &str, check: &mut Check) {
    let Some(mode) = m.recursive_read_only.as_deref() else {
        return;
    };
    match mode {
        RRO_DISABLED => {}
        RRO_ENABLED | RRO_IF_POSSIBLE => {
            if !m.read_only.unwrap_or(false) {
                check.push(
                    path,
                    Reason::Forbidden("may only be specified when readOnly is true".into()),
                );
            }
            if m.mount_propagation
                .as_deref()
                .is_some_and(|p| p != PROPAGATION_NONE)
            {
                check.push(
                    path,
                    Reason::Forbidden(
                        "may only be specified when mountPropagation is None or not specified"
                            .into(),
                    ),
                );
            }
        }
        other => check.supported(path, other, RECURSIVE_READ_ONLY),
    }
}
