//! `peapod run NAME --image=IMG [flags] [-- ARGS]`: a Pod made as `kubectl run` makes it
//! (kubectl pkg/cmd/run/run.go, pkg/generate/versioned/run.go BasicPod): one container named
//! after the pod, labels `run=NAME` unless `--labels`, dnsPolicy ClusterFirst, restartPolicy
//! Always (OnFailure with `-i`) unless `--restart`, `--env`, `--port`, `--image-pull-policy`, `--privileged`, and the
//! arguments as `args` (or `command` with `--command`). The pod is checked and stored through
//! the same path as a manifest's (`apply::put_objects`, create semantics: an existing name is
//! AlreadyExists); `--dry-run=client -o yaml` prints what kubectl prints. With `-i`/`--attach`
//! the container gets `stdin`/`stdinOnce`/`tty` as kubectl sets them and `run` attaches to it
//! (`peapod attach`), waits for its exit code, and with `--rm` deletes the pod.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use super::output::{parse_output, Output, Printer};
use crate::manifest::names::is_env_name;
use crate::object::{ObjectError, PutMode};
use crate::store::Paths;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];

/// `run`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The pod's name.
    pub name: Option<String>,
    /// The container's arguments (its command with `--command`), after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// The image for the container to run.
    #[arg(long)]
    pub image: Option<String>,
    /// Always, IfNotPresent or Never (default: the API server's).
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// Environment variables (`--env=K=V`, repeated).
    #[arg(long)]
    pub env: Vec<String>,
    /// The port the container exposes.
    #[arg(long)]
    pub port: Option<String>,
    /// Comma-separated labels (`a=b,c=d`) instead of `run=NAME`.
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Annotations (`--annotations=k=v`, repeated).
    #[arg(long)]
    pub annotations: Vec<String>,
    /// Always (default), OnFailure or Never.
    #[arg(long)]
    pub restart: Option<String>,
    /// Use the arguments as the container's command instead of its args.
    #[arg(long)]
    pub command: bool,
    /// Run the container privileged.
    #[arg(long)]
    pub privileged: bool,
    /// none, client or server.
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
    #[arg(short, long, value_parser = parse_output)]
    pub output: Option<Output>,
    #[arg(long)]
    pub template: Option<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Keep stdin open on the container (and attach to it, unless `--attach` is given).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a TTY for the container.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Wait for the pod to run, then attach as `peapod attach` (the default with `-i`).
    #[arg(long)]
    pub attach: bool,
    /// Leave stdin open after the first attach completes (else `stdinOnce`).
    #[arg(long)]
    pub leave_stdin_open: bool,
    /// Delete the pod after it exits (only when attaching).
    #[arg(long)]
    pub rm: bool,
    /// Suppress prompt messages.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl RunArgs {
    /// kubectl attaches with `--attach`, and by default with `-i`.
    fn attaches(&self) -> bool {
        self.attach || self.stdin
    }

    /// `--restart`, else OnFailure with `-i` and Always otherwise [run.go getRestartPolicy].
    fn restart_policy(&self) -> &str {
        match self.restart.as_deref() {
            Some(r) if !r.is_empty() => r,
            _ if self.stdin => "OnFailure",
            _ => "Always",
        }
    }
}

