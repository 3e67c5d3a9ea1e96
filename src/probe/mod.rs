//! Container probes and lifecycle hooks as the kubelet runs them, for a single-threaded
//! supervisor that must never block on one.
//!
//! It owns: what a probe or hook does ([`Action`], resolved from the Pod's `Probe` /
//! `LifecycleHandler` and the container by [`probe_action`] / [`hook_action`]); running it in a
//! short-lived child process ([`ProbeRunner`]: forked from a single-threaded caller, else
//! `peapod __probe`), which reports one JSON [`Report`] on a pipe; the kinds themselves
//! (`exec` in the container by the path of `peapod exec`, `httpGet`, `tcpSocket`, `grpc` from
//! the pod's network namespace, `sleep` as a timer); the per-probe bookkeeping ([`ProbeState`]:
//! delays, periods, thresholds, transitions) and the kubelet's event texts ([`messages`]).
//! It must not: touch the supervisor's state, write status or events (it returns them), or
//! keep anything heavy in the supervisor (clients live in the children).
//!
//! How a supervisor drives it:
//! 1. per container and probe kind, a [`ProbeState`]; `on_container_started` at each new
//!    instance, `due(now, started)` in the timers, `next_due()` for the poll timeout;
//! 2. when due: `probe_action` -> [`Request`] -> `runner.start(key, request)`, then
//!    `state.on_probe_started(now)`;
//! 3. in the poll loop: the runner's `fds()` in the poll set, `runner.next_deadline()` in the
//!    timeout, `runner.collect(now)` after every wake-up (reads what is ready, kills what is
//!    overdue), `runner.on_exit(pid)` from the `waitpid(-1)` loop (true: one of ours, nothing to
//!    do);
//! 4. each finished `(key, Report::Probe(result))` goes to `state.on_result(&result)`, which
//!    returns the event to record and the transition (ready, not ready, started, kill with the
//!    message and the probe's grace period).
//!
//! Hooks take the same path with [`hook_action`] and [`Report::Hook`]; `sleep` needs no child
//! (the runner completes it at its deadline). Upstream: pkg/probe/{exec,http,tcp,grpc},
//! pkg/kubelet/prober, pkg/kubelet/lifecycle/handlers.go.
//!
//! What it costs the caller (tests/probe_fork.rs, release build): the runner and three probe
//! states add about 20 KiB of anonymous memory; the clients' code runs only in the children.
//! A probe round faults some of peapod's code back into the caller (about 0.6 MiB of PSS, most
//! of it the kernel's 64 KiB fault-around), which the supervisor's idle code-page trim drops
//! again: with periods shorter than its idle delay, trim after the results are handled.

mod action;
mod exec;
mod grpc;
mod h2;
mod hpack;
mod http;
mod http_request;
mod http_tls;
pub mod messages;
mod net;
mod runner;
mod state;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use action::{hook_action, probe_action, resolve_port, Unresolved};
pub use runner::{probe_main, ProbeRunner, KILL_GRACE, PROBE_VERB};
pub use state::{ContainerProbes, ProbeConfig, ProbeKind, ProbeOutcome, ProbeState, Transition};

/// The Kubernetes version peapod implements (the API version it decodes), as the kubelet puts
/// it in `kube-probe/<major>.<minor>` [pkg/probe/http/request.go userAgent].
pub const KUBE_VERSION: &str = "1.37";

/// The most a probe keeps of a command's output or a response body: the kubelet's
/// `maxReadLength` [pkg/probe/exec/exec.go] and `maxRespBodyLength` [pkg/probe/http/http.go].
pub const MAX_OUTPUT: usize = 10 * 1024;

/// Errors of starting a probe or hook child.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe child: {step}: {source}")]
    Spawn {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("probe request: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Who asked: the User-Agent fragment and the HTTP transport's options differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// A probe, with the kubelet's per-probe `timeoutSeconds`.
    Probe { timeout: Duration },
    /// A lifecycle hook: the kubelet gives it no timeout of its own.
    Hook,
}

/// What a probe or hook does, resolved against its container (ports, host, defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A command in the container (the kubelet's `ExecAction`).
    Exec { command: Vec<String> },
    /// An HTTP GET made by peapod from the pod's network namespace.
    Http(HttpGet),
    /// A TCP connect.
    Tcp { host: String, port: u16 },
    /// grpc.health.v1.Health/Check over h2c.
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
    /// A hook's `sleep` (no child).
    Sleep { seconds: i64 },
}

/// A resolved `httpGet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGet {
    /// `http` or `https`.
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// The path as given (may carry a query).
    pub path: String,
    /// `httpHeaders`, in order (names as written).
    pub headers: Vec<(String, String)>,
}

/// The container an `exec` runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecTarget {
    /// The container's pid 1 as the host sees it.
    pub pid: i32,
    /// Its bundle directory (the Spec in `config.json` gives env, user, cwd, seccomp).
    pub bundle: PathBuf,
}

/// One probe or hook to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub purpose: Purpose,
    pub action: Action,
    /// The pod's network namespace (`/proc/<pause pid>/ns/net`) for the network kinds; None
    /// runs them in the caller's (tests on loopback).
    pub netns: Option<PathBuf>,
    /// Required for `exec`.
    pub exec: Option<ExecTarget>,
}

/// A probe's result, as the kubelet's prober has it (`probe.Result`, output, error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeResult {
    Success,
    /// Success with something to say (an HTTP redirect not followed): a `ProbeWarning` event.
    Warning(String),
    /// The probe ran and failed; the text is its output (`HTTP probe failed with statuscode:
    /// 500`, the command's output).
    Failure(String),
    /// The probe could not be run (the prober returned an error): the worker throws the result
    /// away; only the event tells. `state` is the result returned with the error.
    Errored {
        state: ErroredState,
        error: String,
    },
}

/// The `probe.Result` the kubelet's prober returned together with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErroredState {
    /// `unknown`: most errors (an unresolvable port, a command that cannot start).
    Unknown,
    /// `failure`: an HTTP response whose body could not be read.
    Failure,
}

impl ProbeResult {
    /// An error with the `unknown` state.
    pub fn unknown(error: impl Into<String>) -> Self {
        ProbeResult::Errored {
            state: ErroredState::Unknown,
            error: error.into(),
        }
    }
}

/// A hook's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookResult {
    /// The handler returned without error. `http_fallback`: an HTTPS hook got an HTTP answer
    /// and was retried over HTTP (the kubelet's `LifecycleHTTPFallback` event names this host).
    Done { http_fallback: Option<String> },
    /// The handler failed: the error, and for `exec` the command's output (for the message).
    Failed {
        error: String,
        output: Option<String>,
    },
    /// Ended by its deadline (preStop past the grace period) or cancelled: the kubelet stops
    /// waiting and says nothing.
    Unfinished,
}

/// What a child reports, one JSON line on its pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    Probe(ProbeResult),
    Hook(HookResult),
}

/// Keeps at most [`MAX_OUTPUT`] bytes, cut at a character boundary.
pub(crate) fn limit_output(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unused_assignments)]
    fn kube_version_is_the_api_version_decoded() {
        #[allow(unused_mut)]
        let mut decoded = "";
        k8s_openapi::k8s_if_1_37! { decoded = "1.37"; }
        assert_eq!(decoded, KUBE_VERSION);
    }

    #[test]
    fn reports_round_trip_as_json_lines() {
        let r = Report::Probe(ProbeResult::unknown("x"));
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Report>(&line).unwrap(), r);
        let long = "é".repeat(MAX_OUTPUT);
        assert!(limit_output(long).len() <= MAX_OUTPUT);
    }
}
