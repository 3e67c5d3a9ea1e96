//! The READY, STATUS and RESTARTS columns of `get pods`, computed as kubectl's `printPod` does
//! [kubernetes/kubernetes pkg/printers/internalversion/printers.go].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodStatus};

use super::format::since;

pub const REASON_TERMINATING: &str = "Terminating";
pub const REASON_COMPLETED: &str = "Completed";
pub const REASON_POD_INITIALIZING: &str = "PodInitializing";

/// What `get pods` shows about one pod besides its name and age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// `ready/total`
    pub ready: String,
    pub status: String,
    /// `3` or `3 (42s ago)`
    pub restarts: String,
}

/// The STATUS column alone.
pub fn status_string(pod: &Pod, status: &PodStatus, deleting: bool) -> String {
    summarize(pod, status, deleting, Timestamp::now()).status
}

fn is_restartable_init(c: Option<&Container>) -> bool {
    c.and_then(|c| c.restart_policy.as_deref()) == Some("Always")
}

fn condition_true(status: &PodStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn last_finished(cs: &ContainerStatus) -> Option<Timestamp> {
    cs.last_state
        .as_ref()?
        .terminated
        .as_ref()?
        .finished_at
        .as_ref()
        .map(|t| t.0)
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// READY, STATUS and RESTARTS for a pod. `deleting`: a delete was requested (kubectl's
/// deletionTimestamp).
pub fn summarize(pod: &Pod, status: &PodStatus, deleting: bool, now: Timestamp) -> PodSummary {
    let spec = pod.spec.as_ref();
    let init_specs: &[Container] = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let find_init = |name: &str| init_specs.iter().find(|c| c.name == name);
    let mut total = spec.map_or(0, |s| s.containers.len());
    total += init_specs
        .iter()
        .filter(|c| is_restartable_init(Some(c)))
        .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = status.phase.as_deref().unwrap_or("");
    let mut reason = match status.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.to_string(),
    };

    let mut initializing = false;
    let init_statuses = status.init_container_statuses.as_deref().unwrap_or(&[]);
    for (i, cs) in init_statuses.iter().enumerate() {
        let sidecar = is_restartable_init(find_init(&cs.name));
        restarts += i64::from(cs.restart_count);
        last_restart = later(last_restart, last_finished(cs));
        if sidecar {
            sidecar_restarts += i64::from(cs.restart_count);
            last_sidecar_restart = later(last_sidecar_restart, last_finished(cs));
        }
        let state = cs.state.clone().unwrap_or_default();
        let terminated = state.terminated.as_ref();
        let waiting_reason = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .unwrap_or("");
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        } else if sidecar && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        } else if let Some(t) = terminated {
            reason = match t.reason.as_deref() {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ => match t.signal {
                    Some(sig) if sig != 0 => format!("Init:Signal:{sig}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if !waiting_reason.is_empty() && waiting_reason != REASON_POD_INITIALIZING {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        // kubectl's `break` here leaves only its switch, so a later failing init container's
        // reason wins; keep going the same way.
        initializing = true;
    }

    if !initializing || condition_true(status, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let statuses = status.container_statuses.as_deref().unwrap_or(&[]);
        for cs in statuses.iter().rev() {
            restarts += i64::from(cs.restart_count);
            last_restart = later(last_restart, last_finished(cs));
            let state = cs.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.as_deref())
                .filter(|r| !r.is_empty());
            let terminated = state.terminated.as_ref();
            if let Some(w) = waiting {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ => match t.signal {
                        Some(sig) if sig != 0 => format!("Signal:{sig}"),
                        _ => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if cs.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == REASON_COMPLETED && has_running {
            reason = if condition_true(status, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = REASON_TERMINATING.to_string();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    PodSummary {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        PodCondition, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub fn pod(containers: &[&str], inits: &[&str]) -> Pod {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers.iter().map(mk).collect(),
                init_containers: if inits.is_empty() {
                    None
                } else {
                    Some(inits.iter().map(mk).collect())
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    pub fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(ts("2024-01-01T00:00:00Z"))),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn terminated(name: &str, code: i32, reason: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    reason: reason.map(String::from),
                    finished_at: Some(Time(ts("2024-01-01T00:00:10Z"))),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn with_restarts(mut cs: ContainerStatus, n: i32, finished: &str) -> ContainerStatus {
        cs.restart_count = n;
        cs.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                reason: Some("Error".into()),
                finished_at: Some(Time(ts(finished))),
                ..Default::default()
            }),
            ..Default::default()
        });
        cs
    }

    pub fn status(phase: &str, init: Vec<ContainerStatus>, app: Vec<ContainerStatus>) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            init_container_statuses: if init.is_empty() { None } else { Some(init) },
            container_statuses: Some(app),
            ..Default::default()
        }
    }

    fn sum(p: &Pod, s: &PodStatus, deleting: bool) -> PodSummary {
        summarize(p, s, deleting, ts("2024-01-01T00:01:00Z"))
    }

    #[test]
    fn running_and_ready() {
        let s = sum(
            &pod(&["a", "b"], &[]),
            &status(
                "Running",
                vec![],
                vec![running("a", true), running("b", false)],
            ),
            false,
        );
        assert_eq!(
            (s.ready.as_str(), s.status.as_str(), s.restarts.as_str()),
            ("1/2", "Running", "0")
        );
    }

    #[test]
    fn waiting_reasons_win() {
        let p = pod(&["a"], &[]);
        assert_eq!(
            sum(
                &p,
                &status("Pending", vec![], vec![waiting("a", "ContainerCreating")]),
                false
            )
            .status,
            "ContainerCreating"
        );
        let crash = with_restarts(waiting("a", "CrashLoopBackOff"), 2, "2024-01-01T00:00:55Z");
        let s = sum(&p, &status("Running", vec![], vec![crash]), false);
        assert_eq!(s.status, "CrashLoopBackOff");
        assert_eq!(s.restarts, "2 (5s ago)");
        assert_eq!(s.ready, "0/1");
    }

    #[test]
    fn terminated_reasons_and_codes() {
        let p = pod(&["a"], &[]);
        let st = |cs| sum(&p, &status("Failed", vec![], vec![cs]), false).status;
        assert_eq!(st(terminated("a", 137, Some("OOMKilled"))), "OOMKilled");
        assert_eq!(st(terminated("a", 1, Some("Error"))), "Error");
        assert_eq!(st(terminated("a", 0, Some("Completed"))), "Completed");
        assert_eq!(st(terminated("a", 3, None)), "ExitCode:3");
        let mut sig = terminated("a", 137, None);
        sig.state
            .as_mut()
            .unwrap()
            .terminated
            .as_mut()
            .unwrap()
            .signal = Some(9);
        assert_eq!(st(sig), "Signal:9");
    }

    #[test]
    fn the_first_container_decides_as_kubectl_walks_backwards() {
        let p = pod(&["a", "b"], &[]);
        let s = status(
            "Running",
            vec![],
            vec![waiting("a", "ErrImagePull"), running("b", true)],
        );
        assert_eq!(sum(&p, &s, false).status, "ErrImagePull");
    }

    #[test]
    fn completed_with_a_running_container_is_running_or_not_ready() {
        let p = pod(&["a", "b"], &[]);
        let mut s = status(
            "Running",
            vec![],
            vec![running("a", true), terminated("b", 0, Some("Completed"))],
        );
        assert_eq!(sum(&p, &s, false).status, "NotReady");
        s.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert_eq!(sum(&p, &s, false).status, "Running");
    }

    #[test]
    fn init_containers() {
        let p = pod(&["app"], &["i1", "i2"]);
        let s = status(
            "Pending",
            vec![running("i1", false), waiting("i2", "PodInitializing")],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(sum(&p, &s, false).status, "Init:1/2");
        let s = status(
            "Pending",
            vec![terminated("i1", 0, Some("Completed")), running("i2", false)],
            vec![],
        );
        assert_eq!(sum(&p, &s, false).status, "Init:1/2");
        let s = status("Pending", vec![waiting("i1", "PodInitializing")], vec![]);
        assert_eq!(sum(&pod(&["app"], &["i1"]), &s, false).status, "Init:0/1");
        let s = status("Failed", vec![terminated("i1", 1, Some("Error"))], vec![]);
        assert_eq!(sum(&p, &s, false).status, "Init:Error");
        let s = status("Failed", vec![terminated("i1", 2, None)], vec![]);
        assert_eq!(sum(&p, &s, false).status, "Init:ExitCode:2");
        let s = status(
            "Pending",
            vec![with_restarts(
                waiting("i1", "CrashLoopBackOff"),
                3,
                "2024-01-01T00:00:18Z",
            )],
            vec![],
        );
        let got = sum(&p, &s, false);
        assert_eq!(
            (got.status.as_str(), got.restarts.as_str()),
            ("Init:CrashLoopBackOff", "3 (42s ago)")
        );
    }

    #[test]
    fn terminating_unless_terminal_and_unknown_phase() {
        let p = pod(&["a"], &[]);
        assert_eq!(
            sum(
                &p,
                &status("Running", vec![], vec![running("a", true)]),
                true
            )
            .status,
            "Terminating"
        );
        assert_eq!(
            sum(
                &p,
                &status(
                    "Succeeded",
                    vec![],
                    vec![terminated("a", 0, Some("Completed"))]
                ),
                true
            )
            .status,
            "Completed"
        );
        assert_eq!(
            sum(&p, &status("Unknown", vec![], vec![]), false).status,
            "Unknown"
        );
        assert_eq!(status_string(&p, &PodStatus::default(), false), "");
    }
}