/// generate.ParseLabels: `a=b,c=d`, exact pairs only.
fn parse_labels(spec: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for item in spec.split(',') {
        let parts: Vec<&str> = item.split('=').collect();
        let [key, value] = parts[..] else {
            bail!("unexpected label spec: {item}");
        };
        if key.is_empty() {
            bail!("unexpected empty label key");
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// parseEnvs: `NAME=value` with a valid (strict) variable name.
fn parse_env(items: &[String]) -> Result<Vec<Value>> {
    items
        .iter()
        .map(|item| {
            let Some((name, value)) = item.split_once('=') else {
                bail!("invalid env: {item}");
            };
            if name.is_empty() || !is_env_name(name) || name.as_bytes()[0].is_ascii_digit() {
                bail!("invalid env: {item}");
            }
            Ok(json!({"name": name, "value": value}))
        })
        .collect()
}

/// utilsnet.ParsePort with zero allowed, worded as Go's strconv.ParseUint.
fn parse_port(port: &str) -> Result<u16> {
    port.parse::<u16>().map_err(|_| {
        let why = if port.parse::<u64>().is_ok() {
            "value out of range"
        } else {
            "invalid syntax"
        };
        anyhow!("strconv.ParseUint: parsing {port:?}: {why}")
    })
}

/// Validate + BasicPod.Generate: the pod as kubectl sends it (no server defaults).
pub fn generate(a: &RunArgs) -> Result<Value> {
    let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) else {
        bail!("NAME is required for run");
    };
    let Some(image) = a.image.as_deref().filter(|i| !i.is_empty()) else {
        bail!("required flag(s) \"image\" not set");
    };
    if crate::image::normalize_reference(image).is_err() {
        bail!("Invalid image name {image:?}: invalid reference format");
    }
    if a.tty && !a.stdin {
        bail!("-i/--stdin is required for containers with -t/--tty=true");
    }
    let restart = a.restart_policy();
    if !RESTART_POLICIES.contains(&restart) {
        bail!("invalid restart policy: {restart}");
    }
    if a.rm && !a.attaches() {
        bail!("--rm should only be used for attached containers");
    }
    if a.attaches() && a.dry_run.as_deref().is_some_and(|d| d != "none") {
        bail!("--dry-run=[server|client] can't be used with attached containers options (--attach, --stdin, or --tty)");
    }
    if let Some(p) = a.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        if !PULL_POLICIES.contains(&p) {
            bail!("invalid image pull policy: {p}");
        }
    }
    let labels = match a.labels.as_deref().filter(|l| !l.is_empty()) {
        Some(spec) => parse_labels(spec)?,
        None => BTreeMap::from([("run".to_string(), name.to_string())]),
    };
    let mut container = Map::new();
    container.insert("name".into(), json!(name));
    container.insert("image".into(), json!(image));
    container.insert("resources".into(), json!({}));
    if !a.args.is_empty() {
        let key = if a.command { "command" } else { "args" };
        container.insert(key.into(), json!(a.args));
    }
    let env = parse_env(&a.env)?;
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
    if let Some(p) = a.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        container.insert("imagePullPolicy".into(), json!(p));
    }
    if let Some(port) = a.port.as_deref().filter(|p| !p.is_empty()) {
        container.insert(
            "ports".into(),
            json!([{"containerPort": parse_port(port)?}]),
        );
    }
    if a.privileged {
        container.insert("securityContext".into(), json!({"privileged": true}));
    }
    // BasicPod: stdin closes after the first attach unless --leave-stdin-open.
    if a.stdin {
        container.insert("stdin".into(), json!(true));
        if !a.leave_stdin_open {
            container.insert("stdinOnce".into(), json!(true));
        }
    }
    if a.tty {
        container.insert("tty".into(), json!(true));
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    metadata.insert("labels".into(), json!(labels));
    if !a.annotations.is_empty() {
        metadata.insert(
            "annotations".into(),
            json!(parse_labels(&a.annotations.join(","))?),
        );
    }
    if let Some(ns) = &a.namespace {
        metadata.insert("namespace".into(), json!(ns));
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": restart,
        },
        "status": {},
    }))
}

