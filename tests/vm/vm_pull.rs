//! Pods whose images are not local: the supervisor pulls them from a real registry (Debian's
//! `docker-registry` on the VM's loopback, filled on the host by `scripts/test`), through a
//! docker.io / registry.k8s.io mirror, with the kubelet's pull policies, reasons and events.
//! Runs only in the test VM (`scripts/test`).
//!
//! The VM provides `/peapod/registry`: the registry's storage, holding `library/busybox:1.28`,
//! `busybox:1.27.2` and `team/app:v1`, all the busybox test image.

use crate::common;

use common::vm_registry::{self, REGISTRY};
use common::*;
use std::process::Child;
use std::sync::Mutex;
use std::time::Duration;

/// peapod's default registries configuration file, written once per test process.
const REGISTRIES_CONFIG: &str = "/etc/peapod/registries.toml";
/// How long a pull of the busybox image may take under QEMU's emulation.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts the registry (once) and writes the mirror configuration.
fn setup() {
    require_vm();
    vm_registry::start();
    std::fs::create_dir_all("/etc/peapod").expect("cannot create /etc/peapod");
    std::fs::write(
        REGISTRIES_CONFIG,
        format!(
            "[registries.\"docker.io\"]\nmirrors = [\"http://{REGISTRY}\"]\n\n[registries.\"registry.k8s.io\"]\nmirrors = [\"http://{REGISTRY}\"]\n"
        ),
    )
    .expect("cannot write the registries config");
}

fn sleeper(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {image}
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
{extra}"
    )
}

/// `peapod describe pod NAME` output (events included).
fn describe(name: &str) -> String {
    peapod_ok(&["describe", "pod", name])
}

