//! PersistentVolumeClaims on one host, served the way kind and k3s serve them: a local-path
//! provisioner with `WaitForFirstConsumer` binding. A claim stays Pending until a pod that uses
//! it starts; then it gets a directory of its own under `<lib>/storage/`, a PersistentVolume
//! `pvc-<claim uid>` (reclaim policy Delete) and phase Bound. A claim in use that is deleted
//! stays Terminating until its last pod is gone (the `kubernetes.io/pvc-protection`
//! finalizer); then the claim, its volume and its data go. Generic ephemeral volumes get a
//! claim `<pod>-<volume>` owned by the pod and deleted with it.
//!
//! Runs in the CLI (apply, delete) and in supervisors (binding at volume setup), so every
//! read-modify-write of claims and volumes holds the object store's lock.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    PersistentVolumeStatus, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::manifest::objects::DEFAULT_STORAGE_CLASS;
use crate::object::{ObjectError, ObjectStore, StoredObject};
use crate::pod::events;
use crate::store::{Paths, StoreError};

/// Where claims' data lives: `<lib>/storage/pvc-<uid>_<namespace>_<name>` (local-path's naming).
pub const STORAGE_DIR: &str = "storage";
/// The provisioner named in annotations and events.
pub const PROVISIONER: &str = "peapod.io/local-path";
pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_BOUND: &str = "Bound";
pub const RECLAIM_DELETE: &str = "Delete";
/// Annotations the volume controllers put on a bound claim.
const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The mode local-path gives a new volume directory: any container user may write it.
const VOLUME_DIR_MODE: u32 = 0o777;

// Event reasons of the persistent volume controller and provisioners
// [pkg/controller/volume/events/event.go].
pub const REASON_WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";
pub const REASON_PROVISIONING_SUCCEEDED: &str = "ProvisioningSucceeded";
pub const REASON_PROVISIONING_FAILED: &str = "ProvisioningFailed";

/// Why a pod cannot use a claim (yet). The texts are the scheduler's and the ephemeral
/// volume controller's; the pod waits and tries again.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("persistentvolumeclaim \"{0}\" not found")]
    NotFound(String),
    #[error("persistentvolumeclaim \"{0}\" is being deleted")]
    BeingDeleted(String),
    #[error("storageclass.storage.k8s.io \"{class}\" not found")]
    NoStorageClass { claim: String, class: String },
    #[error("persistentvolumeclaim \"{0}\" has no storage class and no volume to bind to")]
    NoClass(String),
    #[error(
        "PVC {namespace}/{claim} was not created for pod {namespace}/{pod} (pod is not owner)"
    )]
    NotOwner {
        namespace: String,
        claim: String,
        pod: String,
    },
    #[error("volume directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClaimError {
    /// The pod cannot be placed on this node (yet): the claim is missing, being deleted, or
    /// cannot be provisioned here. The scheduler's `FailedScheduling`, not a mount failure.
    pub fn is_unschedulable(&self) -> bool {
        matches!(
            self,
            ClaimError::NotFound(_)
                | ClaimError::BeingDeleted(_)
                | ClaimError::NoStorageClass { .. }
                | ClaimError::NoClass(_)
        )
    }
}

/// What a claim deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDeletion {
    /// Gone, with its volume and data.
    Deleted,
    /// In use: Terminating until its pods are gone.
    Terminating,
}

fn storage_root(paths: &Paths) -> PathBuf {
    paths.lib.join(STORAGE_DIR)
}

/// The name of the claim a generic ephemeral volume gets [pkg/apis/core/v1: `<pod>-<volume>`].
pub fn ephemeral_claim_name(pod: &str, volume: &str) -> String {
    format!("{pod}-{volume}")
}

/// The claim names `pod` uses, in its namespace.
pub fn claims_of(pod: &Pod) -> Vec<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral
                    .as_ref()
                    .map(|_| ephemeral_claim_name(name, &v.name))
            }
        })
        .collect()
}

/// Pods on record in `namespace` that use claim `name`, by name.
pub fn users(paths: &Paths, namespace: &str, name: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for rec in crate::pod::record::load_all(paths)? {
        if rec.namespace() == namespace && claims_of(&rec.pod).iter().any(|c| c == name) {
            out.push(rec.name().to_string());
        }
    }
    Ok(out)
}

/// A claim was just created: it waits for its first consumer (recorded as the volume
/// controller's event).
pub fn on_created(paths: &Paths, claim: &PersistentVolumeClaim) -> Result<(), ObjectError> {
    let store = ObjectStore::new(paths);
    let (ns, name) = ns_name(claim);
    store.record_event::<PersistentVolumeClaim>(
        &ns,
        &name,
        events::NORMAL,
        REASON_WAIT_FOR_FIRST_CONSUMER,
        "waiting for first consumer to be created before binding".into(),
    )
}

