//! PersistentVolumeClaims on one host: a claim waits for its first pod, binds to a directory
//! of the local-path provisioner, outlives its pods, is protected while in use, and takes its
//! data with it when deleted; generic ephemeral volumes get a claim owned by their pod.
//! Driven through the peapod CLI in the test VM (`scripts/test`); own object names per test.

use crate::common;

use common::*;
use std::time::Duration;

fn claim_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 100Mi
"
    )
}

/// A busybox pod mounting claim `claim` at /data and running `cmd`.
fn pod_yaml(name: &str, claim: &str, read_only: bool, cmd: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", {cmd:?}]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: {claim}
      readOnly: {read_only}
"
    )
}

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The claim as JSON, or None when it does not exist.
fn claim_json(name: &str) -> Option<serde_json::Value> {
    let out = peapod(&["get", "pvc", name, "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn claim_phase(name: &str) -> String {
    claim_json(name)
        .and_then(|c| c["status"]["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Deletes a claim (best effort) when the test ends.
struct ClaimGuard(&'static str);

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let _ = peapod(&["delete", "pvc", self.0]);
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn claim_binds_on_first_use_and_outlives_its_pod() {
    require_vm();
    apply_ok(&claim_yaml("keep"));
    let _claim = ClaimGuard("keep");
    assert_eq!(
        claim_phase("keep"),
        "Pending",
        "a claim waits for its first consumer"
    );

    apply_ok(&pod_yaml(
        "writer",
        "keep",
        false,
        &format!("echo kept > /data/file; {SLEEP}"),
    ));
    let writer = PodGuard("writer".into());
    wait_running("writer");
    wait_until(
        "writer",
        "the claim Bound",
        || claim_phase("keep") == "Bound",
        RUNNING_TIMEOUT,
    );
    let claim = claim_json("keep").expect("claim");
    let volume = claim["spec"]["volumeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(volume.starts_with("pvc-"), "volumeName {volume:?}");
    assert_eq!(claim["status"]["capacity"]["storage"], "100Mi");
    assert_eq!(claim["spec"]["storageClassName"], "local-path");
    let pv = peapod_ok(&["get", "pv", &volume, "-o", "json"]);
    let pv: serde_json::Value = serde_json::from_str(&pv).expect("pv json");
    assert_eq!(pv["status"]["phase"], "Bound");
    assert_eq!(pv["spec"]["claimRef"]["name"], "keep");
    let dir = pv["spec"]["hostPath"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        wait_for(
            || std::fs::read_to_string(format!("{dir}/file")).is_ok_and(|t| t == "kept\n"),
            Duration::from_secs(30)
        ),
        "the pod's write is not in {dir}"
    );
    drop(writer);
    wait_until(
        "writer",
        "the pod gone",
        || try_pod_json("writer").is_none(),
        RUNNING_TIMEOUT,
    );
    assert_eq!(claim_phase("keep"), "Bound", "the claim outlives its pod");

    // The next pod sees the data.
    apply_ok(&pod_yaml(
        "reader",
        "keep",
        true,
        &format!("cat /data/file; {SLEEP}"),
    ));
    let _reader = PodGuard("reader".into());
    wait_running("reader");
    assert!(
        wait_for(
            || peapod_ok(&["logs", "reader"]).contains("kept"),
            Duration::from_secs(30)
        ),
        "the second pod does not see the first one's data"
    );
    // readOnly: true in the volume source makes the mount read-only.
    let (code, _) = exec("reader", "app", &["touch", "/data/new"]);
    assert_ne!(code, 0, "a read-only claim accepted a write");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn claim_in_use_stays_terminating_until_its_pod_is_gone() {
    require_vm();
    apply_ok(&claim_yaml("guarded"));
    apply_ok(&pod_yaml(
        "guard-user",
        "guarded",
        false,
        &format!("echo x > /data/x; {SLEEP}"),
    ));
    let user = PodGuard("guard-user".into());
    wait_running("guard-user");
    wait_until(
        "guard-user",
        "the claim Bound",
        || claim_phase("guarded") == "Bound",
        RUNNING_TIMEOUT,
    );
    let volume = claim_json("guarded").unwrap()["spec"]["volumeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pv: serde_json::Value =
        serde_json::from_str(&peapod_ok(&["get", "pv", &volume, "-o", "json"])).unwrap();
    let dir = pv["spec"]["hostPath"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let out = peapod_ok(&["delete", "pvc", "guarded"]);
    assert!(
        out.contains("persistentvolumeclaim \"guarded\" deleted"),
        "{out}"
    );
    let claim = claim_json("guarded").expect("a claim in use must stay");
    assert!(
        claim["metadata"]["deletionTimestamp"].is_string(),
        "{claim}"
    );
    let table = peapod_ok(&["get", "pvc", "guarded"]);
    assert!(table.contains("Terminating"), "{table}");
    // The pod keeps its volume meanwhile.
    let (code, _) = exec("guard-user", "app", &["cat", "/data/x"]);
    assert_eq!(code, 0);

    drop(user);
    wait_until(
        "guard-user",
        "the claim gone",
        || claim_json("guarded").is_none(),
        RUNNING_TIMEOUT,
    );
    assert!(
        peapod(&["get", "pv", &volume]).status.code() != Some(0),
        "the volume stayed"
    );
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the data stayed at {dir}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn ephemeral_volume_gets_a_claim_owned_by_its_pod() {
    require_vm();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: eph
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"echo hi > /scratch/f; {SLEEP}\"]
    volumeMounts:
    - name: scratch
      mountPath: /scratch
  volumes:
  - name: scratch
    ephemeral:
      volumeClaimTemplate:
        metadata:
          labels:
            type: scratch
        spec:
          accessModes: [ReadWriteOnce]
          resources:
            requests:
              storage: 10Mi
"
    );
    apply_ok(&yaml);
    let pod = PodGuard("eph".into());
    wait_running("eph");
    let claim = claim_json("eph-scratch").expect("the ephemeral claim eph-scratch");
    assert_eq!(claim["metadata"]["ownerReferences"][0]["kind"], "Pod");
    assert_eq!(claim["metadata"]["ownerReferences"][0]["name"], "eph");
    assert_eq!(claim["metadata"]["labels"]["type"], "scratch");
    assert_eq!(claim["status"]["phase"], "Bound");
    drop(pod);
    wait_until(
        "eph",
        "the ephemeral claim gone",
        || claim_json("eph-scratch").is_none(),
        RUNNING_TIMEOUT,
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn pod_waits_for_a_missing_claim_and_starts_once_it_exists() {
    require_vm();
    apply_ok(&pod_yaml("late", "late-claim", false, SLEEP));
    let _pod = PodGuard("late".into());
    // The supervisor tells its readiness before it tries to schedule the pod: its first
    // status comes after `apply` returns.
    wait_until(
        "late",
        "PodScheduled False",
        || condition("late", "PodScheduled")["status"] == "False",
        RUNNING_TIMEOUT,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        phase("late"),
        "Pending",
        "a pod without its claim must not run"
    );
    // Not scheduled, as the scheduler leaves it: PodScheduled False, no container statuses,
    // FailedScheduling and no Scheduled event.
    let status = &pod_json("late")["status"];
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    assert_eq!(conditions.len(), 1, "{status}");
    assert_eq!(conditions[0]["type"], "PodScheduled");
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[0]["reason"], "Unschedulable");
    assert_eq!(
        conditions[0]["message"],
        "0/1 nodes are available: persistentvolumeclaim \"late-claim\" not found. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    assert!(status["containerStatuses"].is_null(), "{status}");
    let described = peapod_ok(&["describe", "pod", "late"]);
    assert!(
        described.contains("FailedScheduling")
            && described.contains("persistentvolumeclaim \"late-claim\" not found")
            && !described.contains("Successfully assigned"),
        "{described}"
    );
    apply_ok(&claim_yaml("late-claim"));
    let _claim = ClaimGuard("late-claim");
    wait_running("late");
    assert_eq!(claim_phase("late-claim"), "Bound");
    let described = peapod_ok(&["describe", "pod", "late"]);
    assert!(
        described.contains("Successfully assigned default/late to"),
        "{described}"
    );
}
