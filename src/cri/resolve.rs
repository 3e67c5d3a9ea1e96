//! CRI IDs resolved to what peapod's own tools act on, for the streaming calls (Exec, Attach,
//! ExecSync: the pod and container names `peapod exec` and the attach socket know; PortForward:
//! the sandbox's network namespace).

use std::path::PathBuf;

use tonic::Status;

use super::containers;
use super::records::{self, Live};
use crate::store::Paths;

/// A CRI container as peapod knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    /// The peapod pod's UID (`pods/<uid>`, `/run/peapod/pods/<uid>/attach.sock`).
    pub pod_uid: String,
    /// The container's name in that pod (`peapod exec -c`, the attach socket's requests).
    pub container_name: String,
    pub sandbox_id: String,
    /// CONTAINER_RUNNING now.
    pub running: bool,
    /// The CRI state's name (`CONTAINER_EXITED`...), for the refusal of a stream to a container
    /// that does not run.
    pub state: String,
}

/// A CRI sandbox as peapod knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxTarget {
    pub pod_uid: String,
    pub sandbox_id: String,
    /// The pause process while the sandbox is ready; its network namespace is
    /// `/proc/<pid>/ns/net` ([`SandboxTarget::netns_path`]).
    pub netns_pid: Option<i32>,
    pub ready: bool,
}

impl SandboxTarget {
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.netns_pid
            .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")))
    }
}

/// The container `container_id` (or a unique prefix), NotFound as containerd words it.
pub fn resolve_container(paths: &Paths, container_id: &str) -> Result<ContainerTarget, Status> {
    let (_, rec) = records::find_container(paths, container_id)?;
    let state = containers::status(paths, &rec.id, false)?
        .status
        .and_then(|s| k8s_cri::v1::ContainerState::try_from(s.state).ok())
        .unwrap_or(k8s_cri::v1::ContainerState::ContainerUnknown);
    let running = state == k8s_cri::v1::ContainerState::ContainerRunning;
    Ok(ContainerTarget {
        pod_uid: rec.pod_uid,
        container_name: rec.name,
        sandbox_id: rec.sandbox_id,
        running,
        state: state.as_str_name().to_string(),
    })
}

/// The sandbox `sandbox_id` (or a unique prefix), NotFound as containerd words it.
pub fn resolve_sandbox(paths: &Paths, sandbox_id: &str) -> Result<SandboxTarget, Status> {
    let rec = records::find_sandbox(paths, sandbox_id)?;
    let live = Live::read(paths, &rec.uid);
    Ok(SandboxTarget {
        ready: live.sandbox_ready(),
        netns_pid: live.sandbox_pid(),
        pod_uid: rec.uid,
        sandbox_id: rec.id,
    })
}

/// The streaming calls' view of the CRI records ([`super::streaming::Resolver`]).
#[derive(Debug, Clone)]
pub struct CriResolver {
    pub paths: Paths,
}

impl super::streaming::Resolver for CriResolver {
    fn container(&self, container_id: &str) -> Result<ContainerTarget, Status> {
        resolve_container(&self.paths, container_id)
    }

    /// A sandbox that is not ready is refused as containerd's PortForward refuses it.
    fn sandbox(&self, sandbox_id: &str) -> Result<String, Status> {
        let target = resolve_sandbox(&self.paths, sandbox_id)?;
        if !target.ready {
            return Err(Status::unknown("sandbox container is not running"));
        }
        Ok(target.pod_uid)
    }
}
