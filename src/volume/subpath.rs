//! `subPath` and `subPathExpr`: a path inside a volume, checked and bind-mounted on the host at
//! `<pod dir>/volume-subpaths/<volume>/<container>/<index>`, which the container then mounts
//! [pkg/volume/util/subpath/subpath_linux.go, pkg/kubelet/kubelet_pods.go makeMounts].
//!
//! Where this runs, and why: the supervisor calls [`prepare`] on the host before it creates the
//! container, not the container init before pivot_root.
//! - The checks need the host's view: like the kubelet, symlinks are resolved against the host
//!   root and the result must stay inside the volume's host directory; then every component is
//!   opened with O_NOFOLLOW from the volume root and the final descriptor is what gets mounted
//!   (through `/proc/self/fd/N`), so a symlink swapped in after the check changes nothing.
//! - A refusal is then a `CreateContainerConfigError` with the kubelet's message: the container
//!   waits and is retried, as under the kubelet, instead of failing half made.
//! - The init only bind-mounts a mount point peapod made: no path the pod controls is resolved
//!   in the container's mount namespace at all.
//!
//! The bind mounts live under the pod's directory, so teardown (`pod::teardown`) finds them with
//! the pod's other mounts; a restarted container gets a fresh one (the old one is detached).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};

/// Mode of the directories holding the bind targets, and of a directory target
/// [subpath_linux.go prepareSubpathTarget].
const TARGET_DIR_MODE: u32 = 0o750;
/// Mode of a file target (a file, socket, device... is mounted onto a file).
const TARGET_FILE_MODE: u32 = 0o640;
/// The permission bits of a mode, setuid/setgid/sticky included.
const MODE_BITS: u32 = 0o7777;

