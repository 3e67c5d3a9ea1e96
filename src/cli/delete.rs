//! `peapod delete`: pods through their supervisors (`pod::lifecycle::delete`), the stored kinds
//! through the object store, by `KIND NAME...`, `KIND/NAME...`, `KIND -l SEL`,
//! `KIND --field-selector SEL`, `KIND --all [-A]` or `-f`, with kubectl's lines and rules
//! [kubectl pkg/cmd/delete/delete.go, delete_flags.go]: `configmap "x" deleted`,
//! `Error from server (NotFound): configmaps "x" not found`, `No resources found`.

use anyhow::{bail, Result};

use super::kinds::{self, Kind};
use super::selector::Selectors;
use super::sources::Sources;
use crate::pod::lifecycle::{self, LifecycleError};
use crate::store::Paths;

/// What `delete` was asked, besides its targets.
#[derive(Debug, Clone, Copy)]
pub struct DeleteOptions {
    pub grace: Option<i64>,
    pub force: bool,
    pub now: bool,
    /// A dry run's suffix (`cli::dry_run_suffix`): nothing is deleted.
    pub dry_run: Option<&'static str>,
    /// `-o name`: `KIND/NAME` lines.
    pub names_only: bool,
}

/// How `delete` picks objects besides names and files.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeleteSelection {
    #[command(flatten)]
    pub selectors: Selectors,
    /// Every object of the kinds given.
    #[arg(long)]
    pub all: bool,
    /// With `--all` or a selector: in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// A named object that does not exist is not an error (the default with `--all` and
    /// selectors).
    #[arg(long)]
    pub ignore_not_found: bool,
}

