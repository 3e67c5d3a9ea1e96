//! The lifecycle decisions, one kubelet rule per test.

use std::time::{Duration, Instant};

use super::order::{
    advance, completion, deadline_after, may_start, past_deadline, recreate_sandbox, stop_turn,
};
use super::*;
use crate::pod::backoff::RestartBackoff;

use Kind::{App, Init, Sidecar};
use RestartPolicy::{Always, Never, OnFailure};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn e(kind: Kind, brief: Brief) -> Entry {
    Entry { kind, brief }
}

const RUNNING: Brief = Brief::Running { started: true };
const NOT_STARTED: Brief = Brief::Running { started: false };
const OK: Brief = Brief::Done { code: Some(0) };
const FAILED: Brief = Brief::Done { code: Some(1) };

#[test]
fn app_containers_follow_the_pod_restart_policy() {
    assert!(restarts(App, Always, 0, None));
    assert!(restarts(App, Always, 1, None));
    assert!(!restarts(App, OnFailure, 0, None));
    assert!(restarts(App, OnFailure, 137, None));
    assert!(!restarts(App, Never, 1, None));
}

#[test]
fn init_containers_run_again_only_after_a_failure_and_not_under_never() {
    assert!(!restarts(Init, Always, 0, None));
    assert!(restarts(Init, Always, 2, None));
    assert!(restarts(Init, OnFailure, 2, None));
    assert!(!restarts(Init, Never, 2, None));
}

#[test]
fn sidecars_restart_whatever_the_pod_policy_until_the_pod_terminates() {
    for policy in [Always, OnFailure, Never] {
        assert!(restarts(Sidecar, policy, 0, None));
        assert!(restarts(Sidecar, policy, 1, None));
        assert!(restarts(Sidecar, policy, 1, Some(StopCause::Liveness)));
        assert!(!restarts(
            Sidecar,
            policy,
            0,
            Some(StopCause::PodTermination)
        ));
    }
}

#[test]
fn a_terminating_pod_restarts_nothing() {
    for kind in [Init, Sidecar, App] {
        assert!(!restarts(
            kind,
            Always,
            137,
            Some(StopCause::PodTermination)
        ));
    }
}

#[test]
fn probe_kills_restart_unless_the_policy_is_never_whatever_the_exit_code() {
    // computePodActions: `restart := shouldRestartOnFailure(pod)`.
    assert!(restarts(App, OnFailure, 0, Some(StopCause::Liveness)));
    assert!(restarts(App, Always, 143, Some(StopCause::Startup)));
    assert!(!restarts(App, Never, 137, Some(StopCause::Liveness)));
}

#[test]
fn a_sandbox_loss_restarts_as_the_policy_says_for_the_exit_code() {
    // A container that exits 0 on SIGTERM under OnFailure has succeeded: not run again.
    assert!(!restarts(App, OnFailure, 0, Some(StopCause::SandboxLost)));
    assert!(restarts(App, OnFailure, 137, Some(StopCause::SandboxLost)));
    assert!(restarts(App, Always, 0, Some(StopCause::SandboxLost)));
    assert!(!restarts(App, Never, 137, Some(StopCause::SandboxLost)));
}

#[test]
fn back_off_is_immediate_then_ten_seconds_doubling_and_applies_after_a_sandbox_loss() {
    let mut b = RestartBackoff::default();
    let exit = Exit {
        code: 1,
        ran_for: secs(1),
    };
    let delays: Vec<Next> = (0..3)
        .map(|_| after_exit(App, Always, exit, None, &mut b))
        .collect();
    assert_eq!(
        delays,
        vec![
            Next::Restart { delay: secs(0) },
            Next::Restart { delay: secs(10) },
            Next::Restart { delay: secs(20) }
        ]
    );
    let lost = after_exit(App, Always, exit, Some(StopCause::SandboxLost), &mut b);
    assert_eq!(lost, Next::Restart { delay: secs(40) });
    // A container that ran more than ten minutes starts afresh.
    let long = Exit {
        code: 1,
        ran_for: secs(601),
    };
    assert_eq!(
        after_exit(App, Always, long, None, &mut b),
        Next::Restart { delay: secs(0) }
    );
    // Done: the back-off is not touched.
    let mut fresh = RestartBackoff::default();
    assert_eq!(after_exit(App, Never, exit, None, &mut fresh), Next::Done);
    assert_eq!(
        after_exit(App, Always, exit, None, &mut fresh),
        Next::Restart { delay: secs(0) }
    );
}

