//! The node agent: static pods from a manifest directory, as the kubelet's staticPodPath. The
//! agent (`peapod node --manifests DIR`) runs in the background of each test; pods are checked
//! through the CLI. Runs only in the test VM (`scripts/test`).

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the agent may take to notice a change (inotify; the rescan is 20 s).
const NOTICE: Duration = Duration::from_secs(60);

fn node_name() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_lowercase()
}

fn manifest(name: &str, cmd: &str) -> String {
    pod_yaml(name, "Always", "", cmd)
}

/// The agent, stopped (SIGTERM) when the test ends.
struct Agent(Child);

impl Agent {
    fn start(dir: &std::path::Path) -> Agent {
        let child = Command::new(peapod_bin())
            .args(["node", "--manifests"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.with_extension("log"))
                    .expect("cannot create the agent log"),
            )
            .spawn()
            .expect("cannot start peapod node");
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill(self.0.id() as i32, "TERM");
        let _ = self.0.wait();
    }
}

fn uid(pod: &str) -> String {
    try_pod_json(pod)
        .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn static_pods_follow_their_files() {
    require_vm();
    let dir = std::path::PathBuf::from("/tmp/static-manifests");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sleep = "trap 'exit 0' TERM; while true; do sleep 1; done";
    std::fs::write(dir.join("web.yaml"), manifest("web", sleep)).unwrap();
    let agent = Agent::start(&dir);
    let pod = format!("web-{}", node_name());
    let _guard = PodGuard(pod.clone());
    wait_until(
        &pod,
        "the static pod Running",
        || phase(&pod) == "Running",
        NOTICE,
    );
    let json = pod_json(&pod);
    assert_eq!(
        json["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    let first = uid(&pod);
    assert_eq!(
        json["metadata"]["annotations"]["kubernetes.io/config.hash"],
        first.as_str()
    );
    assert_eq!(first.len(), 32, "the kubelet's static pod UID is a hash");

    // An invalid file is reported and leaves the others alone.
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
    )
    .unwrap();
    // A changed file replaces the pod.
    std::fs::write(
        dir.join("web.yaml"),
        manifest("web", &format!("echo v2; {sleep}")),
    )
    .unwrap();
    wait_until(
        &pod,
        "a new pod for the changed file",
        || {
            let u = uid(&pod);
            !u.is_empty() && u != first && phase(&pod) == "Running"
        },
        NOTICE,
    );
    let second = uid(&pod);
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
    assert!(
        log.contains("broken.yaml"),
        "the invalid file is not reported:\n{log}"
    );

    // Deleted by hand, it comes back while its file exists.
    let out = peapod(&["delete", "pod", &pod, "--grace-period=0", "--force"]);
    assert!(stderr(&out).contains("is a static pod"), "{}", stderr(&out));
    wait_until(
        &pod,
        "the static pod back",
        || phase(&pod) == "Running",
        NOTICE,
    );
    assert_eq!(uid(&pod), second, "the same file gives the same UID");

    // Its file removed, it goes.
    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    wait_until(
        &pod,
        "the pod deleted",
        || try_pod_json(&pod).is_none(),
        NOTICE,
    );
    drop(agent);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn stopping_the_agent_leaves_its_pods_running_and_once_reports_bad_files() {
    require_vm();
    let dir = std::path::PathBuf::from("/tmp/static-manifests-2");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keep.yaml"),
        manifest("keep", "trap 'exit 0' TERM; while true; do sleep 1; done"),
    )
    .unwrap();
    std::fs::write(dir.join("bad.yaml"), "kind: Deployment\n").unwrap();
    let out = peapod(&["node", "--once", "--manifests", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a bad file makes --once fail");
    assert!(stderr(&out).contains("bad.yaml"), "{}", stderr(&out));
    let pod = format!("keep-{}", node_name());
    let _guard = PodGuard(pod.clone());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("static pod default/{pod} created"))
    );
    wait_running(&pod);
    let agent = Agent::start(&dir);
    std::thread::sleep(Duration::from_secs(2));
    drop(agent);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        phase(&pod),
        "Running",
        "stopping the agent must not stop its pods"
    );
}
