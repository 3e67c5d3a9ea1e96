//! The command line: verbs and output formatting. The only module that prints.
//!
//! `run` parses the arguments with clap and dispatches to one file per verb family; the pure
//! formatting (`status`, `get::pods_table`, `describe::describe_pod`, `format`) takes data and
//! returns strings so that it is unit-tested without a host. Hidden verbs (`__init`, ...) are
//! dispatched by `main.rs` before this runs.

mod describe;
mod exec;
mod format;
mod get;
mod jsonpath;
mod logs;
mod pull;
mod status;
mod wait;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::pod::lifecycle::{self, ApplyOutcome, LifecycleError};
use crate::pod::record::{self, PodRecord};
use crate::store::Paths;

pub use describe::describe_pod;
pub use format::{format_age, human_size, tabwrite};
pub use get::{pod_object, pods_table, Output};
pub use status::{status_string, summarize, PodSummary};

use crate::manifest::defaults::DEFAULT_NAMESPACE;

#[derive(Debug, Parser)]
#[command(
    name = "peapod",
    version,
    about = "Run Kubernetes pods on raw Linux namespaces"
)]
struct Cli {
    /// Registries configuration (mirrors, plain-HTTP hosts); default /etc/peapod/registries.toml.
    #[arg(long, global = true, value_name = "FILE")]
    registries_config: Option<PathBuf>,
    /// Registry credentials file (docker config.json format); default <lib dir>/auth.json.
    #[arg(long, global = true, value_name = "FILE")]
    authfile: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create pods from manifest files (`-f -` reads stdin).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Load an image from an OCI layout or archive into the content store.
    Load {
        path: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// List the images in the content store.
    Images,
    /// Pull an image from a registry into the content store.
    Pull {
        reference: String,
        /// Print only the image ID.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List pods.
    Get {
        /// Only `pods` (also `pod`, `po`).
        kind: String,
        name: Option<String>,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// wide, json, yaml, name or jsonpath=TEMPLATE
        #[arg(short, long, value_parser = get::parse_output)]
        output: Option<Output>,
    },
    /// Wait until a pod meets a condition (`--for=condition=Ready`, `--for=delete`,
    /// `--for=jsonpath='{.status.phase}'=Running`).
    Wait {
        kind: String,
        name: String,
        #[arg(long = "for", value_parser = wait::parse_for)]
        for_: wait::WaitFor,
        #[arg(long, default_value = "30s", value_parser = wait::parse_timeout)]
        timeout: std::time::Duration,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Show a pod in detail.
    Describe {
        kind: String,
        name: String,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Print a container's logs.
    Logs(logs::LogsArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Delete pods by name or by manifest.
    Delete {
        /// `pod` and names, or nothing with `-f`.
        args: Vec<String>,
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
        #[arg(long, allow_hyphen_values = true)]
        grace_period: Option<i64>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        now: bool,
    },
    /// Print a container's OCI runtime Spec (config.json).
    Inspect {
        pod: String,
        #[arg(short, long)]
        container: Option<String>,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

/// Parses `std::env::args` and runs the verb; returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    // Through the environment so that supervisors forked or executed from here see them too.
    if let Some(f) = &cli.registries_config {
        std::env::set_var(crate::image::registry::ENV_REGISTRIES_CONFIG, f);
    }
    if let Some(f) = &cli.authfile {
        std::env::set_var(crate::image::registry::ENV_AUTH_FILE, f);
    }
    let paths = Paths::from_env();
    match dispatch(&paths, cli.verb) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn check_pods_kind(kind: &str) -> Result<()> {
    match kind {
        "pod" | "pods" | "po" => Ok(()),
        other => bail!("the server doesn't have a resource type \"{other}\""),
    }
}

fn dispatch(paths: &Paths, verb: Verb) -> Result<i32> {
    match verb {
        Verb::Apply { files, dry_run } => apply(paths, &files, dry_run),
        Verb::Load { path, name } => load(paths, &path, name.as_deref()),
        Verb::Images => images(paths),
        Verb::Pull { reference, quiet } => pull::run(paths, &reference, quiet),
        Verb::Get {
            kind,
            name,
            namespace,
            all_namespaces,
            output,
        } => {
            check_pods_kind(&kind)?;
            get::run(paths, name.as_deref(), &namespace, all_namespaces, output)
        }
        Verb::Describe {
            kind,
            name,
            namespace,
        } => {
            check_pods_kind(&kind)?;
            let rec = find_pod(paths, &namespace, &name)?;
            print!(
                "{}",
                describe_pod(&rec, jiff::Timestamp::now(), &hostname())
            );
            Ok(0)
        }
        Verb::Wait {
            kind,
            name,
            for_,
            timeout,
            namespace,
        } => {
            check_pods_kind(&kind)?;
            wait::run(paths, &namespace, &name, &for_, timeout)
        }
        Verb::Logs(args) => logs::run(paths, &args),
        Verb::Exec(args) => exec::run(paths, &args),
        Verb::Delete {
            args,
            files,
            namespace,
            grace_period,
            force,
            now,
        } => delete(paths, &args, &files, &namespace, grace_period, force, now),
        Verb::Inspect {
            pod,
            container,
            namespace,
        } => exec::inspect(paths, &namespace, &pod, container.as_deref()),
    }
}

/// This host's name, the NODE of every pod.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The pod's app and init container names, in spec order.
pub(crate) fn container_names(rec: &PodRecord) -> (Vec<String>, Vec<String>) {
    let spec = rec.pod.spec.as_ref();
    let names = |l: Option<&Vec<k8s_openapi::api::core::v1::Container>>| {
        l.into_iter().flatten().map(|c| c.name.clone()).collect()
    };
    (
        names(spec.map(|s| &s.containers)),
        names(spec.and_then(|s| s.init_containers.as_ref())),
    )
}

/// The pod or kubectl's NotFound error.
pub(crate) fn find_pod(paths: &Paths, namespace: &str, name: &str) -> Result<PodRecord> {
    record::find(paths, namespace, name)
        .context("reading pod records")?
        .ok_or_else(|| anyhow!("pods \"{name}\" not found"))
}

fn read_manifest(file: &str) -> Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

fn decode_files(files: &[String]) -> Result<Vec<k8s_openapi::api::core::v1::Pod>> {
    let mut pods = Vec::new();
    for file in files {
        let text = read_manifest(file)?;
        let source = if file == "-" { "STDIN" } else { file.as_str() };
        pods.extend(crate::manifest::decode_pods(&text, source).map_err(|e| anyhow!("{e}"))?);
    }
    Ok(pods)
}

fn apply(paths: &Paths, files: &[String], dry_run: bool) -> Result<i32> {
    let pods = decode_files(files)?;
    if dry_run {
        for p in &pods {
            println!(
                "pod/{} created (dry run)",
                p.metadata.name.as_deref().unwrap_or("")
            );
        }
        return Ok(0);
    }
    let mut code = 0;
    for outcome in lifecycle::apply(paths, pods)? {
        match outcome {
            ApplyOutcome::Created { name, .. } => println!("pod/{name} created"),
            ApplyOutcome::AlreadyExists { name, .. } => {
                eprintln!("Error from server (AlreadyExists): pods \"{name}\" already exists");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// kubectl's grace-period rules: `--now` is 1s; 0 without `--force` becomes 1; `--force`
/// alone means 0. Returns the period and whether to warn about immediate deletion.
fn grace_period(grace: Option<i64>, force: bool, now: bool) -> Result<(Option<i64>, bool)> {
    let mut grace = grace.filter(|g| *g >= 0);
    if now {
        if grace.is_some() {
            bail!("--now and --grace-period cannot be specified together");
        }
        grace = Some(1);
    }
    if grace == Some(0) && !force {
        grace = Some(1);
    }
    if force && grace.is_none() {
        grace = Some(0);
    }
    Ok((grace, force && grace == Some(0)))
}

#[allow(clippy::too_many_arguments)]
fn delete(
    paths: &Paths,
    args: &[String],
    files: &[String],
    namespace: &str,
    grace: Option<i64>,
    force: bool,
    now: bool,
) -> Result<i32> {
    let targets: Vec<(String, String)> = if !files.is_empty() {
        if !args.is_empty() {
            bail!("resource names cannot be given with -f");
        }
        decode_files(files)?
            .into_iter()
            .map(|p| {
                let ns = p
                    .metadata
                    .namespace
                    .unwrap_or_else(|| namespace.to_string());
                (ns, p.metadata.name.unwrap_or_default())
            })
            .collect()
    } else {
        let Some((kind, names)) = args.split_first() else {
            bail!("You must provide one or more resources by argument or filename.");
        };
        check_pods_kind(kind)?;
        if names.is_empty() {
            bail!("resource(s) were provided, but no name was specified");
        }
        names
            .iter()
            .map(|n| (namespace.to_string(), n.clone()))
            .collect()
    };
    let (grace, warn) = grace_period(grace, force, now)?;
    if warn {
        eprintln!("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.");
    }
    let mut code = 0;
    for (ns, name) in targets {
        match lifecycle::delete(paths, &ns, &name, grace, force) {
            Ok(()) => println!("pod \"{name}\" deleted"),
            Err(LifecycleError::NotFound { name, .. }) => {
                eprintln!("Error from server (NotFound): pods \"{name}\" not found");
                code = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

fn load(paths: &Paths, path: &std::path::Path, name: Option<&str>) -> Result<i32> {
    let store = crate::image::ImageStore::open(paths)?;
    for img in store.load(path, name)? {
        println!("Loaded image: {}", img.reference);
    }
    Ok(0)
}

/// The IMAGE ID column: 12 hex digits of the config digest.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// The `images` table: REPOSITORY TAG IMAGE ID CREATED SIZE.
pub fn images_table(images: &[crate::image::ImageSummary], now: jiff::Timestamp) -> String {
    let mut text = String::from("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE");
    for img in images {
        let created = img
            .created
            .as_deref()
            .and_then(|c| c.parse::<jiff::Timestamp>().ok())
            .map(|t| format!("{} ago", format_age(now.duration_since(t))))
            .unwrap_or_else(|| "N/A".to_string());
        text.push_str(&format!(
            "\n{}\t{}\t{}\t{}\t{}",
            format::or_none(&img.repository),
            format::or_none(&img.tag),
            short_id(&img.id),
            created,
            human_size(img.size)
        ));
    }
    let mut out = tabwrite(&text, 6, 3);
    out.push('\n');
    out
}

fn images(paths: &Paths) -> Result<i32> {
    let store = crate::image::ImageStore::open(paths)?;
    print!("{}", images_table(&store.list()?, jiff::Timestamp::now()));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_period_rules() {
        assert_eq!(grace_period(None, false, false).unwrap(), (None, false));
        assert_eq!(grace_period(Some(0), true, false).unwrap(), (Some(0), true));
        assert_eq!(grace_period(None, true, false).unwrap(), (Some(0), true));
        assert_eq!(
            grace_period(Some(0), false, false).unwrap(),
            (Some(1), false)
        );
        assert_eq!(grace_period(None, false, true).unwrap(), (Some(1), false));
        assert_eq!(grace_period(Some(-1), false, false).unwrap(), (None, false));
        assert!(grace_period(Some(5), false, true).is_err());
    }

    #[test]
    fn images_table_columns() {
        let img = crate::image::ImageSummary {
            reference: "docker.io/library/busybox:1.36".into(),
            repository: "docker.io/library/busybox".into(),
            tag: "1.36".into(),
            manifest_digest: "sha256:aa".into(),
            id: "sha256:0123456789abcdef0123".into(),
            created: Some("2024-01-01T00:00:00Z".into()),
            size: 4_200_000,
        };
        let now: jiff::Timestamp = "2024-01-04T00:00:00Z".parse().unwrap();
        assert_eq!(
            images_table(&[img], now),
            "REPOSITORY                  TAG    IMAGE ID       CREATED   SIZE\n\
             docker.io/library/busybox   1.36   0123456789ab   3d ago    4.2MB\n"
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn clap_parses_the_verbs() {
        let c = Cli::try_parse_from(["peapod", "get", "pods", "-A", "-o", "wide"]).unwrap();
        assert!(matches!(
            c.verb,
            Verb::Get {
                all_namespaces: true,
                output: Some(Output::Wide),
                ..
            }
        ));
        let c = Cli::try_parse_from([
            "peapod",
            "delete",
            "pod",
            "x",
            "--grace-period=0",
            "--force",
        ])
        .unwrap();
        assert!(matches!(
            c.verb,
            Verb::Delete {
                grace_period: Some(0),
                force: true,
                ..
            }
        ));
        let c = Cli::try_parse_from([
            "peapod", "exec", "-it", "web", "-c", "a", "--", "sh", "-c", "ls -l",
        ])
        .unwrap();
        let Verb::Exec(e) = c.verb else { panic!() };
        assert_eq!(e.command, ["sh", "-c", "ls -l"]);
        assert!(e.stdin && e.tty);
        assert!(Cli::try_parse_from(["peapod", "apply", "-f", "-", "--dry-run"]).is_ok());
    }
}
