//! The bookkeeping of one container's probes, as the kubelet's probe workers keep it
//! [pkg/kubelet/prober/worker.go doProbe, prober_manager.go UpdatePodStatus]: when a probe is
//! due, how results count against the thresholds, and what changes when one is crossed. Pure:
//! time comes in as arguments, results as values; the supervisor acts on the [`Transition`]s.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use serde::{Deserialize, Serialize};

use super::messages::{self, ProbeEvent};
use super::ProbeResult;
use crate::manifest::probes::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_PERIOD_SECONDS, DEFAULT_SUCCESS_THRESHOLD,
    DEFAULT_TIMEOUT_SECONDS,
};

/// The three probes of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl fmt::Display for ProbeKind {
    /// As the kubelet's `probeType.String()` writes it in events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        })
    }
}

/// A probe's timing and thresholds, defaults applied (0/10/1/1/3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe-level `terminationGracePeriodSeconds`, used instead of the pod's when this
    /// probe kills the container.
    pub termination_grace_period: Option<i64>,
}

impl ProbeConfig {
    /// From a (defaulted or not) Probe: unset or non-positive values take the API defaults.
    pub fn from_probe(p: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32| {
            Duration::from_secs(v.filter(|v| *v > 0).unwrap_or(default) as u64)
        };
        let count = |v: Option<i32>, default: i32| v.filter(|v| *v > 0).unwrap_or(default) as u32;
        ProbeConfig {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            period: secs(p.period_seconds, DEFAULT_PERIOD_SECONDS),
            timeout: secs(p.timeout_seconds, DEFAULT_TIMEOUT_SECONDS),
            success_threshold: count(p.success_threshold, DEFAULT_SUCCESS_THRESHOLD),
            failure_threshold: count(p.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
            termination_grace_period: p.termination_grace_period_seconds,
        }
    }
}

/// What a result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Readiness crossed its success threshold.
    Ready,
    /// Readiness crossed its failure threshold (or the container stopped while ready).
    NotReady,
    /// The startup probe succeeded: liveness and readiness may run, `started` is true.
    Started,
    /// Liveness or startup crossed its failure threshold: kill the container (event `Killing`
    /// with [`messages::kill_message`]), with this grace period when the probe sets one.
    Kill {
        kind: ProbeKind,
        grace_period: Option<i64>,
    },
}

/// The result of feeding one probe result: the event to record and the transition, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeOutcome {
    pub event: Option<ProbeEvent>,
    pub transition: Option<Transition>,
}

/// The kubelet's `results.Result` for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    Unknown,
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No running instance to probe.
    Idle,
    /// Probing: the next probe is due at `next`; one child at a time.
    Active { next: Instant, in_flight: bool },
    /// Liveness or startup failed: no more probes until a new instance (the worker's onHold).
    OnHold,
    /// The startup probe succeeded for this instance.
    Finished,
}

/// One probe of one container.
#[derive(Debug, Clone)]
pub struct ProbeState {
    kind: ProbeKind,
    config: ProbeConfig,
    phase: Phase,
    current: Current,
    /// The last result counted, and how many times in a row.
    last: Option<bool>,
    run: u32,
}

