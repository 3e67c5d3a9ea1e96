//! The pod's phase and conditions from its container statuses, as the kubelet computes them
//! [pkg/kubelet/kubelet_pods.go getPhase; pkg/kubelet/status/generate.go] — pure, tested
//! without root.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pod::machine::{Kind, RestartPolicy};
use crate::pod::model::{
    ContainerView, PodView, RunState, PHASE_FAILED, PHASE_PENDING, PHASE_RUNNING, PHASE_SUCCEEDED,
};

// Condition types [core/v1 types.go] and the kubelet's reasons [status/generate.go].
pub const CONDITION_READY_TO_START: &str = "PodReadyToStartContainers";
pub const CONDITION_INITIALIZED: &str = "Initialized";
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_CONTAINERS_READY: &str = "ContainersReady";
pub const CONDITION_SCHEDULED: &str = "PodScheduled";
pub const CONDITION_ALL_CONTAINERS_RESTARTING: &str = "AllContainersRestarting";
/// The condition's reason and message while a restart of all containers is under way
/// [status/generate.go GenerateAllContainersRestartingCondition].
pub const REASON_RESTART_ALL_CONTAINERS_STARTED: &str = "RestartAllContainersStarted";
pub const MESSAGE_RESTART_ALL_CONTAINERS: &str = "container exited with restart policy rule";
pub const REASON_CONTAINERS_NOT_READY: &str = "ContainersNotReady";
pub const REASON_CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
pub const REASON_POD_COMPLETED: &str = "PodCompleted";
pub const REASON_POD_FAILED: &str = "PodFailed";

/// The pod phase from its containers [kubelet_pods.go getPhase, with `podIsTerminal` false: a
/// pod the kubelet fails itself carries a [`crate::pod::model::PodFailure`] instead].
pub fn phase(view: &PodView) -> &'static str {
    if view.failure.is_some() {
        return PHASE_FAILED;
    }
    // Every container is being restarted: the pod is Pending until they run again [KEP-5532].
    if view.restarting == Some(true) {
        return PHASE_PENDING;
    }
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in view.init.iter().filter(|c| c.kind == Kind::Init) {
        match &c.state {
            RunState::Running { .. } => pending_init += 1,
            RunState::Terminated(t) if t.exit_code != 0 => failed_init += 1,
            RunState::Terminated(_) => {}
            RunState::Waiting { .. } => match ran_before(c) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            },
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    // Sidecars: a terminated one does not count for the phase.
    for c in view.init.iter().filter(|c| c.kind == Kind::Sidecar) {
        match &c.state {
            RunState::Running { .. } => {
                if !c.started {
                    pending_init += 1;
                }
                running += 1;
            }
            RunState::Terminated(_) => {}
            RunState::Waiting { .. } => {
                if ran_before(c).is_none() {
                    pending_init += 1;
                    waiting += 1;
                }
            }
        }
    }
    for c in &view.app {
        match &c.state {
            RunState::Running { .. } => running += 1,
            RunState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            RunState::Waiting { .. } if ran_before(c).is_some() => stopped += 1,
            RunState::Waiting { .. } => waiting += 1,
        }
    }
    if failed_init > 0 && view.policy == RestartPolicy::Never {
        return PHASE_FAILED;
    }
    if (pending_init > 0 && !any_app_started(view)) || waiting > 0 {
        return PHASE_PENDING;
    }
    if running > 0 {
        return PHASE_RUNNING;
    }
    if stopped > 0 {
        return match view.policy {
            RestartPolicy::Always => PHASE_RUNNING,
            _ if stopped == succeeded => PHASE_SUCCEEDED,
            RestartPolicy::Never => PHASE_FAILED,
            RestartPolicy::OnFailure => PHASE_RUNNING,
        };
    }
    PHASE_PENDING
}

/// An app container is running or has terminated [kubecontainer.HasAnyRegularContainerStarted].
/// The termination a waiting container had before, unless a restart of all containers made
/// it start over.
fn ran_before(c: &ContainerView) -> Option<&crate::pod::model::Terminated> {
    c.last_terminated.as_ref().filter(|_| !c.rerun)
}

