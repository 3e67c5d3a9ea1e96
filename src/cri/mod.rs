//! The Kubernetes CRI v1 endpoint: a gRPC server of the `RuntimeService` and `ImageService`
//! (kubernetes/cri-api's api.proto, compiled by the `k8s-cri` crate; served with tonic) on a
//! unix socket, `/run/peapod/peapod.sock` by default, for the kubelet and crictl.
//!
//! It runs in a process of its own, `peapod __cri` ([`CRI_VERB`]), that the node agent
//! starts, restarts and stops (`node::cri_server`): tonic needs a multi-threaded tokio runtime,
//! and the agent and the supervisors must stay single-threaded because they fork.
//!
//! - [`server`]: the socket (0600, a stale one replaced, removed at exit) and the serve loop.
//! - [`runtime_service`]: Version, Status ([`status`]), RuntimeConfig, UpdateRuntimeConfig,
//!   and the pod sandbox ([`sandboxes`]) and container ([`containers`]) lifecycle: a sandbox is
//!   a peapod pod driven through its supervisor's control socket (`pod::control`), its
//!   configs translated by [`translate`], the CRI's own records kept by [`records`].
//!   [`resolve`] maps CRI IDs to peapod's pods and containers for the streaming calls;
//!   [`events`] serves GetContainerEvents (sent by the lifecycle calls, and by a watcher
//!   polling for containers that exit by themselves).
//! - [`image_service`]: the image calls over `image::ImageStore`, with [`images`] (the store's
//!   images as the CRI lists them), [`auth`] (a request's AuthConfig) and [`fs_usage`]
//!   (ImageFsInfo).
//!
//! Must not print (it logs), nor fork (it is threaded: supervisors it starts are re-executed).

pub mod auth;
pub mod containers;
pub mod events;
pub mod fs_usage;
pub mod image_service;
pub mod images;
pub mod records;
pub mod resolve;
pub mod runtime_service;
pub mod sandboxes;
pub mod server;
pub mod stats;
pub mod status;
pub mod streaming;
pub mod translate;

use std::path::PathBuf;

pub use resolve::{resolve_container, resolve_sandbox, ContainerTarget, SandboxTarget};
pub use server::{serve, CriError};

/// The hidden verb the node agent re-executes itself with: `peapod __cri --socket PATH`.
pub const CRI_VERB: &str = "__cri";
/// The socket's name under the run directory (`/run/peapod/peapod.sock`).
pub const SOCKET_NAME: &str = "peapod.sock";

/// Runs `f` (store and file work) on a blocking thread of the server's runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, tonic::Status>
where
    F: FnOnce() -> Result<T, tonic::Status> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // Keepers this server started and that ended since are collected now.
        crate::pod::lifecycle::reap_started();
        f()
    })
    .await
    .map_err(|e| tonic::Status::internal(format!("CRI request handler failed: {e}")))?
}

/// `peapod __cri [--socket PATH]`: serves until SIGTERM or SIGINT; the exit code for main.
pub fn cri_main(args: &[String]) -> i32 {
    crate::pod::supervisor::init_logging();
    // The node agent blocks the signals it reads from a signalfd, and a blocked mask survives
    // exec: unblock them before any thread exists (threads inherit this mask), or SIGTERM would
    // never reach the server's handler.
    if let Err(e) = nix::sys::signal::SigSet::all().thread_unblock() {
        tracing::error!(error = %e, "cannot unblock signals");
        return 1;
    }
    let paths = crate::store::Paths::from_env();
    // The node agent's zygote forks the supervisors of the CRI's pods, when it can serve this
    // process (else they are executed, `peapod __supervise`).
    crate::pod::spawner::connect_zygote(&paths.run);
    let socket = match args {
        [] => paths.run.join(SOCKET_NAME),
        [flag, path] if flag == "--socket" => PathBuf::from(path),
        other => {
            tracing::error!(args = ?other, "usage: peapod __cri [--socket PATH]");
            return 2;
        }
    };
    match serve(paths, &socket) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "CRI server failed");
            1
        }
    }
}
