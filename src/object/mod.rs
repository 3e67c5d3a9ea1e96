//! Stored API objects other than Pods: ConfigMaps, Secrets, PersistentVolumeClaims, and the
//! PersistentVolumes peapod provisions for claims. What an API server's storage gives a
//! kubelet, on one host: objects by namespace and name, a uid, a creation time and a
//! resourceVersion, create/apply/update/delete with the API server's update rules.
//!
//! Layout: `<lib>/objects/<resource>/<namespace>/<name>.json` (`<lib>/objects/<resource>/<name>.json`
//! for cluster-scoped kinds), each written atomically and durably; Secrets are 0600 in 0700
//! directories. Writers hold `<lib>/objects/.lock`; readers read files as they are (a rename
//! makes every write whole). A pod's supervisor watches the directories of the kinds its pod
//! reads (inotify) to bring its volumes up to date. This module must not know about pods or
//! the host beyond its own files.

mod snapshot;
mod store;

pub use snapshot::{Missing, Refs, Snapshot, KUBELET_CONFIG_MAP, KUBELET_SECRET};
pub use store::{ObjectStore, PutMode, PutOutcome};

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::StoreError;

/// Errors of the object store; the messages are the API server's.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `configmaps "x" already exists`
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    /// `configmaps "x" not found`
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    /// `ConfigMap "x" is invalid: data: Forbidden: field is immutable when `immutable` is set`
    #[error("{kind} \"{name}\" is invalid: {}", render_causes(causes))]
    Invalid {
        kind: String,
        name: String,
        causes: Vec<String>,
    },
}

/// One cause inline, several as the API server lists them.
fn render_causes(causes: &[String]) -> String {
    match causes {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|c| format!("\n* {c}"))
            .collect::<Vec<_>>()
            .concat(),
    }
}

/// A kind the store keeps.
pub trait StoredObject:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + PartialEq
{
    /// kubectl's lower-case singular name: `configmap/x created`.
    const SINGULAR: &'static str;
    /// Cluster-scoped kinds have no namespace.
    const NAMESPACED: bool = true;
    /// Secrets: files 0600 in directories 0700.
    const PRIVATE: bool = false;

    /// The API server's update rules (immutability): each cause as `path: Reason: detail`.
    fn update_causes(_old: &Self, _new: &Self) -> Vec<String> {
        Vec::new()
    }

    /// Server-owned fields an apply keeps from the stored object (a claim's status).
    fn keep_server_fields(&mut self, _old: &Self) {}
}

/// The API server's message for a field made immutable by `immutable: true`.
pub const IMMUTABLE_WHEN_SET: &str = "Forbidden: field is immutable when `immutable` is set";

fn immutable_causes(
    old_immutable: Option<bool>,
    new_immutable: Option<bool>,
    changed: &[(&str, bool)],
) -> Vec<String> {
    let mut causes = Vec::new();
    if old_immutable == Some(true) {
        if new_immutable != Some(true) {
            causes.push(format!("immutable: {IMMUTABLE_WHEN_SET}"));
        }
        for (field, differs) in changed {
            if *differs {
                causes.push(format!("{field}: {IMMUTABLE_WHEN_SET}"));
            }
        }
    }
    causes
}

impl StoredObject for ConfigMap {
    const SINGULAR: &'static str = "configmap";

    fn update_causes(old: &Self, new: &Self) -> Vec<String> {
        immutable_causes(
            old.immutable,
            new.immutable,
            &[
                ("data", old.data != new.data),
                ("binaryData", old.binary_data != new.binary_data),
            ],
        )
    }
}

impl StoredObject for Secret {
    const SINGULAR: &'static str = "secret";
    const PRIVATE: bool = true;

    fn update_causes(old: &Self, new: &Self) -> Vec<String> {
        let mut causes = Vec::new();
        if old.type_ != new.type_ {
            causes.push(format!(
                "type: Invalid value: {:?}: field is immutable",
                new.type_.as_deref().unwrap_or_default()
            ));
        }
        causes.extend(immutable_causes(
            old.immutable,
            new.immutable,
            &[("data", old.data != new.data)],
        ));
        causes
    }
}

impl StoredObject for PersistentVolumeClaim {
    const SINGULAR: &'static str = "persistentvolumeclaim";

    fn update_causes(old: &Self, new: &Self) -> Vec<String> {
        // Only the storage request may change once a claim exists (expansion), and peapod's
        // directories have no size to expand.
        let strip = |c: &PersistentVolumeClaim| {
            let mut spec = c.spec.clone().unwrap_or_default();
            if let Some(r) = spec.resources.as_mut() {
                r.requests = None;
            }
            spec.volume_name = None;
            spec
        };
        if strip(old) != strip(new) {
            return vec!["spec: Forbidden: spec is immutable after creation except \
                resources.requests and volumeAttributesClassName for bound claims"
                .to_string()];
        }
        Vec::new()
    }

    fn keep_server_fields(&mut self, old: &Self) {
        self.status = old.status.clone();
        if let (Some(spec), Some(old_spec)) = (self.spec.as_mut(), old.spec.as_ref()) {
            spec.volume_name = old_spec.volume_name.clone();
        }
    }
}

impl StoredObject for PersistentVolume {
    const SINGULAR: &'static str = "persistentvolume";
    const NAMESPACED: bool = false;

    fn keep_server_fields(&mut self, old: &Self) {
        self.status = old.status.clone();
    }
}