/// `peapod run`.
pub fn run(paths: &Paths, a: &RunArgs) -> Result<i32> {
    let printer = match (&a.output, &a.template) {
        (None, None) => None,
        (o, t) => Some(Printer::from_flags(o.as_ref(), t.as_deref())?),
    };
    let dry_run = super::dry_run_suffix(a.dry_run.as_deref())?;
    let pod = generate(a)?;
    let name = a.name.clone().unwrap_or_default();
    let checked = crate::manifest::check_object_value(&pod).map_err(|problems| {
        let e = ObjectError::Invalid {
            kind: "Pod".into(),
            name: name.clone(),
            causes: problems.iter().map(|p| p.cause()).collect(),
        };
        anyhow!("{}", super::apply::server_error(&e))
    });
    if let Some(suffix) = dry_run {
        // The server's dry run also validates; the client's prints what would be sent.
        if suffix != super::DRY_RUN_CLIENT {
            checked?;
        }
        match &printer {
            Some(p) => print!("{}", p.render(vec![pod], true, false)?),
            None => println!("pod/{name} created {suffix}"),
        }
        return Ok(0);
    }
    let object = match checked {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let namespace = object.namespace().to_string();
    if a.attaches() {
        let code = super::apply::put_quietly(paths, object)?;
        if code != 0 {
            return Ok(code);
        }
        return attach_run(paths, a, &namespace, &name);
    }
    match &printer {
        None => super::apply::put_objects(paths, vec![object], PutMode::Create),
        Some(p) => {
            let code = super::apply::put_quietly(paths, object)?;
            if code == 0 {
                let rec = super::find_pod(paths, &namespace, &name)?;
                let shown = serde_json::to_value(super::get::pod_object(&rec))?;
                print!("{}", p.render(vec![shown], true, false)?);
            }
            Ok(code)
        }
    }
}

/// How long `run` waits for the pod to run before attaching, and for it to complete after
/// (kubectl's default --pod-running-timeout).
const POD_RUNNING_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the pod's status is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// `run` with `--attach` or `-i` [run.go Run, handleAttachPod]: waits for the pod to run,
/// attaches (a pod already completed, or one that cannot be attached, shows its logs), then
/// with restartPolicy Never or OnFailure (and stdin not left open) waits for it to complete
/// and returns the container's exit code; `--rm` deletes the pod at the end.
fn attach_run(paths: &Paths, a: &RunArgs, namespace: &str, name: &str) -> Result<i32> {
    let result = attach_and_wait(paths, a, namespace, name);
    if a.rm {
        super::delete::delete_pod_after_run(paths, namespace, name, a.quiet)?;
    }
    result
}

fn attach_and_wait(paths: &Paths, a: &RunArgs, namespace: &str, name: &str) -> Result<i32> {
    let phase = wait_for_phase(paths, namespace, name, |rec, phase| {
        matches!(phase, "Succeeded" | "Failed") || (phase == "Running" && is_ready(rec))
    })?;
    let logs = || {
        super::logs::run(
            paths,
            &super::logs::LogsArgs {
                pod: name.to_string(),
                container: None,
                namespace: namespace.to_string(),
                follow: false,
                previous: false,
                timestamps: false,
                tail: -1,
            },
        )
    };
    if phase == "Running" {
        let attach = super::attach::AttachArgs {
            stream: super::exec::StreamArgs {
                pod: name.to_string(),
                container: None,
                namespace: namespace.to_string(),
                stdin: a.stdin,
                tty: a.tty,
            },
            quiet: a.quiet,
        };
        if let Err(e) = super::attach::run(paths, &attach) {
            eprintln!(
                "warning: couldn't attach to pod/{name}, falling back to streaming logs: {e}"
            );
            logs()?;
        }
    } else {
        logs()?;
    }
    let restart = a.restart_policy();
    if a.leave_stdin_open || restart == "Always" {
        return Ok(0);
    }
    let on_failure = restart == "OnFailure";
    let phase = wait_for_phase(paths, namespace, name, |_, phase| {
        phase == "Succeeded" || (!on_failure && phase == "Failed")
    })?;
    if phase == "Succeeded" {
        return Ok(0);
    }
    let rec = super::find_pod(paths, namespace, name)?;
    let terminated = rec.status.as_ref().and_then(|s| {
        s.container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .terminated
            .clone()
    });
    match terminated {
        Some(t) if t.exit_code != 0 => {
            // kubectl's CodeExitError, printed by its error handler.
            eprintln!(
                "pod {namespace}/{name} terminated ({})\n{}",
                t.reason.unwrap_or_default(),
                t.message.unwrap_or_default()
            );
            Ok(t.exit_code)
        }
        _ => bail!("pod {namespace}/{name} failed with unknown exit code"),
    }
}

fn is_ready(rec: &crate::pod::record::PodRecord) -> bool {
    rec.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Reads the pod's status until `done(record, phase)`; returns that phase.
fn wait_for_phase(
    paths: &Paths,
    namespace: &str,
    name: &str,
    done: impl Fn(&crate::pod::record::PodRecord, &str) -> bool,
) -> Result<String> {
    let deadline = Instant::now() + POD_RUNNING_TIMEOUT;
    loop {
        let rec = super::find_pod(paths, namespace, name)?;
        let phase = rec
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if done(&rec, &phase) {
            return Ok(phase);
        }
        if Instant::now() >= deadline {
            bail!("timed out waiting for the condition");
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
