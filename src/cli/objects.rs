//! The stored kinds in `get` and `delete`: ConfigMaps, Secrets, PersistentVolumeClaims and
//! PersistentVolumes, read from the object store, each row as kubectl's printer makes it
//! [pkg/printers/internalversion/printers.go printConfigMap, printSecret,
//! printPersistentVolumeClaim, printPersistentVolume].

use anyhow::{Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::format::since;
use super::get::Listed;
use super::kinds::Kind;
use crate::manifest::objects::RESOURCE_STORAGE;
use crate::object::{ObjectStore, StoredObject};
use crate::store::Paths;

/// The beta annotation that still wins over spec.storageClassName [core.BetaStorageClassAnnotation].
pub const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// What kubectl shows for an optional field left unset.
pub const UNSET: &str = "<unset>";
const TERMINATING: &str = "Terminating";

/// Access modes as kubectl abbreviates them, always in the order RWO,ROX,RWX,RWOP and without
/// repeats [storage/util GetAccessModesAsString].
pub fn access_modes(modes: Option<&Vec<String>>) -> String {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.iter().any(|m| m == mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The class of a claim or volume: the beta annotation first, then the spec's class
/// [storage/util GetPersistentVolumeClaimClass, GetPersistentVolumeClass].
pub fn storage_class(meta: &ObjectMeta, spec_class: Option<&String>) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
        .or(spec_class)
        .cloned()
        .unwrap_or_default()
}

/// A claim's capacity and access modes, shown only once it is bound to a volume.
pub fn claim_capacity_and_modes(claim: &PersistentVolumeClaim) -> (String, String) {
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if !bound {
        return (String::new(), String::new());
    }
    let status = claim.status.as_ref();
    let capacity = status
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(RESOURCE_STORAGE))
        .map_or_else(|| "0".to_string(), |q| q.0.clone());
    (
        capacity,
        access_modes(status.and_then(|s| s.access_modes.as_ref())),
    )
}

/// The phase, or Terminating once a deletion was asked for.
pub fn phase(meta: &ObjectMeta, phase: Option<&String>) -> String {
    if meta.deletion_timestamp.is_some() {
        return TERMINATING.to_string();
    }
    phase.cloned().unwrap_or_default()
}

fn or_unset(value: Option<&String>) -> String {
    value.cloned().unwrap_or_else(|| UNSET.to_string())
}

fn created(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t: &Time| t.0)
}

fn listed<T: StoredObject>(
    kind: Kind,
    object: &T,
    cells: Vec<String>,
    wide: Vec<String>,
) -> Result<Listed> {
    let meta = object.metadata();
    Ok(Listed {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        cells,
        wide,
        object: serde_json::to_value(object)?,
    })
}

fn config_map_row(cm: &ConfigMap, now: Timestamp) -> Result<Listed> {
    let count =
        cm.data.as_ref().map_or(0, |d| d.len()) + cm.binary_data.as_ref().map_or(0, |d| d.len());
    let cells = vec![count.to_string(), since(created(&cm.metadata), now)];
    listed(Kind::ConfigMap, cm, cells, vec![])
}

fn secret_row(secret: &Secret, now: Timestamp) -> Result<Listed> {
    let cells = vec![
        secret.type_.clone().unwrap_or_default(),
        secret.data.as_ref().map_or(0, |d| d.len()).to_string(),
        since(created(&secret.metadata), now),
    ];
    listed(Kind::Secret, secret, cells, vec![])
}

fn claim_row(claim: &PersistentVolumeClaim, now: Timestamp) -> Result<Listed> {
    let spec = claim.spec.clone().unwrap_or_default();
    let (capacity, modes) = claim_capacity_and_modes(claim);
    let cells = vec![
        phase(
            &claim.metadata,
            claim.status.as_ref().and_then(|s| s.phase.as_ref()),
        ),
        spec.volume_name.clone().unwrap_or_default(),
        capacity,
        modes,
        storage_class(&claim.metadata, spec.storage_class_name.as_ref()),
        or_unset(spec.volume_attributes_class_name.as_ref()),
        since(created(&claim.metadata), now),
    ];
    let wide = vec![or_unset(spec.volume_mode.as_ref())];
    listed(Kind::PersistentVolumeClaim, claim, cells, wide)
}

