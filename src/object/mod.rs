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

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifest::go_quote;
use crate::manifest::objects::{CLAIM_PHASE_BOUND, RESOURCE_STORAGE};
use crate::manifest::parse_quantity;
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

impl ObjectError {
    /// The message of the API server's Status for this error, as a client that wraps it prints
    /// it (`kubectl create configmap`: `failed to create configmap: <message>`): several
    /// causes as Go's error aggregate, `[a, b]` [apimachinery/pkg/api/errors NewInvalid].
    pub fn status_message(&self) -> String {
        match self {
            ObjectError::Invalid { kind, name, causes } if causes.len() > 1 => format!(
                "{kind} {} is invalid: [{}]",
                crate::manifest::go_quote(name),
                causes.join(", ")
            ),
            other => other.to_string(),
        }
    }
}

/// One cause inline, several as kubectl lists them (`The ConfigMap "x" is invalid: ` and a
/// `* cause` line each [kubectl cmd/util/helpers.go MultilineError]).
pub fn render_causes(causes: &[String]) -> String {
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

    /// What admission adds to a new object (a claim's protection finalizer).
    fn on_create(&mut self) {}
}

/// ValidateImmutableField's detail.
pub const FIELD_IS_IMMUTABLE: &str = "field is immutable";

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
                "type: Invalid value: {}: {FIELD_IS_IMMUTABLE}",
                go_quote(new.type_.as_deref().unwrap_or_default())
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

/// The finalizers admission puts on claims and volumes so that one in use is not removed
/// [plugin/pkg/admission/storage/storageobjectinuseprotection].
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

fn add_finalizer(meta: &mut ObjectMeta, finalizer: &str) {
    let list = meta.finalizers.get_or_insert_with(Vec::new);
    if !list.iter().any(|f| f == finalizer) {
        list.push(finalizer.to_string());
    }
}

impl StoredObject for PersistentVolumeClaim {
    const SINGULAR: &'static str = "persistentvolumeclaim";

    fn on_create(&mut self) {
        add_finalizer(&mut self.metadata, PVC_PROTECTION_FINALIZER);
    }

    /// ValidatePersistentVolumeClaimUpdate: the spec is fixed once created, except the volume
    /// name (set once, by the binder) and, for a bound claim, the storage request (expansion,
    /// never below the capacity). The API server appends a Go diff of the two specs to the
    /// spec message; peapod does not.
    fn update_causes(old: &Self, new: &Self) -> Vec<String> {
        let bound = old
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == CLAIM_PHASE_BOUND);
        let storage = |c: &PersistentVolumeClaim| {
            c.spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(RESOURCE_STORAGE))
                .cloned()
        };
        let comparable = |c: &PersistentVolumeClaim| {
            let mut spec = c.spec.clone().unwrap_or_default();
            // The binder sets the volume name; a manifest never does (support table).
            spec.volume_name = None;
            if bound {
                if let Some(requests) = spec.resources.as_mut().and_then(|r| r.requests.as_mut()) {
                    requests.remove(RESOURCE_STORAGE);
                }
            }
            spec
        };
        let mut causes = Vec::new();
        if comparable(old) != comparable(new) {
            causes.push(
                "spec: Forbidden: spec is immutable after creation except resources.requests \
                 and volumeAttributesClassName for bound claims"
                    .to_string(),
            );
        }
        let quantity = |q: Option<Quantity>| q.and_then(|q| parse_quantity(&q.0).ok());
        let capacity = quantity(
            old.status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get(RESOURCE_STORAGE))
                .cloned(),
        );
        if let (Some(new_size), Some(old_size)) = (quantity(storage(new)), quantity(storage(old))) {
            // RecoverVolumeExpansionFailure (GA): shrinking is allowed down to the capacity.
            let below_capacity = match &capacity {
                Some(c) => new_size.cmp_value(c).is_le(),
                None => new_size.is_negative() || new_size.value_ceil() == 0,
            };
            if new_size.cmp_value(&old_size).is_lt() && below_capacity {
                causes.push(
                    "spec.resources.requests.storage: Forbidden: field can not be less than \
                     status.capacity"
                        .to_string(),
                );
            }
        }
        let mode = |c: &PersistentVolumeClaim| c.spec.as_ref().and_then(|s| s.volume_mode.clone());
        if mode(old) != mode(new) {
            causes.push(format!(
                "volumeMode: Invalid value: {}: {FIELD_IS_IMMUTABLE}",
                go_quote(&mode(new).unwrap_or_default())
            ));
        }
        causes
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

    fn on_create(&mut self) {
        add_finalizer(&mut self.metadata, PV_PROTECTION_FINALIZER);
    }

    fn keep_server_fields(&mut self, old: &Self) {
        self.status = old.status.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
    };
    use std::collections::BTreeMap;

    fn claim(storage: &str, mode: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        RESOURCE_STORAGE.to_string(),
                        Quantity(storage.into()),
                    )])),
                    ..Default::default()
                }),
                volume_mode: Some(mode.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_updates_as_the_api_server() {
        let old = claim("1Gi", "Filesystem");
        assert!(PersistentVolumeClaim::update_causes(&old, &old.clone()).is_empty());
        // A pending claim may not change its request.
        assert_eq!(
            PersistentVolumeClaim::update_causes(&old, &claim("2Gi", "Filesystem")),
            [
                "spec: Forbidden: spec is immutable after creation except resources.requests and \
              volumeAttributesClassName for bound claims"
            ]
        );
        assert_eq!(
            PersistentVolumeClaim::update_causes(&old, &claim("1Gi", "Block"))[1],
            "volumeMode: Invalid value: \"Block\": field is immutable"
        );
        // A bound claim may grow, and not shrink below its capacity.
        let mut bound = old.clone();
        bound.status = Some(PersistentVolumeClaimStatus {
            phase: Some(CLAIM_PHASE_BOUND.into()),
            capacity: Some(BTreeMap::from([(
                RESOURCE_STORAGE.to_string(),
                Quantity("1Gi".into()),
            )])),
            ..Default::default()
        });
        assert!(
            PersistentVolumeClaim::update_causes(&bound, &claim("2Gi", "Filesystem")).is_empty()
        );
        assert_eq!(
            PersistentVolumeClaim::update_causes(&bound, &claim("512Mi", "Filesystem")),
            ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
        );
    }

    #[test]
    fn status_message_aggregates_causes() {
        let e = ObjectError::Invalid {
            kind: "ConfigMap".into(),
            name: "x".into(),
            causes: vec!["a: Required value".into(), "b: Required value".into()],
        };
        assert_eq!(
            e.status_message(),
            "ConfigMap \"x\" is invalid: [a: Required value, b: Required value]"
        );
        assert_eq!(
            e.to_string(),
            "ConfigMap \"x\" is invalid: \n* a: Required value\n* b: Required value"
        );
    }
}
