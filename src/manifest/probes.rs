//! Probes and lifecycle handlers as the API server defaults and validates them
//! [pkg/apis/core/v1/defaults.go SetDefaults_Probe, SetDefaults_HTTPGetAction;
//! pkg/apis/core/validation/validation.go validateProbe, validateLifecycle, validateHandler].
//! Whether peapod runs them is the support table's business, not this file's.

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, Lifecycle, LifecycleHandler, PodSpec, Probe,
    SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::validate::Check;
use super::Reason;
use crate::gofmt::quote;
use crate::pod::machine::Kind;

pub const DEFAULT_TIMEOUT_SECONDS: i32 = 1;
pub const DEFAULT_PERIOD_SECONDS: i32 = 10;
pub const DEFAULT_SUCCESS_THRESHOLD: i32 = 1;
pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;
pub const DEFAULT_HTTP_PATH: &str = "/";
pub const SCHEME_HTTP: &str = "HTTP";
pub const SCHEME_HTTPS: &str = "HTTPS";
const SCHEMES: &[&str] = &[SCHEME_HTTP, SCHEME_HTTPS];

const NEGATIVE: &str = "must be greater than or equal to 0";
const MORE_THAN_ONE: &str = "may not specify more than 1 handler type";
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
/// validation.IsHTTPHeaderName's message [apimachinery/pkg/util/validation].
const HEADER_NAME_RULE: &str = "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')";

/// Fills in the API server's defaults of a container's probes and handlers.
pub(crate) fn apply_defaults(c: &mut Container) {
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        let set = |field: &mut Option<i32>, default: i32| {
            if field.unwrap_or(0) == 0 {
                *field = Some(default);
            }
        };
        set(&mut p.timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
        set(&mut p.period_seconds, DEFAULT_PERIOD_SECONDS);
        set(&mut p.success_threshold, DEFAULT_SUCCESS_THRESHOLD);
        set(&mut p.failure_threshold, DEFAULT_FAILURE_THRESHOLD);
        if let Some(get) = p.http_get.as_mut() {
            default_http_get(get);
        }
    }
    let lifecycle = c.lifecycle.as_mut();
    for h in lifecycle
        .into_iter()
        .flat_map(|l| [l.post_start.as_mut(), l.pre_stop.as_mut()])
        .flatten()
    {
        if let Some(get) = h.http_get.as_mut() {
            default_http_get(get);
        }
    }
}

fn default_http_get(get: &mut HTTPGetAction) {
    if get.path.as_deref().unwrap_or_default().is_empty() {
        get.path = Some(DEFAULT_HTTP_PATH.into());
    }
    if get.scheme.as_deref().unwrap_or_default().is_empty() {
        get.scheme = Some(SCHEME_HTTP.into());
    }
}

/// Checks the probes and lifecycle handlers of every container of `spec` (defaults applied).
pub(crate) fn validate(spec: &PodSpec, check: &mut Check) {
    let grace = spec.termination_grace_period_seconds;
    // Regular init containers may not have probes or hooks at all: validate_lifecycle says so.
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        if Kind::of_init(c) == Kind::Sidecar {
            validate_container(c, &format!("spec.initContainers[{i}]"), grace, check);
        }
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(c, &format!("spec.containers[{i}]"), grace, check);
    }
}

fn validate_container(c: &Container, path: &str, grace: Option<i64>, check: &mut Check) {
    if let Some(l) = c.lifecycle.as_ref() {
        validate_lifecycle(l, &format!("{path}.lifecycle"), grace, check);
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(p) = probe else { continue };
        let path = format!("{path}.{field}");
        validate_probe(p, &path, check);
        match field {
            "readinessProbe" => {
                if let Some(g) = p.termination_grace_period_seconds {
                    check.invalid(
                        format!("{path}.terminationGracePeriodSeconds"),
                        format!("{g}: must not be set for readinessProbes"),
                    );
                }
            }
            _ => {
                let s = p.success_threshold.unwrap_or(DEFAULT_SUCCESS_THRESHOLD);
                if s != 1 {
                    check.invalid(
                        format!("{path}.successThreshold"),
                        format!("{s}: must be 1"),
                    );
                }
            }
        }
    }
}

fn validate_lifecycle(l: &Lifecycle, path: &str, grace: Option<i64>, check: &mut Check) {
    for (field, handler) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        if let Some(h) = handler {
            validate_lifecycle_handler(h, &format!("{path}.{field}"), grace, check);
        }
    }
}

/// The handler of a probe or a lifecycle hook: the API server's `commonHandler`.
#[derive(Default)]
struct Handler<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
    grpc: Option<&'a GRPCAction>,
    sleep: Option<&'a SleepAction>,
}

