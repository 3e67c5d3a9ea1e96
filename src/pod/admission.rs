//! The kubelet's admission of a pod on this node, for what only the node can judge: the pod's
//! sysctls against the node's allowlist (pkg/kubelet/sysctl/allowlist.go) and AppArmor
//! profiles against the host (pkg/security/apparmor/validate.go: AppArmor on; whether a profile
//! is loaded is asked at container creation, as the runtime does).
//!
//! As with the kubelet, the pod is accepted by `apply` (the API server has nothing against it)
//! and its supervisor then refuses to run it: a forbidden sysctl fails the pod (phase Failed,
//! reason `SysctlForbidden`, message `Pod was rejected: forbidden sysctl: ...`); an AppArmor
//! profile that cannot be enforced blocks it (phase Pending, reason `AppArmor`, containers
//! waiting with `Blocked`), as the kubelet's soft admission does. Either way a Warning event
//! with the reason is recorded and no sandbox or container is made.

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use crate::container::apparmor;
use crate::container::seccomp::TYPE_UNCONFINED;
use crate::container::spec::is_privileged;
use crate::container::sysctl::{Allowlist, REASON_SYSCTL_FORBIDDEN};

/// The kubelet's reason for a pod whose AppArmor profile cannot be enforced.
pub const REASON_APPARMOR: &str = "AppArmor";
/// The waiting reason of the containers of a blocked pod [kubelet.go syncPod].
pub const REASON_BLOCKED: &str = "Blocked";
/// The prefix of a rejected pod's message [kubelet.go rejectPod].
const REJECTED_PREFIX: &str = "Pod was rejected: ";

/// Why the node will not run the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Failed for good (a hard admission failure).
    Rejected { reason: String, message: String },
    /// Held Pending (a soft admission failure).
    Blocked { reason: String, message: String },
}

impl Verdict {
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Rejected { reason, .. } | Verdict::Blocked { reason, .. } => reason,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Verdict::Rejected { message, .. } | Verdict::Blocked { message, .. } => message,
        }
    }

    /// The pod status the kubelet shows for this verdict, over the one computed from the
    /// (never started) containers.
    pub fn apply(&self, status: &mut PodStatus) {
        match self {
            // rejectPod writes only these (and the QoS class): no conditions, no container
            // statuses, so `get` shows the reason as the pod's STATUS.
            Verdict::Rejected { reason, message } => {
                *status = PodStatus {
                    phase: Some("Failed".into()),
                    reason: Some(reason.clone()),
                    message: Some(format!("{REJECTED_PREFIX}{message}")),
                    qos_class: status.qos_class.take(),
                    ..Default::default()
                };
            }
            Verdict::Blocked { reason, message } => {
                status.phase = Some("Pending".into());
                status.reason = Some(reason.clone());
                status.message = Some(message.clone());
                let all = status
                    .init_container_statuses
                    .iter_mut()
                    .chain(status.container_statuses.iter_mut())
                    .flatten();
                for c in all {
                    if let Some(w) = c.state.as_mut().and_then(|s| s.waiting.as_mut()) {
                        w.reason = Some(REASON_BLOCKED.into());
                    }
                }
            }
        }
    }
}

/// The kubelet's reason and message for a pod whose `spec.os.name` is not the node's
/// [pkg/kubelet/lifecycle/predicate.go].
pub const REASON_POD_OS_NOT_SUPPORTED: &str = "PodOSNotSupported";
const MESSAGE_POD_OS_NOT_SUPPORTED: &str =
    "Failed to admit pod as the OS field doesn't match node OS";
/// This node's OS, as `spec.os.name` names it.
const NODE_OS: &str = "linux";

/// The node's verdict on the pod, None when it may run.
/// A pod driven through the CRI was admitted by the kubelet, whose allowlist is the node's:
/// any namespaced sysctl it passes on is allowed.
pub fn admit(pod: &Pod) -> Option<Verdict> {
    let allowlist = if crate::pod::control::is_cri(pod) {
        Ok(Allowlist::every_namespaced())
    } else {
        Allowlist::from_env()
    };
    check_os(pod)
        .or_else(|| check_sysctls(pod, allowlist))
        .or_else(|| check_apparmor(pod, apparmor::host_enabled()))
}

