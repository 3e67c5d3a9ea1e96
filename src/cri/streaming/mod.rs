//! The CRI streaming server: the HTTP endpoint the kubelet (or crictl) is sent to by the Exec,
//! Attach and PortForward calls, speaking the kubelet's `k8s.io/kubelet/pkg/cri/streaming`
//! protocols, and `ExecSync`.
//!
//! - [`handlers`]: the four RPCs' work (`exec_sync`, `exec`, `attach`, `port_forward`): validate
//!   the request as the kubelet's streaming server and containerd do, store it in the
//!   [`cache`] under a single-use token, answer `http://127.0.0.1:PORT/exec/<token>`.
//! - [`http`]: the listener (127.0.0.1, a random port as containerd's default
//!   `stream_server_port = "0"`), the request head, and the upgrade to WebSocket or SPDY.
//! - [`websocket`]: `v5.channel.k8s.io`, `v4.channel.k8s.io` and the older channel protocols
//!   (one byte of channel before each message; base64 variants) for exec, attach and
//!   port-forward.
//! - [`session`]: what a stream session runs against ([`Backend`]), protocol-agnostic, and the
//!   status the error stream carries.
//! - [`backend`]: the real backend: exec through a re-executed `peapod __exec`
//!   ([`exec_child`]), attach through the pod supervisor's attach socket, port-forward by
//!   dialing localhost from a thread inside the pod's network namespace.
//!
//! Runs in the threaded `peapod __cri` process: it never forks without exec.

pub mod backend;
pub mod cache;
pub mod exec_child;
pub mod handlers;
pub mod http;
pub mod session;
pub mod spdy;
pub mod spdy_frame;
pub mod websocket;

use std::sync::Arc;

pub use handlers::{attach, exec, exec_sync, port_forward};
pub use http::start;
pub use session::Backend;

/// The container an Exec, Attach or ExecSync is for, as the CRI server's records resolve a
/// container id.
pub use super::resolve::ContainerTarget;

/// Turns CRI ids into peapod pods and containers. The CRI server's implementation answers
/// `NotFound` for an unknown id, as containerd does.
pub trait Resolver: Send + Sync {
    fn container(&self, container_id: &str) -> Result<ContainerTarget, tonic::Status>;
    /// The pod uid of a sandbox id.
    fn sandbox(&self, sandbox_id: &str) -> Result<String, tonic::Status>;
}

/// A request waiting in the cache for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Exec {
        target: ContainerTarget,
        cmd: Vec<String>,
        options: StreamOptions,
    },
    Attach {
        target: ContainerTarget,
        options: StreamOptions,
    },
    PortForward {
        /// The CRI id, as the kubelet names the pod in port-forward errors.
        sandbox_id: String,
        pod_uid: String,
    },
}

/// The streams an exec or attach asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A running streaming server: where it listens and the requests it waits for.
#[derive(Clone)]
pub struct StreamingServer {
    base_url: String,
    cache: Arc<cache::RequestCache>,
    backend: Arc<dyn Backend>,
}

impl StreamingServer {
    /// The URL a client redeems `token` at: `http://127.0.0.1:PORT/<kind>/<token>`.
    pub fn url(&self, kind: &str, token: &str) -> String {
        format!("{}/{kind}/{token}", self.base_url)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn cache(&self) -> &cache::RequestCache {
        &self.cache
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }
}
