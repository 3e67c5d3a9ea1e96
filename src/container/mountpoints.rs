//! A layer of empty mount targets, shared by every container of the host and put above the
//! image's layers in the overlay: `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, onto
//! which the pod's files are bind-mounted (`container::mounts`).
//!
//! Why: a mount needs its target to exist. An image without these files (a `scratch` or
//! busybox image, most static ones) otherwise has them created in each container's writable
//! layer at every start, with `/etc` copied up first: four new files and directories on the
//! disk per container start and four removals per delete, on the start path. Found in these
//! targets, the bind mounts create nothing.
//!
//! The layer is used only where it changes nothing the container can see: each of the three
//! names, in the image, must be absent or a regular file (hidden by its mount either way; a
//! symlink, which the mount would follow, keeps the image as it is), and `/etc` absent or a
//! directory of mode 0755 owned as the layer's is (by the supervisor's user, root): the merged
//! `/etc` takes its attributes from the topmost layer that has it.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mount targets in the layer's `etc/`.
pub const TARGETS: [&str; 3] = ["hosts", "resolv.conf", "hostname"];
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// `layer` (made once for the host if missing) when the image of `layers` (bottom first, as
/// unpacked: overlay whiteouts and opaque markers) can have it above its own; None otherwise,
/// or when it cannot be made (the targets are then created in the writable layer, as without
/// it).
pub fn layer_for(layer: &Path, layers: &[PathBuf]) -> Option<PathBuf> {
    if !image_allows(layers) {
        return None;
    }
    match ensure(layer) {
        Ok(true) => Some(layer.to_path_buf()),
        Ok(false) => None,
        Err(e) => {
            tracing::debug!(layer = %layer.display(), error = %e, "no shared mount targets");
            None
        }
    }
}

/// What the image's layers have at one path, from the top: the first layer that has an entry
/// there decides (a whiteout: nothing).
enum Found {
    Absent,
    Entry(fs::Metadata),
}

fn topmost(layers: &[PathBuf], rel: &Path, below_opaque_etc: bool) -> Found {
    for l in layers.iter().rev() {
        let path = l.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if is_whiteout(&m) => return Found::Absent,
            Ok(m) => return Found::Entry(m),
            Err(_) => {}
        }
        // A file under an opaque /etc hides the lower layers' /etc.
        if below_opaque_etc && is_opaque(&l.join("etc")) {
            return Found::Absent;
        }
    }
    Found::Absent
}

