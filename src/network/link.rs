//! Netlink work for the pod network: the bridge, one veth pair per pod, and the pod side's
//! address and default route.
//!
//! The API is synchronous: each call builds a tokio current-thread runtime, runs one rtnetlink
//! connection on it and drops both before returning, so a single-threaded caller (the per-pod
//! supervisor, which may fork later) stays single-threaded. Work inside a pod's network
//! namespace runs on a scoped thread that `setns(2)`s into it: a netlink socket talks to the
//! namespace of the thread that created it, and the caller's own namespace is never changed.
//! This module touches only the links it is given or creates.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoVeth};
use netlink_packet_route::AddressFamily;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::{NetworkConfig, NetworkError};

/// The interface name the pod sees, as in every Kubernetes network plugin.
pub const POD_IFNAME: &str = "eth0";
pub const LOOPBACK: &str = "lo";
const HOST_VETH_PREFIX: &str = "pp";
const UID_CHARS: usize = 12;

/// The host end of a pod's veth pair: `pp` + the first 12 hex digits of the pod UID.
pub fn veth_name(owner: &str) -> String {
    let hex: String = owner
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .take(UID_CHARS)
        .collect();
    format!("{HOST_VETH_PREFIX}{hex}")
}

/// Creates the bridge if missing, gives it the gateway address and brings it up. Idempotent,
/// and tolerant of another process doing the same at the same time.
pub fn ensure_bridge(cfg: &NetworkConfig) -> Result<(), NetworkError> {
    let cfg = cfg.clone();
    run_netlink(None, |handle| async move {
        bridge_index(&handle, &cfg).await.map(|_| ())
    })
}

/// The bridge's index, creating it, its gateway address and its up state when missing.
async fn bridge_index(handle: &Handle, cfg: &NetworkConfig) -> Result<u32, NetworkError> {
    let name = cfg.bridge.clone();
    let gateway = cfg.gateway();
    let prefix_len = cfg.prefix_len;
    let (index, up) = match link_state(handle, &name).await? {
        Some(found) => found,
        None => {
            let msg = LinkBridge::new(&name).build();
            if let Err(e) = handle.link().add(msg).execute().await {
                if errno(&e) != Some(libc::EEXIST) {
                    return Err(nl(format!("create bridge {name}"), e));
                }
            }
            tracing::info!(bridge = %name, "created bridge");
            link_state(handle, &name)
                .await?
                .ok_or(NetworkError::LinkNotFound { name: name.clone() })?
        }
    };
    if !has_address(handle, index, IpAddr::V4(gateway)).await? {
        let add = handle.address().add(index, IpAddr::V4(gateway), prefix_len);
        if let Err(e) = add.execute().await {
            if errno(&e) != Some(libc::EEXIST) {
                return Err(nl(format!("add {gateway}/{prefix_len} to {name}"), e));
            }
        }
    }
    if !up {
        set_up(handle, index, &name).await?;
    }
    Ok(index)
}

/// Connects the network namespace of process `netns_pid` to the bridge: a veth pair whose host
/// end ([`veth_name`]) joins the bridge, and whose other end becomes the pod's `eth0` with
/// `ip/prefix_len` and a default route via the gateway; `lo` comes up too. Returns the host
/// end's name. On failure the host end (and with it the pair) is deleted again.
pub fn attach(
    cfg: &NetworkConfig,
    netns_pid: i32,
    owner: &str,
    ip: Ipv4Addr,
) -> Result<String, NetworkError> {
    if !cfg.contains(ip) || ip == cfg.gateway() || ip == cfg.subnet || ip == cfg.broadcast() {
        return Err(NetworkError::Config {
            value: ip.to_string(),
            origin: format!("the address given for pod {owner}"),
            reason: format!("not a pod address of {}", cfg.cidr()),
        });
    }
    let host = veth_name(owner);
    let ns_path = format!("/proc/{netns_pid}/ns/net");
    let netns = File::open(&ns_path).map_err(|source| NetworkError::Namespace {
        pid: netns_pid,
        source,
    })?;

    let result = attach_host_side(cfg, &netns, &host).and_then(|()| {
        crate::starttrace::mark("net veth made");
        configure_pod_side(cfg, &netns, ip)
    });
    match result {
        Ok(()) => {
            tracing::info!(veth = %host, pid = netns_pid, %ip, "attached pod to bridge");
            Ok(host)
        }
        Err(e) => {
            tracing::error!(veth = %host, pid = netns_pid, error = %e, "failed to attach pod");
            if let Err(cleanup) = detach(&host) {
                tracing::warn!(veth = %host, error = %cleanup, "failed to remove veth after error");
            }
            Err(e)
        }
    }
}

