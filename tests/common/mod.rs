//! The harness of peapod's privileged integration tests.
//!
//! These tests create bridges, veths, mounts and cgroups, so they run only inside the throwaway
//! test VM that `scripts/test` boots (see `scripts/vm/README.md`). On the host they are
//! `#[ignore]`d, and [`require_vm`] stops them even under `--ignored` unless the VM said so.
//!
//! The VM lays out its inputs like this and passes them through the environment:
//! - `PEAPOD_VM_TESTS=1`: set only by the VM's test runner.
//! - `PEAPOD_BIN=/peapod/bin/peapod`: the CLI under test.
//! - `PEAPOD_TEST_IMAGE=/peapod/images/busybox`: an OCI layout of the busybox image; the harness
//!   loads it once per test process with `peapod load`, after which pods use `image: busybox`.
//! - the test binaries themselves sit in `/peapod/tests/` (`vm`, whose modules are the subjects, and `probe_fork`).
//!
//! Every helper that acts drives the real `peapod` binary, as a user would. The helpers that read
//! a pod's status ([`try_pod_json`] and those built on it) read it in this process through the
//! library function `peapod get pods -o json` prints from: see [`try_pod_json`].

// Each test binary uses only some of the helpers.
#![allow(dead_code)]

// The host-side registry tests (tests/registry_*.rs): a local registry, its images, a cutting
// proxy and a peapod runner with throwaway state. They need no VM.
pub mod cli;
pub mod proxy;
pub mod pull;
pub mod registry;
// The VM-side fault and soak suites' accounting, and the registry inside the VM.
pub mod accounting;
// The shared pod corpus (registry_corpus, vm_corpus).
pub mod corpus;
// A simulated reboot (vm_recovery, vm_cri).
pub mod reboot;
pub mod vm_registry;
// Several checks in one exec (vm_config, vm_net).
pub mod batch;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The environment variable that marks a run inside the test VM.
pub const VM_TESTS_ENV: &str = "PEAPOD_VM_TESTS";
/// The environment variable naming the peapod binary under test.
pub const BIN_ENV: &str = "PEAPOD_BIN";
/// The environment variable naming the OCI layout of the busybox test image.
pub const IMAGE_ENV: &str = "PEAPOD_TEST_IMAGE";
/// Where the VM puts the peapod binary when `PEAPOD_BIN` is unset.
pub const DEFAULT_BIN: &str = "/peapod/bin/peapod";
/// Where the VM puts the busybox OCI layout when `PEAPOD_TEST_IMAGE` is unset.
pub const DEFAULT_IMAGE: &str = "/peapod/images/busybox";
/// iproute2's `ip`, by full path: busybox's `ip` ignores `peer name`.
pub const IP: &str = "/usr/sbin/ip";
/// peapod's persistent state (images, pods); `PEAPOD_LIB_DIR` overrides it.
pub const LIB_DIR: &str = "/var/lib/peapod";
/// peapod's runtime state (sockets, locks).
pub const RUN_DIR: &str = "/run/peapod";
/// The cgroup under which peapod puts its pods.
pub const CGROUP_DIR: &str = "/sys/fs/cgroup/peapod";
/// The same on a hybrid host, where peapod's cgroups live in the unified (cgroup2) mount.
pub const HYBRID_CGROUP_DIR: &str = "/sys/fs/cgroup/unified/peapod";
/// How long a pod may take to reach Running under QEMU's software emulation.
pub const RUNNING_TIMEOUT: Duration = Duration::from_secs(60);

/// Stops the test unless it runs inside the test VM (`PEAPOD_VM_TESTS=1`).
pub fn require_vm() {
    if std::env::var(VM_TESTS_ENV).as_deref() != Ok("1") {
        panic!(
            "this test needs root and makes bridges, mounts and cgroups: it runs only in the \
             throwaway test VM. Run `scripts/test` (or see scripts/vm/README.md); \
             {VM_TESTS_ENV}=1 is set there"
        );
    }
    load_test_image();
}

/// The peapod binary under test.
pub fn peapod_bin() -> PathBuf {
    std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_BIN.into())
}

/// Runs `peapod ARGS...` and returns its output; logs the call and its result.
pub fn peapod(args: &[&str]) -> Output {
    peapod_env(args, &[])
}

