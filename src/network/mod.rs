//! The pod network: the `peapod0` bridge, a veth pair per pod, and the IP allocator.
//!
//! [`config`] says which bridge and CIDR to use, [`ipam`] hands out pod IPs under a file lock so
//! that concurrent peapod processes never share one, and [`link`] does the netlink work (bridge,
//! veth, addresses, routes). [`hostport`] maps host ports to pods with rules in nftables tables
//! of peapod's own ([`nft`] speaks nf_tables over netlink). This module touches only links and
//! tables it creates: never the host's uplink, routes or anyone else's rules. It does not record veth names on disk; the caller does that first.

pub mod config;
pub mod hostport;
pub mod ipam;
pub mod link;
pub mod nft;

use std::io;
use std::path::PathBuf;

use crate::store::StoreError;

pub use config::NetworkConfig;
pub use ipam::Ipam;
pub use link::{attach, attach_own, detach, ensure_bridge, link_exists, veth_name, Session};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid pod network setting {value:?} from {origin}: {reason}")]
    Config {
        value: String,
        origin: String,
        reason: String,
    },
    #[error("network config {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("ip allocator: {0}")]
    Store(#[from] StoreError),
    #[error(
        "no free pod IP left in {cidr} ({allocated} allocated); release pods or widen the pod CIDR"
    )]
    Exhausted { cidr: String, allocated: usize },
    #[error("netlink: failed to {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink: {op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("network namespace of pid {pid}: {source}")]
    Namespace {
        pid: i32,
        #[source]
        source: io::Error,
    },
    #[error("link {name}: not found")]
    LinkNotFound { name: String },
}
