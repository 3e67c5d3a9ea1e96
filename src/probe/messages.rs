//! The kubelet's words for probes and hooks: event reasons and messages, probe outputs, hook
//! failure messages. One definition each; the supervisor records what these return.

use std::time::Duration;

use super::{Action, ErroredState, HookResult, ProbeKind, ProbeResult};
use crate::gofmt;

/// [pkg/kubelet/events/event.go] ContainerUnhealthy.
pub const REASON_UNHEALTHY: &str = "Unhealthy";
/// [pkg/kubelet/events/event.go] ContainerProbeWarning.
pub const REASON_PROBE_WARNING: &str = "ProbeWarning";
/// [pkg/kubelet/events/event.go] FailedPostStartHook.
pub const REASON_FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
/// [pkg/kubelet/events/event.go] FailedPreStopHook.
pub const REASON_FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
/// [pkg/kubelet/lifecycle/handlers.go] an HTTPS hook answered over HTTP.
pub const REASON_LIFECYCLE_HTTP_FALLBACK: &str = "LifecycleHTTPFallback";

/// The FailedPostStartHook event's message: the kubelet leaves the hook's message out of
/// events so that secrets do not leak [kuberuntime_container.go startContainer].
pub const POST_START_HOOK_FAILED: &str = "PostStartHook failed";
/// The FailedPreStopHook event's message [kuberuntime_container.go executePreStopHook].
pub const PRE_STOP_HOOK_FAILED: &str = "PreStopHook failed";
/// The `Killing` event's message when a failed postStart kills the container.
pub const KILLING_FAILED_POST_START: &str = "FailedPostStartHook";
/// `ErrPostStartHook`: the start error, shown as the waiting reason, with the hook's message
/// as the waiting message [kuberuntime_container.go].
pub const ERR_POST_START_HOOK: &str = "PostStartHookError";
/// `ErrPreStopHook` [kuberuntime_container.go].
pub const ERR_PRE_STOP_HOOK: &str = "PreStopHookError";

/// Event type of every probe and hook event.
pub const WARNING: &str = crate::pod::events::WARNING;

/// [pkg/kubelet/lifecycle/handlers.go runSleepHandler] a sleep cut short.
pub const SLEEP_TERMINATED: &str = "container terminated before sleep hook finished";

/// One event to record: type, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// The event the kubelet records for a probe result [pkg/kubelet/prober/prober.go probe]:
/// none on success.
pub fn probe_event(kind: ProbeKind, result: &ProbeResult) -> Option<ProbeEvent> {
    let (reason, message) = match result {
        ProbeResult::Success => return None,
        ProbeResult::Warning(out) => (REASON_PROBE_WARNING, format!("{kind} probe warning: {out}")),
        ProbeResult::Failure(out) => (REASON_UNHEALTHY, format!("{kind} probe failed: {out}")),
        ProbeResult::Errored { state, error } => {
            let state = match state {
                ErroredState::Unknown => "unknown",
                ErroredState::Failure => "failure",
            };
            (
                REASON_UNHEALTHY,
                format!("{kind} probe errored and resulted in {state} state: {error}"),
            )
        }
    };
    Some(ProbeEvent {
        type_: WARNING,
        reason,
        message,
    })
}

/// The `Killing` event's message after a failed liveness or startup probe
/// [kuberuntime_manager.go computePodActions]: `Container app failed liveness probe, will be
/// restarted` (without the tail when the restart policy does not restart it).
pub fn kill_message(container: &str, kind: ProbeKind, will_restart: bool) -> String {
    let message = format!("Container {container} failed {} probe", probe_word(kind));
    if will_restart {
        format!("{message}, will be restarted")
    } else {
        message
    }
}

/// The same for a native sidecar, which always restarts [computeInitContainerActions].
pub fn sidecar_kill_message(container: &str, kind: ProbeKind) -> String {
    format!(
        "Init container {container} failed {} probe",
        probe_word(kind)
    )
}

