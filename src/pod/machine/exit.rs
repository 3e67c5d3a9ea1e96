//! Whether and when a container that ended runs again, and what the kubelet says when it kills
//! one.

use std::time::Duration;

use super::order::Brief;
use super::rules::{ContainerPolicy, Policy};
use super::Kind;
use crate::pod::backoff::RestartBackoff;
use crate::probe::{messages, ProbeKind};

/// How an instance ended, as far as the decisions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (128+N when killed by signal N, 137 for an OOM kill).
    pub code: i32,
    /// How long the instance ran: a long run resets the back-off.
    pub ran_for: Duration,
}

/// Why the supervisor stopped a container (none when it ended on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The pod is terminating: deleted, past `activeDeadlineSeconds`, evicted, or complete
    /// (its sidecars are stopped once the app containers are done). Never restarted.
    PodTermination,
    /// The sandbox died: every container is stopped, then started again in a new sandbox as
    /// the restart policy allows [computePodActions, the createPodSandbox branch].
    SandboxLost,
    /// Failed its liveness probe.
    Liveness,
    /// Failed its startup probe.
    Startup,
    /// Its postStart hook failed.
    PostStartHook,
    /// Its image changed in a pod update: started again with the new one whatever the restart
    /// policy, at once [computePodActions: `restart = true` for a changed container hash;
    /// the back-off is keyed by that hash, GetStableKey].
    DefinitionChanged,
    /// A container's exit matched a `RestartAllContainers` rule: every container is killed at
    /// once (no preStop, no grace period) and the pod runs again from its first init container
    /// in the same sandbox [KEP-5532].
    RestartAll,
}

/// What follows the end of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The container will not run again.
    Done,
    /// It runs again `delay` after the exit (zero: at once); during a sandbox loss, not before
    /// the new sandbox exists either.
    Restart { delay: Duration },
}

/// Whether a container that ended runs again [kubelet ShouldContainerBeRestarted for app
/// containers, computeInitContainerActions for init containers and sidecars, computePodActions
/// for probe kills]:
/// - a terminating pod restarts nothing;
/// - a container whose image changed always runs again;
/// - a liveness or startup kill restarts unless the policy is Never (`restart :=
///   shouldRestartOnFailure(pod)`); a sidecar always;
/// - a sidecar always runs again while the pod lives;
/// - an init container runs again only after a failure, and not under Never;
/// - an app container: Always always, OnFailure after a failure, Never never.
///
/// The policy is the container's own when it sets one, and a matching `Restart` rule restarts
/// it whatever the policy [ContainerShouldRestart]. A container stopped for a restart of all
/// containers is not restarted on its own: the whole pod starts again.
pub fn restarts(kind: Kind, policy: impl Policy, code: i32, cause: Option<StopCause>) -> bool {
    match (cause, kind) {
        (Some(StopCause::PodTermination | StopCause::RestartAll), _) => false,
        (Some(StopCause::DefinitionChanged), _) | (_, Kind::Sidecar) => true,
        (Some(StopCause::Liveness | StopCause::Startup), _) => policy.restarts_on_failure(),
        (_, Kind::Init) => code != 0 && policy.should_restart(code),
        (_, Kind::App) => policy.should_restart(code),
    }
}

/// Whether an exit restarts every container of the pod: the exit code matches a
/// `RestartAllContainers` rule of the container, whatever its kind, unless the supervisor
/// stopped it for the pod's end, a sandbox loss or a restart of all containers already under
/// way (those exits must not start another one) [ShouldAllContainersRestart].
pub fn restarts_all(policy: &ContainerPolicy, code: i32, cause: Option<StopCause>) -> bool {
    let own_end = matches!(
        cause,
        None | Some(StopCause::Liveness | StopCause::Startup | StopCause::PostStartHook)
    );
    own_end && policy.restarts_all(code)
}

/// Decides what follows an exit and records it in the container's back-off: the first restart
/// is immediate, later ones wait 10 s doubling to 300 s, counted from the exit [kubelet
/// doBackOff]. The back-off applies after a sandbox loss too: the kubelet's check looks at the
/// container's last exit, whatever stopped it. A container stopped for a new image starts at
/// once: its back-off was made anew with the definition.
pub fn after_exit(
    kind: Kind,
    policy: impl Policy,
    exit: Exit,
    cause: Option<StopCause>,
    backoff: &mut RestartBackoff,
) -> Next {
    if cause == Some(StopCause::DefinitionChanged) {
        Next::Restart {
            delay: Duration::ZERO,
        }
    } else if restarts(kind, policy, exit.code, cause) {
        Next::Restart {
            delay: backoff.on_exit(exit.ran_for),
        }
    } else {
        Next::Done
    }
}

/// The `Killing` event's message [kuberuntime_container.go killContainer: `Stopping container
/// x` when no message is given; computePodActions and computeInitContainerActions for probe
/// kills and changed definitions; startContainer passes `FailedPostStartHook` as the message].
pub fn killing_message(kind: Kind, name: &str, cause: StopCause, restart: bool) -> String {
    let probe = match cause {
        StopCause::PodTermination | StopCause::SandboxLost | StopCause::RestartAll => {
            return format!("Stopping container {name}")
        }
        StopCause::DefinitionChanged if kind == Kind::Sidecar => {
            return format!("Init container {name} definition changed")
        }
        StopCause::DefinitionChanged => {
            return format!("Container {name} definition changed, will be restarted")
        }
        StopCause::PostStartHook => return messages::KILLING_FAILED_POST_START.to_string(),
        StopCause::Liveness => ProbeKind::Liveness,
        StopCause::Startup => ProbeKind::Startup,
    };
    if kind == Kind::Sidecar {
        return messages::sidecar_kill_message(name, probe);
    }
    messages::kill_message(name, probe, restart)
}

/// What the kubelet does about a container whose image changed in a pod update, given where
/// it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redefine {
    /// Stop it (grace period, preStop) and start it again with the new image
    /// ([`StopCause::DefinitionChanged`]).
    Kill,
    /// It waits for a restart (back-off, retry): the restart comes now, under a back-off of
    /// the new definition's own.
    StartNow,
    /// Nothing now: the new image is used at its next start, if any.
    Nothing,
}

/// [computePodActions: a running app container whose hash changed is killed and restarted
/// whatever the policy; one that is not running is restarted only as the policy says.
/// computeInitContainerActions: a running sidecar whose hash changed is killed and restarted
/// once it is started (a startup probe still running holds it); a plain init container is
/// never checked, it runs to its end and is not run again for a new image.] A container
/// waiting for a restart starts at once: its back-off is keyed by the old hash.
pub fn redefine(kind: Kind, brief: Brief) -> Redefine {
    match (kind, brief) {
        (Kind::App, Brief::Starting | Brief::Running { .. }) => Redefine::Kill,
        (Kind::Sidecar, Brief::Running { started: true }) => Redefine::Kill,
        (_, Brief::Scheduled | Brief::Exited) => Redefine::StartNow,
        _ => Redefine::Nothing,
    }
}
