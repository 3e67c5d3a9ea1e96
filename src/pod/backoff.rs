//! The kubelet's restart back-off for crashed containers.
//!
//! The first restart after a crash is immediate; later ones wait 10s, 20s, 40s, ... capped at
//! 300s, counted from the previous exit. A container that ran longer than 10 minutes resets the
//! back-off [pkg/kubelet/kuberuntime, client-go util/flowcontrol/backoff.go].

use std::time::Duration;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran longer than this before exiting starts the back-off afresh (twice the
/// cap: client-go's `hasExpired`, `eventTime.Sub(lastUpdate) > maxDuration*2`).
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off state of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartBackoff {
    /// The delay before the next restart; zero until the first crash has been restarted.
    next: Duration,
}

impl RestartBackoff {
    /// The back-off of a container whose definition (image) changed: the kubelet keys its
    /// back-off by the container's hash, so the old one no longer counts; the start for the new
    /// definition records one entry when an ended instance exists (doBackOff's `Next`), so the
    /// next crash then waits 10 s, else it restarts at once.
    pub fn for_new_definition(ended_before: bool) -> RestartBackoff {
        RestartBackoff {
            next: if ended_before {
                INITIAL_BACKOFF
            } else {
                Duration::ZERO
            },
        }
    }

    /// Records an exit after `ran_for` and returns how long to wait before the restart.
    pub fn on_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for > BACKOFF_RESET_AFTER {
            self.next = Duration::ZERO;
        }
        let delay = self.next;
        self.next = if delay.is_zero() {
            INITIAL_BACKOFF
        } else {
            (delay * 2).min(MAX_BACKOFF)
        };
        delay
    }
}

/// The kubelet's back-off between failed pulls of one image for one pod: 10s after the first
/// failure, doubling to 300s [pkg/kubelet/images/image_manager.go, same flowcontrol back-off].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullBackoff {
    last: Duration,
}

impl PullBackoff {
    /// Records a failed pull and returns how long the next pull must wait.
    pub fn on_failure(&mut self) -> Duration {
        self.last = if self.last.is_zero() {
            INITIAL_BACKOFF
        } else {
            (self.last * 2).min(MAX_BACKOFF)
        };
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_backoff_starts_at_ten_seconds_and_doubles_to_the_cap() {
        let mut b = PullBackoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.on_failure().as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let mut b = RestartBackoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| b.on_exit(Duration::from_secs(1)).as_secs())
            .collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut b = RestartBackoff::default();
        b.on_exit(Duration::from_secs(1));
        b.on_exit(Duration::from_secs(1));
        assert_eq!(b.on_exit(Duration::from_secs(1)), Duration::from_secs(20));
        assert_eq!(b.on_exit(Duration::from_secs(601)), Duration::ZERO);
        assert_eq!(b.on_exit(Duration::from_secs(1)), Duration::from_secs(10));
    }
}
