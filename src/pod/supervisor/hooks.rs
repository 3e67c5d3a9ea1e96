//! The call-outs to the probe and hook module, and how their outcomes move a container's
//! lifecycle.
//!
//! The module that runs hooks and probes (`src/probe/`) is being built by another part of the
//! team. It will start each run in a child process and hand back its pid, a pipe that carries
//! the result and a deadline; the supervisor polls the pipe in its loop, reaps the pid with its
//! other children, and reports the outcome here. Until it lands nothing runs hooks: the manifest
//! refuses `lifecycle.postStart`/`preStop` and probes, so [`Supervisor::start_hook`] is never
//! asked for one that exists, and the lifecycle moves on as if the hook had returned. What the
//! outcomes do (postStart failure kills the container, preStop ends before the stop signal,
//! probe results set `started`/`ready` or kill) is wired and decided by `machine::state`.

use std::time::Instant;

use nix::unistd::Pid;

use super::Supervisor;
use crate::pod::events;
use crate::pod::machine::{Lifecycle, ProbeEffect, ProbeKind, ProbeResult, Stop, StopCause};

/// The kubelet's event for a failed preStop hook, whose message leaves out the hook's output
/// (it may hold secrets) [kuberuntime_container.go executePreStopHook].
pub const REASON_FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
const MESSAGE_PRE_STOP_FAILED: &str = "PreStopHook failed";
/// The same for postStart [kuberuntime_container.go startContainer].
const MESSAGE_POST_START_FAILED: &str = "PostStartHook failed";

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    PostStart,
    PreStop,
}

/// A hook or probe run in flight, as the probe module will report it.
#[derive(Debug)]
pub(crate) struct Run {
    pub container: usize,
    pub what: Probe,
    pub pid: Pid,
    pub deadline: Instant,
}

/// What a run is.
// Made by the probe module's runner when it starts a run; nothing starts one before it lands.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    Hook(HookKind),
    Check(ProbeKind),
}

/// The runs in flight.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    running: Vec<Run>,
}

impl Hooks {
    /// Runs past their deadline (to be killed; their exit reports the failure).
    pub fn overdue(&self, now: Instant) -> Vec<Pid> {
        self.running
            .iter()
            .filter(|r| now >= r.deadline)
            .map(|r| r.pid)
            .collect()
    }

    /// The run whose process `pid` was reaped, if it is one of ours.
    pub fn reaped(&mut self, pid: Pid) -> Option<Run> {
        let at = self.running.iter().position(|r| r.pid == pid)?;
        Some(self.running.swap_remove(at))
    }
}

impl Supervisor {
    /// Starts container `i`'s hook; false when nothing can run it (the lifecycle then moves
    /// on as if it had returned). The probe module's runner plugs in here.
    pub(super) fn start_hook(&mut self, i: usize, kind: HookKind) -> bool {
        tracing::debug!(container = %self.runs[i].spec.name, ?kind, "no hook runner yet");
        false
    }

    /// A hook or probe process was reaped: its exit code is the verdict (0: success).
    pub(super) fn on_run_exit(&mut self, run: Run, exit_code: i32) {
        let ok = exit_code == 0;
        match run.what {
            Probe::Hook(HookKind::PostStart) => {
                self.post_start_done(run.container, if ok { Ok(()) } else { Err(()) })
            }
            Probe::Hook(HookKind::PreStop) => {
                if !ok {
                    let field = self.runs[run.container].field_path();
                    self.event(
                        events::WARNING,
                        REASON_FAILED_PRE_STOP_HOOK,
                        &field,
                        MESSAGE_PRE_STOP_FAILED.into(),
                    );
                }
                self.pre_stop_done(run.container);
            }
            Probe::Check(kind) => {
                let result = if ok {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure
                };
                self.on_probe_result(run.container, kind, result);
            }
        }
    }

    /// postStart returned: the container is Running, or on failure it is killed
    /// (`FailedPostStartHook`) and restarted as the policy says.
    pub(super) fn post_start_done(&mut self, i: usize, outcome: Result<(), ()>) {
        let now = Instant::now();
        let grace = self.pod_grace();
        let r = &mut self.runs[i];
        let probes = r.probes();
        let stop = Stop::new(StopCause::PostStartHook, now, grace, r.has_pre_stop());
        let life = std::mem::replace(&mut r.life, Lifecycle::Done);
        // Running first even on failure, so that the kill takes the common path (the Killing
        // event, preStop, the stop signal).
        r.life = life.post_start_done(true, probes, stop);
        if outcome.is_err() {
            let field = self.runs[i].field_path();
            self.event(
                events::WARNING,
                crate::pod::machine::exit::REASON_FAILED_POST_START_HOOK,
                &field,
                MESSAGE_POST_START_FAILED.into(),
            );
            self.stop_container(i, StopCause::PostStartHook, grace, now);
        }
        self.reconcile();
        self.mark_dirty();
    }

    /// preStop returned (or failed): the stop signal may follow.
    pub(super) fn pre_stop_done(&mut self, i: usize) {
        if let Lifecycle::Stopping { stop, .. } = &mut self.runs[i].life {
            stop.pre_stop = false;
        }
        self.drive_stops(Instant::now());
    }

    /// A probe's verdict (once its thresholds are met): started, ready, or a kill.
    pub(super) fn on_probe_result(&mut self, i: usize, kind: ProbeKind, result: ProbeResult) {
        let effect = self.runs[i].life.probe_effect(kind, result);
        match effect {
            ProbeEffect::Nothing => return,
            ProbeEffect::Kill(cause) => {
                let grace = self.probe_kill_grace(i, kind);
                self.stop_container(i, cause, grace, Instant::now());
            }
            ProbeEffect::Started | ProbeEffect::Ready(_) => self.runs[i].life.apply_probe(effect),
        }
        self.reconcile();
        self.mark_dirty();
    }

    /// A liveness or startup kill uses the probe's own terminationGracePeriodSeconds when it
    /// sets one [kuberuntime_container.go setTerminationGracePeriod].
    fn probe_kill_grace(&self, i: usize, kind: ProbeKind) -> std::time::Duration {
        let spec = &self.runs[i].spec;
        let probe = match kind {
            ProbeKind::Liveness => spec.liveness_probe.as_ref(),
            ProbeKind::Startup => spec.startup_probe.as_ref(),
            ProbeKind::Readiness => None,
        };
        match probe.and_then(|p| p.termination_grace_period_seconds) {
            Some(s) => std::time::Duration::from_secs(s.max(0).unsigned_abs()),
            None => self.pod_grace(),
        }
    }
}
