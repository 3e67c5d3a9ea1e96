//! The container's mounts (kernel filesystems, pod files, volumes) and device nodes, in the
//! order containerd's CRI plugin gives them. Part of building the runtime Spec; pure.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType, Mount, MountBuilder};

use super::spec::{SpecError, SpecInput, DEFAULT_TERMINATION_MESSAGE_PATH};

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

fn bind(dest: &str, source: &Path, read_only: bool, propagation: &str) -> Result<Mount, SpecError> {
    let rw = if read_only { "ro" } else { "rw" };
    mount(dest, "bind", source, &["rbind", propagation, rw])
}

/// A subPath must stay inside its volume: relative, no `..`.
fn join_sub_path(base: &Path, sub: &str, field: &str) -> Result<PathBuf, SpecError> {
    let rel = Path::new(sub);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(SpecError::InvalidValue {
            field: field.to_string(),
            reason: format!("subPath {sub:?} must be a relative path without '..'"),
        });
    }
    Ok(base.join(rel))
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
        let volume = match input.volume_dirs.get(&vm.name) {
            Some(v) => v,
            None => {
                return Err(SpecError::InvalidValue {
                    field: format!("{vfield}.name"),
                    reason: format!("volume {:?} was not set up for the pod", vm.name),
                })
            }
        };
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => join_sub_path(&volume.path, sub, &format!("{vfield}.subPath"))?,
            None => volume.path.clone(),
        };
        if !vm.mount_path.starts_with('/') {
            return Err(SpecError::InvalidValue {
                field: format!("{vfield}.mountPath"),
                reason: format!("{:?} must be an absolute path", vm.mount_path),
            });
        }
        let propagation = match vm.mount_propagation.as_deref() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") => "rshared",
            Some(other) => {
                return Err(SpecError::InvalidValue {
                    field: format!("{vfield}.mountPropagation"),
                    reason: format!("unknown propagation {other:?}"),
                })
            }
        };
        list.push(bind(
            &vm.mount_path,
            &source,
            vm.read_only.unwrap_or(false) || volume.read_only,
            propagation,
        )?);
    }
    Ok(list)
}

fn char_device(path: &str, major: i64, minor: i64) -> Result<LinuxDevice, SpecError> {
    Ok(LinuxDeviceBuilder::default()
        .path(path)
        .typ(LinuxDeviceType::C)
        .major(major)
        .minor(minor)
        .file_mode(0o666u32)
        .uid(0u32)
        .gid(0u32)
        .build()?)
}

/// The standard devices every container gets (runc's `AllowedDevices` that are created as nodes).
pub(crate) fn default_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    super::DEFAULT_DEVICES
        .iter()
        .map(|(p, maj, min)| char_device(p, *maj as i64, *min as i64))
        .collect()
}