fn validate_lifecycle_handler(
    h: &LifecycleHandler,
    path: &str,
    grace: Option<i64>,
    check: &mut Check,
) {
    let handler = Handler {
        exec: h.exec.as_ref(),
        http_get: h.http_get.as_ref(),
        tcp_socket: h.tcp_socket.as_ref(),
        grpc: None,
        sleep: h.sleep.as_ref(),
    };
    validate_handler(&handler, path, grace, check);
}

/// validateHandler: exactly one kind (a second one is Forbidden, none is Required), then
/// that kind's own rules.
fn validate_handler(h: &Handler, path: &str, grace: Option<i64>, check: &mut Check) {
    let kinds: Vec<&str> = [
        ("exec", h.exec.is_some()),
        ("httpGet", h.http_get.is_some()),
        ("tcpSocket", h.tcp_socket.is_some()),
        ("grpc", h.grpc.is_some()),
        ("sleep", h.sleep.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(kind, _)| kind)
    .collect();
    for extra in kinds.iter().skip(1) {
        check.push(
            format!("{path}.{extra}"),
            Reason::Forbidden(MORE_THAN_ONE.into()),
        );
    }
    if kinds.is_empty() {
        check.push(
            path,
            Reason::RequiredDetail("must specify a handler type".into()),
        );
    }
    match kinds.first().copied() {
        Some("exec")
            if h.exec
                .and_then(|e| e.command.as_ref())
                .is_none_or(Vec::is_empty) =>
        {
            check.push(format!("{path}.exec.command"), Reason::Required);
        }
        Some("httpGet") => {
            if let Some(get) = h.http_get {
                http_get(get, &format!("{path}.httpGet"), check);
            }
        }
        Some("tcpSocket") => {
            if let Some(t) = h.tcp_socket {
                port_num_or_name(&t.port, &format!("{path}.tcpSocket.port"), check);
            }
        }
        Some("grpc") => {
            if let Some(g) = h.grpc {
                let port = IntOrString::Int(g.port);
                port_num_or_name(&port, &format!("{path}.grpc.port"), check);
            }
        }
        Some("sleep") => {
            // validateSleepAction with PodLifecycleSleepActionAllowZero (GA in 1.34). The
            // grace period is the pod's, defaulted to 30.
            let seconds = h.sleep.map(|s| s.seconds).unwrap_or_default();
            if let Some(g) = grace.filter(|g| seconds < 0 || seconds > *g) {
                check.invalid(
                    format!("{path}.sleep"),
                    format!("{seconds}: must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                );
            }
        }
        _ => {}
    }
}

fn validate_probe(p: &Probe, path: &str, check: &mut Check) {
    let handler = Handler {
        exec: p.exec.as_ref(),
        http_get: p.http_get.as_ref(),
        tcp_socket: p.tcp_socket.as_ref(),
        grpc: p.grpc.as_ref(),
        sleep: None,
    };
    validate_handler(&handler, path, None, check);
    for (field, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            check.invalid(format!("{path}.{field}"), format!("{v}: {NEGATIVE}"));
        }
    }
    if let Some(g) = p.termination_grace_period_seconds.filter(|g| *g <= 0) {
        check.invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            format!("{g}: must be greater than 0"),
        );
    }
}

fn http_get(get: &HTTPGetAction, path: &str, check: &mut Check) {
    if get.path.as_deref().unwrap_or_default().is_empty() {
        check.push(format!("{path}.path"), Reason::Required);
    }
    port_num_or_name(&get.port, &format!("{path}.port"), check);
    check.supported(
        &format!("{path}.scheme"),
        get.scheme.as_deref().unwrap_or_default(),
        SCHEMES,
    );
    for header in get.http_headers.iter().flatten() {
        let valid = !header.name.is_empty()
            && header
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            check.invalid(
                format!("{path}.httpHeaders"),
                format!("{}: {HEADER_NAME_RULE}", quote(&header.name)),
            );
        }
    }
}

/// ValidatePortNumOrName: a number in range, or each rule of IsValidPortName broken.
fn port_num_or_name(port: &IntOrString, path: &str, check: &mut Check) {
    match port {
        IntOrString::Int(n) => {
            if !(1..=65535).contains(n) {
                check.invalid(path, format!("{n}: {PORT_RANGE}"));
            }
        }
        IntOrString::String(name) => {
            for why in port_name_errors(name) {
                check.invalid(path, format!("{}: {why}", quote(name)));
            }
        }
    }
}

/// validation.IsValidPortName's messages, in its order.
pub(crate) fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 bytes");
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

#[cfg(test)]
#[path = "probes_tests.rs"]
mod tests;
