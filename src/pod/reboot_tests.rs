use super::*;
use crate::pod::machine::{restarts, Kind, RestartPolicy, StopCause};
use crate::pod::record::ProcessRef;

fn state(boot: Option<&str>) -> PodState {
    PodState {
        uid: "u".into(),
        boot_id: boot.map(str::to_string),
        ..Default::default()
    }
}

fn facts(state: Option<&PodState>) -> PodFacts<'_> {
    PodFacts {
        state,
        supervisor_alive: false,
        run_dir_exists: false,
        deleting: false,
    }
}

#[test]
fn only_pods_whose_boot_is_gone_are_recovered() {
    let old = state(Some("boot-1"));
    assert_eq!(after_boot(&facts(Some(&old)), "boot-2"), AfterBoot::Recover);
    // Killed in this boot: left to re-adoption, not run twice.
    assert_eq!(
        after_boot(&facts(Some(&old)), "boot-1"),
        AfterBoot::Leave(Leave::SupervisorLostThisBoot)
    );
    let alive = PodFacts {
        supervisor_alive: true,
        ..facts(Some(&old))
    };
    assert_eq!(
        after_boot(&alive, "boot-2"),
        AfterBoot::Leave(Leave::SupervisorAlive)
    );
    let finished = PodState {
        finished: true,
        ..old.clone()
    };
    assert_eq!(
        after_boot(&facts(Some(&finished)), "boot-2"),
        AfterBoot::Leave(Leave::Finished)
    );
    assert_eq!(
        after_boot(&facts(None), "boot-2"),
        AfterBoot::Leave(Leave::NoState)
    );
    let deleting = PodFacts {
        deleting: true,
        ..facts(Some(&old))
    };
    assert_eq!(after_boot(&deleting, "boot-2"), AfterBoot::FinishDelete);
}

#[test]
fn a_record_without_a_boot_id_is_lost_only_when_its_run_dir_is_gone() {
    let legacy = state(None);
    assert_eq!(after_boot(&facts(Some(&legacy)), "b"), AfterBoot::Recover);
    let kept = PodFacts {
        run_dir_exists: true,
        ..facts(Some(&legacy))
    };
    assert_eq!(
        after_boot(&kept, "b"),
        AfterBoot::Leave(Leave::SupervisorLostThisBoot)
    );
    // A recorded boot decides, whatever /run holds.
    let old = state(Some("a"));
    let with_dir = PodFacts {
        run_dir_exists: true,
        ..facts(Some(&old))
    };
    assert_eq!(after_boot(&with_dir, "b"), AfterBoot::Recover);
}

fn status(v: serde_json::Value) -> ContainerStatus {
    let mut base = serde_json::json!({"name": "c", "image": "i", "imageID": "img@sha256:1",
        "ready": false, "restartCount": 0});
    base.as_object_mut()
        .unwrap()
        .extend(v.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn instance(attempt: u32, started: bool) -> ContainerState {
    ContainerState {
        id: "abc".into(),
        restart_count: attempt,
        process: started.then_some(ProcessRef {
            pid: 1,
            start_time: 1,
        }),
        ..Default::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn restore(status: &ContainerStatus, instance: &ContainerState) -> Restored {
    let before = ContainerBefore {
        status: Some(status),
        instance: Some(instance),
    };
    restore_container(before, now())
}

#[test]
fn a_running_container_ends_unknown_255_and_keeps_its_count() {
    let s = status(serde_json::json!({
        "restartCount": 2,
        "containerID": "peapod://run",
        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
            "finishedAt": "2025-12-31T00:00:00Z", "containerID": "peapod://old"}}
    }));
    let inst = instance(2, true);
    let r = restore(&s, &inst);
    assert_eq!(r.instances, 3, "the next instance is restartCount 3");
    assert!(r.lost);
    let last = r.last.unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (255, "Unknown"));
    assert_eq!(last.container_id, "peapod://run");
    assert_eq!(last.finished_at, now());
    assert_eq!(last.started_at.unwrap().to_string(), "2026-01-01T00:00:00Z");
    assert_eq!(r.before_last.unwrap().exit_code, 1);
    assert_eq!(r.image_id, "img@sha256:1");
}

#[test]
fn a_completed_container_keeps_its_termination() {
    let s = status(serde_json::json!({
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "finishedAt": "2026-01-01T00:00:01Z"}}
    }));
    let inst = instance(0, true);
    let r = restore(&s, &inst);
    assert_eq!(r.instances, 1);
    assert!(!r.lost);
    let last = r.last.unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (0, "Completed"));
    assert_eq!(r.before_last, None);
}

#[test]
fn a_container_in_back_off_keeps_its_last_exit() {
    let s = status(serde_json::json!({
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error",
            "finishedAt": "2026-01-01T00:00:01Z"}}
    }));
    let inst = instance(4, true);
    let r = restore(&s, &inst);
    assert_eq!(r.instances, 5);
    assert!(!r.lost);
    assert_eq!(r.last.unwrap().exit_code, 3);
}

#[test]
fn a_container_that_never_started_has_no_history() {
    let s = status(serde_json::json!({"state": {"waiting": {"reason": "ContainerCreating"}}}));
    // Being made when the host went down: on record, never started.
    let inst = instance(0, false);
    let r = restore(&s, &inst);
    assert_eq!((r.instances, r.last, r.lost), (0, None, false));
    let none = restore_container(ContainerBefore::default(), now());
    assert_eq!((none.instances, none.last, none.lost), (0, None, false));
}

#[test]
fn an_instance_started_but_not_yet_shown_is_lost_too() {
    // The status still shows the instance before (Completed, about to restart under Always)
    // while the next one had started: that one ran when the host went down.
    let s = status(serde_json::json!({
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "finishedAt": "2026-01-01T00:00:01Z"}}
    }));
    let inst = instance(1, true);
    let r = restore(&s, &inst);
    assert_eq!(r.instances, 2);
    assert!(r.lost);
    assert_eq!(r.last.as_ref().unwrap().container_id, "peapod://abc");
    assert_eq!(r.before_last.unwrap().reason, "Completed");
}

#[test]
fn after_a_reboot_the_policy_decides_who_runs_again() {
    let lost = UNKNOWN_EXIT_CODE;
    let again = |kind, policy, code| restarts(kind, policy, code, Some(StopCause::SandboxLost));
    // A container running at the reboot: again under Always and OnFailure, not under Never.
    assert!(again(Kind::App, RestartPolicy::Always, lost));
    assert!(again(Kind::App, RestartPolicy::OnFailure, lost));
    assert!(!again(Kind::App, RestartPolicy::Never, lost));
    // One that had completed stays completed under OnFailure.
    assert!(!again(Kind::App, RestartPolicy::OnFailure, 0));
    assert!(again(Kind::App, RestartPolicy::Always, 0));
}