#[test]
fn after_an_exit_the_state_shows_the_termination_or_the_back_off() {
    let now = Instant::now();
    let back_off = |d: Duration| Waiting {
        reason: "CrashLoopBackOff".into(),
        message: Some(format!("{}s", d.as_secs())),
    };
    let s: Lifecycle<()> = Lifecycle::after_exit(Next::Restart { delay: secs(0) }, now, back_off);
    assert!(matches!(s, Lifecycle::Exited { next_start: Some(t) } if t == now));
    let s: Lifecycle<()> = Lifecycle::after_exit(Next::Restart { delay: secs(10) }, now, back_off);
    match s {
        Lifecycle::Waiting {
            waiting,
            next_start,
        } => {
            assert_eq!(waiting.reason, "CrashLoopBackOff");
            assert_eq!(next_start, Some(now + secs(10)));
        }
        other => panic!("{other:?}"),
    }
    let s: Lifecycle<()> = Lifecycle::after_exit(Next::Done, now, back_off);
    assert!(matches!(s, Lifecycle::Done));
}

#[test]
fn a_failed_post_start_shows_post_start_hook_error_until_the_immediate_restart() {
    let now = Instant::now();
    let back_off = |_| Waiting::new("CrashLoopBackOff");
    let error = Waiting {
        reason: "PostStartHookError".into(),
        message: Some("Exec lifecycle hook ([false]) ... failed".into()),
    };
    let restart: Lifecycle<()> =
        Lifecycle::after_exit(Next::Restart { delay: secs(0) }, now, back_off);
    match restart.with_start_error(error.clone()) {
        Lifecycle::Waiting {
            waiting,
            next_start,
        } => {
            assert_eq!(waiting, error);
            assert_eq!(next_start, Some(now));
        }
        other => panic!("{other:?}"),
    }
    // A back-off says CrashLoopBackOff; no restart leaves the termination.
    let later: Lifecycle<()> =
        Lifecycle::after_exit(Next::Restart { delay: secs(10) }, now, back_off);
    assert!(matches!(
        later.with_start_error(error.clone()),
        Lifecycle::Waiting { waiting, .. } if waiting.reason == "CrashLoopBackOff"
    ));
    let done: Lifecycle<()> = Lifecycle::after_exit(Next::Done, now, back_off);
    assert!(matches!(done.with_start_error(error), Lifecycle::Done));
}

#[test]
fn init_containers_start_one_at_a_time_in_order() {
    let mut entries = vec![
        e(Init, Brief::Waiting),
        e(Init, Brief::Waiting),
        e(App, Brief::Waiting),
    ];
    assert_eq!(advance(0, &entries), 0);
    assert!(may_start(0, &entries, 0));
    assert!(!may_start(1, &entries, 0));
    assert!(!may_start(2, &entries, 0));
    entries[0].brief = Brief::Running { started: true };
    assert_eq!(
        advance(0, &entries),
        0,
        "a running init container is not done"
    );
    entries[0].brief = FAILED;
    assert_eq!(advance(0, &entries), 0, "a failed one is not done either");
    entries[0].brief = OK;
    assert_eq!(advance(0, &entries), 1);
    assert!(may_start(1, &entries, 1));
    assert!(
        !may_start(0, &entries, 1),
        "a done init container never runs again"
    );
    entries[1].brief = OK;
    assert_eq!(advance(1, &entries), 2);
    assert!(may_start(2, &entries, 2));
}

