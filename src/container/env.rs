//! The container's process: argv (command/args vs ENTRYPOINT/CMD) and environment (image env,
//! `HOSTNAME`, container env with `$(VAR)` expansion and downward-API values).
//!
//! Pure functions over the PodSpec and image config; nothing here reads the disk.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use oci_spec::image::Config as ImageConfig;

use super::spec::SpecError;
use crate::manifest::resources::Resources;

/// PATH used when the image sets none (containerd's `oci.DefaultPathEnv` for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Values the downward API may hand to a container.
pub(crate) struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub field: &'a str,
    pub resources: Resources,
    pub pod_ip: Option<Ipv4Addr>,
    pub node_name: &'a str,
    pub node_memory_bytes: u64,
    pub node_cpu_millis: u64,
}

/// Expands `$(NAME)` references with `lookup`, the way Kubernetes' third_party/forked/golang
/// expansion does: `$$` is an escaped `$`, an unknown or unterminated reference is kept as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        out.push_str(&input[literal_start..i]);
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
            }
            b'(' => match input[i + 2..].find(')') {
                Some(rel) => {
                    let name = &input[i + 2..i + 2 + rel];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    i += rel + 3;
                }
                None => {
                    out.push_str("$(");
                    i += 2;
                }
            },
            _ => {
                out.push('$');
                i += 1;
            }
        }
        literal_start = i;
    }
    out.push_str(&input[literal_start..]);
    out
}

fn lookup_in(vars: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Sets `key` in an ordered env list: replaces an existing entry in place, else appends
/// (containerd's replaceOrAppendEnvValues).
fn set_var(list: &mut Vec<(String, String)>, key: &str, value: String) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

/// The container's own env vars, resolved and expanded, in declaration order (later wins).
/// This is the set `$(VAR)` in command and args may refer to; image env is not part of it.
pub(crate) fn container_env(ctx: &EnvContext) -> Result<Vec<(String, String)>, SpecError> {
    let field = ctx.field;
    if ctx
        .container
        .env_from
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        return Err(SpecError::Unsupported {
            field: format!("{field}.envFrom"),
            what: "envFrom (configMap/secret sources)".into(),
        });
    }
    let mut vars: Vec<(String, String)> = Vec::new();
    for (j, var) in ctx.container.env.iter().flatten().enumerate() {
        let value = env_value(ctx, var, &format!("{field}.env[{j}]"), &vars)?;
        set_var(&mut vars, &var.name, value);
    }
    Ok(vars)
}

fn env_value(
    ctx: &EnvContext,
    var: &EnvVar,
    field: &str,
    earlier: &[(String, String)],
) -> Result<String, SpecError> {
    let Some(source) = &var.value_from else {
        let raw = var.value.as_deref().unwrap_or("");
        return Ok(expand(raw, &lookup_in(earlier)));
    };
    if let Some(field_ref) = &source.field_ref {
        return field_ref_value(
            ctx,
            &field_ref.field_path,
            &format!("{field}.valueFrom.fieldRef"),
        );
    }
    if let Some(res) = &source.resource_field_ref {
        let rfield = format!("{field}.valueFrom.resourceFieldRef");
        if let Some(other) = res.container_name.as_deref() {
            if !other.is_empty() && other != ctx.container.name {
                return Err(SpecError::Unsupported {
                    field: format!("{rfield}.containerName"),
                    what: format!("resources of another container ({other:?})"),
                });
            }
        }
        let divisor = res.divisor.as_ref().map(|q| q.0.as_str());
        return resource_value(ctx, &res.resource, divisor, &rfield);
    }
    let what = if source.config_map_key_ref.is_some() {
        "configMapKeyRef"
    } else if source.secret_key_ref.is_some() {
        "secretKeyRef"
    } else if source.file_key_ref.is_some() {
        "fileKeyRef"
    } else {
        "an empty valueFrom"
    };
    Err(SpecError::Unsupported {
        field: format!("{field}.valueFrom"),
        what: what.into(),
    })
}

