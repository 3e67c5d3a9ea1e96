//! Rootfs and mounts inside the container's private mount namespace: the overlay root,
//! the Spec's mounts, pivot_root, masked and read-only paths.
//!
//! Everything here runs in the init after `clone(CLONE_NEWNS)`, and the first step cuts the
//! tree off from the host's ([`isolate_root`]), so no mount or unmount made here propagates to
//! the host but in a Bidirectional volume; the mounts die with the namespace when the
//! container's last process exits.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use super::error::InitError;
use super::{ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR};

/// Symlink hops allowed while resolving a path inside the rootfs (the kernel's limit, 40).
const MAX_SYMLINK_HOPS: usize = 40;
/// mount(2) copies at most one page of options (the kernel truncates longer data).
const MOUNT_DATA_MAX: usize = 4095;

/// What to create at the end of a mount destination that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// Cuts our new namespace's mounts off from the host's, as runc's prepareRoot does
/// (mount_namespaces(7): a copied namespace keeps the shared peer groups): private by default;
/// a slave of the host when the Spec's `linux.rootfsPropagation` asks for rslave (a
/// HostToContainer volume: the host's later mounts then reach the container); shared for
/// rshared (Bidirectional: the volume's bind mount is then a peer of the host's mount, so
/// mounts made in it reach the host too). A shared tree would carry the rootfs and everything
/// mounted in it onto the host, so the mount the rootfs directory is on is made a slave first
/// (runc's rootfsParentMountPrivate makes it private; a slave still receives the host's mounts,
/// for a volume on that same mount); the old root is made a slave before it is detached
/// ([`pivot_into`]).
pub(crate) fn isolate_root(spec: &Spec) -> Result<(), InitError> {
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref());
    let flag = match propagation {
        Some("rslave" | "slave") => MsFlags::MS_SLAVE,
        Some("rshared" | "shared") => MsFlags::MS_SHARED,
        _ => MsFlags::MS_PRIVATE,
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | flag,
        None::<&str>,
    )
    .map_err(|e| InitError::sys("set the propagation of /", e))?;
    if flag == MsFlags::MS_SHARED {
        if let Some(root) = spec.root().as_ref() {
            slave_parent_mount(root.path())?;
        }
    }
    Ok(())
}

/// Makes the mount `dir` is on a slave (in this namespace only) if it is shared, so that what
/// is mounted at `dir` does not propagate to its peers; pivot_root(2) also refuses a new root
/// whose parent mount is shared.
fn slave_parent_mount(dir: &Path) -> Result<(), InitError> {
    let info = fs::read_to_string(crate::procfs::MOUNTINFO)
        .map_err(|e| InitError::io(crate::procfs::MOUNTINFO, &e))?;
    let Some(on) = crate::procfs::mount_containing(&info, dir) else {
        return Err(InitError::new(
            "make the rootfs's mount a slave",
            format!("no mount holds {}", dir.display()),
        ));
    };
    if !on.is_shared() {
        return Ok(());
    }
    mount(
        None::<&str>,
        &on.mountpoint,
        None::<&str>,
        MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| InitError::sys(format!("make {} a slave", on.mountpoint.display()), e))
}

/// Mounts the rootfs at `root.path` and returns that path. With the overlay annotations it
/// mounts an overlay; otherwise it bind-mounts the directory onto itself, because pivot_root(2)
/// needs the new root to be a mount point.
pub(crate) fn mount_rootfs(spec: &Spec) -> Result<PathBuf, InitError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| InitError::new("rootfs", "root: missing in spec"))?;
    let rootfs = root.path().clone();
    let annotations = spec.annotations().clone().unwrap_or_default();
    match annotations.get(ANNOTATION_LOWERDIRS) {
        Some(lower) => {
            let upper = annotations.get(ANNOTATION_UPPERDIR);
            let work = annotations.get(ANNOTATION_WORKDIR);
            let data = overlay_options(lower, upper.map(String::as_str), work.map(String::as_str))?;
            if let Some(dir) = &data.chdir {
                std::env::set_current_dir(dir)
                    .map_err(|e| InitError::io(format!("chdir {}", dir.display()), &e))?;
            }
            mount(
                Some("overlay"),
                &rootfs,
                Some("overlay"),
                MsFlags::empty(),
                Some(data.options.as_str()),
            )
            .map_err(|e| InitError::sys(format!("mount overlay at {}", rootfs.display()), e))?;
            let _ = std::env::set_current_dir("/");
        }
        None => bind(&rootfs, &rootfs, true)?,
    }
    Ok(rootfs)
}