#[test]
fn a_pod_without_init_containers_starts_its_app_containers_at_once() {
    let entries = vec![e(App, Brief::Waiting), e(App, Brief::Waiting)];
    assert_eq!(advance(0, &entries), 0);
    assert!(may_start(0, &entries, 0) && may_start(1, &entries, 0));
}

#[test]
fn the_next_init_container_waits_for_a_sidecar_to_be_started() {
    let mut entries = vec![
        e(Sidecar, Brief::Waiting),
        e(Init, Brief::Waiting),
        e(App, Brief::Waiting),
    ];
    assert!(may_start(0, &entries, 0));
    entries[0].brief = Brief::Starting; // postStart still running
    assert_eq!(advance(0, &entries), 0);
    entries[0].brief = NOT_STARTED; // its startup probe has not passed
    assert_eq!(advance(0, &entries), 0);
    assert!(!may_start(1, &entries, 0));
    entries[0].brief = RUNNING;
    assert_eq!(advance(0, &entries), 1);
    assert!(may_start(1, &entries, 1));
    entries[1].brief = OK;
    assert_eq!(advance(1, &entries), 2);
    assert!(may_start(2, &entries, 2));
}

#[test]
fn a_restarting_sidecar_holds_back_nothing_that_already_started() {
    let entries = vec![
        e(Sidecar, Brief::Scheduled), // crashed, in back-off
        e(Init, OK),
        e(App, RUNNING),
    ];
    // Progress was 2 (both init containers did their part); it never goes back.
    assert_eq!(advance(2, &entries), 2);
    assert!(may_start(0, &entries, 2), "the sidecar restarts any time");
    assert!(may_start(2, &entries, 2), "app containers restart too");
    assert!(
        !may_start(1, &entries, 2),
        "a done init container stays done"
    );
}

#[test]
fn the_pod_completes_when_every_app_container_is_done_whatever_the_sidecars_do() {
    let mut entries = vec![
        e(Sidecar, RUNNING),
        e(App, OK),
        e(App, Brief::Running { started: true }),
    ];
    assert_eq!(completion(&entries), None);
    entries[2].brief = FAILED;
    assert_eq!(completion(&entries), Some(Completion::AppsDone));
    entries[2].brief = Brief::Exited; // OnFailure: about to restart
    assert_eq!(completion(&entries), None);
    entries[2].brief = Brief::Scheduled; // in back-off
    assert_eq!(completion(&entries), None);
}

#[test]
fn a_failed_init_container_under_never_completes_the_pod() {
    let entries = vec![e(Init, FAILED), e(App, Brief::Waiting)];
    assert_eq!(completion(&entries), Some(Completion::InitFailed));
    // Under OnFailure it would be Exited or Scheduled instead: not complete.
    let retrying = vec![e(Init, Brief::Scheduled), e(App, Brief::Waiting)];
    assert_eq!(completion(&retrying), None);
}

#[test]
fn sidecars_get_their_stop_signal_after_the_app_containers_in_reverse_order() {
    let mut entries = vec![
        e(Sidecar, Brief::Stopping),
        e(Sidecar, Brief::Stopping),
        e(Init, Brief::Stopping),
        e(App, Brief::Stopping),
    ];
    assert!(stop_turn(3, &entries), "app containers at once");
    assert!(stop_turn(2, &entries), "plain init containers at once");
    assert!(
        !stop_turn(1, &entries),
        "sidecars wait for the app containers"
    );
    assert!(!stop_turn(0, &entries));
    entries[3].brief = Brief::Done { code: Some(143) };
    assert!(stop_turn(1, &entries), "the last sidecar first");
    assert!(!stop_turn(0, &entries), "then the ones before it");
    entries[1].brief = Brief::Done { code: Some(0) };
    assert!(stop_turn(0, &entries));
}

