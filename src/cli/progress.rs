//! Progress of `pull` and `push` on stderr: on a terminal, one bar per layer redrawn in place
//! (`sha256:0123456789ab [=====>     ] 12.30 MiB/40.00 MiB`, as Docker shows them) with other
//! messages scrolling above the bars, drawn by indicatif; otherwise plain lines, one per event
//! worth a line (`pull::event_line`). Events arrive from several threads; one mutex orders the
//! layer list, indicatif orders the drawing (and throttles it).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::PullEvent;

const MOVING_TEMPLATE: &str = "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes}";
const MESSAGE_TEMPLATE: &str = "{prefix} {msg}";

/// Which verb the lines describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Pull,
    Push,
}

/// The progress sink: call [`Progress::event`] from any thread, [`Progress::finish`] once.
pub struct Progress {
    verb: Verb,
    sink: Sink,
}

enum Sink {
    Quiet,
    Plain,
    Bars(Mutex<Board>),
}

/// The bars on screen, one per layer in the manifest's order.
struct Board {
    multi: MultiProgress,
    layers: Vec<(String, ProgressBar)>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(verb: Verb, quiet: bool) -> Progress {
        let sink = if quiet {
            Sink::Quiet
        } else if std::io::stderr().is_terminal() {
            Sink::Bars(Mutex::new(Board::new(ProgressDrawTarget::stderr())))
        } else {
            Sink::Plain
        };
        Progress { verb, sink }
    }

    pub fn event(&self, event: PullEvent) {
        match &self.sink {
            Sink::Quiet => {}
            Sink::Plain => {
                if let Some(line) = super::pull::event_line(&event, self.verb) {
                    eprintln!("{line}");
                }
            }
            Sink::Bars(board) => lock(board).apply(&event, self.verb),
        }
    }

    /// Leaves the bars as they are (byte counts drawn last may have been throttled).
    pub fn finish(&self) {
        if let Sink::Bars(board) = &self.sink {
            for (_, bar) in &lock(board).layers {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

fn lock(board: &Mutex<Board>) -> std::sync::MutexGuard<'_, Board> {
    match board.lock() {
        Ok(b) => b,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Board {
    fn new(target: ProgressDrawTarget) -> Board {
        Board {
            multi: MultiProgress::with_draw_target(target),
            layers: Vec::new(),
        }
    }

    fn bar(&mut self, digest: &str) -> &ProgressBar {
        let i = match self.layers.iter().position(|(d, _)| d == digest) {
            Some(i) => i,
            None => {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(style(MESSAGE_TEMPLATE));
                bar.set_prefix(short_digest(digest));
                bar.set_message("Waiting");
                self.layers.push((digest.to_string(), bar));
                self.layers.len() - 1
            }
        };
        &self.layers[i].1
    }

    fn apply(&mut self, event: &PullEvent, verb: Verb) {
        match event {
            PullEvent::Resolved { layers, .. } => {
                self.message(event, verb);
                for (digest, _) in layers {
                    self.bar(digest);
                }
            }
            PullEvent::LayerStarted { digest, size } => {
                let bar = self.bar(digest);
                bar.set_style(style(MOVING_TEMPLATE));
                bar.set_length(*size);
                bar.set_position(0);
            }
            PullEvent::LayerProgress {
                digest,
                done,
                total,
            } => {
                let bar = self.bar(digest);
                bar.set_length(*total);
                bar.set_position(*done);
            }
            PullEvent::LayerDone { digest, cached } => {
                let bar = self.bar(digest);
                let total = bar.length().unwrap_or(0);
                bar.set_style(style(MESSAGE_TEMPLATE));
                bar.finish_with_message(done_message(verb, *cached, total));
            }
            PullEvent::Resolving { .. } | PullEvent::Retrying { .. } => self.message(event, verb),
        }
    }

    /// A line above the bars, which stays when they move.
    fn message(&self, event: &PullEvent, verb: Verb) {
        if let Some(line) = super::pull::event_line(event, verb) {
            let _ = self.multi.println(line);
        }
    }
}

fn done_message(verb: Verb, cached: bool, total: u64) -> String {
    match (verb, cached) {
        (Verb::Pull, true) => "Already exists".into(),
        (Verb::Push, true) => "Layer already exists".into(),
        (Verb::Pull, false) => format!("Pull complete {}", binary_size(total)),
        (Verb::Push, false) => format!("Pushed {}", binary_size(total)),
    }
}

fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}

/// Binary units with one decimal: `512B`, `12.3KiB`, `40.0MiB`, `1.2GiB`.
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: &str = "sha256:aaaaaaaaaaaabbbb";
    const B: &str = "sha256:cccccccccccc";

    #[test]
    fn sizes() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(12_900_000), "12.3MiB");
        assert_eq!(binary_size(40 * 1024 * 1024), "40.0MiB");
    }

    fn state(board: &Board, i: usize) -> (String, u64, Option<u64>, String, bool) {
        let bar = &board.layers[i].1;
        (
            bar.prefix(),
            bar.position(),
            bar.length(),
            bar.message(),
            bar.is_finished(),
        )
    }

    #[test]
    fn a_bar_per_layer_from_waiting_to_done() {
        let mut b = Board::new(ProgressDrawTarget::hidden());
        b.apply(
            &PullEvent::Resolved {
                reference: "r".into(),
                manifest_digest: "sha256:m".into(),
                layers: vec![(A.into(), 100), (B.into(), 2048)],
            },
            Verb::Pull,
        );
        assert_eq!(b.layers.len(), 2);
        let waiting = state(&b, 0);
        assert_eq!(
            (waiting.0.as_str(), waiting.3.as_str(), waiting.4),
            ("sha256:aaaaaaaaaaaa", "Waiting", false)
        );
        b.apply(
            &PullEvent::LayerStarted {
                digest: B.into(),
                size: 2048,
            },
            Verb::Pull,
        );
        b.apply(
            &PullEvent::LayerProgress {
                digest: B.into(),
                done: 1024,
                total: 2048,
            },
            Verb::Pull,
        );
        let moving = state(&b, 1);
        assert_eq!((moving.1, moving.2), (1024, Some(2048)));
        b.apply(
            &PullEvent::LayerDone {
                digest: B.into(),
                cached: false,
            },
            Verb::Pull,
        );
        let done = state(&b, 1);
        assert_eq!((done.3.as_str(), done.4), ("Pull complete 2.0KiB", true));
        b.apply(
            &PullEvent::LayerDone {
                digest: A.into(),
                cached: true,
            },
            Verb::Pull,
        );
        assert_eq!(state(&b, 0).3, "Already exists");
        // A retry is a line above the bars, not a bar of its own.
        b.apply(
            &PullEvent::Retrying {
                what: "blob x".into(),
                attempt: 1,
                error: "reset".into(),
                delay: Duration::from_millis(500),
            },
            Verb::Pull,
        );
        assert_eq!(b.layers.len(), 2);
    }

    #[test]
    fn push_lines() {
        assert_eq!(done_message(Verb::Push, true, 10), "Layer already exists");
        assert_eq!(done_message(Verb::Push, false, 10), "Pushed 10B");
    }
}