/// [`peapod`] with more environment variables (another `PEAPOD_LIB_DIR`, ...).
pub fn peapod_env(args: &[&str], env: &[(&str, PathBuf)]) -> Output {
    let out = Command::new(peapod_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", peapod_bin().display()));
    eprintln!(
        "$ {}peapod {} -> {}\n{}{}",
        env.iter()
            .map(|(k, v)| format!("{k}={} ", v.display()))
            .collect::<String>(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `peapod ARGS...`, panics unless it exits 0, and returns its stdout.
pub fn peapod_ok(args: &[&str]) -> String {
    expect_ok(args, peapod(args))
}

/// The stdout of `peapod ARGS...`; panics with its stderr unless it exited 0.
pub fn expect_ok(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "peapod {} failed: {}",
        args.join(" "),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a command, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Loads the busybox test image once per test process (`peapod load <layout>`).
pub fn load_test_image() {
    static LOAD: Once = Once::new();
    LOAD.call_once(|| {
        let layout = std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
        assert!(
            std::path::Path::new(&layout).exists(),
            "test image {layout} is missing: scripts/build-image makes it, scripts/test copies it"
        );
        peapod_ok(&["load", &layout]);
    });
}

/// Writes `yaml` to a temporary file and runs `peapod apply -f` on it.
pub fn apply_yaml(yaml: &str) -> Output {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, yaml).expect("cannot write the pod manifest");
    peapod(&[
        "apply",
        "-f",
        path.to_str().expect("temporary path is not UTF-8"),
    ])
}

/// Applies `yaml` and panics unless peapod accepts it.
pub fn apply_ok(yaml: &str) {
    let out = apply_yaml(yaml);
    assert!(
        out.status.success(),
        "peapod apply failed: {}",
        stderr(&out)
    );
}

/// How often [`wait_for`] looks whether peapod's pod state or container logs changed.
const WAIT_TICK: Duration = Duration::from_millis(100);
/// The longest [`wait_for`] goes without evaluating its condition while nothing changed (for
/// conditions that depend on something else: a container's files, the network, the clock).
const WAIT_RECHECK: Duration = Duration::from_secs(1);

/// Evaluates `cond` until it holds; false if `timeout` passes first (it is evaluated once more
/// at the deadline). Some conditions run the CLI (`column`, `exec`), and each `peapod` run costs
/// the emulated VM 70-100 ms of CPU, which the pods under test need: `cond` is evaluated again
/// as soon as a file of peapod's pod state or container logs changes, and otherwise once a
/// second.
pub fn wait_for(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut seen = None;
    let mut evaluated = Instant::now();
    loop {
        let now = Instant::now();
        let state = state_fingerprint();
        if seen != Some(state) || now >= evaluated + WAIT_RECHECK || now >= deadline {
            seen = Some(state);
            evaluated = now;
            if cond() {
                return true;
            }
            if now >= deadline {
                return false;
            }
        }
        std::thread::sleep(WAIT_TICK.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// A hash of the identity, size and modification time of every file and directory of the pod
/// state (`<lib>/pods`, two levels into each pod) and the container logs (`<log>/*/*/*`).
/// peapod writes state by renaming new files into place, so any change shows.
fn state_fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, depth: u32, h: &mut impl Hasher) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()).hash(h);
            if depth > 0 && meta.is_dir() {
                walk(&entry.path(), depth - 1, h);
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (dir, depth) in [(lib_dir().join("pods"), 2), (accounting::log_dir(), 2)] {
        if let Ok(meta) = std::fs::metadata(&dir) {
            (meta.ino(), meta.mtime(), meta.mtime_nsec()).hash(&mut h);
        }
        walk(&dir, depth, &mut h);
    }
    h.finish()
}

/// Like [`wait_for`], but panics with `what` and the pod's last state on timeout.
pub fn wait_until(pod: &str, what: &str, cond: impl FnMut() -> bool, timeout: Duration) {
    if !wait_for(cond, timeout) {
        let state = try_pod_json(pod).map(|v| v.to_string()).unwrap_or_default();
        panic!("pod {pod}: timed out after {timeout:?} waiting for {what}; pod: {state}");
    }
}

/// The pod of the default namespace as `peapod get pods NAME -o json` shows it, or None if it
/// is not on record. Read in this process with the function that command prints from
/// (`peapod::cli::pod_object` over the pod's files): the helpers below poll it many times per
/// test, and an exec of the debug CLI costs the emulated VM 70-100 ms of CPU (half the guest's
/// work when every poll ran one). What the CLI prints is asserted through the binary (`column`,
/// `peapod_ok(&["get", ...])`, and the cli_* and vm_cli tests).
pub fn try_pod_json(name: &str) -> Option<serde_json::Value> {
    let paths = peapod::store::Paths::from_env();
    let rec = peapod::pod::record::find(&paths, "default", name).ok()??;
    serde_json::to_value(peapod::cli::pod_object(&rec)).ok()
}

/// The pod as JSON (see [`try_pod_json`]); panics if it is not on record.
pub fn pod_json(name: &str) -> serde_json::Value {
    try_pod_json(name).unwrap_or_else(|| panic!("pod {name} is not on record"))
}

/// `status.phase` of the pod, or "" if unknown.
pub fn phase(name: &str) -> String {
    try_pod_json(name)
        .and_then(|v| v["status"]["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `status.podIP` of the pod, once it has one.
pub fn pod_ip(name: &str) -> Option<String> {
    try_pod_json(name)?["status"]["podIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The `containerStatuses[]` entry of `container`, if present.
pub fn container_status(pod: &str, container: &str) -> Option<serde_json::Value> {
    let v = try_pod_json(pod)?;
    v["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)
        .cloned()
}

/// The `initContainerStatuses[]` entry of `container`.
pub fn init_status(pod: &str, container: &str) -> Option<serde_json::Value> {
    let v = try_pod_json(pod)?;
    v["status"]["initContainerStatuses"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)
        .cloned()
}

/// A column of `peapod get pods NAME` (READY, STATUS, RESTARTS...), or "" if the pod is not
/// listed.
pub fn column(name: &str, header: &str) -> String {
    let out = peapod(&["get", "pods", name]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let headers: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let Some(col) = headers.iter().position(|h| *h == header) else {
        return String::new();
    };
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name))
        .and_then(|cols| cols.get(col).map(|s| s.to_string()))
        .unwrap_or_default()
}

/// The pod's events as (reason, message) pairs, from its events.json.
pub fn events(pod: &str) -> Vec<(String, String)> {
    let uid = pod_json(pod)["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let path = lib_dir().join("pods").join(uid).join("events.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    list.iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Whether the pod has an event with this reason whose message contains `message`.
pub fn has_event(pod: &str, reason: &str, message: &str) -> bool {
    events(pod)
        .iter()
        .any(|(r, m)| r == reason && m.contains(message))
}

/// The pod's condition of this type (`Ready`, `Initialized`...), or null.
pub fn condition(pod: &str, type_: &str) -> serde_json::Value {
    pod_json(pod)["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or_default()
}

/// `restartCount` of `container` (0 when unknown).
pub fn restart_count(pod: &str, container: &str) -> u64 {
    container_status(pod, container)
        .and_then(|c| c["restartCount"].as_u64())
        .unwrap_or(0)
}

/// The STATUS column of `peapod get pods NAME`, or "" if the pod is not listed.
pub fn status_column(name: &str) -> String {
    column(name, "STATUS")
}

/// Waits until the pod's phase is Running and all its containers are running.
pub fn wait_running(name: &str) {
    wait_until(
        name,
        "phase Running",
        || {
            try_pod_json(name).is_some_and(|v| {
                v["status"]["phase"] == "Running"
                    && v["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|cs| {
                            !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
                        })
            })
        },
        RUNNING_TIMEOUT,
    );
}

/// Runs `peapod exec POD -c CONTAINER -- CMD...`; returns (exit code, stdout).
pub fn exec(pod: &str, container: &str, cmd: &[&str]) -> (i32, String) {
    let mut args = vec!["exec", pod, "-c", container, "--"];
    args.extend_from_slice(cmd);
    let out = peapod(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Deletes the pod at once (`--grace-period 0 --force`); returns peapod's output.
pub fn delete(name: &str) -> Output {
    peapod(&["delete", "pod", name, "--grace-period", "0", "--force"])
}

/// peapod's persistent state directory.
pub fn lib_dir() -> PathBuf {
    std::env::var_os("PEAPOD_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| LIB_DIR.into())
}

/// peapod's runtime state directory.
pub fn run_dir() -> PathBuf {
    std::env::var_os("PEAPOD_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| RUN_DIR.into())
}

/// The IP allocations (`<run>/network/ipam.json`: runtime state, gone with a reboot).
pub fn ipam_file() -> PathBuf {
    run_dir().join("network/ipam.json")
}

/// The pod's `state.json` (`<lib>/pods/<uid>/state.json`).
pub fn pod_state(name: &str) -> serde_json::Value {
    let uid = pod_json(name)["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!uid.is_empty(), "pod {name} has no metadata.uid");
    let path = lib_dir().join("pods").join(&uid).join("state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {}: {e}", path.display()))
}

/// Host pid of a container's process, from the pod's state.json.
pub fn container_pid(pod: &str, container: &str) -> i32 {
    let state = pod_state(pod);
    let pid = state["containers"][container]["process"]["pid"].as_i64();
    pid.unwrap_or_else(|| panic!("no pid for container {container} of {pod} in state: {state}"))
        as i32
}

/// Host pid of the pod's sandbox (pause) process, from the pod's state.json.
pub fn sandbox_pid(pod: &str) -> i32 {
    let state = pod_state(pod);
    state["sandbox"]["process"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no sandbox pid for {pod} in state: {state}")) as i32
}

/// Sends `signal` (e.g. "KILL", "TERM") to a host pid with the `kill` command.
pub fn kill(pid: i32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// The cgroup v2 directory of a host pid (from `/proc/<pid>/cgroup`).
pub fn cgroup_of(pid: i32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/cgroup: {e}"));
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("pid {pid} has no cgroup v2 entry: {text}"));
    PathBuf::from(format!("/sys/fs/cgroup{rel}"))
}

/// The environment variable `scripts/test` sets when another lane of test binaries runs
/// beside this one: the other lanes' `PEAPOD_LIB_DIR`s, `:`-separated. Their pods share this
/// VM's cgroup root and links, so [`leftovers`] leaves theirs out.
pub const OTHER_LANES_ENV: &str = "PEAPOD_TEST_OTHER_LIB_DIRS";

/// Everything peapod may leave behind on the host: links, mounts, pod cgroups, pod dirs.
/// What belongs to a pod of another lane of tests running at the same time is not counted.
pub fn leftovers() -> Vec<String> {
    // Another lane's pod dir exists before its cgroup and link are made and goes only after
    // they are removed: read before the residue, it misses a pod made meanwhile; read after,
    // one deleted meanwhile (seen here as a stray link). Both reads together miss only a pod
    // whose whole life fits in this function.
    let mut others = other_lanes_pods();
    let mut found: Vec<(Option<String>, String)> = Vec::new();
    if let Ok(out) = Command::new(IP).args(["-o", "link"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split(':').nth(1).unwrap_or("").trim();
            let name = name.split('@').next().unwrap_or(name);
            // the bridge itself is shared by all pods and may stay
            if (name.starts_with("pp") || name.contains("peapod")) && !is_bridge(name) {
                let owner = name.strip_prefix("pp").map(str::to_string);
                found.push((owner, format!("link {name}")));
            }
        }
    }
    let lib = lib_dir();
    let lib = format!("{}/", lib.to_string_lossy().trim_end_matches('/'));
    let run = std::env::var("PEAPOD_RUN_DIR").unwrap_or_else(|_| RUN_DIR.into());
    let run = format!("{}/", run.trim_end_matches('/'));
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            let mnt = line.split(' ').nth(4).unwrap_or("");
            if mnt.starts_with(&lib) || mnt.starts_with(&run) {
                found.push((None, format!("mount {mnt}")));
            }
        }
    }
    for dir in [CGROUP_DIR, HYBRID_CGROUP_DIR] {
        for d in dir_entries(dir, "pod-") {
            let uid = d.rsplit("/pod-").next().map(str::to_string);
            found.push((uid, format!("cgroup {d}")));
        }
    }
    let pods = lib_dir().join("pods");
    found.extend(
        dir_entries(&pods.to_string_lossy(), "")
            .into_iter()
            .map(|d| (None, format!("pod dir {d}"))),
    );
    others.extend(other_lanes_pods());
    found
        .into_iter()
        .filter(|(owner, _)| {
            let owner = owner.as_deref().map(|o| o.replace('-', ""));
            !owner.is_some_and(|o| others.iter().any(|u| u.starts_with(&o)))
        })
        .map(|(_, what)| what)
        .collect()
}

/// The UIDs of the pods of the other lanes (`PEAPOD_TEST_OTHER_LIB_DIRS`), the ones being made
/// or removed included (`.new-<uid>-<pid>`, `.gone-<uid>-<pid>`), without dashes (a veth is
/// named from the first hex digits of one).
pub fn other_lanes_pods() -> Vec<String> {
    let mut uids = Vec::new();
    for dir in other_lib_dirs() {
        let Ok(rd) = std::fs::read_dir(dir.join("pods")) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let uid = name
                .strip_prefix(".new-")
                .or_else(|| name.strip_prefix(".gone-"))
                .map(|rest| rest.rsplit_once('-').map_or(rest, |(uid, _pid)| uid))
                .unwrap_or(&name);
            uids.push(uid.replace('-', ""));
        }
    }
    uids
}

/// The other lanes' state directories (`PEAPOD_TEST_OTHER_LIB_DIRS`). One `*` in an entry
/// stands for any name of one path component (`/tmp/peapod-full-*/lib`: the small disks of
/// vm_faults, each a state directory of its own) and expands to the directories that exist.
pub fn other_lib_dirs() -> Vec<PathBuf> {
    let Ok(dirs) = std::env::var(OTHER_LANES_ENV) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dirs.split(':').filter(|d| !d.is_empty()) {
        let Some((head, tail)) = entry.split_once('*') else {
            out.push(PathBuf::from(entry));
            continue;
        };
        // head = "<parent>/<prefix>", tail = "<suffix>[/<rest>]"
        let (parent, prefix) = head.rsplit_once('/').unwrap_or((".", head));
        let (suffix, rest) = tail.split_once('/').unwrap_or((tail, ""));
        let Ok(rd) = std::fs::read_dir(if parent.is_empty() { "/" } else { parent }) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
            {
                out.push(e.path().join(rest));
            }
        }
    }
    out
}

fn is_bridge(link: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{link}/bridge")).exists()
}

fn dir_entries(dir: &str, prefix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// A one-container busybox pod running `cmd` under `sh -c`.
pub fn pod_yaml(name: &str, policy: &str, extra: &str, cmd: &str) -> String {
    pod_of(name, policy, 2, &(container_entry("app", cmd) + extra), "")
}

/// One busybox container list entry named `name`, running `cmd` under `sh -c`.
pub fn container_entry(name: &str, cmd: &str) -> String {
    format!(
        "  - name: {name}
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", {cmd:?}]
"
    )
}

/// A pod of `containers` (list entries, already formatted) with `grace` seconds to stop, and
/// `rest`: more spec fields, indented by two spaces.
pub fn pod_of(name: &str, policy: &str, grace: u32, containers: &str, rest: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: {grace}
  containers:
{containers}{rest}"
    )
}

/// Applies `yaml` (a pod named `name`) and waits until it runs; deleted when the guard goes.
pub fn start_pod(name: &str, yaml: &str) -> PodGuard {
    apply_ok(yaml);
    let guard = PodGuard(name.to_string());
    wait_running(name);
    guard
}

/// A pod that is force-deleted when the test ends, even by panic.
pub struct PodGuard(pub String);

impl Drop for PodGuard {
    fn drop(&mut self) {
        let _ = delete(&self.0);
    }
}

/// The connected ends of the attach sockets (`attach.sock`) of the pods under this
/// environment's run directory, by socket inode, from /proc/net/unix: one per attach client a
/// supervisor has accepted (a listener is not counted, nor another lane's pods).
pub fn attach_connections() -> BTreeSet<u64> {
    let run = peapod::store::Paths::from_env().run;
    std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path; St 03: connected.
            let ours = fields.len() >= 8
                && fields[5] == "03"
                && fields[7].ends_with("/attach.sock")
                && Path::new(fields[7]).starts_with(&run);
            ours.then(|| fields[6].parse().ok()).flatten()
        })
        .collect()
}

/// Waits (asynchronously, up to 30 s) until `count` attach clients that were not connected in
/// `before` are connected to their supervisors, so that output made after it reaches them (a
/// supervisor sends output only to the clients attached when it comes). New connections are
/// counted, not a total: a client of an earlier test may leave meanwhile.
pub async fn await_attach_connections(before: &BTreeSet<u64>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while attach_connections().difference(before).count() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The accept is seen; the supervisor registers the client in the same poll round.
    tokio::time::sleep(Duration::from_millis(300)).await;
}