/// Binds claim `name` for a pod that is starting (provisioning its volume on first use) and
/// returns the volume's directory.
pub fn bind(paths: &Paths, namespace: &str, name: &str, node: &str) -> Result<PathBuf, ClaimError> {
    let store = ObjectStore::new(paths);
    let _lock = store.lock()?;
    match check(&store, namespace, name)? {
        Usable::Bound(path) => Ok(path),
        Usable::Provisionable(claim) => provision(&store, paths, *claim, node),
    }
}

/// Whether the pod's claims (its `persistentVolumeClaim` volumes; ephemeral claims are made
/// for it when it starts) let it be scheduled here: the scheduler's VolumeBinding filter on one
/// node. Nothing is bound or provisioned.
pub fn check_schedulable(paths: &Paths, pod: &Pod) -> Result<(), ClaimError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let store = ObjectStore::new(paths);
    let _lock = store.lock()?;
    for name in names {
        check(&store, namespace, name)?;
    }
    Ok(())
}

/// A claim a pod may use: bound to a volume, or to be provisioned on first use.
enum Usable {
    Bound(PathBuf),
    Provisionable(Box<PersistentVolumeClaim>),
}

/// The checks before binding (the store's lock is held); an unknown storage class is also
/// the provisioner's `ProvisioningFailed` event on the claim.
fn check(store: &ObjectStore, namespace: &str, name: &str) -> Result<Usable, ClaimError> {
    let claim: PersistentVolumeClaim = store
        .get(namespace, name)?
        .ok_or_else(|| ClaimError::NotFound(name.to_string()))?;
    if claim.metadata.deletion_timestamp.is_some() {
        return Err(ClaimError::BeingDeleted(name.to_string()));
    }
    let spec = claim.spec.clone().unwrap_or_default();
    if let Some(pv_name) = spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
        if let Some(pv) = store.get::<PersistentVolume>("", pv_name)? {
            if let Some(path) = pv_path(&pv) {
                return Ok(Usable::Bound(path));
            }
        }
    }
    let class = spec.storage_class_name.clone().unwrap_or_default();
    if class.is_empty() {
        return Err(ClaimError::NoClass(name.to_string()));
    }
    if class != DEFAULT_STORAGE_CLASS {
        let err = ClaimError::NoStorageClass {
            claim: name.to_string(),
            class: class.clone(),
        };
        let _ = store.record_event::<PersistentVolumeClaim>(
            namespace,
            name,
            events::WARNING,
            REASON_PROVISIONING_FAILED,
            err.to_string(),
        );
        return Err(err);
    }
    Ok(Usable::Provisionable(Box::new(claim)))
}

/// Makes the claim's directory and volume and binds them (the store's lock is held).
fn provision(
    store: &ObjectStore,
    paths: &Paths,
    claim: PersistentVolumeClaim,
    node: &str,
) -> Result<PathBuf, ClaimError> {
    let (ns, name) = ns_name(&claim);
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let pv_name = format!("pvc-{uid}");
    let dir = storage_root(paths).join(format!("{pv_name}_{ns}_{name}"));
    let io = |source| ClaimError::Io {
        path: dir.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(io)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(VOLUME_DIR_MODE)).map_err(io)?;
    let spec = claim.spec.clone().unwrap_or_default();
    let capacity = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .and_then(|r| {
            r.get("storage")
                .cloned()
                .map(|q| BTreeMap::from([("storage".to_string(), q)]))
        });
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.clone()),
            annotations: Some(BTreeMap::from([(
                ANN_PROVISIONED_BY.to_string(),
                PROVISIONER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: capacity.clone(),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: Some(uid.clone()),
                resource_version: claim.metadata.resource_version.clone(),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path: dir.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            persistent_volume_reclaim_policy: Some(RECLAIM_DELETE.into()),
            storage_class_name: spec.storage_class_name.clone(),
            volume_mode: spec.volume_mode.clone(),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some(PHASE_BOUND.into()),
            last_phase_transition_time: Some(Time(now())),
            ..Default::default()
        }),
    };
    store.put_locked(pv)?;
    let access_modes = spec.access_modes.clone();
    store.update_locked::<PersistentVolumeClaim>(&ns, &name, |c| {
        let meta = &mut c.metadata;
        let ann = meta.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in [
            (ANN_BIND_COMPLETED, "yes"),
            (ANN_BOUND_BY_CONTROLLER, "yes"),
            (ANN_STORAGE_PROVISIONER, PROVISIONER),
            (ANN_BETA_STORAGE_PROVISIONER, PROVISIONER),
            (ANN_SELECTED_NODE, node),
        ] {
            ann.insert(k.to_string(), v.to_string());
        }
        c.spec
            .get_or_insert_with(PersistentVolumeClaimSpec::default)
            .volume_name = Some(pv_name.clone());
        c.status = Some(PersistentVolumeClaimStatus {
            phase: Some(PHASE_BOUND.into()),
            access_modes: access_modes.clone(),
            capacity: capacity.clone(),
            ..Default::default()
        });
        true
    })?;
    store.record_event::<PersistentVolumeClaim>(
        &ns,
        &name,
        events::NORMAL,
        REASON_PROVISIONING_SUCCEEDED,
        format!("Successfully provisioned volume {pv_name}"),
    )?;
    tracing::info!(claim = %format!("{ns}/{name}"), volume = %pv_name, dir = %dir.display(), "claim bound");
    Ok(dir)
}

