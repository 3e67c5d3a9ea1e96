//! Static pod reading and reconciliation against files in a temp dir.

use super::*;

const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: busybox:1.36
";

#[test]
fn each_file_is_a_pod_named_after_the_node() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.yaml"), WEB).unwrap();
    fs::write(dir.path().join(".hidden.yaml"), WEB).unwrap();
    fs::write(dir.path().join("bad.yaml"), "kind: Pod\n").unwrap();
    let scan = scan(dir.path(), "Node-1", "2026-01-01T00:00:00Z");
    assert_eq!(scan.pods.len(), 1);
    let p = &scan.pods[0];
    assert_eq!(p.name(), "web-node-1");
    assert_eq!(p.namespace(), "default");
    assert_eq!(p.uid().len(), 32);
    assert_eq!(
        p.pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("Node-1")
    );
    let ann = p.pod.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[CONFIG_SOURCE_ANNOTATION], "file");
    assert_eq!(ann[CONFIG_HASH_ANNOTATION], p.uid());
    assert!(is_static(&p.pod));
    assert_eq!(scan.invalid.len(), 1);
    assert!(scan.invalid[0].file.ends_with("bad.yaml"));
    assert!(
        scan.invalid[0].reason.contains("apiVersion"),
        "{:?}",
        scan.invalid
    );
}

#[test]
fn a_changed_file_is_a_new_uid_and_a_missing_dir_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    fs::write(&file, WEB).unwrap();
    let a = scan(dir.path(), "n", "t").pods[0].uid().to_string();
    assert_eq!(
        scan(dir.path(), "n", "later").pods[0].uid(),
        a,
        "time is not hashed"
    );
    fs::write(&file, WEB.replace("1.36", "1.37")).unwrap();
    assert_ne!(scan(dir.path(), "n", "t").pods[0].uid(), a);
    assert!(scan(&dir.path().join("nope"), "n", "t").pods.is_empty());
}

#[test]
fn reconcile_replaces_changed_pods_and_recreates_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.yaml"), WEB).unwrap();
    let desired = scan(dir.path(), "n", "t").pods;
    let uid = desired[0].uid().to_string();
    let running = |hash: &str| Running {
        namespace: "default".into(),
        name: "web-n".into(),
        hash: hash.into(),
    };
    assert!(reconcile(&desired, &[running(&uid)]).is_empty());
    let actions = reconcile(&desired, &[running("old")]);
    assert!(matches!(&actions[0], Action::Delete { name, .. } if name == "web-n"));
    assert!(matches!(&actions[1], Action::Create(p) if p.uid() == uid));
    let actions = reconcile(&desired, &[]);
    assert!(matches!(&actions[..], [Action::Create(_)]));
    let actions = reconcile(&[], &[running(&uid)]);
    assert!(matches!(&actions[..], [Action::Delete { .. }]));
}

#[test]
fn two_files_for_one_pod_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), WEB).unwrap();
    fs::write(dir.path().join("b.yaml"), WEB).unwrap();
    let scan = scan(dir.path(), "n", "t");
    assert_eq!(scan.pods.len(), 1);
    assert!(scan.pods[0].file.ends_with("a.yaml"));
    assert!(
        scan.invalid[0].reason.contains("already defined by"),
        "{:?}",
        scan.invalid
    );
}
