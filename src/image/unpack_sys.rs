//! The syscalls layer unpacking makes on paths, none following a final symlink: lchown,
//! mknod (fails on an existing path), lsetxattr, utimensat. Small `unsafe` wrappers, each with its SAFETY line.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(super) fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// lchown; a non-root unpacker keeps its own ids (rootless use, tests).
pub(super) fn chown(path: &Path, uid: u64, gid: u64) -> io::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let c = cpath(path)?;
    let (uid, gid) = (uid as libc::uid_t, gid as libc::gid_t);
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) })
}

pub(super) fn mknod(path: &Path, fmt: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    check(unsafe { libc::mknod(c.as_ptr(), fmt | 0o600, libc::makedev(major, minor)) })
}

pub(super) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: both strings are NUL-terminated and `value` is a valid buffer of its length.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Sets atime and mtime without following a symlink.
pub(super) fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let c = cpath(path)?;
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: `c` is NUL-terminated and `times` points to two timespecs, as utimensat requires.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}
