//! The command line: verbs and output formatting. The only module that prints.
//!
//! `run` parses the arguments with clap and dispatches to one file per verb family; the pure
//! formatting (`status`, `get::pods_table`, `describe::describe_pod`, `format`) takes data and
//! returns strings so that it is unit-tested without a host. Hidden verbs (`__init`, ...) are
//! dispatched by `main.rs` before this runs.

mod apply;
mod attach;
mod create;
mod create_sources;
mod delete;
mod describe;
mod describe_objects;
mod events;
mod exec;
mod field_selector;
mod format;
mod get;
mod gotemplate;
mod images;
mod jsonpath;
mod kinds;
mod label;
mod login;
mod logs;
mod node;
mod objects;
mod output;
mod port_forward;
mod progress;
mod ps;
mod pull;
mod push;
mod rmi;
mod run;
mod selector;
mod sources;
mod status;
mod table;
mod top;
mod wait;
mod watch;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::object::PutMode;
use crate::pod::record::{self, PodRecord};
use crate::store::Paths;
use sources::Sources;

pub use describe::describe_pod;
pub use format::{format_age, human_size, tabwrite};
pub use get::{pod_object, pods_table};
pub use output::Output;
pub use status::{status_string, summarize, PodSummary};

use crate::manifest::defaults::DEFAULT_NAMESPACE;

#[derive(Debug, Parser)]
#[command(
    name = "peapod",
    version,
    about = "Run Kubernetes pods on raw Linux namespaces"
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    verb: Verb,
}

