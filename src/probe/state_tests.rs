use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ExecAction, Probe};

use super::*;
use crate::probe::ProbeResult;

fn probe(success: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".into()]),
        }),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        ..Default::default()
    }
}

fn fail() -> ProbeResult {
    ProbeResult::Failure("HTTP probe failed with statuscode: 500".into())
}

/// Runs one probe now and feeds it `result`.
fn step(p: &mut ProbeState, now: Instant, started: bool, result: ProbeResult) -> ProbeOutcome {
    assert!(p.due(now, started), "{:?} not due at +{:?}", p.kind(), now);
    p.on_probe_started(now);
    p.on_result(&result)
}

#[test]
fn defaults_are_the_api_servers() {
    let c = ProbeConfig::from_probe(&Probe::default());
    assert_eq!(c.initial_delay, Duration::ZERO);
    assert_eq!(c.period, Duration::from_secs(10));
    assert_eq!(c.timeout, Duration::from_secs(1));
    assert_eq!((c.success_threshold, c.failure_threshold), (1, 3));
    assert_eq!(c.termination_grace_period, None);
}

#[test]
fn first_probe_after_the_initial_delay_then_every_period() {
    let t0 = Instant::now();
    let mut p = ProbeState::new(
        ProbeKind::Liveness,
        ProbeConfig::from_probe(&Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(3),
            ..probe(1, 3)
        }),
    );
    assert_eq!(p.next_due(true), None, "no container yet");
    p.on_container_started(t0);
    assert!(!p.due(t0 + Duration::from_secs(4), true));
    assert_eq!(p.next_due(true), Some(t0 + Duration::from_secs(5)));
    p.on_probe_started(t0 + Duration::from_secs(5));
    assert_eq!(p.next_due(true), None, "one probe at a time");
    p.on_result(&ProbeResult::Success);
    assert_eq!(p.next_due(true), Some(t0 + Duration::from_secs(8)));
    // A probe started late lands on the next grid point after it.
    p.on_probe_started(t0 + Duration::from_secs(15));
    p.on_result(&ProbeResult::Success);
    assert_eq!(p.next_due(true), Some(t0 + Duration::from_secs(17)));
}

#[test]
fn liveness_kills_at_the_failure_threshold_and_holds() {
    let t0 = Instant::now();
    let mut config = ProbeConfig::from_probe(&probe(1, 3));
    config.termination_grace_period = Some(7);
    let mut p = ProbeState::new(ProbeKind::Liveness, config);
    p.on_container_started(t0);
    let mut now = t0;
    for i in 0..2 {
        let out = step(&mut p, now, true, fail());
        assert_eq!(out.transition, None, "failure {i} is under the threshold");
        assert_eq!(
            out.event.unwrap().message,
            "Liveness probe failed: HTTP probe failed with statuscode: 500"
        );
        now += Duration::from_secs(10);
    }
    // A success in between starts the count over.
    step(&mut p, now, true, ProbeResult::Success);
    for _ in 0..2 {
        now += Duration::from_secs(10);
        assert_eq!(step(&mut p, now, true, fail()).transition, None);
    }
    now += Duration::from_secs(10);
    let out = step(&mut p, now, true, fail());
    assert_eq!(
        out.transition,
        Some(Transition::Kill {
            kind: ProbeKind::Liveness,
            grace_period: Some(7)
        })
    );
    assert_eq!(p.next_due(true), None, "on hold until a new instance");
    p.on_container_started(now);
    assert!(p.due(now, true));
    assert!(p.succeeded(), "a new instance starts healthy");
}

#[test]
fn errored_results_are_thrown_away_but_told() {
    let t0 = Instant::now();
    let mut p = ProbeState::new(ProbeKind::Liveness, ProbeConfig::from_probe(&probe(1, 1)));
    p.on_container_started(t0);
    let out = step(
        &mut p,
        t0,
        true,
        ProbeResult::unknown("strconv.Atoi: parsing \"http\": invalid syntax"),
    );
    assert_eq!(out.transition, None);
    assert!(out
        .event
        .unwrap()
        .message
        .starts_with("Liveness probe errored and resulted in unknown state: "));
    assert!(p.succeeded());
}