fn any_app_started(view: &PodView) -> bool {
    view.app.iter().any(|c| c.is_running() || c.is_terminated())
}

/// Go's `%s` of a `[]string`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> Condition {
    Condition {
        type_: type_.to_string(),
        ok,
        reason: reason.map(str::to_string),
        message,
    }
}

/// A condition before it gets its transition time.
struct Condition {
    type_: String,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
}

/// ContainersReady: sidecars and app containers ready [GenerateContainersReadyCondition]; a
/// finished pod's is False with PodCompleted or PodFailed. Ready says the same (no readiness
/// gates) [GeneratePodReadyCondition].
fn containers_ready(view: &PodView, phase: &str, type_: &str) -> Condition {
    if phase == PHASE_SUCCEEDED {
        return condition(type_, false, Some(REASON_POD_COMPLETED), None);
    }
    if phase == PHASE_FAILED {
        return condition(type_, false, Some(REASON_POD_FAILED), None);
    }
    let unready: Vec<&str> = view
        .init
        .iter()
        .filter(|c| c.kind == Kind::Sidecar)
        .chain(&view.app)
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    if unready.is_empty() {
        return condition(type_, true, None, None);
    }
    condition(
        type_,
        false,
        Some(REASON_CONTAINERS_NOT_READY),
        Some(format!(
            "containers with unready status: {}",
            go_list(&unready)
        )),
    )
}

/// Initialized: every init container exited 0 (ready) and every sidecar started, or an app
/// container has started already [GeneratePodInitializedCondition].
fn initialized(view: &PodView, phase: &str) -> Condition {
    if phase == PHASE_SUCCEEDED {
        return condition(
            CONDITION_INITIALIZED,
            true,
            Some(REASON_POD_COMPLETED),
            None,
        );
    }
    if any_app_started(view) {
        return condition(CONDITION_INITIALIZED, true, None, None);
    }
    let done = |c: &ContainerView| match c.kind {
        Kind::Sidecar => c.started,
        _ => c.ready,
    };
    let incomplete: Vec<&str> = view
        .init
        .iter()
        .filter(|c| !done(c))
        .map(|c| c.name.as_str())
        .collect();
    if incomplete.is_empty() {
        return condition(CONDITION_INITIALIZED, true, None, None);
    }
    condition(
        CONDITION_INITIALIZED,
        false,
        Some(REASON_CONTAINERS_NOT_INITIALIZED),
        Some(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        )),
    )
}

/// AllContainersRestarting, only for a pod with a `RestartAllContainers` rule: True while its
/// containers are being restarted, False otherwise (with PodCompleted or PodFailed once the
/// pod is finished) [GenerateAllContainersRestartingCondition].
fn all_containers_restarting(view: &PodView, phase: &str) -> Option<Condition> {
    let restarting = view.restarting?;
    let type_ = CONDITION_ALL_CONTAINERS_RESTARTING;
    Some(match phase {
        PHASE_SUCCEEDED => condition(type_, false, Some(REASON_POD_COMPLETED), None),
        PHASE_FAILED => condition(type_, false, Some(REASON_POD_FAILED), None),
        _ if restarting => condition(
            type_,
            true,
            Some(REASON_RESTART_ALL_CONTAINERS_STARTED),
            Some(MESSAGE_RESTART_ALL_CONTAINERS.to_string()),
        ),
        _ => condition(type_, false, None, None),
    })
}

