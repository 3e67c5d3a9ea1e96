//! A container whose image changed in a pod update, as the kubelet's computePodActions and
//! computeInitContainerActions treat it.

use std::time::Duration;

use super::*;
use crate::pod::backoff::{RestartBackoff, INITIAL_BACKOFF};

use Kind::{App, Init, Sidecar};
use RestartPolicy::{Always, Never, OnFailure};

const RUNNING: Brief = Brief::Running { started: true };
const NOT_STARTED: Brief = Brief::Running { started: false };

#[test]
fn a_running_app_container_is_killed_and_restarted() {
    assert_eq!(redefine(App, RUNNING), Redefine::Kill);
    assert_eq!(redefine(App, NOT_STARTED), Redefine::Kill);
    assert_eq!(redefine(App, Brief::Starting), Redefine::Kill);
}

#[test]
fn a_sidecar_is_killed_once_started_and_a_plain_init_container_never() {
    assert_eq!(redefine(Sidecar, RUNNING), Redefine::Kill);
    assert_eq!(redefine(Sidecar, NOT_STARTED), Redefine::Nothing);
    assert_eq!(redefine(Init, RUNNING), Redefine::Nothing);
    assert_eq!(
        redefine(Init, Brief::Done { code: Some(0) }),
        Redefine::Nothing
    );
}

#[test]
fn a_container_waiting_for_a_restart_starts_now_and_a_finished_one_stays_done() {
    for kind in [App, Init, Sidecar] {
        assert_eq!(redefine(kind, Brief::Scheduled), Redefine::StartNow);
        assert_eq!(redefine(kind, Brief::Exited), Redefine::StartNow);
        assert_eq!(redefine(kind, Brief::Stopping), Redefine::Nothing);
        assert_eq!(redefine(kind, Brief::Waiting), Redefine::Nothing);
    }
    assert_eq!(
        redefine(App, Brief::Done { code: Some(0) }),
        Redefine::Nothing
    );
}

#[test]
fn the_new_definition_runs_whatever_the_policy_and_at_once() {
    for policy in [Always, OnFailure, Never] {
        assert!(restarts(App, policy, 0, Some(StopCause::DefinitionChanged)));
        let mut backoff = RestartBackoff::for_new_definition(true);
        let exit = Exit {
            code: 143,
            ran_for: Duration::from_secs(1),
        };
        let next = after_exit(
            App,
            policy,
            exit,
            Some(StopCause::DefinitionChanged),
            &mut backoff,
        );
        assert_eq!(
            next,
            Next::Restart {
                delay: Duration::ZERO
            }
        );
        // The back-off of the new definition is untouched by the stop: its first crash
        // waits 10 s when an instance had ended before, else restarts at once.
        assert_eq!(backoff.on_exit(Duration::from_secs(1)), INITIAL_BACKOFF);
    }
    let mut fresh = RestartBackoff::for_new_definition(false);
    assert_eq!(fresh.on_exit(Duration::from_secs(1)), Duration::ZERO);
    // A terminating pod still restarts nothing.
    assert!(!restarts(App, Always, 0, Some(StopCause::PodTermination)));
}

#[test]
fn the_killing_messages_are_the_kubelets() {
    assert_eq!(
        killing_message(App, "app", StopCause::DefinitionChanged, true),
        "Container app definition changed, will be restarted"
    );
    assert_eq!(
        killing_message(Sidecar, "proxy", StopCause::DefinitionChanged, true),
        "Init container proxy definition changed"
    );
}
