//! Stopping containers and the end of the pod: a stop's course (preStop, the stop signal in the
//! termination order, SIGKILL), a delete, `activeDeadlineSeconds`, a pod whose containers are
//! done, and what the pod releases at its end.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

use super::hooks::HookKind;
use super::{Supervisor, SupervisorError};
use crate::pod::events;
use crate::pod::machine::order::{deadline_after, past_deadline, stop_turn};
use crate::pod::machine::{killing_message, restarts, Lifecycle, Stop, StopCause, StopStep};
use crate::pod::model::{PodFailure, MESSAGE_DEADLINE_EXCEEDED, REASON_DEADLINE_EXCEEDED};
use crate::pod::record::{DeleteRequest, DELETE_FILE};
use crate::store::read_json;

/// The pod's grace period when it sets none [core/v1 DefaultTerminationGracePeriodSeconds].
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Where the pod as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodRun {
    /// Admission holds it (AppArmor): nothing starts until it is deleted.
    Blocked,
    /// Its containers run; `progress`: how many init containers have done their part in
    /// this sandbox (`machine::order::advance`).
    Active { progress: usize },
    /// Every container is being killed for a `RestartAllContainers` rule; once none is left
    /// and `at` has come (the back-off of the container that asked), the pod runs again from
    /// its first init container in the same sandbox (`supervisor::restart_all`).
    Restarting { at: Instant },
    /// Everything is being stopped; then `end`.
    Terminating { end: End },
    /// Nothing runs any more: the supervisor releases what `end` says and exits.
    Over { end: End },
}

/// How a pod's termination ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// `peapod delete`: everything of the pod goes.
    Delete,
    /// The pod finished (its containers are done, it failed, it was evicted or passed its
    /// deadline): its host resources go, its status, events and logs stay until deleted.
    Finish,
}

impl PodRun {
    pub fn is_over(&self) -> bool {
        matches!(self, PodRun::Over { .. })
    }

    /// The init progress while the pod runs.
    pub fn progress(&self) -> Option<usize> {
        match self {
            PodRun::Active { progress } => Some(*progress),
            _ => None,
        }
    }
}

impl Supervisor {
    /// The pod's terminationGracePeriodSeconds.
    pub(super) fn pod_grace(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        Duration::from_secs(secs.max(0).unsigned_abs())
    }

    /// A stop was requested: `peapod delete` wrote delete.json (with its grace period) and
    /// sent SIGTERM.
    pub(super) fn delete_requested(&mut self) {
        let req: Option<DeleteRequest> =
            read_json(&self.paths.pod_dir(&self.uid).join(DELETE_FILE)).ok();
        let grace = match req {
            Some(r) => Duration::from_secs(r.grace_period_seconds.max(0).unsigned_abs()),
            None => self.pod_grace(),
        };
        tracing::info!(grace_secs = grace.as_secs(), "deleting pod");
        self.terminate(End::Delete, grace, None);
    }

    /// The pod ends: every container is stopped within `grace` and nothing starts again; then
    /// `end`. A delete overrides a finish under way, and a shorter grace period hurries stops
    /// already under way.
    pub(super) fn terminate(&mut self, end: End, grace: Duration, failure: Option<PodFailure>) {
        if self.failure.is_none() {
            self.failure = failure;
        }
        let end = match self.pod_run {
            PodRun::Terminating { end: End::Delete } => End::Delete,
            _ => end,
        };
        self.pod_run = PodRun::Terminating { end };
        self.kill_pulls();
        self.sandbox.cancel_retry();
        let now = Instant::now();
        for i in 0..self.runs.len() {
            self.stop_container(i, StopCause::PodTermination, grace, now);
        }
        self.drive_stops(now);
        self.mark_dirty();
    }

    /// Stops container `i` for `cause` within `grace`: a `Killing` event and its preStop hook
    /// for a container that runs; see `Lifecycle::stop` for the others.
    pub(super) fn stop_container(
        &mut self,
        i: usize,
        cause: StopCause,
        grace: Duration,
        now: Instant,
    ) {
        let r = &mut self.runs[i];
        let runs = matches!(
            r.life,
            Lifecycle::Starting { .. } | Lifecycle::Running { .. }
        );
        let stop = Stop::new(cause, now, grace, r.has_pre_stop());
        let life = std::mem::replace(&mut r.life, Lifecycle::Done);
        r.life = life.stop(stop);
        if !runs {
            return;
        }
        // Liveness and startup must not kill a container that is stopping; readiness goes on.
        r.probes.on_pod_terminating();
        let restart = restarts(r.kind, &r.policy, 0, Some(cause));
        let message = killing_message(r.kind, &r.spec.name, cause, restart);
        let field = r.field_path();
        self.event(events::NORMAL, events::REASON_KILLING, &field, message);
        if stop.pre_stop && !self.start_hook(i, HookKind::PreStop) {
            self.pre_stop_done(i);
        }
    }

