//! The device allowlist, driven through the peapod CLI: a default pod cannot make or open the
//! host's devices (mknod, or a hostPath of /dev), only the standard ones; a privileged pod gets
//! them all; exec'd processes are under the same rules; the cgroups that carry the rules are
//! gone after delete, also after the supervisor was killed. Runs only in the test VM.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// What the kernel says when the device cgroup program refuses an access (EPERM).
const DENIED: &str = "Operation not permitted";

/// A pod with the host's /dev as a hostPath volume, `hostdev`; written as JSON, which is YAML.
fn pod_manifest(name: &str, containers: Vec<Value>) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "hostdev", "hostPath": {"path": "/dev"}}],
            "containers": containers,
        }
    })
    .to_string()
}

/// A busybox container running `sh -c cmd` with the host's /dev at /hostdev.
fn container(name: &str, security_context: Option<Value>, cmd: &str) -> Value {
    let mut c = json!({
        "name": name,
        "image": "busybox",
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", cmd],
        "volumeMounts": [{"name": "hostdev", "mountPath": "/hostdev"}],
    });
    if let Some(sc) = security_context {
        c["securityContext"] = sc;
    }
    c
}

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn start(name: &str, yaml: &str) -> PodGuard {
    apply_ok(yaml);
    let guard = PodGuard(name.to_string());
    wait_running(name);
    guard
}

/// `sh -c SCRIPT` in the container, stderr folded into the returned output.
fn sh(pod: &str, container: &str, script: &str) -> (i32, String) {
    exec(
        pod,
        container,
        &["sh", "-c", &format!("{{ {script} ; }} 2>&1")],
    )
}

fn pod_uid(name: &str) -> String {
    pod_json(name)["metadata"]["uid"]
        .as_str()
        .unwrap_or_else(|| panic!("pod {name} has no uid"))
        .to_string()
}

/// Every cgroup the pod's state.json records: the pod's and each container's.
fn recorded_cgroups(state: &Value) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = state["pod_cgroup"]
        .as_str()
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(containers) = state["containers"].as_object() {
        out.extend(
            containers
                .values()
                .filter_map(|c| c["cgroup"].as_str().map(PathBuf::from)),
        );
    }
    out
}

/// What a pod holds on the host, read from its state.json while it runs.
struct Held {
    uid: String,
    cgroups: Vec<PathBuf>,
    veth: String,
}

