//! Pods: the records shared by the CLI and the supervisor, the status model, the lifecycle model
//! (`machine`: restart policy, init order, sidecars, termination) and back-off, the node's admission (sysctls, AppArmor), the per-pod supervisor process, and creating and removing pods.

pub mod admission;
pub mod adopt;
pub mod attach;
pub mod backoff;
pub mod control;
pub mod events;
pub mod image_use;
pub mod keeper;
pub mod lifecycle;
pub mod machine;
pub mod metadata;
pub mod model;
pub mod phase;
pub mod reboot;
pub mod record;
pub mod spawner;
pub mod supervisor;
pub mod teardown;
pub mod update;
pub mod zygote;

/// The signalfd of a single-threaded loop (the node agent, a keeper, a supervisor): SIGCHLD,
/// SIGTERM, SIGINT, SIGHUP and `extra` blocked and read from it, non-blocking and
/// close-on-exec (children get a clean mask: the runtime and std reset it before exec). The
/// error names the step.
pub fn loop_signalfd(
    extra: &[nix::sys::signal::Signal],
) -> Result<nix::sys::signalfd::SignalFd, (&'static str, nix::Error)> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ]
    .iter()
    .chain(extra)
    {
        mask.add(*s);
    }
    mask.thread_block().map_err(|e| ("block signals", e))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| ("signalfd", e))
}
