use super::*;
use crate::pod::machine::{restarts, Kind, RestartPolicy, StopCause};
use crate::pod::record::ProcessRef;
use k8s_openapi::api::core::v1::PodStatus;

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
        cri: false,
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
fn a_cri_sandbox_lost_to_a_reboot_stays_down_for_its_client() {
    let old = state(Some("boot-1"));
    let cri = PodFacts {
        cri: true,
        ..facts(Some(&old))
    };
    assert_eq!(after_boot(&cri, "boot-2"), AfterBoot::KeepDown);
    // The same rules as any pod's otherwise: alive, this boot, finished, being deleted.
    assert_eq!(
        after_boot(&cri, "boot-1"),
        AfterBoot::Leave(Leave::SupervisorLostThisBoot)
    );
    let alive = PodFacts {
        supervisor_alive: true,
        ..cri
    };
    assert_eq!(
        after_boot(&alive, "boot-2"),
        AfterBoot::Leave(Leave::SupervisorAlive)
    );
    let stopped = PodState {
        finished: true,
        ..old.clone()
    };
    let stopped_facts = PodFacts {
        state: Some(&stopped),
        ..cri
    };
    assert_eq!(
        after_boot(&stopped_facts, "boot-2"),
        AfterBoot::Leave(Leave::Finished)
    );
    let removing = PodFacts {
        deleting: true,
        ..cri
    };
    assert_eq!(after_boot(&removing, "boot-2"), AfterBoot::FinishDelete);
}

fn process() -> Option<ProcessRef> {
    Some(ProcessRef {
        pid: 7,
        start_time: 7,
    })
}

/// A CRI sandbox as the earlier boot left it: `run` running, `done` exited 3, `made` created
/// and never started; the pod Running and ready, with its IP.
fn cri_records() -> (PodState, PodStatus) {
    let mut st = state(Some("boot-1"));
    st.supervisor = process();
    st.keeper = process();
    st.sandbox.process = process();
    st.sandbox.ip = Some("10.88.0.9".parse().unwrap());
    st.pod_cgroup = Some("/sys/fs/cgroup/peapod/pod-u".into());
    st.containers.insert("run".into(), instance(0, true));
    let mut done = instance(0, false);
    done.finished_at_ns = Some(1_700_000_000_123_456_789);
    st.containers.insert("done".into(), done);
    let ready = |t: &str| {
        serde_json::json!({"type": t, "status": "True",
        "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    let status: PodStatus = serde_json::from_value(serde_json::json!({
        "phase": "Running",
        "podIP": "10.88.0.9",
        "hostIP": "10.0.0.1",
        "startTime": "2026-01-01T00:00:00Z",
        "qosClass": "BestEffort",
        "conditions": [ready("PodReadyToStartContainers"), ready("Initialized"),
            ready("Ready"), ready("ContainersReady"), ready("PodScheduled")],
        "containerStatuses": [
            status(serde_json::json!({"name": "run", "ready": true, "started": true,
                "containerID": "peapod://run",
                "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}})),
            status(serde_json::json!({"name": "done", "containerID": "peapod://done",
                "state": {"terminated": {"exitCode": 3, "reason": "Error",
                    "startedAt": "2026-01-01T00:00:01Z",
                    "finishedAt": "2026-01-01T00:00:03Z", "containerID": "peapod://done"}}})),
            status(serde_json::json!({"name": "made",
                "state": {"waiting": {"reason": "ContainerCreating"}}})),
        ]
    }))
    .unwrap();
    (st, status)
}

#[test]
fn a_cri_sandbox_is_settled_as_containerd_finds_it_after_a_reboot() {
    let (st, before) = cri_records();
    let s = settle_cri(&st, Some(&before), now()).expect("something to settle");
    assert_eq!(s.lost, vec!["run".to_string()]);
    // No process is recorded any more; what it holds on the host stays for its stop.
    assert_eq!(s.state.supervisor, None);
    assert_eq!(s.state.keeper, None);
    assert_eq!(s.state.sandbox.process, None);
    assert!(s.state.containers.values().all(|c| c.process.is_none()));
    assert_eq!(s.state.sandbox.ip, st.sandbox.ip);
    assert_eq!(s.state.pod_cgroup, st.pod_cgroup);
    assert_eq!(s.state.boot_id.as_deref(), Some("boot-1"));
    assert!(!s.state.finished, "its host resources are not released yet");
    // The running one: 255 Unknown, ended at the recovery (ns for the CRI too).
    let after = s.status.expect("a status");
    let of = |name: &str| {
        after
            .container_statuses
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    let run = of("run");
    let t = run.state.as_ref().unwrap().terminated.clone().unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (255, Some("Unknown")));
    assert_eq!(t.finished_at.unwrap().0, now());
    assert_eq!(t.started_at.unwrap().0.to_string(), "2026-01-01T00:00:02Z");
    assert_eq!(t.container_id.as_deref(), Some("peapod://run"));
    assert!(!run.ready);
    assert_eq!(
        s.state.containers["run"].finished_at_ns,
        Some(now().as_nanosecond() as i64)
    );
    // The exited one as it ended; the created one as it was.
    let done = of("done").state.unwrap().terminated.unwrap();
    assert_eq!((done.exit_code, done.reason.as_deref()), (3, Some("Error")));
    assert_eq!(
        done.finished_at.unwrap().0.to_string(),
        "2026-01-01T00:00:03Z"
    );
    assert_eq!(
        s.state.containers["done"].finished_at_ns,
        Some(1_700_000_000_123_456_789)
    );
    assert!(of("made").state.unwrap().waiting.is_some());
    // The pod: not ready, its sandbox gone; its IP, start and scheduling kept.
    let cond = |t: &str| {
        after
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
            .clone()
    };
    for t in ["PodReadyToStartContainers", "Ready", "ContainersReady"] {
        assert_eq!(cond(t).status, "False", "{t}");
        assert_eq!(cond(t).last_transition_time.unwrap().0, now(), "{t}");
    }
    assert_eq!(cond("PodScheduled").status, "True");
    assert_eq!(
        cond("PodScheduled")
            .last_transition_time
            .unwrap()
            .0
            .to_string(),
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(after.pod_ip.as_deref(), Some("10.88.0.9"));
    assert_eq!(after.host_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(after.start_time, before.start_time);
    // `made` never ran: the kubelet's phase is Pending while a container waits.
    assert_eq!(after.phase.as_deref(), Some("Pending"));
    // Once settled, a later start of the agent in this boot finds nothing to do.
    assert_eq!(settle_cri(&s.state, Some(&after), now()), None);
}

#[test]
fn a_settled_cri_sandbox_whose_containers_all_ended_has_failed() {
    let (st, mut before) = cri_records();
    before
        .container_statuses
        .as_mut()
        .unwrap()
        .retain(|c| c.name != "made");
    let s = settle_cri(&st, Some(&before), now()).unwrap();
    let after = s.status.unwrap();
    // 255 and 3 under Never: Failed, as the kubelet's getPhase says.
    assert_eq!(after.phase.as_deref(), Some("Failed"));
    // A sandbox that never recorded a status: only its state is settled.
    let bare = settle_cri(&st, None, now()).unwrap();
    assert_eq!((bare.status, bare.lost.len()), (None, 0));
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
