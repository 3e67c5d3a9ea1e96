//! Applying a manifest to a pod that exists: what changed, and whether the API server would
//! take it (pkg/apis/core/validation ValidatePodUpdate). Labels and annotations may change;
//! in the spec only the fields of [`UPDATABLE_FIELDS`] (images, activeDeadlineSeconds, added
//! tolerations, terminationGracePeriodSeconds from negative to 1). Any other spec change is
//! Forbidden with the API server's message.
//!
//! peapod stores metadata changes in `pod.json` (atomically, under the pods lock); a changed
//! image is refused for now: restarting one container with a new image needs the supervisor to
//! re-read the pod, which is being reworked.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::Value;

use crate::pod::lifecycle::LifecycleError;
use crate::pod::record::{self, POD_FILE};
use crate::store::{write_json, FileLock, Paths};

/// The spec fields a pod update may change, as ValidatePodUpdate lists them in its refusal
/// (updatablePodSpecFieldsNoResources).
pub const UPDATABLE_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// A changed image: where, and from what to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// `spec.containers[0].image`
    pub path: String,
    pub old: String,
    pub new: String,
}

/// What applying a manifest to an existing pod means.
#[derive(Debug, Clone, PartialEq)]
pub enum PodUpdate {
    /// `pod/x unchanged`
    Unchanged,
    /// `pod/x configured`: only labels, annotations or the updatable spec fields changed.
    Configured {
        labels: Option<BTreeMap<String, String>>,
        annotations: Option<BTreeMap<String, String>>,
        spec: Option<Box<PodSpec>>,
        images: Vec<ImageChange>,
    },
    /// The API server's Forbidden cause (`spec: Forbidden: pod updates may not change ...`).
    Forbidden(String),
}

/// The annotations the user manages (none of peapod's own).
fn annotations(pod: &Pod) -> Option<BTreeMap<String, String>> {
    pod.metadata.annotations.clone().filter(|a| !a.is_empty())
}

fn labels(pod: &Pod) -> Option<BTreeMap<String, String>> {
    pod.metadata.labels.clone().filter(|l| !l.is_empty())
}

/// The images of a container list, with their field paths.
fn image_changes(
    list: &str,
    old: &[k8s_openapi::api::core::v1::Container],
    new: &mut [k8s_openapi::api::core::v1::Container],
) -> Vec<ImageChange> {
    let mut changes = Vec::new();
    if old.len() != new.len() {
        return changes;
    }
    for (i, (o, n)) in old.iter().zip(new.iter_mut()).enumerate() {
        if o.image != n.image {
            changes.push(ImageChange {
                path: format!("spec.{list}[{i}].image"),
                old: o.image.clone().unwrap_or_default(),
                new: n.image.clone().unwrap_or_default(),
            });
            n.image = o.image.clone();
        }
    }
    changes
}

/// The differences of two specs as lines (`- path: old` / `+ path: new`), after go-cmp's
/// layout; the API server prints cmp.Diff of its internal types, which this only resembles.
fn spec_diff(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                spec_diff(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &p,
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                spec_diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => {
            if !a.is_null() {
                out.push(format!("- \t{path}: {a}"));
            }
            if !b.is_null() {
                out.push(format!("+ \t{path}: {b}"));
            }
        }
        _ => {}
    }
}

/// ValidatePodUpdate's decision for `new` replacing `old` (both decoded and defaulted).
pub fn classify(old: &Pod, new: &Pod) -> PodUpdate {
    let old_spec = old.spec.clone().unwrap_or_default();
    let new_spec = new.spec.clone().unwrap_or_default();
    let mut munged = new_spec.clone();
    let mut images = image_changes("containers", &old_spec.containers, &mut munged.containers);
    if let (Some(o), Some(n)) = (&old_spec.init_containers, &mut munged.init_containers) {
        images.extend(image_changes("initContainers", o, n));
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    let old_tolerations = old_spec.tolerations.clone().unwrap_or_default();
    let additions_only = old_tolerations
        .iter()
        .all(|t| munged.tolerations.iter().flatten().any(|n| n == t));
    if additions_only {
        munged.tolerations = old_spec.tolerations.clone();
    }
    if old_spec
        .termination_grace_period_seconds
        .is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    let as_value = |s: &PodSpec| serde_json::to_value(s).unwrap_or_default();
    if munged != old_spec {
        let mut lines = Vec::new();
        spec_diff(&as_value(&old_spec), &as_value(&munged), "", &mut lines);
        return PodUpdate::Forbidden(format!(
            "spec: Forbidden: pod updates may not change fields other than {}\n  core.PodSpec{{\n{}\n  }}\n",
            UPDATABLE_FIELDS.join(","),
            lines.join("\n")
        ));
    }
    let (new_labels, new_annotations) = (labels(new), annotations(new));
    let labels_changed = new_labels != labels(old);
    let annotations_changed = new_annotations != annotations(old);
    if !labels_changed && !annotations_changed && new_spec == old_spec {
        return PodUpdate::Unchanged;
    }
    PodUpdate::Configured {
        labels: labels_changed.then(|| new_labels.unwrap_or_default()),
        annotations: annotations_changed.then(|| new_annotations.unwrap_or_default()),
        spec: (new_spec != old_spec).then(|| Box::new(new_spec)),
        images,
    }
}

/// Stores a Configured update of the pod `namespace/name` in its `pod.json`, under the pods
/// lock. The caller refuses what peapod cannot do to a running pod (a changed image).
pub fn store(
    paths: &Paths,
    namespace: &str,
    name: &str,
    update: &PodUpdate,
) -> Result<(), LifecycleError> {
    let PodUpdate::Configured {
        labels,
        annotations,
        spec,
        ..
    } = update
    else {
        return Ok(());
    };
    let _lock = FileLock::exclusive(&paths.pods_lock())?;
    let rec = record::find(paths, namespace, name)?.ok_or_else(|| LifecycleError::NotFound {
        namespace: namespace.into(),
        name: name.into(),
    })?;
    let mut pod = rec.pod;
    if let Some(l) = labels {
        pod.metadata.labels = (!l.is_empty()).then(|| l.clone());
    }
    if let Some(a) = annotations {
        pod.metadata.annotations = (!a.is_empty()).then(|| a.clone());
    }
    if let Some(s) = spec {
        pod.spec = Some((**s).clone());
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    write_json(&paths.pod_dir(&uid).join(POD_FILE), &pod)?;
    if labels.is_some() || annotations.is_some() {
        crate::pod::metadata::notify_supervisor(rec.state.as_ref());
    }
    Ok(())
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