fn volume_row(pv: &PersistentVolume, now: Timestamp) -> Result<Listed> {
    let spec = pv.spec.clone().unwrap_or_default();
    let status = pv.status.clone().unwrap_or_default();
    let claim = spec
        .claim_ref
        .as_ref()
        .map(|c| {
            format!(
                "{}/{}",
                c.namespace.as_deref().unwrap_or_default(),
                c.name.as_deref().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let cells = vec![
        spec.capacity
            .as_ref()
            .and_then(|c| c.get(RESOURCE_STORAGE))
            .map_or_else(|| "0".to_string(), |q| q.0.clone()),
        access_modes(spec.access_modes.as_ref()),
        spec.persistent_volume_reclaim_policy
            .clone()
            .unwrap_or_default(),
        phase(&pv.metadata, status.phase.as_ref()),
        claim,
        storage_class(&pv.metadata, spec.storage_class_name.as_ref()),
        or_unset(spec.volume_attributes_class_name.as_ref()),
        status.reason.clone().unwrap_or_default(),
        since(created(&pv.metadata), now),
    ];
    let wide = vec![or_unset(spec.volume_mode.as_ref())];
    listed(Kind::PersistentVolume, pv, cells, wide)
}

/// The rows of one stored kind, by namespace and name (the API server's key order).
pub fn list(
    paths: &Paths,
    kind: Kind,
    namespace: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Listed>> {
    let store = ObjectStore::new(paths);
    let rows = |r: Result<Vec<Listed>>| -> Result<Vec<Listed>> {
        let mut rows = r?;
        rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(rows)
    };
    let read = |e| anyhow::Error::new(e).context(format!("reading {}", kind.resource()));
    rows(match kind {
        Kind::ConfigMap => store
            .list::<ConfigMap>(namespace)
            .map_err(read)?
            .iter()
            .map(|o| config_map_row(o, now))
            .collect(),
        Kind::Secret => store
            .list::<Secret>(namespace)
            .map_err(read)?
            .iter()
            .map(|o| secret_row(o, now))
            .collect(),
        Kind::PersistentVolumeClaim => store
            .list::<PersistentVolumeClaim>(namespace)
            .map_err(read)?
            .iter()
            .map(|o| claim_row(o, now))
            .collect(),
        Kind::PersistentVolume => store
            .list::<PersistentVolume>(None)
            .map_err(read)?
            .iter()
            .map(|o| volume_row(o, now))
            .collect(),
        Kind::Pod | Kind::Event => Ok(Vec::new()),
    })
}

/// One stored object's row, or None.
pub fn find(
    paths: &Paths,
    kind: Kind,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<Option<Listed>> {
    let store = ObjectStore::new(paths);
    let context = || format!("reading {} {name:?}", kind.resource());
    match kind {
        Kind::ConfigMap => store
            .get::<ConfigMap>(namespace, name)
            .with_context(context)?
            .map(|o| config_map_row(&o, now)),
        Kind::Secret => store
            .get::<Secret>(namespace, name)
            .with_context(context)?
            .map(|o| secret_row(&o, now)),
        Kind::PersistentVolumeClaim => store
            .get::<PersistentVolumeClaim>(namespace, name)
            .with_context(context)?
            .map(|o| claim_row(&o, now)),
        Kind::PersistentVolume => store
            .get::<PersistentVolume>(namespace, name)
            .with_context(context)?
            .map(|o| volume_row(&o, now)),
        Kind::Pod | Kind::Event => None,
    }
    .transpose()
}

/// Deletes one stored object; false when there was none. Claims go through
/// [`crate::volume::claim::delete`]: a claim in use stays Terminating until its pods are gone.
pub fn delete(paths: &Paths, kind: Kind, namespace: &str, name: &str) -> Result<bool> {
    let store = ObjectStore::new(paths);
    let context = || format!("deleting {} {name:?}", kind.resource());
    let removed = match kind {
        Kind::ConfigMap => store
            .remove::<ConfigMap>(namespace, name)
            .with_context(context)?
            .is_some(),
        Kind::Secret => store
            .remove::<Secret>(namespace, name)
            .with_context(context)?
            .is_some(),
        Kind::PersistentVolumeClaim => crate::volume::claim::delete(paths, namespace, name)
            .with_context(context)?
            .is_some(),
        Kind::PersistentVolume => store
            .remove::<PersistentVolume>(namespace, name)
            .with_context(context)?
            .is_some(),
        Kind::Event => {
            anyhow::bail!("peapod keeps events with their objects: they go when the object goes")
        }
        Kind::Pod => false,
    };
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::get::tables;
    use crate::cli::status::tests::ts;
    use k8s_openapi::api::core::v1::{
        ObjectReference, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
        PersistentVolumeSpec, PersistentVolumeStatus, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            creation_timestamp: Some(Time(ts("2024-01-01T00:00:00Z"))),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        ts("2024-01-01T00:05:00Z")
    }

    fn storage(q: &str) -> Option<BTreeMap<String, Quantity>> {
        Some(BTreeMap::from([(
            RESOURCE_STORAGE.to_string(),
            Quantity(q.into()),
        )]))
    }

    fn claim(name: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: meta(name, Some("default")),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: storage("1Gi"),
                    ..Default::default()
                }),
                storage_class_name: Some("local-path".into()),
                volume_mode: Some("Filesystem".into()),
                volume_name: volume.map(Into::into),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(if volume.is_some() { "Bound" } else { "Pending" }.into()),
                capacity: volume.and(storage("1Gi")),
                access_modes: volume.map(|_| {
                    vec![
                        "ReadWriteOncePod".into(),
                        "ReadWriteOnce".into(),
                        "ReadWriteOnce".into(),
                    ]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn config_map_and_secret_tables() {
        let cm = ConfigMap {
            metadata: meta("settings", Some("default")),
            data: Some(BTreeMap::from([("a".into(), "1".into())])),
            binary_data: Some(BTreeMap::from([("b".into(), ByteString(vec![0]))])),
            ..Default::default()
        };
        let rows = vec![config_map_row(&cm, now()).unwrap()];
        assert_eq!(
            tables(&rows, false, false),
            "NAME       DATA   AGE\nsettings   2      5m\n"
        );
        assert_eq!(
            tables(&rows, false, true),
            "NAMESPACE   NAME       DATA   AGE\ndefault     settings   2      5m\n"
        );
        let secret = Secret {
            metadata: meta("creds", Some("default")),
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([("k".into(), ByteString(b"v".to_vec()))])),
            ..Default::default()
        };
        let mut rows = vec![secret_row(&secret, now()).unwrap()];
        assert_eq!(
            tables(&rows, false, false),
            "NAME    TYPE     DATA   AGE\ncreds   Opaque   1      5m\n"
        );
        // Several kinds: a table each, names as kind/name.
        rows.insert(0, config_map_row(&cm, now()).unwrap());
        assert_eq!(
            tables(&rows, false, false),
            "NAME                 DATA   AGE\nconfigmap/settings   2      5m\n\n\
             NAME           TYPE     DATA   AGE\nsecret/creds   Opaque   1      5m\n"
        );
    }

    #[test]
    fn claim_table_pending_and_bound() {
        let rows = vec![
            claim_row(&claim("data", Some("pvc-1")), now()).unwrap(),
            claim_row(&claim("new", None), now()).unwrap(),
        ];
        assert_eq!(
            tables(&rows, false, false),
            "NAME   STATUS    VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE\n\
             data   Bound     pvc-1    1Gi        RWO,RWOP       local-path     <unset>                 5m\n\
             new    Pending                                      local-path     <unset>                 5m\n"
        );
        let wide = tables(&rows[1..], true, false);
        assert!(
            wide.ends_with("<unset>                 5m    Filesystem\n"),
            "{wide}"
        );
        assert!(wide.starts_with("NAME   STATUS    VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE   VOLUMEMODE\n"), "{wide}");
        let mut annotated = claim("new", None);
        annotated.metadata.annotations = Some(BTreeMap::from([(
            BETA_STORAGE_CLASS_ANNOTATION.to_string(),
            "old".to_string(),
        )]));
        annotated.metadata.deletion_timestamp = Some(Time(now()));
        let row = claim_row(&annotated, now()).unwrap();
        assert_eq!(row.cells[0], "Terminating");
        assert_eq!(row.cells[4], "old");
    }

    #[test]
    fn volume_table() {
        let pv = PersistentVolume {
            metadata: meta("pvc-1", None),
            spec: Some(PersistentVolumeSpec {
                capacity: storage("1Gi"),
                access_modes: Some(vec!["ReadWriteMany".into(), "ReadOnlyMany".into()]),
                persistent_volume_reclaim_policy: Some("Delete".into()),
                storage_class_name: Some("local-path".into()),
                claim_ref: Some(ObjectReference {
                    namespace: Some("default".into()),
                    name: Some("data".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some("Bound".into()),
                ..Default::default()
            }),
        };
        let rows = vec![volume_row(&pv, now()).unwrap()];
        assert_eq!(
            tables(&rows, false, true),
            "NAME    CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS   CLAIM          STORAGECLASS   VOLUMEATTRIBUTESCLASS   REASON   AGE\n\
             pvc-1   1Gi        ROX,RWX        Delete           Bound    default/data   local-path     <unset>                          5m\n"
        );
    }
}