/// A pod for another OS is rejected [predicate.go rejectPodAdmissionBasedOnOSField].
fn check_os(pod: &Pod) -> Option<Verdict> {
    let os = pod.spec.as_ref()?.os.as_ref()?;
    (os.name != NODE_OS).then(|| Verdict::Rejected {
        reason: REASON_POD_OS_NOT_SUPPORTED.into(),
        message: MESSAGE_POD_OS_NOT_SUPPORTED.into(),
    })
}

fn check_sysctls(
    pod: &Pod,
    allowlist: Result<Allowlist, crate::container::sysctl::SysctlError>,
) -> Option<Verdict> {
    let sysctls = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .filter(|s| !s.is_empty())?;
    let rejected = |message: String| Verdict::Rejected {
        reason: REASON_SYSCTL_FORBIDDEN.into(),
        message,
    };
    let list = match allowlist {
        Ok(list) => list,
        Err(e) => return Some(rejected(e.to_string())),
    };
    let host = crate::sandbox::HostNamespaces::of(pod);
    sysctls.iter().find_map(|s| {
        list.check(&s.name)
            .err()
            .or_else(|| in_host_namespace(&s.name, host))
            .map(|why| rejected(format!("forbidden sysctl: {why}")))
    })
}

/// A sysctl of a namespace the pod shares with the host would change the host: refused
/// [kubelet sysctl/allowlist.go validateSysctl].
fn in_host_namespace(name: &str, host: crate::sandbox::HostNamespaces) -> Option<String> {
    use crate::container::sysctl::{namespaced_by, normalize, Namespace};
    let name = normalize(name);
    let ns = namespaced_by(&name)?;
    let shared = match ns {
        Namespace::Net => host.network,
        Namespace::Ipc => host.ipc,
    };
    shared.then(|| format!("{name:?} not allowed with host {ns} enabled"))
}

/// Whether any profile the pod names is not Unconfined [apparmor/helpers.go isRequired].
fn requires_apparmor(pod: &Pod) -> bool {
    let confined = |p: Option<&k8s_openapi::api::core::v1::AppArmorProfile>| {
        p.is_some_and(|p| p.type_ != TYPE_UNCONFINED)
    };
    let spec = pod.spec.as_ref();
    let pod_level = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.app_armor_profile.as_ref());
    let mut fields = std::iter::once(pod_level).chain(containers(pod).map(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref())
    }));
    let annotations = pod.metadata.annotations.iter().flatten();
    fields.any(confined)
        || annotations.into_iter().any(|(k, v)| {
            k.starts_with(apparmor::ANNOTATION_PREFIX) && v != apparmor::ANNOTATION_UNCONFINED
        })
}

/// The pod's init containers, then its containers.
fn containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
}

