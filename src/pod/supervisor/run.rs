//! One container of the pod across its instances: its spec and kind, its lifecycle state (with
//! the live instance inside the states that have one), its back-off, and the history the
//! status shows.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::logs::CriLogWriter;
use crate::pod::backoff::RestartBackoff;
use crate::pod::machine::{ContainerPolicy, Entry, Kind, Lifecycle, Probes};
use crate::pod::model::{
    ContainerView, RunState, Terminated, REASON_CONTAINER_CREATING, REASON_POD_INITIALIZING,
};
use crate::probe::ContainerProbes;

/// A running container instance.
pub(crate) struct Instance {
    pub pid: Pid,
    /// Its restartCount (the instance number in its paths and in the keeper's tags).
    pub attempt: u32,
    pub container_id: String,
    pub dir: PathBuf,
    pub cgroup: Option<PathBuf>,
    pub started_at: Timestamp,
    pub started: Instant,
    /// stdout, stderr read ends (a terminal's master: stdout only); None once at EOF.
    pub pipes: [Option<OwnedFd>; 2],
    /// Where attached clients' stdin goes: the stdin pipe's write end, or the terminal's
    /// master; None without `stdin`, or once closed (`stdinOnce`, or the container closed it).
    pub input: Option<OwnedFd>,
    /// Stdin bytes the container has not taken yet; while there are some, the clients that
    /// write stdin are not read (the container's pace holds them back).
    pub input_pending: Vec<u8>,
    /// The master of the container's terminal (`tty`), for window sizes.
    pub terminal: Option<OwnedFd>,
    pub log: CriLogWriter,
    pub termination_log: PathBuf,
    pub stop_signal: Signal,
    /// The init's pipe while its execve may still fail (`Created::start_at_gate`); read
    /// when the instance ends. None for an adopted instance.
    pub exec_report: Option<OwnedFd>,
}

/// One container of the pod across its instances.
pub(crate) struct ContainerRun {
    pub spec: Container,
    pub kind: Kind,
    /// Its restart policy (its own or the pod's) and restartPolicyRules.
    pub policy: ContainerPolicy,
    pub life: Lifecycle<Instance>,
    /// Its probes' timing and thresholds, started over with each instance.
    pub probes: ContainerProbes,
    pub backoff: RestartBackoff,
    /// Instances started so far; the next instance's restartCount.
    pub instances: u32,
    /// How the last instance ended, and the one before it (the status's lastState).
    pub last: Option<Terminated>,
    pub before_last: Option<Terminated>,
    /// The image of the latest instance (the spec's before the first), as the status shows it:
    /// after an update, the old one until the new instance is made.
    pub image: String,
    /// The resolved image, `<repository>@sha256:...`.
    pub image_id: String,
    /// The waiting reason before the first start.
    pub waiting_reason: &'static str,
    /// Why the last start failed after the process ran (the postStart hook's message),
    /// shown as `PostStartHookError` until the next instance runs.
    pub start_error: Option<String>,
    /// Waits for its first run since a restart of all containers (cleared when it starts).
    pub rerun: bool,
    /// A pull for this container's next start has just succeeded (pull policy Always must
    /// not pull again for the same start).
    pub image_pulled: bool,
    /// Stopped for a new image and not started again yet: the status keeps showing the old
    /// instance running, as the kubelet's does (it kills and starts the container in one
    /// sync and publishes no status between), so the pod's phase does not pass through the
    /// end of its containers.
    pub redefining: bool,
    /// Removed through the CRI: kept (attach clients name runs by index) but not shown.
    pub removed: bool,
}

impl ContainerRun {
    /// `pod_has_init`: the pod has init containers, which makes every container wait with
    /// PodInitializing rather than ContainerCreating before it is created
    /// [kubelet_pods.go convertToAPIContainerStatuses].
    pub fn new(spec: Container, kind: Kind, pod_has_init: bool, policy: ContainerPolicy) -> Self {
        let waiting_reason = if pod_has_init {
            REASON_POD_INITIALIZING
        } else {
            REASON_CONTAINER_CREATING
        };
        ContainerRun {
            life: Lifecycle::waiting(waiting_reason),
            waiting_reason,
            probes: ContainerProbes::new(&spec),
            image: spec.image.clone().unwrap_or_default(),
            spec,
            kind,
            policy,
            backoff: RestartBackoff::default(),
            instances: 0,
            last: None,
            before_last: None,
            image_id: String::new(),
            start_error: None,
            rerun: false,
            image_pulled: false,
            redefining: false,
            removed: false,
        }
    }

