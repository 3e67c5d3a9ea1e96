//! `peapod pull REF`: pulls an image into the store. Progress goes to stderr as plain lines
//! (one per layer start and end, retries, a summary); the last stdout line is the image ID.

use std::io::Write as _;
use std::time::Instant;

use anyhow::Result;

use crate::image::{ImageStore, PullEvent, PullOptions};
use crate::store::Paths;

/// The first 12 hex digits of a digest, as Docker shows layers.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// One stderr line for an event, or none (progress ticks are not worth a line each).
pub fn event_line(event: &PullEvent) -> Option<String> {
    match event {
        PullEvent::Resolving {
            reference,
            endpoint,
        } => Some(format!("Resolving {reference} at {endpoint}")),
        PullEvent::Resolved {
            manifest_digest,
            layers,
            ..
        } => Some(format!(
            "Manifest {manifest_digest}: {} layer{}",
            layers.len(),
            if layers.len() == 1 { "" } else { "s" }
        )),
        PullEvent::LayerStarted { digest, size } => Some(format!(
            "{}: pulling ({})",
            short(digest),
            super::human_size(*size)
        )),
        PullEvent::LayerProgress { .. } => None,
        PullEvent::LayerDone { digest, cached } => Some(format!(
            "{}: {}",
            short(digest),
            if *cached {
                "already exists"
            } else {
                "pull complete"
            }
        )),
        PullEvent::Retrying {
            what,
            attempt,
            error,
            delay,
        } => Some(format!(
            "{what}: attempt {attempt} failed ({error}); retrying in {:.1}s",
            delay.as_secs_f64()
        )),
    }
}

pub fn run(paths: &Paths, reference: &str, quiet: bool) -> Result<i32> {
    let store = ImageStore::open(paths)?;
    let opts = PullOptions::from_env(paths)?;
    let started = Instant::now();
    let progress = move |event: PullEvent| {
        if quiet {
            return;
        }
        if let Some(line) = event_line(&event) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    };
    let outcome = store.pull(reference, &opts, &progress)?;
    if !quiet {
        eprintln!(
            "Pulled {} in {:.3}s ({} bytes)",
            outcome.summary.reference,
            started.elapsed().as_secs_f64(),
            outcome.downloaded_bytes
        );
        eprintln!("Digest: {}", outcome.repo_digest);
    }
    println!("{}", outcome.summary.id);
    Ok(0)
}
