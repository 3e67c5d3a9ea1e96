//! Volume ownership for the pod's `fsGroup`, as the kubelet's `SetVolumeOwnership` does it
//! [pkg/volume/volume_linux.go]: every file and directory of the volume gets the group fsGroup
//! and group read/write (read only for read-only volumes); directories also get group execute
//! and the setgid bit, so that what the containers create later inherits the group. The owner
//! is left as it is, symlinks are re-grouped but never chmod'ed (chmod would follow them).
//!
//! Which volumes: emptyDir (here), configMap/secret/downwardAPI/projected (their setup calls
//! [`apply_ownership`] with [`OwnershipPolicy::READ_ONLY`]); never hostPath.
//!
//! The walk goes through file descriptors opened with O_NOFOLLOW relative to their directory,
//! so a container that swaps a file for a symlink while the walk runs cannot redirect a chown
//! or chmod onto a file of the host.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use nix::dir::Dir;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, Gid};

/// Group read/write, for read-write volumes [volume_linux.go rwMask].
const RW_MASK: u32 = 0o660;
/// Group read, for read-only volumes (configMap, secret, ...) [volume_linux.go roMask].
const RO_MASK: u32 = 0o440;
/// Group (and owner) search on directories [volume_linux.go execMask].
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;
/// The permission bits chmod(2) takes: rwx for all, setuid, setgid, sticky.
const MODE_BITS: u32 = 0o7777;
/// Deeper directory trees are refused rather than walked (each level holds one descriptor).
const MAX_DEPTH: usize = 512;

/// `spec.securityContext.fsGroupChangePolicy` values [core/v1 types.go].
pub const FS_GROUP_CHANGE_ALWAYS: &str = "Always";
pub const FS_GROUP_CHANGE_ON_ROOT_MISMATCH: &str = "OnRootMismatch";

/// When the ownership walk runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsGroupChangePolicy {
    /// Every time the volume is set up (the default).
    Always,
    /// Only when the volume's root does not already have the group, the mode bits and setgid.
    OnRootMismatch,
}

impl FsGroupChangePolicy {
    /// The policy a pod asks for; unset is `Always`.
    pub fn of_pod(pod: &Pod) -> Self {
        let value = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|sc| sc.fs_group_change_policy.as_deref());
        match value {
            Some(FS_GROUP_CHANGE_ON_ROOT_MISMATCH) => FsGroupChangePolicy::OnRootMismatch,
            _ => FsGroupChangePolicy::Always,
        }
    }
}

/// How [`apply_ownership`] treats one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnershipPolicy {
    pub change: FsGroupChangePolicy,
    /// The volume plugin mounts it read-only: group read instead of read/write.
    pub read_only: bool,
}

impl OwnershipPolicy {
    /// emptyDir: the kubelet passes no change policy for it (so always) and it is read-write
    /// [pkg/volume/emptydir/empty_dir.go SetUpAt].
    pub const READ_WRITE: Self = OwnershipPolicy {
        change: FsGroupChangePolicy::Always,
        read_only: false,
    };
    /// configMap, secret, downwardAPI, projected: no change policy either, and their mounters
    /// report themselves read-only [pkg/volume/configmap, secret, downwardapi, projected].
    pub const READ_ONLY: Self = OwnershipPolicy {
        change: FsGroupChangePolicy::Always,
        read_only: true,
    };
    /// Volumes that honour `fsGroupChangePolicy` (persistent volumes).
    pub fn of_pod(pod: &Pod, read_only: bool) -> Self {
        OwnershipPolicy {
            change: FsGroupChangePolicy::of_pod(pod),
            read_only,
        }
    }

    fn mask(self, is_dir: bool) -> u32 {
        let mut mask = if self.read_only { RO_MASK } else { RW_MASK };
        if is_dir {
            mask |= SETGID | EXEC_MASK;
        }
        mask
    }
}

/// A volume's ownership could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("fsGroup {0} is not a valid group id")]
    InvalidGroup(i64),
    #[error("set ownership of {path}: {source}")]
    Walk {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("set ownership of {0}: directories nested too deep")]
    TooDeep(PathBuf),
}

/// The pod's `spec.securityContext.fsGroup`.
pub fn pod_fs_group(pod: &Pod) -> Option<i64> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
}

/// The mode a file gets: its permission bits plus the mask (Go's `info.Mode()|mask`).
pub(crate) fn new_mode(mode: u32, is_dir: bool, policy: OwnershipPolicy) -> u32 {
    (mode & MODE_BITS) | policy.mask(is_dir)
}

/// OnRootMismatch: does the volume's root lack the group, the mode bits or setgid?
/// [volume_linux.go requiresPermissionChange]
pub(crate) fn root_needs_change(st: &FileStat, gid: u32, read_only: bool) -> bool {
    if st.st_gid != gid {
        return true;
    }
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return true;
    }
    let wanted = if read_only { RO_MASK } else { RW_MASK } | EXEC_MASK;
    let perm = st.st_mode & 0o777;
    perm & wanted != wanted || st.st_mode & SETGID == 0
}

/// Gives `dir` and everything under it to `fs_group` (nothing when it is None).
pub fn apply_ownership(
    dir: &Path,
    fs_group: Option<i64>,
    policy: OwnershipPolicy,
) -> Result<(), OwnershipError> {
    let Some(group) = fs_group else {
        return Ok(());
    };
    let gid = u32::try_from(group).map_err(|_| OwnershipError::InvalidGroup(group))?;
    let walk_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OwnershipError::Walk { path, source }
    };
    let root =
        openat(AT_FDCWD, dir, OFlag::O_PATH | nofollow(), Mode::empty()).map_err(walk_err(dir))?;
    let st = fstat(&root).map_err(walk_err(dir))?;
    if policy.change == FsGroupChangePolicy::OnRootMismatch
        && !root_needs_change(&st, gid, policy.read_only)
    {
        tracing::debug!(dir = %dir.display(), "volume ownership already right, skipped");
        return Ok(());
    }
    change_tree(root, &st, dir, gid, policy, 0)
}

