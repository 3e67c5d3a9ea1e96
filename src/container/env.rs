//! The container's process: argv (command/args vs ENTRYPOINT/CMD) and environment (image env,
//! `HOSTNAME`, container env with `$(VAR)` expansion, downward-API values, ConfigMap and
//! Secret keys and `envFrom` [pkg/kubelet/kubelet_pods.go makeEnvironmentVariables]).
//!
//! Pure functions over the PodSpec, the image config and a [`Snapshot`] of the objects the
//! container refers to, which the supervisor reads; nothing here reads the disk. Env values
//! are resolved once, when the container is created, and never follow later updates.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvFromSource, EnvVar, Pod, Secret};
use oci_spec::image::Config as ImageConfig;

use super::spec::SpecError;
use crate::manifest::names::is_env_name;
use crate::manifest::resources::Resources;
use crate::object::{Missing, Refs, Snapshot};
use crate::volume::downward_api;

/// PATH used when the image sets none (containerd's `oci.DefaultPathEnv` for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the node offers, the downward API's answer for a resource without a limit
/// [pkg/kubelet/kubelet_resources.go].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeAllocatable {
    /// None: this node's, [`node_cpu_millis`], read only when a `limits.cpu` reference
    /// without a limit needs it.
    pub cpu_millis: Option<u64>,
    pub memory_bytes: u64,
}

/// This node's CPUs in millicores, read once per process (as the kubelet reads the machine's
/// once): `available_parallelism` reads /proc/self/cgroup, which waits for the kernel's
/// cgroup mutex, and the CPU quota files, a dozen system calls not to make at each start.
pub fn node_cpu_millis() -> u64 {
    static CPU_MILLIS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CPU_MILLIS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u64 * 1000)
            .unwrap_or(1000)
    })
}

/// Values the downward API may hand to a container.
pub(crate) struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub field: &'a str,
    pub resources: Resources,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Option<Ipv4Addr>,
    pub node_name: &'a str,
    pub node: NodeAllocatable,
    pub objects: &'a Snapshot,
}

/// Env sources that cannot be resolved: the container waits in CreateContainerConfigError
/// with the kubelet's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `configmap "x" not found`, `secret "x" not found`.
    #[error(transparent)]
    Missing(#[from] Missing),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        key: String,
        namespace: String,
        name: String,
    },
}

/// A resourceFieldRef that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceRefError {
    #[error("unsupported container resource : {0}")]
    Resource(String),
    #[error("unsupported divisor {divisor:?} for {resource}")]
    Divisor { divisor: String, resource: String },
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

/// One `envFrom` source's variables, and the keys skipped as invalid names.
struct EnvFromVars {
    vars: Vec<(String, String)>,
    skipped: Vec<String>,
}

