//! From the Pod's `Probe` and `LifecycleHandler` to an [`Action`]: the host defaults to the pod
//! IP, named ports resolve against the container's `ports[].name`, exec probe commands expand
//! `$(VAR)` from the container's own env values [pkg/kubelet/prober/prober.go,
//! pkg/probe/http/request.go, pkg/probe/util.go, pkg/kubelet/lifecycle/handlers.go].

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Action, HookResult, HttpGet, ProbeResult};
use crate::container::env::expand;
use crate::gofmt::quote;

/// A handler that cannot run, with the action as far as it resolved (the hook message names
/// its kind and path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub action: Box<Action>,
    pub error: String,
}

impl Unresolved {
    /// For a probe, the prober's error: thrown away, told as `... errored and resulted in
    /// unknown state: <error>`.
    pub fn probe_result(&self) -> ProbeResult {
        ProbeResult::unknown(self.error.clone())
    }

    /// For a hook, a failure.
    pub fn hook_result(&self) -> HookResult {
        HookResult::Failed {
            error: self.error.clone(),
            output: None,
        }
    }
}

/// probe.ResolveContainerPort: a number, or the `containerPort` of the container's port of
/// that name, or (last ditch) a number written as a string; then the range check. The errors
/// are Go's (`strconv.Atoi: parsing "http": invalid syntax`, `invalid port number: 0`).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number: i64 = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                None => atoi(name)?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// Go's `strconv.Atoi` and its error texts.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            quote(s)
        ));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", quote(s)))
}

/// The action of a probe of `container` in a pod whose IP is `pod_ip`.
pub fn probe_action(
    probe: &Probe,
    container: &Container,
    pod_ip: &str,
) -> Result<Action, Unresolved> {
    if let Some(exec) = probe.exec.as_ref() {
        let command = exec.command.clone().unwrap_or_default();
        return Ok(Action::Exec {
            command: expand_static(&command, container),
        });
    }
    if let Some(get) = probe.http_get.as_ref() {
        return http_action(get, container, pod_ip);
    }
    if let Some(tcp) = probe.tcp_socket.as_ref() {
        let host = non_empty(tcp.host.as_deref()).unwrap_or(pod_ip).to_string();
        return match resolve_port(&tcp.port, container) {
            Ok(port) => Ok(Action::Tcp { host, port }),
            Err(error) => Err(Unresolved {
                action: Box::new(Action::Tcp { host, port: 0 }),
                error,
            }),
        };
    }
    if let Some(grpc) = probe.grpc.as_ref() {
        let action = Action::Grpc {
            host: pod_ip.to_string(),
            port: u16::try_from(grpc.port).unwrap_or(0),
            service: grpc.service.clone().unwrap_or_default(),
        };
        return match u16::try_from(grpc.port).ok().filter(|p| *p > 0) {
            Some(_) => Ok(action),
            None => Err(Unresolved {
                action: Box::new(action),
                error: format!("invalid port number: {}", grpc.port),
            }),
        };
    }
    Err(Unresolved {
        action: Box::new(Action::Exec { command: vec![] }),
        error: format!("missing probe handler for container {}", container.name),
    })
}

/// The action of a lifecycle handler of `container`. A `tcpSocket` handler is accepted by the
/// API but never run by the kubelet: it fails as `invalid handler`.
pub fn hook_action(
    handler: &LifecycleHandler,
    container: &Container,
    pod_ip: &str,
) -> Result<Action, Unresolved> {
    if let Some(exec) = handler.exec.as_ref() {
        // Hooks run the command as written: no $(VAR) expansion [handlers.go Run].
        return Ok(Action::Exec {
            command: exec.command.clone().unwrap_or_default(),
        });
    }
    if let Some(get) = handler.http_get.as_ref() {
        return http_action(get, container, pod_ip);
    }
    if let Some(sleep) = handler.sleep.as_ref() {
        return Ok(Action::Sleep {
            seconds: sleep.seconds,
        });
    }
    let host = handler
        .tcp_socket
        .as_ref()
        .and_then(|t| t.host.clone())
        .unwrap_or_default();
    Err(Unresolved {
        action: Box::new(Action::Tcp { host, port: 0 }),
        error: "invalid handler: tcpSocket is not supported as a lifecycle handler".into(),
    })
}