#[test]
fn a_stop_runs_prestop_then_the_signal_then_sigkill_within_the_grace_period() {
    let t0 = Instant::now();
    let mut s = Stop::new(StopCause::PodTermination, t0, secs(30), true);
    assert_eq!(s.step(t0, true), StopStep::Wait, "preStop runs first");
    s.pre_stop = false; // the hook returned
    assert_eq!(s.step(t0 + secs(5), false), StopStep::Wait, "not its turn");
    assert_eq!(s.step(t0 + secs(5), true), StopStep::Signal);
    s.signaled = Some(t0 + secs(5));
    assert_eq!(s.step(t0 + secs(29), true), StopStep::Wait);
    assert_eq!(s.step(t0 + secs(30), true), StopStep::Kill);
    assert_eq!(s.next_due(), Some(t0 + secs(30)));
}

#[test]
fn a_hook_or_a_turn_that_outlasts_the_grace_period_still_gets_the_minimum() {
    let t0 = Instant::now();
    let mut s = Stop::new(StopCause::PodTermination, t0, secs(3), true);
    // The preStop hook hangs: the signal goes at the deadline anyway.
    assert_eq!(s.step(t0 + secs(3), false), StopStep::Signal);
    s.signaled = Some(t0 + secs(3));
    // Then at least two seconds before SIGKILL [minimumGracePeriodInSeconds].
    assert_eq!(s.step(t0 + secs(4), false), StopStep::Wait);
    assert_eq!(s.step(t0 + secs(5), false), StopStep::Kill);
    s.killed = true;
    assert_eq!(s.step(t0 + secs(9), false), StopStep::Wait);
    assert_eq!(s.next_due(), None);
}

#[test]
fn a_forced_stop_kills_at_once_and_skips_prestop() {
    let t0 = Instant::now();
    let mut s = Stop::new(StopCause::PodTermination, t0, Duration::ZERO, true);
    assert!(!s.pre_stop);
    assert_eq!(s.step(t0, false), StopStep::Signal);
    s.signaled = Some(t0);
    assert_eq!(s.step(t0, false), StopStep::Kill);
}

#[test]
fn a_lost_sandbox_is_made_again_unless_the_pod_is_done() {
    let running = vec![e(Init, OK), e(App, Brief::Exited)];
    assert!(recreate_sandbox(Always, &running, true));
    assert!(recreate_sandbox(OnFailure, &running, true));
    // Never: a pod whose containers ran is not run again.
    assert!(!recreate_sandbox(Never, &running, true));
    // ...unless nothing was ever created in it (the sandbox died during a pull).
    assert!(recreate_sandbox(Never, &[e(App, Brief::Waiting)], false));
    // OnFailure: an app container that succeeded is not run again; nothing left to run.
    let succeeded = vec![e(App, OK)];
    assert!(!recreate_sandbox(OnFailure, &succeeded, true));
}

#[test]
fn the_active_deadline_counts_from_the_pod_start_inclusive() {
    assert!(!past_deadline(None, secs(10_000)));
    assert!(!past_deadline(Some(5), secs(4)));
    assert!(past_deadline(Some(5), secs(5)));
    assert_eq!(deadline_after(Some(5)), Some(secs(5)));
    assert_eq!(deadline_after(None), None);
}

