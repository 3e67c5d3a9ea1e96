//! Containers: a PodSpec container plus its image config becomes an OCI runtime Spec
//! (`spec`), and the executor (`runtime`) starts a process from that Spec alone.

/// The devices every container gets, as (path, major, minor) character devices: the OCI
/// runtime spec's default devices (config-linux.md), which the Spec lists and the executor
/// creates even when a Spec omits them.
pub(crate) const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

pub mod apparmor;
pub mod devices;
pub mod env;
pub mod mountpoints;
mod mounts;
pub mod names;
pub mod runtime;
pub mod seccomp;
pub mod spec;
pub mod sysctl;
mod user;
