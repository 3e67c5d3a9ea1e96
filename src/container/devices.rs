//! The device side of the runtime Spec, as containerd's CRI plugin writes it: the nodes the
//! container's /dev gets (`linux.devices`) and the cgroup allowlist (`linux.resources.devices`).
//!
//! A container gets the OCI default devices and may use only the standard ones: containerd's
//! default Spec denies every device (`pkg/oci/spec.go`, `{allow: false, access: rwm}`) and
//! `WithDefaultUnixDevices` allows null, zero, full, random, urandom, tty, console, ptmx, the
//! pts ttys and tun. runc appends `c *:* m` and `b *:* m` (mknod of any node, opening it
//! denied); we do not: a node made in a hostPath volume could be opened from the host, outside
//! the allowlist. A privileged container gets every host device node and an allow-all rule
//! (CRI's `WithHostDevices` + `WithAllDevicesAllowed`).
//!
//! The rules are pure; [`host_devices`] reads the host's /dev and is called by the supervisor
//! for privileged containers only.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use super::spec::SpecError;
use super::DEFAULT_DEVICES;

/// The host's device directory, listed for privileged containers.
pub const HOST_DEV_DIR: &str = "/dev";
/// Every access, in the cgroup rules' letters.
const RWM: &str = "rwm";

/// The char devices a non-privileged container may read, write and mknod (major, minor; None
/// for any minor), in the order of containerd's `WithDefaultUnixDevices`.
pub const ALLOWED_CHAR_DEVICES: [(i64, Option<i64>); 10] = [
    (1, Some(3)),    // /dev/null
    (1, Some(8)),    // /dev/random
    (1, Some(7)),    // /dev/full
    (5, Some(0)),    // /dev/tty
    (1, Some(5)),    // /dev/zero
    (1, Some(9)),    // /dev/urandom
    (5, Some(1)),    // /dev/console
    (136, None),     // /dev/pts/*
    (5, Some(2)),    // /dev/ptmx
    (10, Some(200)), // /dev/net/tun
];

/// Directories of the host's /dev that are not device trees of their own (containerd's
/// `getDevices`): the container mounts its own pts, shm, mqueue; fd is a symlink farm; the
/// rest belong to other managers.
const SKIPPED_DEV_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
/// The host's console is never handed to a container (containerd skips it too).
const SKIPPED_DEV_FILE: &str = "console";

/// `linux.resources.devices` for a container: deny all, then the standard devices; or, for a
/// privileged one, allow all.
pub fn device_cgroup_rules(privileged: bool) -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    let all = |allow| {
        LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(RWM)
            .build()
    };
    if privileged {
        return Ok(vec![all(true)?]);
    }
    let mut rules = vec![all(false)?];
    for (major, minor) in ALLOWED_CHAR_DEVICES {
        let mut rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access(RWM);
        if let Some(minor) = minor {
            rule = rule.minor(minor);
        }
        rules.push(rule.build()?);
    }
    Ok(rules)
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

/// `linux.devices`: the standard nodes every container gets (runc's `AllowedDevices` that are
/// created as nodes), then for a privileged container the host's nodes, a host node replacing
/// a standard one at the same path (CRI's `addDevice`).
pub fn linux_devices(
    privileged: bool,
    host: &[LinuxDevice],
) -> Result<Vec<LinuxDevice>, SpecError> {
    let mut list = DEFAULT_DEVICES
        .iter()
        .map(|(p, maj, min)| char_device(p, *maj as i64, *min as i64))
        .collect::<Result<Vec<_>, _>>()?;
    if privileged {
        for dev in host {
            match list.iter_mut().find(|d| d.path() == dev.path()) {
                Some(existing) => *existing = dev.clone(),
                None => list.push(dev.clone()),
            }
        }
    }
    Ok(list)
}

