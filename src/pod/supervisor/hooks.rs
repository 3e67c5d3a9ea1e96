//! The call-outs to the probe and hook module (`src/probe/`), and how their outcomes move a
//! container's lifecycle.
//!
//! One [`ProbeRunner`] per supervisor runs every probe and hook of the pod in short-lived
//! children; the poll loop watches their pipes ([`Hooks::fds`]), its timeout covers their
//! deadlines and the next due probe, `collect_runs` reads what finished after every wake-up,
//! and `reap` hands the runner its children's pids. Each container keeps its
//! [`ContainerProbes`] (`run.rs`): delays, periods, thresholds. What the results do is
//! decided by `machine::state` (postStart failure kills the container, preStop ends before the
//! stop signal, probe verdicts set `started`/`ready` or kill); this file only carries them
//! there and records the kubelet's events.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::dispatch::IDLE_TRIM_AFTER;
use super::Supervisor;
use crate::pod::events;
use crate::pod::machine::{Lifecycle, ProbeEffect, ProbeKind, ProbeResult, Stop, StopCause};
use crate::probe::messages::{self, ProbeEvent};
use crate::probe::{
    self, hook_action, probe_action, Action, ExecTarget, HookResult, ProbeRunner, Purpose, Report,
    Request, Transition,
};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    PostStart,
    PreStop,
}

/// What a run in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    Hook(HookKind),
    Probe(ProbeKind),
}

/// The runner's key: which container, which run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunKey {
    pub container: usize,
    pub what: What,
}

impl RunKey {
    /// Every run a container may have in flight.
    fn all(container: usize) -> [RunKey; 5] {
        [
            What::Hook(HookKind::PostStart),
            What::Hook(HookKind::PreStop),
            What::Probe(ProbeKind::Liveness),
            What::Probe(ProbeKind::Readiness),
            What::Probe(ProbeKind::Startup),
        ]
        .map(|what| RunKey { container, what })
    }
}

/// The probes and hooks in flight.
pub(crate) struct Hooks {
    runner: ProbeRunner<RunKey>,
    /// The action of each hook in flight: a failure message names it.
    hook_actions: Vec<(RunKey, Action)>,
    /// Some probe runs more often than the idle trim could catch: trim after each round.
    trim_after_probes: bool,
}

impl Hooks {
    /// `shortest_period`: the shortest probe period of the pod's containers, if any.
    pub fn new(shortest_period: Option<Duration>) -> Hooks {
        Hooks {
            runner: ProbeRunner::new(),
            hook_actions: Vec::new(),
            trim_after_probes: shortest_period.is_some_and(|p| p <= IDLE_TRIM_AFTER * 3 / 2),
        }
    }

    /// The report pipes, for the poll set.
    pub fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.runner.fds()
    }

    /// The earliest run deadline, for the poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.runner.next_deadline()
    }

    /// From the `waitpid(-1)` loop: true when `pid` was a probe or hook child.
    pub fn on_exit(&mut self, pid: Pid) -> bool {
        self.runner.on_exit(pid)
    }

    /// Kills what still runs (the pod is going away); true while children are left to reap.
    pub fn wind_down(&mut self) -> bool {
        self.runner.kill_all();
        self.hook_actions.clear();
        !self.runner.unreaped().is_empty()
    }

    fn take_action(&mut self, key: &RunKey) -> Option<Action> {
        let at = self.hook_actions.iter().position(|(k, _)| k == key)?;
        Some(self.hook_actions.swap_remove(at).1)
    }
}

/// The shortest period of the probes of `containers`.
pub(crate) fn shortest_period<'a>(
    containers: impl Iterator<Item = &'a k8s_openapi::api::core::v1::Container>,
) -> Option<Duration> {
    containers
        .flat_map(|c| [&c.liveness_probe, &c.readiness_probe, &c.startup_probe])
        .flatten()
        .map(|p| probe::ProbeConfig::from_probe(p).period)
        .min()
}