fn waiting_reason(pod: &str) -> String {
    container_status(pod, "app")
        .and_then(|c| c["state"]["waiting"]["reason"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn wait_running_within(name: &str, timeout: Duration) {
    wait_until(
        name,
        "a running container",
        || {
            container_status(name, "app").is_some_and(|c| c["state"]["running"].is_object())
                || container_status(name, "count")
                    .is_some_and(|c| c["state"]["running"].is_object())
        },
        timeout,
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn pod_with_a_remote_image_runs_after_the_pull() {
    setup();
    let image = format!("{REGISTRY}/team/app:v1");
    // Not in the store, whatever an earlier test pulled (vm_cli's image change pulls it).
    let _ = peapod(&["rmi", &image]);
    apply_ok(&sleeper("pull-remote", &image, ""));
    let _pod = PodGuard("pull-remote".into());
    wait_running_within("pull-remote", PULL_TIMEOUT);

    let status = container_status("pull-remote", "app").expect("no container status");
    let image_id = status["imageID"].as_str().unwrap_or_default();
    assert!(
        image_id.starts_with(&format!("{REGISTRY}/team/app@sha256:")),
        "imageID {image_id:?} is not <repo>@sha256:..."
    );
    let text = describe("pull-remote");
    assert!(
        text.contains(&format!("Pulling image \"{image}\"")),
        "no Pulling event:\n{text}"
    );
    assert!(
        text.contains(&format!("Successfully pulled image \"{image}\" in ")),
        "no Pulled event:\n{text}"
    );
    let images = peapod_ok(&["images"]);
    assert!(
        images.contains(&format!("{REGISTRY}/team/app")),
        "pulled image not listed:\n{images}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn docker_hub_short_name_runs_through_a_mirror() {
    setup();
    // The shape of the corpus's debug/counter-pod.yaml: a Docker Hub short name with a tag and
    // no pull policy, as users write it.
    apply_ok(
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "counter"},
  "spec": {"containers": [{"name": "count", "image": "busybox:1.28",
    "args": ["/bin/sh", "-c", "i=0; while true; do echo \"$i: $(date)\"; i=$((i+1)); sleep 1; done"]}]}}"#,
    );
    let _pod = PodGuard("counter".into());
    wait_running_within("counter", PULL_TIMEOUT);
    let ok = wait_for(
        || peapod_ok(&["logs", "counter"]).contains("0: "),
        Duration::from_secs(30),
    );
    assert!(ok, "the counter pod printed nothing");
    let status = container_status("counter", "count").expect("no container status");
    let image_id = status["imageID"].as_str().unwrap_or_default();
    assert!(
        image_id.starts_with("docker.io/library/busybox@sha256:"),
        "imageID {image_id:?}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn missing_image_shows_err_image_pull_then_image_pull_back_off() {
    setup();
    let image = format!("{REGISTRY}/team/missing:v1");
    apply_ok(&sleeper("pull-missing", &image, ""));
    let _pod = PodGuard("pull-missing".into());
    // ErrImagePull shows for 2 s after each failed pull (until the kubelet's next sync finds
    // the back-off running), then again after each back-off: the JSON status and the table
    // must each show it at least once, read in separate calls on a slow VM.
    let (mut in_json, mut in_table) = (false, false);
    wait_until(
        "pull-missing",
        "ErrImagePull in the status and the STATUS column",
        || {
            in_json |= waiting_reason("pull-missing") == "ErrImagePull";
            in_table |= status_column("pull-missing") == "ErrImagePull";
            in_json && in_table
        },
        PULL_TIMEOUT,
    );
    wait_until(
        "pull-missing",
        "ImagePullBackOff",
        || waiting_reason("pull-missing") == "ImagePullBackOff",
        Duration::from_secs(30),
    );
    let text = describe("pull-missing");
    assert!(
        text.contains(&format!("Failed to pull image \"{image}\"")),
        "no Failed event:\n{text}"
    );
    assert!(
        text.contains(&format!("Back-off pulling image \"{image}\"")),
        "no BackOff event:\n{text}"
    );
    assert_eq!(phase("pull-missing"), "Pending");
    // No container was made, so none is listed (crictl lists none while the kubelet waits
    // for the image), though the supervisor's first state write named its first instance,
    // without an ID, ahead of its creation.
    let listed = peapod_ok(&["ps", "-a"]);
    assert!(
        !listed.lines().any(|l| l.contains("pull-missing")),
        "a container that was never made is listed:\n{listed}"
    );
    let instance = &pod_state("pull-missing")["containers"]["app"];
    assert_eq!(instance["id"], "", "{instance}");
    assert!(instance["process"].is_null(), "{instance}");
    let images = peapod_ok(&["images"]);
    assert!(
        !images.contains("team/missing"),
        "a failed pull left an image:\n{images}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn never_policy_without_the_image_waits_with_err_image_never_pull() {
    setup();
    let image = format!("{REGISTRY}/team/never:v1");
    apply_ok(&sleeper(
        "pull-never",
        &image,
        "    imagePullPolicy: Never\n",
    ));
    let _pod = PodGuard("pull-never".into());
    wait_until(
        "pull-never",
        "ErrImageNeverPull",
        || waiting_reason("pull-never") == "ErrImageNeverPull",
        Duration::from_secs(30),
    );
    let text = describe("pull-never");
    assert!(
        text.contains(&format!(
            "Container image \"{image}\" is not present with pull policy of Never"
        )),
        "no ErrImageNeverPull event:\n{text}"
    );
    assert!(!text.contains("Pulling image"), "Never pulled:\n{text}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn two_pods_pulling_one_image_at_once_both_run() {
    setup();
    // registry.k8s.io/busybox:1.27.2, through the second mirror; not pulled by other tests.
    let image = "registry.k8s.io/busybox:1.27.2";
    apply_ok(&format!(
        "{}---\n{}",
        sleeper("pull-twin-a", image, ""),
        sleeper("pull-twin-b", image, "")
    ));
    let _a = PodGuard("pull-twin-a".into());
    let _b = PodGuard("pull-twin-b".into());
    wait_running_within("pull-twin-a", PULL_TIMEOUT);
    wait_running_within("pull-twin-b", PULL_TIMEOUT);
    let images = peapod_ok(&["images"]);
    let rows = images
        .lines()
        .filter(|l| l.starts_with("registry.k8s.io/busybox "))
        .count();
    assert_eq!(rows, 1, "one image expected:\n{images}");
}

/// A second registry over the same storage that wants basic auth (`puller` / `s3cret`).
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
/// `htpasswd -Bbn puller s3cret` (bcrypt): the registry checks the real password.
const AUTH_HTPASSWD: &str = "puller:$2y$05$Agak5SAUdluunqK5qZSFAeAS6V/Gy0EXmgYe0Kd1jmnyIYj8XPTKa\n";
static AUTH_REGISTRY_PROCESS: Mutex<Option<Child>> = Mutex::new(None);

fn auth_registry() {
    setup();
    let mut guard = AUTH_REGISTRY_PROCESS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if guard.is_some() {
        return;
    }
    let dir = std::path::Path::new("/tmp/vm-auth-registry");
    std::fs::create_dir_all(dir).expect("cannot create the registry's directory");
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, AUTH_HTPASSWD).expect("cannot write htpasswd");
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: peapod-test\n    path: {}\n",
        htpasswd.display()
    );
    *guard = Some(vm_registry::serve(AUTH_REGISTRY, dir, &auth));
}

/// A `kubernetes.io/dockerconfigjson` Secret for the auth registry, as `kubectl create secret
/// docker-registry` writes it.
fn pull_secret(name: &str, password: &str) -> String {
    use base64::Engine as _;
    let b64 = |data: &str| base64::engine::general_purpose::STANDARD.encode(data);
    let config = format!(
        "{{\"auths\":{{\"{AUTH_REGISTRY}\":{{\"username\":\"puller\",\"password\":\"{password}\",\"auth\":\"{}\"}}}}}}",
        b64(&format!("puller:{password}"))
    );
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: {name}
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: {}
",
        b64(&config)
    )
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn image_pull_secrets_authenticate_the_pods_pulls() {
    auth_registry();
    let image = format!("{AUTH_REGISTRY}/team/app:v1");
    // Without credentials the registry refuses the pull.
    apply_ok(&sleeper("pull-noauth", &image, ""));
    let _noauth = PodGuard("pull-noauth".into());
    wait_until(
        "pull-noauth",
        "ErrImagePull or ImagePullBackOff",
        || {
            matches!(
                waiting_reason("pull-noauth").as_str(),
                "ErrImagePull" | "ImagePullBackOff"
            )
        },
        PULL_TIMEOUT,
    );
    assert!(
        describe("pull-noauth").contains(&format!("Failed to pull image \"{image}\"")),
        "no Failed event"
    );

    // A pull secret with the wrong password fails too; the right one lets the pull through.
    let secrets_yaml = format!(
        "{}---\n{}",
        pull_secret("regcred-wrong", "wrong"),
        pull_secret("regcred", "s3cret")
    );
    apply_ok(&secrets_yaml);
    let secrets = "  imagePullSecrets:\n  - name: regcred\n";
    let with_secret = sleeper("pull-auth", &image, "")
        .replace("  containers:\n", &format!("{secrets}  containers:\n"));
    apply_ok(&with_secret);
    let _auth = PodGuard("pull-auth".into());
    wait_running_within("pull-auth", PULL_TIMEOUT);
    let text = describe("pull-auth");
    assert!(
        text.contains(&format!("Successfully pulled image \"{image}\"")),
        "no Pulled event:\n{text}"
    );

    // A secret that does not exist is named in the kubelet's warning; the other one has the
    // wrong password, so the pull (Always: the image is present by now) fails.
    let missing = sleeper(
        "pull-missing-secret",
        &image,
        "    imagePullPolicy: Always\n",
    )
    .replace(
        "  containers:\n",
        "  imagePullSecrets:\n  - name: nosuch\n  - name: regcred-wrong\n  containers:\n",
    );
    apply_ok(&missing);
    let _missing = PodGuard("pull-missing-secret".into());
    wait_until(
        "pull-missing-secret",
        "ErrImagePull or ImagePullBackOff",
        || {
            matches!(
                waiting_reason("pull-missing-secret").as_str(),
                "ErrImagePull" | "ImagePullBackOff"
            )
        },
        PULL_TIMEOUT,
    );
    let text = describe("pull-missing-secret");
    assert!(
        text.contains("Unable to retrieve some image pull secrets (nosuch); attempting to pull the image may not succeed."),
        "no FailedToRetrieveImagePullSecret event:\n{text}"
    );
    assert!(text.contains("FailedToRetrieveImagePullSecret"), "{text}");
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let file = dir.path().join("secrets.yaml");
    std::fs::write(&file, &secrets_yaml).expect("cannot write the secrets");
    peapod_ok(&[
        "delete",
        "-f",
        file.to_str().expect("temporary path is not UTF-8"),
    ]);
}
