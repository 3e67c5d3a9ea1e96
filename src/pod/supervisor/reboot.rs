//! A supervisor started for a pod whose processes a reboot took (`peapod node` starts it:
//! `node::recovery`). It picks up the pod's history from the earlier boot's records, as a
//! kubelet does from its runtime after a reboot: each container's restart count and last
//! termination (a running one ended `Unknown`, 255: `pod::reboot`), the pod's start time, IP
//! and sandbox attempt; then, once the pod is admitted again, the sandbox is treated as lost
//! (`SandboxChanged`) and the usual path decides: a new sandbox with the containers the
//! restart policy runs again, init containers first, or the pod's end (Never).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};

use super::Supervisor;
use crate::pod::machine::{after_exit, Exit, Lifecycle, Next, StopCause};
use crate::pod::model::{PHASE_FAILED, PHASE_SUCCEEDED};
use crate::pod::reboot::{restore_container, ContainerBefore};
use crate::pod::record::{PodState, STATE_FILE, STATUS_FILE};
use crate::store::read_json;

impl Supervisor {
    /// Reads the earlier boot's record of this pod, if it has one, into the containers'
    /// history. True when the pod is recovered after a reboot. A record of this very boot
    /// (the previous supervisor was killed, its containers may run) is not taken up here:
    /// re-adopting those is separate work; the supervisor then starts the pod as new.
    pub(super) fn restore_after_reboot(&mut self) -> bool {
        let dir = self.paths.pod_dir(&self.uid);
        let Ok(previous) = read_json::<PodState>(&dir.join(STATE_FILE)) else {
            return false;
        };
        let boot = self.state.boot_id.as_deref().unwrap_or_default();
        if previous.finished || previous.boot_id.as_deref() == Some(boot) {
            return false;
        }
        let status: Option<PodStatus> = read_json(&dir.join(STATUS_FILE)).ok();
        tracing::info!(
            boot = ?previous.boot_id,
            "the pod's processes were lost to a reboot; recovering it in a new sandbox"
        );
        if let Some(start) = status.as_ref().and_then(|s| s.start_time.as_ref()) {
            self.start_time = start.0;
            let ran = Timestamp::now()
                .duration_since(start.0)
                .unsigned_abs()
                .min(Duration::from_secs(u32::MAX.into()));
            self.started = Instant::now().checked_sub(ran).unwrap_or_else(Instant::now);
        }
        // The address the pod had, taken again unless another pod holds it meanwhile.
        self.sandbox.pod_ip = previous.sandbox.ip;
        self.state.sandbox.attempt = previous.sandbox.attempt;
        let statuses: Vec<&ContainerStatus> = status
            .iter()
            .flat_map(|s| {
                let init = s.init_container_statuses.iter().flatten();
                init.chain(s.container_statuses.iter().flatten())
            })
            .collect();
        // A pod whose phase was already terminal (its supervisor was ending it) stays so: none
        // of its containers runs again, the pod just finishes.
        let terminal = status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == PHASE_SUCCEEDED || p == PHASE_FAILED);
        let (now, policy) = (Timestamp::now(), self.policy);
        for r in self.runs.iter_mut() {
            let name = r.spec.name.as_str();
            let before = ContainerBefore {
                status: statuses.iter().copied().find(|s| s.name == name),
                instance: previous.containers.get(name),
            };
            let restored = restore_container(before, now);
            r.instances = restored.instances;
            r.image_id = restored.image_id;
            r.before_last = restored.before_last;
            r.last = restored.last;
            if terminal {
                r.life = Lifecycle::Done;
                continue;
            }
            let Some(last) = &r.last else {
                continue;
            };
            if restored.lost {
                tracing::info!(container = %name, "container lost to the reboot: exit 255, Unknown");
            }
            // As if the old sandbox's loss had stopped it; the back-off starts over (the
            // kubelet's is in memory).
            let exit = Exit {
                code: last.exit_code,
                ran_for: Duration::ZERO,
            };
            let next = after_exit(
                r.kind,
                policy,
                exit,
                Some(StopCause::SandboxLost),
                &mut r.backoff,
            );
            r.life = match next {
                Next::Done => Lifecycle::Done,
                Next::Restart { .. } => Lifecycle::Exited { next_start: None },
            };
        }
        self.sandbox.ran = self.runs.iter().any(|r| r.instances > 0);
        self.remove_lost_bundles(&previous);
        // The conditions keep their transition times where they do not change.
        self.status = status;
        true
    }

    /// The bundles and writable layers of the instances that ran when the host went down:
    /// their processes and their rootfs mounts (made in the containers' own mount namespaces)
    /// ended with the boot (and the bundles with the run directory, after a real reboot).
    /// Anything still mounted under them (none after a real reboot) is unmounted first, so the
    /// removal can never reach into a mount.
    fn remove_lost_bundles(&self, previous: &PodState) {
        let mut bundles: Vec<_> = previous
            .containers
            .values()
            .filter_map(|c| c.bundle.clone())
            .flat_map(|b| {
                let mut dirs = self.paths.layer_dirs_of_bundle(&b);
                dirs.push(b);
                dirs
            })
            .filter(|b| b.exists())
            .collect();
        bundles.dedup();
        let failed = crate::pod::teardown::unmount_under(&bundles);
        if !failed.is_empty() {
            tracing::warn!(errors = ?failed, "cannot unmount under the lost instances' bundles; they stay");
            return;
        }
        for b in bundles {
            if let Err(e) = std::fs::remove_dir_all(&b) {
                tracing::warn!(bundle = %b.display(), error = %e, "cannot remove a lost instance's bundle");
            }
        }
    }
}