fn image_allows(layers: &[PathBuf]) -> bool {
    let etc_ok = match topmost(layers, Path::new("etc"), false) {
        Found::Absent => true,
        Found::Entry(m) => {
            // SAFETY: geteuid and getegid cannot fail.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            m.is_dir() && m.uid() == uid && m.gid() == gid && m.mode() & 0o7777 == DIR_MODE
        }
    };
    etc_ok
        && TARGETS
            .iter()
            .all(|t| match topmost(layers, &Path::new("etc").join(t), true) {
                Found::Absent => true,
                Found::Entry(m) => m.file_type().is_file(),
            })
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // The marker the unpacker writes for an OCI opaque whiteout.
    let (Ok(c), Ok(name)) = (
        std::ffi::CString::new(dir.as_os_str().as_bytes()),
        std::ffi::CString::new(crate::image::OVERLAY_OPAQUE_XATTR),
    ) else {
        return false;
    };
    let mut buf = [0u8; 2];
    // SAFETY: both strings are NUL-terminated and the buffer's length is passed.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Whether `layer` holds every target, as a regular file.
fn complete(layer: &Path) -> bool {
    TARGETS.iter().all(|t| {
        fs::symlink_metadata(layer.join("etc").join(t)).is_ok_and(|m| m.file_type().is_file())
    })
}

/// Makes `layer` if it does not exist: built beside it, synced, renamed into place (a reader
/// sees it whole or not at all). Ok(false) when it exists incomplete (it may be in use: it is
/// left as it is, and not used).
fn ensure(layer: &Path) -> io::Result<bool> {
    if complete(layer) {
        return Ok(true);
    }
    if layer.exists() {
        return Ok(false);
    }
    let (Some(parent), Some(name)) = (layer.parent(), layer.file_name()) else {
        return Ok(false);
    };
    fs::create_dir_all(parent)?;
    let prefix = format!(".{}.new.", name.to_string_lossy());
    sweep_abandoned(parent, &prefix);
    let tmp = parent.join(format!("{prefix}{}", std::process::id()));
    let made = build(&tmp).and_then(|()| fs::rename(&tmp, layer));
    if made.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    match made {
        Ok(()) => {
            fs::File::open(parent)?.sync_all()?;
            Ok(true)
        }
        // Another supervisor renamed its own into place first.
        Err(_) if complete(layer) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Removes what a process killed while building the layer left beside it (`<prefix><pid>`, its
/// pid no longer running).
fn sweep_abandoned(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(prefix));
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn build(tmp: &Path) -> io::Result<()> {
    let _ = fs::remove_dir_all(tmp);
    let etc = tmp.join("etc");
    fs::create_dir_all(&etc)?;
    for t in TARGETS {
        let f = fs::File::create(etc.join(t))?;
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        f.sync_all()?;
    }
    for d in [&etc, tmp] {
        fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))?;
        fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layer_with(root: &Path, name: &str, files: &[&str]) -> PathBuf {
        let l = root.join(name);
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::set_permissions(l.join("etc"), fs::Permissions::from_mode(0o755)).unwrap();
        for f in files {
            fs::write(l.join("etc").join(f), "x").unwrap();
        }
        l
    }

    #[test]
    fn made_once_whole_and_used_for_images_without_the_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let base = layer_with(tmp.path(), "base", &["passwd"]);
        let layer = tmp.path().join("mountpoints");
        assert_eq!(
            layer_for(&layer, std::slice::from_ref(&base)),
            Some(layer.clone())
        );
        for t in TARGETS {
            let m = fs::symlink_metadata(layer.join("etc").join(t)).unwrap();
            assert!(m.is_file() && m.len() == 0 && m.mode() & 0o7777 == FILE_MODE);
        }
        assert_eq!(
            fs::metadata(layer.join("etc")).unwrap().mode() & 0o7777,
            DIR_MODE
        );
        // Nothing left beside it; a second use finds it.
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(layer_for(&layer, &[base]), Some(layer));
    }

    #[test]
    fn images_whose_targets_are_regular_files_or_absent_qualify() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("mountpoints");
        let none = tmp.path().join("empty");
        fs::create_dir(&none).unwrap();
        assert!(layer_for(&layer, &[none]).is_some());
        let files = layer_with(tmp.path(), "files", &["hosts", "hostname"]);
        assert!(layer_for(&layer, &[files]).is_some());
    }

    #[test]
    fn a_symlinked_target_or_etc_keeps_the_image_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("mountpoints");
        let linked = layer_with(tmp.path(), "linked", &[]);
        symlink("../run/resolv.conf", linked.join("etc/resolv.conf")).unwrap();
        assert_eq!(layer_for(&layer, std::slice::from_ref(&linked)), None);
        // A regular file in an upper layer hides the lower one's symlink.
        let upper = layer_with(tmp.path(), "upper", &["resolv.conf"]);
        assert!(layer_for(&layer, &[linked, upper]).is_some());
        let etc_link = tmp.path().join("etclink");
        fs::create_dir(&etc_link).unwrap();
        symlink("usr/etc", etc_link.join("etc")).unwrap();
        assert_eq!(layer_for(&layer, &[etc_link]), None);
    }

    #[test]
    fn an_etc_of_other_mode_keeps_the_image_as_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("mountpoints");
        let l = layer_with(tmp.path(), "l", &[]);
        fs::set_permissions(l.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(layer_for(&layer, &[l]), None);
    }

    #[test]
    fn what_a_killed_builder_left_is_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("mountpoints");
        // No process has this pid: it is above the kernel's limit (2^22).
        let abandoned = tmp.path().join(".mountpoints.new.2147483647");
        fs::create_dir_all(abandoned.join("etc")).unwrap();
        let base = layer_with(tmp.path(), "base", &[]);
        assert!(layer_for(&layer, &[base]).is_some());
        assert!(!abandoned.exists());
    }

    #[test]
    fn an_incomplete_layer_is_left_alone_and_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("mountpoints");
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::write(layer.join("etc/hosts"), "").unwrap();
        let base = layer_with(tmp.path(), "base", &[]);
        assert_eq!(layer_for(&layer, &[base]), None);
        assert!(layer.join("etc/hosts").exists());
    }
}
