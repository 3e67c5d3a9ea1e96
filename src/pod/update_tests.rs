use super::*;

fn pod(yaml: &str) -> Pod {
    let mut pods = crate::manifest::decode_pods(yaml, "test").unwrap();
    pods.remove(0)
}

const BASE: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, '3600']
";

#[test]
fn the_same_manifest_is_unchanged() {
    let mut stored = pod(BASE);
    stored.metadata.uid = Some("u".into());
    stored.metadata.creation_timestamp = None;
    assert_eq!(classify(&stored, &pod(BASE)), PodUpdate::Unchanged);
}

#[test]
fn labels_annotations_and_images_are_configured() {
    let old = pod(BASE);
    let relabeled = pod(&BASE.replace(
        "{app: web}",
        "{app: web, tier: front}\n  annotations: {note: x}",
    ));
    let PodUpdate::Configured {
        labels,
        annotations,
        spec,
        images,
    } = classify(&old, &relabeled)
    else {
        panic!("configured expected");
    };
    assert_eq!(
        labels.unwrap().get("tier").map(String::as_str),
        Some("front")
    );
    assert_eq!(
        annotations.unwrap().get("note").map(String::as_str),
        Some("x")
    );
    assert!(spec.is_none() && images.is_empty());
    let unlabeled = pod(&BASE.replace("  labels: {app: web}\n", ""));
    let PodUpdate::Configured { labels, .. } = classify(&old, &unlabeled) else {
        panic!("configured expected");
    };
    assert_eq!(labels, Some(BTreeMap::new()));
    let new_image = pod(&BASE.replace("busybox:1.36", "busybox:1.37"));
    let PodUpdate::Configured { images, .. } = classify(&old, &new_image) else {
        panic!("configured expected");
    };
    assert_eq!(
        images,
        [ImageChange {
            path: "spec.containers[0].image".into(),
            old: "busybox:1.36".into(),
            new: "busybox:1.37".into()
        }]
    );
}

#[test]
fn other_spec_changes_are_forbidden_with_the_api_servers_words() {
    let old = pod(BASE);
    let new = pod(&BASE.replace("'3600'", "'60'"));
    let PodUpdate::Forbidden(cause) = classify(&old, &new) else {
        panic!("forbidden expected");
    };
    assert!(cause.starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{cause}");
    assert!(
        cause.contains("- \tcontainers[0].command[1]: \"3600\""),
        "{cause}"
    );
    assert!(
        cause.contains("+ \tcontainers[0].command[1]: \"60\""),
        "{cause}"
    );
    let added = pod(&BASE.replace(
        "    command: [sleep, '3600']\n",
        "    command: [sleep, '3600']\n  - name: d\n    image: busybox\n",
    ));
    assert!(matches!(classify(&old, &added), PodUpdate::Forbidden(_)));
}