#[test]
fn probes_gate_started_and_ready_and_failures_kill() {
    let probes = Probes {
        startup: true,
        readiness: true,
    };
    let mut s: Lifecycle<()> = Lifecycle::started((), false, probes);
    assert!(matches!(
        s,
        Lifecycle::Running {
            started: false,
            ready: false,
            ..
        }
    ));
    // Before the startup probe passes, readiness and liveness do not count.
    assert_eq!(
        s.probe_effect(ProbeKind::Readiness, ProbeResult::Success),
        ProbeEffect::Nothing
    );
    assert_eq!(
        s.probe_effect(ProbeKind::Liveness, ProbeResult::Failure),
        ProbeEffect::Nothing
    );
    let started = s.probe_effect(ProbeKind::Startup, ProbeResult::Success);
    assert_eq!(started, ProbeEffect::Started);
    s.apply_probe(started);
    let ready = s.probe_effect(ProbeKind::Readiness, ProbeResult::Success);
    assert_eq!(ready, ProbeEffect::Ready(true));
    s.apply_probe(ready);
    assert!(matches!(
        s,
        Lifecycle::Running {
            started: true,
            ready: true,
            ..
        }
    ));
    assert_eq!(
        s.probe_effect(ProbeKind::Readiness, ProbeResult::Success),
        ProbeEffect::Nothing,
        "no change, nothing to do"
    );
    assert_eq!(
        s.probe_effect(ProbeKind::Liveness, ProbeResult::Failure),
        ProbeEffect::Kill(StopCause::Liveness)
    );
    let fresh: Lifecycle<()> = Lifecycle::started((), false, probes);
    assert_eq!(
        fresh.probe_effect(ProbeKind::Startup, ProbeResult::Failure),
        ProbeEffect::Kill(StopCause::Startup)
    );
    // No probes: started and ready at once.
    let plain: Lifecycle<()> = Lifecycle::started((), false, Probes::default());
    assert_eq!(plain.brief(None), Brief::Running { started: true });
}

#[test]
fn the_probe_modules_thresholds_drive_the_lifecycle() {
    use crate::probe::{ContainerProbes, ProbeResult as Run, Transition};
    use k8s_openapi::api::core::v1::{Container, ExecAction, Probe};
    let probe = |failure_threshold| Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    };
    let c = Container {
        name: "app".into(),
        startup_probe: Some(probe(1)),
        readiness_probe: Some(probe(1)),
        liveness_probe: Some(probe(2)),
        ..Default::default()
    };
    let mut probes = ContainerProbes::new(&c);
    let gates = Probes {
        startup: true,
        readiness: true,
    };
    let mut s: Lifecycle<()> = Lifecycle::started((), false, gates);
    let t0 = Instant::now();
    probes.on_container_started(t0);
    // Only the startup probe is due before the container has started.
    assert_eq!(probes.due(t0), vec![ProbeKind::Startup]);
    let feed = |s: &mut Lifecycle<()>, probes: &mut ContainerProbes, kind, r: Run| {
        let state = probes.get_mut(kind).unwrap();
        state.on_probe_started(Instant::now());
        let t = state.on_result(&r).transition?;
        let (kind, result) = ProbeResult::of(t);
        let effect = s.probe_effect(kind, result);
        s.apply_probe(effect);
        Some(effect)
    };
    assert_eq!(
        feed(&mut s, &mut probes, ProbeKind::Startup, Run::Success),
        Some(ProbeEffect::Started)
    );
    assert_eq!(s.brief(None), Brief::Running { started: true });
    assert_eq!(
        feed(&mut s, &mut probes, ProbeKind::Readiness, Run::Success),
        Some(ProbeEffect::Ready(true))
    );
    let fail = || Run::Failure("HTTP probe failed with statuscode: 500".into());
    assert_eq!(
        feed(&mut s, &mut probes, ProbeKind::Liveness, fail()),
        None,
        "one failure of two"
    );
    assert_eq!(
        feed(&mut s, &mut probes, ProbeKind::Liveness, fail()),
        Some(ProbeEffect::Kill(StopCause::Liveness))
    );
    assert_eq!(
        ProbeResult::of(Transition::NotReady),
        (ProbeKind::Readiness, ProbeResult::Failure)
    );
}

#[test]
fn post_start_keeps_the_container_starting_until_it_returns() {
    let t0 = Instant::now();
    let stop = Stop::new(StopCause::PostStartHook, t0, secs(30), false);
    let s: Lifecycle<()> = Lifecycle::started((), true, Probes::default());
    assert_eq!(s.brief(None), Brief::Starting);
    let ok = Lifecycle::started((), true, Probes::default()).post_start_done(
        true,
        Probes::default(),
        stop,
    );
    assert_eq!(ok.brief(None), Brief::Running { started: true });
    let failed = s.post_start_done(false, Probes::default(), stop);
    assert!(matches!(
        failed,
        Lifecycle::Stopping { stop, .. } if stop.cause == StopCause::PostStartHook
    ));
}

