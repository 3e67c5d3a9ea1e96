//! The state of one container and its transitions.

use std::time::{Duration, Instant};

use super::exit::{Next, StopCause};
use super::order::Brief;
use super::MIN_GRACE;
pub use crate::probe::ProbeKind;
use crate::probe::Transition;

/// What the status shows for a container that is not running: a reason
/// (`ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, ...) and maybe a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: Option<String>,
}

impl Waiting {
    pub fn new(reason: &str) -> Waiting {
        Waiting {
            reason: reason.to_string(),
            message: None,
        }
    }
}

/// Where one container stands. `I` is the live instance (process, pipes, log) that the
/// supervisor keeps inside the states that have one; nothing here looks into it.
#[derive(Debug)]
pub enum Lifecycle<I> {
    /// No instance. `next_start`: when the next start is due; None until something schedules
    /// it (its turn in the init order, a finished pull, the sandbox).
    Waiting {
        waiting: Waiting,
        next_start: Option<Instant>,
    },
    /// The last instance ended and another one follows at `next_start`; the status shows the
    /// termination meanwhile (the first restart is immediate).
    Exited { next_start: Option<Instant> },
    /// The process runs but its postStart hook has not returned: the kubelet runs the hook
    /// inside startContainer, so the container is not yet Running [kuberuntime_container.go].
    Starting { inst: I },
    /// Running. `started`: the startup probe succeeded (or there is none); `ready`: the
    /// readiness probe succeeded (or there is none). Ready counts only once started.
    Running { inst: I, started: bool, ready: bool },
    /// Being stopped: preStop, then the stop signal, then SIGKILL.
    Stopping { inst: I, stop: Stop },
    /// Will not run again: the status shows its last termination.
    Done,
}

/// Which probes a container has (they gate `started` and `ready`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probes {
    pub startup: bool,
    pub readiness: bool,
}

/// A probe's verdict once its thresholds are met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
}

impl ProbeResult {
    /// The verdict a threshold crossing of the probe module stands for.
    pub fn of(t: Transition) -> (ProbeKind, ProbeResult) {
        match t {
            Transition::Ready => (ProbeKind::Readiness, ProbeResult::Success),
            Transition::NotReady => (ProbeKind::Readiness, ProbeResult::Failure),
            Transition::Started => (ProbeKind::Startup, ProbeResult::Success),
            Transition::Kill { kind, .. } => (kind, ProbeResult::Failure),
        }
    }
}

/// What a probe result does to a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeEffect {
    Nothing,
    /// The startup probe passed: `started` (the next init container may start after a sidecar).
    Started,
    /// Readiness changed.
    Ready(bool),
    /// Failed liveness or startup: the container is killed (and restarted as the policy says).
    Kill(StopCause),
}

/// The course of one stop [kuberuntime_container.go killContainer]: the preStop hook runs
/// within the grace period; the stop signal follows when it returns, when the container's turn
/// in the termination order has come, or when the grace period is spent; SIGKILL follows when
/// the grace period is spent, but never sooner than [`MIN_GRACE`] after the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub cause: StopCause,
    /// The end of the grace period.
    pub deadline: Instant,
    /// A preStop hook is running.
    pub pre_stop: bool,
    /// When the stop signal was sent.
    pub signaled: Option<Instant>,
    /// The least time between the signal and SIGKILL: [`MIN_GRACE`], or zero for a forced stop.
    pub min_grace: Duration,
    pub killed: bool,
}

/// What a stop needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    Wait,
    /// Send the stop signal.
    Signal,
    /// Send SIGKILL.
    Kill,
}

impl Stop {
    /// A stop with `grace` to go; `forced`: a zero grace period given by the user (`delete
    /// --grace-period=0 --force`), which skips the minimum.
    pub fn new(cause: StopCause, now: Instant, grace: Duration, pre_stop: bool) -> Stop {
        let forced = grace.is_zero();
        Stop {
            cause,
            deadline: now + grace,
            // The kubelet skips preStop when no grace is left.
            pre_stop: pre_stop && !forced,
            signaled: None,
            min_grace: if forced { Duration::ZERO } else { MIN_GRACE },
            killed: false,
        }
    }

    /// When SIGKILL is due, once signaled.
    fn kill_at(&self, signaled: Instant) -> Instant {
        self.deadline.max(signaled + self.min_grace)
    }

