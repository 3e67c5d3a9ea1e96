//! The API server's rules for the lifecycle fields peapod runs [pkg/apis/core/validation]:
//! `activeDeadlineSeconds`, `shareProcessNamespace` (not with `hostPID`), `spec.os`, a container's `restartPolicy` (native sidecars are init
//! containers with `Always`; regular init containers may not have lifecycle hooks or probes),
//! its `restartPolicyRules` (ContainerRestartRules, and the RestartAllContainers action of
//! RestartAllContainersOnContainerExits) and `lifecycle.stopSignal` (only with `spec.os.name`,
//! and a signal of that OS).

use k8s_openapi::api::core::v1::{Container, PodOS, PodSpec};

use super::validate::Check;
use super::Reason;
use crate::pod::machine::rules::{
    ACTION_RESTART, ACTION_RESTART_ALL_CONTAINERS, OPERATOR_IN, OPERATOR_NOT_IN,
};
use crate::pod::machine::Kind;

/// `activeDeadlineSeconds` range [validation.InclusiveRangeError(1, math.MaxInt32)].
const DEADLINE_RANGE: &str = "must be between 1 and 2147483647, inclusive";
/// The API server checks this in the pod's (internal) security context, whose path it reports
/// [validation.go ValidatePodSecurityContext].
const SHARE_PIDS_WITH_HOST_PID: &str = "ShareProcessNamespace and HostPID cannot both be enabled";
/// `spec.os.name` values [validation.go validOS].
const OS_NAMES: &[&str] = &["linux", "windows"];
const INIT_ONLY_WITH_ALWAYS: &str =
    "may not be set for init containers without restartPolicy=Always";
/// A container's `restartPolicy` values [validation.go validateContainerRestartPolicy].
const CONTAINER_RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const RULE_ACTIONS: &[&str] = &[ACTION_RESTART, ACTION_RESTART_ALL_CONTAINERS];
const RULE_OPERATORS: &[&str] = &[OPERATOR_IN, OPERATOR_NOT_IN];
const RULES_WITHOUT_POLICY: &str = "must specify restartPolicy when restart rules are used";
const EXIT_CODES_REQUIRED: &str = "must be specified";
/// At most this many rules a container, and exit codes a rule.
const MAX_RULES: usize = 20;
const MAX_EXIT_CODES: usize = 255;
const STOP_SIGNAL_WITHOUT_OS: &str = "may not be set for containers with empty `spec.os.name`";
/// The stop signals of a Linux pod, as the API server lists them (sorted)
/// [validation.go supportedStopSignalsLinux].
const LINUX_STOP_SIGNALS: &[&str] = &[
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCLD",
    "SIGCONT",
    "SIGFPE",
    "SIGHUP",
    "SIGILL",
    "SIGINT",
    "SIGIO",
    "SIGIOT",
    "SIGKILL",
    "SIGPIPE",
    "SIGPOLL",
    "SIGPROF",
    "SIGPWR",
    "SIGQUIT",
    "SIGRTMAX",
    "SIGRTMAX-1",
    "SIGRTMAX-10",
    "SIGRTMAX-11",
    "SIGRTMAX-12",
    "SIGRTMAX-13",
    "SIGRTMAX-14",
    "SIGRTMAX-2",
    "SIGRTMAX-3",
    "SIGRTMAX-4",
    "SIGRTMAX-5",
    "SIGRTMAX-6",
    "SIGRTMAX-7",
    "SIGRTMAX-8",
    "SIGRTMAX-9",
    "SIGRTMIN",
    "SIGRTMIN+1",
    "SIGRTMIN+10",
    "SIGRTMIN+11",
    "SIGRTMIN+12",
    "SIGRTMIN+13",
    "SIGRTMIN+14",
    "SIGRTMIN+15",
    "SIGRTMIN+2",
    "SIGRTMIN+3",
    "SIGRTMIN+4",
    "SIGRTMIN+5",
    "SIGRTMIN+6",
    "SIGRTMIN+7",
    "SIGRTMIN+8",
    "SIGRTMIN+9",
    "SIGSEGV",
    "SIGSTKFLT",
    "SIGSTOP",
    "SIGSYS",
    "SIGTERM",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGVTALRM",
    "SIGWINCH",
    "SIGXCPU",
    "SIGXFSZ",
];
const WINDOWS_STOP_SIGNALS: &[&str] = &["SIGKILL", "SIGTERM"];