/// The variables of one `envFrom` source in key order; None when it is missing and optional.
fn env_from_vars(
    source: &EnvFromSource,
    objects: &Snapshot,
) -> Result<Option<EnvFromVars>, EnvError> {
    let prefix = source.prefix.as_deref().unwrap_or_default();
    let data: Vec<(String, String)> = if let Some(r) = &source.config_map_ref {
        match objects.config_map(&r.name) {
            Ok(cm) => cm.data.clone().unwrap_or_default().into_iter().collect(),
            Err(_) if r.optional == Some(true) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    } else if let Some(r) = &source.secret_ref {
        match objects.secret(&r.name) {
            Ok(s) => s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                .collect(),
            Err(_) if r.optional == Some(true) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    } else {
        return Ok(None);
    };
    let mut out = EnvFromVars {
        vars: Vec::new(),
        skipped: Vec::new(),
    };
    for (key, value) in data {
        let name = format!("{prefix}{key}");
        if is_env_name(&name) {
            out.vars.push((name, value));
        } else {
            out.skipped.push(name);
        }
    }
    Ok(Some(out))
}

/// The `InvalidEnvironmentVariableNames` warnings for the container's `envFrom` keys that
/// were skipped, worded as the kubelet's events. Sources that cannot be read are left to
/// [`container_env`], which fails on them.
pub fn env_from_warnings(container: &Container, objects: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for source in container.env_from.iter().flatten() {
        let Ok(Some(vars)) = env_from_vars(source, objects) else {
            continue;
        };
        if vars.skipped.is_empty() {
            continue;
        }
        let (kind, name) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => ("configMap", r.name.as_str()),
            (_, Some(r)) => ("secret", r.name.as_str()),
            _ => continue,
        };
        out.push(format!(
            "Keys [{}] from the EnvFrom {kind} {}/{name} were skipped since they are considered \
             invalid environment variable names.",
            vars.skipped.join(", "),
            objects.namespace
        ));
    }
    out
}

/// The ConfigMaps and Secrets the container's env reads.
pub fn env_refs(container: &Container) -> Refs {
    let mut refs = Refs::default();
    for source in container.env_from.iter().flatten() {
        if let Some(r) = &source.config_map_ref {
            refs.config_maps.insert(r.name.clone());
        }
        if let Some(r) = &source.secret_ref {
            refs.secrets.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            refs.config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            refs.secrets.insert(r.name.clone());
        }
    }
    refs
}

/// The container's own env vars, resolved and expanded: `envFrom` first (each source's keys
/// in order), then `env` in declaration order; a later definition replaces an earlier one in
/// place. This is the set `$(VAR)` in command and args may refer to; image env is not part
/// of it. A variable whose optional source is missing is left out, as the kubelet does.
pub(crate) fn container_env(ctx: &EnvContext) -> Result<Vec<(String, String)>, SpecError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for source in ctx.container.env_from.iter().flatten() {
        if let Some(from) = env_from_vars(source, ctx.objects)? {
            for (k, v) in from.vars {
                set_var(&mut vars, &k, v);
            }
        }
    }
    for (j, var) in ctx.container.env.iter().flatten().enumerate() {
        if let Some(value) = env_value(ctx, var, &format!("{}.env[{j}]", ctx.field), &vars)? {
            set_var(&mut vars, &var.name, value);
        }
    }
    Ok(vars)
}

fn env_value(
    ctx: &EnvContext,
    var: &EnvVar,
    field: &str,
    earlier: &[(String, String)],
) -> Result<Option<String>, SpecError> {
    let raw = var.value.as_deref().unwrap_or("");
    let source = match &var.value_from {
        Some(source) if raw.is_empty() => source,
        _ => return Ok(Some(expand(raw, &lookup_in(earlier)))),
    };
    if let Some(field_ref) = &source.field_ref {
        return field_ref_value(
            ctx,
            &field_ref.field_path,
            &format!("{field}.valueFrom.fieldRef"),
        )
        .map(Some);
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
        return resource_value(&ctx.resources, ctx.node, &res.resource, divisor)
            .map(Some)
            .map_err(|e| match e {
                ResourceRefError::Resource(other) => SpecError::Unsupported {
                    field: format!("{rfield}.resource"),
                    what: format!("resource {other:?}"),
                },
                e @ ResourceRefError::Divisor { .. } => SpecError::InvalidValue {
                    field: format!("{rfield}.divisor"),
                    reason: e.to_string(),
                },
            });
    }
    let namespace = &ctx.objects.namespace;
    if let Some(r) = &source.config_map_key_ref {
        let value = |cm: &ConfigMap| cm.data.as_ref().and_then(|d| d.get(&r.key)).cloned();
        let missing_key = || EnvError::ConfigMapKey {
            key: r.key.clone(),
            namespace: namespace.clone(),
            name: r.name.clone(),
        };
        return Ok(key_ref(
            ctx.objects.config_map(&r.name),
            r.optional,
            value,
            missing_key,
        )?);
    }
    if let Some(r) = &source.secret_key_ref {
        let value = |s: &Secret| {
            let bytes = s.data.as_ref().and_then(|d| d.get(&r.key))?;
            Some(String::from_utf8_lossy(&bytes.0).into_owned())
        };
        let missing_key = || EnvError::SecretKey {
            key: r.key.clone(),
            namespace: namespace.clone(),
            name: r.name.clone(),
        };
        return Ok(key_ref(
            ctx.objects.secret(&r.name),
            r.optional,
            value,
            missing_key,
        )?);
    }
    let what = if source.file_key_ref.is_some() {
        "fileKeyRef"
    } else {
        "an empty valueFrom"
    };
    Err(SpecError::Unsupported {
        field: format!("{field}.valueFrom"),
        what: what.into(),
    })
}

