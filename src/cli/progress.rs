//! Progress of `pull` and `push` on stderr: on a terminal, one line per layer redrawn in place
//! (`sha256:0123456789ab [=====>     ] 12.3MiB/40.0MiB`, as Docker does) with other messages
//! scrolling above the bars; otherwise plain lines, one per event worth a line.
//!
//! Hand-rolled ANSI (cursor up, clear line) rather than a progress-bar crate: three escape
//! sequences are all it takes. Events arrive from several threads; one mutex orders them.

use std::io::{IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::image::PullEvent;

/// Redraws at most this often for byte counts (starts and ends redraw at once).
const REDRAW_EVERY: Duration = Duration::from_millis(100);
const BAR_WIDTH: usize = 30;
const DEFAULT_COLUMNS: usize = 80;

/// Which verb the lines describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Pull,
    Push,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LayerState {
    Waiting,
    Moving { done: u64, total: u64 },
    Done { cached: bool, total: u64 },
}

#[derive(Debug)]
struct Bars {
    verb: Verb,
    /// (digest, state), in the manifest's order.
    layers: Vec<(String, LayerState)>,
    /// Bar lines currently on screen below the cursor's line of origin.
    drawn: usize,
    last_draw: Option<Instant>,
}

/// The progress sink: call [`Progress::event`] from any thread, [`Progress::finish`] once.
pub struct Progress {
    mode: Mode,
    bars: Mutex<Bars>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Plain,
    Bars { columns: usize },
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(verb: Verb, quiet: bool) -> Progress {
        let stderr = std::io::stderr();
        let mode = if quiet {
            Mode::Quiet
        } else if stderr.is_terminal() {
            Mode::Bars {
                columns: terminal_columns(&stderr).unwrap_or(DEFAULT_COLUMNS),
            }
        } else {
            Mode::Plain
        };
        Progress {
            mode,
            bars: Mutex::new(Bars::new(verb)),
        }
    }

    pub fn event(&self, event: PullEvent) {
        let mut bars = match self.bars.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let text = match self.mode {
            Mode::Quiet => return,
            Mode::Plain => match super::pull::event_line(&event, bars.verb) {
                Some(line) => format!("{line}\n"),
                None => return,
            },
            Mode::Bars { columns } => match bars.apply(&event, Instant::now()) {
                Some(messages) => bars.frame(&messages, columns),
                None => return,
            },
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// Draws the final state of the bars (byte counts may have been throttled).
    pub fn finish(&self) {
        if let Mode::Bars { columns } = self.mode {
            let mut bars = match self.bars.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            let text = bars.frame(&[], columns);
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

impl Bars {
    fn new(verb: Verb) -> Bars {
        Bars {
            verb,
            layers: Vec::new(),
            drawn: 0,
            last_draw: None,
        }
    }

    fn layer(&mut self, digest: &str) -> &mut LayerState {
        let i = match self.layers.iter().position(|(d, _)| d == digest) {
            Some(i) => i,
            None => {
                self.layers.push((digest.to_string(), LayerState::Waiting));
                self.layers.len() - 1
            }
        };
        &mut self.layers[i].1
    }

    /// Updates the state; returns the messages to print above the bars when a redraw is due.
    fn apply(&mut self, event: &PullEvent, now: Instant) -> Option<Vec<String>> {
        let mut messages = Vec::new();
        match event {
            PullEvent::Resolved { layers, .. } => {
                for (digest, _) in layers {
                    self.layer(digest);
                }
                messages.extend(super::pull::event_line(event, self.verb));
            }
            PullEvent::LayerStarted { digest, size } => {
                *self.layer(digest) = LayerState::Moving {
                    done: 0,
                    total: *size,
                };
            }
            PullEvent::LayerProgress {
                digest,
                done,
                total,
            } => {
                *self.layer(digest) = LayerState::Moving {
                    done: *done,
                    total: *total,
                };
                let due = self
                    .last_draw
                    .is_none_or(|t| now.duration_since(t) >= REDRAW_EVERY);
                if !due {
                    return None;
                }
            }
            PullEvent::LayerDone { digest, cached } => {
                let state = self.layer(digest);
                let total = match state {
                    LayerState::Moving { total, .. } => *total,
                    _ => 0,
                };
                *state = LayerState::Done {
                    cached: *cached,
                    total,
                };
            }
            PullEvent::Resolving { .. } | PullEvent::Retrying { .. } => {
                messages.extend(super::pull::event_line(event, self.verb));
            }
        }
        self.last_draw = Some(now);
        Some(messages)
    }

    /// The escape sequences that move back over the bars drawn last time, print `messages`
    /// (they scroll up and stay) and draw the bars again, each cut to the terminal width so
    /// that no line wraps (a wrapped line would break the count of lines to move up).
    fn frame(&mut self, messages: &[String], columns: usize) -> String {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let lines = messages
            .iter()
            .cloned()
            .chain(self.layers.iter().map(|(d, s)| layer_line(d, s, self.verb)));
        for line in lines {
            out.push_str("\r\x1b[2K");
            out.extend(line.chars().take(columns.saturating_sub(1)));
            out.push('\n');
        }
        self.drawn = self.layers.len();
        out
    }
}

/// `sha256:0123456789ab` of a digest.
fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}

fn layer_line(digest: &str, state: &LayerState, verb: Verb) -> String {
    let name = short_digest(digest);
    match (state, verb) {
        (LayerState::Waiting, _) => format!("{name} Waiting"),
        (LayerState::Moving { done, total }, _) => format!(
            "{name} {} {}/{}",
            bar(*done, *total),
            binary_size(*done),
            binary_size(*total)
        ),
        (LayerState::Done { cached: true, .. }, Verb::Pull) => format!("{name} Already exists"),
        (LayerState::Done { cached: true, .. }, Verb::Push) => {
            format!("{name} Layer already exists")
        }
        (LayerState::Done { total, .. }, Verb::Pull) => {
            format!("{name} Pull complete {}", binary_size(*total))
        }
        (LayerState::Done { total, .. }, Verb::Push) => {
            format!("{name} Pushed {}", binary_size(*total))
        }
    }
}

/// `[=====>     ]`, BAR_WIDTH cells inside the brackets.
fn bar(done: u64, total: u64) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as u128 * BAR_WIDTH as u128) / total as u128) as usize
    };
    let mut s = String::with_capacity(BAR_WIDTH + 2);
    s.push('[');
    for i in 0..BAR_WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    s.push(']');
    s
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

/// The terminal's width in columns (TIOCGWINSZ), if it says.
fn terminal_columns(fd: &impl AsRawFd) -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass; the fd is borrowed.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(size.ws_col as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaabbbb";
    const B: &str = "sha256:cccccccccccc";

    #[test]
    fn sizes_and_bars() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(12_900_000), "12.3MiB");
        assert_eq!(binary_size(40 * 1024 * 1024), "40.0MiB");
        assert_eq!(bar(0, 100).len(), BAR_WIDTH + 2);
        assert_eq!(
            bar(50, 100),
            format!("[{}>{}]", "=".repeat(15), " ".repeat(14))
        );
        assert_eq!(bar(100, 100), format!("[{}]", "=".repeat(30)));
        assert_eq!(bar(5, 0), format!("[>{}]", " ".repeat(29)));
    }

    #[test]
    fn bars_redraw_in_place_with_messages_above() {
        let mut b = Bars::new(Verb::Pull);
        let t0 = Instant::now();
        let resolved = PullEvent::Resolved {
            reference: "r".into(),
            manifest_digest: "sha256:m".into(),
            layers: vec![(A.into(), 100), (B.into(), 2048)],
        };
        let msgs = b.apply(&resolved, t0).unwrap();
        let f = b.frame(&msgs, 80);
        assert_eq!(
            f,
            "\r\x1b[2KManifest sha256:m: 2 layers\n\
             \r\x1b[2Ksha256:aaaaaaaaaaaa Waiting\n\
             \r\x1b[2Ksha256:cccccccccccc Waiting\n"
        );
        let started = PullEvent::LayerStarted {
            digest: B.into(),
            size: 2048,
        };
        let msgs = b.apply(&started, t0).unwrap();
        let f = b.frame(&msgs, 80);
        assert!(
            f.starts_with("\x1b[2A\r\x1b[2Ksha256:aaaaaaaaaaaa Waiting\n"),
            "{f:?}"
        );
        assert!(f.ends_with(&format!("sha256:cccccccccccc {} 0B/2.0KiB\n", bar(0, 1))));

        // Byte counts are throttled, starts and ends are not.
        let tick = |done| PullEvent::LayerProgress {
            digest: B.into(),
            done,
            total: 2048,
        };
        assert!(b
            .apply(&tick(1024), t0 + Duration::from_millis(10))
            .is_none());
        assert!(b.apply(&tick(1024), t0 + REDRAW_EVERY).is_some());
        let done = PullEvent::LayerDone {
            digest: B.into(),
            cached: false,
        };
        let msgs = b.apply(&done, t0 + REDRAW_EVERY).unwrap();
        let f = b.frame(&msgs, 80);
        assert!(
            f.ends_with("sha256:cccccccccccc Pull complete 2.0KiB\n"),
            "{f:?}"
        );

        let retry = PullEvent::Retrying {
            what: "blob x".into(),
            attempt: 1,
            error: "reset".into(),
            delay: Duration::from_millis(500),
        };
        let msgs = b.apply(&retry, t0).unwrap();
        let f = b.frame(&msgs, 20);
        // The message takes the first line; every line is cut to the width.
        assert!(
            f.starts_with("\x1b[2A\r\x1b[2Kblob x: attempt 1 f\n"),
            "{f:?}"
        );
        let plain = f.replace("\x1b[2A", "").replace("\r\x1b[2K", "");
        assert!(plain.lines().all(|l| l.chars().count() == 19), "{plain:?}");
    }

    #[test]
    fn push_lines() {
        let done = |cached| LayerState::Done { cached, total: 10 };
        assert_eq!(
            layer_line(A, &done(true), Verb::Push),
            "sha256:aaaaaaaaaaaa Layer already exists"
        );
        assert_eq!(
            layer_line(A, &done(false), Verb::Push),
            "sha256:aaaaaaaaaaaa Pushed 10B"
        );
    }
}