    /// What to do at `now`; `turn`: the container's turn in the termination order has come.
    pub fn step(&self, now: Instant, turn: bool) -> StopStep {
        if self.killed {
            return StopStep::Wait;
        }
        match self.signaled {
            None if now >= self.deadline || (!self.pre_stop && turn) => StopStep::Signal,
            None => StopStep::Wait,
            Some(at) if now >= self.kill_at(at) => StopStep::Kill,
            Some(_) => StopStep::Wait,
        }
    }

    /// The next moment [`Stop::step`] may have something to do, for the poll timeout.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.killed, self.signaled) {
            (true, _) => None,
            (false, None) => Some(self.deadline),
            (false, Some(at)) => Some(self.kill_at(at)),
        }
    }
}

impl<I> Lifecycle<I> {
    /// A container that has not run yet.
    pub fn waiting(reason: &str) -> Self {
        Lifecycle::Waiting {
            waiting: Waiting::new(reason),
            next_start: None,
        }
    }

    /// The live instance, in the states that have one.
    pub fn instance(&self) -> Option<&I> {
        match self {
            Lifecycle::Starting { inst }
            | Lifecycle::Running { inst, .. }
            | Lifecycle::Stopping { inst, .. } => Some(inst),
            _ => None,
        }
    }

    pub fn instance_mut(&mut self) -> Option<&mut I> {
        match self {
            Lifecycle::Starting { inst }
            | Lifecycle::Running { inst, .. }
            | Lifecycle::Stopping { inst, .. } => Some(inst),
            _ => None,
        }
    }

    /// When a start is due, for a container without an instance.
    pub fn next_start(&self) -> Option<Instant> {
        match self {
            Lifecycle::Waiting { next_start, .. } | Lifecycle::Exited { next_start } => *next_start,
            _ => None,
        }
    }

    /// Schedules (or, with None, unschedules) the next start of a container without an
    /// instance; other states are left alone.
    pub fn schedule(&mut self, at: Option<Instant>) {
        if let Lifecycle::Waiting { next_start, .. } | Lifecycle::Exited { next_start } = self {
            *next_start = at;
        }
    }

    /// Waits with `waiting` (a failed pull or configuration) until `at`. A container with an
    /// instance or done is left alone.
    pub fn wait(&mut self, waiting: Waiting, at: Option<Instant>) {
        if matches!(self, Lifecycle::Waiting { .. } | Lifecycle::Exited { .. }) {
            *self = Lifecycle::Waiting {
                waiting,
                next_start: at,
            };
        }
    }

    /// The state as the pod-level decisions see it; `last_code`: the exit code of the last
    /// instance, if one ended.
    pub fn brief(&self, last_code: Option<i32>) -> Brief {
        match self {
            Lifecycle::Waiting { next_start, .. } if next_start.is_some() => Brief::Scheduled,
            Lifecycle::Waiting { .. } => Brief::Waiting,
            Lifecycle::Exited { .. } => Brief::Exited,
            Lifecycle::Starting { .. } => Brief::Starting,
            Lifecycle::Running { started, .. } => Brief::Running { started: *started },
            Lifecycle::Stopping { .. } => Brief::Stopping,
            Lifecycle::Done => Brief::Done { code: last_code },
        }
    }

    /// The instance started: Starting while a postStart hook runs, else Running, not yet
    /// started while a startup probe must pass and not ready while a readiness probe must.
    pub fn started(inst: I, post_start: bool, probes: Probes) -> Self {
        if post_start {
            Lifecycle::Starting { inst }
        } else {
            Lifecycle::Running {
                inst,
                started: !probes.startup,
                ready: !probes.readiness,
            }
        }
    }

    /// The postStart hook returned: Running, or on failure the container is killed
    /// (FailedPostStartHook) with `stop`.
    pub fn post_start_done(self, ok: bool, probes: Probes, stop: Stop) -> Self {
        match self {
            Lifecycle::Starting { inst } if ok => Self::started(inst, false, probes),
            Lifecycle::Starting { inst } => Lifecycle::Stopping { inst, stop },
            other => other,
        }
    }

