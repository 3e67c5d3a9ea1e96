//! A pod whose supervisor was killed, taken over by the new one its keeper starts
//! (`pod::keeper`), as plain decisions: whether the pod can be adopted ([`may_adopt`]) and what
//! each container's record and live process say it is now ([`adopt_container`]). No process or
//! file of its own: `supervisor::adopt` gathers the facts and applies the result, and the
//! decisions are unit-tested without root.
//!
//! The model is containerd's shim outliving a restarted kubelet: the containers run on, and the
//! new supervisor takes up each one as it is: the same instance (restartCount), the same start
//! time, its readiness as recorded. An instance that ended while no supervisor ran ends with the
//! exit status the keeper collected; one whose end nobody saw (the killed supervisor reaped it
//! and died before recording it) ends with the runtime's `Unknown` 255, as after a reboot
//! (`pod::reboot`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};

use crate::pod::model::{Terminated, CONTAINER_ID_SCHEME, PHASE_FAILED, PHASE_SUCCEEDED};
use crate::pod::phase::CONDITION_READY_TO_START;
use crate::pod::reboot::{restore_container, ContainerBefore, Restored};
use crate::pod::record::{ContainerState, PodState};

/// What the new supervisor knows of the pod when it starts.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    pub state: Option<&'a PodState>,
    pub status: Option<&'a PodStatus>,
    /// This boot's id.
    pub boot_id: &'a str,
    /// delete.json exists.
    pub deleting: bool,
}

/// Why a pod is not adopted: its new supervisor leaves it as a killed one left it (`Unknown`
/// until deleted), which is what every pod was before re-adoption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No state.json or status.json: the killed supervisor had not started the pod.
    NoRecord,
    /// Finished: nothing of it runs.
    Finished,
    /// The record is of another boot: that is recovery after a reboot (`pod::reboot`).
    OtherBoot,
    /// A delete was under way: `delete` finishes it from the record.
    Deleting,
    /// The pod's phase was terminal: it was ending.
    Ending,
    /// The sandbox was not ready (being made, lost, or stopped): nothing safe to take up. (A
    /// ready sandbox whose pause process died meanwhile is adopted, then lost as usual.)
    SandboxNotReady,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoRecord => "the pod was not started yet",
            Refusal::Finished => "the pod finished",
            Refusal::OtherBoot => "the record is of another boot",
            Refusal::Deleting => "the pod is being deleted",
            Refusal::Ending => "the pod was ending",
            Refusal::SandboxNotReady => "the sandbox was not ready",
        }
    }
}

/// Whether the pod can be taken over as it runs.
pub fn may_adopt(f: &PodFacts) -> Result<(), Refusal> {
    let (Some(state), Some(status)) = (f.state, f.status) else {
        return Err(Refusal::NoRecord);
    };
    if state.finished {
        return Err(Refusal::Finished);
    }
    if state.boot_id.as_deref() != Some(f.boot_id) {
        return Err(Refusal::OtherBoot);
    }
    if f.deleting {
        return Err(Refusal::Deleting);
    }
    if status
        .phase
        .as_deref()
        .is_some_and(|p| p == PHASE_SUCCEEDED || p == PHASE_FAILED)
    {
        return Err(Refusal::Ending);
    }
    let sandbox_ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == CONDITION_READY_TO_START && c.status == "True");
    if !sandbox_ready || state.sandbox.process.is_none() {
        return Err(Refusal::SandboxNotReady);
    }
    Ok(())
}

/// One container as the killed supervisor left it, and its process now.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerFacts<'a> {
    /// Its entry in the last status.json.
    pub status: Option<&'a ContainerStatus>,
    /// Its last instance in state.json.
    pub instance: Option<&'a ContainerState>,
    /// The instance's recorded process still runs (pid and start time).
    pub alive: bool,
    /// Its exit as the keeper collected it: (exit code, signal).
    pub exit: Option<(i32, Option<i32>)>,
}

/// A running instance taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub restart_count: u32,
    pub container_id: String,
    /// None when it started after the last status was written (then: now).
    pub started_at: Option<Timestamp>,
    pub started: bool,
    pub ready: bool,
    /// How the instance before it ended.
    pub last: Option<Terminated>,
    /// The termination before that one.
    pub before_last: Option<Terminated>,
    pub image_id: String,
}