#[test]
fn stopping_a_container_without_a_process() {
    let t0 = Instant::now();
    let term = Stop::new(StopCause::PodTermination, t0, secs(30), false);
    let lost = Stop::new(StopCause::SandboxLost, t0, secs(30), false);
    let waiting: Lifecycle<()> = Lifecycle::waiting("ContainerCreating");
    assert!(matches!(waiting.stop(term), Lifecycle::Done));
    let exited: Lifecycle<()> = Lifecycle::Exited {
        next_start: Some(t0),
    };
    assert!(matches!(exited.stop(lost), Lifecycle::Exited { .. }));
    // A termination overrides an earlier stop's cause (no restart) and hurries it.
    let running: Lifecycle<()> = Lifecycle::started((), false, Probes::default());
    let liveness = Stop::new(StopCause::Liveness, t0, secs(30), false);
    let force = Stop::new(StopCause::PodTermination, t0, Duration::ZERO, false);
    match running.stop(liveness).stop(force) {
        Lifecycle::Stopping { stop, .. } => {
            assert_eq!(stop.cause, StopCause::PodTermination);
            assert_eq!(stop.deadline, t0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_exit_of_a_stopped_container_carries_its_cause() {
    let t0 = Instant::now();
    let mut s: Lifecycle<u8> = Lifecycle::started(7, false, Probes::default());
    assert_eq!(s.take_exited(), Some((7, None)));
    let mut s: Lifecycle<u8> = Lifecycle::started(7, false, Probes::default()).stop(Stop::new(
        StopCause::SandboxLost,
        t0,
        secs(1),
        false,
    ));
    assert_eq!(s.take_exited(), Some((7, Some(StopCause::SandboxLost))));
    let mut w: Lifecycle<u8> = Lifecycle::waiting("PodInitializing");
    assert_eq!(w.take_exited(), None);
    assert!(matches!(w, Lifecycle::Waiting { .. }));
}

#[test]
fn killing_events_say_what_the_kubelet_says() {
    assert_eq!(
        killing_message(App, "app", StopCause::PodTermination, false),
        "Stopping container app"
    );
    assert_eq!(
        killing_message(App, "app", StopCause::SandboxLost, true),
        "Stopping container app"
    );
    assert_eq!(
        killing_message(App, "app", StopCause::Liveness, true),
        "Container app failed liveness probe, will be restarted"
    );
    assert_eq!(
        killing_message(App, "app", StopCause::Startup, false),
        "Container app failed startup probe"
    );
    assert_eq!(
        killing_message(Sidecar, "proxy", StopCause::Liveness, true),
        "Init container proxy failed liveness probe"
    );
    assert_eq!(
        killing_message(App, "app", StopCause::PostStartHook, true),
        "FailedPostStartHook"
    );
}

#[test]
fn kinds_and_policies_from_the_spec() {
    let sidecar: k8s_openapi::api::core::v1::Container =
        serde_json::from_value(serde_json::json!({"name": "s", "restartPolicy": "Always"}))
            .unwrap();
    let init: k8s_openapi::api::core::v1::Container =
        serde_json::from_value(serde_json::json!({"name": "i"})).unwrap();
    assert_eq!(Kind::of_init(&sidecar), Sidecar);
    assert_eq!(Kind::of_init(&init), Init);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(
        serde_json::json!({"spec": {"containers": [], "restartPolicy": "OnFailure"}}),
    )
    .unwrap();
    assert_eq!(RestartPolicy::of(&pod), OnFailure);
    assert_eq!(
        RestartPolicy::of(&k8s_openapi::api::core::v1::Pod::default()),
        Always
    );
}
