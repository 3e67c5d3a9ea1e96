//! The kubelet's reading of a pod's AppArmor fields and containerd's decision on them.

use super::*;
use serde_json::json;

fn pod(spec: serde_json::Value, annotations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

fn asked_by(pod: &Pod, container: usize) -> Option<Choice> {
    asked(pod, &pod.spec.as_ref().unwrap().containers[container])
}

#[test]
fn container_field_then_annotation_then_pod_field() {
    let p = pod(
        json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
               "containers": [
                   {"name": "own", "securityContext": {"appArmorProfile":
                       {"type": "Localhost", "localhostProfile": "mine"}}},
                   {"name": "annotated"},
                   {"name": "plain"},
                   {"name": "odd"}]}),
        json!({
            "container.apparmor.security.beta.kubernetes.io/own": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/annotated": "localhost/theirs",
            "container.apparmor.security.beta.kubernetes.io/odd": "nonsense",
        }),
    );
    assert_eq!(asked_by(&p, 0), Some(Choice::Localhost("mine".into())));
    assert_eq!(asked_by(&p, 1), Some(Choice::Localhost("theirs".into())));
    assert_eq!(asked_by(&p, 2), Some(Choice::RuntimeDefault));
    // An annotation the kubelet does not understand is ignored.
    assert_eq!(asked_by(&p, 3), Some(Choice::RuntimeDefault));
    let bare = pod(json!({"containers": [{"name": "c"}]}), json!({}));
    assert_eq!(asked_by(&bare, 0), None);
    let annotated = pod(
        json!({"containers": [{"name": "c"}]}),
        json!({"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}),
    );
    assert_eq!(asked_by(&annotated, 0), Some(Choice::RuntimeDefault));
}

#[test]
fn decisions_follow_containerd() {
    let local = Choice::Localhost("x".into());
    // AppArmor on: nothing asked is the default, unconfined when privileged.
    assert_eq!(
        decide(None, false, true),
        Decision::RuntimeDefault { asked: false }
    );
    assert_eq!(decide(None, true, true), Decision::Unconfined);
    assert_eq!(
        decide(Some(&Choice::RuntimeDefault), false, true),
        Decision::RuntimeDefault { asked: true }
    );
    assert_eq!(
        decide(Some(&Choice::RuntimeDefault), true, true),
        Decision::Unconfined
    );
    assert_eq!(
        decide(Some(&Choice::Unconfined), false, true),
        Decision::Unconfined
    );
    // A named profile is applied even to a privileged container.
    assert_eq!(
        decide(Some(&local), true, true),
        Decision::Localhost("x".into())
    );
    assert_eq!(
        decide(Some(&Choice::Localhost("localhost/y".into())), false, true),
        Decision::Localhost("y".into())
    );
    // AppArmor off: asking for a profile is refused, asking for nothing runs unconfined.
    assert_eq!(decide(None, false, false), Decision::Unconfined);
    assert_eq!(
        decide(Some(&Choice::Unconfined), false, false),
        Decision::Unconfined
    );
    assert_eq!(decide(Some(&local), false, false), Decision::NotSupported);
    assert_eq!(
        decide(Some(&Choice::RuntimeDefault), true, false),
        Decision::NotSupported
    );
}

#[test]
fn loaded_profiles_are_read_from_the_kernel_list() {
    let names = parse_profiles(
        "peapod-default (enforce)\n/usr/bin/man (enforce)\nns://x (complain)\nwith space (enforce)\ngarbage\n",
    );
    let mut sorted: Vec<_> = names.into_iter().collect();
    sorted.sort();
    assert_eq!(
        sorted,
        ["/usr/bin/man", "ns://x", "peapod-default", "with space"]
    );
}

#[test]
fn errors_use_containerds_words() {
    assert_eq!(
        AppArmorError::NotFound("p".into()).to_string(),
        "apparmor profile not found p"
    );
    assert_eq!(
        AppArmorError::NotSupported.to_string(),
        "apparmor is not supported"
    );
}

#[test]
fn default_profile_is_self_contained() {
    let text = default_profile_text();
    assert!(text.starts_with("profile peapod-default flags="), "{text}");
    assert!(!text.contains("#include"), "{text}");
    assert!(text.contains("deny mount,"), "{text}");
}
