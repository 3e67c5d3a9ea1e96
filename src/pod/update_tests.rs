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

/// The spec `new` is stored with, when the update is accepted.
fn configured_spec(old: &Pod, new: &Pod) -> PodSpec {
    match classify(old, new) {
        PodUpdate::Configured { spec: Some(s), .. } => *s,
        other => panic!("configured with a spec expected, got {other:?}"),
    }
}

fn causes(old: &Pod, new: &Pod) -> Vec<String> {
    match classify(old, new) {
        PodUpdate::Invalid(c) => c,
        other => panic!("invalid expected, got {other:?}"),
    }
}

#[test]
fn labels_and_annotations_are_configured() {
    let old = pod(BASE);
    let relabeled = pod(&BASE.replace(
        "{app: web}",
        "{app: web, tier: front}\n  annotations: {note: x}",
    ));
    let PodUpdate::Configured {
        labels,
        annotations,
        spec,
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
    assert!(spec.is_none());
    let unlabeled = pod(&BASE.replace("  labels: {app: web}\n", ""));
    let PodUpdate::Configured { labels, .. } = classify(&old, &unlabeled) else {
        panic!("configured expected");
    };
    assert_eq!(labels, Some(BTreeMap::new()));
}

const WITH_INIT: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  initContainers:
  - name: setup
    image: busybox:1.36
    command: ['true']
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, '3600']
";

#[test]
fn images_of_containers_and_init_containers_may_change() {
    let old = pod(WITH_INIT);
    let app = pod(&WITH_INIT.replace(
        "    image: busybox:1.36\n    command: [sleep",
        "    image: busybox:1.37\n    command: [sleep",
    ));
    assert_eq!(
        configured_spec(&old, &app).containers[0].image.as_deref(),
        Some("busybox:1.37")
    );
    let init = pod(&WITH_INIT.replace(
        "    image: busybox:1.36\n    command: ['true']",
        "    image: busybox:1.37\n    command: ['true']",
    ));
    let spec = configured_spec(&old, &init);
    assert_eq!(
        spec.init_containers.unwrap()[0].image.as_deref(),
        Some("busybox:1.37")
    );
}

#[test]
fn an_image_with_spaces_around_is_invalid() {
    let old = pod(BASE);
    let mut new = pod(BASE);
    new.spec.as_mut().unwrap().containers[0].image = Some(" busybox:1.37".into());
    assert_eq!(
        causes(&old, &new),
        ["spec.containers[0].image: Invalid value: \" busybox:1.37\": must not have leading or trailing whitespace"]
    );
}

#[test]
fn containers_may_not_be_added_or_removed() {
    let old = pod(BASE);
    let added = pod(&BASE.replace(
        "    command: [sleep, '3600']\n",
        "    command: [sleep, '3600']\n  - name: d\n    image: busybox\n",
    ));
    assert_eq!(
        causes(&old, &added),
        ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
    let old = pod(WITH_INIT);
    let no_init = pod(&WITH_INIT.replace(
        "  initContainers:\n  - name: setup\n    image: busybox:1.36\n    command: ['true']\n",
        "",
    ));
    assert_eq!(
        causes(&old, &no_init),
        ["spec.initContainers: Forbidden: pod updates may not add or remove containers"]
    );
}

fn with_deadline(seconds: &str) -> Pod {
    pod(&BASE.replace(
        "spec:\n",
        &format!("spec:\n  activeDeadlineSeconds: {seconds}\n"),
    ))
}

#[test]
fn the_active_deadline_may_be_set_or_lowered_only() {
    let none = pod(BASE);
    assert_eq!(
        configured_spec(&none, &with_deadline("60")).active_deadline_seconds,
        Some(60)
    );
    assert_eq!(
        configured_spec(&with_deadline("60"), &with_deadline("30")).active_deadline_seconds,
        Some(30)
    );
    assert_eq!(
        classify(&with_deadline("60"), &with_deadline("60")),
        PodUpdate::Unchanged
    );
    assert_eq!(
        causes(&with_deadline("30"), &with_deadline("60")),
        ["spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]
    );
    assert_eq!(
        causes(&with_deadline("30"), &none),
        ["spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"]
    );
    let mut negative = with_deadline("30");
    negative.spec.as_mut().unwrap().active_deadline_seconds = Some(-1);
    assert_eq!(
        causes(&with_deadline("30"), &negative),
        ["spec.activeDeadlineSeconds: Invalid value: -1: must be between 0 and 2147483647, inclusive"]
    );
}

fn with_tolerations(list: &str) -> Pod {
    pod(&BASE.replace("spec:\n", &format!("spec:\n  tolerations:\n{list}")))
}

const TOLERATION: &str =
    "  - {key: k, operator: Equal, value: v, effect: NoExecute, tolerationSeconds: 10}\n";

#[test]
fn tolerations_may_be_added_and_their_seconds_changed() {
    let old = with_tolerations(TOLERATION);
    let added = with_tolerations(&format!(
        "{TOLERATION}  - {{key: other, operator: Exists}}\n"
    ));
    assert_eq!(configured_spec(&old, &added).tolerations.unwrap().len(), 2);
    let seconds = with_tolerations(&TOLERATION.replace("10", "20"));
    assert_eq!(
        configured_spec(&old, &seconds).tolerations.unwrap()[0].toleration_seconds,
        Some(20)
    );
    let changed = with_tolerations(&TOLERATION.replace("value: v", "value: w"));
    assert_eq!(
        causes(&old, &changed),
        ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
    );
    assert_eq!(
        causes(&old, &pod(BASE)),
        ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
    );
}

#[test]
fn the_grace_period_may_only_go_from_negative_to_one() {
    let grace = |g: &str| {
        pod(&BASE.replace(
            "spec:\n",
            &format!("spec:\n  terminationGracePeriodSeconds: {g}\n"),
        ))
    };
    let mut negative = grace("30");
    negative
        .spec
        .as_mut()
        .unwrap()
        .termination_grace_period_seconds = Some(-1);
    assert_eq!(
        configured_spec(&negative, &grace("1")).termination_grace_period_seconds,
        Some(1)
    );
    let cause = &causes(&grace("30"), &grace("1"))[0];
    assert!(cause.starts_with("spec: Forbidden: pod updates may not change fields other than"));
    assert!(
        cause.contains("terminationGracePeriodSeconds: 30"),
        "{cause}"
    );
}

#[test]
fn other_spec_changes_are_forbidden_with_the_api_servers_words() {
    let old = pod(BASE);
    let new = pod(&BASE.replace("'3600'", "'60'"));
    let [cause] = &causes(&old, &new)[..] else {
        panic!("one cause expected");
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
    // An image change alongside is not part of the differences.
    let both = pod(&BASE.replace("'3600'", "'60'").replace("1.36", "1.37"));
    let [cause] = &causes(&old, &both)[..] else {
        panic!("one cause expected");
    };
    assert!(!cause.contains("1.37"), "{cause}");
}

#[test]
fn the_errors_come_together_in_the_api_servers_order() {
    let old = with_deadline("30");
    let new = pod(&BASE.replace("'3600'", "'60'"));
    let causes = causes(&old, &new);
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes[0].starts_with("spec.activeDeadlineSeconds: Invalid value: \"null\""));
    assert!(causes[1].starts_with("spec: Forbidden: pod updates may not change"));
}