/// The kubelet's AppArmor admission [pkg/security/apparmor/validate.go, lifecycle
/// appArmorAdmitHandler]: a profile on a host without AppArmor, or a Localhost profile with an
/// empty name, blocks the pod. Whether a Localhost profile is loaded (and whether peapod's
/// default profile loads) is the runtime's question, asked at each container creation: a
/// CreateContainerError in containerd's words, retried with back-off, as kubelets since 1.30.
fn check_apparmor(pod: &Pod, host_enabled: bool) -> Option<Verdict> {
    if !requires_apparmor(pod) {
        return None;
    }
    let blocked = |why: String| Verdict::Blocked {
        reason: REASON_APPARMOR.into(),
        message: format!("Cannot enforce AppArmor: {why}"),
    };
    if !host_enabled {
        return Some(blocked("AppArmor is not enabled on the host".into()));
    }
    containers(pod).find_map(|c| {
        match apparmor::decide(apparmor::asked(pod, c).as_ref(), is_privileged(c), true) {
            apparmor::Decision::Localhost(name) if name.trim().is_empty() => Some(blocked(
                format!("invalid empty AppArmor profile name: {name:?}"),
            )),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    fn with_sysctl(name: &str) -> Pod {
        pod(
            json!({"containers": [{"name": "c"}],
                   "securityContext": {"sysctls": [{"name": name, "value": "1"}]}}),
            json!({}),
        )
    }

    #[test]
    fn forbidden_sysctl_fails_the_pod_like_the_kubelet() {
        let list = || Allowlist::new(Some((6, 1)), &[]);
        assert_eq!(
            check_sysctls(&with_sysctl("kernel.shm_rmid_forced"), list()),
            None
        );
        let v = check_sysctls(&with_sysctl("net.core.somaxconn"), list()).unwrap();
        let mut status = PodStatus::default();
        v.apply(&mut status);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("SysctlForbidden"));
        assert_eq!(
            status.message.as_deref(),
            Some("Pod was rejected: forbidden sysctl: \"net.core.somaxconn\" not allowlisted")
        );
        let allowed = Allowlist::new(Some((6, 1)), &["net.core.*"]);
        assert_eq!(
            check_sysctls(&with_sysctl("net.core.somaxconn"), allowed),
            None
        );
    }

    #[test]
    fn a_pod_for_another_os_is_rejected() {
        let for_os = |name: &str| pod(json!({"containers": [], "os": {"name": name}}), json!({}));
        assert_eq!(check_os(&for_os("linux")), None);
        let v = check_os(&for_os("windows")).unwrap();
        let mut status = PodStatus::default();
        v.apply(&mut status);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("PodOSNotSupported"));
        assert_eq!(
            status.message.as_deref(),
            Some("Pod was rejected: Failed to admit pod as the OS field doesn't match node OS")
        );
        let plain = pod(json!({"containers": []}), json!({}));
        assert_eq!(check_os(&plain), None);
    }

    #[test]
    fn namespaced_sysctls_of_a_shared_host_namespace_are_forbidden() {
        let list = || Allowlist::new(Some((6, 1)), &[]);
        let host_net = pod(
            json!({"containers": [{"name": "c"}], "hostNetwork": true,
                   "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}),
            json!({}),
        );
        assert_eq!(
            check_sysctls(&host_net, list()).map(|v| v.message().to_string()),
            Some(
                "forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"
                    .into()
            )
        );
        let host_ipc = pod(
            json!({"containers": [{"name": "c"}], "hostIPC": true,
                   "securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]}}),
            json!({}),
        );
        assert!(check_sysctls(&host_ipc, list())
            .is_some_and(|v| v.message().ends_with("not allowed with host ipc enabled")));
    }

    const OFF: bool = false;
    const ON: bool = true;

    fn field(t: &str, local: Option<&str>) -> Pod {
        pod(
            json!({"containers": [{"name": "c",
                    "securityContext": {"appArmorProfile": {"type": t, "localhostProfile": local}}}]}),
            json!({}),
        )
    }

    fn message(v: Option<Verdict>) -> Option<String> {
        v.map(|v| {
            assert_eq!(v.reason(), "AppArmor");
            assert!(matches!(v, Verdict::Blocked { .. }));
            v.message().to_string()
        })
    }

    #[test]
    fn apparmor_off_blocks_unless_unconfined() {
        assert_eq!(check_apparmor(&field("Unconfined", None), OFF), None);
        assert_eq!(
            message(check_apparmor(&field("RuntimeDefault", None), OFF)).as_deref(),
            Some("Cannot enforce AppArmor: AppArmor is not enabled on the host")
        );
        let annotated = pod(
            json!({"containers": [{"name": "c"}]}),
            json!({"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}),
        );
        assert!(check_apparmor(&annotated, OFF).is_some());
        let plain = pod(json!({"containers": [{"name": "c"}]}), json!({}));
        assert_eq!(check_apparmor(&plain, OFF), None);
    }

    #[test]
    fn apparmor_on_leaves_loading_to_the_container_creation() {
        // Loaded or not, a Localhost profile is the runtime's question (CreateContainerError).
        assert_eq!(
            check_apparmor(&field("Localhost", Some("missing")), ON),
            None
        );
        assert_eq!(check_apparmor(&field("RuntimeDefault", None), ON), None);
        let annotated = pod(
            json!({"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}),
            json!({"container.apparmor.security.beta.kubernetes.io/i": "localhost/gone"}),
        );
        assert_eq!(check_apparmor(&annotated, ON), None);
        assert_eq!(
            message(check_apparmor(&field("Localhost", Some(" ")), ON)).as_deref(),
            Some("Cannot enforce AppArmor: invalid empty AppArmor profile name: \" \"")
        );
    }
}
