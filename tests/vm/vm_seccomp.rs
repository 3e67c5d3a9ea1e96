//! Seccomp, sysctls and AppArmor as a user meets them: containerd's default profile blocks
//! what it blocks, Unconfined and privileged containers are not filtered, a Localhost profile
//! applies and a missing one leaves the container in CreateContainerError, sysctls are set in
//! the pod or refused with SysctlForbidden; AppArmor profiles (the VM has AppArmor) hold the
//! containers and their exec'd processes, and a missing one is a CreateContainerError. Runs only in the test VM (`scripts/test`); every
//! test uses its own pod names.

use crate::common;

use common::*;
use std::process::Command;

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// A one-container busybox pod; `pod_extra` goes under `spec:`, `container_extra` under the
/// container.
fn pod_yaml(name: &str, pod_extra: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{pod_extra}  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", {SLEEP:?}]
{container_extra}"
    )
}

fn start(name: &str, yaml: &str) -> PodGuard {
    apply_ok(yaml);
    let guard = PodGuard(name.to_string());
    wait_running(name);
    guard
}

/// Runs `script` in the pod's container; its stdout and stderr, then `rc=<exit code>`.
fn run_in(pod: &str, script: &str) -> String {
    let (_, out) = exec(
        pod,
        "app",
        &["sh", "-c", &format!("{script} 2>&1; echo rc=$?")],
    );
    out
}

