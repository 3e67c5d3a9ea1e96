//! Container restart policies and rules, one kubelet rule per test.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::exit::{restarts, restarts_all, StopCause};
use super::rules::{ContainerPolicy, RuleAction};
use super::{Kind, RestartPolicy};

fn policy(pod_policy: &str, container: serde_json::Value) -> ContainerPolicy {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "spec": {"restartPolicy": pod_policy, "containers": []}
    }))
    .unwrap();
    let c: Container = serde_json::from_value(container).unwrap();
    ContainerPolicy::of(&pod, &c)
}

fn rule(action: &str, operator: &str, values: &[i32]) -> serde_json::Value {
    serde_json::json!({"action": action, "exitCodes": {"operator": operator, "values": values}})
}

#[test]
fn the_containers_own_policy_overrides_the_pods() {
    let never = policy(
        "Always",
        serde_json::json!({"name": "a", "restartPolicy": "Never"}),
    );
    assert!(!restarts(Kind::App, &never, 1, None));
    let always = policy(
        "Never",
        serde_json::json!({"name": "a", "restartPolicy": "Always"}),
    );
    assert!(restarts(Kind::App, &always, 0, None));
    let on_failure = policy(
        "Never",
        serde_json::json!({"name": "a", "restartPolicy": "OnFailure"}),
    );
    assert!(restarts(Kind::App, &on_failure, 3, None));
    assert!(!restarts(Kind::App, &on_failure, 0, None));
    // Without one, the pod's.
    let plain = policy("OnFailure", serde_json::json!({"name": "a"}));
    assert_eq!(plain.effective(), RestartPolicy::OnFailure);
    assert!(restarts(Kind::App, &plain, 1, None));
}

#[test]
fn the_first_matching_rule_decides_in_and_not_in() {
    let p = policy(
        "Never",
        serde_json::json!({"name": "a", "restartPolicy": "Never", "restartPolicyRules": [
            rule("Restart", "In", &[42]),
            rule("RestartAllContainers", "NotIn", &[0, 42, 1]),
        ]}),
    );
    assert_eq!(p.matching(42), Some(RuleAction::Restart));
    assert_eq!(p.matching(7), Some(RuleAction::RestartAllContainers));
    assert_eq!(p.matching(0), None);
    assert_eq!(p.matching(1), None);
    // A Restart rule restarts under Never; no match falls back to the policy.
    assert!(restarts(Kind::App, &p, 42, None));
    assert!(!restarts(Kind::App, &p, 1, None));
    // A matching RestartAllContainers rule does not restart the container by itself.
    assert!(!restarts(Kind::App, &p, 7, None));
    assert!(restarts_all(&p, 7, None));
    assert!(!restarts_all(&p, 42, None));
}

#[test]
fn rules_count_only_with_a_container_policy() {
    let p = policy(
        "Never",
        serde_json::json!({"name": "a", "restartPolicyRules": [rule("Restart", "In", &[42])]}),
    );
    assert_eq!(p.matching(42), None);
    assert!(!restarts(Kind::App, &p, 42, None));
    assert!(!p.may_restart_all());
}

#[test]
fn an_init_container_with_a_rule_runs_again_after_that_failure_only() {
    let p = policy(
        "Never",
        serde_json::json!({"name": "i", "restartPolicy": "Never", "restartPolicyRules": [
            rule("Restart", "In", &[3])
        ]}),
    );
    assert!(restarts(Kind::Init, &p, 3, None));
    assert!(!restarts(Kind::Init, &p, 4, None));
    // Success completes an init container, whatever the rules.
    let any = policy(
        "Always",
        serde_json::json!({"name": "i", "restartPolicy": "Never", "restartPolicyRules": [
            rule("Restart", "NotIn", &[1])
        ]}),
    );
    assert!(!restarts(Kind::Init, &any, 0, None));
    // OnFailure on the container under a Never pod.
    let on_failure = policy(
        "Never",
        serde_json::json!({"name": "i", "restartPolicy": "OnFailure"}),
    );
    assert!(restarts(Kind::Init, &on_failure, 1, None));
}

#[test]
fn a_sidecar_asks_for_a_restart_of_all_containers_on_its_exit_code() {
    // The pod-corpus restart-all-containers example: exit 88 restarts the pod.
    let p = policy(
        "Never",
        serde_json::json!({"name": "watcher", "restartPolicy": "Always", "restartPolicyRules": [
            rule("RestartAllContainers", "In", &[88])
        ]}),
    );
    assert!(p.may_restart_all());
    assert!(restarts_all(&p, 88, None));
    assert!(!restarts_all(&p, 1, None));
    // Other exits: a sidecar restarts on its own.
    assert!(restarts(Kind::Sidecar, &p, 1, None));
}

#[test]
fn exits_the_supervisor_caused_for_the_pod_do_not_restart_all_again() {
    let p = policy(
        "Always",
        serde_json::json!({"name": "a", "restartPolicy": "Always", "restartPolicyRules": [
            rule("RestartAllContainers", "NotIn", &[0])
        ]}),
    );
    for cause in [
        StopCause::RestartAll,
        StopCause::PodTermination,
        StopCause::SandboxLost,
    ] {
        assert!(!restarts_all(&p, 137, Some(cause)), "{cause:?}");
    }
    // A probe kill is the container's own end: its exit code is checked.
    assert!(restarts_all(&p, 137, Some(StopCause::Liveness)));
    // Killed for a restart of all, nothing restarts on its own either.
    for kind in [Kind::Init, Kind::Sidecar, Kind::App] {
        assert!(!restarts(kind, &p, 137, Some(StopCause::RestartAll)));
    }
}

#[test]
fn a_probe_kill_restarts_unless_the_policy_in_force_is_never() {
    let never = policy(
        "Always",
        serde_json::json!({"name": "a", "restartPolicy": "Never"}),
    );
    assert!(!restarts(Kind::App, &never, 137, Some(StopCause::Liveness)));
    let always = policy(
        "Never",
        serde_json::json!({"name": "a", "restartPolicy": "Always"}),
    );
    assert!(restarts(Kind::App, &always, 137, Some(StopCause::Startup)));
}

#[test]
fn a_restart_of_all_containers_kills_without_grace_or_pre_stop() {
    let now = std::time::Instant::now();
    let stop = super::Stop::new(StopCause::RestartAll, now, Duration::ZERO, true);
    assert!(!stop.pre_stop);
    assert_eq!(stop.step(now, false), super::StopStep::Signal);
    assert_eq!(
        super::killing_message(Kind::Sidecar, "w", StopCause::RestartAll, false),
        "Stopping container w"
    );
}