/// A configMapKeyRef's or secretKeyRef's value; None when the object or key is missing and
/// the reference optional (the variable is then left out).
fn key_ref<T>(
    found: Result<&T, Missing>,
    optional: Option<bool>,
    value: impl FnOnce(&T) -> Option<String>,
    missing_key: impl FnOnce() -> EnvError,
) -> Result<Option<String>, EnvError> {
    let optional = optional == Some(true);
    let object = match found {
        Ok(o) => o,
        Err(_) if optional => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match value(object) {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(missing_key()),
    }
}

/// A fieldRef's value [kubelet_pods.go podFieldSelectorRuntimeValue]; metadata fields as the
/// downward API volume renders them.
fn field_ref_value(ctx: &EnvContext, path: &str, field: &str) -> Result<String, SpecError> {
    let ip = |ip: Option<Ipv4Addr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
    let value = match path {
        // One address family here: the lists hold the one address.
        "status.podIP" | "status.podIPs" => ip(ctx.pod_ip),
        "status.hostIP" | "status.hostIPs" => ip(ctx.host_ip),
        "spec.nodeName" => ctx.node_name.to_string(),
        // The ServiceAccount admission plugin defaults it to "default".
        "spec.serviceAccountName" => ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        other => {
            downward_api::metadata_field(ctx.pod, other).map_err(|e| SpecError::InvalidValue {
                field: format!("{field}.fieldPath"),
                reason: e.to_string(),
            })?
        }
    };
    Ok(value)
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

/// A container resource for the downward API (env and volumes), rounded up to the divisor;
/// without a limit the node's allocatable stands in [pkg/api/v1/resource/helpers.go
/// ExtractContainerResourceValue, pkg/kubelet/kubelet_resources.go].
pub fn resource_value(
    r: &Resources,
    node: NodeAllocatable,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, ResourceRefError> {
    let (amount, cpu) = match resource {
        "limits.cpu" => (
            r.cpu_limit_millis
                .unwrap_or_else(|| node.cpu_millis.unwrap_or_else(node_cpu_millis)),
            true,
        ),
        "requests.cpu" => (r.cpu_request_millis.unwrap_or(0), true),
        "limits.memory" => (r.memory_limit_bytes.unwrap_or(node.memory_bytes), false),
        "requests.memory" => (r.memory_request_bytes.unwrap_or(0), false),
        other => return Err(ResourceRefError::Resource(other.to_string())),
    };
    let divisor_text = divisor.unwrap_or("1");
    let div = parse_divisor(divisor_text, cpu).ok_or_else(|| ResourceRefError::Divisor {
        divisor: divisor_text.to_string(),
        resource: resource.to_string(),
    })?;
    Ok(amount.div_ceil(div).to_string())
}

/// The final process env as `KEY=VALUE`: `HOSTNAME` (and `TERM=xterm` for a tty), then the image's env (with a default PATH),
/// then the container's resolved env; a later definition replaces an earlier one in place.
pub(crate) fn process_env(
    image: Option<&ImageConfig>,
    hostname: &str,
    container_vars: &[(String, String)],
    tty: bool,
) -> Vec<String> {
    let mut list: Vec<(String, String)> = vec![("HOSTNAME".into(), hostname.to_string())];
    if tty {
        // containerd's WithTTY adds TERM=xterm before the image's and the container's env,
        // which may set TERM themselves.
        list.push(("TERM".into(), "xterm".into()));
    }
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
