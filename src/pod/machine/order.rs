//! Pod-level decisions over all containers: what may start now, when the pod is complete, who
//! gets the stop signal when, whether a lost sandbox is made again, and the active deadline.

use std::time::Duration;

use super::{Kind, RestartPolicy};

/// A container's state as the pod-level decisions see it (the instance left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brief {
    /// Not running and nothing scheduled: its turn has not come (or a pull is in flight).
    Waiting,
    /// Not running, a start is scheduled (a retry, a restart after back-off).
    Scheduled,
    /// Its process runs; postStart has not returned.
    Starting,
    /// Running; `started`: its startup probe succeeded (or it has none).
    Running { started: bool },
    /// Being stopped.
    Stopping,
    /// Ended, and will run again.
    Exited,
    /// Ended for good with this exit code; None if it never ran.
    Done { code: Option<i32> },
}

impl Brief {
    /// A process of the container exists.
    pub fn has_instance(self) -> bool {
        matches!(
            self,
            Brief::Starting | Brief::Running { .. } | Brief::Stopping
        )
    }
}

/// One container: its kind and where it stands, in spec order (init containers first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub brief: Brief,
}

/// How a pod whose containers will not run again ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Every app container is done (whatever their exit codes): the sidecars are stopped.
    AppsDone,
    /// An init container failed under restartPolicy Never: nothing more starts.
    InitFailed,
}

/// Whether the init container has done its part: an init container exited 0, a sidecar is
/// running and started [computeInitContainerActions; status/generate.go
/// isInitContainerInitialized].
fn initialized(e: &Entry) -> bool {
    match e.kind {
        Kind::Init => e.brief == Brief::Done { code: Some(0) },
        Kind::Sidecar => e.brief == Brief::Running { started: true },
        Kind::App => false,
    }
}

/// How many init containers (counted from the first) have done their part in this sandbox.
/// `progress` only grows: once the next init container has been started, a sidecar before it
/// that restarts does not hold it back, and once the app containers run, a restarting sidecar
/// does not stop them [computeInitContainerActions: isPreviouslyInitialized].
pub fn advance(progress: usize, entries: &[Entry]) -> usize {
    let inits = entries.iter().take_while(|e| e.kind.is_init()).count();
    let mut p = progress.min(inits);
    while p < inits && initialized(&entries[p]) {
        p += 1;
    }
    p
}

/// The number of init containers at the head of `entries`.
pub fn init_count(entries: &[Entry]) -> usize {
    entries.iter().take_while(|e| e.kind.is_init()).count()
}

/// Whether container `i` may be started now, given the init progress: init containers one at
/// a time in order (a sidecar that was started before may restart any time), app containers
/// once every init container has done its part.
pub fn may_start(i: usize, entries: &[Entry], progress: usize) -> bool {
    let Some(e) = entries.get(i) else {
        return false;
    };
    match e.kind {
        Kind::App => progress >= init_count(entries),
        Kind::Init => i == progress,
        Kind::Sidecar => i <= progress,
    }
}

/// Whether the pod's containers will not run again: an init container failed under Never, or
/// every app container is done (restartPolicy Never or OnFailure; sidecars never keep a pod
/// alive) [computePodActions: `keepCount == 0 && len(ContainersToStart) == 0` kills the pod].
pub fn completion(entries: &[Entry]) -> Option<Completion> {
    let init_failed = entries.iter().any(|e| {
        e.kind == Kind::Init && matches!(e.brief, Brief::Done { code: Some(c) } if c != 0)
    });
    if init_failed {
        return Some(Completion::InitFailed);
    }
    let mut apps = entries.iter().filter(|e| e.kind == Kind::App).peekable();
    apps.peek()?;
    apps.all(|e| matches!(e.brief, Brief::Done { .. }))
        .then_some(Completion::AppsDone)
}

/// Whether a stopping container may get its stop signal now: a sidecar only once every app
/// container and every later sidecar is gone; any other container at once
/// [kuberuntime termination_ordering.go].
pub fn stop_turn(i: usize, entries: &[Entry]) -> bool {
    let Some(e) = entries.get(i) else {
        return true;
    };
    if e.kind != Kind::Sidecar {
        return true;
    }
    entries.iter().enumerate().all(|(j, other)| {
        let waits_for = other.kind == Kind::App || (other.kind == Kind::Sidecar && j > i);
        !(waits_for && other.brief.has_instance())
    })
}

/// After a sandbox loss (every container stopped): whether a new sandbox is made. Not under
/// Never once any container was created (the pod is then done); not when every app container
/// is done [computePodActions: the createPodSandbox branch]. `ran`: a container was created in
/// an earlier sandbox.
pub fn recreate_sandbox(policy: RestartPolicy, entries: &[Entry], ran: bool) -> bool {
    if policy == RestartPolicy::Never && ran {
        return false;
    }
    entries
        .iter()
        .any(|e| e.kind == Kind::App && !matches!(e.brief, Brief::Done { .. }))
}

/// Whether the pod has been active longer than `activeDeadlineSeconds` allows, counted from its
/// start time [pkg/kubelet/active_deadline.go pastActiveDeadline: `duration >= allowed`].
pub fn past_deadline(active_deadline_seconds: Option<i64>, active_for: Duration) -> bool {
    active_deadline_seconds
        .is_some_and(|s| active_for >= Duration::from_secs(s.max(0).unsigned_abs()))
}

/// When the active deadline passes, as a duration from the pod's start.
pub fn deadline_after(active_deadline_seconds: Option<i64>) -> Option<Duration> {
    active_deadline_seconds.map(|s| Duration::from_secs(s.max(0).unsigned_abs()))
}
