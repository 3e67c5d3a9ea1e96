//! The pod IP allocator: one JSON file (`<run>/network/ipam.json`) guarded by a file lock
//! (`<lib>/network/ipam.lock`), so concurrent peapod processes never hand out one address twice.
//!
//! The allocations are runtime state: an address is held while its pod's network namespace
//! lives, and a reboot ends every one of them. So they are kept in the run directory (a tmpfs
//! on a usual host), where a reboot clears them with the namespaces, rather than on the disk,
//! where the allocations of pods lost to a reboot had to be swept and each allocation and
//! release was a new inode to write. A pod recovered after a reboot asks for its old address
//! again (`allocate_preferring`). The file of earlier versions (`<lib>/network/ipam.json`) is
//! read when the run directory has none, and removed once its content is written there.
//!
//! Next-fit, as host-local IPAM does: the search starts after the last address handed out, so
//! an address just released is not reused at once (a late packet or a stale /etc/hosts entry
//! then reaches nobody rather than the wrong pod). Network, gateway and broadcast are never given.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::{host_mask, NetworkConfig};
use super::NetworkError;
use crate::store::{read_json, write_json_volatile, FileLock, Paths};

pub const STATE_FILE: &str = "ipam.json";
pub const LOCK_FILE: &str = "ipam.lock";

/// What `ipam.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamState {
    /// The last address handed out: the next search starts after it.
    #[serde(default)]
    last: Option<Ipv4Addr>,
    /// Pod UID to address.
    #[serde(default)]
    allocations: BTreeMap<String, Ipv4Addr>,
}

/// The allocator of one pod CIDR.
#[derive(Debug, Clone)]
pub struct Ipam {
    cfg: NetworkConfig,
    state: PathBuf,
    /// Where earlier versions kept the state (see the module doc).
    earlier: PathBuf,
    lock: PathBuf,
}

impl Ipam {
    pub fn new(paths: &Paths, cfg: &NetworkConfig) -> Ipam {
        Ipam {
            cfg: cfg.clone(),
            state: paths.run_network().join(STATE_FILE),
            earlier: paths.network().join(STATE_FILE),
            lock: paths.network().join(LOCK_FILE),
        }
    }