    /// Sends stop signals and SIGKILLs as each stop's course and the termination order say
    /// (sidecars after the app containers, the last first).
    pub(super) fn drive_stops(&mut self, now: Instant) {
        loop {
            let entries = self.entries();
            let mut acted = false;
            for (i, r) in self.runs.iter_mut().enumerate() {
                let Lifecycle::Stopping { inst, stop } = &mut r.life else {
                    continue;
                };
                match stop.step(now, stop_turn(i, &entries)) {
                    StopStep::Wait => continue,
                    StopStep::Signal => {
                        tracing::debug!(container = %r.spec.name, signal = %inst.stop_signal, "stop signal");
                        if let Err(e) = kill(inst.pid, inst.stop_signal) {
                            tracing::debug!(container = %r.spec.name, error = %e, "stop signal not sent");
                        }
                        stop.signaled = Some(now);
                    }
                    StopStep::Kill => {
                        if let (Some(cg), Some(mgr)) = (&inst.cgroup, &self.host.cgroups) {
                            if let Err(e) = mgr.kill_all(cg) {
                                tracing::warn!(cgroup = %cg.display(), error = %e, "cgroup kill failed");
                            }
                        }
                        // The child is ours and not yet reaped: the pid is still its own.
                        let _ = kill(inst.pid, Signal::SIGKILL);
                        stop.killed = true;
                    }
                }
                acted = true;
            }
            if !acted {
                break;
            }
        }
    }

    /// While terminating: once no container or pull is left, the sandbox goes; then the pod is
    /// over (a finished pod releases its host resources first).
    pub(super) fn drive_termination(&mut self, now: Instant) {
        let PodRun::Terminating { end } = self.pod_run else {
            return;
        };
        self.drive_stops(now);
        let busy = self.runs.iter().any(|r| r.life.instance().is_some());
        if busy || !self.images.idle() || self.hooks.wind_down() || !self.stop_sandbox() {
            return;
        }
        if end == End::Finish {
            self.release_host();
        }
        self.pod_run = PodRun::Over { end };
        self.mark_dirty();
    }

    /// When the active deadline passes, if the pod has one.
    pub(super) fn deadline_at(&self) -> Option<Instant> {
        let spec = self.pod.spec.as_ref()?;
        deadline_after(spec.active_deadline_seconds).map(|d| self.started + d)
    }

    /// Past `activeDeadlineSeconds`: a Normal `DeadlineExceeded` event, and the pod fails with
    /// that reason, its containers stopped within their grace period [active_deadline.go].
    pub(super) fn check_deadline(&mut self, now: Instant) {
        // Counted from the start on the node: an unschedulable pod has not started.
        if self.scheduling.retry_at().is_some() {
            return;
        }
        let seconds = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds);
        if !past_deadline(seconds, now.saturating_duration_since(self.started)) {
            return;
        }
        tracing::warn!(active_deadline_seconds = ?seconds, "pod past its active deadline");
        self.event(
            events::NORMAL,
            REASON_DEADLINE_EXCEEDED,
            "",
            MESSAGE_DEADLINE_EXCEEDED.into(),
        );
        let grace = self.pod_grace();
        self.terminate(
            End::Finish,
            grace,
            Some(PodFailure {
                reason: REASON_DEADLINE_EXCEEDED.into(),
                message: MESSAGE_DEADLINE_EXCEEDED.into(),
            }),
        );
    }

    /// Releases what the end of the pod says: everything for a delete; for a finished pod its
    /// host resources are gone already, and the final status is written.
    pub(super) fn finish(&mut self) -> Result<(), SupervisorError> {
        self.attach.close();
        self.control.close();
        match self.pod_run {
            PodRun::Over { end: End::Delete } => {
                crate::pod::teardown::release_all(&self.paths, &self.state)?;
            }
            _ => {
                self.state.supervisor = None;
                self.state.keeper = None;
                self.state.finished = true;
                self.write_status()?;
                tracing::info!("pod finished; its status, events and logs stay until deleted");
            }
        }
        Ok(())
    }

    /// A finished pod gives back its sandbox's network (veth, host ports, IP), its cgroups and mounts
    /// [kubelet: a terminated pod keeps no sandbox; its volumes are torn down]. If a step
    /// fails, it is logged and the state file keeps naming everything, for `delete`.
    fn release_host(&mut self) {
        let errors = crate::pod::teardown::release_host(&self.paths, &self.state);
        if !errors.is_empty() {
            tracing::warn!(errors = %errors.join("; "), "releasing the finished pod's resources");
            return;
        }
        self.state.host_released();
        self.save_state_or_log();
    }
}
