//! /dev inside the rootfs: the Spec's `linux.devices` plus the OCI default devices, and the
//! standard symlinks (/dev/fd, stdin, stdout, stderr, ptmx).
//!
//! Runs before pivot_root, so every path is resolved inside the rootfs.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::error::InitError;
use super::mounts::{bind, is_char_device, resolve_in_root, Kind};

/// A device node to provide in the container's /dev.
#[derive(Debug, Clone, PartialEq)]
struct Device {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

use crate::container::DEFAULT_DEVICES;

const PTMX: &str = "/dev/ptmx";
/// The container's own devpts instance's ptmx, relative to the rootfs.
const PTS_PTMX: &str = "dev/pts/ptmx";

const SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

fn devices_of(spec: &Spec) -> Result<Vec<Device>, InitError> {
    let mut out: Vec<Device> = DEFAULT_DEVICES
        .iter()
        .map(|(path, major, minor)| Device {
            path: PathBuf::from(path),
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    let listed = spec.linux().as_ref().and_then(|l| l.devices().clone());
    for d in listed.unwrap_or_default() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(InitError::new(
                    format!("device {}", d.path().display()),
                    "type \"a\" is only valid in cgroup rules",
                ))
            }
        };
        let dev = Device {
            path: d.path().clone(),
            kind,
            major: u64::try_from(d.major()).unwrap_or(0),
            minor: u64::try_from(d.minor()).unwrap_or(0),
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        // A listed device replaces a default one at the same path.
        out.retain(|o| o.path != dev.path);
        out.push(dev);
    }
    Ok(out)
}

/// Creates the devices and symlinks under `rootfs/dev`.
pub(crate) fn create_devices(rootfs: &Path, spec: &Spec) -> Result<(), InitError> {
    // With a private devpts instance, /dev/ptmx must point at its ptmx (devpts(4)), whatever
    // the Spec lists there: a privileged container's list has the host's ptmx node, whose ptys
    // would live in the host's devpts (runc's setupPtmx also always makes the symlink).
    let own_devpts = rootfs.join(PTS_PTMX).exists();
    for dev in devices_of(spec)? {
        if own_devpts && dev.path == Path::new(PTMX) {
            continue;
        }
        create_device(rootfs, &dev)?;
    }
    for (target, link) in SYMLINKS {
        make_symlink(rootfs, target, link)?;
    }
    if own_devpts && !is_char_device(&rootfs.join(PTMX.trim_start_matches('/'))) {
        make_symlink(rootfs, "pts/ptmx", PTMX)?;
    }
    Ok(())
}

fn create_device(rootfs: &Path, dev: &Device) -> Result<(), InitError> {
    let step = || format!("create device {}", dev.path.display());
    let parent = dev.path.parent().unwrap_or(Path::new("/"));
    let name = dev
        .path
        .file_name()
        .ok_or_else(|| InitError::new(step(), "path has no file name"))?;
    let dir =
        resolve_in_root(rootfs, parent, Some(Kind::Dir)).map_err(|e| InitError::io(step(), &e))?;
    let dest = dir.join(name);
    if fs::symlink_metadata(&dest).is_ok() {
        fs::remove_file(&dest).map_err(|e| InitError::io(step(), &e))?;
    }
    let mode = Mode::from_bits_truncate(dev.mode);
    match mknod(&dest, dev.kind, mode, makedev(dev.major, dev.minor)) {
        Ok(()) => {
            // mknod applies the umask; set the mode the Spec asked for.
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                &dest,
                mode,
                nix::sys::stat::FchmodatFlags::NoFollowSymlink,
            )
            .or_else(|_| {
                nix::sys::stat::fchmodat(
                    nix::fcntl::AT_FDCWD,
                    &dest,
                    mode,
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
            })
            .map_err(|e| InitError::sys(step(), e))?;
            nix::unistd::chown(
                &dest,
                Some(nix::unistd::Uid::from_raw(dev.uid)),
                Some(nix::unistd::Gid::from_raw(dev.gid)),
            )
            .map_err(|e| InitError::sys(step(), e))?;
        }
        // Without CAP_MKNOD (or on a nodev-restricted filesystem) fall back to bind-mounting
        // the host's node, as runc does for rootless containers.
        Err(nix::errno::Errno::EPERM) | Err(nix::errno::Errno::EACCES) => {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&dest)
                .map_err(|e| InitError::io(step(), &e))?;
            bind(&dev.path, &dest, false)?;
        }
        Err(e) => return Err(InitError::sys(step(), e)),
    }
    tracing::trace!(path = %dev.path.display(), "device created");
    Ok(())
}

fn make_symlink(rootfs: &Path, target: &str, link: &str) -> Result<(), InitError> {
    let link_path = Path::new(link);
    let parent = link_path.parent().unwrap_or(Path::new("/"));
    let dir = resolve_in_root(rootfs, parent, Some(Kind::Dir))
        .map_err(|e| InitError::io(format!("symlink {link}"), &e))?;
    let dest = dir.join(link_path.file_name().unwrap_or_default());
    match symlink(target, &dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(InitError::io(format!("symlink {link}"), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxDeviceBuilder};

    #[test]
    fn listed_devices_replace_defaults() {
        let dev = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .file_mode(0o600u32)
            .build()
            .unwrap();
        let fuse = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .build()
            .unwrap();
        let mut spec = Spec::default();
        spec.set_linux(Some(
            LinuxBuilder::default()
                .devices(vec![dev, fuse])
                .build()
                .unwrap(),
        ));
        let devs = devices_of(&spec).unwrap();
        assert_eq!(devs.len(), DEFAULT_DEVICES.len() + 1);
        let null = devs
            .iter()
            .find(|d| d.path == Path::new("/dev/null"))
            .unwrap();
        assert_eq!(null.mode, 0o600);
    }
}
