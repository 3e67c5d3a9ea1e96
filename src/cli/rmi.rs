//! `peapod rmi` (also `image rm`) and `peapod image prune`: Docker's output lines
//! (`Untagged: ...`, `Deleted: sha256:...`, `Total reclaimed space: 12.3MB`).
//!
//! Which pods use an image comes from `pod::image_use`; the store never looks at pods.

use std::collections::HashSet;

use anyhow::{Context, Result};

use super::format::human_size;
use crate::image::{ImageStore, Pruned};
use crate::pod::image_use::{layers_in_use, pods_using};
use crate::pod::record::{self, PodRecord};
use crate::store::Paths;

#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Remove images that pods use, and IDs that name several repositories.
    #[arg(short, long)]
    pub force: bool,
    /// Image names or ID prefixes.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Accepted for compatibility: prune only deletes content no image names, so it never asks.
    #[arg(short, long)]
    pub force: bool,
}

fn pod_records(paths: &Paths) -> Result<Vec<PodRecord>> {
    record::load_all(paths).context("reading pod records")
}

fn layers_used(paths: &Paths, records: &[PodRecord]) -> Result<HashSet<String>> {
    layers_in_use(paths, records).context("reading the container bundles of pods")
}

/// Removes each image in turn; an error for one is printed and the others still go, as
/// `docker rmi` does. Then collects the content left without a name, unless a pull is
/// writing to the store at that moment (`image prune` will).
pub fn rmi(paths: &Paths, args: &RmiArgs) -> Result<i32> {
    let store = ImageStore::open(paths)?;
    let records = pod_records(paths)?;
    let mut code = 0;
    let mut deleted = false;
    for reference in &args.images {
        match store.remove(reference, args.force, &|c| pods_using(&records, c)) {
            Ok(removed) => {
                for name in &removed.untagged {
                    println!("Untagged: {name}");
                }
                for id in &removed.deleted {
                    println!("Deleted: {id}");
                }
                deleted |= !removed.deleted.is_empty();
            }
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    if deleted {
        match store.try_prune(&layers_used(paths, &records)?) {
            Ok(Some(p)) => tracing::debug!(?p, "collected the removed images' content"),
            Ok(None) => {
                tracing::info!("the store is busy; `peapod image prune` will reclaim the space")
            }
            Err(e) => eprintln!("Warning: the removed images' content was not reclaimed: {e}"),
        }
    }
    Ok(code)
}

pub fn prune(paths: &Paths, _args: &PruneArgs) -> Result<i32> {
    let store = ImageStore::open(paths)?;
    let records = pod_records(paths)?;
    let pruned = store.prune(&layers_used(paths, &records)?)?;
    print!("{}", prune_report(&pruned));
    Ok(0)
}

/// What `image prune` prints.
pub fn prune_report(p: &Pruned) -> String {
    let mut out = String::new();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if p.blobs + p.layers + p.temp > 0 {
        out.push_str(&format!(
            "Deleted {}, {}, {}\n",
            plural(p.blobs, "blob"),
            plural(p.layers, "unpacked layer"),
            plural(p.temp, "stale temp file")
        ));
    }
    for layer in &p.layers_in_use {
        out.push_str(&format!(
            "Kept layer sha256:{} (a pod's container uses it)\n",
            layer
        ));
    }
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(p.bytes)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_report_lines() {
        assert_eq!(
            prune_report(&Pruned::default()),
            "Total reclaimed space: 0B\n"
        );
        let p = Pruned {
            blobs: 3,
            layers: 1,
            temp: 0,
            bytes: 12_300_000,
            layers_in_use: vec!["ab".into()],
        };
        assert_eq!(
            prune_report(&p),
            "Deleted 3 blobs, 1 unpacked layer, 0 stale temp files\n\
             Kept layer sha256:ab (a pod's container uses it)\n\
             Total reclaimed space: 12.3MB\n"
        );
    }
}
