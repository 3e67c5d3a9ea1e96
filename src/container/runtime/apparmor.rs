//! Applies the Spec's `process.apparmorProfile` as runc does (libcontainer/apparmor
//! `ApplyProfile`): `exec <profile>` written to the process's own `attr/apparmor/exec` (the
//! LSM-specific file, Linux 5.1) or the older shared `attr/exec`, so that the kernel moves the
//! process into the profile at its next execve(2): the user program starts confined, while the
//! init's own remaining steps are not.

use std::io::Write;
use std::path::Path;

use oci_spec::runtime::Process;

use super::error::InitError;

const ATTR_EXEC: &str = "/proc/self/attr/apparmor/exec";
const ATTR_EXEC_OLD: &str = "/proc/self/attr/exec";

/// Arms the profile for the next execve; nothing to do without one. Called inside the
/// container (its /proc) before the credentials change, as runc's init and `runc exec` do.
pub(crate) fn apply(process: &Process) -> Result<(), InitError> {
    let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(());
    };
    let attr = if Path::new(ATTR_EXEC).exists() {
        ATTR_EXEC
    } else {
        ATTR_EXEC_OLD
    };
    let step = || format!("apply apparmor profile {profile:?}");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(attr)
        .map_err(|e| InitError::io(step(), &e))?;
    // One write: the kernel parses the whole command from a single buffer.
    file.write_all(format!("exec {profile}").as_bytes())
        .map_err(|e| InitError::io(step(), &e))
}
