//! Applying a manifest to a pod that exists: what changed, and whether the API server would
//! take it (pkg/apis/core/validation ValidatePodUpdate). Labels and annotations may change;
//! in the spec only the fields of [`UPDATABLE_FIELDS`]: the images of containers and init
//! containers, `activeDeadlineSeconds` (set when unset, or lowered), tolerations (added, or an
//! existing one's tolerationSeconds changed), and terminationGracePeriodSeconds from negative
//! to 1. Anything else is refused with the API server's field errors, in its order.
//!
//! peapod stores an accepted update in `pod.json` (atomically, under the pods lock) and tells
//! the pod's supervisor, which restarts a container whose image changed and follows the new
//! deadline, as the kubelet does ([`crate::pod::supervisor`]). Ephemeral containers and
//! scheduling gates are refused at decode, so their update rules never apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Toleration};
use serde_json::Value;

use crate::pod::lifecycle::LifecycleError;
use crate::pod::record::{self, POD_FILE};
use crate::store::{write_json, FileLock, Paths};

/// The spec fields a pod update may change, as ValidatePodUpdate lists them in its refusal
/// (updatablePodSpecFields).
pub const UPDATABLE_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// ValidateContainerUpdates: the number of containers is fixed.
const ADD_OR_REMOVE_CONTAINERS: &str = "pod updates may not add or remove containers";
const IMAGE_WHITESPACE: &str = "must not have leading or trailing whitespace";
const DEADLINE_RAISED: &str = "must be less than or equal to previous value";
const DEADLINE_REMOVED: &str = "must not update from a positive integer to nil value";
/// validation.InclusiveRangeError(0, math.MaxInt32).
const DEADLINE_RANGE: &str = "must be between 0 and 2147483647, inclusive";
/// validateOnlyAddedTolerations.
const TOLERATION_MODIFIED: &str =
    "existing toleration can not be modified except its tolerationSeconds";

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
    },
    /// The API server's field errors (`spec: Forbidden: pod updates may not change ...`), each
    /// as `field: body`, in the order ValidatePodUpdate finds them.
    Invalid(Vec<String>),
}

/// The annotations the user manages (none of peapod's own).
fn annotations(pod: &Pod) -> Option<BTreeMap<String, String>> {
    pod.metadata.annotations.clone().filter(|a| !a.is_empty())
}

fn labels(pod: &Pod) -> Option<BTreeMap<String, String>> {
    pod.metadata.labels.clone().filter(|l| !l.is_empty())
}

/// ValidateContainerUpdates for one list: Err when containers were added or removed (the
/// validation stops there), else the errors of the new images.
fn container_updates(
    list: &str,
    new: &[Container],
    old: &[Container],
) -> Result<Vec<String>, String> {
    if new.len() != old.len() {
        return Err(format!(
            "spec.{list}: Forbidden: {ADD_OR_REMOVE_CONTAINERS}"
        ));
    }
    let mut errors = Vec::new();
    for (i, c) in new.iter().enumerate() {
        let image = c.image.as_deref().unwrap_or_default();
        if image.is_empty() {
            errors.push(format!("spec.{list}[{i}].image: Required value"));
        }
        if image.trim() != image {
            errors.push(format!(
                "spec.{list}[{i}].image: Invalid value: {}: {IMAGE_WHITESPACE}",
                crate::gofmt::quote(image)
            ));
        }
    }
    Ok(errors)
}

/// The activeDeadlineSeconds rules: set from nil, or lowered (not below 0); never raised nor
/// removed. Err stops the validation, as the API server returns at once.
fn deadline_update(new: Option<i64>, old: Option<i64>) -> Result<Option<String>, String> {
    const FIELD: &str = "spec.activeDeadlineSeconds";
    match (new, old) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            Err(format!("{FIELD}: Invalid value: {n}: {DEADLINE_RANGE}"))
        }
        (Some(n), Some(o)) if o < n => {
            Err(format!("{FIELD}: Invalid value: {n}: {DEADLINE_RAISED}"))
        }
        (None, Some(_)) => Ok(Some(format!(
            "{FIELD}: Invalid value: \"null\": {DEADLINE_REMOVED}"
        ))),
        _ => Ok(None),
    }
}

/// Every old toleration must still be there, its tolerationSeconds aside.
fn only_added_tolerations(new: &[Toleration], old: &[Toleration]) -> Option<String> {
    let without_seconds = |t: &Toleration| Toleration {
        toleration_seconds: None,
        ..t.clone()
    };
    let kept = old.iter().all(|o| {
        let o = without_seconds(o);
        new.iter().any(|n| without_seconds(n) == o)
    });
    (!kept).then(|| format!("spec.tolerations: Forbidden: {TOLERATION_MODIFIED}"))
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
    match spec_errors(&new_spec, &old_spec) {
        errors if !errors.is_empty() => return PodUpdate::Invalid(errors),
        _ => {}
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
    }
}

/// The spec's part of ValidatePodUpdate, in its order: the container lists (a changed count
/// ends it), activeDeadlineSeconds, tolerations, then the rest of the spec compared with the
/// updatable fields put back as they were (one Forbidden error with the differences).
fn spec_errors(new: &PodSpec, old: &PodSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let no_init = Vec::new();
    let lists = [
        ("containers", &new.containers, &old.containers),
        (
            "initContainers",
            new.init_containers.as_ref().unwrap_or(&no_init),
            old.init_containers.as_ref().unwrap_or(&no_init),
        ),
    ];
    for (list, n, o) in lists {
        match container_updates(list, n, o) {
            Ok(e) => errors.extend(e),
            Err(stop) => {
                errors.push(stop);
                return errors;
            }
        }
    }
    match deadline_update(new.active_deadline_seconds, old.active_deadline_seconds) {
        Ok(e) => errors.extend(e),
        Err(stop) => {
            errors.push(stop);
            return errors;
        }
    }
    let none = Vec::new();
    errors.extend(only_added_tolerations(
        new.tolerations.as_ref().unwrap_or(&none),
        old.tolerations.as_ref().unwrap_or(&none),
    ));
    if new == old {
        return errors;
    }
    let mut munged = new.clone();
    for (m, o) in munged.containers.iter_mut().zip(&old.containers) {
        m.image = o.image.clone();
    }
    for (m, o) in munged
        .init_containers
        .iter_mut()
        .flatten()
        .zip(old.init_containers.iter().flatten())
    {
        m.image = o.image.clone();
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.tolerations = old.tolerations.clone();
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    if munged != *old {
        let as_value = |s: &PodSpec| serde_json::to_value(s).unwrap_or_default();
        let mut lines = Vec::new();
        spec_diff(&as_value(old), &as_value(&munged), "", &mut lines);
        errors.push(format!(
            "spec: Forbidden: pod updates may not change fields other than {}\n  core.PodSpec{{\n{}\n  }}\n",
            UPDATABLE_FIELDS.join(","),
            lines.join("\n")
        ));
    }
    errors
}

/// Stores a Configured update of the pod `namespace/name` in its `pod.json`, under the pods
/// lock, then tells its supervisor (if one runs) to read it again: labels and annotations for
/// the downward API, images and the deadline for the containers.
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
    crate::pod::metadata::notify_supervisor(rec.state.as_ref());
    Ok(())
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