/// Deletes a pod's host veth (its peer goes with it). Ok when it is already gone.
pub fn detach(host_veth: &str) -> Result<(), NetworkError> {
    let name = host_veth.to_string();
    run_netlink(None, |handle| async move {
        let Some(index) = link_index(&handle, &name).await? else {
            return Ok(());
        };
        match handle.link().del(index).execute().await {
            Ok(()) => {
                tracing::debug!(veth = %name, "deleted veth");
                Ok(())
            }
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl(format!("delete link {name}"), e)),
        }
    })
}

/// True when a link of that name exists in the caller's network namespace.
pub fn link_exists(name: &str) -> Result<bool, NetworkError> {
    let name = name.to_string();
    run_netlink(None, |handle| async move {
        Ok(link_index(&handle, &name).await?.is_some())
    })
}

/// Host side: create the pair with its peer born inside the pod's namespace as `eth0` (moving
/// an existing link between namespaces waits for an RCU grace period, tens of milliseconds),
/// the host end already on the bridge and up. The peer is brought up from inside the pod's
/// namespace: asking for it up in this request failed (ENOTCONN) on a 6.18 kernel.
fn attach_host_side(cfg: &NetworkConfig, netns: &File, host: &str) -> Result<(), NetworkError> {
    let (bridge, host) = (cfg.bridge.clone(), host.to_string());
    let cfg = cfg.clone();
    let ns_fd = netns.as_raw_fd();
    run_netlink(None, |handle| async move {
        crate::starttrace::mark("net runtime+socket");
        // Ensured here too: the bridge may have been deleted since the pod's last sandbox.
        let bridge_index = bridge_index(&handle, &cfg).await?;
        crate::starttrace::mark("net bridge checked");
        // A stale pair of this pod (a crash between creation and record) is ours to replace.
        if let Some(stale) = link_index(&handle, &host).await? {
            tracing::warn!(veth = %host, "replacing stale veth");
            if let Err(e) = handle.link().del(stale).execute().await {
                if errno(&e) != Some(libc::ENODEV) {
                    return Err(nl(format!("delete stale link {host}"), e));
                }
            }
        }
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(POD_IFNAME.to_string())
            .setns_by_fd(ns_fd)
            .build();
        let pair = LinkVeth::new(&host, POD_IFNAME)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .controller(bridge_index)
            .up()
            .build();
        handle.link().add(pair).execute().await.map_err(|e| {
            nl(
                format!("create veth pair {host} (on {bridge}) / {POD_IFNAME} (in the pod)"),
                e,
            )
        })
    })
}

