//! The control socket of a pod driven through the CRI (`cri::sandboxes`): the kubelet decides
//! when each container starts, stops and goes, and the CRI server needs a synchronous answer
//! from the pod's single-threaded supervisor. One request a connection on
//! `/run/peapod/pods/<uid>/control.sock` (SOCK_SEQPACKET, 0600), a JSON [`Request`], a JSON
//! [`Reply`]; the supervisor serves it from its poll loop (`supervisor::control`).
//!
//! A pod is driven through the CRI when its pod.json carries [`CRI_SANDBOX_ANNOTATION`] (the
//! CRI sandbox ID): its supervisor then starts no container on its own, restarts none, and
//! does not end the pod when its containers are done.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};

/// The socket's name in the pod's runtime directory.
pub const SOCKET_FILE: &str = "control.sock";
/// The annotation that marks a pod made through the CRI; its value is the sandbox ID.
pub const CRI_SANDBOX_ANNOTATION: &str = "peapod.io/cri-sandbox-id";
/// Whether `pod` is driven through the CRI (it carries [`CRI_SANDBOX_ANNOTATION`]).
pub fn is_cri(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CRI_SANDBOX_ANNOTATION))
}

/// The annotation that carries a CRI sandbox's `linux.cgroup_parent` (validated by
/// `cgroup::parent::parse`): its pod's cgroups go under it (`cgroup::parent`).
pub const CRI_CGROUP_PARENT_ANNOTATION: &str = "peapod.io/cri-cgroup-parent";

/// The cgroup parent of a CRI pod, relative to the cgroup2 root; None for peapod's own layout
/// (no parent, or a pod not driven through the CRI).
pub fn cri_cgroup_parent(pod: &k8s_openapi::api::core::v1::Pod) -> Option<PathBuf> {
    let annotations = pod.metadata.annotations.as_ref()?;
    annotations.get(CRI_SANDBOX_ANNOTATION)?;
    let raw = annotations.get(CRI_CGROUP_PARENT_ANNOTATION)?;
    crate::cgroup::parent::parse(raw)
        .inspect_err(|e| tracing::warn!(error = %e, "unusable cgroup parent; peapod's own layout"))
        .ok()
        .flatten()
}

/// Whether annotation `key` is one only the CRI server may set: the CRI marker, a CRI
/// container's settings, the sandbox's port mappings. A manifest or `annotate` that sets one
/// would give a pod what only the kubelet may ask for (devices, every namespaced sysctl).
pub fn reserved_annotation(key: &str) -> bool {
    key.starts_with("peapod.io/cri-") || key == crate::network::hostport::PORTS_ANNOTATION
}

/// Why [`reserved_annotation`] refuses a key, as the field error's detail.
pub const RESERVED_ANNOTATION: &str = "reserved for pods made through peapod's CRI socket";

/// The annotation prefix, before a container's name, of what the kubelet asks of that CRI
/// container that a Pod has no field for ([`CriContainerSettings`], JSON).
pub const CRI_CONTAINER_ANNOTATION_PREFIX: &str = "peapod.io/cri-container.";

/// A CRI container's settings beyond the Pod's fields: the kubelet's masked and read-only
/// paths (used instead of peapod's defaults when given, as containerd uses them), the
/// devices of `ContainerConfig.devices`, read from the host when the container was created,
/// and the user name it runs as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CriContainerSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<CriDevice>,
    /// `run_as_username`: the user looked up in the image's /etc/passwd in place of the
    /// image's own `User` (a Pod has only `runAsUser`, an id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_username: Option<String>,
}

/// A device node made in the container and allowed with `permissions` (`rwm` letters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriDevice {
    pub device: oci_spec::runtime::LinuxDevice,
    pub permissions: String,
}

impl CriContainerSettings {
    /// The annotation key for `container`.
    pub fn key(container: &str) -> String {
        format!("{CRI_CONTAINER_ANNOTATION_PREFIX}{container}")
    }

    /// The settings recorded for `container` in a CRI pod; None when there are none (or the
    /// pod is not driven through the CRI).
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> Option<Self> {
        let annotations = pod.metadata.annotations.as_ref()?;
        annotations.get(CRI_SANDBOX_ANNOTATION)?;
        let raw = annotations.get(&Self::key(container))?;
        serde_json::from_str(raw)
            .inspect_err(|e| tracing::warn!(container, error = %e, "unreadable CRI settings"))
            .ok()
    }
}

/// The largest request or reply.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What the CRI server asks of a pod's supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Create and start `container` (already in pod.json, read again), with the CRI's
    /// container ID and the log path the kubelet asked for.
    #[serde(rename_all = "camelCase")]
    Start {
        container: String,
        id: String,
        log_path: PathBuf,
    },
    /// Stop `container`: its stop signal, SIGKILL after `timeout_seconds`. Answered at once;
    /// the status shows the exit.
    #[serde(rename_all = "camelCase")]
    Stop {
        container: String,
        timeout_seconds: i64,
    },
    /// Reopen the running container's log file (the kubelet rotated it by renaming it).
    ReopenLog { container: String },
    /// Forget a container that does not run (its status goes).
    Remove { container: String },
    /// Stop every container at once and give back the sandbox, network and cgroups; the
    /// supervisor exits once done, the pod's records stay.
    StopPod,
}

/// The supervisor's answer: None, or what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Start: when the process started, in nanoseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ns: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens: the supervisor is gone (the pod was stopped) or not up yet.
    #[error("pod supervisor not reachable on {path}: {source}")]
    Unreachable {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("pod supervisor on {path}: {what}")]
    Protocol { path: PathBuf, what: String },
}

/// Sends `request` to the supervisor listening on `path` and waits up to `timeout` for its
/// reply.
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Reply, ControlError> {
    let unreachable = |source| ControlError::Unreachable {
        path: path.to_path_buf(),
        source,
    };
    let protocol = |what: String| ControlError::Protocol {
        path: path.to_path_buf(),
        what,
    };
    let fd: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(unreachable)?;
    let tv = nix::sys::time::TimeVal::new(
        timeout.as_secs() as i64,
        timeout.subsec_micros() as nix::libc::suseconds_t,
    );
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(unreachable)?;
    setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(unreachable)?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path).map_err(unreachable)?).map_err(unreachable)?;
    let body = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
    send(fd.as_raw_fd(), &body, MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| protocol(format!("sending the request: {e}")))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(protocol(format!("no reply within {timeout:?}")))
            }
            Err(e) => return Err(protocol(format!("reading the reply: {e}"))),
            Ok(0) => return Err(protocol("closed without a reply".into())),
            Ok(n) => break n,
        }
    };
    serde_json::from_slice(&buf[..n]).map_err(|e| protocol(format!("bad reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let r = Request::Start {
            container: "app".into(),
            id: "ab".into(),
            log_path: "/var/log/pods/x/app/0.log".into(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""op":"start""#) && text.contains("logPath"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        let stop = serde_json::to_string(&Request::StopPod).unwrap();
        assert_eq!(stop, r#"{"op":"stopPod"}"#);
        assert_eq!(serde_json::to_string(&Reply::default()).unwrap(), "{}");
    }
}