/// The char and block device nodes under `dev` (normally `/dev`), recursively, as containerd's
/// `HostDevices` lists them: symlinks, fifos, sockets and 0:0 are left out, as are the
/// directories in [`SKIPPED_DEV_DIRS`] and the console. Sorted by path.
pub fn host_devices(dev: &Path) -> io::Result<Vec<LinuxDevice>> {
    let mut out = Vec::new();
    let mut dirs = vec![dev.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                if !SKIPPED_DEV_DIRS.iter().any(|s| name == *s) {
                    dirs.push(entry.path());
                }
                continue;
            }
            if name == SKIPPED_DEV_FILE {
                continue;
            }
            if !file_type.is_char_device() && !file_type.is_block_device() {
                continue;
            }
            // A node removed since read_dir (udev at work) is simply not listed.
            let meta = match std::fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Some(device) = node(&entry.path(), &meta)? else {
                continue;
            };
            out.push(device);
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

/// The device a char or block node's metadata describes, at `path`; None for other files and
/// for 0:0.
fn node(path: &Path, meta: &std::fs::Metadata) -> io::Result<Option<LinuxDevice>> {
    let file_type = meta.file_type();
    let typ = if file_type.is_char_device() {
        LinuxDeviceType::C
    } else if file_type.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    if major == 0 && minor == 0 {
        return Ok(None);
    }
    LinuxDeviceBuilder::default()
        .path(path)
        .typ(typ)
        .major(major as i64)
        .minor(minor as i64)
        .file_mode(meta.mode() & 0o7777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
        .map(Some)
        .map_err(io::Error::other)
}

/// The devices a CRI `Device` names (containerd's `getDevices`): the node at `host` (symlinks
/// followed) made at `container`, or, for a directory, every node under it at the same place
/// under `container`.
pub fn devices_at(host: &Path, container: &Path) -> io::Result<Vec<LinuxDevice>> {
    let meta = std::fs::metadata(host)?;
    if meta.is_dir() {
        let mut list = host_devices(host)?;
        for d in &mut list {
            let rel = d
                .path()
                .strip_prefix(host)
                .unwrap_or(d.path())
                .to_path_buf();
            d.set_path(container.join(rel));
        }
        return Ok(list);
    }
    match node(container, &meta)? {
        Some(d) => Ok(vec![d]),
        None => Err(io::Error::other(format!(
            "{} is not a device node",
            host.display()
        ))),
    }
}

/// The cgroup rule that lets the container use `device` with `access` (`r`, `w`, `m`).
pub fn device_rule(device: &LinuxDevice, access: &str) -> Result<LinuxDeviceCgroup, SpecError> {
    Ok(LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(device.typ())
        .major(device.major())
        .minor(device.minor())
        .access(access)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{Access, DeviceKind, DeviceRules};

    #[test]
    fn default_rules_match_containerd() {
        let rules = device_cgroup_rules(false).unwrap();
        let json = serde_json::to_value(&rules).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({"allow": false, "access": "rwm"})
        );
        assert_eq!(
            json[8],
            serde_json::json!({"allow": true, "type": "c", "major": 136, "access": "rwm"})
        );
        let rules = DeviceRules::from_spec(&rules).unwrap();
        assert!(rules.allows(DeviceKind::Char, 1, 3, Access::ALL));
        assert!(rules.allows(DeviceKind::Char, 136, 3, Access::READ));
        assert!(!rules.allows(DeviceKind::Char, 1, 11, Access::READ));
        assert!(!rules.allows(DeviceKind::Char, 1, 1, Access::MKNOD));
        assert!(!rules.allows(DeviceKind::Block, 7, 0, Access::MKNOD));
    }

    #[test]
    fn privileged_rules_allow_everything() {
        let rules = device_cgroup_rules(true).unwrap();
        assert_eq!(
            serde_json::to_value(&rules).unwrap(),
            serde_json::json!([{"allow": true, "access": "rwm"}])
        );
        let rules = DeviceRules::from_spec(&rules).unwrap();
        assert!(rules.allows(DeviceKind::Block, 8, 0, Access::ALL));
    }

    #[test]
    fn host_devices_replace_defaults_only_when_privileged() {
        let mut null = char_device("/dev/null", 1, 3).unwrap();
        null.set_file_mode(Some(0o600));
        let kmsg = char_device("/dev/kmsg", 1, 11).unwrap();
        let host = [null, kmsg];
        let plain = linux_devices(false, &host).unwrap();
        assert_eq!(plain.len(), DEFAULT_DEVICES.len());
        assert!(plain.iter().all(|d| d.file_mode() == Some(0o666)));
        let all = linux_devices(true, &host).unwrap();
        assert_eq!(all.len(), DEFAULT_DEVICES.len() + 1);
        assert_eq!(all[0].file_mode(), Some(0o600));
        assert_eq!(all.last().unwrap().path(), Path::new("/dev/kmsg"));
    }

    #[test]
    fn host_devices_lists_real_nodes_only() {
        // /dev/null exists on every Linux host; listing needs no privilege.
        let devs = host_devices(Path::new("/dev")).unwrap();
        let null = devs
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null is listed");
        assert_eq!(
            (null.typ(), null.major(), null.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert!(devs.iter().all(|d| !d.path().starts_with("/dev/pts")));
        assert!(devs.iter().all(|d| d.path() != Path::new("/dev/console")));

        // Plain files, symlinks and skipped directories are not devices.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        std::os::unix::fs::symlink("/dev/null", tmp.path().join("link")).unwrap();
        std::fs::create_dir(tmp.path().join("pts")).unwrap();
        assert!(host_devices(tmp.path()).unwrap().is_empty());
    }

    #[test]
    fn a_cri_device_is_the_host_node_at_the_container_path() {
        let devs = devices_at(Path::new("/dev/null"), Path::new("/dev/mynull")).unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].path(), Path::new("/dev/mynull"));
        assert_eq!((devs[0].major(), devs[0].minor()), (1, 3));
        let rule = device_rule(&devs[0], "rw").unwrap();
        assert_eq!(
            (rule.major(), rule.minor(), rule.allow()),
            (Some(1), Some(3), true)
        );
        assert_eq!(rule.access().as_deref(), Some("rw"));

        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        let e = devices_at(&tmp.path().join("file"), Path::new("/dev/x")).unwrap_err();
        assert!(e.to_string().ends_with("is not a device node"), "{e}");
        assert!(devices_at(&tmp.path().join("none"), Path::new("/dev/x")).is_err());
    }
}