/// The options every verb takes.
#[derive(Debug, clap::Args)]
struct Globals {
    /// Registries configuration (mirrors, plain-HTTP hosts); default /etc/peapod/registries.toml.
    #[arg(long, global = true, value_name = "FILE")]
    registries_config: Option<PathBuf>,
    /// Registry credentials file (docker config.json format); default <lib dir>/auth.json.
    #[arg(long, global = true, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

// `apply`'s arguments (a struct of their own for `parse_apply`).
#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// Files, directories (their .json, .yaml, .yml), http(s) URLs, or `-`.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Descend into the subdirectories of `-f` directories.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// none, client or server (bare `--dry-run` is client).
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    dry_run: Option<String>,
    /// name, json, yaml, jsonpath=..., go-template=...: each object printed so instead of
    /// `<kind>/<name> <outcome>`.
    #[arg(short, long, value_parser = output::parse_output)]
    output: Option<output::Output>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create or update pods, ConfigMaps, Secrets and claims from manifest files (`-f -`
    /// reads stdin).
    Apply(ApplyArgs),
    /// Create objects from manifest files (an object that exists is an error), or a ConfigMap
    /// or Secret from files and literals (`create configmap|secret ...`).
    Create {
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        #[arg(short = 'R', long)]
        recursive: bool,
        #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
        dry_run: Option<String>,
        /// With -f: name, json, yaml, jsonpath=..., go-template=..., as `apply -o`.
        #[arg(short, long, value_parser = output::parse_output)]
        output: Option<output::Output>,
        #[command(subcommand)]
        what: Option<create::CreateWhat>,
    },
    /// Load an image from an OCI layout or archive into the content store.
    Load {
        path: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// List the images in the content store.
    Images(images::ImagesArgs),
    /// Remove images by name or ID (refuses images that pods use unless --force).
    Rmi(rmi::RmiArgs),
    /// Manage images: ls, rm, prune.
    Image {
        #[command(subcommand)]
        verb: ImageVerb,
    },
    /// Pull an image from a registry into the content store.
    Pull {
        reference: String,
        /// Print only the image ID.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Upload an image of the store to a registry.
    Push(push::PushArgs),
    /// Check and store credentials for a registry.
    Login(login::LoginArgs),
    /// Remove the stored credentials for a registry.
    Logout(login::LogoutArgs),
    /// List pods, configmaps, secrets, persistentvolumeclaims, persistentvolumes.
    Get(get::GetArgs),
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
    /// Show an object in detail.
    Describe {
        /// KIND [NAME...], or KIND/NAME...
        #[arg(required = true)]
        args: Vec<String>,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Print a container's logs.
    Logs(logs::LogsArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Attach to a process that is already running inside an existing container.
    Attach(attach::AttachArgs),
    /// Forward local ports to a pod's ports (dialed inside the pod's network namespace).
    PortForward(port_forward::PortForwardArgs),
    /// Delete objects by kind and name, by selector (`-l`, `--field-selector`, `--all`) or by
    /// manifest.
    Delete {
        /// KIND NAME..., KIND/NAME..., KIND with a selector or `--all`, or nothing with `-f`.
        args: Vec<String>,
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        #[arg(short = 'R', long)]
        recursive: bool,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
        #[arg(long, allow_hyphen_values = true)]
        grace_period: Option<i64>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        now: bool,
        /// none, client or server (bare `--dry-run` is client): what would be deleted.
        #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
        dry_run: Option<String>,
        /// `name`: `KIND/NAME` lines.
        #[arg(short, long)]
        output: Option<String>,
        #[command(flatten)]
        select: delete::DeleteSelection,
    },
    /// Update the labels of a pod: `label pod NAME KEY=VALUE KEY-` (`--overwrite` to replace).
    Label(label::MetadataArgs),
    /// Update the annotations of a pod: `annotate pod NAME KEY=VALUE KEY-`.
    Annotate(label::MetadataArgs),
    /// List containers, as `crictl ps` does (`-a` for exited ones, `-o wide` for the
    /// kubelet's names).
    Ps(ps::PsArgs),
    /// List pod sandboxes, as `crictl pods` does.
    Pods(ps::PsArgs),
    /// Print a shell completion script generated from these commands and flags.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// CPU and memory of running pods, as `kubectl top pod` shows them.
    Top {
        #[command(subcommand)]
        what: top::TopWhat,
    },
    /// Run an image in a new pod, as `kubectl run` does.
    Run(run::RunArgs),
    /// Run the node agent: pods back after a reboot, static pods from a manifest directory,
    /// the CRI socket (`node install`: its systemd unit).
    Node(node::NodeArgs),
    /// Print a container's OCI runtime Spec (config.json).
    Inspect {
        pod: String,
        #[arg(short, long)]
        container: Option<String>,
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

#[derive(Debug, Subcommand)]
enum ImageVerb {
    /// List the images in the content store (as `peapod images`).
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove images (as `peapod rmi`).
    Rm(rmi::RmiArgs),
    /// Delete the blobs and unpacked layers that no image names, except layers pods use.
    Prune(rmi::PruneArgs),
}

/// Parses `std::env::args` and runs the verb; returns the process exit code.
pub fn run() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = match parse_apply(&args) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse_from(&args),
    };
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    crate::starttrace::mark("cli parsed");
    // Through the environment so that supervisors forked or executed from here see them too.
    if let Some(f) = &cli.globals.registries_config {
        std::env::set_var(crate::image::registry::ENV_REGISTRIES_CONFIG, f);
    }
    if let Some(f) = &cli.globals.authfile {
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

/// `peapod apply ...` parsed with a command that holds only the global options and `apply`:
/// building clap's whole command tree, every verb's arguments, took 0.38 ms of the 0.6 ms the
/// parse took, on the path of every pod start. None for any other argv, and wherever clap
/// would print something (help, an error): the whole command then parses again and prints
/// it, so what users read is the whole command's.
fn parse_apply(args: &[std::ffi::OsString]) -> Option<Cli> {
    use clap::{Args, Command, FromArgMatches};
    if args.get(1)? != "apply" {
        return None;
    }
    let narrow = Globals::augment_args(Command::new("peapod"))
        .subcommand(ApplyArgs::augment_args(Command::new("apply")));
    let matches = narrow.try_get_matches_from(args).ok()?;
    let globals = Globals::from_arg_matches(&matches).ok()?;
    let apply = ApplyArgs::from_arg_matches(matches.subcommand_matches("apply")?).ok()?;
    Some(Cli {
        globals,
        verb: Verb::Apply(apply),
    })
}

/// What kubectl's messages add for `--dry-run=VALUE` (`GetDryRunStrategy`): `(dry run)` for
/// client, `(server dry run)` for server, None for none (or no flag); any other value is
/// kubectl's error.
pub(crate) fn dry_run_suffix(value: Option<&str>) -> Result<Option<&'static str>> {
    match value {
        None | Some("none") => Ok(None),
        Some("client") => Ok(Some(DRY_RUN_CLIENT)),
        Some("server") => Ok(Some("(server dry run)")),
        Some(other) => {
            bail!("Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\".")
        }
    }
}

/// The suffix of a client-side dry run's messages.
pub(crate) const DRY_RUN_CLIENT: &str = "(dry run)";

fn dispatch(paths: &Paths, verb: Verb) -> Result<i32> {
    match verb {
        Verb::Apply(ApplyArgs {
            files,
            recursive,
            dry_run,
            output,
        }) => apply::run(
            paths,
            &Sources::new(files, recursive),
            dry_run_suffix(dry_run.as_deref())?,
            PutMode::Apply,
            output.as_ref(),
        ),
        Verb::Create {
            files,
            recursive,
            dry_run,
            output,
            what,
        } => match what {
            Some(mut what) if files.is_empty() => {
                what.inherit(dry_run, output);
                create::run(paths, what)
            }
            Some(_) => bail!("a resource cannot be created from files and from arguments at once"),
            None if files.is_empty() => bail!("must specify one of -f and -k"),
            None => apply::run(
                paths,
                &Sources::new(files, recursive),
                dry_run_suffix(dry_run.as_deref())?,
                PutMode::Create,
                output.as_ref(),
            ),
        },
        Verb::Load { path, name } => load(paths, &path, name.as_deref()),
        Verb::Images(args)
        | Verb::Image {
            verb: ImageVerb::Ls(args),
        } => images::run(paths, &args),
        Verb::Rmi(args)
        | Verb::Image {
            verb: ImageVerb::Rm(args),
        } => rmi::rmi(paths, &args),
        Verb::Image {
            verb: ImageVerb::Prune(args),
        } => rmi::prune(paths, &args),
        Verb::Pull { reference, quiet } => pull::run(paths, &reference, quiet),
        Verb::Push(args) => push::run(paths, &args),
        Verb::Login(args) => login::login(paths, &args),
        Verb::Logout(args) => login::logout(paths, &args),
        Verb::Get(args) => get::run(paths, &args),
        Verb::Describe { args, namespace } => describe(paths, &args, &namespace),
        Verb::Wait {
            kind,
            name,
            for_,
            timeout,
            namespace,
        } => {
            if kinds::Kind::resolve(&kind)? != kinds::Kind::Pod {
                bail!("peapod waits only for pods");
            }
            wait::run(paths, &namespace, &name, &for_, timeout)
        }
        Verb::Logs(args) => logs::run(paths, &args),
        Verb::Exec(args) => exec::run(paths, &args),
        Verb::Attach(args) => attach::run(paths, &args),
        Verb::PortForward(args) => port_forward::run(paths, &args),
        Verb::Delete {
            args,
            files,
            recursive,
            namespace,
            grace_period,
            force,
            now,
            dry_run,
            output,
            select,
        } => {
            if let Some(mode) = output.as_deref().filter(|o| *o != "name") {
                bail!("unexpected -o output mode: {mode}. We only support '-o name'");
            }
            let options = delete::DeleteOptions {
                grace: grace_period,
                force,
                now,
                dry_run: dry_run_suffix(dry_run.as_deref())?,
                names_only: output.is_some(),
            };
            let files = Sources::new(files, recursive);
            delete::run(paths, &args, &files, &namespace, options, &select)
        }
        Verb::Label(args) => label::run(paths, &args, crate::pod::metadata::MetadataKind::Labels),
        Verb::Annotate(args) => label::run(
            paths,
            &args,
            crate::pod::metadata::MetadataKind::Annotations,
        ),
        Verb::Run(args) => run::run(paths, &args),
        Verb::Ps(args) => ps::ps(paths, &args),
        Verb::Top { what } => top::run(paths, &what),
        Verb::Completion { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "peapod", &mut script);
            let _ = std::io::stdout().write_all(&script);
            Ok(0)
        }
        Verb::Pods(args) => ps::pods(paths, &args),
        Verb::Node(args) => node::run(paths, &args),
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

/// `describe KIND [NAME...]`: each object's text, separated by a blank line as kubectl does;
/// every object of the kind in the namespace when no name is given.
fn describe(paths: &Paths, args: &[String], namespace: &str) -> Result<i32> {
    use kinds::Kind;
    let mut texts = Vec::new();
    let mut code = 0;
    for (kind, mut names) in kinds::targets(args)? {
        if names.is_empty() {
            names = match kind {
                Kind::Pod => {
                    let mut pods: Vec<String> = record::load_all(paths)
                        .context("reading pod records")?
                        .into_iter()
                        .filter(|r| r.namespace() == namespace)
                        .map(|r| r.name().to_string())
                        .collect();
                    pods.sort();
                    pods
                }
                other => describe_objects::names(paths, other, namespace)?,
            };
        }
        for name in names {
            let text = match kind {
                Kind::Pod => record::find(paths, namespace, &name)
                    .context("reading pod records")?
                    .map(|rec| describe_pod(&rec, jiff::Timestamp::now(), &hostname())),
                other => describe_objects::describe(paths, other, namespace, &name)?,
            };
            match text {
                Some(t) => texts.push(t),
                None => {
                    eprintln!("{}", kind.not_found(&name));
                    code = 1;
                }
            }
        }
    }
    print!("{}", texts.join("\n\n"));
    Ok(code)
}

fn load(paths: &Paths, path: &std::path::Path, name: Option<&str>) -> Result<i32> {
    let store = crate::image::ImageStore::open(paths)?;
    for img in store.load(path, name)? {
        println!("Loaded image: {}", img.reference);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_parses_the_verbs() {
        let c = Cli::try_parse_from(["peapod", "get", "pods", "-A", "-o", "wide"]).unwrap();
        let Verb::Get(g) = c.verb else { panic!() };
        assert!(g.all_namespaces && g.output == Some(Output::Wide));
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
        assert!(e.stream.stdin && e.stream.tty);
        assert!(Cli::try_parse_from(["peapod", "apply", "-f", "-", "--dry-run"]).is_ok());
        for value in ["client", "server", "none"] {
            let c =
                Cli::try_parse_from(["peapod", "apply", "-f", "-", &format!("--dry-run={value}")])
                    .unwrap();
            let Verb::Apply(ApplyArgs { dry_run, .. }) = c.verb else {
                panic!()
            };
            assert_eq!(dry_run.as_deref(), Some(value));
        }
    }

    #[test]
    fn apply_parses_alone_as_in_the_whole_command() {
        let argvs: &[&[&str]] = &[
            &["peapod", "apply", "-f", "-"],
            &[
                "peapod",
                "apply",
                "-f",
                "a.yaml",
                "-f",
                "b",
                "-R",
                "--dry-run",
            ],
            &[
                "peapod",
                "apply",
                "--filename=x",
                "--dry-run=server",
                "-o",
                "name",
            ],
            &[
                "peapod",
                "apply",
                "-f",
                "x",
                "--authfile",
                "/a",
                "--registries-config=/r",
            ],
            &[
                "peapod",
                "apply",
                "-f",
                "x",
                "-o",
                "jsonpath={.metadata.name}",
            ],
        ];
        for argv in argvs {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            let alone = parse_apply(&args).expect("parsed alone");
            let whole = Cli::try_parse_from(&args).unwrap();
            assert_eq!(format!("{alone:?}"), format!("{whole:?}"), "{argv:?}");
        }
        // Whatever clap would print is left to the whole command.
        let argvs: &[&[&str]] = &[
            &["peapod", "apply"],
            &["peapod", "apply", "-h"],
            &["peapod", "apply", "--help"],
            &["peapod", "apply", "--version"],
            &["peapod", "apply", "-f"],
            &["peapod", "apply", "-f", "x", "--bogus"],
            &["peapod", "apply", "-f", "x", "-o", "bogus"],
            &["peapod", "get", "pods"],
            &["peapod", "--authfile", "/a", "apply", "-f", "x"],
        ];
        for argv in argvs {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            assert!(parse_apply(&args).is_none(), "{argv:?}");
        }
    }

    #[test]
    fn dry_run_values_are_kubectls() {
        assert_eq!(dry_run_suffix(None).unwrap(), None);
        assert_eq!(dry_run_suffix(Some("none")).unwrap(), None);
        assert_eq!(dry_run_suffix(Some("client")).unwrap(), Some("(dry run)"));
        assert_eq!(
            dry_run_suffix(Some("server")).unwrap(),
            Some("(server dry run)")
        );
        assert_eq!(
            dry_run_suffix(Some("bogus")).unwrap_err().to_string(),
            "Invalid dry-run value (bogus). Must be \"none\", \"server\", or \"client\"."
        );
    }

    #[test]
    fn clap_parses_the_image_verbs() {
        let c = Cli::try_parse_from(["peapod", "images", "-q", "--digests", "-o", "json"]).unwrap();
        let Verb::Images(a) = c.verb else { panic!() };
        assert!(a.quiet && a.digests && a.output == Some(images::ImagesFormat::Json));
        let c = Cli::try_parse_from(["peapod", "image", "list", "--format", "yaml"]).unwrap();
        assert!(matches!(
            c.verb,
            Verb::Image {
                verb: ImageVerb::Ls(_)
            }
        ));
        let c = Cli::try_parse_from(["peapod", "rmi", "-f", "a", "b"]).unwrap();
        let Verb::Rmi(a) = c.verb else { panic!() };
        assert!(a.force && a.images == ["a", "b"]);
        let c = Cli::try_parse_from(["peapod", "image", "rm", "--force", "a"]).unwrap();
        assert!(matches!(
            c.verb,
            Verb::Image {
                verb: ImageVerb::Rm(_)
            }
        ));
        assert!(Cli::try_parse_from(["peapod", "rmi"]).is_err());
        let c =
            Cli::try_parse_from(["peapod", "login", "-u", "u", "--password-stdin", "h:1"]).unwrap();
        let Verb::Login(a) = c.verb else { panic!() };
        assert!(a.password_stdin && a.username.as_deref() == Some("u") && a.host == "h:1");
        assert!(
            Cli::try_parse_from(["peapod", "login", "-p", "x", "--password-stdin", "h"]).is_err()
        );
        let c = Cli::try_parse_from(["peapod", "push", "busybox", "127.0.0.1:5000/b:1"]).unwrap();
        let Verb::Push(a) = c.verb else { panic!() };
        assert_eq!(a.dest.as_deref(), Some("127.0.0.1:5000/b:1"));
        assert!(Cli::try_parse_from(["peapod", "logout", "h"]).is_ok());
        let c = Cli::try_parse_from(["peapod", "image", "prune"]).unwrap();
        assert!(matches!(
            c.verb,
            Verb::Image {
                verb: ImageVerb::Prune(_)
            }
        ));
    }
}
