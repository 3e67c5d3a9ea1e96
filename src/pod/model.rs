//! The supervisor's view of a pod's containers, and how it becomes a Kubernetes `PodStatus`
//! (container states, phase, conditions) — pure functions, tested without root. The phase and
//! the conditions are in [`crate::pod::phase`].

use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pod::machine::{Kind, RestartPolicy};
use crate::pod::phase::{conditions, phase};

// Waiting and terminated reasons [pkg/kubelet/container, containerd internal/cri/server].
pub const REASON_CONTAINER_CREATING: &str = "ContainerCreating";
pub const REASON_POD_INITIALIZING: &str = "PodInitializing";
pub const REASON_CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
pub const REASON_ERR_IMAGE_PULL: &str = "ErrImagePull";
pub const REASON_IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
pub const REASON_ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
pub const REASON_INVALID_IMAGE_NAME: &str = "InvalidImageName";
pub const REASON_CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
pub const REASON_CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
pub const REASON_RUN_CONTAINER_ERROR: &str = "RunContainerError";
pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_ERROR: &str = "Error";
pub const REASON_OOM_KILLED: &str = "OOMKilled";
pub const REASON_CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
/// The pod's status reason (and event reason) when the kubelet evicts it
/// [pkg/kubelet/eviction/helpers.go Reason].
pub const REASON_EVICTED: &str = "Evicted";
/// The pod's status reason and event reason past `activeDeadlineSeconds`, and the message of
/// both [pkg/kubelet/active_deadline.go].
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE_EXCEEDED: &str =
    "Pod was active on the node longer than the specified deadline";

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

/// `containerID` values carry the runtime's name, as `containerd://<id>` does.
pub const CONTAINER_ID_SCHEME: &str = "peapod://";

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: String,
}

/// The current state of one container, as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Terminated),
}

/// One container's status inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub kind: Kind,
    pub image: String,
    pub image_id: String,
    pub restart_count: u32,
    pub state: RunState,
    pub last_terminated: Option<Terminated>,
    /// Running and past its startup probe (or without one).
    pub started: bool,
    /// Started and past its readiness probe (or without one); an init container that exited
    /// 0 is ready too [prober_manager.go UpdatePodStatus].
    pub ready: bool,
    /// It waits for its first run since a restart of all containers: for the phase, it has
    /// not run yet (its last termination is history, not a failure to count).
    pub rerun: bool,
}

impl ContainerView {
    pub fn new(name: &str, kind: Kind, image: &str, waiting_reason: &str) -> Self {
        ContainerView {
            name: name.to_string(),
            kind,
            image: image.to_string(),
            image_id: String::new(),
            restart_count: 0,
            state: RunState::Waiting {
                reason: waiting_reason.to_string(),
                message: None,
            },
            last_terminated: None,
            started: false,
            ready: false,
            rerun: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, RunState::Terminated(_))
    }
}

/// A failure the pod reports for itself (evicted, past its active deadline): phase Failed with
/// this reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    pub reason: String,
    pub message: String,
}

/// Everything the pod's status is computed from.
#[derive(Debug, Clone)]
pub struct PodView {
    /// `initContainers`, sidecars included, in spec order.
    pub init: Vec<ContainerView>,
    pub app: Vec<ContainerView>,
    pub policy: RestartPolicy,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    pub qos_class: String,
    pub sandbox_ready: bool,
    pub failure: Option<PodFailure>,
    /// For a pod with a `RestartAllContainers` rule: whether a restart of all its containers
    /// is under way (the `AllContainersRestarting` condition). None for other pods.
    pub restarting: Option<bool>,
}

impl Default for PodView {
    fn default() -> Self {
        PodView {
            init: Vec::new(),
            app: Vec::new(),
            policy: RestartPolicy::Always,
            pod_ip: None,
            host_ip: None,
            start_time: None,
            qos_class: String::new(),
            sandbox_ready: false,
            failure: None,
            restarting: None,
        }
    }
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn terminated_k8s(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: Some(t.container_id.clone()),
        exit_code: t.exit_code,
        finished_at: Some(time(t.finished_at)),
        message: t.message.clone(),
        reason: Some(t.reason.clone()),
        signal: t.signal,
        started_at: t.started_at.map(time),
    }
}

fn state_k8s(s: &RunState) -> K8sState {
    match s {
        RunState::Waiting { reason, message } => K8sState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        RunState::Running { started_at, .. } => K8sState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        RunState::Terminated(t) => K8sState {
            terminated: Some(terminated_k8s(t)),
            ..Default::default()
        },
    }
}

