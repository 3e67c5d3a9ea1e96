//! The lifecycle of a pod's containers as the kubelet runs it, as plain data and pure
//! functions: no process, file or clock of its own, so every decision is unit-tested without
//! root. The supervisor (`pod::supervisor`) owns the processes and applies what is decided here.
//!
//! - [`Lifecycle`]: the one state each container is in (`Waiting`, `Exited`, `Starting`,
//!   `Running`, `Stopping`, `Done`), generic over the live instance the supervisor keeps in it;
//!   the transitions on a start, a hook or probe result, a stop request and an exit
//!   ([`state`]).
//! - [`exit`]: whether an ended container runs again (restartPolicy per container kind, stop
//!   causes) and when (the kubelet's back-off), and the `Killing` event texts.
//! - [`rules`]: a container's own `restartPolicy` and `restartPolicyRules` (`Restart`,
//!   `RestartAllContainers`).
//! - [`order`]: what may start now (init containers in order, native sidecars, then the app
//!   containers), when the pod is complete, the termination order (sidecars last, in reverse),
//!   whether a lost sandbox is made again, and `activeDeadlineSeconds`.
//!
//! The decisions follow the kubelet [pkg/kubelet/kuberuntime/kuberuntime_manager.go
//! computePodActions, computeInitContainerActions; kuberuntime_container.go killContainer;
//! pkg/kubelet/container/helpers.go ShouldContainerBeRestarted; pkg/kubelet/active_deadline.go].

pub mod exit;
pub mod order;
#[cfg(test)]
mod redefine_tests;
pub mod rules;
#[cfg(test)]
mod rules_tests;
pub mod state;
#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::{Container, Pod};

pub use exit::{
    after_exit, killing_message, redefine, restarts, restarts_all, Exit, Next, Redefine, StopCause,
};
pub use order::{Brief, Completion, Entry};
pub use rules::{ContainerPolicy, Policy, RuleAction};
pub use state::{Lifecycle, ProbeEffect, ProbeKind, ProbeResult, Probes, Stop, StopStep, Waiting};

/// `restartPolicy: Always` on an init container makes it a native sidecar [core/v1 types.go
/// ContainerRestartPolicyAlways].
pub const CONTAINER_RESTART_ALWAYS: &str = "Always";

/// The kubelet never stops a container it decided to kill with less than this, even when the
/// grace period is spent [kuberuntime_container.go minimumGracePeriodInSeconds].
pub const MIN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Which kind of container, which decides how it is restarted and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `initContainers[]`: runs to completion, in order, before the next one.
    Init,
    /// `initContainers[]` with `restartPolicy: Always`: started in order, then kept running
    /// (restarted whatever the pod's policy) until the app containers are gone.
    Sidecar,
    /// `containers[]`.
    App,
}

impl Kind {
    /// The kind of an entry of `initContainers`.
    pub fn of_init(c: &Container) -> Kind {
        if c.restart_policy.as_deref() == Some(CONTAINER_RESTART_ALWAYS) {
            Kind::Sidecar
        } else {
            Kind::Init
        }
    }

    /// Listed in `initContainers` (and so in `initContainerStatuses`).
    pub fn is_init(self) -> bool {
        self != Kind::App
    }
}

/// The pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The pod's policy; Always when unset, as the API server defaults it.
    pub fn of(pod: &Pod) -> RestartPolicy {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// The kubelet's `shouldRestartOnFailure`: anything but Never.
    pub fn restarts_on_failure(self) -> bool {
        self != RestartPolicy::Never
    }
}