/// Why a subPath was not made or not mounted. These texts are for the supervisor's log: like the
/// kubelet, the container's status only says which volumeMount failed, so that nothing about
/// the host's filesystem reaches the pod.
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    #[error("error resolving symlinks in {path:?}: {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("subpath {path:?} not within volume path {volume:?}")]
    Outside { path: PathBuf, volume: PathBuf },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("unexpected symlink found {0}")]
    Symlink(PathBuf),
    #[error("cannot create directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("mkdir {0}: not a directory")]
    NotDirectory(PathBuf),
    #[error("error creating {path}: {source}")]
    Target {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("error mounting {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// One volumeMount's subPath, as the supervisor hands it over.
#[derive(Debug, Clone, Copy)]
pub struct SubPath<'a> {
    /// The volume's directory (or file) on the host.
    pub volume_dir: &'a Path,
    /// Relative, without `..` (validated, and checked again after subPathExpr expansion).
    pub sub_path: &'a str,
    /// Where the bind mount goes (`<pod dir>/volume-subpaths/<volume>/<container>/<index>`).
    pub target: &'a Path,
}

/// Which of the kubelet's two steps failed; each has its own message for the container.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The missing subPath could not be created as a directory.
    #[error("create: {0}")]
    Create(#[source] SubPathError),
    /// The subPath could not be opened safely or mounted.
    #[error("prepare: {0}")]
    Prepare(#[source] SubPathError),
}

impl PrepareError {
    /// What the container's status says, in the kubelet's words: which volumeMount failed, not
    /// why (the why may describe the host's filesystem) [kubelet_pods.go makeMounts].
    pub fn kubelet_message(&self, volume_mount: &str, container: &str) -> String {
        match self {
            PrepareError::Create(_) => format!(
                "failed to create subPath directory for volumeMount {volume_mount:?} of container {container:?}"
            ),
            PrepareError::Prepare(_) => format!(
                "failed to prepare subPath for volumeMount {volume_mount:?} of container {container:?}"
            ),
        }
    }
}

/// Creates the subPath if it is missing (a directory with the volume root's mode, as the kubelet
/// does), then bind-mounts it at the target. Returns the target.
pub fn prepare(req: &SubPath) -> Result<PathBuf, PrepareError> {
    let host_path = req.volume_dir.join(req.sub_path);
    // hu.PathExists: stat, following symlinks; an error other than "missing" skips creation.
    match fs::metadata(&host_path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let perm = fs::metadata(req.volume_dir)
                .map(|m| m.permissions().mode() & MODE_BITS)
                .map_err(|source| {
                    PrepareError::Create(SubPathError::Resolve {
                        path: req.volume_dir.to_path_buf(),
                        source,
                    })
                })?;
            safe_make_dir(req.volume_dir, req.sub_path, perm).map_err(PrepareError::Create)?;
        }
        Err(e) => {
            tracing::warn!(path = %host_path.display(), error = %e,
                "cannot tell whether the subPath exists; not creating it");
        }
    }
    bind(req).map_err(PrepareError::Prepare)
}

/// True when `path` is `base` or below it; both are resolved paths (mount.PathWithinBase).
fn within(path: &Path, base: &Path) -> bool {
    path.starts_with(base)
}

fn canonical(path: &Path) -> Result<PathBuf, SubPathError> {
    fs::canonicalize(path).map_err(|source| SubPathError::Resolve {
        path: path.to_path_buf(),
        source,
    })
}

fn open_err(path: &Path) -> impl FnOnce(nix::Error) -> SubPathError + '_ {
    move |source| SubPathError::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `path` (resolved, inside `base`) one component at a time from `base` with O_NOFOLLOW:
/// a component that is a symlink is refused, so the descriptor names a file inside the volume
/// however the tree changes meanwhile [subpath_linux.go doSafeOpen]. Returns an O_PATH
/// descriptor (or `base` itself, opened for reading, when `path` is `base`).
pub(crate) fn safe_open(path: &Path, base: &Path) -> Result<OwnedFd, SubPathError> {
    let rel = path.strip_prefix(base).map_err(|_| SubPathError::Outside {
        path: path.to_path_buf(),
        volume: base.to_path_buf(),
    })?;
    let mut parent = openat(
        AT_FDCWD,
        base,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_err(base))?;
    let mut current = base.to_path_buf();
    for component in rel.components() {
        let Component::Normal(name) = component else {
            return Err(SubPathError::Outside {
                path: path.to_path_buf(),
                volume: base.to_path_buf(),
            });
        };
        current.push(name);
        let child = openat(
            &parent,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(open_err(&current))?;
        let st = fstat(&child).map_err(open_err(&current))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(SubPathError::Symlink(current));
        }
        parent = child;
    }
    Ok(parent)
}

/// The longest existing prefix of `path` below `base`, and the names still to create
/// [subpath_linux.go findExistingPrefix]. Symlinks are followed here; what is found is checked
/// to be inside the volume afterwards.
fn existing_prefix(base: &Path, path: &Path) -> Result<(PathBuf, Vec<PathBuf>), SubPathError> {
    let rel: Vec<PathBuf> = path
        .strip_prefix(base)
        .map_err(|_| SubPathError::Outside {
            path: path.to_path_buf(),
            volume: base.to_path_buf(),
        })?
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut fd = openat(
        AT_FDCWD,
        base,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_err(base))?;
    let mut current = base.to_path_buf();
    for (i, name) in rel.iter().enumerate() {
        match openat(
            &fd,
            name.as_path(),
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(child) => {
                fd = child;
                current.push(name);
            }
            Err(nix::errno::Errno::ENOENT) => return Ok((current, rel[i..].to_vec())),
            Err(e) => return Err(open_err(&current.join(name))(e)),
        }
    }
    Ok((current, Vec::new()))
}

/// Creates `sub` under `base` one directory at a time, each opened with O_NOFOLLOW right after
/// it is made, so that no directory can be swapped for a symlink in between; each gets `perm`
/// exactly (mkdir applies the umask) [subpath_linux.go doSafeMakeDir].
pub(crate) fn safe_make_dir(base: &Path, sub: &str, perm: u32) -> Result<(), SubPathError> {
    let real_base = canonical(base)?;
    let full = real_base.join(sub);
    match fs::metadata(&full) {
        // It can be outside of the volume, but there is no race-free check; the bind's checks
        // come next.
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(SubPathError::NotDirectory(full)),
        Err(_) => {}
    }
    let (existing, to_create) = existing_prefix(&real_base, &full)?;
    let real_existing = canonical(&existing)?;
    if !within(&real_existing, &real_base) {
        return Err(SubPathError::Outside {
            path: real_existing,
            volume: real_base,
        });
    }
    let mut parent = safe_open(&real_existing, &real_base)?;
    let mut current = real_existing;
    let mode = Mode::from_bits_truncate(perm);
    for name in to_create {
        current.push(&name);
        mkdirat(&parent, name.as_path(), mode).map_err(|source| SubPathError::Create {
            path: current.clone(),
            source,
        })?;
        let child = openat(
            &parent,
            name.as_path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(open_err(&current))?;
        fchmod(&child, mode).map_err(|source| SubPathError::Create {
            path: current.clone(),
            source,
        })?;
        parent = child;
    }
    Ok(())
}

/// Resolves the subPath as the kubelet does (symlinks followed on the host; the result must be
/// inside the volume), then opens it safely. Returns the descriptor and whether it is a
/// directory.
pub(crate) fn resolve(volume_dir: &Path, sub_path: &str) -> Result<(OwnedFd, bool), SubPathError> {
    let volume = canonical(volume_dir)?;
    let path = canonical(&volume_dir.join(sub_path))?;
    if !within(&path, &volume) {
        return Err(SubPathError::Outside { path, volume });
    }
    let fd = safe_open(&path, &volume)?;
    let st = fstat(&fd).map_err(open_err(&path))?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    Ok((fd, is_dir))
}

/// The checked subPath bind-mounted at the target [subpath_linux.go doBindSubPath].
fn bind(req: &SubPath) -> Result<PathBuf, SubPathError> {
    let (fd, is_dir) = resolve(req.volume_dir, req.sub_path)?;
    prepare_target(req.target, is_dir)?;
    // The kernel follows the /proc magic link to the very file the descriptor names; a path the
    // pod controls is not looked up again.
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        req.target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| SubPathError::Mount {
        path: req.target.to_path_buf(),
        source,
    })?;
    tracing::debug!(sub_path = req.sub_path, target = %req.target.display(), "subPath bound");
    Ok(req.target.to_path_buf())
}

/// A fresh mount point of the right kind at `target`: a directory for a directory, an empty file
/// for anything else. An earlier container instance's bind there is detached first (the
/// container that used it has its own copy in its mount namespace).
fn prepare_target(target: &Path, is_dir: bool) -> Result<(), SubPathError> {
    let target_err = |source| SubPathError::Target {
        path: target.to_path_buf(),
        source,
    };
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(SubPathError::Mount {
                path: target.to_path_buf(),
                source,
            })
        }
    }
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(TARGET_DIR_MODE)
            .create(parent)
            .map_err(target_err)?;
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir(target).map_err(target_err)?,
        Ok(_) => fs::remove_file(target).map_err(target_err)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(target_err(e)),
    }
    if is_dir {
        fs::DirBuilder::new()
            .mode(TARGET_DIR_MODE)
            .create(target)
            .map_err(target_err)?;
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(TARGET_FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)
            .map_err(target_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn volume() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        dir
    }

    #[test]
    fn a_symlink_out_of_the_volume_is_refused() {
        let vol = volume();
        let outside = tempfile::tempdir().unwrap();
        symlink("/", vol.path().join("escape")).unwrap();
        symlink(outside.path(), vol.path().join("away")).unwrap();
        for sub in ["escape", "away", "escape/etc"] {
            match resolve(vol.path(), sub) {
                Err(SubPathError::Outside { .. }) => {}
                other => panic!("{sub}: expected Outside, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_symlink_inside_the_volume_is_followed() {
        let vol = volume();
        fs::create_dir_all(vol.path().join("data/logs")).unwrap();
        fs::write(vol.path().join("data/file"), b"x").unwrap();
        symlink("data", vol.path().join("link")).unwrap();
        let (_, is_dir) = resolve(vol.path(), "link/logs").unwrap();
        assert!(is_dir);
        let (_, is_dir) = resolve(vol.path(), "data/file").unwrap();
        assert!(!is_dir);
        assert!(matches!(
            resolve(vol.path(), "missing"),
            Err(SubPathError::Resolve { .. })
        ));
    }

    #[test]
    fn safe_open_refuses_every_symlink_component() {
        let vol = volume();
        let base = fs::canonicalize(vol.path()).unwrap();
        fs::create_dir(base.join("real")).unwrap();
        symlink("real", base.join("link")).unwrap();
        assert!(safe_open(&base.join("real"), &base).is_ok());
        assert!(matches!(
            safe_open(&base.join("link"), &base),
            Err(SubPathError::Symlink(p)) if p == base.join("link")
        ));
        assert!(matches!(
            safe_open(Path::new("/etc"), &base),
            Err(SubPathError::Outside { .. })
        ));
    }

    #[test]
    fn missing_sub_paths_are_made_with_the_volume_mode() {
        let vol = volume();
        safe_make_dir(vol.path(), "a/b/c", 0o2777).unwrap();
        let mode = |p: &str| {
            fs::metadata(vol.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & MODE_BITS
        };
        // setgid may only stick when we belong to the group, which we do (our own files).
        assert_eq!(mode("a") & 0o777, 0o777);
        assert_eq!(mode("a/b/c") & 0o777, 0o777);
        // Existing: nothing to do.
        safe_make_dir(vol.path(), "a/b", 0o700).unwrap();
        assert_eq!(mode("a/b") & 0o777, 0o777);
        fs::write(vol.path().join("f"), b"").unwrap();
        assert!(matches!(
            safe_make_dir(vol.path(), "f", 0o777),
            Err(SubPathError::NotDirectory(_))
        ));
    }

    #[test]
    fn missing_sub_paths_under_an_escaping_symlink_are_not_made() {
        let vol = volume();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), vol.path().join("away")).unwrap();
        assert!(matches!(
            safe_make_dir(vol.path(), "away/new", 0o777),
            Err(SubPathError::Outside { .. })
        ));
        assert!(!outside.path().join("new").exists());
    }
}
