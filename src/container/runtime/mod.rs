//! The executor: starts a container process from an OCI runtime [`Spec`] alone, and runs
//! commands inside a running container.
//!
//! It owns process creation (`spawn`), the in-container init (`init`: rootfs, mounts, devices,
//! pivot_root, credentials, exec), and `exec_in`. It knows nothing about pods: the Spec builder
//! (`container::spec`) encodes everything pod-shaped into the Spec, including the overlay layers
//! through the `io.peapod.rootfs.*` annotations. It must not create or delete cgroups (the caller
//! does) and must leave no mount on the host: every mount happens in the container's own
//! private mount namespace and vanishes with it.
//!
//! Where things live: `spawn.rs` clones the container's pid 1; `init.rs` is the `peapod __init`
//! mode that prepares the container and execs the user program; `mounts.rs` rootfs and mounts;
//! `devices.rs` /dev; `creds.rs` user, capabilities, rlimits; `apparmor.rs` the Spec's AppArmor
//! profile armed for the exec; `seccomp.rs` the Spec's seccomp
//! profile compiled to BPF and loaded; `exec.rs` `peapod exec`; `terminal.rs` terminals of the
//! container's own devpts (a `process.terminal` container's console, `exec -it`) and raw mode.

mod apparmor;
mod creds;
mod devices;
mod error;
mod exec;
mod init;
mod mounts;
pub(crate) mod seccomp;
mod spawn;
mod terminal;

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::Spec;

pub use error::{errno_text, InitError, RuntimeError};
pub use exec::{exec_in, spawn_in, ExecChild, ExecMode, ExecStdio};
pub use init::init_main;
pub use spawn::{create, create_in_sandbox, exec_failure, spawn, spawn_with_init, Created};
pub use terminal::{window_size, RawMode};

/// The hidden argv[1] that turns the peapod binary into the container init.
pub const INIT_ARG: &str = "__init";
/// Environment variable carrying the number of the init's sync/error pipe fd.
pub const INIT_PIPE_ENV: &str = "PEAPOD_INIT_PIPE";
/// Environment variable carrying the number of the init's start gate fd: the init prepares
/// everything, then waits for one byte on it before it execs the user program.
pub const INIT_GATE_ENV: &str = "PEAPOD_INIT_GATE";
/// Environment variable carrying the number of the socket fd on which the init sends the
/// master of the terminal it makes when the Spec's `process.terminal` is set.
pub const INIT_CONSOLE_ENV: &str = "PEAPOD_INIT_CONSOLE";
/// The byte the init writes on its pipe once everything before the execve succeeded, right
/// before it waits at its gate (error messages are text, and the raw child's use 0).
pub(crate) const AT_GATE: u8 = 1;
/// The Spec's file name inside a bundle directory, as in the OCI runtime spec.
pub const CONFIG_FILE: &str = "config.json";
/// Overlay lowerdirs, ':'-joined, top layer first.
pub const ANNOTATION_LOWERDIRS: &str = "io.peapod.rootfs.lowerdirs";
pub const ANNOTATION_UPPERDIR: &str = "io.peapod.rootfs.upperdir";
pub const ANNOTATION_WORKDIR: &str = "io.peapod.rootfs.workdir";

/// The container's standard streams. `stdin: None` means `/dev/null`.
#[derive(Debug)]
pub struct ContainerStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A started container.
#[derive(Debug)]
pub struct Spawned {
    /// The container's pid 1 as seen from the host; a child of the caller of [`spawn`].
    pub pid: i32,
    /// The master of the container's terminal (`process.terminal`): its stdin, stdout and
    /// stderr are the peer, a pseudo-terminal of the container's own devpts.
    pub terminal: Option<OwnedFd>,
    /// From [`Created::start_at_gate`]: the init's pipe, open while its execve may still
    /// fail; [`exec_failure`] reads it once the process has ended.
    pub exec_report: Option<OwnedFd>,
}

/// Writes `<bundle>/config.json` atomically, creating the bundle directory if needed.
pub fn write_bundle(bundle: &Path, spec: &Spec) -> Result<(), RuntimeError> {
    let data = serde_json::to_vec(spec)
        .map_err(|e| RuntimeError::InvalidSpec(format!("cannot serialize: {e}")))?;
    crate::store::write_volatile(&bundle.join(CONFIG_FILE), &data)?;
    Ok(())
}

/// Reads `<bundle>/config.json`.
pub fn read_bundle(bundle: &Path) -> Result<Spec, RuntimeError> {
    let path = bundle.join(CONFIG_FILE);
    let data = std::fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
    serde_json::from_slice(&data)
        .map_err(|e| RuntimeError::InvalidSpec(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec::default();
        write_bundle(dir.path(), &spec).unwrap();
        let back = read_bundle(dir.path()).unwrap();
        assert_eq!(back, spec);
    }
}
