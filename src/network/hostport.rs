//! `ports[].hostPort` as the CNI portmap plugin makes it (containernetworking/plugins
//! plugins/meta/portmap, its nftables backend): DNAT of traffic addressed to this host's
//! port, from outside and from the host itself (the OUTPUT hook), to the pod's address, and
//! masquerade of what would otherwise come back the wrong way (from 127.0.0.1, which needs
//! `route_localnet` on the bridge, and from pods, hairpin included).
//!
//! Each pod with host ports gets a table of its own, `ip peapod-hostport-<uid>`, made whole in
//! one transaction and deleted by name: its name is known before it exists, so it is recorded
//! in the pod's state first and teardown finds it after a crash. Its rules match only the
//! claimed ports: DNAT only for `fib daddr type local` (or the claimed hostIP) and the claimed
//! protocol and port, masquerade only for connections that were DNATed to this pod's mapped
//! port from loopback or from the pod network. Nothing leaving the machine is masqueraded.
//!
//! Reaching a pod from another pod through the host's address is routing from the bridge back
//! to the bridge, so the bridge needs `forwarding` too. Both bridge settings are recorded with
//! their old values before they change, kept while any pod holds host ports, and put back after
//! the last one; while peapod holds `forwarding` on, a rule drops what the bridge would now
//! forward elsewhere unless it belongs to a DNATed connection, so pods reach no more than they
//! did. The host's own settings (eth0, `ip_forward`, routes) are never touched.
//!
//! Which pod may hold which port is the scheduler's NodePorts filter on one node: [`claim`]
//! refuses a pod whose ports overlap another's (same protocol and port, the same hostIP or
//! either one unspecified).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::nft::{self, Action, Batch, Chain, Hook, Match, Rule};
use super::NetworkConfig;
use crate::store::{read_json, write_json_volatile, FileLock, Paths, StoreError};

/// The scheduler's words for a port conflict on a one-node cluster [scheduler framework
/// plugins/nodeports ErrReason, with its `0/1 nodes are available:` summary].
pub const NODE_PORTS_UNSCHEDULABLE: &str =
    "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";
const TABLE_PREFIX: &str = "peapod-hostport-";
const REGISTRY_FILE: &str = "hostports.json";
const LOCK_FILE: &str = "hostports.lock";
const SYSCTL_ROUTE_LOCALNET: &str = "route_localnet";
const SYSCTL_FORWARDING: &str = "forwarding";
const SYSCTL_DIR: &str = "/proc/sys/net/ipv4/conf";
const LOOPBACK_NET: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 0);
const LOOPBACK_PREFIX: u8 = 8;

#[derive(Debug, thiserror::Error)]
pub enum HostPortError {
    #[error("host ports: {0}")]
    Store(#[from] StoreError),
    #[error("host ports: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HostPortError {
    let what = what.into();
    move |source| HostPortError::Io { what, source }
}

/// TCP, UDP, SCTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// One `hostPort`: what the host listens on and where it goes in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub protocol: Protocol,
    /// None for every address of the host (hostIP unset or 0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

/// The annotation that gives a pod host ports beyond its containers': a JSON list of
/// ContainerPorts, the port mappings of a sandbox made through the CRI (whose containers come
/// after its network).
pub const PORTS_ANNOTATION: &str = "peapod.io/host-ports";

/// The host ports of the pod's containers (and of [`PORTS_ANNOTATION`]), as the kubelet hands
/// them to the network plugin (MakePortMappings). An IPv6 hostIP is left out: the pod has no
/// IPv6 address, as portmap skips mappings of the other family.
pub fn mappings(pod: &Pod) -> Vec<PortMapping> {
    let annotated: Vec<k8s_openapi::api::core::v1::ContainerPort> = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PORTS_ANNOTATION))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let ports = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .chain(annotated.iter());
    let mut out = Vec::new();
    for p in ports {
        let (Ok(host_port), Ok(container_port)) = (
            u16::try_from(p.host_port.unwrap_or(0)),
            u16::try_from(p.container_port),
        ) else {
            continue;
        };
        if host_port == 0 {
            continue;
        }
        let protocol = match p.protocol.as_deref() {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        let host_ip = match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => match text.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => None,
                Ok(std::net::IpAddr::V4(ip)) => Some(ip),
                _ => continue,
            },
        };
        out.push(PortMapping {
            protocol,
            host_ip,
            host_port,
            container_port,
        });
    }
    out
}