/// The directory of a volume peapod provisioned.
fn pv_path(pv: &PersistentVolume) -> Option<PathBuf> {
    pv.spec
        .as_ref()?
        .host_path
        .as_ref()
        .map(|h| PathBuf::from(&h.path))
}

/// Creates the claim of a generic ephemeral volume (`<pod>-<volume>`, owned by the pod) if it
/// does not exist; refuses a claim of that name the pod does not own, as the kubelet does.
/// Returns the claim's name.
pub fn ensure_ephemeral(
    paths: &Paths,
    pod: &Pod,
    volume: &str,
    template: &k8s_openapi::api::core::v1::PersistentVolumeClaimTemplate,
) -> Result<String, ClaimError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = ephemeral_claim_name(&pod_name, volume);
    let store = ObjectStore::new(paths);
    let _lock = store.lock()?;
    if let Some(existing) = store.get::<PersistentVolumeClaim>(&namespace, &name)? {
        let owned = existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == pod_uid);
        if !owned {
            return Err(ClaimError::NotOwner {
                namespace,
                claim: name,
                pod: pod_name,
            });
        }
        return Ok(name);
    }
    let mut meta = template.metadata.clone().unwrap_or_default();
    meta.name = Some(name.clone());
    meta.namespace = Some(namespace.clone());
    meta.finalizers = None;
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod_name,
        uid: pod_uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let mut spec = template.spec.clone();
    if spec.storage_class_name.is_none() {
        spec.storage_class_name = Some(DEFAULT_STORAGE_CLASS.to_string());
    }
    let claim = PersistentVolumeClaim {
        metadata: meta,
        spec: Some(spec),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(PHASE_PENDING.into()),
            ..Default::default()
        }),
    };
    store.put_locked(claim)?;
    Ok(name)
}

/// `delete pvc NAME`: a claim no pod uses goes at once with its volume and data; a claim in
/// use gets a deletionTimestamp and stays Terminating (pvc-protection). None when there is no
/// such claim.
pub fn delete(
    paths: &Paths,
    namespace: &str,
    name: &str,
) -> Result<Option<ClaimDeletion>, ClaimError> {
    let in_use = !users(paths, namespace, name)?.is_empty();
    let store = ObjectStore::new(paths);
    let _lock = store.lock()?;
    let Some(claim) = store.get::<PersistentVolumeClaim>(namespace, name)? else {
        return Ok(None);
    };
    if in_use {
        store.update_locked::<PersistentVolumeClaim>(namespace, name, |c| {
            if c.metadata.deletion_timestamp.is_some() {
                return false;
            }
            c.metadata.deletion_timestamp = Some(Time(now()));
            true
        })?;
        return Ok(Some(ClaimDeletion::Terminating));
    }
    finalize(&store, paths, &claim)?;
    Ok(Some(ClaimDeletion::Deleted))
}

/// After a pod is gone: its ephemeral claims go, and claims it used that are Terminating go
/// once no other pod uses them.
pub fn release_for_pod(paths: &Paths, pod: &Pod) -> Result<(), ClaimError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let store = ObjectStore::new(paths);
    for name in claims_of(pod) {
        if !users(paths, &namespace, &name)?.is_empty() {
            continue;
        }
        let _lock = store.lock()?;
        let Some(claim) = store.get::<PersistentVolumeClaim>(&namespace, &name)? else {
            continue;
        };
        let owned = claim
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == pod_uid);
        if owned || claim.metadata.deletion_timestamp.is_some() {
            finalize(&store, paths, &claim)?;
        }
    }
    Ok(())
}

/// Removes a claim, its volume object and its data (reclaim policy Delete).
fn finalize(
    store: &ObjectStore,
    paths: &Paths,
    claim: &PersistentVolumeClaim,
) -> Result<(), ClaimError> {
    let (ns, name) = ns_name(claim);
    let volume = claim.spec.as_ref().and_then(|s| s.volume_name.clone());
    if let Some(pv_name) = volume.filter(|v| !v.is_empty()) {
        if let Some(pv) = store.remove_locked::<PersistentVolume>("", &pv_name)? {
            if let Some(dir) = pv_path(&pv).filter(|d| d.starts_with(storage_root(paths))) {
                remove_data(&dir)?;
            }
        }
    }
    store.remove_locked::<PersistentVolumeClaim>(&ns, &name)?;
    tracing::info!(claim = %format!("{ns}/{name}"), "claim deleted with its volume");
    Ok(())
}

fn remove_data(dir: &Path) -> Result<(), ClaimError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ClaimError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn ns_name<T: StoredObject>(o: &T) -> (String, String) {
    let m = o.metadata();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

fn now() -> jiff::Timestamp {
    let t = jiff::Timestamp::now();
    t.round(jiff::Unit::Second).unwrap_or(t)
}

#[cfg(test)]
#[path = "claim_tests.rs"]
mod tests;