/// Pod side, over a netlink socket opened inside the pod's namespace: eth0's address, eth0 and
/// lo up, the default route.
fn configure_pod_side(cfg: &NetworkConfig, netns: &File, ip: Ipv4Addr) -> Result<(), NetworkError> {
    let (gateway, prefix_len) = (cfg.gateway(), cfg.prefix_len);
    run_netlink(Some(netns), |handle| async move {
        let index = link_index(&handle, POD_IFNAME)
            .await?
            .ok_or(NetworkError::LinkNotFound {
                name: POD_IFNAME.to_string(),
            })?;
        let add = handle.address().add(index, IpAddr::V4(ip), prefix_len);
        add.execute()
            .await
            .map_err(|e| nl(format!("add {ip}/{prefix_len} to the pod's eth0"), e))?;
        set_up(&handle, index, POD_IFNAME).await?;
        let lo = link_index(&handle, LOOPBACK)
            .await?
            .ok_or(NetworkError::LinkNotFound {
                name: LOOPBACK.to_string(),
            })?;
        set_up(&handle, lo, LOOPBACK).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(|e| nl(format!("add default route via {gateway} in the pod"), e))
    })
}

/// Runs one netlink conversation on a fresh current-thread runtime, dropped before returning.
/// With `netns`, the socket is opened inside that network namespace: a socket stays bound to
/// the namespace it was created in, so the calling thread enters the namespace just for the
/// socket(2) call and returns to its own at once (no helper thread).
fn run_netlink<T, F, Fut>(netns: Option<&File>, f: F) -> Result<T, NetworkError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetworkError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| NetworkError::Io {
            op: "start the netlink runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let (connection, handle, _messages) = match netns {
            None => rtnetlink::new_connection(),
            Some(ns) => in_netns(ns, rtnetlink::new_connection)?,
        }
        .map_err(|source| NetworkError::Io {
            op: "open a netlink socket".into(),
            source,
        })?;
        let driver = tokio::spawn(connection);
        let result = f(handle).await;
        driver.abort();
        result
    })
}

/// Runs `f` with the calling thread in the network namespace `ns`, then moves it back.
fn in_netns<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T, NetworkError> {
    let ns_err = |op: &str, e: nix::errno::Errno| NetworkError::Io {
        op: op.to_string(),
        source: io::Error::from(e),
    };
    let own = File::open("/proc/thread-self/ns/net").map_err(|source| NetworkError::Io {
        op: "open this thread's network namespace".into(),
        source,
    })?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| ns_err("enter the pod's network namespace", e))?;
    let out = f();
    nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| ns_err("return to the host network namespace", e))?;
    Ok(out)
}

/// A link's index and whether it is up.
async fn link_state(handle: &Handle, name: &str) -> Result<Option<(u32, bool)>, NetworkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some((
            msg.header.index,
            msg.header
                .flags
                .contains(netlink_packet_route::link::LinkFlags::Up),
        ))),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(format!("look up link {name}"), e)),
    }
}

async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    Ok(link_state(handle, name).await?.map(|(index, _)| index))
}

/// Whether link `index` has `ip`. The kernel dumps every link's addresses (the filters are
/// applied here), so the dump asks for `ip`'s family only: each pod's host-side veth carries an
/// IPv6 link-local address, which would make every start's dump grow with the pods.
async fn has_address(handle: &Handle, index: u32, ip: IpAddr) -> Result<bool, NetworkError> {
    let mut request = handle.address().get().set_link_index_filter(index);
    request.message_mut().header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut addrs = request.execute();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(|e| nl(format!("list addresses of link {index}"), e))?
    {
        let found = msg.header.index == index
            && msg.attributes.iter().any(|a| {
                matches!(a, AddressAttribute::Address(a) | AddressAttribute::Local(a) if *a == ip)
            });
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetworkError> {
    let msg = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| nl(format!("set {name} up"), e))
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().raw_os_error(),
        _ => None,
    }
}

fn nl(op: String, source: rtnetlink::Error) -> NetworkError {
    NetworkError::Netlink { op, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_ifnamsiz_and_come_from_the_uid() {
        let uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(veth_name(uid), "pp0f1e2d3c4b5a");
        assert!(veth_name(uid).len() <= super::super::config::MAX_IFNAME_LEN);
        assert_eq!(veth_name("ABCDEF"), "ppabcdef");
    }
}