/// The NodePorts check of two port lists: the same protocol and port, and addresses that
/// overlap (equal, or either one every address) [framework HostPortInfo.CheckConflict].
pub fn conflicts(mine: &[PortMapping], theirs: &[PortMapping]) -> bool {
    mine.iter().any(|a| {
        theirs.iter().any(|b| {
            a.protocol == b.protocol
                && a.host_port == b.host_port
                && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
        })
    })
}

/// The pod's table name: known before the table exists.
pub fn table_name(uid: &str) -> String {
    format!("{TABLE_PREFIX}{uid}")
}

/// The rules of one pod's table; `guard_bridge` names the bridge when peapod turned its
/// forwarding on.
pub fn ruleset(
    pod_ip: Ipv4Addr,
    cfg: &NetworkConfig,
    mappings: &[PortMapping],
    guard_bridge: Option<&str>,
) -> (Vec<Chain>, Vec<Rule>) {
    let chain = |name: &str, kind, hook, priority| Chain {
        name: name.into(),
        kind,
        hook,
        priority,
    };
    let mut chains = vec![
        chain("prerouting", "nat", Hook::Prerouting, nft::PRIORITY_DSTNAT),
        chain("output", "nat", Hook::Output, nft::PRIORITY_DSTNAT),
        chain(
            "postrouting",
            "nat",
            Hook::Postrouting,
            nft::PRIORITY_SRCNAT,
        ),
    ];
    let mut rules = Vec::new();
    for m in mappings {
        let to_host = match m.host_ip {
            Some(ip) => Match::DestAddr(ip),
            None => Match::DestIsLocal,
        };
        for hook_chain in ["prerouting", "output"] {
            rules.push(Rule {
                chain: hook_chain.into(),
                matches: vec![
                    to_host.clone(),
                    Match::L4Proto(m.protocol.number()),
                    Match::DestPort(m.host_port),
                ],
                action: Action::Dnat(pod_ip, m.container_port),
            });
        }
        for (net, prefix) in [
            (LOOPBACK_NET, LOOPBACK_PREFIX),
            (cfg.subnet, cfg.prefix_len),
        ] {
            rules.push(Rule {
                chain: "postrouting".into(),
                matches: vec![
                    Match::DestAddr(pod_ip),
                    Match::L4Proto(m.protocol.number()),
                    Match::DestPort(m.container_port),
                    Match::Dnatted(true),
                    Match::SourceNet(net, prefix),
                ],
                action: Action::Masquerade,
            });
        }
    }
    if let Some(bridge) = guard_bridge {
        chains.push(chain(
            "forward",
            "filter",
            Hook::Forward,
            nft::PRIORITY_FILTER,
        ));
        rules.push(Rule {
            chain: "forward".into(),
            matches: vec![
                Match::InputInterface(bridge.into(), true),
                Match::OutputInterface(bridge.into(), false),
                Match::Dnatted(false),
            ],
            action: Action::Drop,
        });
    }
    (chains, rules)
}

/// Who holds which host ports, and the bridge settings peapod changed for them.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registry {
    /// Pod uid -> its ports.
    #[serde(default)]
    claims: BTreeMap<String, Vec<PortMapping>>,
    /// The bridge's settings before peapod changed them, while it holds them changed.
    #[serde(default)]
    bridge: Option<BridgeSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BridgeSettings {
    name: String,
    route_localnet: String,
    forwarding: String,
}

struct Locked {
    _lock: FileLock,
    path: PathBuf,
    registry: Registry,
}

fn open(paths: &Paths) -> Result<Locked, HostPortError> {
    let dir = paths.network();
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let lock = FileLock::exclusive(&dir.join(LOCK_FILE))?;
    let path = dir.join(REGISTRY_FILE);
    let registry = match read_json::<Registry>(&path) {
        Ok(r) => r,
        Err(e) if e.is_not_found() => Registry::default(),
        Err(e) => return Err(e.into()),
    };
    Ok(Locked {
        _lock: lock,
        path,
        registry,
    })
}