fn held(name: &str) -> Held {
    let state = pod_state(name);
    Held {
        uid: pod_uid(name),
        cgroups: recorded_cgroups(&state),
        veth: state["sandbox"]["veth"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// After a delete: no cgroup, mount, link or directory of the pod is left. Other tests of
/// this binary run at the same time, so only this pod's resources are looked for.
fn assert_pod_gone(pod: &Held) {
    for cg in &pod.cgroups {
        assert!(!cg.exists(), "cgroup {} is left after delete", cg.display());
    }
    let left: Vec<String> = leftovers()
        .into_iter()
        .filter(|l| l.contains(&pod.uid) || (!pod.veth.is_empty() && l.contains(&pod.veth)))
        .collect();
    assert!(
        left.is_empty(),
        "pod {} left resources behind: {left:?}",
        pod.uid
    );
}

/// Gone, or a zombie nobody has reaped yet (the VM's pid 1 is a shell).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('Z')),
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn default_pod_cannot_use_host_devices() {
    require_vm();
    let name = "dev-default";
    let main = "head -c1 /hostdev/kmsg >/dev/null 2>/tmp/main.err; cat /tmp/main.err; ".to_string()
        + SLEEP;
    let containers = vec![
        container("app", None, &main),
        // dmesg_restrict also refuses /dev/kmsg without CAP_SYSLOG: this container has it, so
        // only the device allowlist is left to refuse.
        container(
            "syslog",
            Some(json!({"capabilities": {"add": ["SYSLOG"]}})),
            SLEEP,
        ),
    ];
    let pod = start(name, &pod_manifest(name, containers));
    let host = held(name);
    let cgroups = &host.cgroups;
    assert_eq!(
        cgroups.len(),
        3,
        "pod and container cgroups in state.json: {cgroups:?}"
    );

    // The rules are in the Spec as containerd writes them.
    let spec: Value = serde_json::from_str(&peapod_ok(&["inspect", name, "-c", "app"]))
        .expect("inspect prints the Spec as JSON");
    let rules = &spec["linux"]["resources"]["devices"];
    assert_eq!(
        rules[0],
        json!({"allow": false, "access": "rwm"}),
        "{rules}"
    );
    assert!(rules.as_array().is_some_and(|r| r.len() > 5), "{rules}");

    // The container's process sits in the cgroup that state.json recorded.
    let app_cgroup = cgroup_of(container_pid(name, "app"));
    assert!(
        cgroups.contains(&app_cgroup),
        "{} not in {cgroups:?}",
        app_cgroup.display()
    );

    // The main process was refused too.
    wait_until(
        name,
        "the main process's refused open in its log",
        || {
            peapod(&["logs", name, "-c", "app"])
                .stdout
                .windows(DENIED.len())
                .any(|w| w == DENIED.as_bytes())
        },
        RUNNING_TIMEOUT,
    );

    for c in ["syslog", "app"] {
        // The host's devices exist in the hostPath, yet cannot be opened, nor made.
        let (code, out) = sh(name, c, "head -c1 /hostdev/kmsg");
        assert_ne!(code, 0, "{c}: /dev/kmsg of the host was readable: {out}");
        assert!(out.contains(DENIED), "{c}: {out}");
        let (code, out) = sh(name, c, "mknod /tmp/kmsg c 1 11");
        assert_ne!(code, 0, "{c}: mknod of c 1:11 succeeded");
        assert!(out.contains(DENIED), "{c}: {out}");
        let (code, out) = sh(name, c, "mknod /tmp/loop0 b 7 0");
        assert_ne!(code, 0, "{c}: mknod of b 7:0 succeeded");
        assert!(out.contains(DENIED), "{c}: {out}");

        // The standard devices work, also through the host's nodes.
        let (code, out) = sh(
            name,
            c,
            "head -c4 /dev/zero | wc -c; head -c8 /dev/urandom | wc -c; echo x > /dev/null; \
             head -c2 /hostdev/zero | wc -c; echo x > /dev/full",
        );
        assert_ne!(
            code, 0,
            "{c}: writing /dev/full must fail with ENOSPC: {out}"
        );
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(lines[..3], ["4", "8", "2"], "{c}: {out}");
        assert!(out.contains("No space left on device"), "{c}: {out}");
        assert!(!out.contains(DENIED), "{c}: {out}");
    }

    drop(pod);
    assert_pod_gone(&host);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn privileged_pod_gets_the_host_devices() {
    require_vm();
    let name = "dev-priv";
    let containers = vec![container("app", Some(json!({"privileged": true})), SLEEP)];
    let pod = start(name, &pod_manifest(name, containers));
    let host = held(name);

    let (code, out) = sh(
        name,
        "app",
        "ls -l /dev/kmsg /dev/mem; head -c1 /dev/kmsg >/dev/null && echo kmsg-read; \
         head -c1 /hostdev/kmsg >/dev/null && echo hostdev-read; \
         mknod /tmp/loop0 b 7 0 && echo mknod-done; readlink /dev/ptmx",
    );
    assert_eq!(code, 0, "{out}");
    for want in ["kmsg-read", "hostdev-read", "mknod-done"] {
        assert!(out.contains(want), "missing {want}: {out}");
    }
    assert!(
        out.contains("1,  11") || out.contains("1, 11"),
        "/dev/kmsg is not c 1:11: {out}"
    );
    assert!(
        out.lines().any(|l| l.trim() == "pts/ptmx"),
        "/dev/ptmx is not the pod's own: {out}"
    );
    assert!(!out.contains(DENIED), "{out}");

    let spec: Value = serde_json::from_str(&peapod_ok(&["inspect", name, "-c", "app"])).unwrap();
    assert_eq!(
        spec["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );

    drop(pod);
    assert_pod_gone(&host);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn delete_after_supervisor_kill_removes_the_cgroups() {
    require_vm();
    let name = "dev-orphan";
    let pod = start(
        name,
        &pod_manifest(name, vec![container("app", None, SLEEP)]),
    );
    let host = held(name);
    assert_eq!(host.cgroups.len(), 2, "{:?}", host.cgroups);
    let supervisor = pod_state(name)["supervisor"]["pid"]
        .as_i64()
        .expect("supervisor pid in state.json") as i32;
    kill(supervisor, "KILL");
    assert!(
        wait_for(|| process_gone(supervisor), RUNNING_TIMEOUT),
        "supervisor {supervisor} survived SIGKILL"
    );
    // The container keeps running under its rules without the supervisor.
    let (_, out) = sh(name, "app", "head -c1 /hostdev/kmsg");
    assert!(out.contains(DENIED), "{out}");
    drop(pod);
    assert_pod_gone(&host);
}