/// The kubelet's conditions, in its order [kubelet.go generateAPIPodStatus].
pub fn conditions(view: &PodView, phase: &str, now: Timestamp) -> Vec<PodCondition> {
    [
        condition(CONDITION_READY_TO_START, view.sandbox_ready, None, None),
        initialized(view, phase),
        containers_ready(view, phase, CONDITION_READY),
        containers_ready(view, phase, CONDITION_CONTAINERS_READY),
        condition(CONDITION_SCHEDULED, true, None, None),
    ]
    .into_iter()
    .chain(all_containers_restarting(view, phase))
    .map(|c| PodCondition {
        type_: c.type_,
        status: if c.ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(Time(now)),
        reason: c.reason,
        message: c.message,
        ..Default::default()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::model::tests::{finished, running, ts, waiting};
    use crate::pod::model::{PodFailure, Terminated, REASON_POD_INITIALIZING};

    fn view(init: Vec<ContainerView>, app: Vec<ContainerView>, policy: RestartPolicy) -> PodView {
        PodView {
            init,
            app,
            policy,
            sandbox_ready: true,
            ..Default::default()
        }
    }

    fn get<'a>(cs: &'a [PodCondition], type_: &str) -> &'a PodCondition {
        cs.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn restarting(name: &str, kind: Kind, code: i32) -> ContainerView {
        let mut c = waiting(name, kind);
        c.last_terminated = Some(Terminated {
            exit_code: code,
            signal: None,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: ts(2),
            container_id: "peapod://x".into(),
        });
        c
    }

    use Kind::{App, Init, Sidecar};
    use RestartPolicy::{Always, Never, OnFailure};

    #[test]
    fn phases_of_plain_pods() {
        let p = |app, policy| phase(&view(vec![], app, policy));
        assert_eq!(p(vec![waiting("a", App)], Always), PHASE_PENDING);
        assert_eq!(
            p(vec![running("a", App), finished("b", App, 0)], Always),
            PHASE_RUNNING
        );
        assert_eq!(
            p(vec![finished("a", App, 0), finished("b", App, 0)], Never),
            PHASE_SUCCEEDED
        );
        assert_eq!(
            p(vec![finished("a", App, 0), finished("b", App, 3)], Never),
            PHASE_FAILED
        );
        // Every container stopped but restarting: Running under Always and OnFailure.
        assert_eq!(p(vec![restarting("a", App, 1)], Always), PHASE_RUNNING);
        assert_eq!(p(vec![restarting("a", App, 1)], OnFailure), PHASE_RUNNING);
        assert_eq!(p(vec![finished("a", App, 0)], OnFailure), PHASE_SUCCEEDED);
    }

    #[test]
    fn phases_with_init_containers() {
        let app = || {
            vec![ContainerView::new(
                "a",
                App,
                "busybox",
                REASON_POD_INITIALIZING,
            )]
        };
        assert_eq!(
            phase(&view(vec![running("i", Init)], app(), Never)),
            PHASE_PENDING
        );
        assert_eq!(
            phase(&view(vec![finished("i", Init, 1)], app(), Never)),
            PHASE_FAILED,
            "a failed init container under Never fails the pod"
        );
        assert_eq!(
            phase(&view(vec![restarting("i", Init, 1)], app(), OnFailure)),
            PHASE_PENDING,
            "retried under OnFailure: still Pending"
        );
    }

    #[test]
    fn sidecars_keep_a_pod_running_but_not_from_completing() {
        // The app finished; the sidecar still runs until it is stopped: Running.
        let v = view(
            vec![running("proxy", Sidecar)],
            vec![finished("job", App, 0)],
            Never,
        );
        assert_eq!(phase(&v), PHASE_RUNNING);
        // Once stopped, a terminated sidecar does not count: Succeeded.
        let v = view(
            vec![finished("proxy", Sidecar, 143)],
            vec![finished("job", App, 0)],
            Never,
        );
        assert_eq!(phase(&v), PHASE_SUCCEEDED);
        // A sidecar not yet started holds the pod Pending.
        let mut s = running("proxy", Sidecar);
        s.started = false;
        let v = view(vec![s], vec![waiting("job", App)], Never);
        assert_eq!(phase(&v), PHASE_PENDING);
    }

    #[test]
    fn ready_conditions_name_the_unready_containers() {
        let mut app = running("app", App);
        app.ready = false;
        let v = view(
            vec![finished("setup", Init, 0), running("proxy", Sidecar)],
            vec![app, running("web", App)],
            Always,
        );
        let cs = conditions(&v, phase(&v), ts(1));
        let ready = get(&cs, CONDITION_READY);
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [app]")
        );
        assert_eq!(get(&cs, CONDITION_CONTAINERS_READY).message, ready.message);
        assert_eq!(get(&cs, CONDITION_INITIALIZED).status, "True");
        assert_eq!(get(&cs, CONDITION_READY_TO_START).status, "True");
        let order: Vec<&str> = cs.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            order,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
    }

    #[test]
    fn initialized_lists_incomplete_init_containers() {
        let v = view(
            vec![running("setup", Init), waiting("more", Init)],
            vec![waiting("app", App)],
            Always,
        );
        let cs = conditions(&v, phase(&v), ts(1));
        let init = get(&cs, CONDITION_INITIALIZED);
        assert_eq!(init.status, "False");
        assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [setup more]")
        );
        let ready = get(&cs, CONDITION_READY);
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [app]")
        );
    }

    #[test]
    fn finished_pods_are_not_ready_with_the_phase_as_reason() {
        let v = view(vec![], vec![finished("a", App, 0)], Never);
        let cs = conditions(&v, phase(&v), ts(1));
        assert_eq!(
            get(&cs, CONDITION_READY).reason.as_deref(),
            Some("PodCompleted")
        );
        let init = get(&cs, CONDITION_INITIALIZED);
        assert_eq!(
            (init.status.as_str(), init.reason.as_deref()),
            ("True", Some("PodCompleted"))
        );
        let mut v = view(vec![], vec![running("a", App)], Always);
        v.failure = Some(PodFailure {
            reason: "Evicted".into(),
            message: "x".into(),
        });
        v.sandbox_ready = false;
        let cs = conditions(&v, phase(&v), ts(1));
        assert_eq!(
            get(&cs, CONDITION_CONTAINERS_READY).reason.as_deref(),
            Some("PodFailed")
        );
        assert_eq!(get(&cs, CONDITION_READY_TO_START).status, "False");
    }

    #[test]
    fn a_restart_of_all_containers_is_pending_with_its_condition() {
        // Under Never, killed app containers would make the pod Failed: while every container
        // is restarted the pod is Pending, and AllContainersRestarting says why.
        let mut v = view(
            vec![finished("w", Sidecar, 88)],
            vec![finished("a", App, 137)],
            Never,
        );
        v.restarting = Some(true);
        assert_eq!(phase(&v), PHASE_PENDING);
        let cs = conditions(&v, PHASE_PENDING, ts(1));
        let c = get(&cs, CONDITION_ALL_CONTAINERS_RESTARTING);
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
            (
                "True",
                Some(REASON_RESTART_ALL_CONTAINERS_STARTED),
                Some(MESSAGE_RESTART_ALL_CONTAINERS)
            )
        );
        v.restarting = Some(false);
        let cs = conditions(&v, PHASE_RUNNING, ts(1));
        let c = get(&cs, CONDITION_ALL_CONTAINERS_RESTARTING);
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", None));
        let cs = conditions(&v, PHASE_FAILED, ts(1));
        assert_eq!(
            get(&cs, CONDITION_ALL_CONTAINERS_RESTARTING)
                .reason
                .as_deref(),
            Some(REASON_POD_FAILED)
        );
        // Once they are all stopped, every container waits to run again: still Pending under
        // Never, though each has a termination on record.
        let rerun = |mut c: ContainerView| {
            c.rerun = true;
            c
        };
        let again = view(
            vec![
                rerun(restarting("setup", Init, 0)),
                rerun(restarting("w", Sidecar, 88)),
            ],
            vec![rerun(restarting("a", App, 137))],
            Never,
        );
        assert_eq!(phase(&again), PHASE_PENDING);
        // A pod without such a rule has no such condition.
        v.restarting = None;
        let cs = conditions(&v, PHASE_RUNNING, ts(1));
        assert!(cs
            .iter()
            .all(|c| c.type_ != CONDITION_ALL_CONTAINERS_RESTARTING));
    }
}