    /// `spec.containers{name}` or `spec.initContainers{name}`, as events name containers.
    pub fn field_path(&self) -> String {
        let list = if self.kind.is_init() {
            "spec.initContainers"
        } else {
            "spec.containers"
        };
        format!("{list}{{{}}}", self.spec.name)
    }

    /// The container as the pod-level decisions see it.
    pub fn entry(&self) -> Entry {
        Entry {
            kind: self.kind,
            brief: self.life.brief(self.last.as_ref().map(|t| t.exit_code)),
        }
    }

    /// Which probes gate `started` and `ready`.
    pub fn probes(&self) -> Probes {
        Probes {
            startup: self.spec.startup_probe.is_some(),
            readiness: self.spec.readiness_probe.is_some(),
        }
    }

    pub fn has_post_start(&self) -> bool {
        self.spec
            .lifecycle
            .as_ref()
            .is_some_and(|l| l.post_start.is_some())
    }

    pub fn has_pre_stop(&self) -> bool {
        self.spec
            .lifecycle
            .as_ref()
            .is_some_and(|l| l.pre_stop.is_some())
    }

    /// Records how an instance ended.
    pub fn record_exit(&mut self, t: Terminated) {
        self.before_last = self.last.replace(t);
    }

    /// The status of this container, as the kubelet reports it [kubelet_pods.go
    /// convertToAPIContainerStatuses]: the current state, and the termination before it.
    pub fn view(&self) -> ContainerView {
        let mut v =
            ContainerView::new(&self.spec.name, self.kind, &self.image, self.waiting_reason);
        v.image_id = self.image_id.clone();
        v.restart_count = self.instances.saturating_sub(1);
        v.rerun = self.rerun;
        v.last_terminated = self.last.clone();
        let terminated = |v: &mut ContainerView, t: &Terminated, before: &Option<Terminated>| {
            v.state = RunState::Terminated(t.clone());
            v.last_terminated = before.clone();
            // An init container that exited 0 counts as ready [prober_manager.go].
            v.ready = v.kind == Kind::Init && t.exit_code == 0;
        };
        match &self.life {
            Lifecycle::Waiting { waiting, .. } => {
                v.state = RunState::Waiting {
                    reason: waiting.reason.clone(),
                    message: waiting.message.clone(),
                };
            }
            Lifecycle::Exited { .. } if self.redefining => {
                if let Some(t) = &self.last {
                    v.state = RunState::Running {
                        started_at: t.started_at.unwrap_or(t.finished_at),
                        container_id: t.container_id.clone(),
                    };
                    v.last_terminated = self.before_last.clone();
                    v.started = true;
                }
            }
            Lifecycle::Exited { .. } | Lifecycle::Done => {
                if let Some(t) = &self.last {
                    terminated(&mut v, t, &self.before_last);
                }
            }
            // postStart has not returned: not Running yet.
            Lifecycle::Starting { .. } => {}
            Lifecycle::Running {
                inst,
                started,
                ready,
            } => {
                v.state = RunState::Running {
                    started_at: inst.started_at,
                    container_id: inst.container_id.clone(),
                };
                v.started = *started;
                // A plain init container is ready only once it exited 0 [prober_manager.go].
                v.ready = *started && *ready && self.kind != Kind::Init;
            }
            Lifecycle::Stopping { inst, .. } => {
                v.state = RunState::Running {
                    started_at: inst.started_at,
                    container_id: inst.container_id.clone(),
                };
                v.started = true;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(container_id: &str) -> Terminated {
        Terminated {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: Some(Timestamp::UNIX_EPOCH),
            finished_at: Timestamp::UNIX_EPOCH,
            container_id: container_id.into(),
        }
    }

    #[test]
    fn a_container_stopped_for_a_new_image_shows_its_old_instance_until_the_new_one_runs() {
        let spec: Container =
            serde_json::from_value(serde_json::json!({"name": "app", "image": "busybox"})).unwrap();
        let pod = k8s_openapi::api::core::v1::Pod::default();
        let policy = crate::pod::machine::ContainerPolicy::of(&pod, &spec);
        let mut r = ContainerRun::new(spec, Kind::App, false, policy);
        r.instances = 1;
        r.record_exit(ended("old"));
        r.life = Lifecycle::Exited { next_start: None };
        r.spec.image = Some("busybox:2".into());
        r.redefining = true;
        let v = r.view();
        assert_eq!(
            v.state,
            RunState::Running {
                started_at: Timestamp::UNIX_EPOCH,
                container_id: "old".into()
            }
        );
        assert_eq!(
            (v.restart_count, v.last_terminated, v.image.as_str()),
            (0, None, "busybox")
        );
        r.redefining = false;
        assert_eq!(r.view().state, RunState::Terminated(ended("old")));
    }
}
