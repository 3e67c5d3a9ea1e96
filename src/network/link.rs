//! Netlink work for the pod network: the bridge, one veth pair per pod, and the pod side's
//! address and default route.
//!
//! The API is synchronous: each call builds a tokio current-thread runtime, runs its rtnetlink
//! connections on it and drops them before returning, so a single-threaded caller (the per-pod
//! supervisor, which may fork later) stays single-threaded. Work inside a pod's network
//! namespace goes over a socket opened inside it: the calling thread `setns(2)`s in for the
//! socket(2) call and back at once (a netlink socket talks to the namespace it was created
//! in), so the caller's own namespace is never changed for longer. This module touches only
//! the links it is given or creates.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute};
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
    run_netlink(|| async move {
        let handle = connect(None)?;
        bridge_index(&handle, &cfg).await.map(|_| ())
    })
}

/// The bridge's index, creating it, its gateway address and its up state when missing. The
/// link and the addresses are asked for together (one round trip), and the addresses are
/// matched to the link's index here.
async fn bridge_index(handle: &Handle, cfg: &NetworkConfig) -> Result<u32, NetworkError> {
    let name = cfg.bridge.clone();
    let gateway = cfg.gateway();
    let prefix_len = cfg.prefix_len;
    let (found, holders) = futures::join!(
        link_state(handle, &name),
        links_with_address(handle, IpAddr::V4(gateway))
    );
    let (index, up, has_gateway) = match found? {
        Some((index, up)) => (index, up, holders?.contains(&index)),
        None => {
            let msg = LinkBridge::new(&name).build();
            if let Err(e) = handle.link().add(msg).execute().await {
                if errno(&e) != Some(libc::EEXIST) {
                    return Err(nl(format!("create bridge {name}"), e));
                }
            }
            tracing::info!(bridge = %name, "created bridge");
            let (index, up) = link_state(handle, &name)
                .await?
                .ok_or(NetworkError::LinkNotFound { name: name.clone() })?;
            let has = links_with_address(handle, IpAddr::V4(gateway))
                .await?
                .contains(&index);
            (index, up, has)
        }
    };
    if !has_gateway {
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

/// A netlink runtime with a socket in the caller's network namespace: opened by the pause
/// process before it leaves the host's network namespace, so that it can make its veth pair
/// from inside the new one ([`attach_own`]).
pub struct Session {
    runtime: tokio::runtime::Runtime,
    host: Handle,
}

impl Session {
    pub fn open() -> Result<Session, NetworkError> {
        let runtime = new_runtime()?;
        let host = {
            let _context = runtime.enter();
            connect(None)?
        };
        Ok(Session { runtime, host })
    }
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
    let netns = File::open(format!("/proc/{netns_pid}/ns/net")).map_err(|source| {
        NetworkError::Namespace {
            pid: netns_pid,
            source,
        }
    })?;
    let host = wire(Session::open()?, cfg, &netns, false, owner, ip)?;
    tracing::info!(veth = %host, pid = netns_pid, %ip, "attached pod to bridge");
    Ok(host)
}

/// [`attach`] from inside: the caller has just made its own network namespace (the pod's)
/// and opened `session` in the host's before. The pause process wires its pod this way, on
/// its own CPU while the supervisor prepares the containers. Returns the host end's name.
pub fn attach_own(
    session: Session,
    cfg: &NetworkConfig,
    owner: &str,
    ip: Ipv4Addr,
) -> Result<String, NetworkError> {
    let netns =
        File::open("/proc/thread-self/ns/net").map_err(|source| NetworkError::Namespace {
            pid: std::process::id() as i32,
            source,
        })?;
    wire(session, cfg, &netns, true, owner, ip)
}

/// The veth pair between the host (`session`) and `netns`, and the pod side's address and
/// routes; `inside`: the caller is in `netns` already. On failure the host end (and with it
/// the pair) is deleted again.
fn wire(
    session: Session,
    cfg: &NetworkConfig,
    netns: &File,
    inside: bool,
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
    let Session {
        runtime,
        host: host_side,
    } = session;
    runtime.block_on(async {
        let wired = async {
            // A socket talks to the namespace it was created in: the pod side's is made inside.
            let pod_side = connect((!inside).then_some(netns))?;
            crate::starttrace::mark("net runtime+socket");
            create_pair(&host_side, cfg, netns, &host).await?;
            crate::starttrace::mark("net veth made");
            configure_pod_side(&pod_side, cfg, ip).await
        };
        match wired.await {
            Ok(()) => Ok(host.clone()),
            Err(e) => {
                tracing::error!(veth = %host, error = %e, "failed to attach pod");
                if let Err(cleanup) = delete_link(&host_side, &host).await {
                    tracing::warn!(veth = %host, error = %cleanup, "failed to remove veth after error");
                }
                Err(e)
            }
        }
    })
}

/// Deletes a pod's host veth (its peer goes with it). Ok when it is already gone.
pub fn detach(host_veth: &str) -> Result<(), NetworkError> {
    let name = host_veth.to_string();
    run_netlink(|| async move {
        let handle = connect(None)?;
        delete_link(&handle, &name).await
    })
}

/// Deletes link `name` of the handle's namespace; Ok when there is none.
async fn delete_link(handle: &Handle, name: &str) -> Result<(), NetworkError> {
    let Some(index) = link_index(handle, name).await? else {
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
}

/// True when a link of that name exists in the caller's network namespace.
pub fn link_exists(name: &str) -> Result<bool, NetworkError> {
    let name = name.to_string();
    run_netlink(|| async move {
        let handle = connect(None)?;
        Ok(link_index(&handle, &name).await?.is_some())
    })
}

/// Host side: create the pair with its peer born inside the pod's namespace as `eth0` (moving
/// an existing link between namespaces waits for an RCU grace period, tens of milliseconds),
/// the host end already on the bridge and up. The peer is brought up from inside the pod's
/// namespace: asking for it up in this request failed (ENOTCONN) on a 6.18 kernel. A stale
/// pair of this pod (a crash between its creation and its record) makes the creation fail
/// with EEXIST: it is ours to replace, once.
async fn create_pair(
    handle: &Handle,
    cfg: &NetworkConfig,
    netns: &File,
    host: &str,
) -> Result<(), NetworkError> {
    // Ensured here too: the bridge may have been deleted since the pod's last sandbox.
    let bridge_index = bridge_index(handle, cfg).await?;
    crate::starttrace::mark("net bridge checked");
    // One queue each way on both ends, asked for at creation: without the attributes the
    // kernel gives a veth one queue per CPU and then cuts each end down to one
    // (veth_init_queues), and each cut waits for an expedited RCU grace period
    // (synchronize_net), which the container's init then waits behind in its pivot's unmount.
    let pair = || {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(POD_IFNAME.to_string())
            .setns_by_fd(netns.as_raw_fd())
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .build();
        LinkVeth::new(host, POD_IFNAME)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .controller(bridge_index)
            .up()
            .build()
    };
    let failed = |e| {
        nl(
            format!(
                "create veth pair {host} (on {}) / {POD_IFNAME} (in the pod)",
                cfg.bridge
            ),
            e,
        )
    };
    match handle.link().add(pair()).execute().await {
        Err(e) if errno(&e) == Some(libc::EEXIST) && link_index(handle, host).await?.is_some() => {
            tracing::warn!(veth = %host, "replacing stale veth");
            delete_link(handle, host).await?;
            handle.link().add(pair()).execute().await.map_err(failed)
        }
        other => other.map_err(failed),
    }
}

/// The index of `lo` in every network namespace (LOOPBACK_IFINDEX in the kernel).
const LOOPBACK_INDEX: u32 = 1;

/// Pod side, over a netlink socket opened inside the pod's namespace: eth0's address, eth0 and
/// lo up, the default route. The four requests go out together: the kernel handles a socket's
/// requests in the order sent, so the route is added after eth0 is up, as it must be.
async fn configure_pod_side(
    handle: &Handle,
    cfg: &NetworkConfig,
    ip: Ipv4Addr,
) -> Result<(), NetworkError> {
    let (gateway, prefix_len) = (cfg.gateway(), cfg.prefix_len);
    let index = link_index(handle, POD_IFNAME)
        .await?
        .ok_or(NetworkError::LinkNotFound {
            name: POD_IFNAME.to_string(),
        })?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    let (address, eth0_up, lo_up, route) = futures::join!(
        handle
            .address()
            .add(index, IpAddr::V4(ip), prefix_len)
            .execute(),
        set_up(handle, index, POD_IFNAME),
        set_up(handle, LOOPBACK_INDEX, LOOPBACK),
        handle.route().add(route).execute(),
    );
    address.map_err(|e| nl(format!("add {ip}/{prefix_len} to the pod's eth0"), e))?;
    eth0_up?;
    lo_up?;
    route.map_err(|e| nl(format!("add default route via {gateway} in the pod"), e))
}

/// Runs one netlink conversation on a fresh current-thread runtime, dropped before returning
/// (the caller stays single-threaded).
fn run_netlink<T, F, Fut>(f: F) -> Result<T, NetworkError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, NetworkError>>,
{
    new_runtime()?.block_on(f())
}

fn new_runtime() -> Result<tokio::runtime::Runtime, NetworkError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| NetworkError::Io {
            op: "start the netlink runtime".into(),
            source,
        })
}

/// A netlink connection driven on the current runtime (its task ends with the runtime). With
/// `netns`, the socket is opened inside that network namespace: a socket stays bound to the
/// namespace it was created in, so the calling thread enters the namespace just for the
/// socket(2) call and returns to its own at once (no helper thread).
fn connect(netns: Option<&File>) -> Result<Handle, NetworkError> {
    let (connection, handle, _messages) = match netns {
        None => rtnetlink::new_connection(),
        Some(ns) => in_netns(ns, rtnetlink::new_connection)?,
    }
    .map_err(|source| NetworkError::Io {
        op: "open a netlink socket".into(),
        source,
    })?;
    tokio::spawn(connection);
    Ok(handle)
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

/// The links that carry `ip`. The kernel dumps every link's addresses, so the dump asks for
/// `ip`'s family only: each pod's host-side veth carries an IPv6 link-local address, which
/// would make every start's dump grow with the pods.
async fn links_with_address(handle: &Handle, ip: IpAddr) -> Result<Vec<u32>, NetworkError> {
    let mut request = handle.address().get();
    request.message_mut().header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut addrs = request.execute();
    let mut out = Vec::new();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(|e| nl(format!("list the addresses (looking for {ip})"), e))?
    {
        let has = msg.attributes.iter().any(
            |a| matches!(a, AddressAttribute::Address(a) | AddressAttribute::Local(a) if *a == ip),
        );
        if has {
            out.push(msg.header.index);
        }
    }
    Ok(out)
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