#[test]
fn readiness_flips_at_both_thresholds() {
    let t0 = Instant::now();
    let mut p = ProbeState::new(ProbeKind::Readiness, ProbeConfig::from_probe(&probe(2, 2)));
    p.on_container_started(t0);
    assert!(!p.succeeded(), "not ready before the first success");
    let mut now = t0;
    let mut next = |p: &mut ProbeState, r| {
        let out = step(p, now, true, r);
        now += Duration::from_secs(10);
        out.transition
    };
    assert_eq!(next(&mut p, ProbeResult::Success), None);
    assert_eq!(next(&mut p, ProbeResult::Success), Some(Transition::Ready));
    assert_eq!(
        next(&mut p, ProbeResult::Success),
        None,
        "no change, no transition"
    );
    assert_eq!(next(&mut p, fail()), None);
    assert_eq!(next(&mut p, fail()), Some(Transition::NotReady));
    // A redirect's warning counts as a success, with its own event.
    let out = step(&mut p, now, true, ProbeResult::Warning("w".into()));
    assert_eq!(out.event.unwrap().reason, "ProbeWarning");
    assert_eq!(p.on_container_stopped(), None, "it was not ready");
}

#[test]
fn startup_gates_the_others_then_finishes() {
    let t0 = Instant::now();
    let c = Container {
        name: "app".into(),
        liveness_probe: Some(probe(1, 3)),
        readiness_probe: Some(probe(1, 3)),
        startup_probe: Some(probe(1, 2)),
        ..Default::default()
    };
    let mut probes = ContainerProbes::new(&c);
    probes.on_container_started(t0);
    assert_eq!(probes.due(t0), vec![ProbeKind::Startup]);
    assert!(!probes.started() && !probes.ready());
    let s = probes.get_mut(ProbeKind::Startup).unwrap();
    s.on_probe_started(t0);
    assert_eq!(
        s.on_result(&ProbeResult::Success).transition,
        Some(Transition::Started)
    );
    assert!(probes.started());
    assert!(!probes.ready(), "readiness has not succeeded yet");
    assert_eq!(
        probes.due(t0),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );
    let r = probes.get_mut(ProbeKind::Readiness).unwrap();
    r.on_probe_started(t0);
    assert_eq!(
        r.on_result(&ProbeResult::Success).transition,
        Some(Transition::Ready)
    );
    assert!(probes.ready());
    assert_eq!(probes.on_container_stopped(), Some(Transition::NotReady));
    assert_eq!(probes.next_due(), None);
}

#[test]
fn startup_failure_kills_and_termination_stops_liveness() {
    let t0 = Instant::now();
    let mut s = ProbeState::new(ProbeKind::Startup, ProbeConfig::from_probe(&probe(1, 2)));
    s.on_container_started(t0);
    assert_eq!(step(&mut s, t0, false, fail()).transition, None);
    let out = step(&mut s, t0 + Duration::from_secs(10), false, fail());
    assert_eq!(
        out.transition,
        Some(Transition::Kill {
            kind: ProbeKind::Startup,
            grace_period: None
        })
    );
    assert_eq!(
        out.event.unwrap().message,
        "Startup probe failed: HTTP probe failed with statuscode: 500"
    );
    let c = Container {
        liveness_probe: Some(probe(1, 3)),
        readiness_probe: Some(probe(1, 3)),
        ..Default::default()
    };
    let mut probes = ContainerProbes::new(&c);
    probes.on_container_started(t0);
    probes.on_pod_terminating();
    assert_eq!(probes.due(t0), vec![ProbeKind::Readiness]);
    assert!(!probes.ready(), "readiness has not run");
    let no_probes = ContainerProbes::new(&Container::default());
    assert!(no_probes.started() && no_probes.ready());
}

#[test]
fn a_result_after_the_container_stopped_only_tells() {
    let t0 = Instant::now();
    let mut p = ProbeState::new(ProbeKind::Liveness, ProbeConfig::from_probe(&probe(1, 1)));
    p.on_container_started(t0);
    p.on_probe_started(t0);
    p.on_container_stopped();
    let out = p.on_result(&fail());
    assert_eq!(out.transition, None);
    assert!(out.event.is_some());
}
