//! The API server's rules for seccompProfile, sysctls, procMount and appArmorProfile.

use super::decode_pods;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: busybox
";

fn errors(extra_pod: &str, extra_container: &str) -> String {
    let text = format!("{POD}{extra_container}{extra_pod}");
    match decode_pods(&text, "pod.yaml") {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn seccomp_profiles_are_accepted_and_checked() {
    let ok = [
        "  securityContext:\n    seccompProfile: {type: RuntimeDefault}\n",
        "  securityContext:\n    seccompProfile: {type: Unconfined}\n",
        "  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: profiles/a.json}\n",
    ];
    for pod in ok {
        assert_eq!(errors(pod, ""), "", "{pod}");
    }
    let c = "    securityContext:\n      seccompProfile: {type: Localhost}\n";
    assert!(errors("", c).contains(
        "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"
    ));
    let e = errors(
        "  securityContext:\n    seccompProfile: {type: Bogus}\n",
        "",
    );
    assert!(e.contains("spec.securityContext.seccompProfile.type: Unsupported value: \"Bogus\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""), "{e}");
    let e = errors(
        "  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: ../x.json}\n",
        "",
    );
    assert!(e.contains("must not contain '..'"), "{e}");
    let e = errors(
        "  securityContext:\n    seccompProfile: {type: Localhost, localhostProfile: /x.json}\n",
        "",
    );
    assert!(e.contains("must be a relative path"), "{e}");
    let e = errors("  securityContext:\n    seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}\n", "");
    assert!(
        e.contains("can only be set when seccomp type is Localhost"),
        "{e}"
    );
}

#[test]
fn sysctl_names_are_checked_by_format_and_duplicates() {
    let ok = "  securityContext:\n    sysctls:\n    - {name: net.ipv4.ip_local_port_range, value: '1024 65000'}\n    - {name: net.core.somaxconn, value: '1024'}\n";
    assert_eq!(errors(ok, ""), "");
    let bad = "  securityContext:\n    sysctls:\n    - {name: Net.Core, value: '1'}\n    - {name: kernel.msgmax, value: '1'}\n    - {name: kernel.msgmax, value: '2'}\n";
    let e = errors(bad, "");
    assert!(e.contains("spec.securityContext.sysctls[0].name: Invalid value: \"Net.Core\": must have at most 253 characters and match regex"), "{e}");
    assert!(
        e.contains("spec.securityContext.sysctls[2].name: Duplicate value: \"kernel.msgmax\""),
        "{e}"
    );
}

#[test]
fn proc_mount_unmasked_needs_host_users_false() {
    assert_eq!(
        errors("", "    securityContext: {procMount: Default}\n"),
        ""
    );
    let e = errors("", "    securityContext: {procMount: Unmasked}\n");
    assert!(e.contains("spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"), "{e}");
    let e = errors("", "    securityContext: {procMount: Other}\n");
    assert!(
        e.contains("Unsupported value: \"Other\": supported values: \"Default\", \"Unmasked\""),
        "{e}"
    );
    assert!(errors("  hostUsers: false\n", "").contains("not supported: spec.hostUsers"));
}

#[test]
fn apparmor_profiles_are_checked() {
    assert_eq!(
        errors(
            "  securityContext:\n    appArmorProfile: {type: Unconfined}\n",
            ""
        ),
        ""
    );
    assert_eq!(
        errors(
            "",
            "    securityContext:\n      appArmorProfile: {type: RuntimeDefault}\n"
        ),
        ""
    );
    let e = errors(
        "  securityContext:\n    appArmorProfile: {type: Localhost}\n",
        "",
    );
    assert!(e.contains("spec.securityContext.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost"), "{e}");
    let e = errors(
        "  securityContext:\n    appArmorProfile: {type: Unconfined, localhostProfile: p}\n",
        "",
    );
    assert!(
        e.contains("can only be set when AppArmor type is Localhost"),
        "{e}"
    );
}