impl DeleteSelection {
    /// Selecting rather than naming: `--all` or a selector.
    fn selecting(&self) -> bool {
        self.all || !self.selectors.is_empty()
    }
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

/// A static pod comes back while its manifest file exists, as a kubelet re-creates a static
/// pod's mirror pod: say so before deleting it.
fn warn_if_static(paths: &Paths, namespace: &str, name: &str) {
    let Ok(Some(rec)) = crate::pod::record::find(paths, namespace, name) else {
        return;
    };
    if crate::node::static_pods::is_static(&rec.pod) {
        let file = crate::node::static_pods::source_file(&rec.pod).unwrap_or("its manifest");
        eprintln!(
            "Warning: pod \"{name}\" is a static pod: the node agent creates it again while {file} exists"
        );
    }
}

/// Deletes one pod with its own grace period, as `run --rm` does after the session (kubectl's
/// DeleteOptions with IgnoreNotFound): the line unless `quiet`, then waits for it to go.
pub(super) fn delete_pod_after_run(
    paths: &Paths,
    namespace: &str,
    name: &str,
    quiet: bool,
) -> Result<()> {
    match lifecycle::request_delete(paths, namespace, name, None, false) {
        Ok(pending) => {
            if !quiet {
                println!("{}", deleted(Kind::Pod, name, namespace, false));
            }
            lifecycle::finish_delete(paths, pending)?;
            Ok(())
        }
        Err(LifecycleError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// kubectl's line for a deleted object [kubectl delete.go PrintObj]: `force deleted` when the
/// grace period is 0, and since kubectl 1.34 the namespace of a namespaced object.
fn deleted(kind: Kind, name: &str, namespace: &str, force: bool) -> String {
    let operation = if force { "force deleted" } else { "deleted" };
    if kind.namespaced() {
        format!(
            "{} \"{name}\" {operation} from {namespace} namespace",
            kind.singular()
        )
    } else {
        format!("{} \"{name}\" {operation}", kind.singular())
    }
}

/// The objects `delete` was pointed at: (kind, namespace, name), and any BadRequest lines of
/// selectors the API server would refuse.
type Targets = (Vec<(Kind, String, String)>, Vec<String>);

fn targets(
    paths: &Paths,
    args: &[String],
    files: &Sources,
    namespace: &str,
    select: &DeleteSelection,
) -> Result<Targets> {
    if !files.is_empty() {
        if !args.is_empty() {
            bail!("resource names cannot be given with -f");
        }
        let targets = files
            .decode()?
            .iter()
            .map(|o| (Kind::of(o), o.namespace().to_string(), o.name().to_string()))
            .collect();
        return Ok((targets, Vec::new()));
    }
    if select.all && select.selectors.labels.is_some() {
        bail!("cannot set --all and --selector at the same time");
    }
    if select.all && select.selectors.fields.is_some() {
        bail!("cannot set --all and --field-selector at the same time");
    }
    if args.is_empty() {
        if select.selecting() {
            bail!("at least one resource must be specified to use a selector");
        }
        bail!("You must provide one or more resources by argument or filename.");
    }
    let mut targets = Vec::new();
    let mut refused = Vec::new();
    for (kind, names) in kinds::targets(args)? {
        if select.selecting() {
            if !names.is_empty() {
                bail!("name cannot be provided when a selector is specified");
            }
            let ns = (!select.all_namespaces).then_some(namespace);
            match super::get::select(paths, kind, ns, &select.selectors)? {
                Ok(listed) => targets.extend(listed.into_iter().map(|l| {
                    (
                        kind,
                        if l.namespace.is_empty() {
                            namespace.to_string()
                        } else {
                            l.namespace
                        },
                        l.name,
                    )
                })),
                Err(line) => refused.push(line),
            }
            continue;
        }
        if names.is_empty() {
            bail!("resource(s) were provided, but no name was specified");
        }
        for name in names {
            targets.push((kind, namespace.to_string(), name));
        }
    }
    Ok((targets, refused))
}

/// `peapod delete`. Returns 1 when any target was not found (unless ignored) or a selector
/// was refused, after trying every target.
pub fn run(
    paths: &Paths,
    args: &[String],
    files: &Sources,
    namespace: &str,
    options: DeleteOptions,
    select: &DeleteSelection,
) -> Result<i32> {
    let (targets, refused) = targets(paths, args, files, namespace, select)?;
    let mut code = 0;
    for line in &refused {
        eprintln!("{line}");
        code = 1;
    }
    let ignore_not_found = select.ignore_not_found || select.selecting();
    let mut grace = None;
    if targets.iter().any(|(k, _, _)| *k == Kind::Pod) {
        let (period, warn) = grace_period(options.grace, options.force, options.now)?;
        if warn {
            eprintln!("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.");
        }
        grace = period;
    }
    let mut deleted_any = false;
    // Pods are asked to stop in the order given and waited for together at the end, as kubectl
    // deletes every object and then waits.
    let mut stopping = Vec::new();
    for (kind, ns, name) in &targets {
        if *kind == Kind::Pod {
            warn_if_static(paths, ns, name);
        }
        let found = match kind {
            _ if options.dry_run.is_some() => super::get::find(paths, *kind, ns, name)?.is_some(),
            Kind::Pod => match lifecycle::request_delete(paths, ns, name, grace, options.force) {
                Ok(pending) => {
                    stopping.push(pending);
                    true
                }
                Err(LifecycleError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            },
            other => super::objects::delete(paths, *other, ns, name)?,
        };
        if found {
            deleted_any = true;
            let force = *kind == Kind::Pod && grace == Some(0);
            if options.names_only {
                println!("{}/{name}", kind.singular());
            } else {
                let line = deleted(*kind, name, ns, force);
                match options.dry_run {
                    Some(suffix) => println!("{line} {suffix}"),
                    None => println!("{line}"),
                }
            }
        } else if !ignore_not_found {
            eprintln!("{}", kind.not_found(name));
            code = 1;
        }
    }
    for pending in stopping {
        lifecycle::finish_delete(paths, pending)?;
    }
    if !deleted_any && code == 0 {
        println!("{}", super::format::NO_RESOURCES);
    }
    Ok(code)
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
    fn deleted_lines() {
        assert_eq!(
            deleted(Kind::ConfigMap, "x", "default", false),
            "configmap \"x\" deleted from default namespace"
        );
        assert_eq!(
            deleted(Kind::Pod, "web", "prod", true),
            "pod \"web\" force deleted from prod namespace"
        );
        assert_eq!(
            deleted(Kind::PersistentVolume, "pvc-1", "default", false),
            "persistentvolume \"pvc-1\" deleted"
        );
    }
}
