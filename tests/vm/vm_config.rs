//! ConfigMaps, Secrets and the downward API in pods, driven through the peapod CLI as a user
//! would: configMap/secret/downwardAPI/projected volumes with the kubelet's layout, updates
//! reaching running pods, env from objects, the kubelet's waiting reasons and events when an
//! object is missing, and `peapod label`/`annotate`. Runs only in the test VM
//! (`scripts/test`); every test uses its own pod and object names.

use crate::common;

use common::batch::sh_all;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long an object change may take to reach a running pod's files here (a debounce and a
/// write under TCG; the kubelet itself allows a sync period and a cache TTL).
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30);

/// ConfigMaps and Secrets applied from a file, deleted (`peapod delete -f`) when dropped.
struct Objects {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Objects {
    fn apply(yaml: &str) -> Objects {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let file = dir.path().join("objects.yaml");
        std::fs::write(&file, yaml).expect("cannot write the objects manifest");
        let objects = Objects { _dir: dir, file };
        objects.reapply(yaml);
        objects
    }

    /// `peapod apply -f` of a changed manifest; returns its stdout.
    fn reapply(&self, yaml: &str) -> String {
        std::fs::write(&self.file, yaml).expect("cannot write the objects manifest");
        peapod_ok(&["apply", "-f", self.path()])
    }

    fn path(&self) -> &str {
        self.file.to_str().expect("temporary path is not UTF-8")
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let _ = peapod(&["delete", "-f", self.path()]);
    }
}

fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}")
}

fn secret(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n{data}")
}

/// A busybox pod that sleeps, with `spec` lines added under `spec:` and `container` lines
/// under its one container.
fn pod(name: &str, container: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
{container}{spec}"
    )
}

fn start(name: &str, yaml: &str) -> PodGuard {
    apply_ok(yaml);
    let guard = PodGuard(name.to_string());
    wait_running(name);
    guard
}

/// `sh -c SCRIPT` in the pod's container; panics unless it exits 0.
fn sh(pod: &str, script: &str) -> String {
    let (code, out) = exec(pod, "app", &["sh", "-c", script]);
    assert_eq!(code, 0, "`{script}` failed in {pod}: {out}");
    out
}

/// The script that prints the container's main process environment, one variable a line.
const ENVIRON: &str = "tr '\\0' '\\n' < /proc/1/environ";

/// The container's main process environment, as the kernel holds it.
fn process_env(pod: &str) -> Vec<String> {
    env_lines(&sh(pod, ENVIRON))
}

fn env_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn describe(name: &str) -> String {
    peapod_ok(&["describe", "pod", name])
}

