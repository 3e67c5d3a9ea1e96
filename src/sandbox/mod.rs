//! The sandbox: the pause process that owns a pod's net, uts and ipc namespaces, and the files
//! every container of the pod shares (/etc/hosts, /etc/resolv.conf, /etc/hostname, /dev/shm);
//! with `shareProcessNamespace`, the pod's pid namespace too.

pub mod files;
pub mod pause;

use k8s_openapi::api::core::v1::Pod;

/// `spec.shareProcessNamespace`: one pid namespace for the whole pod, held by the pause
/// process (its pid 1) and joined by every container.
pub fn shares_process_namespace(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false)
}

/// Which of the host's namespaces a pod shares instead of having its own
/// (`spec.hostNetwork`, `hostPID`, `hostIPC`). A pod in the host's network also shares its UTS
/// namespace, as containerd gives it (NamespaceMode NODE for the network takes the host's
/// hostname too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostNamespaces {
    pub network: bool,
    pub pid: bool,
    pub ipc: bool,
}

impl HostNamespaces {
    pub fn of(pod: &Pod) -> HostNamespaces {
        let spec = pod.spec.as_ref();
        let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
            spec.and_then(f).unwrap_or(false)
        };
        HostNamespaces {
            network: flag(|s| s.host_network),
            pid: flag(|s| s.host_pid),
            ipc: flag(|s| s.host_ipc),
        }
    }

    /// The host's UTS namespace comes with its network.
    pub fn uts(&self) -> bool {
        self.network
    }
}
