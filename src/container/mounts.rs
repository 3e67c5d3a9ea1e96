//! The container's mounts (kernel filesystems, pod files, volumes) in the order containerd's
//! CRI plugin gives them, and the volume mounts' subPaths as the kubelet computes them
//! (subPathExpr expanded from the container's env). Part of building the runtime Spec; pure: the subPaths themselves are made and bind-mounted by the supervisor
//! (`volume::subpath`), which hands their host paths back in [`SpecInput::sub_path_sources`].

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::VolumeMount;
use oci_spec::runtime::{Mount, MountBuilder};

use super::env::{container_env, expand};
use super::spec::{env_context, SpecError, SpecInput, DEFAULT_TERMINATION_MESSAGE_PATH};

// `volumeMounts[].mountPropagation` values [core/v1 types.go MountPropagationMode].
pub const PROPAGATION_NONE: &str = "None";
pub const PROPAGATION_HOST_TO_CONTAINER: &str = "HostToContainer";
pub const PROPAGATION_BIDIRECTIONAL: &str = "Bidirectional";
// `volumeMounts[].recursiveReadOnly` values [core/v1 types.go RecursiveReadOnlyMode].
pub const RRO_DISABLED: &str = "Disabled";
pub const RRO_IF_POSSIBLE: &str = "IfPossible";
pub const RRO_ENABLED: &str = "Enabled";
/// The runtime Spec's mount option for a recursively read-only bind (runc's `rro`).
pub const OPTION_RECURSIVE_READ_ONLY: &str = "rro";
/// `linux.rootfsPropagation` values the mounts may ask for (containerd's WithMounts).
pub const ROOT_PROPAGATION_SLAVE: &str = "rslave";
pub const ROOT_PROPAGATION_SHARED: &str = "rshared";

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn bind(dest: &str, source: &Path, options: &[&str]) -> Result<Mount, SpecError> {
    let mut all = vec!["rbind"];
    all.extend_from_slice(options);
    mount(dest, "bind", source, &all)
}

/// The volumeMount's subPath or expanded subPathExpr, None for the volume's root.
fn has_sub_path(vm: &VolumeMount) -> bool {
    vm.sub_path.as_deref().is_some_and(|s| !s.is_empty())
        || vm.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
}

/// subPathExpr with `$(VAR)` replaced by the container's env vars (env only, not the image's);
/// a reference to a missing or empty variable is an error naming every such variable
/// [pkg/kubelet/container/helpers.go ExpandContainerVolumeMounts].
pub(crate) fn expand_sub_path_expr(
    expr: &str,
    vars: &[(String, String)],
) -> Result<String, SpecError> {
    let missing = RefCell::new(BTreeSet::new());
    let lookup = |name: &str| {
        let value = vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if value.is_empty() {
            missing.borrow_mut().insert(name.to_string());
        }
        Some(value)
    };
    let expanded = expand(expr, &lookup);
    let missing = missing.into_inner();
    if !missing.is_empty() {
        let names: Vec<String> = missing.into_iter().collect();
        return Err(SpecError::Kubelet(format!(
            "missing value for {}",
            names.join(", ")
        )));
    }
    Ok(expanded)
}

/// The kubelet's own checks of a subPath, after expansion [kubelet_pods.go makeMounts].
pub(crate) fn check_sub_path(sub_path: &str) -> Result<(), SpecError> {
    if sub_path.starts_with('/') {
        return Err(SpecError::Kubelet(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        )));
    }
    if Path::new(sub_path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(SpecError::Kubelet(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        )));
    }
    Ok(())
}

/// Each volumeMount's subPath (subPathExpr expanded), None where the whole volume is mounted.
pub(crate) fn sub_paths(input: &SpecInput) -> Result<Vec<Option<String>>, SpecError> {
    let mounts = input.container.volume_mounts.as_deref().unwrap_or_default();
    if !mounts.iter().any(has_sub_path) {
        return Ok(vec![None; mounts.len()]);
    }
    let field = super::spec::container_field(input.pod, input.container)?;
    let vars = container_env(&env_context(input, &field))?;
    let mut out = Vec::with_capacity(mounts.len());
    for vm in mounts {
        let sub = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            Some(expr) => expand_sub_path_expr(expr, &vars)?,
            None => vm.sub_path.clone().unwrap_or_default(),
        };
        if sub.is_empty() {
            out.push(None);
            continue;
        }
        check_sub_path(&sub)?;
        out.push(Some(sub));
    }
    Ok(out)
}

