//! Scheduling the pod on this node, as the scheduler's filters would on a one-node cluster.
//!
//! peapod is its one node's scheduler. A pod is not scheduled while another pod holds one of
//! its host ports (the NodePorts filter) or while one of its `persistentVolumeClaim`s is
//! missing, being deleted or cannot be provisioned here (the VolumeBinding filter). Such a pod
//! stays Pending with the PodScheduled condition False (reason Unschedulable, the scheduler's
//! message), no container statuses and no `Scheduled` event, and gets a `FailedScheduling`
//! warning from default-scheduler; it is tried again with the scheduler's back-off (1 s
//! doubling to 10 s), at once when a claim changes, and starts as soon as it fits.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Supervisor;
use crate::network::hostport::{self, NODE_PORTS_UNSCHEDULABLE};
use crate::pod::events;
use crate::volume::claim;

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
    /// It does not fit (`message`, the scheduler's): tried again at `retry`.
    Unschedulable {
        retry: Instant,
        delay: Duration,
        message: String,
        since: Timestamp,
    },
}

impl Scheduling {
    pub fn retry_at(&self) -> Option<Instant> {
        match self {
            Scheduling::Scheduled => None,
            Scheduling::Unschedulable { retry, .. } => Some(*retry),
        }
    }

    /// A change that may make the pod fit (a claim applied): try again at once.
    pub fn retry_now(&mut self, now: Instant) {
        if let Scheduling::Unschedulable { retry, .. } = self {
            *retry = now;
        }
    }

    /// What the scheduler writes of an unschedulable pod: Pending, PodScheduled False.
    pub fn apply(&self, status: &mut PodStatus) {
        if let Scheduling::Unschedulable { message, since, .. } = self {
            *status = PodStatus {
                phase: Some("Pending".into()),
                conditions: Some(vec![PodCondition {
                    type_: CONDITION_SCHEDULED.into(),
                    status: "False".into(),
                    reason: Some(REASON_UNSCHEDULABLE.into()),
                    message: Some(message.clone()),
                    last_transition_time: Some(Time(*since)),
                    ..Default::default()
                }]),
                qos_class: status.qos_class.take(),
                ..Default::default()
            };
        }
    }
}

impl Supervisor {
    /// Schedules the pod: its claims usable, its host ports claimed. False (and a
    /// FailedScheduling event) while it does not fit. A failure to read the records is logged
    /// and schedules the pod: the volume setup or the port rules, made later, report it.
    pub(super) fn schedule(&mut self) -> bool {
        match claim::check_schedulable(&self.paths, &self.pod) {
            Err(e) if e.is_unschedulable() => {
                self.unschedulable(events::failed_scheduling_message(&e.to_string()));
                return false;
            }
            Err(e) => tracing::error!(error = %e, "the pod's claims cannot be read"),
            Ok(()) => {}
        }
        let mine = hostport::mappings(&self.pod);
        if !mine.is_empty() {
            match hostport::claim(&self.paths, &self.uid, &mine) {
                Ok(true) => {}
                Ok(false) => {
                    self.unschedulable(NODE_PORTS_UNSCHEDULABLE.to_string());
                    return false;
                }
                Err(e) => tracing::error!(error = %e, "host port claims cannot be read"),
            }
        }
        self.scheduling = Scheduling::Scheduled;
        true
    }

    fn unschedulable(&mut self, message: String) {
        let (delay, since) = match &self.scheduling {
            Scheduling::Unschedulable { delay, since, .. } => ((*delay * 2).min(RETRY_MAX), *since),
            Scheduling::Scheduled => (RETRY_FIRST, Timestamp::now()),
        };
        self.scheduling = Scheduling::Unschedulable {
            retry: Instant::now() + delay,
            delay,
            message: message.clone(),
            since,
        };
        self.sandbox.cancel_retry();
        self.event(
            events::WARNING,
            events::REASON_FAILED_SCHEDULING,
            "",
            message,
        );
    }

    /// An unschedulable pod whose retry is due is scheduled if it fits now.
    pub(super) fn retry_scheduling(&mut self, now: Instant) {
        if self.scheduling.retry_at().is_some_and(|t| now >= t) && self.schedule() {
            self.sandbox.try_at(now);
            self.on_scheduled();
        }
    }
}
