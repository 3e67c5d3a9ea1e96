//! What every volume kind shares, driven through the peapod CLI as a user would: subPath and
//! subPathExpr (made safely: a symlink cannot lead out of the volume), readOnly and
//! recursiveReadOnly, fsGroup ownership and groups, supplementalGroupsPolicy, hostPath types,
//! the emptyDir sizeLimit eviction, a volume without a source. Runs only in the test VM
//! (`scripts/test`); every test uses its own pod names.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// A busybox container: name, shell command, and more YAML under it (indented 4).
fn container(name: &str, cmd: &str, extra: &str) -> String {
    format!(
        "  - name: {name}
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", {cmd:?}]
{extra}"
    )
}

/// A pod with `containers` (from [`container`]) and more spec YAML (indented 2).
fn pod(name: &str, containers: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{spec}  containers:\n{containers}"
    )
}

fn start(name: &str, yaml: &str) -> PodGuard {
    apply_ok(yaml);
    let guard = PodGuard(name.to_string());
    wait_running(name);
    guard
}

fn sh(pod: &str, container: &str, script: &str) -> (i32, String) {
    exec(pod, container, &["sh", "-c", script])
}

fn waiting(pod: &str, container: &str) -> (String, String) {
    let cs = container_status(pod, container).unwrap_or_default();
    let w = &cs["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn host(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn sub_path_of_an_empty_dir_shared_by_two_containers() {
    require_vm();
    let containers = container(
        "writer",
        &format!("echo from-writer > /part/file; {SLEEP}"),
        "    volumeMounts:\n    - {name: shared, mountPath: /part, subPath: a/b}\n",
    ) + &container(
        "reader",
        SLEEP,
        "    volumeMounts:\n    - {name: shared, mountPath: /all}\n",
    );
    let yaml = pod(
        "vol-subpath",
        &containers,
        "  volumes:\n  - name: shared\n    emptyDir: {}\n",
    );
    let pod_guard = start("vol-subpath", &yaml);
    let uid = pod_json("vol-subpath")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!uid.is_empty());
    let mut text = String::new();
    let seen = wait_for(
        || {
            text = sh("vol-subpath", "reader", "cat /all/a/b/file").1;
            text.trim() == "from-writer"
        },
        Duration::from_secs(20),
    );
    assert!(
        seen,
        "the reader does not see the writer's subPath file: {text:?}"
    );
    // The missing subPath was made with the volume's mode (0777).
    let (_, mode) = sh("vol-subpath", "reader", "stat -c %a /all/a /all/a/b");
    assert_eq!(mode.split_whitespace().collect::<Vec<_>>(), ["777", "777"]);
    // The writer sees only its subPath.
    let (code, _) = sh("vol-subpath", "writer", "test -e /part/a");
    assert_ne!(code, 0, "the writer sees the volume's root");
    // The subPath bind mount lives on the host while the pod does, and goes with it.
    let mounts = || host(&format!("grep 'pods/{uid}/' /proc/self/mountinfo || true"));
    assert!(
        mounts().contains("volume-subpaths/shared/writer/0"),
        "{}",
        mounts()
    );
    drop(pod_guard);
    assert_eq!(mounts().trim(), "", "mounts left behind");
    assert!(
        !lib_dir().join("pods").join(&uid).exists(),
        "pod dir left behind"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_symlink_out_of_the_volume_is_refused() {
    require_vm();
    let spec = format!(
        "  volumes:\n  - name: vol\n    emptyDir: {{}}\n  initContainers:\n{}",
        container(
            "plant",
            "ln -s / /vol/escape && ln -s /etc /vol/etc",
            "    volumeMounts:\n    - {name: vol, mountPath: /vol}\n"
        )
    );
    let yaml = pod(
        "vol-escape",
        &container(
            "app",
            "ls /escaped; sleep 3600",
            "    volumeMounts:\n    - {name: vol, mountPath: /escaped, subPath: escape}\n",
        ),
        &spec,
    );
    apply_ok(&yaml);
    let _pod = PodGuard("vol-escape".into());
    let expected = "failed to prepare subPath for volumeMount \"vol\" of container \"app\"";
    wait_until(
        "vol-escape",
        "the subPath refusal",
        || waiting("vol-escape", "app").1 == expected,
        RUNNING_TIMEOUT,
    );
    assert_eq!(waiting("vol-escape", "app").0, "CreateContainerConfigError");
    let describe = peapod_ok(&["describe", "pod", "vol-escape"]);
    assert!(
        describe.contains(&format!("Error: {expected}")),
        "no Failed event: {describe}"
    );
    // Still refused on the retries, and nothing of the host was mounted for the pod.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(phase("vol-escape"), "Pending");
    let uid = pod_json("vol-escape")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!uid.is_empty());
    let subpath_mounts = host(&format!(
        "grep 'pods/{uid}/volume-subpaths' /proc/self/mountinfo || true"
    ));
    assert!(
        subpath_mounts.trim().is_empty(),
        "a subPath mount exists: {subpath_mounts}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn sub_path_expr_expands_the_pod_name() {
    require_vm();
    let yaml = pod(
        "vol-expr",
        &container(
            "app",
            &format!("echo mine > /mine/f; {SLEEP}"),
            "    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: logs, mountPath: /mine, subPathExpr: $(POD_NAME)}
    - {name: logs, mountPath: /all}
",
        ),
        "  volumes:\n  - name: logs\n    emptyDir: {}\n",
    );
    let _pod = start("vol-expr", &yaml);
    let (code, out) = sh(
        "vol-expr",
        "app",
        "for i in $(seq 100); do [ -s /all/vol-expr/f ] && break; sleep 0.1; done; cat /all/vol-expr/f",
    );
    assert_eq!((code, out.trim()), (0, "mine"));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn read_only_mounts_refuse_writes_recursively_when_asked() {
    require_vm();
    // A host directory with a submount: readOnly alone leaves the submount writable,
    // recursiveReadOnly does not.
    let dir = "/tmp/vol-rro";
    host(&format!(
        "mkdir -p {dir}/sub && mount -t tmpfs rro-sub {dir}/sub"
    ));
    let yaml = pod(
        "vol-ro",
        &container(
            "app",
            SLEEP,
            "    volumeMounts:
    - {name: host, mountPath: /ro, readOnly: true}
    - {name: host, mountPath: /rro, readOnly: true, recursiveReadOnly: Enabled}
    - {name: scratch, mountPath: /scratch, readOnly: true}
",
        ),
        &format!(
            "  volumes:\n  - name: host\n    hostPath: {{path: {dir}}}\n  - name: scratch\n    emptyDir: {{}}\n"
        ),
    );
    let guard = start("vol-ro", &yaml);
    let (code, out) = sh("vol-ro", "app", "touch /scratch/x 2>&1");
    assert_ne!(code, 0, "a read-only emptyDir took a write");
    assert!(out.contains("Read-only file system"), "{out}");
    assert_ne!(sh("vol-ro", "app", "touch /ro/x").0, 0);
    assert_eq!(
        sh("vol-ro", "app", "touch /ro/sub/x").0,
        0,
        "plain ro is not recursive"
    );
    let (code, out) = sh("vol-ro", "app", "touch /rro/sub/y 2>&1");
    assert_ne!(code, 0, "recursiveReadOnly left the submount writable");
    assert!(out.contains("Read-only file system"), "{out}");
    drop(guard);
    host(&format!("umount {dir}/sub; rm -rf {dir}"));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn host_to_container_propagation_shows_later_host_mounts() {
    require_vm();
    let dir = "/tmp/vol-prop";
    host(&format!(
        "mkdir -p {dir} && mount --bind {dir} {dir} && mount --make-shared {dir}"
    ));
    let yaml = pod(
        "vol-prop",
        &container(
            "app",
            SLEEP,
            "    volumeMounts:
    - {name: h, mountPath: /h2c, mountPropagation: HostToContainer}
    - {name: h, mountPath: /private}
",
        ),
        &format!("  volumes:\n  - name: h\n    hostPath: {{path: {dir}}}\n"),
    );
    let guard = start("vol-prop", &yaml);
    host(&format!(
        "mkdir -p {dir}/late && mount -t tmpfs late {dir}/late && echo late > {dir}/late/f"
    ));
    let (code, out) = sh("vol-prop", "app", "cat /h2c/late/f");
    assert_eq!(
        (code, out.trim()),
        (0, "late"),
        "HostToContainer missed the host's mount"
    );
    let (code, _) = sh("vol-prop", "app", "cat /private/late/f");
    assert_ne!(code, 0, "a private mount received the host's later mount");
    drop(guard);
    host(&format!(
        "umount -l {dir}/late; umount -l {dir}; rm -rf {dir}"
    ));
}

/// The corpus manifest pods/security/security-context.yaml with the local busybox image.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn fs_group_owns_the_volume_and_joins_the_groups() {
    require_vm();
    let yaml = "apiVersion: v1
kind: Pod
metadata:
  name: security-context-demo
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    fsGroup: 2000
  volumes:
  - name: sec-ctx-vol
    emptyDir: {}
  containers:
  - name: sec-ctx-demo
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"sleep 1h\"]
    volumeMounts:
    - name: sec-ctx-vol
      mountPath: /data/demo
    securityContext:
      allowPrivilegeEscalation: false
";
    let _pod = start("security-context-demo", yaml);
    let run = |script: &str| sh("security-context-demo", "sec-ctx-demo", script);
    let (_, id) = run("id");
    assert_eq!(id.trim(), "uid=1000 gid=0(root) groups=0(root),2000");
    // The docs: the volume's group is 2000, and so is what the process creates in it.
    let (_, dir) = run("stat -c '%u %g %A' /data/demo");
    assert_eq!(dir.trim(), "0 2000 drwxrwsrwx");
    let (code, file) =
        run("echo hello > /data/demo/testfile && stat -c '%u %g' /data/demo/testfile");
    assert_eq!((code, file.trim()), (0, "1000 2000"));
}

/// The corpus manifest pods/security/security-context-6.yaml with the local busybox image:
/// Strict keeps only the pod's groups.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn supplemental_groups_policy_strict() {
    require_vm();
    let yaml = "apiVersion: v1
kind: Pod
metadata:
  name: security-context-strict
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    supplementalGroups: [4000]
    supplementalGroupsPolicy: Strict
  containers:
  - name: sec-ctx-demo
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [ \"sh\", \"-c\", \"sleep 1h\" ]
    securityContext:
      allowPrivilegeEscalation: false
";
    let _pod = start("security-context-strict", yaml);
    let (_, id) = sh("security-context-strict", "sec-ctx-demo", "id");
    assert_eq!(id.trim(), "uid=1000 gid=3000 groups=3000,4000");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn host_path_directory_or_create_makes_the_directory() {
    require_vm();
    let dir = "/tmp/vol-hostpath/made/here";
    host("rm -rf /tmp/vol-hostpath");
    let yaml = pod(
        "vol-hostpath",
        &container(
            "app",
            &format!("echo hi > /h/f; {SLEEP}"),
            "    volumeMounts:\n    - {name: h, mountPath: /h}\n",
        ),
        &format!(
            "  volumes:\n  - name: h\n    hostPath: {{path: {dir}, type: DirectoryOrCreate}}\n"
        ),
    );
    let _pod = start("vol-hostpath", &yaml);
    assert!(Path::new(dir).is_dir());
    assert_eq!(host(&format!("stat -c %a {dir}")).trim(), "755");
    wait_until(
        "vol-hostpath",
        "the file written through the hostPath",
        || Path::new(dir).join("f").exists(),
        Duration::from_secs(10),
    );
    host("rm -rf /tmp/vol-hostpath");
}

/// Until the supervisor sets volumes up before the sandbox (FailedMount events and retries),
/// a failed hostPath check surfaces as the container's configuration error; the kubelet's
/// text is the same.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn host_path_file_on_a_missing_path_keeps_the_pod_waiting() {
    require_vm();
    let path = "/tmp/vol-missing-file";
    host(&format!("rm -f {path}"));
    let yaml = pod(
        "vol-missing",
        &container(
            "app",
            SLEEP,
            "    volumeMounts:\n    - {name: f, mountPath: /f}\n",
        ),
        &format!("  volumes:\n  - name: f\n    hostPath: {{path: {path}, type: File}}\n"),
    );
    apply_ok(&yaml);
    let _pod = PodGuard("vol-missing".into());
    let text = format!("hostPath {path} doesn't exist");
    let describe = || peapod_ok(&["describe", "pod", "vol-missing"]);
    wait_until(
        "vol-missing",
        "the hostPath type check failure",
        || describe().contains(&text),
        RUNNING_TIMEOUT,
    );
    assert_eq!(phase("vol-missing"), "Pending");
    match waiting("vol-missing", "app").0.as_str() {
        // Volumes set up before the sandbox: the kubelet's FailedMount event.
        "ContainerCreating" => {
            let event = format!("MountVolume.SetUp failed for volume \"f\" : {text}");
            assert!(describe().contains(&event), "{}", describe());
        }
        reason => assert_eq!(reason, "CreateContainerConfigError"),
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn an_empty_dir_over_its_size_limit_evicts_the_pod() {
    require_vm();
    let yaml = pod(
        "vol-evict",
        &container(
            "app",
            &format!("dd if=/dev/zero of=/cache/fill bs=1M count=3; {SLEEP}"),
            "    volumeMounts:\n    - {name: cache, mountPath: /cache}\n",
        ),
        "  volumes:\n  - name: cache\n    emptyDir: {sizeLimit: 1Mi}\n",
    );
    apply_ok(&yaml);
    let _pod = PodGuard("vol-evict".into());
    wait_until(
        "vol-evict",
        "the eviction",
        || phase("vol-evict") == "Failed",
        RUNNING_TIMEOUT + Duration::from_secs(30),
    );
    let status = pod_json("vol-evict")["status"].clone();
    let message = "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". ";
    assert_eq!(status["reason"], "Evicted", "{status}");
    assert_eq!(status["message"], message, "{status}");
    wait_until(
        "vol-evict",
        "the container killed",
        || {
            container_status("vol-evict", "app")
                .is_some_and(|c| c["state"]["terminated"].is_object())
        },
        Duration::from_secs(20),
    );
    let describe = peapod_ok(&["describe", "pod", "vol-evict"]);
    assert!(describe.contains("Evicted"), "{describe}");
    // Not restarted, although restartPolicy is Always.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(restart_count("vol-evict", "app"), 0);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_volume_without_a_source_is_an_empty_dir() {
    require_vm();
    let yaml = pod(
        "vol-nosource",
        &container(
            "app",
            SLEEP,
            "    volumeMounts:\n    - {name: www, mountPath: /www}\n    - {name: tmp, mountPath: /scratch}\n",
        ),
        "  volumes:\n  - name: www\n  - name: tmp\n    emptyDir:\n      mode: 01777\n",
    );
    let _pod = start("vol-nosource", &yaml);
    let v = pod_json("vol-nosource")["spec"]["volumes"][0].clone();
    assert_eq!(v["emptyDir"], serde_json::json!({}), "{v}");
    let (code, out) = sh(
        "vol-nosource",
        "app",
        "echo ok > /www/f && cat /www/f && stat -c %a /www /scratch",
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["ok", "777", "1777"]
    );
}