/// The bind options of a volume mount: propagation, then ro/rw (and rro), as containerd's
/// WithMounts writes them [containerd internal/cri/opts/spec_linux_opts.go].
/// `volume_read_only`: the volume itself is read-only (API-data volumes, a claim with
/// `readOnly: true`), which makes every mount of it read-only.
fn volume_options(
    vm: &VolumeMount,
    volume_read_only: bool,
) -> Result<Vec<&'static str>, SpecError> {
    let propagation = match vm.mount_propagation.as_deref() {
        None | Some(PROPAGATION_NONE) => "rprivate",
        Some(PROPAGATION_HOST_TO_CONTAINER) => "rslave",
        Some(PROPAGATION_BIDIRECTIONAL) => "rshared",
        Some(other) => {
            return Err(SpecError::Kubelet(format!(
                "invalid MountPropagation mode: {other:?}"
            )))
        }
    };
    let read_only = vm.read_only.unwrap_or(false) || volume_read_only;
    let rro = recursive_read_only(vm)?;
    let mut options = vec![propagation, if read_only { "ro" } else { "rw" }];
    if rro {
        options.push(OPTION_RECURSIVE_READ_ONLY);
    }
    Ok(options)
}

/// Whether the mount is made recursively read-only. peapod's init supports it (mount_setattr,
/// Linux 5.12), so IfPossible and Enabled both mean yes [kubelet_pods.go resolveRecursiveReadOnly].
fn recursive_read_only(vm: &VolumeMount) -> Result<bool, SpecError> {
    let mode = match vm.recursive_read_only.as_deref() {
        None | Some(RRO_DISABLED) => return Ok(false),
        Some(mode) => mode,
    };
    let fail = |why: String| {
        SpecError::Kubelet(format!("failed to resolve recursive read-only mode: {why}"))
    };
    if !vm.read_only.unwrap_or(false) {
        return Err(fail(format!(
            "volume {:?} requested recursive read-only mode, but it is not read-only",
            vm.name
        )));
    }
    if let Some(p) = vm
        .mount_propagation
        .as_deref()
        .filter(|p| *p != PROPAGATION_NONE)
    {
        return Err(fail(format!(
            "volume {:?} requested recursive read-only mode, but it is not compatible with propagation {p:?}",
            vm.name
        )));
    }
    match mode {
        RRO_IF_POSSIBLE | RRO_ENABLED => Ok(true),
        other => Err(fail(format!("unknown recursive read-only mode {other:?}"))),
    }
}

/// `linux.rootfsPropagation` the volume mounts need: a slave root for HostToContainer, shared
/// for Bidirectional (containerd's WithMounts); None keeps the runtime's private root.
pub(crate) fn root_propagation(input: &SpecInput) -> Option<&'static str> {
    let modes: Vec<&str> = input
        .container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|vm| vm.mount_propagation.as_deref())
        .collect();
    if modes.contains(&PROPAGATION_BIDIRECTIONAL) {
        Some(ROOT_PROPAGATION_SHARED)
    } else if modes.contains(&PROPAGATION_HOST_TO_CONTAINER) {
        Some(ROOT_PROPAGATION_SLAVE)
    } else {
        None
    }
}

pub(crate) fn mounts(
    input: &SpecInput,
    field: &str,
    privileged: bool,
    ro_rootfs: bool,
) -> Result<Vec<Mount>, SpecError> {
    let sys_rw = if privileged { "rw" } else { "ro" };
    let files_rw = if ro_rootfs { "ro" } else { "rw" };
    let term_path = input
        .container
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_string());
    let mut list = vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", sys_rw],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup2",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", sys_rw],
        )?,
        mount(
            "/dev/shm",
            "bind",
            &input.shm_path,
            &["rbind", "rprivate", "nosuid", "nodev", "noexec", "rw"],
        )?,
        mount(
            "/etc/hosts",
            "bind",
            &input.hosts_path,
            &["rbind", "rprivate", files_rw],
        )?,
        mount(
            "/etc/resolv.conf",
            "bind",
            &input.resolv_path,
            &["rbind", "rprivate", files_rw],
        )?,
        mount(
            "/etc/hostname",
            "bind",
            &input.hostname_path,
            &["rbind", "rprivate", files_rw],
        )?,
        mount(
            &term_path,
            "bind",
            &input.termination_log_path,
            &["rbind", "rprivate", "rw"],
        )?,
    ];
    for (k, vm) in input.container.volume_mounts.iter().flatten().enumerate() {
        let vfield = format!("{field}.volumeMounts[{k}]");
        let Some(volume) = input.volume_dirs.get(&vm.name) else {
            return Err(SpecError::InvalidValue {
                field: format!("{vfield}.name"),
                reason: format!("volume {:?} was not set up for the pod", vm.name),
            });
        };
        let source = if has_sub_path(vm) {
            // Made and checked by the supervisor (volume::subpath).
            input.sub_path_sources.get(&k)
        } else {
            Some(&volume.path)
        };
        let Some(source) = source else {
            return Err(SpecError::InvalidValue {
                field: format!("{vfield}.subPath"),
                reason: format!("the subPath of volume {:?} was not set up", vm.name),
            });
        };
        if !vm.mount_path.starts_with('/') {
            return Err(SpecError::InvalidValue {
                field: format!("{vfield}.mountPath"),
                reason: format!("{:?} must be an absolute path", vm.mount_path),
            });
        }
        let options = volume_options(vm, volume.read_only)?;
        list.push(bind(&vm.mount_path, source, &options)?);
    }
    Ok(list)
}