/// How an instance that was running ended while no supervisor watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The keeper collected it: its exit code (128 + N for signal N) and signal.
    Seen { code: i32, signal: Option<i32> },
    /// Nobody recorded it: `Unknown`, 255.
    Unseen,
}

/// What a container is once adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// Its instance runs: supervised on as it is.
    Running(Taken),
    /// Its instance was running and has ended since: taken over, then its end goes through the
    /// usual exit path (termination, restart rules, back-off).
    EndedMeanwhile(Taken, Ended),
    /// It was not running: its history as recorded, and the restart rules decide what follows.
    NotRunning(Restored),
}

/// What one container is once its pod is adopted.
pub fn adopt_container(f: ContainerFacts, now: Timestamp) -> Adopted {
    let status = f.status;
    let count = status.map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0));
    let running = status
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.running.as_ref());
    let started_process = f.instance.filter(|i| i.process.is_some());
    let Some(instance) = started_process else {
        return Adopted::NotRunning(restore_container(
            ContainerBefore {
                status,
                instance: f.instance,
            },
            now,
        ));
    };
    // The instance the status shows running, or one started after the status was written.
    let shown_running = running.is_some() && count == instance.restart_count;
    let restored = restore_container(
        ContainerBefore {
            status,
            instance: f.instance,
        },
        now,
    );
    let newer = restored.lost && !shown_running;
    if !shown_running && !newer {
        return Adopted::NotRunning(restored);
    }
    let last_state = status
        .and_then(|s| s.last_state.as_ref())
        .and_then(|l| l.terminated.as_ref())
        .map(crate::pod::reboot::terminated);
    let taken = Taken {
        restart_count: instance.restart_count,
        container_id: format!("{CONTAINER_ID_SCHEME}{}", instance.id),
        started_at: running
            .filter(|_| shown_running)
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0),
        started: shown_running && status.and_then(|s| s.started).unwrap_or(false),
        ready: shown_running && status.is_some_and(|s| s.ready),
        last: if shown_running {
            last_state
        } else {
            restored.before_last.clone()
        },
        before_last: None,
        image_id: restored.image_id.clone(),
    };
    match (f.alive, f.exit) {
        (true, _) => Adopted::Running(taken),
        (false, Some((code, signal))) => {
            Adopted::EndedMeanwhile(taken, Ended::Seen { code, signal })
        }
        (false, None) => Adopted::EndedMeanwhile(taken, Ended::Unseen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::record::ProcessRef;

    fn status(json: serde_json::Value) -> ContainerStatus {
        serde_json::from_value(json).unwrap()
    }

    fn instance(restart_count: u32, started: bool) -> ContainerState {
        ContainerState {
            id: "abc".into(),
            restart_count,
            process: started.then_some(ProcessRef {
                pid: 10,
                start_time: 5,
            }),
            ..Default::default()
        }
    }

    fn running(restart_count: u32) -> ContainerStatus {
        status(serde_json::json!({
            "name": "app", "image": "busybox", "imageID": "busybox@sha256:1",
            "ready": true, "started": true, "restartCount": restart_count,
            "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error",
                "finishedAt": "2023-12-31T23:59:00Z"}}
        }))
    }

    fn pod_state() -> PodState {
        PodState {
            boot_id: Some("b".into()),
            sandbox: crate::pod::record::SandboxState {
                process: Some(ProcessRef {
                    pid: 9,
                    start_time: 1,
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod_status(phase: &str, ready: &str) -> PodStatus {
        serde_json::from_value(serde_json::json!({
            "phase": phase,
            "conditions": [{"type": "PodReadyToStartContainers", "status": ready}]
        }))
        .unwrap()
    }

    #[test]
    fn a_running_pod_of_this_boot_is_adopted_and_others_are_not() {
        let (state, status) = (pod_state(), pod_status("Running", "True"));
        let facts = PodFacts {
            state: Some(&state),
            status: Some(&status),
            boot_id: "b",
            deleting: false,
        };
        assert_eq!(may_adopt(&facts), Ok(()));
        let refused = |f: PodFacts| may_adopt(&f).unwrap_err();
        assert_eq!(
            refused(PodFacts {
                status: None,
                ..facts
            }),
            Refusal::NoRecord
        );
        assert_eq!(
            refused(PodFacts {
                boot_id: "c",
                ..facts
            }),
            Refusal::OtherBoot
        );
        assert_eq!(
            refused(PodFacts {
                deleting: true,
                ..facts
            }),
            Refusal::Deleting
        );
        let no_pause = PodState {
            sandbox: Default::default(),
            ..pod_state()
        };
        assert_eq!(
            refused(PodFacts {
                state: Some(&no_pause),
                ..facts
            }),
            Refusal::SandboxNotReady
        );
        let making = pod_status("Pending", "False");
        assert_eq!(
            refused(PodFacts {
                status: Some(&making),
                ..facts
            }),
            Refusal::SandboxNotReady
        );
        let failed = pod_status("Failed", "True");
        assert_eq!(
            refused(PodFacts {
                status: Some(&failed),
                ..facts
            }),
            Refusal::Ending
        );
        let finished = PodState {
            finished: true,
            ..pod_state()
        };
        assert_eq!(
            refused(PodFacts {
                state: Some(&finished),
                ..facts
            }),
            Refusal::Finished
        );
    }

    #[test]
    fn a_running_instance_is_taken_over_as_it_is() {
        let (s, i) = (running(2), instance(2, true));
        let facts = ContainerFacts {
            status: Some(&s),
            instance: Some(&i),
            alive: true,
            exit: None,
        };
        let Adopted::Running(t) = adopt_container(facts, Timestamp::UNIX_EPOCH) else {
            panic!("not running");
        };
        assert_eq!(t.restart_count, 2);
        assert_eq!(t.container_id, "peapod://abc");
        assert_eq!(
            t.started_at.map(|t| t.to_string()).as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        assert!(t.started && t.ready);
        assert_eq!(t.last.map(|l| l.exit_code), Some(3));
        assert_eq!(t.image_id, "busybox@sha256:1");
    }

    #[test]
    fn an_instance_that_ended_meanwhile_keeps_the_code_the_keeper_saw() {
        let (s, i) = (running(0), instance(0, true));
        let facts = ContainerFacts {
            status: Some(&s),
            instance: Some(&i),
            alive: false,
            exit: Some((7, None)),
        };
        assert!(matches!(
            adopt_container(facts, Timestamp::UNIX_EPOCH),
            Adopted::EndedMeanwhile(t, Ended::Seen { code: 7, signal: None }) if t.restart_count == 0
        ));
        let unseen = ContainerFacts {
            exit: None,
            ..facts
        };
        assert!(matches!(
            adopt_container(unseen, Timestamp::UNIX_EPOCH),
            Adopted::EndedMeanwhile(_, Ended::Unseen)
        ));
    }

    #[test]
    fn an_instance_started_after_the_last_status_is_taken_over_too() {
        // The status still shows the instance before (restartCount 0, in back-off).
        let s = status(serde_json::json!({
            "name": "app", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "finishedAt": "2024-01-01T00:00:00Z"}}
        }));
        let i = instance(1, true);
        let facts = ContainerFacts {
            status: Some(&s),
            instance: Some(&i),
            alive: true,
            exit: None,
        };
        let Adopted::Running(t) = adopt_container(facts, Timestamp::UNIX_EPOCH) else {
            panic!("not running");
        };
        assert_eq!((t.restart_count, t.started_at, t.ready), (1, None, false));
        assert_eq!(t.last.map(|l| l.exit_code), Some(1));
    }

    #[test]
    fn an_ended_or_unstarted_container_keeps_its_history() {
        let s = status(serde_json::json!({
            "name": "app", "image": "busybox", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                "finishedAt": "2024-01-01T00:00:00Z"}}
        }));
        let i = instance(1, true);
        let facts = ContainerFacts {
            status: Some(&s),
            instance: Some(&i),
            alive: false,
            exit: None,
        };
        let Adopted::NotRunning(r) = adopt_container(facts, Timestamp::UNIX_EPOCH) else {
            panic!("taken as running");
        };
        assert_eq!((r.instances, r.lost), (2, false));
        assert_eq!(r.last.map(|l| l.reason), Some("Completed".into()));
        let never = ContainerFacts::default();
        let Adopted::NotRunning(r) = adopt_container(never, Timestamp::UNIX_EPOCH) else {
            panic!("taken as running");
        };
        assert_eq!((r.instances, r.last), (0, None));
    }
}
