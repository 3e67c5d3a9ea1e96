//! `peapod exec` (run a command in a running container) and `peapod inspect` (print a
//! container's OCI runtime Spec).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::Spec;

use super::{container_names, find_pod, DEFAULT_NAMESPACE};
use crate::container::runtime::ExecMode;
use crate::pod::record::{PodRecord, ProcessRef};
use crate::store::Paths;

/// kubectl's warning when `-it` is asked with a stdin that is not a terminal.
pub(super) const NOT_A_TERMINAL: &str =
    "Unable to use a TTY - input is not a terminal or the right kind of file";

/// The bundle's runtime Spec, as the OCI runtime spec names it.
const CONFIG_FILE: &str = "config.json";

/// What `exec` and `attach` share: the pod, the container, and kubectl's `-i`/`-t`.
#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    pub pod: String,
    #[arg(short, long)]
    pub container: Option<String>,
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY (with -i): exec makes the command a terminal of its own in the
    /// container; attach uses the container's.
    #[arg(short = 't', long)]
    pub tty: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub stream: StreamArgs,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// The annotation naming the container kubectl picks when none is given (KEP-2227).
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The container kubectl picks [kubectl podcmd.FindOrDefaultContainerByName]: the one named,
/// else the one the default-container annotation names, else the first app container, with
/// kubectl's notice when the pod has others (unless `quiet`).
pub(super) fn pick(rec: &PodRecord, requested: Option<&str>, quiet: bool) -> Result<String> {
    let (apps, inits) = container_names(rec);
    let annotated = rec
        .pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|n| !n.is_empty());
    let all = || {
        apps.iter()
            .cloned()
            .chain(inits.iter().map(|n| format!("{n} (init)")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match requested.or(annotated.map(String::as_str)) {
        Some(c) if apps.iter().chain(&inits).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => bail!(
            "container {c} is not valid for pod {} out of: {}",
            rec.name(),
            all()
        ),
        None => {
            let first = apps
                .first()
                .ok_or_else(|| anyhow!("pod {} has no containers", rec.name()))?;
            if !quiet && (apps.len() > 1 || !inits.is_empty()) {
                eprintln!("Defaulted container \"{first}\" out of: {}", all());
            }
            Ok(first.clone())
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`: the start time that tells our process from a recycled pid.
fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn alive(p: &ProcessRef) -> bool {
    proc_start_time(p.pid) == Some(p.start_time)
}

fn bundle_config(rec: &PodRecord, name: &str) -> Result<PathBuf> {
    let bundle = rec
        .state
        .as_ref()
        .and_then(|s| s.containers.get(name))
        .and_then(|c| c.bundle.clone())
        .ok_or_else(|| {
            anyhow!(
                "container \"{name}\" in pod \"{}\" has not been created",
                rec.name()
            )
        })?;
    Ok(bundle.join(CONFIG_FILE))
}

/// The pod, unless it is completed: kubectl's refusal names the verb ("exec into", "attach").
pub(super) fn running_pod(paths: &Paths, args: &StreamArgs, verb: &str) -> Result<PodRecord> {
    let rec = find_pod(paths, &args.namespace, &args.pod)?;
    let phase = rec
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        bail!("cannot {verb} a container in a completed pod; current phase is {phase}");
    }
    Ok(rec)
}

pub fn run(paths: &Paths, exec: &ExecArgs) -> Result<i32> {
    let args = &exec.stream;
    let rec = running_pod(paths, args, "exec into")?;
    // A container named on the command line goes to the server as it is [kubectl exec].
    let (apps, inits) = container_names(&rec);
    if let Some(c) = args.container.as_deref() {
        if !apps.iter().chain(&inits).any(|n| n == c) {
            bail!("container {c} not found in pod {}", rec.name());
        }
    }
    let name = pick(&rec, args.container.as_deref(), false)?;
    let process = rec
        .state
        .as_ref()
        .and_then(|s| s.containers.get(&name))
        .and_then(|c| c.process.clone())
        .filter(alive)
        .ok_or_else(|| anyhow!("unable to upgrade connection: container not found (\"{name}\")"))?;
    let config = bundle_config(&rec, &name)?;
    let spec = Spec::load(&config).with_context(|| format!("reading {}", config.display()))?;
    let code = crate::container::runtime::exec_in(process.pid, &spec, &exec.command, mode(args))
        .map_err(|e| {
            anyhow!(
                "exec in container \"{name}\" of pod \"{}\": {e}",
                rec.name()
            )
        })?;
    if code != 0 {
        // kubectl's CodeExitError, printed by its error handler.
        eprintln!("command terminated with exit code {code}");
    }
    Ok(code)
}

/// What kubectl's `-i` and `-t` come to [kubectl/pkg/cmd/exec StreamOptions.SetupTTY]: no
/// terminal without stdin, and none (with its warning) when stdin is not a terminal.
fn mode(args: &StreamArgs) -> ExecMode {
    let tty = args.stdin && args.tty && std::io::stdin().is_terminal();
    if args.stdin && args.tty && !tty {
        eprintln!("{NOT_A_TERMINAL}");
    }
    ExecMode {
        stdin: args.stdin,
        tty,
    }
}

/// `peapod inspect POD [-c NAME]`: the container's config.json, pretty-printed.
pub fn inspect(paths: &Paths, namespace: &str, pod: &str, container: Option<&str>) -> Result<i32> {
    let rec = find_pod(paths, namespace, pod)?;
    let name = pick(&rec, container, false)?;
    let config = bundle_config(&rec, &name)?;
    let spec = Spec::load(&config).with_context(|| format!("reading {}", config.display()))?;
    println!("{}", serde_json::to_string_pretty(&spec)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(yaml: &str) -> PodRecord {
        PodRecord {
            pod: serde_norway::from_str(yaml).unwrap(),
            status: None,
            state: None,
            events: Vec::new(),
            deleting: None,
        }
    }

    #[test]
    fn the_container_kubectl_picks() {
        let two = "metadata: {name: p}\nspec:\n  initContainers: [{name: setup}]\n  containers: [{name: a}, {name: b}]\n";
        let rec = record(two);
        assert_eq!(pick(&rec, None, true).unwrap(), "a");
        assert_eq!(pick(&rec, Some("b"), true).unwrap(), "b");
        assert_eq!(pick(&rec, Some("setup"), true).unwrap(), "setup");
        assert_eq!(
            pick(&rec, Some("x"), true).unwrap_err().to_string(),
            "container x is not valid for pod p out of: a, b, setup (init)"
        );
        let annotated = two.replace(
            "metadata: {name: p}",
            "metadata: {name: p, annotations: {kubectl.kubernetes.io/default-container: b}}",
        );
        assert_eq!(pick(&record(&annotated), None, true).unwrap(), "b");
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let start = proc_start_time(pid).unwrap();
        assert!(alive(&ProcessRef {
            pid,
            start_time: start
        }));
        assert!(!alive(&ProcessRef {
            pid,
            start_time: start + 1
        }));
    }
}
