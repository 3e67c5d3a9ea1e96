//! Claim binding, protection and ephemeral claims against a store in a temp dir.

use super::*;
use crate::object::PutMode;
use crate::store::write_json;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn claim(name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "volumeMode": "Filesystem", "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap()
}

fn pod(name: &str, uid: &str, volumes: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "a", "image": "busybox"}], "volumes": volumes}
    }))
    .unwrap()
}

/// Puts a pod on record, as apply does.
fn record(paths: &Paths, p: &Pod) {
    let uid = p.metadata.uid.clone().unwrap();
    write_json(&paths.pod_dir(&uid).join("pod.json"), p).unwrap();
}

fn unrecord(paths: &Paths, p: &Pod) {
    fs::remove_dir_all(paths.pod_dir(p.metadata.uid.as_deref().unwrap())).unwrap();
}

#[test]
fn first_consumer_binds_and_protection_waits_for_the_last_pod() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let store = ObjectStore::new(&paths);
    let (c, _) = store.put(claim("data"), PutMode::Apply).unwrap();
    on_created(&paths, &c).unwrap();
    let p = pod(
        "web",
        "u1",
        serde_json::json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]),
    );
    record(&paths, &p);

    let vol = bind(&paths, "default", "data", "node1").unwrap();
    assert!(vol.is_dir());
    assert!(vol.starts_with(paths.lib.join(STORAGE_DIR)));
    let bound: PersistentVolumeClaim = store.get("default", "data").unwrap().unwrap();
    let status = bound.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some(PHASE_BOUND));
    assert_eq!(status.capacity.unwrap()["storage"], Quantity("1Gi".into()));
    let pv_name = bound.spec.unwrap().volume_name.unwrap();
    assert_eq!(pv_name, format!("pvc-{}", c.metadata.uid.unwrap()));
    let pv: PersistentVolume = store.get("", &pv_name).unwrap().unwrap();
    assert_eq!(
        pv.spec.unwrap().persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    // A second bind finds the same directory.
    assert_eq!(bind(&paths, "default", "data", "node1").unwrap(), vol);
    let reasons: Vec<String> = store
        .events::<PersistentVolumeClaim>("default", "data")
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(
        reasons,
        [
            REASON_WAIT_FOR_FIRST_CONSUMER,
            REASON_PROVISIONING_SUCCEEDED
        ]
    );

    // In use: Terminating, and a new pod cannot use it.
    fs::write(vol.join("keep"), b"x").unwrap();
    assert_eq!(
        delete(&paths, "default", "data").unwrap(),
        Some(ClaimDeletion::Terminating)
    );
    let c: PersistentVolumeClaim = store.get("default", "data").unwrap().unwrap();
    assert!(c.metadata.deletion_timestamp.is_some());
    assert!(matches!(
        bind(&paths, "default", "data", "n"),
        Err(ClaimError::BeingDeleted(_))
    ));
    // The last pod goes: claim, volume and data go.
    unrecord(&paths, &p);
    release_for_pod(&paths, &p).unwrap();
    assert!(store
        .get::<PersistentVolumeClaim>("default", "data")
        .unwrap()
        .is_none());
    assert!(store
        .get::<PersistentVolume>("", &pv_name)
        .unwrap()
        .is_none());
    assert!(!vol.exists());
}

#[test]
fn unused_claim_deletes_at_once_and_missing_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let store = ObjectStore::new(&paths);
    store.put(claim("data"), PutMode::Apply).unwrap();
    assert_eq!(
        delete(&paths, "default", "data").unwrap(),
        Some(ClaimDeletion::Deleted)
    );
    assert_eq!(delete(&paths, "default", "data").unwrap(), None);
    let err = bind(&paths, "default", "data", "n").unwrap_err();
    assert_eq!(err.to_string(), "persistentvolumeclaim \"data\" not found");
    let mut other = claim("fast");
    other.spec.as_mut().unwrap().storage_class_name = Some("gp2".into());
    store.put(other, PutMode::Apply).unwrap();
    let err = bind(&paths, "default", "fast", "n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "storageclass.storage.k8s.io \"gp2\" not found"
    );
}

#[test]
fn ephemeral_claims_belong_to_their_pod() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let store = ObjectStore::new(&paths);
    let volumes = serde_json::json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
        "metadata": {"labels": {"type": "scratch"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}]);
    let p = pod("web", "u1", volumes);
    record(&paths, &p);
    let template = p.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0]
        .ephemeral
        .clone()
        .unwrap()
        .volume_claim_template
        .unwrap();
    let name = ensure_ephemeral(&paths, &p, "scratch", &template).unwrap();
    assert_eq!(name, "web-scratch");
    assert_eq!(claims_of(&p), ["web-scratch"]);
    let dir = bind(&paths, "default", &name, "n").unwrap();
    // Another pod of the same name (a new uid) does not own it.
    let impostor = pod("web", "u2", serde_json::json!([]));
    let err = ensure_ephemeral(&paths, &impostor, "scratch", &template).unwrap_err();
    assert_eq!(
        err.to_string(),
        "PVC default/web-scratch was not created for pod default/web (pod is not owner)"
    );
    unrecord(&paths, &p);
    release_for_pod(&paths, &p).unwrap();
    assert!(store
        .get::<PersistentVolumeClaim>("default", "web-scratch")
        .unwrap()
        .is_none());
    assert!(!dir.exists());
}