impl Supervisor {
    /// The pod's network namespace, where the network kinds run.
    fn netns(&self) -> Option<PathBuf> {
        self.sandbox
            .pid()
            .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    fn pod_ip_text(&self) -> String {
        self.sandbox
            .pod_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    }

    /// A request for container `i`'s instance.
    fn request(&self, i: usize, purpose: Purpose, action: Action) -> Request {
        let exec = self.runs[i].life.instance().map(|inst| ExecTarget {
            pid: inst.pid.as_raw(),
            bundle: inst.dir.clone(),
        });
        Request {
            purpose,
            action,
            netns: self.netns(),
            exec,
        }
    }

    /// Starts container `i`'s hook; its outcome comes back through [`Self::on_hook_result`],
    /// at once when the handler cannot run. False when the container has no such hook.
    pub(super) fn start_hook(&mut self, i: usize, kind: HookKind) -> bool {
        let spec = &self.runs[i].spec;
        let lifecycle = spec.lifecycle.as_ref();
        let handler = match kind {
            HookKind::PostStart => lifecycle.and_then(|l| l.post_start.as_ref()),
            HookKind::PreStop => lifecycle.and_then(|l| l.pre_stop.as_ref()),
        };
        let Some(handler) = handler else {
            return false;
        };
        let key = RunKey {
            container: i,
            what: What::Hook(kind),
        };
        let (action, result) = match hook_action(handler, spec, &self.pod_ip_text()) {
            Ok(action) => {
                // preStop counts against the grace period; postStart has no deadline.
                let deadline = match &self.runs[i].life {
                    Lifecycle::Stopping { stop, .. } if kind == HookKind::PreStop => {
                        Some(stop.deadline)
                    }
                    _ => None,
                };
                let request = self.request(i, Purpose::Hook, action.clone());
                match self.hooks.runner.start(key, request, deadline) {
                    Ok(()) => {
                        tracing::debug!(container = %self.runs[i].spec.name, ?kind, "hook started");
                        self.hooks.hook_actions.push((key, action));
                        return true;
                    }
                    Err(e) => {
                        let error = e.to_string();
                        (
                            action,
                            HookResult::Failed {
                                error,
                                output: None,
                            },
                        )
                    }
                }
            }
            Err(unresolved) => (*unresolved.action.clone(), unresolved.hook_result()),
        };
        self.on_hook_result(i, kind, &action, result);
        true
    }

    /// Starts every probe that is due, in the containers that run. Not while the sandbox is
    /// gone: its network namespace is where the network kinds must run.
    pub(super) fn start_due_probes(&mut self, now: Instant) {
        if !self.sandbox.is_ready() {
            return;
        }
        for i in 0..self.runs.len() {
            if self.runs[i].life.instance().is_none() {
                continue;
            }
            for kind in self.runs[i].probes.due(now) {
                self.start_probe(i, kind, now);
            }
        }
    }

    fn start_probe(&mut self, i: usize, kind: ProbeKind, now: Instant) {
        let spec = &self.runs[i].spec;
        let probe = match kind {
            ProbeKind::Liveness => spec.liveness_probe.as_ref(),
            ProbeKind::Readiness => spec.readiness_probe.as_ref(),
            ProbeKind::Startup => spec.startup_probe.as_ref(),
        };
        let Some(probe) = probe else { return };
        let failed = match probe_action(probe, spec, &self.pod_ip_text()) {
            Ok(action) => {
                let timeout = probe::ProbeConfig::from_probe(probe).timeout;
                let request = self.request(i, Purpose::Probe { timeout }, action);
                let key = RunKey {
                    container: i,
                    what: What::Probe(kind),
                };
                match self.hooks.runner.start(key, request, None) {
                    Ok(()) => None,
                    Err(e) => Some(probe::ProbeResult::unknown(e.to_string())),
                }
            }
            Err(unresolved) => Some(unresolved.probe_result()),
        };
        if let Some(state) = self.runs[i].probes.get_mut(kind) {
            state.on_probe_started(now);
        }
        if let Some(result) = failed {
            self.on_probe_report(i, kind, &result);
        }
    }

    /// The earliest due probe of the containers that run.
    pub(super) fn next_probe_due(&self) -> Option<Instant> {
        if !self.sandbox.is_ready() {
            return None;
        }
        self.runs
            .iter()
            .filter(|r| r.life.instance().is_some())
            .filter_map(|r| r.probes.next_due())
            .min()
    }

    /// Reads what the runs reported (and ends the overdue ones), and acts on it.
    pub(super) fn collect_runs(&mut self, now: Instant) {
        let mut probed = false;
        for (key, report) in self.hooks.runner.collect(now) {
            let i = key.container;
            match (key.what, report) {
                (What::Probe(kind), Report::Probe(result)) => {
                    probed = true;
                    self.on_probe_report(i, kind, &result);
                }
                (What::Hook(kind), Report::Hook(result)) => {
                    let action = self.hooks.take_action(&key);
                    let action = action.unwrap_or(Action::Exec { command: vec![] });
                    self.on_hook_result(i, kind, &action, result);
                }
                (what, report) => {
                    tracing::warn!(?what, ?report, "a run reported the wrong kind of result")
                }
            }
        }
        if probed && self.hooks.trim_after_probes {
            self.idle.trim();
        }
    }

    /// Container `i`'s instance is gone: its runs in flight are cancelled.
    pub(super) fn cancel_runs(&mut self, i: usize) {
        for key in RunKey::all(i) {
            self.hooks.take_action(&key);
            if let Some(report) = self.hooks.runner.cancel(&key) {
                tracing::debug!(container = %self.runs[i].spec.name, ?report, "run cancelled");
            }
        }
        if let Some(Transition::NotReady) = self.runs[i].probes.on_container_stopped() {
            tracing::debug!(container = %self.runs[i].spec.name, "not ready: stopped");
        }
    }

    /// Records a probe or hook event on container `i`.
    fn record(&mut self, i: usize, event: ProbeEvent) {
        let field = self.runs[i].field_path();
        self.event(event.type_, event.reason, &field, event.message);
    }

    /// One probe result: its event, then the verdict when a threshold was crossed.
    fn on_probe_report(&mut self, i: usize, kind: ProbeKind, result: &probe::ProbeResult) {
        let Some(state) = self.runs[i].probes.get_mut(kind) else {
            return;
        };
        let outcome = state.on_result(result);
        if let Some(event) = outcome.event {
            self.record(i, event);
        }
        if let Some(t) = outcome.transition {
            let grace = match t {
                Transition::Kill {
                    grace_period: Some(s),
                    ..
                } => Duration::from_secs(s.max(0).unsigned_abs()),
                _ => self.pod_grace(),
            };
            let (kind, result) = ProbeResult::of(t);
            self.on_probe_result(i, kind, result, grace);
        }
    }

    /// A hook returned, failed or was given up.
    fn on_hook_result(&mut self, i: usize, kind: HookKind, action: &Action, result: HookResult) {
        let name = self.runs[i].spec.name.clone();
        if let HookResult::Done {
            http_fallback: Some(host),
        } = &result
        {
            let field = self.runs[i].field_path();
            self.event(
                events::WARNING,
                messages::REASON_LIFECYCLE_HTTP_FALLBACK,
                &field,
                messages::http_fallback_message(host),
            );
        }
        let pod = messages::pod_desc(self.pod_name(), self.namespace(), &self.uid);
        let failure = messages::hook_failure_message(action, &name, &pod, &result);
        if let Some(message) = &failure {
            tracing::warn!(container = %name, ?kind, %message, "hook failed");
        }
        match kind {
            HookKind::PostStart => self.post_start_done(i, failure),
            HookKind::PreStop => {
                if failure.is_some() {
                    let field = self.runs[i].field_path();
                    self.event(
                        messages::WARNING,
                        messages::REASON_FAILED_PRE_STOP_HOOK,
                        &field,
                        messages::PRE_STOP_HOOK_FAILED.into(),
                    );
                }
                self.pre_stop_done(i);
            }
        }
    }

    /// postStart returned: the container is Running, or on failure (`failure`: the hook's
    /// message) it is killed (`FailedPostStartHook`) and restarted as the policy says.
    pub(super) fn post_start_done(&mut self, i: usize, failure: Option<String>) {
        let now = Instant::now();
        let grace = self.pod_grace();
        let r = &mut self.runs[i];
        if !matches!(r.life, Lifecycle::Starting { .. }) {
            return;
        }
        let probes = r.probes();
        let stop = Stop::new(StopCause::PostStartHook, now, grace, r.has_pre_stop());
        let life = std::mem::replace(&mut r.life, Lifecycle::Done);
        // Running first even on failure, so that the kill takes the common path (the Killing
        // event, preStop, the stop signal).
        r.life = life.post_start_done(true, probes, stop);
        if let Some(inst) = r.life.instance() {
            let started = inst.started;
            r.probes.on_container_started(started);
        }
        if failure.is_some() {
            self.runs[i].start_error = failure;
            let field = self.runs[i].field_path();
            // The hook's message stays out of the event: it may hold secrets.
            self.event(
                messages::WARNING,
                messages::REASON_FAILED_POST_START_HOOK,
                &field,
                messages::POST_START_HOOK_FAILED.into(),
            );
            self.stop_container(i, StopCause::PostStartHook, grace, now);
        }
        self.reconcile();
        self.mark_dirty();
    }

    /// preStop returned (or failed, or ran out of time): the stop signal may follow.
    pub(super) fn pre_stop_done(&mut self, i: usize) {
        if let Lifecycle::Stopping { stop, .. } = &mut self.runs[i].life {
            stop.pre_stop = false;
        }
        self.drive_stops(Instant::now());
    }

    /// A probe's verdict (once its thresholds are met): started, ready, or a kill within
    /// `grace` (the probe's own terminationGracePeriodSeconds, else the pod's
    /// [kuberuntime_container.go setTerminationGracePeriod]).
    pub(super) fn on_probe_result(
        &mut self,
        i: usize,
        kind: ProbeKind,
        result: ProbeResult,
        grace: Duration,
    ) {
        let effect = self.runs[i].life.probe_effect(kind, result);
        match effect {
            ProbeEffect::Nothing => return,
            ProbeEffect::Kill(cause) => self.stop_container(i, cause, grace, Instant::now()),
            ProbeEffect::Started | ProbeEffect::Ready(_) => self.runs[i].life.apply_probe(effect),
        }
        self.reconcile();
        if effect == ProbeEffect::Started {
            self.redefine_if_outdated(i);
        }
        self.mark_dirty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, Probe};

    #[test]
    fn short_probe_periods_ask_for_a_trim_after_each_round() {
        let with_period = |p| Container {
            liveness_probe: Some(Probe {
                period_seconds: Some(p),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = [with_period(10), with_period(2), Container::default()];
        assert_eq!(shortest_period(pod.iter()), Some(Duration::from_secs(2)));
        assert!(Hooks::new(shortest_period(pod.iter())).trim_after_probes);
        assert!(!Hooks::new(Some(Duration::from_secs(10))).trim_after_probes);
        assert!(!Hooks::new(None).trim_after_probes);
        assert_eq!(shortest_period([Container::default()].iter()), None);
    }

    #[test]
    fn every_run_of_a_container_has_a_key() {
        let keys = RunKey::all(3);
        assert!(keys.iter().all(|k| k.container == 3));
        for (a, b) in keys.iter().zip(keys.iter().skip(1)) {
            assert_ne!(a, b);
        }
    }
}