fn container_status(c: &ContainerView) -> ContainerStatus {
    let container_id = match &c.state {
        RunState::Running { container_id, .. } => Some(container_id.clone()),
        RunState::Terminated(t) => Some(t.container_id.clone()),
        // While waiting to restart, the kubelet keeps reporting the last instance's ID.
        RunState::Waiting { .. } => c.last_terminated.as_ref().map(|t| t.container_id.clone()),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id,
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count as i32,
        state: Some(state_k8s(&c.state)),
        last_state: Some(
            c.last_terminated
                .as_ref()
                .map(|t| K8sState {
                    terminated: Some(terminated_k8s(t)),
                    ..Default::default()
                })
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

/// Builds the Kubernetes `PodStatus`. `previous` keeps condition transition times stable and
/// a terminal phase terminal: a pod never leaves Succeeded or Failed [kubelet.go
/// generateAPIPodStatus].
pub fn pod_status(view: &PodView, previous: Option<&PodStatus>, now: Timestamp) -> PodStatus {
    let mut phase = phase(view);
    let was = previous.and_then(|p| p.phase.as_deref());
    if let Some(terminal) = [PHASE_SUCCEEDED, PHASE_FAILED]
        .into_iter()
        .find(|p| was == Some(*p))
    {
        phase = terminal;
    }
    let mut conditions = conditions(view, phase, now);
    if let Some(prev) = previous.and_then(|p| p.conditions.as_ref()) {
        for c in conditions.iter_mut() {
            if let Some(old) = prev.iter().find(|o| o.type_ == c.type_) {
                if old.status == c.status {
                    c.last_transition_time = old.last_transition_time.clone();
                }
            }
        }
    }
    let ip = view.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: view.host_ip.clone(),
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]),
        start_time: view.start_time.map(time),
        qos_class: Some(view.qos_class.clone()),
        init_container_statuses: if view.init.is_empty() {
            None
        } else {
            Some(view.init.iter().map(container_status).collect())
        },
        container_statuses: Some(view.app.iter().map(container_status).collect()),
        reason: view.failure.as_ref().map(|f| f.reason.clone()),
        message: view.failure.as_ref().map(|f| f.message.clone()),
        ..Default::default()
    }
}

/// The terminated reason for an exit [containerd: Completed, Error, OOMKilled].
pub fn terminated_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        REASON_OOM_KILLED
    } else if exit_code == 0 {
        REASON_COMPLETED
    } else {
        REASON_ERROR
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    pub fn waiting(name: &str, kind: Kind) -> ContainerView {
        ContainerView::new(name, kind, "busybox", REASON_CONTAINER_CREATING)
    }

    pub fn running(name: &str, kind: Kind) -> ContainerView {
        let mut c = waiting(name, kind);
        c.state = RunState::Running {
            started_at: ts(1),
            container_id: "peapod://abc".into(),
        };
        c.started = true;
        // A running init container is not ready: it is when it exited 0.
        c.ready = kind != Kind::Init;
        c
    }

    pub fn finished(name: &str, kind: Kind, code: i32) -> ContainerView {
        let mut c = waiting(name, kind);
        c.state = RunState::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: terminated_reason(code, false).into(),
            message: None,
            started_at: Some(ts(1)),
            finished_at: ts(2),
            container_id: "peapod://abc".into(),
        });
        c.ready = kind == Kind::Init && code == 0;
        c
    }

    #[test]
    fn status_carries_states_ready_and_ip() {
        let mut a = running("a", Kind::App);
        a.restart_count = 2;
        a.last_terminated = Some(Terminated {
            exit_code: 137,
            signal: Some(9),
            reason: REASON_ERROR.into(),
            message: None,
            started_at: None,
            finished_at: ts(0),
            container_id: "peapod://old".into(),
        });
        let v = PodView {
            app: vec![a],
            pod_ip: Some(Ipv4Addr::new(10, 88, 0, 2)),
            qos_class: "BestEffort".into(),
            sandbox_ready: true,
            ..Default::default()
        };
        let s = pod_status(&v, None, ts(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.88.0.2"));
        let cs = &s.container_statuses.unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert_eq!(cs.restart_count, 2);
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 137);
    }

    #[test]
    fn a_terminal_phase_stays_terminal() {
        let v = PodView {
            app: vec![finished("a", Kind::App, 0)],
            policy: RestartPolicy::Never,
            ..Default::default()
        };
        let done = pod_status(&v, None, ts(1));
        assert_eq!(done.phase.as_deref(), Some(PHASE_SUCCEEDED));
        let again = PodView {
            app: vec![running("a", Kind::App)],
            ..v
        };
        let s = pod_status(&again, Some(&done), ts(2));
        assert_eq!(s.phase.as_deref(), Some(PHASE_SUCCEEDED));
    }

    #[test]
    fn a_failure_of_the_pod_sets_reason_and_message() {
        let v = PodView {
            app: vec![running("a", Kind::App)],
            failure: Some(PodFailure {
                reason: REASON_DEADLINE_EXCEEDED.into(),
                message: MESSAGE_DEADLINE_EXCEEDED.into(),
            }),
            ..Default::default()
        };
        let s = pod_status(&v, None, ts(3));
        assert_eq!(s.phase.as_deref(), Some(PHASE_FAILED));
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            s.message.as_deref(),
            Some("Pod was active on the node longer than the specified deadline")
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(terminated_reason(0, false), "Completed");
        assert_eq!(terminated_reason(2, false), "Error");
        assert_eq!(terminated_reason(137, true), "OOMKilled");
    }
}