fn http_action(
    get: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
) -> Result<Action, Unresolved> {
    let mut http = HttpGet {
        scheme: non_empty(get.scheme.as_deref())
            .unwrap_or("http")
            .to_ascii_lowercase(),
        host: non_empty(get.host.as_deref()).unwrap_or(pod_ip).to_string(),
        port: 0,
        path: get.path.clone().unwrap_or_default(),
        headers: get
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    };
    match resolve_port(&get.port, container) {
        Ok(port) => {
            http.port = port;
            Ok(Action::Http(http))
        }
        Err(error) => Err(Unresolved {
            action: Box::new(Action::Http(http)),
            error,
        }),
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// ExpandContainerCommandOnlyStatic [pkg/kubelet/container/helpers.go]: `$(VAR)` from the
/// container's `env` values only; a variable set by `valueFrom` expands to "" (its `value`).
fn expand_static(command: &[String], container: &Container) -> Vec<String> {
    let env = container.env.as_deref().unwrap_or_default();
    let lookup = |name: &str| -> Option<String> {
        env.iter()
            .rev()
            .find(|e| e.name == name)
            .map(|e| e.value.clone().unwrap_or_default())
    };
    command.iter().map(|arg| expand(arg, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, EnvVar, EnvVarSource, ExecAction, GRPCAction, HTTPHeader, SleepAction,
        TCPSocketAction,
    };

    fn container() -> Container {
        Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "DIR".into(),
                    value: Some("/tmp".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "FROM".into(),
                    value_from: Some(EnvVarSource::default()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn ports_resolve_by_name_number_or_string() {
        let c = container();
        let s = |v: &str| IntOrString::String(v.into());
        assert_eq!(resolve_port(&s("http"), &c), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert_eq!(resolve_port(&s("82"), &c), Ok(82));
        assert_eq!(
            resolve_port(&s("metrics"), &c),
            Err("strconv.Atoi: parsing \"metrics\": invalid syntax".into())
        );
        assert_eq!(
            resolve_port(&IntOrString::Int(0), &c),
            Err("invalid port number: 0".into())
        );
        assert_eq!(
            resolve_port(&s("70000"), &c),
            Err("invalid port number: 70000".into())
        );
    }

    #[test]
    fn probes_default_to_the_pod_ip_and_expand_static_env() {
        let c = container();
        let exec = Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "cat".into(),
                    "$(DIR)/x$(FROM)".into(),
                    "$(NONE)".into(),
                ]),
            }),
            ..Default::default()
        };
        assert_eq!(
            probe_action(&exec, &c, "10.88.0.5"),
            Ok(Action::Exec {
                command: vec!["cat".into(), "/tmp/x".into(), "$(NONE)".into()]
            })
        );
        let get = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                path: Some("/healthz".into()),
                scheme: Some("HTTPS".into()),
                http_headers: Some(vec![HTTPHeader {
                    name: "Host".into(),
                    value: "example.com".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Ok(Action::Http(h)) = probe_action(&get, &c, "10.88.0.5") else {
            panic!("not http");
        };
        assert_eq!(
            (h.scheme.as_str(), h.host.as_str(), h.port),
            ("https", "10.88.0.5", 8080)
        );
        assert_eq!(
            h.headers,
            vec![("Host".to_string(), "example.com".to_string())]
        );
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction {
                host: Some("127.0.0.1".into()),
                port: IntOrString::String("nope".into()),
            }),
            ..Default::default()
        };
        let err = probe_action(&tcp, &c, "10.88.0.5").unwrap_err();
        assert_eq!(
            err.probe_result(),
            ProbeResult::unknown("strconv.Atoi: parsing \"nope\": invalid syntax")
        );
        let grpc = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            probe_action(&grpc, &c, "10.88.0.5"),
            Ok(Action::Grpc {
                host: "10.88.0.5".into(),
                port: 9000,
                service: String::new()
            })
        );
    }

    #[test]
    fn hooks_run_commands_as_written() {
        let c = container();
        let exec = LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["echo".into(), "$(DIR)".into()]),
            }),
            ..Default::default()
        };
        assert_eq!(
            hook_action(&exec, &c, "10.0.0.1"),
            Ok(Action::Exec {
                command: vec!["echo".into(), "$(DIR)".into()]
            })
        );
        let sleep = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 3 }),
            ..Default::default()
        };
        assert_eq!(
            hook_action(&sleep, &c, ""),
            Ok(Action::Sleep { seconds: 3 })
        );
        let tcp = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction::default()),
            ..Default::default()
        };
        assert!(matches!(
            hook_action(&tcp, &c, "").unwrap_err().hook_result(),
            HookResult::Failed { .. }
        ));
    }
}
