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
//!
//! A pod made through the CRI is the kubelet's to bring back, not the agent's: its sandbox
//! stays down ([`AfterBoot::KeepDown`]) and its record is settled to what containerd reports
//! after a reboot ([`settle_cri`]): the sandbox NOTREADY, a container that was running EXITED
//! with 255 `Unknown`, one that had ended as it ended. The kubelet then stops and removes that
//! sandbox and makes a new one, attempt + 1 [kuberuntime util.go PodSandboxChanged].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, PodStatus};

use crate::pod::machine::{Kind, RestartPolicy};
use crate::pod::model::{ContainerView, PodView, RunState, Terminated};
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
    /// The pod is a CRI sandbox (`pod::control::is_cri`): its client brings it back.
    pub cri: bool,
}

/// What the agent does with a pod when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBoot {
    /// Its processes were lost to a reboot: a supervisor starts it again in a new sandbox.
    Recover,
    /// Lost to a reboot while being deleted: the delete is finished from its record.
    FinishDelete,
    /// A CRI sandbox lost to a reboot: nothing is started; its record is settled to what the
    /// reboot left ([`settle_cri`]) and the CRI client (the kubelet) stops, removes and
    /// re-creates it, as it does with containerd's sandboxes after a reboot.
    KeepDown,
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
    } else if f.cri {
        AfterBoot::KeepDown
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

/// A CRI sandbox's record once settled after a reboot ([`settle_cri`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// No process recorded any more (they ended with the boot); the host resources the pod
    /// still holds (IP, host ports, volumes, bundles) stay recorded for StopPodSandbox to
    /// release. The boot id stays the earlier boot's: that is where its processes ran.
    pub state: PodState,
    /// The containers that were running ended 255 `Unknown`, the sandbox not ready, the
    /// phase and conditions as the kubelet computes them from that; None if it had none.
    pub status: Option<PodStatus>,
    /// The containers that were running when the host went down.
    pub lost: Vec<String>,
}

/// A recorded container status as the lifecycle model's view (an app container).
fn view_of(s: &ContainerStatus) -> ContainerView {
    let mut view = ContainerView::new(
        &s.name,
        Kind::App,
        &s.image,
        crate::pod::model::REASON_CONTAINER_CREATING,
    );
    view.image_id = s.image_id.clone();
    view.restart_count = u32::try_from(s.restart_count).unwrap_or(0);
    view.ready = s.ready;
    view.started = s.started.unwrap_or(false);
    view.last_terminated = s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .map(terminated);
    let state = s.state.as_ref();
    if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
        view.state = RunState::Terminated(terminated(t));
    } else if let Some(r) = state.and_then(|st| st.running.as_ref()) {
        view.state = RunState::Running {
            started_at: r.started_at.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            container_id: s.container_id.clone().unwrap_or_default(),
        };
    } else if let Some(w) = state.and_then(|st| st.waiting.as_ref()) {
        view.state = RunState::Waiting {
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone(),
        };
    }
    view
}

/// What a reboot at `now` left of a CRI sandbox whose records are `state` and `status`, or
/// None when they say so already (settled by an earlier start of the agent in this boot).
///
/// As containerd's recovery finds its containers [internal/cri/server/restart.go
/// loadContainer]: one whose task is gone while its checkpoint says running is EXITED, exit
/// code 255, reason `Unknown`, finished at the recovery; an exited one keeps its status; one
/// created and never started stays so (the CRI record says CREATED). The sandbox has no
/// process left: NOTREADY, as containerd's with a stopped or missing task.
pub fn settle_cri(state: &PodState, status: Option<&PodStatus>, now: Timestamp) -> Option<Settled> {
    let recorded = state.supervisor.is_some()
        || state.keeper.is_some()
        || state.sandbox.process.is_some()
        || state.containers.values().any(|c| c.process.is_some());
    let running = |s: &&ContainerStatus| s.state.as_ref().is_some_and(|st| st.running.is_some());
    let shown_running = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| running(&c)));
    if !recorded && !shown_running {
        return None;
    }
    let mut settled = state.clone();
    settled.supervisor = None;
    settled.keeper = None;
    settled.sandbox.process = None;
    let mut lost = Vec::new();
    let mut app = Vec::new();
    for s in status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
    {
        let mut view = view_of(s);
        if running(&s) {
            let before = ContainerBefore {
                status: Some(s),
                instance: state.containers.get(&s.name),
            };
            if let Some(last) = restore_container(before, now).last {
                view.state = RunState::Terminated(last);
            }
            view.ready = false;
            view.started = false;
            lost.push(s.name.clone());
            if let Some(c) = settled.containers.get_mut(&s.name) {
                c.finished_at_ns = Some(now.as_nanosecond() as i64);
            }
        }
        app.push(view);
    }
    for c in settled.containers.values_mut() {
        c.process = None;
    }
    let status = status.map(|old| {
        let view = PodView {
            app,
            policy: RestartPolicy::Never,
            pod_ip: old.pod_ip.as_deref().and_then(|ip| ip.parse().ok()),
            host_ip: old.host_ip.clone(),
            start_time: old.start_time.as_ref().map(|t| t.0),
            qos_class: old.qos_class.clone().unwrap_or_default(),
            sandbox_ready: false,
            ..Default::default()
        };
        crate::pod::model::pod_status(&view, Some(old), now)
    });
    Some(Settled {
        state: settled,
        status,
        lost,
    })
}

#[cfg(test)]
#[path = "reboot_tests.rs"]
mod tests;