impl Locked {
    fn save(&self) -> Result<(), HostPortError> {
        Ok(write_json_volatile(&self.path, &self.registry)?)
    }
}

/// Takes the pod's host ports, or refuses when another pod on record holds one of them
/// (false). Claims of pods no longer on record are dropped first.
pub fn claim(paths: &Paths, uid: &str, mine: &[PortMapping]) -> Result<bool, HostPortError> {
    let mut locked = open(paths)?;
    locked.registry.claims.retain(|owner, _| {
        paths
            .pod_dir(owner)
            .join(crate::pod::record::POD_FILE)
            .exists()
    });
    let taken = locked
        .registry
        .claims
        .iter()
        .any(|(owner, theirs)| owner != uid && conflicts(mine, theirs));
    if taken {
        locked.save()?;
        return Ok(false);
    }
    locked
        .registry
        .claims
        .insert(uid.to_string(), mine.to_vec());
    locked.save()?;
    Ok(true)
}

fn sysctl_path(bridge: &str, name: &str) -> PathBuf {
    PathBuf::from(SYSCTL_DIR).join(bridge).join(name)
}

fn read_sysctl(bridge: &str, name: &str) -> Result<String, HostPortError> {
    let path = sysctl_path(bridge, name);
    std::fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(io_err(format!("read {}", path.display())))
}

fn write_sysctl(bridge: &str, name: &str, value: &str) -> Result<(), HostPortError> {
    let path = sysctl_path(bridge, name);
    std::fs::write(&path, value).map_err(io_err(format!("write {}", path.display())))
}

/// Makes the pod's table (replacing one left by an earlier sandbox) after turning on what
/// the bridge needs; the table's name must already be in the pod's state.
pub fn install(
    paths: &Paths,
    cfg: &NetworkConfig,
    uid: &str,
    pod_ip: Ipv4Addr,
    mine: &[PortMapping],
) -> Result<(), HostPortError> {
    let mut locked = open(paths)?;
    let bridge = cfg.bridge.as_str();
    if locked.registry.bridge.is_none() {
        // Recorded before anything changes: a crash in between restores what was there.
        locked.registry.bridge = Some(BridgeSettings {
            name: bridge.to_string(),
            route_localnet: read_sysctl(bridge, SYSCTL_ROUTE_LOCALNET)?,
            forwarding: read_sysctl(bridge, SYSCTL_FORWARDING)?,
        });
        locked.save()?;
    }
    let guard = locked
        .registry
        .bridge
        .as_ref()
        .is_some_and(|b| b.forwarding == "0");
    write_sysctl(bridge, SYSCTL_ROUTE_LOCALNET, "1")?;
    write_sysctl(bridge, SYSCTL_FORWARDING, "1")?;
    let table = table_name(uid);
    let (chains, rules) = ruleset(pod_ip, cfg, mine, guard.then_some(bridge));
    let mut batch = Batch::new();
    // add + delete + add: the table is replaced whole whether or not it existed.
    batch
        .add_table(&table)
        .delete_table(&table)
        .add_table(&table);
    for c in &chains {
        batch.add_chain(&table, c);
    }
    for r in &rules {
        batch.add_rule(&table, r);
    }
    nft::commit(batch).map_err(io_err(format!("create nftables table ip {table}")))?;
    tracing::info!(%table, ports = mine.len(), "host ports mapped");
    Ok(())
}

/// Deletes the pod's table (gone already is fine).
pub fn remove_table(table: &str) -> Result<(), HostPortError> {
    let mut batch = Batch::new();
    batch.delete_table(table);
    match nft::commit(batch) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        // No nf_tables at all: no table of ours either.
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => Ok(()),
        other => other.map_err(io_err(format!("delete nftables table ip {table}"))),
    }
}