/// Overlay mount data, and the directory to chdir into when relative lowerdirs were needed.
#[derive(Debug, PartialEq)]
pub(crate) struct OverlayData {
    pub options: String,
    pub chdir: Option<PathBuf>,
}

/// Builds `lowerdir=...,upperdir=...,workdir=...`. When that exceeds one page, the lowerdirs
/// (and upper/work if they share the parent) are made relative to the lowerdirs' common parent,
/// which the caller must chdir into; overlayfs resolves relative paths against the cwd at mount
/// time.
pub(crate) fn overlay_options(
    lower: &str,
    upper: Option<&str>,
    work: Option<&str>,
) -> Result<OverlayData, InitError> {
    let join = |lower: &str, upper: Option<&str>, work: Option<&str>| {
        let mut s = format!("lowerdir={lower}");
        if let (Some(u), Some(w)) = (upper, work) {
            s.push_str(&format!(",upperdir={u},workdir={w}"));
        }
        s
    };
    let full = join(lower, upper, work);
    if full.len() <= MOUNT_DATA_MAX {
        return Ok(OverlayData {
            options: full,
            chdir: None,
        });
    }
    let layers: Vec<&Path> = lower.split(':').map(Path::new).collect();
    let parent = common_parent(&layers)
        .ok_or_else(|| InitError::new("mount overlay", "lowerdirs have no common parent"))?;
    let rel = |p: &str| -> String {
        Path::new(p)
            .strip_prefix(&parent)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| p.to_string())
    };
    let lower_rel: Vec<String> = lower.split(':').map(rel).collect();
    let short = join(
        &lower_rel.join(":"),
        upper.map(rel).as_deref(),
        work.map(rel).as_deref(),
    );
    if short.len() > MOUNT_DATA_MAX {
        return Err(InitError::new(
            "mount overlay",
            format!(
                "options are {} bytes even with relative lowerdirs (limit {MOUNT_DATA_MAX})",
                short.len()
            ),
        ));
    }
    Ok(OverlayData {
        options: short,
        chdir: Some(parent),
    })
}

fn common_parent(paths: &[&Path]) -> Option<PathBuf> {
    let first = paths.first()?.parent()?;
    let mut common: Vec<Component> = first.components().collect();
    for p in &paths[1..] {
        let comps: Vec<Component> = p.parent()?.components().collect();
        let n = common
            .iter()
            .zip(comps.iter())
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    if common.is_empty() {
        return None;
    }
    Some(common.iter().collect())
}

/// Parsed `mounts[].options`.
#[derive(Debug, PartialEq)]
pub(crate) struct MountOptions {
    pub flags: MsFlags,
    pub propagation: MsFlags,
    pub bind: bool,
    pub recursive: bool,
    /// `rro`: read-only down to every submount (runc's option).
    pub recursive_read_only: bool,
    pub data: Vec<String>,
}

pub(crate) fn parse_options(options: &[String]) -> MountOptions {
    let mut out = MountOptions {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        bind: false,
        recursive: false,
        recursive_read_only: false,
        data: Vec::new(),
    };
    for opt in options {
        let (clear, flag) = match opt.as_str() {
            "defaults" => (false, MsFlags::empty()),
            "ro" => (false, MsFlags::MS_RDONLY),
            "rw" => (true, MsFlags::MS_RDONLY),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "suid" => (true, MsFlags::MS_NOSUID),
            "nodev" => (false, MsFlags::MS_NODEV),
            "dev" => (true, MsFlags::MS_NODEV),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "atime" => (true, MsFlags::MS_NOATIME),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            "bind" => {
                out.bind = true;
                continue;
            }
            "rbind" => {
                out.bind = true;
                out.recursive = true;
                continue;
            }
            "rro" => {
                out.recursive_read_only = true;
                (false, MsFlags::MS_RDONLY)
            }
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                out.propagation |= match p.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                if p.starts_with('r') {
                    out.propagation |= MsFlags::MS_REC;
                }
                continue;
            }
            other => {
                out.data.push(other.to_string());
                continue;
            }
        };
        if clear {
            out.flags.remove(flag);
        } else {
            out.flags.insert(flag);
        }
    }
    out
}