fn waiting(pod: &str) -> (String, String) {
    let c = container_status(pod, "app").unwrap_or_default();
    let w = &c["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// A file as the container (its process `pid`) sees it, read through its root (no exec nor
/// CLI run per poll).
fn container_file(pid: i32, path: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/root{path}")).unwrap_or_default()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn config_map_volume_has_the_kubelet_layout() {
    require_vm();
    let _cm = Objects::apply(&config_map(
        "layout-cfg",
        "  game.properties: |\n    lives=3\n    level=7\n  ui.properties: color=blue\n",
    ));
    let yaml = pod(
        "cm-layout",
        "    volumeMounts:\n    - {name: cfg, mountPath: /etc/config}\n",
        "  volumes:\n  - name: cfg\n    configMap: {name: layout-cfg}\n",
    );
    let _pod = start("cm-layout", &yaml);
    let out = sh_all(
        "cm-layout",
        "app",
        &[
            "ls -la /etc/config",
            "cat /etc/config/game.properties",
            "cat /etc/config/ui.properties",
            "stat -L -c %a /etc/config/ui.properties",
            // Mounted read-only whatever the volumeMount says, as the kubelet does.
            "! touch /etc/config/new 2>/dev/null # fails if the configMap volume is writable",
        ],
    );
    let ls = &out[0];
    assert!(ls.contains("..data -> ..20"), "no ..data link: {ls}");
    assert!(
        ls.contains("game.properties -> ..data/game.properties"),
        "no visible link: {ls}"
    );
    assert!(ls.contains("ui.properties -> ..data/ui.properties"), "{ls}");
    assert_eq!(out[1], "lives=3\nlevel=7\n");
    assert_eq!(out[2], "color=blue");
    assert_eq!(out[3].trim(), "644");
    // On the node's disk, at the kubelet's path.
    let uid = pod_json("cm-layout")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let host = lib_dir().join(format!(
        "pods/{uid}/volumes/kubernetes.io~configmap/cfg/..data/ui.properties"
    ));
    assert_eq!(
        std::fs::read_to_string(&host).unwrap_or_default(),
        "color=blue"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn items_modes_and_optional_sources() {
    require_vm();
    let _cm = Objects::apply(&format!(
        "{}---\n{}",
        config_map("items-cfg", "  a: alpha\n  b: beta\n"),
        secret("items-secret", "  token: t0k3n\n")
    ));
    let yaml = pod(
        "cm-items",
        "    volumeMounts:\n    - {name: picked, mountPath: /picked}\n    - {name: modes, mountPath: /modes}\n    - {name: absent, mountPath: /absent}\n    - {name: sec, mountPath: /sec}\n",
        "  volumes:\n  - name: picked\n    configMap:\n      name: items-cfg\n      items:\n      - {key: a, path: sub/a.txt, mode: 0400}\n  - name: modes\n    configMap: {name: items-cfg, defaultMode: 0640}\n  - name: absent\n    configMap: {name: no-such-cfg, optional: true}\n  - name: sec\n    secret:\n      secretName: items-secret\n      defaultMode: 0400\n      items: [{key: token, path: tok, mode: 0440}, {key: nope, path: n}]\n      optional: true\n",
    );
    let _pod = start("cm-items", &yaml);
    let out = sh_all(
        "cm-items",
        "app",
        &[
            "cat /picked/sub/a.txt",
            "stat -L -c %a /picked/sub/a.txt",
            "! test -e /picked/b # fails if a key left out of items was projected",
            "stat -L -c %a /modes/b",
            "ls /absent",
            "test -L /absent/..data",
            "cat /sec/tok",
            "stat -L -c %a /sec/tok",
            "ls /sec",
        ],
    );
    assert_eq!(out[0], "alpha");
    assert_eq!(out[1].trim(), "400");
    assert_eq!(out[3].trim(), "640");
    assert_eq!(out[4].trim(), "", "an optional missing object is empty");
    assert_eq!(out[6], "t0k3n");
    assert_eq!(out[7].trim(), "440");
    assert_eq!(out[8].trim(), "tok");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn config_map_update_reaches_the_volume_but_not_sub_path_or_env() {
    require_vm();
    let cm = Objects::apply(&config_map("update-cfg", "  key: v1\n"));
    let yaml = pod(
        "cm-update",
        "    env:\n    - name: KEY\n      valueFrom: {configMapKeyRef: {name: update-cfg, key: key}}\n    volumeMounts:\n    - {name: cfg, mountPath: /cfg}\n    - {name: cfg, mountPath: /one/key, subPath: key}\n",
        "  volumes:\n  - name: cfg\n    configMap: {name: update-cfg}\n",
    );
    let _pod = start("cm-update", &yaml);
    let out = sh_all("cm-update", "app", &["cat /cfg/key", "cat /one/key"]);
    assert_eq!(out, ["v1", "v1"]);
    let pid = container_pid("cm-update", "app");
    let out = cm.reapply(&config_map("update-cfg", "  key: v2\n  added: new\n"));
    assert!(out.contains("configmap/update-cfg configured"), "{out}");
    // As the kubelet's atomic writer, the volume swaps its `..data` link first (`key` reads v2)
    // and links the new key's name after it: both are waited for.
    let updated = wait_for(
        || container_file(pid, "/cfg/key") == "v2" && container_file(pid, "/cfg/added") == "new",
        UPDATE_TIMEOUT,
    );
    assert!(
        updated,
        "the volume still holds {:?}",
        container_file(pid, "/cfg/key")
    );
    let out = sh_all(
        "cm-update",
        "app",
        &["cat /cfg/added", "cat /one/key", ENVIRON],
    );
    assert_eq!(out[0], "new");
    assert_eq!(out[1], "v1", "a subPath mount never updates");
    assert!(
        env_lines(&out[2]).contains(&"KEY=v1".to_string()),
        "env values never update"
    );
    // A removed key's file goes too (the container's view, through its root: `added` is a
    // relative link into ..data).
    cm.reapply(&config_map("update-cfg", "  key: v3\n"));
    let added = PathBuf::from(format!("/proc/{pid}/root/cfg/added"));
    let pruned = wait_for(
        || container_file(pid, "/cfg/key") == "v3" && !added.exists(),
        UPDATE_TIMEOUT,
    );
    assert!(
        pruned,
        "stale entry kept: {}",
        sh("cm-update", "ls -la /cfg")
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn env_from_config_maps_and_secrets() {
    require_vm();
    let _objects = Objects::apply(&format!(
        "{}---\n{}",
        config_map("env-cfg", "  LEVEL: debug\n  mode: fast\n"),
        secret("env-secret", "  password: s3cr3t\n  USER: admin\n")
    ));
    let yaml = pod(
        "cm-env",
        "    envFrom:\n    - configMapRef: {name: env-cfg}\n      prefix: CFG_\n    - secretRef: {name: env-secret}\n    env:\n    - name: FROM_CM\n      valueFrom: {configMapKeyRef: {name: env-cfg, key: LEVEL}}\n    - name: FROM_SECRET\n      valueFrom: {secretKeyRef: {name: env-secret, key: password}}\n    - name: MISSING_OK\n      valueFrom: {configMapKeyRef: {name: env-cfg, key: nope, optional: true}}\n    - name: BOTH\n      value: $(CFG_LEVEL)-$(FROM_SECRET)\n",
        "",
    );
    let _pod = start("cm-env", &yaml);
    let env = process_env("cm-env");
    for want in [
        "CFG_LEVEL=debug",
        "CFG_mode=fast",
        "password=s3cr3t",
        "USER=admin",
        "FROM_CM=debug",
        "FROM_SECRET=s3cr3t",
        "BOTH=debug-s3cr3t",
    ] {
        assert!(env.contains(&want.to_string()), "no {want} in {env:?}");
    }
    assert!(!env.iter().any(|e| e.starts_with("MISSING_OK=")), "{env:?}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn secret_volume_is_a_read_only_tmpfs() {
    require_vm();
    let _s = Objects::apply(&secret("tmpfs-secret", "  password: s3cr3t\n"));
    let yaml = pod(
        "secret-tmpfs",
        "    volumeMounts:\n    - {name: sec, mountPath: /etc/secret}\n",
        "  volumes:\n  - name: sec\n    secret: {secretName: tmpfs-secret, defaultMode: 0400}\n",
    );
    let _pod = start("secret-tmpfs", &yaml);
    let out = sh_all(
        "secret-tmpfs",
        "app",
        &[
            "cat /etc/secret/password",
            "stat -L -c %a /etc/secret/password",
            "grep ' /etc/secret ' /proc/mounts",
        ],
    );
    assert_eq!(out[0], "s3cr3t");
    assert_eq!(out[1].trim(), "400");
    let mounts = &out[2];
    let fields: Vec<&str> = mounts.split_whitespace().collect();
    assert_eq!(fields.get(2), Some(&"tmpfs"), "{mounts}");
    assert!(
        fields
            .get(3)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "{mounts}"
    );
    // On the node too: a tmpfs at the kubelet's path, never the disk.
    let uid = pod_json("secret-tmpfs")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = format!("/pods/{uid}/volumes/kubernetes.io~secret/sec ");
    assert!(
        host.lines()
            .any(|l| l.contains(&dir) && l.contains(" - tmpfs ")),
        "no tmpfs at {dir} on the node:\n{host}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn downward_api_files_follow_label_and_annotate() {
    require_vm();
    let yaml = pod(
        "dapi-label",
        "    volumeMounts:\n    - {name: podinfo, mountPath: /etc/podinfo}\n",
        "  volumes:\n  - name: podinfo\n    downwardAPI:\n      items:\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}\n      - {path: name, fieldRef: {fieldPath: metadata.name}}\n",
    );
    let _pod = start("dapi-label", &yaml);
    let out = sh_all(
        "dapi-label",
        "app",
        &[
            "cat /etc/podinfo/labels",
            "cat /etc/podinfo/name",
            "cat /etc/podinfo/annotations",
        ],
    );
    assert_eq!(out, ["app=\"dapi-label\"", "dapi-label", ""]);
    let pid = container_pid("dapi-label", "app");

    let out = peapod_ok(&["label", "pod", "dapi-label", "tier=db"]);
    assert_eq!(out, "pod/dapi-label labeled\n");
    let want = "app=\"dapi-label\"\ntier=\"db\"";
    let seen = wait_for(
        || container_file(pid, "/etc/podinfo/labels") == want,
        UPDATE_TIMEOUT,
    );
    assert!(
        seen,
        "labels file: {:?}",
        container_file(pid, "/etc/podinfo/labels")
    );
    let labels = &pod_json("dapi-label")["metadata"]["labels"];
    assert_eq!(labels["tier"], "db", "{labels}");

    let out = peapod(&["label", "pod", "dapi-label", "tier=web"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: 'tier' already has a value (db), and --overwrite is false"
    );
    let out = peapod_ok(&["label", "--overwrite", "pod/dapi-label", "tier=web"]);
    assert_eq!(out, "pod/dapi-label labeled\n");

    let out = peapod_ok(&["annotate", "pod", "dapi-label", "note=hello \"world\""]);
    assert_eq!(out, "pod/dapi-label annotated\n");
    let seen = wait_for(
        || container_file(pid, "/etc/podinfo/annotations") == "note=\"hello \\\"world\\\"\"",
        UPDATE_TIMEOUT,
    );
    assert!(
        seen,
        "annotations file: {:?}",
        container_file(pid, "/etc/podinfo/annotations")
    );
    let out = peapod(&["annotate", "pod", "dapi-label", "note=other"]);
    assert_eq!(
        stderr(&out).trim(),
        "error: --overwrite is false but found the following declared annotation(s): 'note' already has a value (hello \"world\")"
    );
    let out = peapod_ok(&["label", "pod", "dapi-label", "tier-"]);
    assert_eq!(out, "pod/dapi-label unlabeled\n");
    let seen = wait_for(
        || container_file(pid, "/etc/podinfo/labels") == "app=\"dapi-label\"",
        UPDATE_TIMEOUT,
    );
    assert!(seen, "the removed label is still shown");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn projected_volume_combines_its_sources() {
    require_vm();
    let _objects = Objects::apply(&format!(
        "{}---\n{}",
        config_map("proj-cfg", "  setting: on\n"),
        secret("proj-secret", "  key: k3y\n")
    ));
    let yaml = pod(
        "projected",
        "    volumeMounts:\n    - {name: all, mountPath: /projected}\n",
        "  volumes:\n  - name: all\n    projected:\n      defaultMode: 0440\n      sources:\n      - configMap:\n          name: proj-cfg\n          items: [{key: setting, path: conf/setting}]\n      - secret:\n          name: proj-secret\n          items: [{key: key, path: secret/key, mode: 0400}]\n      - downwardAPI:\n          items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]\n",
    );
    let _pod = start("projected", &yaml);
    let out = sh_all(
        "projected",
        "app",
        &[
            "cat /projected/conf/setting",
            "cat /projected/secret/key",
            "cat /projected/labels",
            "stat -L -c %a /projected/conf/setting",
            "stat -L -c %a /projected/secret/key",
            "grep ' /projected ' /proc/mounts",
        ],
    );
    assert_eq!(out[0], "on");
    assert_eq!(out[1], "k3y");
    assert_eq!(out[2], "app=\"projected\"");
    assert_eq!(out[3].trim(), "440");
    assert_eq!(out[4].trim(), "400");
    let mounts = &out[5];
    assert!(mounts.contains(" tmpfs "), "{mounts}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn missing_env_object_waits_in_create_container_config_error_then_recovers() {
    require_vm();
    let yaml = pod(
        "env-missing",
        "    env:\n    - name: LEVEL\n      valueFrom: {configMapKeyRef: {name: late-env-cfg, key: LEVEL}}\n",
        "",
    );
    apply_ok(&yaml);
    let _pod = PodGuard("env-missing".into());
    wait_until(
        "env-missing",
        "CreateContainerConfigError",
        || waiting("env-missing").0 == "CreateContainerConfigError",
        RUNNING_TIMEOUT,
    );
    assert_eq!(
        waiting("env-missing").1,
        "configmap \"late-env-cfg\" not found"
    );
    assert_eq!(status_column("env-missing"), "CreateContainerConfigError");
    let text = describe("env-missing");
    assert!(
        text.contains("Error: configmap \"late-env-cfg\" not found"),
        "no Failed event:\n{text}"
    );
    // The object without the key: the kubelet's other message.
    let cm = Objects::apply(&config_map("late-env-cfg", "  other: x\n"));
    wait_until(
        "env-missing",
        "the missing key message",
        || waiting("env-missing").1 == "couldn't find key LEVEL in ConfigMap default/late-env-cfg",
        UPDATE_TIMEOUT,
    );
    cm.reapply(&config_map("late-env-cfg", "  LEVEL: info\n"));
    wait_running("env-missing");
    assert!(process_env("env-missing").contains(&"LEVEL=info".to_string()));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn missing_volume_object_keeps_the_pod_creating_then_recovers() {
    require_vm();
    let yaml = pod(
        "vol-missing",
        "    volumeMounts:\n    - {name: cfg, mountPath: /cfg}\n",
        "  volumes:\n  - name: cfg\n    configMap: {name: late-vol-cfg}\n",
    );
    apply_ok(&yaml);
    let _pod = PodGuard("vol-missing".into());
    let message =
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"late-vol-cfg\" not found";
    wait_until(
        "vol-missing",
        "a FailedMount event",
        || describe("vol-missing").contains(message),
        RUNNING_TIMEOUT,
    );
    let text = describe("vol-missing");
    assert!(text.contains("FailedMount"), "{text}");
    assert_eq!(status_column("vol-missing"), "ContainerCreating");
    assert_eq!(phase("vol-missing"), "Pending");
    assert_eq!(waiting("vol-missing").0, "ContainerCreating");
    assert!(
        pod_ip("vol-missing").is_none(),
        "a sandbox was made before the volumes"
    );
    let _cm = Objects::apply(&config_map("late-vol-cfg", "  key: here\n"));
    wait_running("vol-missing");
    assert_eq!(sh("vol-missing", "cat /cfg/key"), "here");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn downward_api_tutorial_pod_prints_its_labels_and_annotations() {
    require_vm();
    let text = DAPI_VOLUME;
    let yaml = text.replace(
        "image: \"registry.k8s.io/busybox:1.27.2\",",
        "image: \"busybox\", imagePullPolicy: \"IfNotPresent\",",
    );
    assert!(
        yaml.contains("\"busybox\""),
        "the image line changed: {yaml}"
    );
    let name = "kubernetes-downwardapi-volume-example";
    let _pod = start(name, &yaml);
    let want = "cluster=\"test-cluster1\"\nrack=\"rack-22\"\nzone=\"us-est-coast\"\n\nbuild=\"two\"\nbuilder=\"john-doe\"";
    let printed = wait_for(
        || peapod_ok(&["logs", name]).contains(want),
        Duration::from_secs(30),
    );
    assert!(printed, "logs:\n{}", peapod_ok(&["logs", name]));
}

/// kubernetes/website content/en/examples/pods/inject/dapi-volume.yaml from the shared pod
/// corpus (next to the project, as for the corpus tests), built in: the VM has no copy.
const DAPI_VOLUME: &str =
    include_str!("../../../shared/pod-corpus/k8s-website/pods/inject/dapi-volume.yaml");

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn delete_leaves_no_volume_behind() {
    require_vm();
    let before = leftovers();
    let objects = Objects::apply(&format!(
        "{}---\n{}",
        config_map("gone-cfg", "  a: b\n"),
        secret("gone-secret", "  c: d\n")
    ));
    let yaml = pod(
        "vol-gone",
        "    volumeMounts:\n    - {name: cfg, mountPath: /cfg}\n    - {name: sec, mountPath: /sec}\n    - {name: info, mountPath: /info}\n    - {name: all, mountPath: /all}\n",
        "  volumes:\n  - name: cfg\n    configMap: {name: gone-cfg}\n  - name: sec\n    secret: {secretName: gone-secret}\n  - name: info\n    downwardAPI: {items: [{path: n, fieldRef: {fieldPath: metadata.name}}]}\n  - name: all\n    projected: {sources: [{secret: {name: gone-secret}}]}\n",
    );
    apply_ok(&yaml);
    wait_running("vol-gone");
    let out = peapod(&["delete", "pod", "vol-gone", "--grace-period", "1"]);
    assert!(out.status.success(), "delete failed: {}", stderr(&out));
    assert_eq!(leftovers(), before, "delete left volumes behind");
    drop(objects);
}

/// The time from `peapod apply` of a changed ConfigMap to the new content in a running pod's
/// file, ten times; prints the median (a measurement, not an assertion on time).
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn config_map_update_latency() {
    require_vm();
    let cm = Objects::apply(&config_map("latency-cfg", "  n: \"0\"\n"));
    let yaml = pod(
        "cm-latency",
        "    volumeMounts:\n    - {name: cfg, mountPath: /cfg}\n",
        "  volumes:\n  - name: cfg\n    configMap: {name: latency-cfg}\n",
    );
    let _pod = start("cm-latency", &yaml);
    let pid = container_pid("cm-latency", "app");
    let file = format!("/proc/{pid}/root/cfg/n");
    let mut samples = Vec::new();
    let mut applies = Vec::new();
    for i in 1..=10 {
        let want = i.to_string();
        std::fs::write(
            &cm.file,
            config_map("latency-cfg", &format!("  n: \"{want}\"\n")),
        )
        .expect("cannot write the manifest");
        let t0 = Instant::now();
        let out = peapod(&["apply", "-f", cm.path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        applies.push(t0.elapsed());
        let seen = wait_for_fast(|| std::fs::read_to_string(&file).is_ok_and(|s| s == want));
        assert!(seen, "update {i} never arrived");
        samples.push(t0.elapsed());
    }
    samples.sort();
    applies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = |v: &[Duration]| ms((v[4] + v[5]) / 2);
    eprintln!(
        "configmap update latency (apply -> file in the pod), 10 runs: median {:.0} ms, \
         min {:.0} ms, max {:.0} ms; of which `peapod apply` itself: median {:.0} ms",
        median(&samples),
        ms(samples[0]),
        ms(samples[9]),
        median(&applies)
    );
}

/// Polls every 2 ms for up to [`UPDATE_TIMEOUT`].
fn wait_for_fast(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}
