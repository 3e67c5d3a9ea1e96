//! The pod's host ports, once it is scheduled (`scheduling` claims them): when the sandbox
//! has its address, the ports are mapped (`network::hostport`), the table's name recorded in
//! the state first.

use std::net::Ipv4Addr;

use super::sandbox::SandboxError;
use super::Supervisor;
use crate::network::hostport;

impl Supervisor {
    /// Maps the pod's host ports to `ip` (not for a pod in the host's network, whose ports
    /// are the host's), the table recorded in the state before it is made.
    pub(super) fn map_host_ports(&mut self, ip: Ipv4Addr) -> Result<(), SandboxError> {
        let mine = hostport::mappings(&self.pod);
        if mine.is_empty() || self.host_namespaces().network {
            return Ok(());
        }
        self.state.host_port_table = Some(hostport::table_name(&self.uid));
        self.save_state()?;
        hostport::install(&self.paths, &self.host.net, &self.uid, ip, &mine)?;
        Ok(())
    }
}
