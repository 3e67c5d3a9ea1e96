//! The API server's messages for probes and handlers, checked on defaulted Pods.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::super::{defaults, validate};

/// Defaults then validates a pod whose only container has `fields`; returns the causes.
fn causes(container: serde_json::Value) -> Vec<String> {
    causes_of(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [container]}
    }))
}

fn causes_of(pod: serde_json::Value) -> Vec<String> {
    let mut pod: Pod = serde_json::from_value(pod).unwrap();
    defaults::apply(&mut pod);
    let mut out = Vec::new();
    validate::validate(&pod, 1, &mut out);
    out.iter().map(|p| p.cause()).collect()
}

fn app(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"name": "app", "image": "busybox:1.36"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn defaults_fill_in_the_api_servers_values() {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [app(json!({
            "livenessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 0},
            "lifecycle": {"preStop": {"httpGet": {"port": 80}}}
        }))]}
    }))
    .unwrap();
    defaults::apply(&mut pod);
    let c = &pod.spec.unwrap().containers[0];
    let p = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        (
            p.timeout_seconds,
            p.period_seconds,
            p.success_threshold,
            p.failure_threshold
        ),
        (Some(1), Some(10), Some(1), Some(3))
    );
    assert_eq!(p.initial_delay_seconds, None);
    let get = p.http_get.as_ref().unwrap();
    assert_eq!(
        (get.path.as_deref(), get.scheme.as_deref()),
        (Some("/"), Some("HTTP"))
    );
    let stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    assert_eq!(
        stop.http_get.as_ref().unwrap().scheme.as_deref(),
        Some("HTTP")
    );
}

#[test]
fn a_valid_pod_has_no_problem() {
    let found = causes(app(json!({
        "ports": [{"name": "http", "containerPort": 8080}],
        "livenessProbe": {"httpGet": {"port": "http", "httpHeaders": [{"name": "X-Custom", "value": "1"}]},
                          "terminationGracePeriodSeconds": 5},
        "readinessProbe": {"tcpSocket": {"port": 8080}, "successThreshold": 3},
        "startupProbe": {"grpc": {"port": 9000, "service": "x"}, "failureThreshold": 30},
        "lifecycle": {"postStart": {"exec": {"command": ["true"]}}, "preStop": {"sleep": {"seconds": 0}}}
    })));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn handlers_need_exactly_one_kind() {
    let found = causes(app(json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}, "grpc": {"port": 2}},
        "readinessProbe": {"periodSeconds": 5},
        "lifecycle": {"postStart": {}, "preStop": {"exec": {"command": []}}}
    })));
    for want in [
        "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].livenessProbe.grpc: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
        "spec.containers[0].lifecycle.preStop.exec.command: Required value",
    ] {
        assert!(found.contains(&want.to_string()), "missing {want:?} in {found:?}");
    }
}

#[test]
fn numbers_thresholds_and_grace_periods() {
    let found = causes(app(json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2, "initialDelaySeconds": -1,
                          "terminationGracePeriodSeconds": 0},
        "startupProbe": {"exec": {"command": ["true"]}, "successThreshold": 3, "timeoutSeconds": -5},
        "readinessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 10,
                           "failureThreshold": -2}
    })));
    for want in [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].livenessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0",
        "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
        "spec.containers[0].startupProbe.timeoutSeconds: Invalid value: -5: must be greater than or equal to 0",
        "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 10: must not be set for readinessProbes",
        "spec.containers[0].readinessProbe.failureThreshold: Invalid value: -2: must be greater than or equal to 0",
    ] {
        assert!(found.contains(&want.to_string()), "missing {want:?} in {found:?}");
    }
}

#[test]
fn ports_schemes_and_headers() {
    let found = causes(app(json!({
        "livenessProbe": {"httpGet": {"port": 0, "scheme": "FTP", "httpHeaders": [{"name": "Bad Name", "value": "v"}]}},
        "readinessProbe": {"tcpSocket": {"port": "Http--"}},
        "startupProbe": {"grpc": {"port": 70000}},
        "lifecycle": {"postStart": {"httpGet": {"port": "8080"}}}
    })));
    for want in [
        "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders: Invalid value: \"Bad Name\": a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
        "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"Http--\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"Http--\": must not contain consecutive hyphens",
        "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"Http--\": must not begin or end with a hyphen",
        "spec.containers[0].startupProbe.grpc.port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].lifecycle.postStart.httpGet.port: Invalid value: \"8080\": must contain at least one letter (a-z)",
    ] {
        assert!(found.contains(&want.to_string()), "missing {want:?} in {found:?}");
    }
}

#[test]
fn sleep_must_fit_in_the_grace_period() {
    let pod = |seconds: i64, grace: Option<i64>| {
        let mut spec = json!({"containers": [app(json!({
            "lifecycle": {"preStop": {"sleep": {"seconds": seconds}}}
        }))]});
        if let Some(g) = grace {
            spec["terminationGracePeriodSeconds"] = json!(g);
        }
        causes_of(json!({"metadata": {"name": "p"}, "spec": spec}))
    };
    assert!(pod(30, None).is_empty());
    assert!(
        pod(0, Some(0)).is_empty(),
        "zero is allowed (PodLifecycleSleepActionAllowZero)"
    );
    assert_eq!(
        pod(31, None),
        vec!["spec.containers[0].lifecycle.preStop.sleep: Invalid value: 31: must be non-negative and less than terminationGracePeriodSeconds (30)"]
    );
    assert_eq!(
        pod(-1, Some(5)),
        vec!["spec.containers[0].lifecycle.preStop.sleep: Invalid value: -1: must be non-negative and less than terminationGracePeriodSeconds (5)"]
    );
}

#[test]
fn init_containers_take_them_only_as_sidecars() {
    let init = |policy: Option<&str>| {
        let mut c = app(json!({
            "name": "init",
            "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2},
            "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}
        }));
        if let Some(p) = policy {
            c["restartPolicy"] = json!(p);
        }
        causes_of(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [c], "containers": [app(json!({}))]
        }}))
    };
    let plain = init(None);
    assert!(plain.contains(&"spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always".to_string()), "{plain:?}");
    assert!(plain.contains(&"spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always".to_string()));
    let sidecar = init(Some("Always"));
    assert!(
        sidecar.contains(
            &"spec.initContainers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
                .to_string()
        ),
        "{sidecar:?}"
    );
}