fn field_ref_value(ctx: &EnvContext, path: &str, field: &str) -> Result<String, SpecError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "status.podIP" => ctx.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "status.podIPs" => ctx.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "spec.nodeName" => ctx.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        _ => {
            if let Some(key) = label_key(path, "metadata.labels") {
                return Ok(meta
                    .labels
                    .as_ref()
                    .and_then(|m| m.get(key).cloned())
                    .unwrap_or_default());
            }
            if let Some(key) = label_key(path, "metadata.annotations") {
                return Ok(meta
                    .annotations
                    .as_ref()
                    .and_then(|m| m.get(key).cloned())
                    .unwrap_or_default());
            }
            return Err(SpecError::InvalidValue {
                field: format!("{field}.fieldPath"),
                reason: format!("unsupported field path {path:?}"),
            });
        }
    };
    Ok(value)
}

/// `metadata.labels['key']` -> `key`.
fn label_key<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// Divisors the downward API accepts in practice: `1`, `1m` for cpu; `1`, `1k`, `1Ki`, ... for
/// memory. Returns the divisor in milli-units (cpu) or bytes (memory).
fn parse_divisor(text: &str, cpu: bool) -> Option<u64> {
    let (digits, suffix) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match (suffix, cpu) {
        ("", true) => 1000,
        ("m", true) => 1,
        ("", false) => 1,
        ("k", false) => 1_000,
        ("M", false) => 1_000_000,
        ("G", false) => 1_000_000_000,
        ("Ki", false) => 1 << 10,
        ("Mi", false) => 1 << 20,
        ("Gi", false) => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale).filter(|d| *d > 0)
}

fn resource_value(
    ctx: &EnvContext,
    resource: &str,
    divisor: Option<&str>,
    field: &str,
) -> Result<String, SpecError> {
    let r = ctx.resources;
    // Without a limit the kubelet reports the node's allocatable [pkg/kubelet/kubelet_resources.go].
    let (amount, cpu) = match resource {
        "limits.cpu" => (r.cpu_limit_millis.unwrap_or(ctx.node_cpu_millis), true),
        "requests.cpu" => (r.cpu_request_millis.unwrap_or(0), true),
        "limits.memory" => (r.memory_limit_bytes.unwrap_or(ctx.node_memory_bytes), false),
        "requests.memory" => (r.memory_request_bytes.unwrap_or(0), false),
        other => {
            return Err(SpecError::Unsupported {
                field: format!("{field}.resource"),
                what: format!("resource {other:?}"),
            })
        }
    };
    let divisor_text = divisor.unwrap_or("1");
    let div = parse_divisor(divisor_text, cpu).ok_or_else(|| SpecError::InvalidValue {
        field: format!("{field}.divisor"),
        reason: format!("unsupported divisor {divisor_text:?} for {resource}"),
    })?;
    Ok(amount.div_ceil(div).to_string())
}

/// The final process env as `KEY=VALUE`: `HOSTNAME`, then the image's env (with a default PATH),
/// then the container's resolved env; a later definition replaces an earlier one in place.
pub(crate) fn process_env(
    image: Option<&ImageConfig>,
    hostname: &str,
    container_vars: &[(String, String)],
) -> Vec<String> {
    let mut list: Vec<(String, String)> = vec![("HOSTNAME".into(), hostname.to_string())];
    let image_env = image.and_then(|c| c.env().as_ref());
    for entry in image_env.into_iter().flatten() {
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set_var(&mut list, k, v.to_string());
    }
    if !list.iter().any(|(k, _)| k == "PATH") {
        list.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    for (k, v) in container_vars {
        set_var(&mut list, k, v.clone());
    }
    list.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// argv: `command` replaces ENTRYPOINT and drops CMD, `args` replaces CMD; both expanded with
/// the container's env [pkg/kubelet/kuberuntime/kuberuntime_container.go, containerd WithProcessArgs].
pub(crate) fn process_args(
    container: &Container,
    image: Option<&ImageConfig>,
    container_vars: &[(String, String)],
    field: &str,
) -> Result<Vec<String>, SpecError> {
    let lookup = lookup_in(container_vars);
    let command: Vec<String> = container
        .command
        .iter()
        .flatten()
        .map(|s| expand(s, &lookup))
        .collect();
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|s| expand(s, &lookup))
        .collect();
    let entrypoint = image
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let cmd = image.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let mut argv = if command.is_empty() {
        entrypoint
    } else {
        command.clone()
    };
    if !args.is_empty() {
        argv.extend(args);
    } else if command.is_empty() {
        argv.extend(cmd);
    }
    if argv.is_empty() {
        return Err(SpecError::NoCommand {
            field: format!("{field}.command"),
        });
    }
    Ok(argv)
}