    /// The address of `owner` (a pod UID): the one it already has, else the next free one.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, NetworkError> {
        self.allocate_preferring(owner, None)
    }

    /// Like [`Ipam::allocate`], but an owner without an allocation gets `preferred` (the
    /// address it had before its allocation was lost) when it is in the range and no other
    /// owner holds it.
    pub fn allocate_preferring(
        &self,
        owner: &str,
        preferred: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetworkError> {
        let _lock = FileLock::exclusive(&self.lock)?;
        let mut state = self.read()?;
        if let Some(ip) = state.allocations.get(owner) {
            return Ok(*ip);
        }
        let free = |ip: &Ipv4Addr| {
            self.assignable(*ip) && !state.allocations.values().any(|held| held == ip)
        };
        let ip = match preferred.filter(free) {
            Some(ip) => ip,
            None => self.next_free(&state)?,
        };
        state.allocations.insert(owner.to_string(), ip);
        state.last = Some(ip);
        self.write(&state)?;
        tracing::debug!(owner, %ip, "allocated pod IP");
        Ok(ip)
    }

    /// Gives back the address of `owner`; Ok when it has none.
    pub fn release(&self, owner: &str) -> Result<(), NetworkError> {
        let _lock = FileLock::exclusive(&self.lock)?;
        let mut state = self.read()?;
        if let Some(ip) = state.allocations.remove(owner) {
            self.write(&state)?;
            tracing::debug!(owner, %ip, "released pod IP");
        }
        Ok(())
    }

    /// Gives back every address whose owner `keep` refuses (pods no longer on record);
    /// returns them.
    pub fn release_unowned(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Ipv4Addr)>, NetworkError> {
        let _lock = FileLock::exclusive(&self.lock)?;
        let mut state = self.read()?;
        let gone: Vec<(String, Ipv4Addr)> = state
            .allocations
            .iter()
            .filter(|(owner, _)| !keep(owner))
            .map(|(o, ip)| (o.clone(), *ip))
            .collect();
        if !gone.is_empty() {
            for (owner, _) in &gone {
                state.allocations.remove(owner);
            }
            self.write(&state)?;
        }
        Ok(gone)
    }

    /// Every current allocation, pod UID to address.
    pub fn allocations(&self) -> Result<BTreeMap<String, Ipv4Addr>, NetworkError> {
        let _lock = FileLock::exclusive(&self.lock)?;
        Ok(self.read()?.allocations)
    }

    /// The state (under the lock); the earlier version's file where the run directory has none.
    fn read(&self) -> Result<IpamState, NetworkError> {
        for path in [&self.state, &self.earlier] {
            match read_json(path) {
                Ok(s) => return Ok(s),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(IpamState::default())
    }

    /// Writes the state (under the lock; no fsync: a power loss ends every pod it describes),
    /// then drops the earlier version's file, whose content it now holds.
    fn write(&self, state: &IpamState) -> Result<(), NetworkError> {
        write_json_volatile(&self.state, state)?;
        match std::fs::remove_file(&self.earlier) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                let path = self.earlier.display();
                tracing::warn!(%path, error = %e, "cannot remove the earlier IP allocation file");
            }
            _ => {}
        }
        Ok(())
    }

    /// The addresses pods get: network+2 ..= broadcast-1 (network+1 is the gateway).
    fn pod_range(&self) -> (u32, u32) {
        let network = u32::from(self.cfg.subnet);
        let last = network | host_mask(self.cfg.prefix_len);
        (network + 2, last.saturating_sub(1))
    }

    fn assignable(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = self.pod_range();
        (first..=last).contains(&u32::from(ip))
    }

    fn next_free(&self, state: &IpamState) -> Result<Ipv4Addr, NetworkError> {
        let (first, last) = self.pod_range();
        let used: BTreeSet<u32> = state
            .allocations
            .values()
            .map(|ip| u32::from(*ip))
            .collect();
        if first <= last {
            let start = match state.last.map(u32::from) {
                Some(prev) if prev >= first && prev < last => prev + 1,
                _ => first,
            };
            let candidates = (start..=last).chain(first..start);
            if let Some(ip) = candidates.into_iter().find(|ip| !used.contains(ip)) {
                return Ok(Ipv4Addr::from(ip));
            }
        }
        Err(NetworkError::Exhausted {
            cidr: self.cfg.cidr(),
            allocated: state.allocations.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cidr: &str) -> NetworkConfig {
        let (subnet, prefix_len) = super::super::config::parse_cidr(cidr, "test").unwrap();
        NetworkConfig {
            bridge: "pptest0".into(),
            subnet,
            prefix_len,
        }
    }

    #[test]
    fn skips_network_and_gateway_and_is_idempotent_per_owner() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(&Paths::under(dir.path()), &cfg("10.88.0.0/16"));
        let a = ipam.allocate("pod-a").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(ipam.allocate("pod-a").unwrap(), a);
        assert_eq!(ipam.allocate("pod-b").unwrap(), Ipv4Addr::new(10, 88, 0, 3));
    }

    #[test]
    fn slash_30_holds_one_pod_then_reports_exhaustion_naming_the_cidr() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(&Paths::under(dir.path()), &cfg("10.88.0.0/30"));
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 88, 0, 2));
        let err = ipam.allocate("b").unwrap_err();
        assert!(matches!(err, NetworkError::Exhausted { .. }));
        assert!(err.to_string().contains("10.88.0.0/30"), "{err}");
        ipam.release("a").unwrap();
        assert_eq!(ipam.allocate("b").unwrap(), Ipv4Addr::new(10, 88, 0, 2));
    }

    #[test]
    fn next_fit_does_not_reuse_a_just_released_address_then_wraps() {
        let dir = tempfile::tempdir().unwrap();
        // 10.88.0.0/29: pods get .2 to .6.
        let ipam = Ipam::new(&Paths::under(dir.path()), &cfg("10.88.0.0/29"));
        assert_eq!(ipam.allocate("a").unwrap().octets()[3], 2);
        assert_eq!(ipam.allocate("b").unwrap().octets()[3], 3);
        ipam.release("a").unwrap();
        ipam.release("a").unwrap();
        assert_eq!(ipam.allocate("c").unwrap().octets()[3], 4);
        assert_eq!(ipam.allocate("d").unwrap().octets()[3], 5);
        assert_eq!(ipam.allocate("e").unwrap().octets()[3], 6);
        // The end of the range: wrap around to the freed .2, never the broadcast .7.
        assert_eq!(ipam.allocate("f").unwrap().octets()[3], 2);
        assert!(ipam.allocate("g").is_err());
    }

    #[test]
    fn a_preferred_address_is_taken_only_when_free_and_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(&Paths::under(dir.path()), &cfg("10.88.0.0/29"));
        let five = Ipv4Addr::new(10, 88, 0, 5);
        assert_eq!(ipam.allocate_preferring("a", Some(five)).unwrap(), five);
        // Held by a: b gets the next free one instead.
        assert_eq!(
            ipam.allocate_preferring("b", Some(five)).unwrap().octets()[3],
            6
        );
        // An owner keeps what it has, whatever it prefers.
        let two = Ipv4Addr::new(10, 88, 0, 2);
        assert_eq!(ipam.allocate_preferring("a", Some(two)).unwrap(), five);
        // The gateway, the broadcast and other networks are never given.
        for bad in [[10, 88, 0, 1], [10, 88, 0, 7], [10, 89, 0, 2]] {
            let got = ipam
                .allocate_preferring(&format!("{bad:?}"), Some(bad.into()))
                .unwrap();
            assert_ne!(got, Ipv4Addr::from(bad));
            ipam.release(&format!("{bad:?}")).unwrap();
        }
    }

    #[test]
    fn allocations_of_owners_gone_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(&Paths::under(dir.path()), &cfg("10.88.0.0/16"));
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        let gone = ipam.release_unowned(|owner| owner == "a").unwrap();
        assert_eq!(gone, vec![("b".to_string(), b)]);
        let left = ipam.allocations().unwrap();
        assert_eq!(
            left.into_iter().collect::<Vec<_>>(),
            vec![("a".to_string(), a)]
        );
    }

    #[test]
    fn state_persists_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let a = Ipam::new(&paths, &cfg("10.88.0.0/16"))
            .allocate("a")
            .unwrap();
        let other = Ipam::new(&paths, &cfg("10.88.0.0/16"));
        assert_eq!(other.allocations().unwrap().get("a"), Some(&a));
        assert_eq!(other.allocate("a").unwrap(), a);
        assert_ne!(other.allocate("b").unwrap(), a);
        other.release("a").unwrap();
        let third = Ipam::new(&paths, &cfg("10.88.0.0/16"));
        assert!(!third.allocations().unwrap().contains_key("a"));
        // Runtime state: in the run directory, none on the disk.
        assert!(paths.run_network().join(STATE_FILE).exists());
        assert!(!paths.network().join(STATE_FILE).exists());
    }

    #[test]
    fn the_earlier_versions_file_is_taken_over_at_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let earlier = paths.network().join(STATE_FILE);
        std::fs::create_dir_all(paths.network()).unwrap();
        std::fs::write(
            &earlier,
            r#"{"last":"10.88.0.7","allocations":{"running":"10.88.0.7"}}"#,
        )
        .unwrap();
        let ipam = Ipam::new(&paths, &cfg("10.88.0.0/16"));
        // Read where the run directory has nothing: the running pod keeps its address, and
        // next-fit goes on after it.
        assert_eq!(
            ipam.allocate("running").unwrap(),
            Ipv4Addr::new(10, 88, 0, 7)
        );
        assert!(earlier.exists(), "nothing was written yet");
        assert_eq!(ipam.allocate("new").unwrap(), Ipv4Addr::new(10, 88, 0, 8));
        assert!(!earlier.exists());
        let held = Ipam::new(&paths, &cfg("10.88.0.0/16"))
            .allocations()
            .unwrap();
        assert_eq!(held.len(), 2);
        assert_eq!(held["running"], Ipv4Addr::new(10, 88, 0, 7));
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let ipam = Ipam::new(&paths, &cfg("10.88.0.0/24"));
                std::thread::spawn(move || {
                    (0..10)
                        .map(|i| ipam.allocate(&format!("pod-{t}-{i}")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Ipv4Addr> = threads
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(all.len(), 80);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 80, "an address was handed out twice");
        let ipam = Ipam::new(&paths, &cfg("10.88.0.0/24"));
        assert_eq!(ipam.allocations().unwrap().len(), 80);
    }
}