impl ProbeState {
    pub fn new(kind: ProbeKind, config: ProbeConfig) -> Self {
        ProbeState {
            kind,
            config,
            phase: Phase::Idle,
            current: initial(kind),
            last: None,
            run: 0,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// A new instance started running at `at`: results start over from the kind's initial
    /// value (readiness not ready, liveness healthy, startup unknown) and the first probe is
    /// due after `initialDelaySeconds`.
    pub fn on_container_started(&mut self, at: Instant) {
        self.current = initial(self.kind);
        self.last = None;
        self.run = 0;
        self.phase = Phase::Active {
            next: at + self.config.initial_delay,
            in_flight: false,
        };
    }

    /// The instance stopped: probing ends; a ready container becomes not ready.
    pub fn on_container_stopped(&mut self) -> Option<Transition> {
        self.phase = Phase::Idle;
        let was_ready = self.kind == ProbeKind::Readiness && self.current == Current::Success;
        self.current = if self.kind == ProbeKind::Readiness {
            Current::Failure
        } else {
            initial(self.kind)
        };
        was_ready.then_some(Transition::NotReady)
    }

    /// The pod is being deleted: liveness and startup stop (they must not kill a container
    /// that is shutting down); readiness goes on.
    pub fn on_pod_terminating(&mut self) {
        if self.kind != ProbeKind::Readiness {
            self.phase = Phase::Idle;
        }
    }

    /// When the next probe is due, if one can run: startup only before the container has
    /// started, the others only after.
    pub fn next_due(&self, container_started: bool) -> Option<Instant> {
        let gate = (self.kind == ProbeKind::Startup) != container_started;
        match self.phase {
            Phase::Active {
                next,
                in_flight: false,
            } if gate => Some(next),
            _ => None,
        }
    }

    /// True when a probe should start now.
    pub fn due(&self, now: Instant, container_started: bool) -> bool {
        self.next_due(container_started).is_some_and(|t| t <= now)
    }

    /// A probe child was started at `now`: none other until its result; the next one on the
    /// period's grid (as the worker's ticker), after `now`.
    pub fn on_probe_started(&mut self, now: Instant) {
        if let Phase::Active { next, .. } = self.phase {
            let mut following = next + self.config.period;
            while following <= now {
                following += self.config.period;
            }
            self.phase = Phase::Active {
                next: following,
                in_flight: true,
            };
        }
    }

    /// Counts one result [worker.go doProbe]: an errored probe is thrown away (its event
    /// stays), a warning counts as a success; the state changes only at the thresholds.
    pub fn on_result(&mut self, result: &ProbeResult) -> ProbeOutcome {
        let mut out = ProbeOutcome {
            event: messages::probe_event(self.kind, result),
            transition: None,
        };
        let Phase::Active { next, .. } = self.phase else {
            // The instance stopped or is on hold meanwhile: only the event remains.
            return out;
        };
        self.phase = Phase::Active {
            next,
            in_flight: false,
        };
        let success = match result {
            ProbeResult::Success | ProbeResult::Warning(_) => true,
            ProbeResult::Failure(_) => false,
            ProbeResult::Errored { .. } => return out,
        };
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.config.success_threshold
        } else {
            self.config.failure_threshold
        };
        if self.run < threshold {
            return out;
        }
        let before = self.current;
        self.current = if success {
            Current::Success
        } else {
            Current::Failure
        };
        out.transition = match (self.kind, success) {
            (ProbeKind::Readiness, true) if before != Current::Success => Some(Transition::Ready),
            (ProbeKind::Readiness, false) if before == Current::Success => {
                Some(Transition::NotReady)
            }
            (ProbeKind::Startup, true) => {
                self.phase = Phase::Finished;
                Some(Transition::Started)
            }
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                self.phase = Phase::OnHold;
                self.run = 0;
                Some(Transition::Kill {
                    kind: self.kind,
                    grace_period: self.config.termination_grace_period,
                })
            }
            _ => None,
        };
        out
    }

    /// The result the kubelet would report now: true for success.
    pub fn succeeded(&self) -> bool {
        self.current == Current::Success
    }
}

fn initial(kind: ProbeKind) -> Current {
    match kind {
        ProbeKind::Readiness => Current::Failure,
        ProbeKind::Liveness => Current::Success,
        ProbeKind::Startup => Current::Unknown,
    }
}

/// The probes of one container, with the `started` and `ready` the kubelet derives from them
/// [prober_manager.go UpdatePodStatus].
#[derive(Debug, Clone, Default)]
pub struct ContainerProbes {
    pub liveness: Option<ProbeState>,
    pub readiness: Option<ProbeState>,
    pub startup: Option<ProbeState>,
}

impl ContainerProbes {
    pub fn new(container: &Container) -> Self {
        let make = |kind, p: &Option<Probe>| {
            p.as_ref()
                .map(|p| ProbeState::new(kind, ProbeConfig::from_probe(p)))
        };
        ContainerProbes {
            liveness: make(ProbeKind::Liveness, &container.liveness_probe),
            readiness: make(ProbeKind::Readiness, &container.readiness_probe),
            startup: make(ProbeKind::Startup, &container.startup_probe),
        }
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut ProbeState> {
        [&mut self.liveness, &mut self.readiness, &mut self.startup]
            .into_iter()
            .flatten()
    }

    fn all(&self) -> impl Iterator<Item = &ProbeState> {
        [&self.liveness, &self.readiness, &self.startup]
            .into_iter()
            .flatten()
    }

    pub fn get_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeState> {
        match kind {
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
            ProbeKind::Startup => self.startup.as_mut(),
        }
    }

    /// `started` of a running container: no startup probe, or it succeeded.
    pub fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(ProbeState::succeeded)
    }

    /// `ready` of a running container: started, and no readiness probe or it succeeded.
    pub fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(ProbeState::succeeded)
    }

    pub fn on_container_started(&mut self, at: Instant) {
        self.all_mut().for_each(|p| p.on_container_started(at));
    }

    /// Returns [`Transition::NotReady`] when the container was ready.
    pub fn on_container_stopped(&mut self) -> Option<Transition> {
        let was_ready = self.ready();
        self.all_mut().for_each(|p| {
            p.on_container_stopped();
        });
        was_ready.then_some(Transition::NotReady)
    }

    pub fn on_pod_terminating(&mut self) {
        self.all_mut().for_each(ProbeState::on_pod_terminating);
    }

    /// The probes due now.
    pub fn due(&self, now: Instant) -> Vec<ProbeKind> {
        let started = self.started();
        self.all()
            .filter(|p| p.due(now, started))
            .map(ProbeState::kind)
            .collect()
    }

    /// The earliest moment a probe is due.
    pub fn next_due(&self) -> Option<Instant> {
        let started = self.started();
        self.all().filter_map(|p| p.next_due(started)).min()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