/// Gives the pod's ports back; after the last pod with host ports, the bridge's settings
/// are put back as they were.
pub fn release(paths: &Paths, uid: &str) -> Result<(), HostPortError> {
    let mut locked = open(paths)?;
    let mut changed = locked.registry.claims.remove(uid).is_some();
    if locked.registry.claims.is_empty() {
        if let Some(b) = locked.registry.bridge.take() {
            changed = true;
            // A bridge deleted meanwhile took its settings with it.
            if sysctl_path(&b.name, SYSCTL_FORWARDING).exists() {
                write_sysctl(&b.name, SYSCTL_FORWARDING, &b.forwarding)?;
                write_sysctl(&b.name, SYSCTL_ROUTE_LOCALNET, &b.route_localnet)?;
            }
        }
    }
    if changed {
        locked.save()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(protocol: Protocol, host_ip: Option<[u8; 4]>, host: u16, container: u16) -> PortMapping {
        PortMapping {
            protocol,
            host_ip: host_ip.map(Ipv4Addr::from),
            host_port: host,
            container_port: container,
        }
    }

    #[test]
    fn mappings_as_the_kubelet_makes_them() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a", "ports": [
                {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                {"containerPort": 81, "protocol": "TCP"},
                {"containerPort": 82, "hostPort": 8082, "protocol": "TCP", "hostIP": "0.0.0.0"},
                {"containerPort": 83, "hostPort": 8083, "protocol": "TCP", "hostIP": "::1"}]}]}
        }))
        .unwrap();
        assert_eq!(
            mappings(&pod),
            [
                pm(Protocol::Tcp, None, 8080, 80),
                pm(Protocol::Udp, Some([127, 0, 0, 1]), 5353, 53),
                pm(Protocol::Tcp, None, 8082, 82),
            ]
        );
    }

    #[test]
    fn conflicts_as_the_node_ports_filter_sees_them() {
        let any = [pm(Protocol::Tcp, None, 8080, 80)];
        let lo = [pm(Protocol::Tcp, Some([127, 0, 0, 1]), 8080, 81)];
        let other_ip = [pm(Protocol::Tcp, Some([10, 0, 0, 1]), 8080, 81)];
        let udp = [pm(Protocol::Udp, None, 8080, 80)];
        let other_port = [pm(Protocol::Tcp, None, 9090, 80)];
        assert!(conflicts(&any, &lo));
        assert!(conflicts(&lo, &any));
        assert!(!conflicts(&lo, &other_ip));
        assert!(conflicts(&lo, &lo));
        assert!(!conflicts(&any, &udp));
        assert!(!conflicts(&any, &other_port));
    }

    #[test]
    fn rules_match_only_the_claimed_ports() {
        let cfg = NetworkConfig {
            bridge: "peapod0".into(),
            subnet: Ipv4Addr::new(10, 88, 0, 0),
            prefix_len: 16,
        };
        let ip = Ipv4Addr::new(10, 88, 0, 5);
        let (chains, rules) = ruleset(ip, &cfg, &[pm(Protocol::Tcp, None, 8080, 80)], None);
        assert_eq!(
            chains.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["prerouting", "output", "postrouting"]
        );
        assert_eq!(rules.len(), 4);
        assert_eq!(
            rules[0].matches,
            [Match::DestIsLocal, Match::L4Proto(6), Match::DestPort(8080)]
        );
        assert_eq!(rules[0].action, Action::Dnat(ip, 80));
        assert_eq!(rules[1].chain, "output");
        // Masquerade only what was DNATed to this pod's port, from loopback or pods.
        assert_eq!(
            rules[2].matches,
            [
                Match::DestAddr(ip),
                Match::L4Proto(6),
                Match::DestPort(80),
                Match::Dnatted(true),
                Match::SourceNet(LOOPBACK_NET, 8)
            ]
        );
        assert_eq!(rules[3].matches[4], Match::SourceNet(cfg.subnet, 16));
        let (chains, rules) = ruleset(
            ip,
            &cfg,
            &[pm(Protocol::Udp, Some([10, 0, 0, 1]), 5353, 53)],
            Some("peapod0"),
        );
        assert_eq!(chains.last().map(|c| c.hook), Some(Hook::Forward));
        assert_eq!(
            rules[0].matches[0],
            Match::DestAddr(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(rules.last().map(|r| &r.action), Some(&Action::Drop));
        assert_eq!(table_name("u1"), "peapod-hostport-u1");
    }
}
