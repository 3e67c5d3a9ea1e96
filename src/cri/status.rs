//! The runtime's conditions for the CRI `Status` call: `RuntimeReady` (peapod can run pods here:
//! root, a cgroup2 hierarchy, an image store it can open) and `NetworkReady` (the pod network's
//! settings are valid and the bridge can be made), each false with a CamelCase reason and a
//! message naming what is wrong, as the kubelet shows them in the node's Ready condition.
//! Read-only checks, cheap enough for every call (the kubelet asks every few seconds).

use std::path::Path;

use k8s_cri::v1 as cri;

use crate::image::ImageStore;
use crate::network::NetworkConfig;
use crate::store::Paths;

/// The CRI's condition types (api.proto: RuntimeReady, NetworkReady).
pub const RUNTIME_READY: &str = "RuntimeReady";
pub const NETWORK_READY: &str = "NetworkReady";
/// Reasons, CamelCase as the CRI asks.
pub const REASON_NOT_ROOT: &str = "NotRunningAsRoot";
pub const REASON_NO_CGROUP2: &str = "CgroupV2Unavailable";
pub const REASON_IMAGE_STORE: &str = "ImageStoreUnavailable";
/// containerd's reason for a network that is not ready; the kubelet's messages quote it.
pub const REASON_NETWORK_NOT_READY: &str = "NetworkPluginNotReady";

fn condition(kind: &str, problem: Option<(&str, String)>) -> cri::RuntimeCondition {
    match problem {
        None => cri::RuntimeCondition {
            r#type: kind.to_string(),
            status: true,
            ..Default::default()
        },
        Some((reason, message)) => cri::RuntimeCondition {
            r#type: kind.to_string(),
            status: false,
            reason: reason.to_string(),
            message,
        },
    }
}

/// The first thing that keeps peapod from running pods here, if any.
fn runtime_problem(paths: &Paths) -> Option<(&'static str, String)> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Some((
            REASON_NOT_ROOT,
            format!("peapod makes namespaces, mounts and cgroups and must run as root; this server runs as uid {euid}"),
        ));
    }
    if let crate::cgroup::CgroupSupport::Unavailable { reason } =
        crate::cgroup::detect(Path::new(crate::cgroup::CGROUP_ROOT))
    {
        return Some((REASON_NO_CGROUP2, format!("no cgroup2 hierarchy: {reason}")));
    }
    if let Err(e) = ImageStore::open(paths) {
        return Some((
            REASON_IMAGE_STORE,
            format!("cannot open the image store: {e}"),
        ));
    }
    None
}

/// The first thing that keeps pods from getting a network, if any.
fn network_problem(paths: &Paths) -> Option<(&'static str, String)> {
    let config = match NetworkConfig::load(paths) {
        Ok(c) => c,
        Err(e) => return Some((REASON_NETWORK_NOT_READY, format!("pod network: {e}"))),
    };
    if bridge_exists(&config.bridge) {
        return None;
    }
    match caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_NET_ADMIN,
    ) {
        Ok(true) => None,
        Ok(false) => Some((
            REASON_NETWORK_NOT_READY,
            format!(
                "bridge {} does not exist and this server lacks CAP_NET_ADMIN to make it",
                config.bridge
            ),
        )),
        Err(e) => Some((
            REASON_NETWORK_NOT_READY,
            format!("cannot read this process's capabilities: {e}"),
        )),
    }
}

fn bridge_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// `Status`: both conditions; with `verbose`, an `info` map whose `config` value is JSON: the
/// state directories, the pod network, the cgroup driver.
pub fn status(paths: &Paths, verbose: bool) -> cri::StatusResponse {
    let conditions = vec![
        condition(RUNTIME_READY, runtime_problem(paths)),
        condition(NETWORK_READY, network_problem(paths)),
    ];
    let mut info = std::collections::HashMap::new();
    if verbose {
        let network = NetworkConfig::load(paths).ok();
        let config = serde_json::json!({
            "libDir": paths.lib,
            "runDir": paths.run,
            "logDir": paths.log,
            "bridge": network.as_ref().map(|n| n.bridge.clone()),
            "bridgeExists": network.as_ref().is_some_and(|n| bridge_exists(&n.bridge)),
            "podCIDR": network.as_ref().map(|n| format!("{}/{}", n.subnet, n.prefix_len)),
            "cgroupDriver": "cgroupfs",
        });
        info.insert("config".to_string(), config.to_string());
    }
    cri::StatusResponse {
        status: Some(cri::RuntimeStatus { conditions }),
        info,
        // The one handler peapod has, the default (""), and what it cannot do.
        runtime_handlers: vec![cri::RuntimeHandler {
            name: String::new(),
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        }],
        features: Some(cri::RuntimeFeatures {
            supplemental_groups_policy: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_network_config_makes_the_network_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::fs::create_dir_all(paths.network()).unwrap();
        std::fs::write(
            paths.network().join(crate::network::config::CONFIG_FILE),
            r#"{"podCIDR": "10.0.0.0/99"}"#,
        )
        .unwrap();
        if std::env::var_os(crate::network::config::ENV_POD_CIDR).is_some() {
            return;
        }
        let s = status(&paths, true);
        let net = &s.status.unwrap().conditions[1];
        assert_eq!(net.r#type, NETWORK_READY);
        assert!(!net.status);
        assert_eq!(net.reason, REASON_NETWORK_NOT_READY);
        assert!(net.message.contains("10.0.0.0/99"), "{}", net.message);
        assert!(s.info["config"].contains("\"cgroupDriver\":\"cgroupfs\""));
    }
}