/// The `Seccomp:` mode of the container's processes: 0 none, 2 filter.
fn seccomp_mode(pod: &str) -> String {
    let out = run_in(pod, "grep '^Seccomp:' /proc/self/status");
    out.lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn runtime_default_is_the_default_and_blocks_what_containerd_blocks() {
    require_vm();
    let _pod = start("sc-default", &pod_yaml("sc-default", "", ""));
    assert_eq!(seccomp_mode("sc-default"), "2");
    // The container's pid 1 is filtered too, not only exec'd processes.
    let pid1 = run_in("sc-default", "grep '^Seccomp:' /proc/1/status");
    assert!(pid1.contains("Seccomp:\t2"), "{pid1}");
    // A user namespace needs no capability, but the profile allows unshare only with
    // CAP_SYS_ADMIN (and clone with namespace flags likewise).
    let out = run_in("sc-default", "unshare -U true");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    // chroot is allowed: the container holds CAP_SYS_CHROOT.
    let out = run_in("sc-default", "chroot / true");
    assert!(out.contains("rc=0"), "{out}");
    let spec = peapod_ok(&["inspect", "sc-default"]);
    assert!(
        spec.contains("\"seccomp\""),
        "inspect shows no profile: {spec}"
    );
    assert!(spec.contains("SCMP_ACT_ERRNO"), "{spec}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn unconfined_and_privileged_containers_are_not_filtered() {
    require_vm();
    let unconfined = "  securityContext:\n    seccompProfile:\n      type: Unconfined\n";
    let _a = start("sc-unconfined", &pod_yaml("sc-unconfined", unconfined, ""));
    assert_eq!(seccomp_mode("sc-unconfined"), "0");
    let out = run_in("sc-unconfined", "unshare -U true");
    assert!(out.contains("rc=0"), "{out}");

    let privileged = "    securityContext:\n      privileged: true\n      seccompProfile:\n        type: RuntimeDefault\n";
    let _b = start("sc-privileged", &pod_yaml("sc-privileged", "", privileged));
    assert_eq!(seccomp_mode("sc-privileged"), "0");
}

fn write_profile(relative: &str, json: &str) {
    let path = lib_dir().join("seccomp").join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, json).unwrap();
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_localhost_profile_applies_and_a_missing_one_is_a_create_error() {
    require_vm();
    write_profile(
        "profiles/deny-mkdir.json",
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    let local = "    securityContext:\n      seccompProfile:\n        type: Localhost\n        localhostProfile: profiles/deny-mkdir.json\n";
    let _pod = start("sc-local", &pod_yaml("sc-local", "", local));
    assert_eq!(seccomp_mode("sc-local"), "2");
    let out = run_in("sc-local", "mkdir /tmp/d");
    assert!(out.contains("Operation not permitted"), "{out}");
    let out = run_in("sc-local", "touch /tmp/f && unshare -U true");
    assert!(out.contains("rc=0"), "{out}");

    let missing = "    securityContext:\n      seccompProfile:\n        type: Localhost\n        localhostProfile: profiles/missing.json\n";
    apply_ok(&pod_yaml("sc-missing", "", missing));
    let _guard = PodGuard("sc-missing".into());
    let waiting = |reason: &str| {
        container_status("sc-missing", "app")
            .is_some_and(|c| c["state"]["waiting"]["reason"] == reason)
    };
    wait_until(
        "sc-missing",
        "waiting with CreateContainerError",
        || waiting("CreateContainerError"),
        RUNNING_TIMEOUT,
    );
    let c = container_status("sc-missing", "app").unwrap();
    let message = c["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    let path = lib_dir().join("seccomp/profiles/missing.json");
    assert_eq!(
        message,
        format!(
            "cannot load seccomp profile \"{0}\": open {0}: no such file or directory",
            path.display()
        )
    );
    assert_eq!(status_column("sc-missing"), "CreateContainerError");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn safe_sysctls_are_set_in_the_pods_namespaces() {
    require_vm();
    let sysctls = "  securityContext:\n    sysctls:\n    - name: net.ipv4.ip_local_port_range\n      value: \"20000 40000\"\n    - name: kernel.shm_rmid_forced\n      value: \"1\"\n";
    let _pod = start("sc-sysctl", &pod_yaml("sc-sysctl", sysctls, ""));
    let out = run_in("sc-sysctl", "cat /proc/sys/net/ipv4/ip_local_port_range");
    assert!(out.starts_with("20000\t40000"), "{out}");
    let out = run_in("sc-sysctl", "cat /proc/sys/kernel/shm_rmid_forced");
    assert!(out.starts_with('1'), "{out}");
    // Only the pod's namespaces changed: the host keeps its own range.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    assert!(!host.starts_with("20000\t40000"), "host changed: {host}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn an_unsafe_sysctl_fails_the_pod_with_sysctl_forbidden() {
    require_vm();
    let sysctls =
        "  securityContext:\n    sysctls:\n    - name: net.core.somaxconn\n      value: \"1024\"\n";
    apply_ok(&pod_yaml("sc-forbidden", sysctls, ""));
    let _guard = PodGuard("sc-forbidden".into());
    wait_until(
        "sc-forbidden",
        "phase Failed",
        || phase("sc-forbidden") == "Failed",
        RUNNING_TIMEOUT,
    );
    let status = &pod_json("sc-forbidden")["status"];
    assert_eq!(status["reason"], "SysctlForbidden");
    assert_eq!(
        status["message"],
        "Pod was rejected: forbidden sysctl: \"net.core.somaxconn\" not allowlisted"
    );
    assert_eq!(status_column("sc-forbidden"), "SysctlForbidden");
    let described = peapod_ok(&["describe", "pod", "sc-forbidden"]);
    assert!(described.contains("SysctlForbidden"), "{described}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn the_node_setting_allows_an_unsafe_namespaced_sysctl() {
    require_vm();
    let sysctls =
        "  securityContext:\n    sysctls:\n    - name: net.core.somaxconn\n      value: \"1234\"\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, pod_yaml("sc-allowed", sysctls, "")).unwrap();
    let out = Command::new(peapod_bin())
        .args(["apply", "-f", file.to_str().unwrap()])
        .env("PEAPOD_ALLOWED_UNSAFE_SYSCTLS", "net.core.*")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let _guard = PodGuard("sc-allowed".into());
    wait_running("sc-allowed");
    let out = run_in("sc-allowed", "cat /proc/sys/net/core/somaxconn");
    assert!(out.starts_with("1234"), "{out}");
}

/// The tests' own AppArmor profile: everything but writes under /etc.
const TEST_PROFILE: &str = "peapod-test-ro-etc";

/// Loads [`TEST_PROFILE`] with apparmor_parser, as an administrator loads a Localhost profile.
fn load_test_profile() {
    use std::io::Write;
    let text = format!(
        "profile {TEST_PROFILE} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  \
         network,\n  capability,\n  signal,\n  ptrace,\n  deny /etc/** w,\n}}\n"
    );
    let mut parser = Command::new("/sbin/apparmor_parser")
        .arg("-Kr")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("apparmor_parser (scripts/test stages it into the VM)");
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = parser.wait_with_output().unwrap();
    assert!(out.status.success(), "apparmor_parser: {}", stderr(&out));
}

/// A pod of busybox containers `(name, securityContext)` sleeping; written as JSON, which is
/// YAML.
fn armored_pod(
    name: &str,
    annotations: serde_json::Value,
    containers: &[(&str, serde_json::Value)],
) -> String {
    let containers: Vec<_> = containers
        .iter()
        .map(|(c, sc)| {
            serde_json::json!({"name": c, "image": "busybox", "imagePullPolicy": "IfNotPresent",
                               "command": ["sh", "-c", SLEEP], "securityContext": sc})
        })
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": containers},
    })
    .to_string()
}

/// The AppArmor label of a container's main process, read from the host.
fn label(pod: &str, container: &str) -> String {
    let pid = container_pid(pod, container);
    std::fs::read_to_string(format!("/proc/{pid}/attr/current"))
        .unwrap_or_else(|e| panic!("label of {pod}/{container}: {e}"))
        .trim_end_matches(['\n', '\0'])
        .to_string()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn apparmor_profiles_are_applied_where_the_host_has_apparmor() {
    use serde_json::json;
    require_vm();
    load_test_profile();
    // One pod for every kind (pod-level fields and overrides are unit tests): the VM is slow.
    let local = json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": TEST_PROFILE}});
    apply_ok(&armored_pod(
        "sc-aa",
        json!({"container.apparmor.security.beta.kubernetes.io/annotated":
               format!("localhost/{TEST_PROFILE}")}),
        &[
            ("local", local),
            ("annotated", json!({})),
            (
                "default",
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
            ),
            ("none", json!({})),
            ("priv", json!({"privileged": true})),
        ],
    ));
    let _pod = PodGuard("sc-aa".into());
    let missing =
        json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "peapod-not-loaded"}});
    apply_ok(&armored_pod(
        "sc-aa-missing",
        json!({}),
        &[("app", missing)],
    ));
    let _missing = PodGuard("sc-aa-missing".into());

    wait_running("sc-aa");
    // A loaded Localhost profile, by field or by the deprecated annotation; RuntimeDefault and
    // nothing asked: peapod-default; privileged: unconfined (kubelet + containerd).
    let confined = format!("{TEST_PROFILE} (enforce)");
    let default = "peapod-default (enforce)";
    for (c, want) in [
        ("local", confined.as_str()),
        ("annotated", &confined),
        ("default", default),
        ("none", default),
        ("priv", "unconfined"),
    ] {
        assert_eq!(label("sc-aa", c), want, "{c}");
    }
    // Exec'd processes get the container's profile, and it denies what it denies.
    let (_, out) = exec(
        "sc-aa",
        "local",
        &[
            "sh",
            "-c",
            "cat /proc/self/attr/current; touch /etc/x 2>&1; touch /x && echo rootfs-written",
        ],
    );
    assert!(out.starts_with(&confined), "{out}");
    assert!(out.contains("touch: /etc/x: Permission denied"), "{out}");
    assert!(out.contains("rootfs-written"), "{out}");
    let (_, out) = exec("sc-aa", "none", &["cat", "/proc/self/attr/current"]);
    assert!(out.starts_with(default), "{out}");

    // A Localhost profile the kernel has not loaded: the container's creation fails in
    // containerd's words (the kubelet since 1.30 leaves the check to the runtime).
    wait_until(
        "sc-aa-missing",
        "waiting with CreateContainerError",
        || {
            container_status("sc-aa-missing", "app")
                .is_some_and(|c| c["state"]["waiting"]["reason"] == "CreateContainerError")
        },
        RUNNING_TIMEOUT,
    );
    let c = container_status("sc-aa-missing", "app").unwrap();
    assert_eq!(
        c["state"]["waiting"]["message"],
        "failed to generate apparmor spec opts: apparmor profile not found peapod-not-loaded",
        "{c}"
    );
    assert_eq!(pod_json("sc-aa-missing")["status"]["phase"], "Pending");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn with_no_new_privs_the_filter_is_loaded_last_and_holds() {
    require_vm();
    let nnp =
        "    securityContext:\n      allowPrivilegeEscalation: false\n      runAsUser: 1000\n";
    let _pod = start("sc-nnp", &pod_yaml("sc-nnp", "", nnp));
    let status = run_in(
        "sc-nnp",
        "grep -E '^(Seccomp|NoNewPrivs|Uid):' /proc/1/status",
    );
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Uid:\t1000"), "{status}");
    let out = run_in("sc-nnp", "unshare -U true");
    assert!(out.contains("Operation not permitted"), "{out}");
}
