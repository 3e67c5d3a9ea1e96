//! `peapod label` and `peapod annotate`, as kubectl prints them: `pod/web labeled`.

use anyhow::{bail, Result};
use clap::Args;

use crate::manifest::defaults::DEFAULT_NAMESPACE;
use crate::pod::metadata::{self, MetadataError, MetadataKind};
use crate::store::Paths;

#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// `pod NAME` (or `pod/NAME`), then `KEY=VALUE` to set and `KEY-` to remove.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Replace values that are set already.
    #[arg(long)]
    pub overwrite: bool,
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// kubectl's `GetResourcesAndPairs`: resources first, then the pairs (`=` or a trailing `-`).
fn split_args<'a>(args: &'a [String], pair_type: &str) -> Result<(Vec<&'a str>, Vec<String>)> {
    let mut resources = Vec::new();
    let mut pairs = Vec::new();
    for arg in args {
        if arg.contains('=') || arg.ends_with('-') {
            pairs.push(arg.clone());
        } else if pairs.is_empty() {
            resources.push(arg.as_str());
        } else {
            bail!(
                "all resources must be specified before {pair_type} changes: {}",
                args.join(" ")
            );
        }
    }
    Ok((resources, pairs))
}

/// kubectl's words when no resource is named.
const NO_RESOURCE: &str =
    "one or more resources must be specified as <resource> <name> or <resource>/<name>";

/// The pod named by `pod NAME` or `pod/NAME`.
fn pod_name<'a>(resources: &[&'a str]) -> Result<&'a str> {
    let (kind, name) = match resources {
        [one] => match one.split_once('/') {
            Some((kind, name)) => (kind, name),
            None => bail!(NO_RESOURCE),
        },
        [kind, name] => (*kind, *name),
        [] => bail!(NO_RESOURCE),
        _ => bail!("peapod labels one pod at a time"),
    };
    if super::kinds::Kind::resolve(kind)? != super::kinds::Kind::Pod {
        bail!("peapod labels and annotates pods only");
    }
    Ok(name)
}

pub fn run(paths: &Paths, args: &MetadataArgs, kind: MetadataKind) -> Result<i32> {
    let pair_type = match kind {
        MetadataKind::Labels => "label",
        MetadataKind::Annotations => "annotation",
    };
    let (resources, pairs) = split_args(&args.args, pair_type)?;
    let mut change = match kind {
        MetadataKind::Labels => metadata::parse_labels(&pairs)?,
        MetadataKind::Annotations => metadata::parse_annotations(&pairs)?,
    };
    change.overwrite = args.overwrite;
    let name = pod_name(&resources)?;
    match metadata::update(paths, &args.namespace, name, kind, &change) {
        Ok(outcome) => {
            if kind == MetadataKind::Labels {
                for key in &outcome.absent {
                    println!("label {key:?} not found.");
                }
            }
            println!("pod/{name} {}", outcome.verb);
            Ok(0)
        }
        Err(e @ MetadataError::NotFound(_)) => {
            eprintln!("Error from server (NotFound): {e}");
            Ok(1)
        }
        Err(e @ MetadataError::InvalidKey { .. }) => {
            eprintln!("{e}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resources_come_before_pairs() {
        let a = v(&["pod", "web", "a=1", "b-"]);
        let (r, p) = split_args(&a, "label").unwrap();
        assert_eq!((r, p), (vec!["pod", "web"], v(&["a=1", "b-"])));
        assert_eq!(pod_name(&["pod/web"]).unwrap(), "web");
        assert_eq!(pod_name(&["pods", "web"]).unwrap(), "web");
        let a = v(&["pod", "a=1", "web"]);
        assert_eq!(
            split_args(&a, "label").unwrap_err().to_string(),
            "all resources must be specified before label changes: pod a=1 web"
        );
        assert!(pod_name(&["deploy", "x"]).is_err());
    }
}
