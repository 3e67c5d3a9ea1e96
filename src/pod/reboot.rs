//! A pod after the host rebooted, as plain decisions: whether the node agent starts its
//! supervisor again ([`after_boot`]) and what each container's record says once the boot took
//! its processes ([`restore_container`]). No process or file of its own: the agent
//! (`node::recovery`) and the supervisor (`supervisor::reboot`) apply what is decided here, and
//! the decisions are unit-tested without root.
//!
//! The model is a kubelet's node after a reboot with containerd: the runtime still knows the
//! pod's sandbox (NOTREADY) and containers; a container that was running when the host went
//! down is reported exited with code 255 and reason `Unknown` [containerd internal/cri/server
//! restart.go loadContainer: unknownExitCode, unknownExitReason]; the kubelet sees the sandbox
//! changed, makes a new one and starts the containers as the restart policy says, each as a new
//! attempt (restartCount + 1) [kuberuntime_manager.go computePodActions].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus};

use crate::pod::model::Terminated;
use crate::pod::record::{ContainerState, PodState};

/// The exit code of a container whose end the runtime did not see [containerd restart.go].
pub const UNKNOWN_EXIT_CODE: i32 = 255;
/// Its terminated reason.
pub const REASON_UNKNOWN: &str = "Unknown";

/// What the node agent knows of one pod on record when it starts.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    /// state.json, None if the pod never had a supervisor record.
    pub state: Option<&'a PodState>,
    /// The recorded supervisor process still runs.
    pub supervisor_alive: bool,
    /// `/run/peapod/pods/<uid>` exists: /run is a tmpfs, gone after a reboot.
    pub run_dir_exists: bool,
    /// A delete was asked and not finished.
    pub deleting: bool,
}

/// What the agent does with a pod when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBoot {
    /// Its processes were lost to a reboot: a supervisor starts it again in a new sandbox.
    Recover,
    /// Lost to a reboot while being deleted: the delete is finished from its record.
    FinishDelete,
    /// Nothing to do, and why.
    Leave(Leave),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// No state.json: no supervisor ever recorded itself (an apply killed half-way).
    NoState,
    /// Finished: its status is final and nothing of it runs.
    Finished,
    /// Its supervisor runs (the agent itself was restarted).
    SupervisorAlive,
    /// Its supervisor is gone in this very boot (killed): its containers may still run.
    /// Starting a new sandbox here would run the pod twice; re-adopting such a pod is a
    /// matter of its own, not of recovery after a reboot. It stays `Unknown`, as before.
    SupervisorLostThisBoot,
}

/// Whether the pod's processes were lost to a reboot: the boot recorded with its state is not
/// this one; a record without a boot id (written before peapod recorded it) counts as lost
/// when its runtime directory is gone, which only a reboot (or someone clearing /run) does.
pub fn lost_to_reboot(state: &PodState, boot_id: &str, run_dir_exists: bool) -> bool {
    match state.boot_id.as_deref() {
        Some(recorded) => recorded != boot_id,
        None => !run_dir_exists,
    }
}

/// What the agent does with one pod when it starts in boot `boot_id`.
pub fn after_boot(f: &PodFacts, boot_id: &str) -> AfterBoot {
    let Some(state) = f.state else {
        return AfterBoot::Leave(Leave::NoState);
    };
    if state.finished {
        return AfterBoot::Leave(Leave::Finished);
    }
    if f.supervisor_alive {
        return AfterBoot::Leave(Leave::SupervisorAlive);
    }
    if !lost_to_reboot(state, boot_id, f.run_dir_exists) {
        return AfterBoot::Leave(Leave::SupervisorLostThisBoot);
    }
    if f.deleting {
        AfterBoot::FinishDelete
    } else {
        AfterBoot::Recover
    }
}

/// One container as the earlier boot left its record.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerBefore<'a> {
    /// Its entry in the last status.json.
    pub status: Option<&'a ContainerStatus>,
    /// Its last instance in state.json (recorded before it was made; `process` once started).
    pub instance: Option<&'a ContainerState>,
}

/// The container's history once the boot took its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Instances started so far (the next one's restartCount).
    pub instances: u32,
    /// How the last instance ended; None if none ever started.
    pub last: Option<Terminated>,
    /// The termination before it.
    pub before_last: Option<Terminated>,
    /// The last instance was running when the host went down (ended `Unknown`, 255).
    pub lost: bool,
    pub image_id: String,
}

/// A recorded `terminated` state as the lifecycle model's `Terminated`.
pub(crate) fn terminated(t: &ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| s.0),
        finished_at: t
            .finished_at
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |f| f.0),
        container_id: t.container_id.clone().unwrap_or_default(),
    }
}

/// The container's history after a reboot at `now`: a running instance (or one started that
/// the status had not shown yet) ended with the runtime's `Unknown` 255, finished now, the
/// termination it showed before becoming the one before last; an ended one keeps its record.
pub fn restore_container(before: ContainerBefore, now: Timestamp) -> Restored {
    let status = before.status;
    let state = status.and_then(|s| s.state.as_ref());
    let last_state = status
        .and_then(|s| s.last_state.as_ref())
        .and_then(|l| l.terminated.as_ref())
        .map(terminated);
    let count = status.map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0));
    let running = state.and_then(|s| s.running.as_ref());
    let ended = state.and_then(|s| s.terminated.as_ref());
    // Instances the status accounts for: none only while the first one was never started.
    let shown = if running.is_some() || ended.is_some() || last_state.is_some() || count > 0 {
        count + 1
    } else {
        0
    };
    // An instance is on record once it is being made, and started once its process is.
    let recorded = before
        .instance
        .map_or(0, |i| i.restart_count + u32::from(i.process.is_some()));
    let instances = shown.max(recorded);
    let image_id = status.map(|s| s.image_id.clone()).unwrap_or_default();
    if running.is_some() || recorded > shown {
        let container_id = status
            .and_then(|s| s.container_id.clone())
            .filter(|_| running.is_some())
            .unwrap_or_else(|| {
                before.instance.map_or(String::new(), |i| {
                    format!("{}{}", crate::pod::model::CONTAINER_ID_SCHEME, i.id)
                })
            });
        let lost = Terminated {
            exit_code: UNKNOWN_EXIT_CODE,
            signal: None,
            reason: REASON_UNKNOWN.to_string(),
            message: None,
            started_at: running.and_then(|r| r.started_at.as_ref()).map(|t| t.0),
            finished_at: now,
            container_id,
        };
        // The instance shown running had the status's lastState before it; one that was
        // still starting had the status's own termination (or lastState) before it.
        let before_last = if running.is_some() {
            last_state
        } else {
            ended.map(terminated).or(last_state)
        };
        return Restored {
            instances,
            last: Some(lost),
            before_last,
            lost: true,
            image_id,
        };
    }
    let (last, before_last) = match ended {
        Some(t) => (Some(terminated(t)), last_state),
        None => (last_state, None),
    };
    Restored {
        instances,
        last,
        before_last,
        lost: false,
        image_id,
    }
}

#[cfg(test)]
#[path = "reboot_tests.rs"]
mod tests;
