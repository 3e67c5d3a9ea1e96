//! Host ports as the API server defaults and validates them: in the host's network a port's
//! hostPort is its containerPort [core/v1 defaults.go SetDefaults_Pod], and must stay so
//! [validation.go validateHostNetwork]; a hostPort is a port number, a hostIP an address, and
//! one pod claims a protocol/hostIP/hostPort once [validation.go AccumulateUniqueHostPorts].

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::validate::Check;
use super::Reason;

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
/// validation.IsValidIP's words.
const NOT_AN_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const HOST_NETWORK_PORT: &str = "must match `containerPort` when `hostNetwork` is true";

/// In the host's network, an unset hostPort is the containerPort.
pub(crate) fn default_host_network_ports(spec: &mut PodSpec) {
    if spec.host_network != Some(true) {
        return;
    }
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for port in containers.flat_map(|c| c.ports.iter_mut().flatten()) {
        if port.host_port.unwrap_or(0) == 0 {
            port.host_port = Some(port.container_port);
        }
    }
}

/// The host port rules of every container's ports.
pub(crate) fn validate(spec: &PodSpec, check: &mut Check) {
    let host_network = spec.host_network == Some(true);
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (list, containers) in [
        ("spec.initContainers", init),
        ("spec.containers", &spec.containers[..]),
    ] {
        // Init and app containers are accumulated apart, as the API server does.
        let mut claimed = HashSet::new();
        for (i, c) in containers.iter().enumerate() {
            validate_container(
                c,
                &format!("{list}[{i}]"),
                host_network,
                &mut claimed,
                check,
            );
        }
    }
}

fn validate_container(
    c: &Container,
    path: &str,
    host_network: bool,
    claimed: &mut HashSet<String>,
    check: &mut Check,
) {
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let p = format!("{path}.ports[{j}]");
        let host_port = port.host_port.unwrap_or(0);
        if host_port != 0 && !(1..=65535).contains(&host_port) {
            check.invalid(
                format!("{p}.hostPort"),
                format!("{host_port}: {PORT_RANGE}"),
            );
        }
        let host_ip = port.host_ip.as_deref().unwrap_or_default();
        if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
            check.invalid(format!("{p}.hostIP"), format!("{host_ip:?}: {NOT_AN_IP}"));
        }
        if host_network && host_port != port.container_port {
            check.invalid(
                format!("{p}.hostPort"),
                format!("{host_port}: {HOST_NETWORK_PORT}"),
            );
        }
        if host_port != 0 {
            let protocol = port.protocol.as_deref().unwrap_or_default();
            let key = format!("{protocol}/{host_ip}/{host_port}");
            if !claimed.insert(key.clone()) {
                check.push(
                    format!("{p}.hostPort"),
                    Reason::Duplicate(format!("{key:?}")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Problem;

    fn spec(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    fn problems(spec: &PodSpec) -> Vec<String> {
        let mut out: Vec<Problem> = Vec::new();
        let mut check = Check {
            doc: 1,
            out: &mut out,
        };
        validate(spec, &mut check);
        out.iter().map(|p| p.cause()).collect()
    }

    #[test]
    fn host_network_defaults_and_checks_host_ports() {
        let mut s = spec(serde_json::json!({"hostNetwork": true, "containers": [
            {"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}]}
        ]}));
        default_host_network_ports(&mut s);
        assert_eq!(
            s.containers[0].ports.as_ref().unwrap()[0].host_port,
            Some(80)
        );
        assert_eq!(
            problems(&s),
            ["spec.containers[0].ports[1].hostPort: Invalid value: 5353: must match `containerPort` when `hostNetwork` is true"]
        );
    }

    #[test]
    fn ranges_addresses_and_duplicates() {
        let s = spec(serde_json::json!({"containers": [
            {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                                    {"containerPort": 81, "hostPort": 70000, "protocol": "TCP"},
                                    {"containerPort": 82, "hostPort": 8082, "hostIP": "x", "protocol": "TCP"}]},
            {"name": "b", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                                    {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}
        ]}));
        assert_eq!(
            problems(&s),
            [
                "spec.containers[0].ports[1].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[2].hostIP: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\"",
            ]
        );
    }
}
