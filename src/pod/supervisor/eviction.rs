//! emptyDir `sizeLimit` eviction, as the kubelet's eviction manager does it for local storage
//! [pkg/kubelet/eviction/eviction_manager.go emptyDirLimitEviction, evictPod; helpers.go]:
//! every monitoring period the usage of each emptyDir with a positive sizeLimit is measured
//! (`volume::usage`, like the kubelet's du), and the first one over its limit evicts the pod:
//! a Warning `Evicted` event, every container killed at once (grace period 0) and never
//! restarted, and the pod's status Failed with reason `Evicted` and the kubelet's message.
//! The pod then stays, Failed, until it is deleted.

use std::time::{Duration, Instant};

use super::stop::{End, PodRun};

use k8s_openapi::api::core::v1::Pod;

use super::Supervisor;
use crate::manifest::quantity::parse_quantity;
use crate::pod::events;
use crate::pod::model::{PodFailure, REASON_EVICTED};
use crate::volume::{self, empty_dir, usage, PLUGIN_EMPTY_DIR};

/// The eviction manager's monitoring period (kubelet `evictionMonitoringPeriod`).
pub const VOLUME_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// At most this many files are looked at per volume and check; beyond, the usage counted so
/// far (a lower bound) decides.
const MAX_USAGE_ENTRIES: usize = 100_000;

/// When the emptyDir sizeLimits are measured next.
pub(crate) struct Watch {
    pub next_check: Instant,
}

impl Watch {
    pub fn new() -> Watch {
        Watch {
            next_check: Instant::now() + VOLUME_CHECK_INTERVAL,
        }
    }
}

/// An emptyDir with a positive sizeLimit: its name, limit in bytes and the limit as the API
/// server prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitedVolume {
    pub name: String,
    pub limit_bytes: u64,
    pub limit_text: String,
}

/// The emptyDirs of the pod that have a sizeLimit, in spec order.
pub(crate) fn limited_volumes(pod: &Pod) -> Vec<LimitedVolume> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
    volumes
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let ed = v.empty_dir.as_ref()?;
            let limit_bytes = empty_dir::size_limit_bytes(ed)?;
            let text = &ed.size_limit.as_ref()?.0;
            let limit_text = parse_quantity(text)
                .ok()
                .and_then(|q| q.canonical())
                .unwrap_or_else(|| text.clone());
            Some(LimitedVolume {
                name: v.name.clone(),
                limit_bytes,
                limit_text,
            })
        })
        .collect()
}

/// The kubelet's eviction message for an emptyDir over its limit (trailing space included)
/// [helpers.go emptyDirMessageFmt].
pub(crate) fn eviction_message(volume: &LimitedVolume) -> String {
    format!(
        "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
        volume.name, volume.limit_text
    )
}

/// Over the limit means strictly more (`used.Cmp(*size) > 0`).
pub(crate) fn over_limit(volume: &LimitedVolume, used_bytes: u64) -> bool {
    used_bytes > volume.limit_bytes
}

impl Supervisor {
    /// Measures the limited emptyDirs when the period is due; evicts the pod when one is over.
    pub(super) fn check_volume_limits(&mut self, now: Instant) {
        if !self.watches_volume_limits() || now < self.eviction.next_check {
            return;
        }
        self.eviction.next_check = now + VOLUME_CHECK_INTERVAL;
        let mut over = None;
        for v in limited_volumes(&self.pod) {
            let dir = volume::volume_dir(&self.paths, &self.uid, PLUGIN_EMPTY_DIR, &v.name);
            match usage::disk_usage(&dir, MAX_USAGE_ENTRIES) {
                Ok(u) => {
                    tracing::debug!(volume = %v.name, bytes = u.bytes, complete = u.complete,
                        limit = v.limit_bytes, "emptyDir usage");
                    if over_limit(&v, u.bytes) {
                        over = Some(v);
                        break;
                    }
                }
                // Not set up yet (no container created so far), or unreadable this time.
                Err(e) => tracing::debug!(volume = %v.name, error = %e, "emptyDir usage unknown"),
            }
        }
        if let Some(v) = over {
            self.evict(eviction_message(&v));
        }
    }

    /// Whether volume limits need watching at all (the poll loop's timeout).
    pub(super) fn watches_volume_limits(&self) -> bool {
        matches!(self.pod_run, PodRun::Active { .. }) && !limited_volumes(&self.pod).is_empty()
    }

    /// Evicts the pod: event, every container killed now (the kubelet's grace period 0 for
    /// local storage eviction), no restarts, status Failed/Evicted; then the pod is finished.
    fn evict(&mut self, message: String) {
        tracing::warn!(%message, "evicting the pod");
        self.event(events::WARNING, REASON_EVICTED, "", message.clone());
        let failure = PodFailure {
            reason: REASON_EVICTED.into(),
            message,
        };
        self.terminate(End::Finish, Duration::ZERO, Some(failure));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn the_kubelets_message_with_the_canonical_limit() {
        let p = pod("spec:
  containers: []
  volumes:
  - name: cache
    emptyDir: {sizeLimit: 10240Ki}
  - name: plain
    emptyDir: {}
  - name: zero
    emptyDir: {sizeLimit: '0'}
  - name: host
    hostPath: {path: /srv}
");
        let limited = limited_volumes(&p);
        assert_eq!(limited.len(), 1);
        let v = &limited[0];
        assert_eq!(v.limit_bytes, 10 << 20);
        assert_eq!(
            eviction_message(v),
            "Usage of EmptyDir volume \"cache\" exceeds the limit \"10Mi\". "
        );
        assert!(!over_limit(v, 10 << 20));
        assert!(over_limit(v, (10 << 20) + 1));
    }
}
