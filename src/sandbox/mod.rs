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