fn probe_word(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Liveness => "liveness",
        ProbeKind::Startup => "startup",
        ProbeKind::Readiness => "readiness",
    }
}

/// [pkg/probe/http/http.go] a status outside 200-399.
pub fn http_status_failure(code: u16) -> String {
    format!("HTTP probe failed with statuscode: {code}")
}

/// [pkg/probe/http/http.go] a 3xx that was not followed.
pub fn redirect_warning(body: &str) -> String {
    format!("Probe terminated redirects, Response body: {body}")
}

/// [cri-client remote_runtime.go ExecSync] an exec probe past its timeout.
pub fn exec_timeout(command: &[String]) -> String {
    format!("command {} timed out", gofmt::quote(&command.join(" ")))
}

/// [cri-client remote_runtime.go ExecSync] a command that exited non-zero, as the hook's error.
pub fn exec_exit_error(command: &[String], code: i32, stderr: &str) -> String {
    format!(
        "command '{}' exited with {code}: {stderr}",
        command.join(" ")
    )
}

/// [pkg/probe/grpc/grpc.go] the connection was not ready within the timeout.
pub fn grpc_connect_timeout(addr: &str, timeout: Duration) -> String {
    format!(
        "timeout: failed to connect service {} within {}: context deadline exceeded",
        gofmt::quote(addr),
        gofmt::duration(timeout)
    )
}

/// [pkg/probe/grpc/grpc.go] the Check call was not answered within the timeout.
pub fn grpc_rpc_timeout(timeout: Duration) -> String {
    format!(
        "timeout: health rpc did not complete within {}",
        gofmt::duration(timeout)
    )
}

/// [pkg/probe/grpc/grpc.go] an UNIMPLEMENTED status.
pub fn grpc_unimplemented(message: &str) -> String {
    format!("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}")
}

/// [pkg/probe/grpc/grpc.go] any other status error (grpc-go's `rpc error: code = X desc = Y`).
pub fn grpc_rpc_failed(code: &str, message: &str) -> String {
    format!("error: health rpc probe failed: rpc error: code = {code} desc = {message}")
}

/// [pkg/probe/grpc/grpc.go] a status other than SERVING.
pub fn grpc_unhealthy(status: &str) -> String {
    format!(
        "service unhealthy (responded with {})",
        gofmt::quote(status)
    )
}

/// `format.Pod`: `name_namespace(uid)` [pkg/kubelet/util/format/pod.go].
pub fn pod_desc(name: &str, namespace: &str, uid: &str) -> String {
    format!("{name}_{namespace}({uid})")
}

/// The message of a failed hook [pkg/kubelet/lifecycle/handlers.go Run]; it becomes the
/// container's waiting message after a failed postStart. None when the hook did not fail.
pub fn hook_failure_message(
    action: &Action,
    container: &str,
    pod_desc: &str,
    result: &HookResult,
) -> Option<String> {
    let HookResult::Failed { error, output } = result else {
        return None;
    };
    let (c, p) = (gofmt::quote(container), gofmt::quote(pod_desc));
    Some(match action {
        Action::Exec { command } => format!(
            "Exec lifecycle hook ([{}]) for Container {c} in Pod {p} failed - error: {error}, message: {}",
            command.join(" "),
            gofmt::quote(output.as_deref().unwrap_or_default())
        ),
        Action::Http(get) => format!(
            "HTTP lifecycle hook ({}) for Container {c} in Pod {p} failed - error: {error}",
            get.path
        ),
        Action::Sleep { seconds } => format!(
            "Sleep lifecycle hook ({seconds}) for Container {c} in Pod {p} failed - error: {error}"
        ),
        Action::Tcp { .. } | Action::Grpc { .. } => format!("Cannot run handler: {error}"),
    })
}

