//! `peapod push LOCAL_REF [DEST_REF]`: uploads an image of the store to a registry. Progress on
//! stderr as `pull` shows it; the last stdout line is the manifest digest the registry stored.

use anyhow::Result;

use super::progress::{Progress, Verb};
use crate::image::{ImageStore, PullOptions};
use crate::store::Paths;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The image in the store (name or ID prefix).
    pub local: String,
    /// Where to push it (`host:port/repo:tag`); the local name when absent.
    pub dest: Option<String>,
    /// Print only the manifest digest.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(paths: &Paths, args: &PushArgs) -> Result<i32> {
    let store = ImageStore::open(paths)?;
    let opts = PullOptions::from_env(paths)?;
    let dest = args.dest.as_deref().unwrap_or("");
    let sink = Progress::new(Verb::Push, args.quiet);
    let digest = store.push(&args.local, dest, &opts, &|e| sink.event(e));
    sink.finish();
    let digest = digest?;
    if !args.quiet {
        eprintln!(
            "Pushed {} as {digest}",
            args.dest.as_deref().unwrap_or(&args.local)
        );
    }
    println!("{digest}");
    Ok(0)
}