/// Mounts every `mounts[]` entry under `rootfs`, in order.
pub(crate) fn mount_all(rootfs: &Path, spec: &Spec) -> Result<(), InitError> {
    for m in spec.mounts().iter().flatten() {
        mount_one(rootfs, m)?;
    }
    Ok(())
}

fn mount_one(rootfs: &Path, m: &Mount) -> Result<(), InitError> {
    let dest_name = m.destination().display().to_string();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("none");
    let is_bind = opts.bind || typ == "bind";
    let kind = match (is_bind, m.source()) {
        (true, Some(src)) => {
            let meta = fs::metadata(src).map_err(|e| {
                InitError::io(format!("mount {dest_name}: source {}", src.display()), &e)
            })?;
            if meta.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            }
        }
        _ => Kind::Dir,
    };
    let dest = resolve_in_root(rootfs, m.destination(), Some(kind))
        .map_err(|e| InitError::io(format!("mount {dest_name}: create destination"), &e))?;
    let step = || format!("mount {dest_name}");
    if is_bind {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| InitError::new(step(), "bind mount without a source"))?;
        bind(src, &dest, opts.recursive)?;
        if !opts.flags.is_empty() {
            // Bind mounts ignore flags on the first call; they apply with a remount
            // (mount(2), "Creating a bind mount").
            mount(
                None::<&str>,
                &dest,
                None::<&str>,
                opts.flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(|e| InitError::sys(format!("remount {dest_name}"), e))?;
        }
    } else {
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let data = opts.data.join(",");
        mount(
            Some(source.as_path()),
            &dest,
            Some(typ),
            opts.flags,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(|e| InitError::sys(step(), e))?;
    }
    if !opts.propagation.is_empty() {
        mount(
            None::<&str>,
            &dest,
            None::<&str>,
            opts.propagation,
            None::<&str>,
        )
        .map_err(|e| InitError::sys(format!("set propagation of {dest_name}"), e))?;
    }
    if opts.recursive_read_only {
        set_recursive_read_only(&dest)
            .map_err(|e| InitError::sys(format!("make {dest_name} recursively read-only"), e))?;
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// MOUNT_ATTR_RDONLY of <linux/mount.h>.
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount at `path` and every mount below it read-only: mount_setattr(2) with
/// AT_RECURSIVE (Linux 5.12), what runc does for `rro`.
fn set_recursive_read_only(path: &Path) -> nix::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| nix::errno::Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads the NUL-terminated path and the attr struct we own, of the
    // size we pass; it writes nothing to our memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(ret).map(drop)
}

pub(crate) fn bind(src: &Path, dest: &Path, recursive: bool) -> Result<(), InitError> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), dest, None::<&str>, flags, None::<&str>)
        .map_err(|e| InitError::sys(format!("bind {} to {}", src.display(), dest.display()), e))
}

/// Resolves `path` as if `root` were `/`: symlinks (absolute or relative) and `..` never leave
/// `root`. Missing components are created (directories, and the last one as `kind`) when `kind`
/// is given. This is what keeps a hostile image from redirecting a mount destination such as
/// `/etc/hosts -> /host/etc/shadow` onto a host file.
pub(crate) fn resolve_in_root(root: &Path, path: &Path, kind: Option<Kind>) -> io::Result<PathBuf> {
    let mut pending: Vec<OsString> = components_rev(path);
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(&resolved).join(&name);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(components_rev(&target));
            }
            Ok(_) => resolved.push(&name),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(kind) = kind {
                    if pending.is_empty() && kind == Kind::File {
                        fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .mode(0o644)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(&candidate)?;
                    } else {
                        fs::create_dir(&candidate)?;
                    }
                }
                resolved.push(&name);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(root.join(resolved))
}

/// The normal and `..` components of `path`, last first (so `pop` yields them in order).
fn components_rev(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    out.reverse();
    out
}