    /// What a probe result does; probes other than startup count only once started.
    pub fn probe_effect(&self, kind: ProbeKind, result: ProbeResult) -> ProbeEffect {
        let Lifecycle::Running { started, ready, .. } = self else {
            return ProbeEffect::Nothing;
        };
        match (kind, result, *started) {
            (ProbeKind::Startup, ProbeResult::Success, false) => ProbeEffect::Started,
            (ProbeKind::Startup, ProbeResult::Failure, false) => {
                ProbeEffect::Kill(StopCause::Startup)
            }
            (ProbeKind::Readiness, r, true) if *ready != (r == ProbeResult::Success) => {
                ProbeEffect::Ready(r == ProbeResult::Success)
            }
            (ProbeKind::Liveness, ProbeResult::Failure, true) => {
                ProbeEffect::Kill(StopCause::Liveness)
            }
            _ => ProbeEffect::Nothing,
        }
    }

    /// Applies a `Started` or `Ready` effect (a `Kill` goes through [`Lifecycle::stop`]).
    pub fn apply_probe(&mut self, effect: ProbeEffect) {
        if let Lifecycle::Running { started, ready, .. } = self {
            match effect {
                ProbeEffect::Started => *started = true,
                ProbeEffect::Ready(r) => *ready = r,
                ProbeEffect::Nothing | ProbeEffect::Kill(_) => {}
            }
        }
    }

    /// The supervisor stops the container. With an instance it is Stopping (a stop already
    /// under way keeps its course, unless the new one is the pod's termination with an
    /// earlier deadline). Without one: a pod termination ends it; a sandbox loss only
    /// postpones an immediate restart until the new sandbox exists.
    pub fn stop(self, stop: Stop) -> Self {
        match self {
            Lifecycle::Starting { inst } | Lifecycle::Running { inst, .. } => {
                Lifecycle::Stopping { inst, stop }
            }
            Lifecycle::Stopping { inst, stop: old } => {
                let sooner =
                    stop.cause == StopCause::PodTermination && stop.deadline < old.deadline;
                let stop = if sooner {
                    Stop {
                        signaled: old.signaled,
                        killed: old.killed,
                        pre_stop: old.pre_stop && stop.pre_stop,
                        ..stop
                    }
                } else {
                    Stop {
                        cause: if stop.cause == StopCause::PodTermination {
                            stop.cause
                        } else {
                            old.cause
                        },
                        ..old
                    }
                };
                Lifecycle::Stopping { inst, stop }
            }
            _ if stop.cause == StopCause::PodTermination => Lifecycle::Done,
            other => other,
        }
    }

    /// Takes the instance of a container whose process ended, with the cause when the
    /// supervisor had stopped it; the state is left Done until [`Lifecycle::after_exit`].
    pub fn take_exited(&mut self) -> Option<(I, Option<StopCause>)> {
        match std::mem::replace(self, Lifecycle::Done) {
            Lifecycle::Starting { inst } | Lifecycle::Running { inst, .. } => Some((inst, None)),
            Lifecycle::Stopping { inst, stop } => Some((inst, Some(stop.cause))),
            other => {
                *self = other;
                None
            }
        }
    }

    /// After an exit whose start itself failed (a postStart hook), an immediate restart shows
    /// the start error as the waiting reason until the next instance runs, the termination
    /// as lastState [kubelet_pods.go convertToAPIContainerStatuses: a container to be
    /// restarted shows its reasonCache entry, `ErrPostStartHook` with the hook's message]. A
    /// back-off (CrashLoopBackOff) or no restart is left alone.
    pub fn with_start_error(self, error: Waiting) -> Self {
        match self {
            Lifecycle::Exited { next_start } => Lifecycle::Waiting {
                waiting: error,
                next_start,
            },
            other => other,
        }
    }

    /// The state after an exit: Done, an immediate restart (the termination shows), or a
    /// back-off with `back_off` shown until `now + delay`.
    pub fn after_exit(
        next: Next,
        now: Instant,
        back_off: impl FnOnce(Duration) -> Waiting,
    ) -> Self {
        match next {
            Next::Done => Lifecycle::Done,
            Next::Restart { delay } if delay.is_zero() => Lifecycle::Exited {
                next_start: Some(now),
            },
            Next::Restart { delay } => Lifecycle::Waiting {
                waiting: back_off(delay),
                next_start: Some(now + delay),
            },
        }
    }
}
