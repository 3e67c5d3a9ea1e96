//! A restart of all containers in the same sandbox, when an exit matches a
//! `RestartAllContainers` rule [KEP-5532; kuberuntime_manager.go computePodActions]: every
//! container is killed at once (no preStop hook, no grace period, no termination order), then,
//! once none is left and the back-off of the container that asked for it allows, the pod runs
//! again from its first init container. The sandbox, its IP and the volumes stay; each
//! container's status keeps its last termination and its restartCount grows when it runs again.

use std::time::{Duration, Instant};

use super::stop::PodRun;
use super::Supervisor;
use crate::pod::machine::{Lifecycle, StopCause};

impl Supervisor {
    /// Container exits asked for a restart of all containers, to begin `delay` from now.
    pub(super) fn begin_restart_all(&mut self, trigger: &str, delay: Duration) {
        let now = Instant::now();
        tracing::info!(container = %trigger, delay_ms = delay.as_millis() as u64, "restarting all containers");
        self.pod_run = PodRun::Restarting { at: now + delay };
        self.kill_pulls();
        for i in 0..self.runs.len() {
            self.stop_container(i, StopCause::RestartAll, Duration::ZERO, now);
        }
        self.drive_stops(now);
        self.mark_dirty();
        self.drive_restart_all(now);
    }

    /// While restarting: signals due, and once every container is gone and the time has come,
    /// the pod starts over from its first init container.
    pub(super) fn drive_restart_all(&mut self, now: Instant) {
        let PodRun::Restarting { at } = self.pod_run else {
            return;
        };
        self.drive_stops(now);
        if now < at || self.runs.iter().any(|r| r.life.instance().is_some()) {
            return;
        }
        tracing::info!("all containers stopped; starting the pod's containers again");
        // Every container waits for its turn again; its last termination stays in its status.
        for r in self.runs.iter_mut() {
            r.life = Lifecycle::waiting(r.waiting_reason);
            r.rerun = true;
        }
        self.begin_sandbox_run(now);
        // A sandbox lost meanwhile is made again (or the pod ends) as after any loss.
        self.sandbox_lost_check();
        self.mark_dirty();
    }
}