/// The `LifecycleHTTPFallback` event's message.
pub fn http_fallback_message(host: &str) -> String {
    format!("request to HTTPS lifecycle hook {host} got HTTP response, retry with HTTP succeeded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::HttpGet;

    #[test]
    fn probe_events_are_worded_as_the_kubelet() {
        let ev = |kind, r| probe_event(kind, &r).map(|e| (e.reason, e.message));
        assert_eq!(ev(ProbeKind::Liveness, ProbeResult::Success), None);
        assert_eq!(
            ev(
                ProbeKind::Liveness,
                ProbeResult::Failure(http_status_failure(500))
            ),
            Some((
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500".into()
            ))
        );
        assert_eq!(
            ev(
                ProbeKind::Readiness,
                ProbeResult::Warning(redirect_warning(""))
            ),
            Some((
                "ProbeWarning",
                "Readiness probe warning: Probe terminated redirects, Response body: ".into()
            ))
        );
        assert_eq!(
            ev(
                ProbeKind::Startup,
                ProbeResult::unknown("strconv.Atoi: parsing \"http\": invalid syntax")
            ),
            Some((
                "Unhealthy",
                "Startup probe errored and resulted in unknown state: strconv.Atoi: parsing \"http\": invalid syntax".into()
            ))
        );
    }

    #[test]
    fn kill_and_probe_outputs() {
        assert_eq!(
            kill_message("app", ProbeKind::Liveness, true),
            "Container app failed liveness probe, will be restarted"
        );
        assert_eq!(
            kill_message("app", ProbeKind::Startup, false),
            "Container app failed startup probe"
        );
        let cmd = vec!["sh".to_string(), "-c".into(), "sleep 10".into()];
        assert_eq!(exec_timeout(&cmd), r#"command "sh -c sleep 10" timed out"#);
        assert_eq!(
            grpc_connect_timeout("10.88.0.5:9000", Duration::from_secs(1)),
            r#"timeout: failed to connect service "10.88.0.5:9000" within 1s: context deadline exceeded"#
        );
        assert_eq!(
            grpc_unhealthy("NOT_SERVING"),
            r#"service unhealthy (responded with "NOT_SERVING")"#
        );
        assert_eq!(
            grpc_rpc_failed("NotFound", "unknown service"),
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
        );
    }

    #[test]
    fn hook_messages_are_worded_as_the_kubelet() {
        let pod = pod_desc("web", "default", "u-1");
        assert_eq!(pod, "web_default(u-1)");
        let cmd = vec!["sh".to_string(), "-c".into(), "echo out; exit 3".into()];
        let failed = HookResult::Failed {
            error: exec_exit_error(&cmd, 3, "err\n"),
            output: Some("out\nerr\n".into()),
        };
        assert_eq!(
            hook_failure_message(&Action::Exec { command: cmd }, "app", &pod, &failed).unwrap(),
            "Exec lifecycle hook ([sh -c echo out; exit 3]) for Container \"app\" in Pod \"web_default(u-1)\" failed - error: command 'sh -c echo out; exit 3' exited with 3: err\n, message: \"out\\nerr\\n\""
        );
        let get = Action::Http(HttpGet {
            scheme: "http".into(),
            host: "10.0.0.1".into(),
            port: 80,
            path: "/stop".into(),
            headers: vec![],
        });
        let failed = HookResult::Failed {
            error: "boom".into(),
            output: None,
        };
        assert_eq!(
            hook_failure_message(&get, "app", &pod, &failed).unwrap(),
            "HTTP lifecycle hook (/stop) for Container \"app\" in Pod \"web_default(u-1)\" failed - error: boom"
        );
        let sleep = Action::Sleep { seconds: 5 };
        assert!(hook_failure_message(&sleep, "app", &pod, &failed)
            .unwrap()
            .starts_with("Sleep lifecycle hook (5) for Container \"app\""));
        let done = HookResult::Done {
            http_fallback: None,
        };
        assert_eq!(hook_failure_message(&sleep, "app", &pod, &done), None);
    }
}