pub(crate) fn validate(spec: &PodSpec, check: &mut Check) {
    if let Some(v) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&v) {
            check.invalid(
                "spec.activeDeadlineSeconds",
                format!("{v}: {DEADLINE_RANGE}"),
            );
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        check.invalid(
            "spec.securityContext.shareProcessNamespace",
            format!("true: {SHARE_PIDS_WITH_HOST_PID}"),
        );
    }
    if let Some(os) = spec.os.as_ref() {
        if os.name.is_empty() {
            check.push("spec.os.name", Reason::Required);
        } else {
            check.supported("spec.os", &os.name, OS_NAMES);
        }
    }
    let os = spec.os.as_ref();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        restart_policy(c, &path, check);
        if Kind::of_init(c) == Kind::Sidecar {
            stop_signal(c, &path, os, check);
            continue;
        }
        let forbidden = [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ];
        for (field, set) in forbidden {
            if set {
                check.push(
                    format!("{path}.{field}"),
                    Reason::Forbidden(INIT_ONLY_WITH_ALWAYS.into()),
                );
            }
        }
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        restart_policy(c, &path, check);
        stop_signal(c, &path, os, check);
    }
}

/// A container's own `restartPolicy` and its `restartPolicyRules`: rules need the policy set,
/// at most 20 of them, each with a known action and `exitCodes` (operator In or NotIn, at most
/// 255 values) [validation.go validateContainerRestartPolicy].
fn restart_policy(c: &Container, path: &str, check: &mut Check) {
    if let Some(p) = c.restart_policy.as_deref() {
        check.supported(
            &format!("{path}.restartPolicy"),
            p,
            CONTAINER_RESTART_POLICIES,
        );
    }
    let rules = c.restart_policy_rules.as_deref().unwrap_or_default();
    if rules.is_empty() {
        return;
    }
    if c.restart_policy.is_none() {
        check.push(
            format!("{path}.restartPolicy"),
            Reason::RequiredDetail(RULES_WITHOUT_POLICY.into()),
        );
    }
    if rules.len() > MAX_RULES {
        check.push(
            format!("{path}.restartPolicyRules"),
            Reason::TooMany {
                len: rules.len(),
                max: MAX_RULES,
            },
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.restartPolicyRules[{i}]");
        check.supported(&format!("{at}.action"), &rule.action, RULE_ACTIONS);
        let Some(codes) = rule.exit_codes.as_ref() else {
            check.push(
                format!("{at}.exitCodes"),
                Reason::RequiredDetail(EXIT_CODES_REQUIRED.into()),
            );
            continue;
        };
        check.supported(
            &format!("{at}.exitCodes.operator"),
            &codes.operator,
            RULE_OPERATORS,
        );
        let n = codes.values.as_ref().map_or(0, Vec::len);
        if n > MAX_EXIT_CODES {
            check.push(
                format!("{at}.exitCodes.values"),
                Reason::TooMany {
                    len: n,
                    max: MAX_EXIT_CODES,
                },
            );
        }
    }
}

/// `lifecycle.stopSignal` needs the pod's OS, and a signal of that OS [validateStopSignal].
fn stop_signal(c: &Container, path: &str, os: Option<&PodOS>, check: &mut Check) {
    let Some(signal) = c.lifecycle.as_ref().and_then(|l| l.stop_signal.as_deref()) else {
        return;
    };
    let field = format!("{path}.lifecycle.stopSignal");
    match os.map(|o| o.name.as_str()) {
        None => check.push(field, Reason::Forbidden(STOP_SIGNAL_WITHOUT_OS.into())),
        Some("windows") => check.supported(&field, signal, WINDOWS_STOP_SIGNALS),
        Some(_) => check.supported(&field, signal, LINUX_STOP_SIGNALS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Problem;

    fn problems(json: serde_json::Value) -> Vec<String> {
        let spec: PodSpec = serde_json::from_value(json).unwrap();
        let mut out: Vec<Problem> = Vec::new();
        validate(
            &spec,
            &mut Check {
                doc: 1,
                out: &mut out,
            },
        );
        out.iter().map(|p| p.cause()).collect()
    }

    #[test]
    fn the_linux_list_is_sorted_as_the_api_server_prints_it() {
        let mut sorted = LINUX_STOP_SIGNALS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, LINUX_STOP_SIGNALS);
        assert_eq!(LINUX_STOP_SIGNALS.len(), 65);
    }

    #[test]
    fn deadline_os_and_restart_policies() {
        assert_eq!(
            problems(serde_json::json!({
                "activeDeadlineSeconds": 0,
                "os": {"name": "plan9"},
                "initContainers": [
                    {"name": "s", "restartPolicy": "Sometimes"},
                    {"name": "i", "livenessProbe": {"exec": {"command": ["true"]}}},
                    {"name": "j", "restartPolicy": "OnFailure", "startupProbe": {"exec": {"command": ["true"]}}}
                ],
                "containers": [{"name": "a", "restartPolicy": "Always"}, {"name": "b", "restartPolicy": "no"}]
            })),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
                "spec.os: Unsupported value: \"plan9\": supported values: \"linux\", \"windows\"",
                "spec.initContainers[0].restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.initContainers[1].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[2].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.containers[1].restartPolicy: Unsupported value: \"no\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
        assert!(problems(serde_json::json!({
            "activeDeadlineSeconds": 30,
            "initContainers": [{"name": "s", "restartPolicy": "Always", "lifecycle": {}}],
            "containers": [{"name": "a"}]
        }))
        .is_empty());
    }

    #[test]
    fn restart_rules_need_a_policy_known_actions_and_exit_codes() {
        let rule = |action: &str, codes: serde_json::Value| serde_json::json!({"action": action, "exitCodes": codes});
        let in_88 = serde_json::json!({"operator": "In", "values": [88]});
        assert_eq!(
            problems(serde_json::json!({
                "initContainers": [{"name": "w", "restartPolicy": "Always",
                    "restartPolicyRules": [rule("RestartAllContainers", in_88.clone())]}],
                "containers": [
                    {"name": "a", "restartPolicyRules": [rule("Restart", in_88.clone())]},
                    {"name": "b", "restartPolicy": "Never", "restartPolicyRules": [
                        rule("Retry", in_88.clone()),
                        {"action": "Restart"},
                        rule("Restart", serde_json::json!({"operator": "Is", "values": [1]})),
                        rule("Restart", serde_json::json!({"operator": "NotIn", "values": (0..256).collect::<Vec<i32>>()})),
                    ]},
                    {"name": "c", "restartPolicy": "Never",
                        "restartPolicyRules": vec![rule("Restart", in_88.clone()); 21]}
                ]
            })),
            vec![
                "spec.containers[0].restartPolicy: Required value: must specify restartPolicy when restart rules are used",
                "spec.containers[1].restartPolicyRules[0].action: Unsupported value: \"Retry\": supported values: \"Restart\", \"RestartAllContainers\"",
                "spec.containers[1].restartPolicyRules[1].exitCodes: Required value: must be specified",
                "spec.containers[1].restartPolicyRules[2].exitCodes.operator: Unsupported value: \"Is\": supported values: \"In\", \"NotIn\"",
                "spec.containers[1].restartPolicyRules[3].exitCodes.values: Too many: 256: must have at most 255 items",
                "spec.containers[2].restartPolicyRules: Too many: 21: must have at most 20 items",
            ]
        );
    }

    #[test]
    fn a_shared_pid_namespace_is_not_the_hosts() {
        assert_eq!(
            problems(serde_json::json!({
                "shareProcessNamespace": true, "hostPID": true, "containers": [{"name": "a"}]
            })),
            vec!["spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"]
        );
        assert!(problems(serde_json::json!({
            "shareProcessNamespace": true, "hostPID": false, "containers": [{"name": "a"}]
        }))
        .is_empty());
    }

    #[test]
    fn a_stop_signal_needs_the_os_and_one_of_its_signals() {
        let with = |os: serde_json::Value, signal: &str| {
            problems(serde_json::json!({
                "os": os,
                "containers": [{"name": "a", "lifecycle": {"stopSignal": signal}}]
            }))
        };
        assert!(with(serde_json::json!({"name": "linux"}), "SIGQUIT").is_empty());
        assert_eq!(
            with(serde_json::Value::Null, "SIGQUIT"),
            vec!["spec.containers[0].lifecycle.stopSignal: Forbidden: may not be set for containers with empty `spec.os.name`"]
        );
        assert_eq!(
            with(serde_json::json!({"name": "windows"}), "SIGQUIT"),
            vec!["spec.containers[0].lifecycle.stopSignal: Unsupported value: \"SIGQUIT\": supported values: \"SIGKILL\", \"SIGTERM\""]
        );
        let bad = with(serde_json::json!({"name": "linux"}), "QUIT");
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("spec.containers[0].lifecycle.stopSignal: Unsupported value: \"QUIT\": supported values: \"SIGABRT\", \"SIGALRM\""), "{bad:?}");
    }
}
