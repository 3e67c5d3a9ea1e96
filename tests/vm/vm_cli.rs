//! The walkthroughs' CLI on real pods: `run`, label selectors on pods, `apply` of a pod that
//! exists (unchanged, configured, forbidden; a new image restarts the container, a lower
//! activeDeadlineSeconds ends the pod), `ps`/`pods` after a restart, `top pod`.
//! Runs only in the test VM (`scripts/test --vm-only --only vm_cli`); every test uses its own
//! pod names.

use crate::common;

use common::vm_registry::{self, REGISTRY};
use common::*;
use std::time::Duration;

/// `common::pod_yaml` (restartPolicy Always) with labels.
fn sleeper(name: &str, labels: &str, cmd: &str) -> String {
    pod_yaml(name, "Always", "", cmd).replacen(
        "metadata:\n",
        &format!("metadata:\n  labels: {{{labels}}}\n"),
        1,
    )
}

// `wait` returns on the trapped signal at once: the trap need not wait for the sleep to end.
const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1 & wait; done";

fn lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn run_makes_a_pod_that_selectors_find() {
    require_vm();
    let out = peapod_ok(&[
        "run",
        "cli-run",
        "--image=busybox",
        "--image-pull-policy=IfNotPresent",
        "--command",
        "--",
        "sh",
        "-c",
        SLEEP,
    ]);
    let _pod = PodGuard("cli-run".into());
    assert_eq!(out, "pod/cli-run created\n");
    wait_running("cli-run");
    assert_eq!(
        peapod_ok(&["get", "pods", "-l", "run=cli-run", "-o", "name"]),
        "pod/cli-run\n"
    );
    let running = peapod_ok(&[
        "get",
        "pods",
        "--field-selector",
        "status.phase=Running,metadata.name=cli-run",
        "-o",
        "jsonpath={.items[*].spec.containers[0].name}",
    ]);
    assert_eq!(running, "cli-run");
    let labels = peapod_ok(&["get", "pods", "cli-run", "--show-labels", "--no-headers"]);
    assert!(labels.trim_end().ends_with("run=cli-run"), "{labels}");
    let again = peapod(&["run", "cli-run", "--image=busybox"]);
    assert_eq!(
        stderr(&again),
        "Error from server (AlreadyExists): pods \"cli-run\" already exists\n"
    );
    assert_eq!(
        peapod_ok(&[
            "delete",
            "pods",
            "-l",
            "run=cli-run",
            "--grace-period=0",
            "--force"
        ])
        .lines()
        .last(),
        Some("pod \"cli-run\" force deleted from default namespace")
    );
    assert_eq!(
        peapod_ok(&["get", "pods", "-l", "run=cli-run", "-o", "name"]),
        ""
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn apply_of_an_existing_pod_is_unchanged_configured_or_forbidden() {
    require_vm();
    let yaml = sleeper("cli-apply", "app: one", SLEEP);
    apply_ok(&yaml);
    let _pod = PodGuard("cli-apply".into());
    wait_running("cli-apply");
    let uid = pod_json("cli-apply")["metadata"]["uid"].clone();
    let out = apply_yaml(&yaml);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/cli-apply unchanged\n"
    );
    let relabeled = yaml.replace("app: one", "app: two, tier: back");
    let out = apply_yaml(&relabeled);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/cli-apply configured\n"
    );
    assert_eq!(
        peapod_ok(&["get", "pods", "-l", "app=two,tier=back", "-o", "name"]),
        "pod/cli-apply\n"
    );
    let columns = lines(&peapod_ok(&["get", "pods", "cli-apply", "-L", "app,tier"]));
    assert_eq!(columns[0][5..], ["APP", "TIER"]);
    assert_eq!(columns[1][5..], ["two", "back"]);
    // The same pod, still running: metadata changes do not restart anything.
    assert_eq!(pod_json("cli-apply")["metadata"]["uid"], uid);
    assert_eq!(restart_count("cli-apply", "app"), 0);
    let out = apply_yaml(&relabeled.replace("sleep 1", "sleep 2"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("The Pod \"cli-apply\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"),
        "{}",
        stderr(&out)
    );
    // Refused: nothing of it is stored, the container is left alone.
    assert_eq!(
        pod_json("cli-apply")["spec"]["containers"][0]["command"],
        serde_json::json!(["sh", "-c", SLEEP])
    );
    assert_eq!(restart_count("cli-apply", "app"), 0);
}

/// Pod `name` under `policy`: an init container `setup` and an app container `app`, both of
/// the local busybox image.
fn with_init(name: &str, policy: &str, rest: &str) -> String {
    pod_of(
        name,
        policy,
        2,
        &format!(
            "  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", {SLEEP:?}]\n"
        ),
        &format!(
            "  initContainers:\n  - name: setup\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [\"true\"]\n{rest}"
        ),
    )
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn apply_of_a_new_image_restarts_the_container_as_the_kubelet_does() {
    require_vm();
    vm_registry::start();
    // Under Never: the kubelet restarts a container whose definition changed whatever the
    // policy.
    let yaml = with_init("cli-image", "Never", "");
    let _pod = start_pod("cli-image", &yaml);
    let first_id = container_status("cli-image", "app").unwrap()["containerID"].clone();
    let new_image = format!("{REGISTRY}/team/app:v1");
    // Not in the store (another test may have pulled it): IfNotPresent pulls it.
    let _ = peapod(&["rmi", &new_image]);
    let updated = yaml.replacen("image: busybox", &format!("image: {new_image}"), 1);
    let updated = updated.replacen(
        "  - name: setup\n    image: busybox",
        &format!("  - name: setup\n    image: {new_image}"),
        1,
    );
    let out = apply_yaml(&updated);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/cli-image configured\n",
        "{}",
        stderr(&out)
    );
    wait_until(
        "cli-image",
        "the app container running the new image",
        || {
            container_status("cli-image", "app").is_some_and(|c| {
                c["image"] == new_image.as_str()
                    && c["state"]["running"].is_object()
                    && c["restartCount"] == 1
            })
        },
        Duration::from_secs(120),
    );
    let app = container_status("cli-image", "app").unwrap();
    assert_ne!(app["containerID"], first_id);
    assert!(
        app["imageID"].as_str().unwrap_or("").contains("@sha256:"),
        "{app}"
    );
    // The old instance was stopped with its grace period: the trap ended it with 0.
    assert_eq!(app["lastState"]["terminated"]["exitCode"], 0, "{app}");
    assert_eq!(phase("cli-image"), "Running");
    assert!(
        has_event(
            "cli-image",
            "Killing",
            "Container app definition changed, will be restarted"
        ),
        "{:?}",
        events("cli-image")
    );
    assert!(has_event(
        "cli-image",
        "Pulling",
        &format!("Pulling image \"{new_image}\"")
    ));
    assert!(has_event(
        "cli-image",
        "Pulled",
        &format!("Successfully pulled image \"{new_image}\"")
    ));
    let describe = peapod_ok(&["describe", "pod", "cli-image"]);
    assert!(
        describe
            .lines()
            .any(|l| l.trim_start().starts_with("Image:") && l.trim_end().ends_with(&new_image)),
        "{describe}"
    );
    // The init container finished before: the kubelet does not run it again for a new image,
    // and its status keeps the image it ran.
    let setup = init_status("cli-image", "setup").unwrap();
    assert_eq!(setup["restartCount"], 0, "{setup}");
    assert_eq!(setup["image"], "busybox", "{setup}");
    assert_eq!(
        setup["state"]["terminated"]["reason"], "Completed",
        "{setup}"
    );
    // Another field alongside: refused, and nothing changes.
    let out = apply_yaml(&updated.replace("sleep 1", "sleep 2"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("The Pod \"cli-image\" is invalid: spec: Forbidden: pod updates may not change fields other than"),
        "{}",
        stderr(&out)
    );
    assert_eq!(restart_count("cli-image", "app"), 1);
    assert_eq!(
        pod_json("cli-image")["spec"]["containers"][0]["command"][2],
        SLEEP
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn apply_of_a_new_image_restarts_a_sidecar() {
    require_vm();
    vm_registry::start();
    let yaml = with_init("cli-sidecar", "Always", "").replace(
        "    command: [\"true\"]\n",
        &format!("    restartPolicy: Always\n    command: [\"sh\", \"-c\", {SLEEP:?}]\n"),
    );
    let _pod = start_pod("cli-sidecar", &yaml);
    let new_image = format!("{REGISTRY}/busybox:1.27.2");
    let updated = yaml.replacen(
        "  - name: setup\n    image: busybox",
        &format!("  - name: setup\n    image: {new_image}"),
        1,
    );
    let out = apply_yaml(&updated);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/cli-sidecar configured\n",
        "{}",
        stderr(&out)
    );
    wait_until(
        "cli-sidecar",
        "the sidecar running the new image",
        || {
            init_status("cli-sidecar", "setup").is_some_and(|c| {
                c["image"] == new_image.as_str()
                    && c["state"]["running"].is_object()
                    && c["restartCount"] == 1
            })
        },
        Duration::from_secs(120),
    );
    assert!(
        has_event(
            "cli-sidecar",
            "Killing",
            "Init container setup definition changed"
        ),
        "{:?}",
        events("cli-sidecar")
    );
    // The app container is left running.
    assert_eq!(restart_count("cli-sidecar", "app"), 0);
    assert_eq!(phase("cli-sidecar"), "Running");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn apply_of_a_lower_deadline_ends_the_pod_with_deadline_exceeded() {
    require_vm();
    let yaml = with_init("cli-deadline", "Always", "  activeDeadlineSeconds: 3600\n");
    let _pod = start_pod("cli-deadline", &yaml);
    let raised = yaml.replace("activeDeadlineSeconds: 3600", "activeDeadlineSeconds: 7200");
    let out = apply_yaml(&raised);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "The Pod \"cli-deadline\" is invalid: spec.activeDeadlineSeconds: Invalid value: 7200: must be less than or equal to previous value\n"
    );
    let out = apply_yaml(&yaml.replace("activeDeadlineSeconds: 3600", "activeDeadlineSeconds: 5"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/cli-deadline configured\n",
        "{}",
        stderr(&out)
    );
    wait_until(
        "cli-deadline",
        "phase Failed",
        || phase("cli-deadline") == "Failed",
        Duration::from_secs(60),
    );
    let status = pod_json("cli-deadline")["status"].clone();
    assert_eq!(status["reason"], "DeadlineExceeded", "{status}");
    assert!(has_event(
        "cli-deadline",
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline"
    ));
    assert_eq!(restart_count("cli-deadline", "app"), 0);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn ps_and_pods_show_attempts_after_a_restart() {
    require_vm();
    // The first instance fails after a second; the restarted one keeps running (the pod's
    // /dev/shm outlives its containers' instances), so that `ps` finds it running.
    apply_ok(&sleeper(
        "cli-ps",
        "",
        "if [ -e /dev/shm/ran ]; then exec sleep 3600; fi; touch /dev/shm/ran; sleep 1; exit 3",
    ));
    let _pod = PodGuard("cli-ps".into());
    wait_until(
        "cli-ps",
        "a second instance running",
        || {
            restart_count("cli-ps", "app") >= 1
                && container_status("cli-ps", "app")
                    .is_some_and(|c| c["state"]["running"].is_object())
        },
        RUNNING_TIMEOUT + Duration::from_secs(30),
    );
    let uid = pod_json("cli-ps")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let all = lines(&peapod_ok(&["ps", "-a", "--name", "^app$", "-o", "wide"]));
    assert_eq!(
        all[0],
        [
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD",
            "ID",
            "POD",
            "NAMESPACE",
            "NAMES"
        ]
    );
    let mine: Vec<&Vec<String>> = all
        .iter()
        .filter(|r| r.contains(&"cli-ps".to_string()))
        .collect();
    let running = mine.iter().find(|r| r.contains(&"Running".to_string()));
    let running = running.unwrap_or_else(|| panic!("no running instance: {all:?}"));
    let attempt = running[running.len() - 5].clone();
    assert!(attempt.parse::<u32>().is_ok_and(|a| a >= 1), "{running:?}");
    assert_eq!(
        running.last().map(String::as_str),
        Some(format!("k8s_app_cli-ps_default_{uid}_{attempt}").as_str())
    );
    assert!(
        mine.iter().any(|r| r.contains(&"Exited".to_string())),
        "{all:?}"
    );
    let ids = peapod_ok(&["ps", "-q", "--no-trunc"]);
    assert!(ids.lines().all(|l| l.len() == 64), "{ids}");
    let pods = lines(&peapod_ok(&["pods", "--name", "^cli-ps$", "-o", "wide"]));
    assert_eq!(
        pods[0],
        [
            "POD",
            "ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME",
            "NAMES"
        ]
    );
    assert!(pods[1].contains(&"Ready".to_string()), "{pods:?}");
    assert_eq!(
        pods[1].last().map(String::as_str),
        Some(format!("k8s_POD_cli-ps_default_{uid}_0").as_str())
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn top_measures_cpu_and_memory() {
    require_vm();
    apply_ok(&sleeper("cli-top", "", "while true; do :; done"));
    let _pod = PodGuard("cli-top".into());
    wait_running("cli-top");
    std::thread::sleep(Duration::from_secs(1));
    let table = lines(&peapod_ok(&["top", "pod", "cli-top"]));
    assert_eq!(table[0], ["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    assert_eq!(table[1][0], "cli-top");
    let cpu: u64 = table[1][1]
        .trim_end_matches('m')
        .parse()
        .expect("millicores");
    // Not near a whole core: the VM's two emulated CPUs are shared with the other lanes'
    // tests (190m was once seen under that load); an idle container shows 0m.
    assert!(cpu >= 50, "a busy loop used only {cpu}m");
    assert!(table[1][2].ends_with("Mi"), "{table:?}");
    let containers = lines(&peapod_ok(&["top", "pod", "--containers", "cli-top"]));
    assert_eq!(
        containers[0],
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    );
    assert_eq!(containers[1][..2], ["cli-top", "app"]);
    let missing = peapod(&["top", "pod", "cli-nothing"]);
    assert_eq!(
        stderr(&missing),
        "Error from server (NotFound): podmetrics.metrics.k8s.io \"default/cli-nothing\" not found\n"
    );
}
