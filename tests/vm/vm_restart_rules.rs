//! Container restart rules as the kubelet runs them (ContainerRestartRules, and the
//! RestartAllContainers action of RestartAllContainersOnContainerExits): a `Restart` rule
//! restarting a container its own policy would not, and the pod-corpus example in which a
//! watcher sidecar's exit code restarts every container in the same sandbox. Runs only in the
//! test VM (`scripts/test --vm-only --only vm_restart_rules`).

use crate::common;

use common::*;

/// kubernetes/website content/en/examples/pods/restart-policy/restart-all-containers.yaml
/// from the shared pod corpus, built in: the VM has no copy.
const RESTART_ALL: &str = include_str!(
    "../../../shared/pod-corpus/k8s-website/pods/restart-policy/restart-all-containers.yaml"
);

fn terminated(status: &serde_json::Value, key: &str) -> serde_json::Value {
    status[key]["terminated"].clone()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_restart_rule_restarts_a_container_its_policy_would_not() {
    require_vm();
    load_test_image();
    // Exit 3 the first time (a rule restarts it under Never), 0 the second (the policy: done).
    let cmd = "if [ -f /data/once ]; then echo second; exit 0; fi; touch /data/once; exit 3";
    let extra = "    restartPolicy: Never
    restartPolicyRules:
    - action: Restart
      exitCodes: {operator: In, values: [3]}
    volumeMounts: [{name: data, mountPath: /data}]
";
    let yaml = pod_of(
        "rule-restart",
        "Never",
        2,
        &format!(
            "  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, {cmd:?}]\n{extra}"
        ),
        "  volumes: [{name: data, emptyDir: {}}]\n",
    );
    apply_ok(&yaml);
    let _pod = PodGuard("rule-restart".into());
    wait_until(
        "rule-restart",
        "phase Succeeded",
        || phase("rule-restart") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    let app = container_status("rule-restart", "app").unwrap();
    assert_eq!(app["restartCount"], 1, "{app}");
    assert_eq!(terminated(&app, "state")["exitCode"], 0, "{app}");
    assert_eq!(terminated(&app, "lastState")["exitCode"], 3, "{app}");
    assert_eq!(
        peapod_ok(&["logs", "rule-restart", "-c", "app"]),
        "second\n"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_sidecar_exit_code_restarts_every_container_in_the_same_sandbox() {
    require_vm();
    load_test_image();
    // The corpus manifest scaled down: the watcher asks for a restart after 4 s, every time.
    let yaml = RESTART_ALL
        .replace(
            "image: \"registry.k8s.io/busybox:1.27.2\",",
            "image: \"busybox\", imagePullPolicy: \"IfNotPresent\",",
        )
        .replace("sleep 60; exit 88", "sleep 4; exit 88");
    assert!(yaml.contains("sleep 4; exit 88") && !yaml.contains("registry.k8s.io"));
    apply_ok(&yaml);
    let _pod = PodGuard("ml-worker".into());
    wait_until(
        "ml-worker",
        "main-application running",
        || {
            container_status("ml-worker", "main-application")
                .is_some_and(|c| c["state"]["running"].is_object())
        },
        RUNNING_TIMEOUT,
    );
    let ip = pod_ip("ml-worker");
    let sandbox = sandbox_pid("ml-worker");

    // The watcher exits 88: every container is killed, then the init container runs again,
    // the watcher and the main container after it. Each one's restartCount grows.
    wait_until(
        "ml-worker",
        "all three containers restarted and main-application running again",
        || {
            let init = init_status("ml-worker", "setup-environment").unwrap_or_default();
            let watcher = init_status("ml-worker", "watcher-sidecar").unwrap_or_default();
            let main = container_status("ml-worker", "main-application").unwrap_or_default();
            init["restartCount"].as_u64() >= Some(1)
                && watcher["restartCount"].as_u64() >= Some(1)
                && main["restartCount"].as_u64() >= Some(1)
                && main["state"]["running"].is_object()
        },
        RUNNING_TIMEOUT,
    );
    let init = init_status("ml-worker", "setup-environment").unwrap();
    assert_eq!(terminated(&init, "state")["exitCode"], 0, "re-run: {init}");
    assert_eq!(terminated(&init, "lastState")["exitCode"], 0, "{init}");
    let watcher = init_status("ml-worker", "watcher-sidecar").unwrap();
    assert_eq!(
        terminated(&watcher, "lastState")["exitCode"],
        88,
        "{watcher}"
    );
    // sh as pid 1 ignores SIGTERM: no grace period is given, SIGKILL ends it.
    let main = container_status("ml-worker", "main-application").unwrap();
    assert_eq!(terminated(&main, "lastState")["exitCode"], 137, "{main}");
    assert!(has_event(
        "ml-worker",
        "Killing",
        "Stopping container main-application"
    ));
    // The init container's second run has its own log.
    let logs = peapod_ok(&["logs", "ml-worker", "-c", "setup-environment"]);
    assert_eq!(logs, "Setting up environment\n");
    // Running is told when the exec is seen; the container's output reaches its log a moment
    // later, when the supervisor drains the pipe.
    let logged = wait_for(
        || {
            peapod_ok(&["logs", "ml-worker", "-c", "main-application"])
                == "Application is running\n"
        },
        RUNNING_TIMEOUT,
    );
    assert!(
        logged,
        "main-application's log: {:?}",
        peapod_ok(&["logs", "ml-worker", "-c", "main-application"])
    );
    // Same sandbox, same IP.
    assert_eq!(pod_ip("ml-worker"), ip);
    assert_eq!(sandbox_pid("ml-worker"), sandbox);

    // The next request waits for the watcher's back-off (10 s): meanwhile every container is
    // stopped, the pod is Pending and says why.
    wait_until(
        "ml-worker",
        "AllContainersRestarting True",
        || condition("ml-worker", "AllContainersRestarting")["status"] == "True",
        RUNNING_TIMEOUT,
    );
    let pod = pod_json("ml-worker");
    let c = condition("ml-worker", "AllContainersRestarting");
    assert_eq!(c["reason"], "RestartAllContainersStarted", "{c}");
    assert_eq!(
        c["message"], "container exited with restart policy rule",
        "{c}"
    );
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
    // And it runs again afterwards (restartPolicy Never does not end it).
    wait_until(
        "ml-worker",
        "main-application running a third time",
        || {
            restart_count("ml-worker", "main-application") >= 2
                && container_status("ml-worker", "main-application")
                    .is_some_and(|c| c["state"]["running"].is_object())
        },
        RUNNING_TIMEOUT,
    );
    assert_eq!(
        condition("ml-worker", "AllContainersRestarting")["status"],
        "False"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn an_init_container_exit_code_restarts_the_sidecar_and_init_containers() {
    require_vm();
    load_test_image();
    // As the kubelet's e2e "should restart init and sidecar containers on init container
    // exit": the last init container asks for a restart the first time only (an emptyDir
    // keeps the mark across the restart, the sandbox and volumes staying).
    let mount = "    volumeMounts: [{name: work, mountPath: /mnt}]\n";
    let c = |name: &str, cmd: &str, extra: &str| {
        format!(
            "  - name: {name}\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, {cmd:?}]\n{extra}"
        )
    };
    let yaml =
        format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: init-restart-all
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  initContainers:
{}{}{}  containers:
{}  volumes: [{{name: work, emptyDir: {{}}}}]
",
        c(
            "sidecar",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
            "    restartPolicy: Always\n"
        ),
        c("init", "exit 0", ""),
        c(
            "source-init",
            "if [ -f /mnt/init-complete ]; then exit 0; else touch /mnt/init-complete; exit 42; fi",
            &format!(
                "    restartPolicy: Never
    restartPolicyRules:
    - action: RestartAllContainers
      exitCodes: {{operator: In, values: [42]}}
{mount}"
            )
        ),
        c("regular", "trap 'exit 0' TERM; while true; do sleep 1; done", ""),
    );
    apply_ok(&yaml);
    let _pod = PodGuard("init-restart-all".into());
    wait_running("init-restart-all");
    for name in ["sidecar", "init", "source-init"] {
        let cs = init_status("init-restart-all", name).unwrap();
        assert_eq!(cs["restartCount"], 1, "{name} ran again once: {cs}");
        assert!(cs["lastState"]["terminated"].is_object(), "{cs}");
    }
    let source = init_status("init-restart-all", "source-init").unwrap();
    assert_eq!(
        source["lastState"]["terminated"]["exitCode"], 42,
        "{source}"
    );
    assert_eq!(source["state"]["terminated"]["exitCode"], 0, "{source}");
    // The app container had not started: it runs for the first time.
    assert_eq!(restart_count("init-restart-all", "regular"), 0);
    assert_eq!(phase("init-restart-all"), "Running");
}
