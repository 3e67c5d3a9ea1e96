//! The pod's host ports: scheduling, then rules.
//!
//! Which pod may hold which host port is decided by the scheduler's NodePorts filter in
//! Kubernetes; peapod is its one node's scheduler. A pod whose ports another pod holds is not
//! scheduled: it stays Pending with the PodScheduled condition False (reason Unschedulable)
//! and a `FailedScheduling` warning from default-scheduler, `0/1 nodes are available: 1
//! node(s) didn't have free ports for the requested pod ports.`, tried again with the
//! scheduler's back-off (1 s doubling to 10 s) and started as soon as the ports are free.
//! Once the sandbox has its address, the ports are mapped (`network::hostport`), the table's
//! name recorded in the state first.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Supervisor;
use crate::network::hostport::{self, NODE_PORTS_UNSCHEDULABLE};
use crate::pod::events;

/// The scheduler's back-off of an unschedulable pod [scheduler podInitialBackoffDuration,
/// podMaxBackoffDuration].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);
const CONDITION_SCHEDULED: &str = "PodScheduled";
const REASON_UNSCHEDULABLE: &str = "Unschedulable";

/// Whether the pod has been scheduled on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Scheduling {
    #[default]
    Scheduled,
    /// Its host ports are taken: tried again at `retry`.
    Unschedulable { retry: Instant, delay: Duration },
}

impl Scheduling {
    pub fn retry_at(&self) -> Option<Instant> {
        match self {
            Scheduling::Scheduled => None,
            Scheduling::Unschedulable { retry, .. } => Some(*retry),
        }
    }

    /// What the scheduler writes of an unschedulable pod: Pending, PodScheduled False.
    pub fn apply(&self, status: &mut PodStatus) {
        if let Scheduling::Unschedulable { .. } = self {
            *status = PodStatus {
                phase: Some("Pending".into()),
                conditions: Some(vec![PodCondition {
                    type_: CONDITION_SCHEDULED.into(),
                    status: "False".into(),
                    reason: Some(REASON_UNSCHEDULABLE.into()),
                    message: Some(NODE_PORTS_UNSCHEDULABLE.into()),
                    last_transition_time: Some(Time(Timestamp::now())),
                    ..Default::default()
                }]),
                qos_class: status.qos_class.take(),
                ..Default::default()
            };
        }
    }
}

impl Supervisor {
    /// Claims the pod's host ports; false (and a FailedScheduling event) while another pod
    /// holds one of them. A failure to read the claims is logged and schedules the pod: the
    /// rules, made later, are what a conflict would break.
    pub(super) fn schedule(&mut self) -> bool {
        let mine = hostport::mappings(&self.pod);
        if mine.is_empty() {
            return true;
        }
        match hostport::claim(&self.paths, &self.uid, &mine) {
            Ok(true) => {
                self.scheduling = Scheduling::Scheduled;
                true
            }
            Ok(false) => {
                let delay = match &self.scheduling {
                    Scheduling::Unschedulable { delay, .. } => (*delay * 2).min(RETRY_MAX),
                    Scheduling::Scheduled => RETRY_FIRST,
                };
                self.scheduling = Scheduling::Unschedulable {
                    retry: Instant::now() + delay,
                    delay,
                };
                self.sandbox_next = None;
                self.event(
                    events::WARNING,
                    events::REASON_FAILED_SCHEDULING,
                    "",
                    NODE_PORTS_UNSCHEDULABLE.to_string(),
                );
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "host port claims cannot be read");
                true
            }
        }
    }

    /// An unschedulable pod whose retry is due is scheduled if its ports are free now.
    pub(super) fn retry_scheduling(&mut self, now: Instant) {
        if self.scheduling.retry_at().is_some_and(|t| now >= t) && self.schedule() {
            self.sandbox_next = Some(now);
            self.on_scheduled();
        }
    }

    /// Maps the pod's host ports to `ip` (not for a pod in the host's network, whose ports
    /// are the host's), the table recorded in the state before it is made.
    pub(super) fn map_host_ports(&mut self, ip: Ipv4Addr) -> Result<(), String> {
        let mine = hostport::mappings(&self.pod);
        if mine.is_empty() || self.host_namespaces().network {
            return Ok(());
        }
        self.state.host_port_table = Some(hostport::table_name(&self.uid));
        self.save_state().map_err(|e| e.to_string())?;
        hostport::install(&self.paths, &self.net, &self.uid, ip, &mine).map_err(|e| e.to_string())
    }
}
