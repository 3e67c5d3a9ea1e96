//! Which bridge and pod CIDR the node uses: built-in defaults, then
//! `<lib>/network/config.json`, then the `PEAPOD_BRIDGE` / `PEAPOD_POD_CIDR` environment.
//!
//! Only reads and validates; creating the bridge is [`super::link`]'s job.

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::NetworkError;
use crate::store::{read_json, Paths};

pub const DEFAULT_BRIDGE: &str = "peapod0";
pub const DEFAULT_POD_CIDR: &str = "10.88.0.0/16";
pub const ENV_POD_CIDR: &str = "PEAPOD_POD_CIDR";
pub const ENV_BRIDGE: &str = "PEAPOD_BRIDGE";
pub const CONFIG_FILE: &str = "config.json";
/// Linux interface names are at most IFNAMSIZ - 1 bytes.
pub const MAX_IFNAME_LEN: usize = 15;

/// The pod network of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    pub bridge: String,
    /// The network address of the pod CIDR (host bits zero).
    pub subnet: Ipv4Addr,
    pub prefix_len: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    bridge: Option<String>,
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
}

impl NetworkConfig {
    /// Defaults, overridden by `paths.network()/config.json`, overridden by the environment.
    pub fn load(paths: &Paths) -> Result<NetworkConfig, NetworkError> {
        let path = paths.network().join(CONFIG_FILE);
        let file = match read_json::<ConfigFile>(&path) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => ConfigFile::default(),
            Err(source) => return Err(NetworkError::ConfigFile { path, source }),
        };
        let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
        let file_origin = path.display().to_string();

        let (cidr, cidr_origin) = match (env(ENV_POD_CIDR), file.pod_cidr) {
            (Some(v), _) => (v, format!("environment variable {ENV_POD_CIDR}")),
            (None, Some(v)) => (v, format!("{file_origin} (podCIDR)")),
            (None, None) => (DEFAULT_POD_CIDR.to_string(), "the default".to_string()),
        };
        let (bridge, bridge_origin) = match (env(ENV_BRIDGE), file.bridge) {
            (Some(v), _) => (v, format!("environment variable {ENV_BRIDGE}")),
            (None, Some(v)) => (v, format!("{file_origin} (bridge)")),
            (None, None) => (DEFAULT_BRIDGE.to_string(), "the default".to_string()),
        };
        let (subnet, prefix_len) = parse_cidr(&cidr, &cidr_origin)?;
        validate_ifname(&bridge, &bridge_origin)?;
        Ok(NetworkConfig {
            bridge,
            subnet,
            prefix_len,
        })
    }

    /// The bridge's address and the pods' default gateway: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet) + 1)
    }

    /// The last address of the CIDR.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet) | host_mask(self.prefix_len))
    }

    /// `10.88.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.subnet, self.prefix_len)
    }

    /// True when `ip` lies inside the pod CIDR.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & !host_mask(self.prefix_len) == u32::from(self.subnet)
    }
}

pub(crate) fn host_mask(prefix_len: u8) -> u32 {
    u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0)
}

/// Parses `a.b.c.d/n`. The prefix must leave room for a gateway and at least one pod (n <= 30),
/// and host bits must be zero so that the network address is unambiguous.
pub fn parse_cidr(value: &str, origin: &str) -> Result<(Ipv4Addr, u8), NetworkError> {
    let bad = |reason: String| NetworkError::Config {
        value: value.to_string(),
        origin: origin.to_string(),
        reason,
    };
    let (addr, len) = value
        .trim()
        .split_once('/')
        .ok_or_else(|| bad("expected an IPv4 CIDR such as 10.88.0.0/16".into()))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| bad(format!("{addr:?} is not an IPv4 address")))?;
    let len: u8 = len
        .parse()
        .map_err(|_| bad(format!("{len:?} is not a prefix length")))?;
    if !(1..=30).contains(&len) {
        return Err(bad(format!(
            "prefix length {len} must be between 1 and 30 to leave room for a gateway and a pod"
        )));
    }
    let network = u32::from(addr) & !host_mask(len);
    if network != u32::from(addr) {
        return Err(bad(format!(
            "host bits are set; did you mean {}/{len}?",
            Ipv4Addr::from(network)
        )));
    }
    Ok((addr, len))
}

fn validate_ifname(name: &str, origin: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Config {
            value: name.to_string(),
            origin: origin.to_string(),
            reason: format!(
                "a bridge name is 1 to {MAX_IFNAME_LEN} characters of letters, digits, '-', '_', '.'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::write_atomic;

    #[test]
    fn cidr_parsing_accepts_networks_and_names_bad_values() {
        assert_eq!(
            parse_cidr("10.89.0.0/16", "x").unwrap(),
            (Ipv4Addr::new(10, 89, 0, 0), 16)
        );
        for bad in [
            "10.89.0.1/16",
            "10.89.0.0",
            "10.89.0.0/31",
            "nope/8",
            "10.0.0.0/x",
        ] {
            let err = parse_cidr(bad, "env X").unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("env X"), "{err}");
        }
        let err = parse_cidr("10.89.0.1/16", "x").unwrap_err().to_string();
        assert!(err.contains("did you mean 10.89.0.0/16"), "{err}");
    }

    #[test]
    fn gateway_broadcast_and_membership() {
        let cfg = NetworkConfig {
            bridge: "peapod0".into(),
            subnet: Ipv4Addr::new(10, 88, 0, 0),
            prefix_len: 16,
        };
        assert_eq!(cfg.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(cfg.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(cfg.contains(Ipv4Addr::new(10, 88, 3, 4)));
        assert!(!cfg.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!(cfg.cidr(), "10.88.0.0/16");
    }

    // The environment is process-wide: keep every env-dependent assertion in this one test.
    #[test]
    fn load_defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::env::remove_var(ENV_POD_CIDR);
        std::env::remove_var(ENV_BRIDGE);
        let cfg = NetworkConfig::load(&paths).unwrap();
        assert_eq!(cfg.bridge, "peapod0");
        assert_eq!(cfg.cidr(), "10.88.0.0/16");

        let file = paths.network().join(CONFIG_FILE);
        write_atomic(&file, br#"{"bridge": "ppx0", "podCIDR": "10.89.0.0/24"}"#).unwrap();
        let cfg = NetworkConfig::load(&paths).unwrap();
        assert_eq!(
            (cfg.bridge.as_str(), cfg.cidr()),
            ("ppx0", "10.89.0.0/24".into())
        );

        std::env::set_var(ENV_POD_CIDR, "10.90.0.0/20");
        let cfg = NetworkConfig::load(&paths).unwrap();
        assert_eq!(cfg.cidr(), "10.90.0.0/20");
        std::env::set_var(ENV_POD_CIDR, "10.90.0.0/40");
        let err = NetworkConfig::load(&paths).unwrap_err().to_string();
        assert!(
            err.contains("10.90.0.0/40") && err.contains(ENV_POD_CIDR),
            "{err}"
        );
        std::env::remove_var(ENV_POD_CIDR);

        write_atomic(&file, br#"{"bridge": "a-very-long-bridge-name"}"#).unwrap();
        let err = NetworkConfig::load(&paths).unwrap_err().to_string();
        assert!(err.contains("a-very-long-bridge-name") && err.contains("config.json"));
        write_atomic(&file, br#"{"bridg": "x"}"#).unwrap();
        let err = NetworkConfig::load(&paths).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
