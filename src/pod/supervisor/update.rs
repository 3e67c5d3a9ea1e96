//! A pod update (`apply` of a pod that exists) reaching the running pod: on the supervisor's
//! signal pod.json is read again. Labels and annotations go to the downward API (`volumes`);
//! the spec's updatable fields are taken as the kubelet takes them: a container whose image
//! changed is stopped and started again with the new image, or restarted now if it waits for
//! a restart ([`crate::pod::machine::redefine`]); a new activeDeadlineSeconds, grace period or
//! toleration counts from then on (the deadline from the pod's start).

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;

use super::stop::PodRun;
use super::Supervisor;
use crate::pod::backoff::RestartBackoff;
use crate::pod::machine::{redefine, Redefine, StopCause};
use crate::pod::record::POD_FILE;
use crate::store::read_json;

impl Supervisor {
    /// `apply`, `label` or `annotate` rewrote pod.json.
    pub(super) fn reload_pod(&mut self) {
        let path = self.paths.pod_dir(&self.uid).join(POD_FILE);
        match read_json::<Pod>(&path) {
            Ok(pod) => {
                self.reload_metadata(&pod);
                self.reload_spec(pod);
            }
            Err(e) => tracing::warn!(error = %e, "cannot re-read the pod"),
        }
    }

    /// Takes the updated spec; `apply` let only the updatable fields change.
    fn reload_spec(&mut self, pod: Pod) {
        let Some(spec) = pod.spec else {
            return;
        };
        let images: Vec<Option<String>> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| c.image.clone())
            .collect();
        if images.len() != self.runs.len() {
            tracing::warn!("the updated pod has other containers; its spec is not taken");
            return;
        }
        if self.pod.spec.as_ref() != Some(&spec) {
            tracing::info!(
                active_deadline_seconds = ?spec.active_deadline_seconds,
                "pod spec updated"
            );
            self.pod.spec = Some(spec);
            self.mark_dirty();
        }
        for (i, image) in images.into_iter().enumerate() {
            if self.runs[i].spec.image != image {
                tracing::info!(container = %self.runs[i].spec.name, ?image, "image changed");
                self.runs[i].spec.image = image;
                self.redefine(i);
            }
        }
    }

    /// Container `i`'s image changed (or its instance runs an older one): what the kubelet
    /// does about it, while the pod is active.
    pub(super) fn redefine(&mut self, i: usize) {
        if !matches!(self.pod_run, PodRun::Active { .. }) {
            return;
        }
        let now = Instant::now();
        let r = &mut self.runs[i];
        let action = redefine(r.kind, r.entry().brief);
        if action != Redefine::Nothing {
            r.backoff = RestartBackoff::for_new_definition(r.last.is_some());
        }
        match action {
            Redefine::Kill => {
                r.redefining = true;
                let grace = self.pod_grace();
                self.stop_container(i, StopCause::DefinitionChanged, grace, now);
                self.drive_stops(now);
            }
            Redefine::StartNow => r.life.schedule(Some(now)),
            Redefine::Nothing => {}
        }
        self.mark_dirty();
    }

    /// A sidecar just became started: if its instance runs an image older than its spec's,
    /// the change held back by its startup probe is taken now.
    pub(super) fn redefine_if_outdated(&mut self, i: usize) {
        let r = &self.runs[i];
        if r.life.instance().is_some() && r.spec.image.as_deref() != Some(r.image.as_str()) {
            self.redefine(i);
        }
    }
}
