//! The sandbox's network as `hostNetwork`, `hostPID` and `hostIPC` shape it: a pod in the
//! host's network gets no veth and no address of its own (its podIP is the host's, which for
//! peapod is the bridge's address, `status.hostIP`), the node's hosts file under the kubelet's
//! header and the node's hostname; every other pod gets an address from the allocator, a veth
//! on the bridge and the kubelet's managed hosts file [kubelet_pods.go ensureHostsFile].

use std::fs;
use std::net::Ipv4Addr;

use super::sandbox::SandboxError;
use super::Supervisor;
use crate::network::{self, Ipam};
use crate::sandbox::{files, HostNamespaces};

/// The node's hosts file, the content of a host-network pod's.
const NODE_HOSTS_FILE: &str = "/etc/hosts";

impl Supervisor {
    pub(super) fn host_namespaces(&self) -> HostNamespaces {
        HostNamespaces::of(&self.pod)
    }

    /// The pod's address: its own (allocated by owner, so a retry or a new sandbox keeps it)
    /// with its veth's name, or in the host's network the bridge's address, made sure to exist
    /// on the host (recorded first). An own address is recorded in the state with the first
    /// container instance, or by `wire_network` before the veth is made: teardown needs no
    /// record of either (it releases the address by owner and finds the veth by its name), so
    /// the state file is not written once more for them.
    pub(super) fn sandbox_address(&mut self) -> Result<Ipv4Addr, SandboxError> {
        if self.host_namespaces().network {
            network::ensure_bridge(&self.host.net)?;
            let ip = self.host.net.gateway();
            self.state.sandbox.ip = Some(ip);
            self.state.sandbox.veth = None;
            self.save_state()?;
            return Ok(ip);
        }
        // The address it had (a sandbox made again, a pod recovered after a reboot) if free.
        let ip = Ipam::new(&self.paths, &self.host.net)
            .allocate_preferring(&self.uid, self.sandbox.pod_ip)?;
        self.state.sandbox.ip = Some(ip);
        self.state.sandbox.veth = Some(network::veth_name(&self.uid));
        Ok(ip)
    }

    /// /etc/hosts and /etc/hostname of the pod's containers.
    pub(super) fn hosts_and_hostname(&self, ip: Ipv4Addr) -> (String, String) {
        if self.host_namespaces().network {
            let node_hosts = fs::read_to_string(NODE_HOSTS_FILE).unwrap_or_default();
            let hosts = files::host_network_hosts_file(&self.pod, &node_hosts);
            return (hosts, format!("{}\n", self.host.node_name));
        }
        let hosts = files::hosts_file(&self.pod, Some(ip), files::DEFAULT_CLUSTER_DOMAIN);
        (hosts, format!("{}\n", files::pod_hostname(&self.pod)))
    }

    /// What the veth needs recorded before it exists: the sandbox process, its address and
    /// the veth's name (unless already on record: the write is skipped as unchanged). Nothing
    /// in the host's network.
    pub(super) fn prepare_network(&mut self) -> Result<(), SandboxError> {
        if self.host_namespaces().network {
            return Ok(());
        }
        Ok(self.save_state()?)
    }

    /// The pod's network as the pause process `made` wired it (it ensured the bridge, and
    /// replaced a stale pair of this pod left by an earlier sandbox; None or not asked: the
    /// host's network, nothing to wire), then the host ports.
    pub(super) fn wire_network(
        &mut self,
        pid: i32,
        ip: Ipv4Addr,
        made: Option<crate::sandbox::pause::Made>,
    ) -> Result<(), SandboxError> {
        if let Some(made) = made {
            if made.wait_wired().map_err(SandboxError::Wiring)? {
                tracing::info!(veth = %network::veth_name(&self.uid), pid, %ip, "attached pod to bridge");
            }
        }
        self.map_host_ports(ip)?;
        self.sandbox.host_ip = Some(self.host.net.gateway().to_string());
        Ok(())
    }
}
