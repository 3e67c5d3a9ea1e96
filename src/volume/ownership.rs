//! The pod's fsGroup on a volume's files, as the kubelet's SetVolumeOwnership
//! [pkg/volume/volume_linux.go]: every entry gets the group, files gain group read (and write
//! unless the volume is read-only), directories also setgid and group search. Symlinks are
//! re-grouped but never chmod'ed (a chmod would follow them and change the target's mode).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// Applies `gid` to `dir` and everything below it (links not followed).
pub(super) fn set_volume_ownership(dir: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    change(dir, gid, read_only)?;
    if fs::symlink_metadata(dir)?.is_dir() {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if fs::symlink_metadata(&path)?.is_dir() {
                set_volume_ownership(&path, gid, read_only)?;
            } else {
                change(&path, gid, read_only)?;
            }
        }
    }
    Ok(())
}

fn change(path: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    std::os::unix::fs::lchown(path, None, Some(gid))?;
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if meta.is_dir() {
        mask |= SETGID | EXEC_MASK;
    }
    fs::set_permissions(
        path,
        fs::Permissions::from_mode((meta.mode() & 0o7777) | mask),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_gain_group_read_and_dirs_setgid() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("v");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let f = d.join("f");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::symlink("f", d.join("link")).unwrap();
        // Our own group: chgrp to it needs no privilege.
        let gid = fs::metadata(&d).unwrap().gid();
        set_volume_ownership(&d, gid, true).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o440);
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o2755);
    }
}