fn nofollow() -> OFlag {
    OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// Children first, then the entry itself, as the kubelet's walkDeep.
fn change_tree(
    fd: OwnedFd,
    st: &FileStat,
    path: &Path,
    gid: u32,
    policy: OwnershipPolicy,
    depth: usize,
) -> Result<(), OwnershipError> {
    let walk_err = |source| OwnershipError::Walk {
        path: path.to_path_buf(),
        source,
    };
    if is_kind(st, SFlag::S_IFDIR) {
        if depth > MAX_DEPTH {
            return Err(OwnershipError::TooDeep(path.to_path_buf()));
        }
        // Re-open the very directory the O_PATH descriptor names, for reading.
        let mut listing = Dir::openat(
            &fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow(),
            Mode::empty(),
        )
        .map_err(walk_err)?;
        let names: Vec<std::ffi::CString> = listing
            .iter()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for name in names {
            let child_path = path.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
            let child = openat(
                &fd,
                name.as_c_str(),
                OFlag::O_PATH | nofollow(),
                Mode::empty(),
            )
            .map_err(|source| OwnershipError::Walk {
                path: child_path.clone(),
                source,
            })?;
            let child_st = fstat(&child).map_err(|source| OwnershipError::Walk {
                path: child_path.clone(),
                source,
            })?;
            change_tree(child, &child_st, &child_path, gid, policy, depth + 1)?;
        }
    }
    change_one(&fd, st, path, gid, policy);
    Ok(())
}

/// chown to the group (on a symlink itself), chmod with the mask (never through a symlink).
/// Failures are logged and the walk goes on, as the kubelet's changeFilePermission does.
fn change_one(fd: &OwnedFd, st: &FileStat, path: &Path, gid: u32, policy: OwnershipPolicy) {
    // AT_EMPTY_PATH on an O_PATH descriptor acts on the inode it names, like lchown.
    if let Err(e) = fchownat(
        fd.as_fd(),
        "",
        None,
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    ) {
        tracing::warn!(path = %path.display(), error = %e, "volume ownership: chown failed");
    }
    if is_kind(st, SFlag::S_IFLNK) {
        return;
    }
    let mode = new_mode(st.st_mode, is_kind(st, SFlag::S_IFDIR), policy);
    // fchmod does not take O_PATH descriptors; its /proc/self/fd link does, and it is not a
    // symlink (checked above), so the chmod lands on this very inode.
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    if let Err(e) = std::fs::set_permissions(&proc_path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "volume ownership: chmod failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes_follow_the_kubelet_masks() {
        let rw = OwnershipPolicy::READ_WRITE;
        let ro = OwnershipPolicy::READ_ONLY;
        assert_eq!(new_mode(0o777, true, rw), 0o2777);
        assert_eq!(new_mode(0o40755, true, rw), 0o2775);
        assert_eq!(new_mode(0o100644, false, rw), 0o664);
        assert_eq!(new_mode(0o100600, false, ro), 0o640);
        assert_eq!(new_mode(0o700, true, ro), 0o2750);
        assert_eq!(new_mode(0o1777, true, rw), 0o3777);
    }

    fn stat_of(path: &Path) -> FileStat {
        nix::sys::stat::lstat(path).unwrap()
    }

    #[test]
    fn root_mismatch_checks_group_bits_and_setgid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let gid = std::fs::metadata(p).unwrap().gid();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o2770)).unwrap();
        assert!(!root_needs_change(&stat_of(p), gid, false));
        assert!(root_needs_change(&stat_of(p), gid + 1, false));
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(root_needs_change(&stat_of(p), gid, false), "no setgid");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o2750)).unwrap();
        assert!(root_needs_change(&stat_of(p), gid, false), "no group write");
        assert!(
            !root_needs_change(&stat_of(p), gid, true),
            "read-only needs r-x only"
        );
        let file = p.join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(root_needs_change(&stat_of(&file), gid, false), "not a dir");
    }

    #[test]
    fn walk_sets_modes_and_leaves_symlink_targets_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let gid = std::fs::metadata(p).unwrap().gid();
        std::fs::create_dir(p.join("sub")).unwrap();
        std::fs::set_permissions(p.join("sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(p.join("sub/f"), b"x").unwrap();
        std::fs::set_permissions(p.join("sub/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(outside.path(), p.join("link")).unwrap();
        // Our own group: chown to it needs no privilege.
        apply_ownership(p, Some(i64::from(gid)), OwnershipPolicy::READ_WRITE).unwrap();
        let mode = |q: &Path| std::fs::symlink_metadata(q).unwrap().mode() & 0o7777;
        assert_eq!(mode(&p.join("sub")), 0o2770);
        assert_eq!(mode(&p.join("sub/f")), 0o660);
        assert_eq!(
            mode(outside.path()),
            0o600,
            "the symlink's target is untouched"
        );
        assert_eq!(mode(p) & 0o2000, 0o2000);
        assert!(apply_ownership(p, None, OwnershipPolicy::READ_WRITE).is_ok());
        assert!(matches!(
            apply_ownership(p, Some(-1), OwnershipPolicy::READ_WRITE),
            Err(OwnershipError::InvalidGroup(-1))
        ));
    }
}
