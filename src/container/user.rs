//! The container's uid, gid and supplementary groups: securityContext first, else the image's
//! `User` resolved against /etc/passwd and /etc/group in the image layers (top layer first).
//!
//! Reads only files inside the given layer directories.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::spec::SpecError;

/// `spec.securityContext.supplementalGroupsPolicy` values [core/v1 types.go].
pub const SUPPLEMENTAL_GROUPS_POLICY_MERGE: &str = "Merge";
pub const SUPPLEMENTAL_GROUPS_POLICY_STRICT: &str = "Strict";

/// The resolved identity of the container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// One entry of /etc/passwd or /etc/group: name, id, primary gid (passwd) or members (group).
struct Entry {
    name: String,
    id: u32,
    gid: u32,
    members: Vec<String>,
}

/// Finds `etc/<file>` in the layers, top layer first. `layers` are bottom first.
fn find_file(layers: &[PathBuf], file: &str) -> Option<PathBuf> {
    layers
        .iter()
        .rev()
        .map(|l| l.join("etc").join(file))
        .find(|p| p.is_file())
}

fn read_entries(layers: &[PathBuf], file: &str) -> Result<Vec<Entry>, SpecError> {
    let Some(path) = find_file(layers, file) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| SpecError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(parse_entries(&text, file == "passwd"))
}

fn parse_entries(text: &str, passwd: bool) -> Vec<Entry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let parts: Vec<&str> = line.split(':').collect();
            let name = parts.first()?.to_string();
            let id = parts.get(2)?.parse().ok()?;
            if passwd {
                let gid = parts.get(3)?.parse().ok()?;
                Some(Entry {
                    name,
                    id,
                    gid,
                    members: Vec::new(),
                })
            } else {
                let members = parts
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                Some(Entry {
                    name,
                    id,
                    gid: id,
                    members,
                })
            }
        })
        .collect()
}

fn root_error(user: &str, reason: String) -> SpecError {
    SpecError::ImageUser {
        user: user.to_string(),
        reason,
    }
}

/// Resolves `user` (the image's `User`: uid, uid:gid, name, name:group) to ids.
/// Returns the uid, gid and the user name when one is known (for group membership).
fn resolve_image_user(
    user: &str,
    layers: &[PathBuf],
) -> Result<(u32, u32, Option<String>), SpecError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_entries(layers, "passwd")?;
    let (uid, mut gid, name) = match user_part.parse::<u32>() {
        Ok(uid) => match passwd.iter().find(|e| e.id == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone())),
            None => (uid, 0, None),
        },
        Err(_) => {
            let e = passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
                root_error(
                    user,
                    format!("no user {user_part:?} in the image's /etc/passwd"),
                )
            })?;
            (e.id, e.gid, Some(e.name.clone()))
        }
    };
    if let Some(group) = group_part {
        gid = match group.parse::<u32>() {
            Ok(g) => g,
            Err(_) => {
                let groups = read_entries(layers, "group")?;
                groups
                    .iter()
                    .find(|e| e.name == group)
                    .map(|e| e.id)
                    .ok_or_else(|| {
                        root_error(
                            user,
                            format!("no group {group:?} in the image's /etc/group"),
                        )
                    })?
            }
        };
    }
    Ok((uid, gid, name))
}

/// The kubelet's `format.Pod`: `<name>_<namespace>(<uid>)`.
fn pod_label(pod: &Pod) -> String {
    let meta = &pod.metadata;
    format!(
        "{}_{}({})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or("default"),
        meta.uid.as_deref().unwrap_or_default()
    )
}

fn to_id(value: i64, field: &str) -> Result<u32, SpecError> {
    u32::try_from(value).map_err(|_| SpecError::InvalidValue {
        field: field.to_string(),
        reason: format!("{value} is not a valid id"),
    })
}

/// Resolves the process identity for `container` in `pod`; `layers` are the rootfs lower dirs,
/// bottom first; `field` is the container's field path (`spec.containers[0]`).
pub(crate) fn resolve_user(
    pod: &Pod,
    container: &Container,
    image_user: Option<&str>,
    layers: &[PathBuf],
    field: &str,
) -> Result<ResolvedUser, SpecError> {
    let csc = container.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let (run_as_user, user_field) = match csc.and_then(|s| s.run_as_user) {
        Some(u) => (Some(u), format!("{field}.securityContext.runAsUser")),
        None => (
            psc.and_then(|s| s.run_as_user),
            "spec.securityContext.runAsUser".to_string(),
        ),
    };
    let (run_as_group, group_field) = match csc.and_then(|s| s.run_as_group) {
        Some(g) => (Some(g), format!("{field}.securityContext.runAsGroup")),
        None => (
            psc.and_then(|s| s.run_as_group),
            "spec.securityContext.runAsGroup".to_string(),
        ),
    };
    let image_user = image_user.map(str::trim).filter(|u| !u.is_empty());

    // The kubelet's runAsNonRoot checks come before any user lookup.
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    let refuse = |reason: String| SpecError::RunAsNonRoot {
        reason,
        pod: pod_label(pod),
        container: container.name.clone(),
    };
    if non_root {
        if run_as_user == Some(0) {
            return Err(refuse(
                "container's runAsUser breaks non-root policy".into(),
            ));
        }
        let image_name = image_user.filter(|_| run_as_user.is_none()).filter(|u| {
            u.split(':')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_err())
        });
        if let Some(user) = image_name {
            return Err(refuse(format!(
                "container has runAsNonRoot and image has non-numeric user ({user}), \
                 cannot verify user is non-root"
            )));
        }
    }

    let (uid, mut gid, name) = match run_as_user {
        Some(u) => {
            let uid = to_id(u, &user_field)?;
            let passwd = read_entries(layers, "passwd")?;
            match passwd.iter().find(|e| e.id == uid) {
                Some(e) => (uid, e.gid, Some(e.name.clone())),
                None => (uid, 0, None),
            }
        }
        None => match image_user {
            Some(user) => resolve_image_user(user, layers)?,
            None => (0, 0, Some("root".to_string())),
        },
    };
    if let Some(g) = run_as_group {
        gid = to_id(g, &group_field)?;
    }

    if non_root && uid == 0 {
        return Err(refuse(
            "container has runAsNonRoot and image will run as root".into(),
        ));
    }

    // containerd's list [internal/cri/opts WithAdditionalGIDs, WithSupplementalGroups]: the
    // primary gid (always included since the fix of CVE-2023-25173), the groups that list the
    // user in the image's /etc/group (policy Merge only), then the kubelet's supplemental
    // groups, fsGroup first [pkg/kubelet/kuberuntime/security_context.go]. The kernel sorts
    // them; `id` shows them sorted.
    let strict = psc.and_then(|s| s.supplemental_groups_policy.as_deref())
        == Some(SUPPLEMENTAL_GROUPS_POLICY_STRICT);
    let mut additional = vec![gid];
    if let Some(name) = name.as_ref().filter(|_| !strict) {
        for g in read_entries(layers, "group")? {
            if g.members.iter().any(|m| m == name) {
                additional.push(g.id);
            }
        }
    }
    if let Some(fs_group) = psc.and_then(|s| s.fs_group) {
        additional.push(to_id(fs_group, "spec.securityContext.fsGroup")?);
    }
    for (j, g) in psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        additional.push(to_id(
            g,
            &format!("spec.securityContext.supplementalGroups[{j}]"),
        )?);
    }
    let mut seen = std::collections::BTreeSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
    })
}