/// Makes `rootfs` the root: `pivot_root(".", ".")` stacks the old root on top of the new one
/// at the same place, and the lazy unmount of "." then drops the old root (pivot_root(2),
/// NOTES). The old root's mounts are made slaves first, so the unmount does not propagate to
/// the host.
pub(crate) fn pivot_into(rootfs: &Path) -> Result<(), InitError> {
    let step = |what: &str| format!("{what} {}", rootfs.display());
    let old_root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| InitError::sys("open the old root", e))?;
    std::env::set_current_dir(rootfs).map_err(|e| InitError::io(step("chdir"), &e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| InitError::sys(step("pivot_root"), e))?;
    // Into the old root itself (as runc): mount(2) does not look past the new root for "."
    // when the cwd is the new root (only umount2's lookup follows the mount stacked on it).
    nix::unistd::fchdir(&old_root).map_err(|e| InitError::sys("chdir into the old root", e))?;
    drop(old_root);
    // A slave, the old root's unmount cannot propagate to the host even where the tree was
    // left shared (a Bidirectional volume, see `isolate_root`).
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| InitError::sys("make the old root a slave", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| InitError::sys("unmount old root", e))?;
    std::env::set_current_dir("/").map_err(|e| InitError::io("chdir /", &e))
}

/// Hides `linux.maskedPaths`: /dev/null over files, an empty read-only tmpfs over directories.
pub(crate) fn mask_paths(spec: &Spec) -> Result<(), InitError> {
    let paths = spec.linux().as_ref().and_then(|l| l.masked_paths().clone());
    for path in paths.unwrap_or_default() {
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(InitError::io(format!("mask {path}"), &e)),
        };
        let result = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path.as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(|e| InitError::sys(format!("mask {path}"), e))?;
    }
    Ok(())
}

/// Makes `linux.readonlyPaths` read-only with a recursive bind onto itself and a ro remount.
pub(crate) fn readonly_paths(spec: &Spec) -> Result<(), InitError> {
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone());
    for path in paths.unwrap_or_default() {
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(InitError::io(format!("readonly {path}"), &e)),
        }
        let p = Path::new(&path);
        bind(p, p, true)?;
        remount_readonly(p).map_err(|e| InitError::sys(format!("readonly {path}"), e))?;
    }
    Ok(())
}

/// Remounts a bind mount read-only, keeping the nosuid/nodev/noexec flags it already has
/// (a remount that drops them fails with EPERM when they are locked).
pub(crate) fn remount_readonly(path: &Path) -> nix::Result<()> {
    let st = nix::sys::statvfs::statvfs(path)?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    use nix::sys::statvfs::FsFlags;
    for (have, set) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(have) {
            flags |= set;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// True when `path` exists and is a character device (used by the /dev setup).
pub(crate) fn is_char_device(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let o = parse_options(&[
            "rbind".into(),
            "ro".into(),
            "rprivate".into(),
            "mode=755".into(),
        ]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(o.data, vec!["mode=755".to_string()]);
        assert!(!o.recursive_read_only);
        let rro = parse_options(&["rbind".into(), "rw".into(), "rro".into()]);
        assert!(rro.recursive_read_only);
        assert_eq!(rro.flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn long_overlay_options_become_relative() {
        let base = format!("/var/lib/peapod/layers/{}", "x".repeat(40));
        let lower: Vec<String> = (0..100).map(|i| format!("{base}/l{i:03}/fs")).collect();
        let lower = lower.join(":");
        let d = overlay_options(&lower, Some("/up/u"), Some("/up/w")).unwrap();
        assert_eq!(d.chdir.as_deref(), Some(Path::new(&base)));
        assert!(d.options.starts_with("lowerdir=l000/fs:l001/fs"));
        assert!(d.options.ends_with(",upperdir=/up/u,workdir=/up/w"));
        let short = overlay_options("/a/b:/a/c", None, None).unwrap();
        assert_eq!(short.options, "lowerdir=/a/b:/a/c");
        assert_eq!(short.chdir, None);
    }

    #[test]
    fn resolve_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/../../outside", root.join("etc/evil")).unwrap();
        std::os::unix::fs::symlink("../etc", root.join("link")).unwrap();
        let p = resolve_in_root(root, Path::new("/etc/evil/x"), Some(Kind::File)).unwrap();
        assert_eq!(p, root.join("outside/x"));
        assert!(root.join("outside/x").is_file());
        let q = resolve_in_root(root, Path::new("/link/../../a"), None).unwrap();
        assert_eq!(q, root.join("a"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let err = resolve_in_root(root, Path::new("/loop/x"), None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}
