//! Which profile a container gets, and what the default profile holds.

use super::*;
use oci_spec::runtime::{Capability, LinuxSeccompAction};
use serde_json::json;

fn pod(pod_profile: serde_json::Value, container_profile: serde_json::Value) -> (Pod, Container) {
    let mut c = json!({"name": "c", "image": "busybox"});
    if !container_profile.is_null() {
        c["securityContext"] = json!({"seccompProfile": container_profile});
    }
    let mut spec = json!({"containers": [c]});
    if !pod_profile.is_null() {
        spec["securityContext"] = json!({"seccompProfile": pod_profile});
    }
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap();
    let container = pod.spec.as_ref().unwrap().containers[0].clone();
    (pod, container)
}

#[test]
fn container_field_then_pod_field_then_runtime_default() {
    let (p, c) = pod(json!(null), json!(null));
    assert_eq!(choose(&p, &c, false), Choice::RuntimeDefault);
    let (p, c) = pod(json!({"type": "Unconfined"}), json!(null));
    assert_eq!(choose(&p, &c, false), Choice::Unconfined);
    let (p, c) = pod(
        json!({"type": "Unconfined"}),
        json!({"type": "Localhost", "localhostProfile": "profiles/deny.json"}),
    );
    assert_eq!(
        choose(&p, &c, false),
        Choice::Localhost("profiles/deny.json".into())
    );
    let (p, c) = pod(
        json!({"type": "Localhost", "localhostProfile": "x.json"}),
        json!({"type": "RuntimeDefault"}),
    );
    assert_eq!(choose(&p, &c, false), Choice::RuntimeDefault);
}

#[test]
fn privileged_containers_are_unconfined_whatever_they_ask() {
    let (p, c) = pod(json!(null), json!({"type": "RuntimeDefault"}));
    assert_eq!(choose(&p, &c, true), Choice::Unconfined);
    let none = spec_profile(&Choice::Unconfined, &Capabilities::new(), Path::new("/x")).unwrap();
    assert!(none.is_none());
}

fn allowed(profile: &LinuxSeccomp) -> Vec<String> {
    profile
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
        .flat_map(|s| s.names().clone())
        .collect()
}

#[test]
fn capability_dependent_parts_follow_the_bounding_set() {
    let plain = runtime_default(&Capabilities::new()).unwrap();
    assert_eq!(plain.default_action(), LinuxSeccompAction::ScmpActErrno);
    let names = allowed(&plain);
    for denied in [
        "unshare",
        "mount",
        "setns",
        "chroot",
        "ptrace_never",
        "io_uring_setup",
        "keyctl",
    ] {
        assert!(!names.iter().any(|n| n == denied), "{denied}");
    }
    // Conditional clone and clone3 -> ENOSYS without CAP_SYS_ADMIN.
    let clone3 = plain
        .syscalls()
        .iter()
        .flatten()
        .find(|s| s.names() == &["clone3".to_string()])
        .unwrap();
    assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));

    let admin = runtime_default(&[Capability::SysAdmin, Capability::SysChroot].into()).unwrap();
    let names = allowed(&admin);
    for ok in [
        "unshare", "mount", "setns", "clone", "clone3", "chroot", "syslog",
    ] {
        assert!(names.iter().any(|n| n == ok), "{ok}");
    }
    assert!(!admin
        .syscalls()
        .iter()
        .flatten()
        .any(|s| s.action() == LinuxSeccompAction::ScmpActErrno));
}

#[test]
fn localhost_profiles_are_read_under_the_root_and_missing_ones_say_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/deny-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let p = load_localhost(dir.path(), "profiles/deny-mkdir.json").unwrap();
    assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
    // The kubelet's absolute path (through the CRI) is read where it points.
    let elsewhere = tempfile::tempdir().unwrap();
    let absolute = dir.path().join("profiles/deny-mkdir.json");
    let p = load_localhost(elsewhere.path(), &absolute.display().to_string()).unwrap();
    assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);

    let err = load_localhost(dir.path(), "profiles/missing.json").unwrap_err();
    let path = dir.path().join("profiles/missing.json");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load seccomp profile \"{0}\": open {0}: no such file or directory",
            path.display()
        )
    );
    std::fs::write(dir.path().join("bad.json"), "{").unwrap();
    let err = load_localhost(dir.path(), "bad.json").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("decoding seccomp profile failed"),
        "{err}"
    );
}
