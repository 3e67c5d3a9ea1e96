//! The supervisor's in-memory view of a pod's containers, and how it becomes a Kubernetes
//! `PodStatus` (phase, conditions, container states) — pure functions, tested without root.

use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
    pub image: String,
    pub image_id: String,
    pub restart_count: u32,
    pub state: RunState,
    pub last_terminated: Option<Terminated>,
    /// The container has finished for good (no restart will follow).
    pub done: bool,
    /// At least one instance has been started.
    pub ever_started: bool,
}

impl ContainerView {
    pub fn new(name: &str, image: &str, waiting_reason: &str) -> Self {
        ContainerView {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            restart_count: 0,
            state: RunState::Waiting {
                reason: waiting_reason.to_string(),
                message: None,
            },
            last_terminated: None,
            done: false,
            ever_started: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    /// Finished for good with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.done && matches!(&self.state, RunState::Terminated(t) if t.exit_code == 0)
    }
}

/// Everything the pod's status is computed from.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub init: Vec<ContainerView>,
    pub app: Vec<ContainerView>,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    pub qos_class: String,
    pub sandbox_ready: bool,
    /// An init container failed and the pod will not retry it (restartPolicy Never).
    pub init_failed: bool,
    /// The pod was evicted, with this message: phase Failed, reason Evicted.
    pub evicted: Option<String>,
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
        ready: c.is_running(),
        started: Some(c.is_running()),
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

/// The pod phase from its containers [core/v1 types.go PodPhase; kubelet getPhase].
pub fn phase(view: &PodView) -> &'static str {
    if view.init_failed || view.evicted.is_some() {
        return PHASE_FAILED;
    }
    let init_done = view.init.iter().all(|c| c.succeeded());
    if !init_done || view.app.iter().any(|c| !c.ever_started) {
        return PHASE_PENDING;
    }
    if view.app.iter().all(|c| c.done) {
        if view.app.iter().all(|c| c.succeeded()) {
            return PHASE_SUCCEEDED;
        }
        return PHASE_FAILED;
    }
    PHASE_RUNNING
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, now: Timestamp) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(time(now)),
        reason: if ok { None } else { reason.map(str::to_string) },
        ..Default::default()
    }
}

/// Builds the Kubernetes `PodStatus`. `previous` keeps condition transition times stable.
pub fn pod_status(view: &PodView, previous: Option<&PodStatus>, now: Timestamp) -> PodStatus {
    let phase = phase(view);
    let initialized = view.init.iter().all(|c| c.succeeded());
    let ready =
        initialized && !view.app.is_empty() && view.app.iter().all(ContainerView::is_running);
    let mut conditions = vec![
        condition("PodReadyToStartContainers", view.sandbox_ready, None, now),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            now,
        ),
        condition("Ready", ready, Some("ContainersNotReady"), now),
        condition("ContainersReady", ready, Some("ContainersNotReady"), now),
        condition("PodScheduled", true, None, now),
    ];
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
        reason: view.evicted.as_ref().map(|_| REASON_EVICTED.to_string()),
        message: view.evicted.clone(),
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
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn running(name: &str) -> ContainerView {
        let mut c = ContainerView::new(name, "busybox", REASON_CONTAINER_CREATING);
        c.state = RunState::Running {
            started_at: ts(1),
            container_id: "peapod://abc".into(),
        };
        c.ever_started = true;
        c
    }

    fn finished(name: &str, code: i32) -> ContainerView {
        let mut c = ContainerView::new(name, "busybox", REASON_CONTAINER_CREATING);
        c.state = RunState::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: terminated_reason(code, false).into(),
            message: None,
            started_at: Some(ts(1)),
            finished_at: ts(2),
            container_id: "peapod://abc".into(),
        });
        c.ever_started = true;
        c.done = true;
        c
    }

    #[test]
    fn phases() {
        let mut v = PodView {
            app: vec![ContainerView::new(
                "a",
                "busybox",
                REASON_CONTAINER_CREATING,
            )],
            ..Default::default()
        };
        assert_eq!(phase(&v), PHASE_PENDING);
        v.app = vec![running("a"), finished("b", 0)];
        assert_eq!(phase(&v), PHASE_RUNNING);
        v.app = vec![finished("a", 0), finished("b", 0)];
        assert_eq!(phase(&v), PHASE_SUCCEEDED);
        v.app = vec![finished("a", 0), finished("b", 3)];
        assert_eq!(phase(&v), PHASE_FAILED);
        v.init = vec![running("i")];
        v.app = vec![ContainerView::new("a", "busybox", REASON_POD_INITIALIZING)];
        assert_eq!(phase(&v), PHASE_PENDING);
        v.init_failed = true;
        assert_eq!(phase(&v), PHASE_FAILED);
        v.init_failed = false;
        v.init = Vec::new();
        v.app = vec![running("a")];
        v.evicted = Some("Usage of EmptyDir volume \"x\" exceeds the limit \"1Mi\". ".into());
        assert_eq!(phase(&v), PHASE_FAILED);
        let s = pod_status(&v, None, ts(3));
        assert_eq!(s.reason.as_deref(), Some(REASON_EVICTED));
        assert_eq!(s.message, v.evicted);
    }

    #[test]
    fn status_carries_states_ready_and_ip() {
        let mut a = running("a");
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
        assert_eq!(cs.restart_count, 2);
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 137);
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn reasons() {
        assert_eq!(terminated_reason(0, false), "Completed");
        assert_eq!(terminated_reason(2, false), "Error");
        assert_eq!(terminated_reason(137, true), "OOMKilled");
    }
}
