//! Probes and lifecycle hooks as the kubelet runs them, driven through the peapod CLI: each
//! probe kind passing and failing (busybox httpd serving a file that is deleted, a file that
//! disappears for exec, a port that closes for tcp), readiness flipping the READY column and
//! the pod's conditions, liveness restarts with the kubelet's events, exit codes and the
//! probe's own grace period, startup gating liveness, readiness and the init container after a
//! sidecar, a startup probe that never passes, postStart/preStop order in a log file in an
//! emptyDir, failed hooks, and the corpus exec-liveness example (shortened). Runs only in the
//! test VM (`scripts/test --vm-only --only vm_probes`); the pods of one test run side by side
//! to keep the file's VM time short.

use crate::common;

use common::*;
use std::time::{Duration, Instant};

/// kubernetes/website content/en/examples/pods/probe/exec-liveness.yaml from the shared pod
/// corpus, built in: the VM has no copy.
const EXEC_LIVENESS: &str =
    include_str!("../../../shared/pod-corpus/k8s-website/pods/probe/exec-liveness.yaml");

/// A busybox container of a pod's `containers` list running `cmd` in sh; `extra`: more of its
/// fields, indented by four spaces.
fn container(name: &str, cmd: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, {cmd:?}]\n{extra}"
    )
}

fn sh(pod: &str, container: &str, cmd: &str) -> (i32, String) {
    exec(pod, container, &["sh", "-c", cmd])
}

fn sh_ok(pod: &str, container: &str, cmd: &str) -> String {
    let (code, out) = sh(pod, container, cmd);
    assert_eq!(code, 0, "{pod}/{container}: `{cmd}` failed: {out}");
    out
}

fn wait_event(pod: &str, reason: &str, message: &str, timeout: Duration) {
    wait_until(
        pod,
        &format!("event {reason} {message:?}"),
        || has_event(pod, reason, message),
        timeout,
    );
}

fn wait_column(pod: &str, header: &str, want: &str) {
    wait_until(
        pod,
        &format!("{header} {want}"),
        || column(pod, header) == want,
        RUNNING_TIMEOUT,
    );
}

fn field(pod: &str, container: &str, key: &str) -> serde_json::Value {
    container_status(pod, container).unwrap_or_default()[key].clone()
}

/// An httpd serving /www, with /www/healthz there.
const WEB: &str = "mkdir -p /www; echo ok > /www/healthz; exec httpd -f -p 8080 -h /www";
/// Listens on 9090 while /tmp/open exists.
const PORT_WHILE_OPEN: &str = "mkdir -p /srv; while true; do if [ -f /tmp/open ]; then httpd -f -p 9090 -h /srv & p=$!; while [ -f /tmp/open ]; do sleep 0.2; done; kill $p; fi; sleep 0.2; done";
/// Ends cleanly on SIGTERM.
const SLEEPER: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";
/// sh as the container's pid 1 ignores SIGTERM: SIGKILL ends it (137) after the grace period.
const DEAF: &str = "while true; do sleep 1; done";

fn readiness(handler: &str) -> String {
    format!("    readinessProbe:\n      {handler}\n      periodSeconds: 1\n")
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn readiness_of_each_kind_flips_ready_and_the_conditions() {
    require_vm();
    load_test_image();
    let containers = [
        container(
            "web",
            WEB,
            &readiness("httpGet: {path: /healthz, port: 8080}"),
        ),
        container(
            "tcp",
            PORT_WHILE_OPEN,
            &readiness("tcpSocket: {port: 9090}"),
        ),
        container(
            "exec",
            SLEEPER,
            &readiness("exec: {command: [cat, /tmp/ready]}"),
        ),
    ]
    .concat();
    apply_ok(&pod_of("ready-kinds", "Always", 2, &containers, ""));
    let _pod = PodGuard("ready-kinds".into());
    wait_running("ready-kinds");
    // The http probe passes; the port is closed and the file missing.
    wait_column("ready-kinds", "READY", "1/3");
    let ip = pod_ip("ready-kinds").unwrap();
    wait_event(
        "ready-kinds",
        "Unhealthy",
        &format!("Readiness probe failed: dial tcp {ip}:9090: connect: connection refused"),
        RUNNING_TIMEOUT,
    );
    wait_event(
        "ready-kinds",
        "Unhealthy",
        "Readiness probe failed: cat: can't open '/tmp/ready': No such file or directory",
        RUNNING_TIMEOUT,
    );
    assert_eq!(condition("ready-kinds", "Ready")["status"], "False");
    assert_eq!(field("ready-kinds", "web", "ready"), true);
    assert_eq!(field("ready-kinds", "exec", "ready"), false);
    assert_eq!(field("ready-kinds", "exec", "started"), true);

    sh_ok("ready-kinds", "tcp", "touch /tmp/open");
    sh_ok("ready-kinds", "exec", "touch /tmp/ready");
    wait_column("ready-kinds", "READY", "3/3");
    assert_eq!(condition("ready-kinds", "Ready")["status"], "True");
    assert_eq!(
        condition("ready-kinds", "ContainersReady")["status"],
        "True"
    );

    sh_ok("ready-kinds", "web", "rm /www/healthz");
    sh_ok("ready-kinds", "tcp", "rm /tmp/open");
    sh_ok("ready-kinds", "exec", "rm /tmp/ready");
    wait_column("ready-kinds", "READY", "0/3");
    assert!(has_event(
        "ready-kinds",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 404"
    ));
    let ready = condition("ready-kinds", "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "ContainersNotReady", "{ready}");
    assert_eq!(
        condition("ready-kinds", "ContainersReady")["status"],
        "False"
    );
    // Readiness never restarts anything.
    for c in ["web", "tcp", "exec"] {
        assert_eq!(restart_count("ready-kinds", c), 0, "{c}");
    }
    assert!(!events("ready-kinds").iter().any(|(r, _)| r == "Killing"));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn failed_liveness_restarts_per_policy_with_the_kubelets_events() {
    require_vm();
    load_test_image();
    // Ignores SIGTERM: only the probe's own grace period (1 s, not the pod's 30) ends it.
    let stubborn = "trap '' TERM; mkdir -p /www; echo ok > /www/healthz; httpd -p 8080 -h /www; while true; do sleep 1; done";
    let http = container(
        "app",
        stubborn,
        "    livenessProbe:\n      httpGet: {path: /healthz, port: 8080}\n      initialDelaySeconds: 2\n      periodSeconds: 1\n      failureThreshold: 1\n      terminationGracePeriodSeconds: 1\n",
    );
    apply_ok(&pod_of("live-http", "Always", 30, &http, ""));
    let _http = PodGuard("live-http".into());
    let tcp = container(
        "app",
        DEAF,
        "    livenessProbe:\n      tcpSocket: {port: 9090}\n      periodSeconds: 1\n      failureThreshold: 2\n",
    );
    apply_ok(&pod_of("live-never", "Never", 2, &tcp, ""));
    let _never = PodGuard("live-never".into());
    // The corpus example, shortened: healthy for 6 s instead of 30, probed every second.
    let exec_liveness = EXEC_LIVENESS
        .replace(
            "image: \"registry.k8s.io/busybox:1.27.2\",",
            "image: \"busybox\", imagePullPolicy: \"IfNotPresent\",",
        )
        .replace("sleep 30;", "sleep 6;")
        .replace("initialDelaySeconds: 5,", "initialDelaySeconds: 1,")
        .replace("periodSeconds: 5,", "periodSeconds: 1,")
        .replace("spec: {", "spec: {\n    terminationGracePeriodSeconds: 2,");
    assert!(exec_liveness.contains("sleep 6;") && exec_liveness.contains("\"busybox\""));
    apply_ok(&exec_liveness);
    let _exec = PodGuard("liveness-exec".into());

    wait_running("live-http");
    // Healthy: probed, nothing said.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !events("live-http").iter().any(|(r, _)| r == "Unhealthy"),
        "{:?}",
        events("live-http")
    );
    sh_ok("live-http", "app", "rm /www/healthz");
    let removed = Instant::now();
    wait_until(
        "live-http",
        "a restart",
        || restart_count("live-http", "app") >= 1,
        RUNNING_TIMEOUT,
    );
    let took = removed.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the probe's 1 s grace period, not the pod's 30 s: {took:?}"
    );
    assert!(has_event(
        "live-http",
        "Unhealthy",
        "Liveness probe failed: HTTP probe failed with statuscode: 404"
    ));
    assert!(has_event(
        "live-http",
        "Killing",
        "Container app failed liveness probe, will be restarted"
    ));
    let last = field("live-http", "app", "lastState");
    assert_eq!(last["terminated"]["exitCode"], 137, "{last}");
    assert_eq!(last["terminated"]["reason"], "Error", "{last}");
    // The new instance serves the file again and stays.
    wait_running("live-http");

    // Never: killed once, not restarted, the pod fails.
    wait_until(
        "live-never",
        "phase Failed",
        || phase("live-never") == "Failed",
        RUNNING_TIMEOUT,
    );
    let ip = pod_ip("live-never").unwrap_or_default();
    assert!(has_event(
        "live-never",
        "Unhealthy",
        &format!("Liveness probe failed: dial tcp {ip}:9090: connect: connection refused")
    ));
    let killing: Vec<_> = events("live-never")
        .into_iter()
        .filter(|(r, _)| r == "Killing")
        .collect();
    assert_eq!(
        killing,
        vec![(
            "Killing".to_string(),
            "Container app failed liveness probe".to_string()
        )]
    );
    let state = field("live-never", "app", "state");
    assert_eq!(state["terminated"]["exitCode"], 137, "{state}");
    assert_eq!(restart_count("live-never", "app"), 0);

    // exec-liveness: healthy for 6 s, then three failures and a restart.
    wait_until(
        "liveness-exec",
        "a restart",
        || restart_count("liveness-exec", "liveness") >= 1,
        RUNNING_TIMEOUT,
    );
    assert!(has_event(
        "liveness-exec",
        "Unhealthy",
        "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
    ));
    assert!(has_event(
        "liveness-exec",
        "Killing",
        "Container liveness failed liveness probe, will be restarted"
    ));
    let last = field("liveness-exec", "liveness", "lastState");
    assert_eq!(
        last["terminated"]["exitCode"], 137,
        "sh as pid 1 ignores SIGTERM: {last}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn startup_probes_gate_the_other_probes_and_the_next_container() {
    require_vm();
    load_test_image();
    let log = "    volumeMounts: [{name: log, mountPath: /log}]\n";
    let sidecar = format!(
        "  - name: side\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    restartPolicy: Always\n    command: [sh, -c, {:?}]\n    startupProbe:\n      exec: {{command: [cat, /tmp/up]}}\n      periodSeconds: 1\n      failureThreshold: 60\n{log}",
        format!("echo side $(date +%s) >> /log/order; sleep 3; touch /tmp/up; {SLEEPER}")
    );
    // Liveness would kill it at once, readiness pass at once: neither may run before the
    // startup probe passes, which waits for a file the test makes.
    let app = container(
        "app",
        &format!("echo app $(date +%s) >> /log/order; {SLEEPER}"),
        &format!(
            "    startupProbe:\n      exec: {{command: [cat, /tmp/started]}}\n      periodSeconds: 1\n      failureThreshold: 120\n    livenessProbe:\n      exec: {{command: [\"false\"]}}\n      periodSeconds: 1\n      failureThreshold: 1\n    readinessProbe:\n      exec: {{command: [\"true\"]}}\n      periodSeconds: 1\n{log}"
        ),
    );
    // A plain init container after the sidecar waits for its startup probe too.
    let after = container("after", "echo after $(date +%s) >> /log/order", log);
    let yaml = pod_of(
        "startup",
        "Always",
        2,
        &app,
        &format!(
            "  initContainers:\n{sidecar}{after}  volumes:\n  - name: log\n    emptyDir: {{}}\n"
        ),
    );
    apply_ok(&yaml);
    let _pod = PodGuard("startup".into());
    // A startup probe that never passes kills the container; Never does not restart it.
    let never = container(
        "app",
        DEAF,
        "    startupProbe:\n      exec: {command: [cat, /tmp/never]}\n      periodSeconds: 1\n      failureThreshold: 2\n",
    );
    apply_ok(&pod_of("startup-fail", "Never", 2, &never, ""));
    let _fail = PodGuard("startup-fail".into());
    wait_until(
        "startup",
        "the app container running",
        || field("startup", "app", "state")["running"].is_object(),
        RUNNING_TIMEOUT,
    );
    let order = sh_ok("startup", "app", "cat /log/order");
    let at = |who: &str| -> u64 {
        order
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{who} ")))
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {who} line in {order:?}"))
    };
    assert!(
        at("after") >= at("side") + 3,
        "the next init container started before the sidecar's startup probe passed: {order:?}"
    );
    assert!(at("app") >= at("after"), "{order:?}");
    let side = init_status("startup", "side").unwrap();
    assert_eq!(side["started"], true, "{side}");
    assert_eq!(side["ready"], true, "{side}");

    // Not started: neither liveness nor readiness runs.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(field("startup", "app", "started"), false);
    assert_eq!(field("startup", "app", "ready"), false);
    assert_eq!(column("startup", "READY"), "1/2");
    assert!(
        !events("startup")
            .iter()
            .any(|(_, m)| m.starts_with("Liveness")),
        "{:?}",
        events("startup")
    );
    assert_eq!(restart_count("startup", "app"), 0);

    sh_ok("startup", "app", "touch /tmp/started");
    // Started: liveness runs and kills it; the new instance has to start again.
    wait_event(
        "startup",
        "Killing",
        "Container app failed liveness probe, will be restarted",
        RUNNING_TIMEOUT,
    );
    wait_until(
        "startup",
        "a restart",
        || restart_count("startup", "app") >= 1,
        RUNNING_TIMEOUT,
    );
    wait_until(
        "startup",
        "the new instance running",
        || field("startup", "app", "state")["running"].is_object(),
        RUNNING_TIMEOUT,
    );
    assert_eq!(field("startup", "app", "started"), false);
    assert_eq!(restart_count("startup", "side"), 0);

    wait_until(
        "startup-fail",
        "phase Failed",
        || phase("startup-fail") == "Failed",
        RUNNING_TIMEOUT,
    );
    assert!(has_event(
        "startup-fail",
        "Unhealthy",
        "Startup probe failed: cat: can't open '/tmp/never': No such file or directory"
    ));
    assert!(has_event(
        "startup-fail",
        "Killing",
        "Container app failed startup probe"
    ));
    assert!(!has_event("startup-fail", "Killing", "will be restarted"));
    let state = field("startup-fail", "app", "state");
    assert_eq!(state["terminated"]["exitCode"], 137, "{state}");
    assert_eq!(field("startup-fail", "app", "started"), false);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn post_start_and_pre_stop_run_in_order_and_failures_are_told() {
    require_vm();
    load_test_image();
    // postStart holds the container out of Running for 3 s; preStop runs before SIGTERM when
    // liveness kills it (the file it checks is removed by the test).
    let app = container(
        "app",
        "echo start >> /log/order; touch /tmp/alive; trap 'echo TERM >> /log/order; exit 0' TERM; while true; do sleep 1; done",
        "    lifecycle:
      postStart:
        exec: {command: [sh, -c, 'sleep 3; echo postStart >> /log/order']}
      preStop:
        exec: {command: [sh, -c, 'echo preStop >> /log/order; sleep 1']}
    livenessProbe:
      exec: {command: [cat, /tmp/alive]}
      periodSeconds: 1
      failureThreshold: 1
    volumeMounts: [{name: log, mountPath: /log}]
",
    );
    apply_ok(&pod_of(
        "hooks",
        "Always",
        10,
        &app,
        "  volumes:\n  - name: log\n    emptyDir: {}\n",
    ));
    let _hooks = PodGuard("hooks".into());
    // postStart fails (nothing listens), preStop fails too: under Never the pod fails.
    let failing = container(
        "app",
        DEAF,
        "    lifecycle:
      postStart:
        httpGet: {path: /started, port: 9999}
      preStop:
        exec: {command: [sh, -c, 'exit 3']}
",
    );
    apply_ok(&pod_of("hooks-fail", "Never", 2, &failing, ""));
    let _fail = PodGuard("hooks-fail".into());
    // A sleep preStop delays SIGTERM on delete by its seconds.
    let host = std::path::Path::new("/tmp/vm-probes-sleep");
    let _ = std::fs::remove_dir_all(host);
    std::fs::create_dir_all(host).unwrap();
    let sleeper = container(
        "app",
        "trap 'date +%s > /log/term; exit 0' TERM; while true; do sleep 1; done",
        "    lifecycle:\n      preStop:\n        sleep: {seconds: 3}\n    volumeMounts: [{name: log, mountPath: /log}]\n",
    );
    apply_ok(&pod_of(
        "hooks-sleep",
        "Always",
        10,
        &sleeper,
        &format!(
            "  volumes:\n  - name: log\n    hostPath: {{path: {}}}\n",
            host.display()
        ),
    ));
    let _sleep = PodGuard("hooks-sleep".into());

    // Not Running while postStart runs.
    wait_until(
        "hooks",
        "the process started",
        || pod_state("hooks")["containers"]["app"]["process"]["pid"].is_i64(),
        RUNNING_TIMEOUT,
    );
    let state = field("hooks", "app", "state");
    assert!(
        state["running"].is_null(),
        "Running before postStart returned: {state}"
    );
    wait_running("hooks");
    let order = sh_ok("hooks", "app", "cat /log/order");
    assert_eq!(order, "start\npostStart\n");

    sh_ok("hooks", "app", "rm /tmp/alive");
    wait_until(
        "hooks",
        "a restart",
        || restart_count("hooks", "app") >= 1,
        RUNNING_TIMEOUT,
    );
    wait_running("hooks");
    let order = sh_ok("hooks", "app", "cat /log/order");
    assert!(
        order.starts_with("start\npostStart\npreStop\nTERM\nstart\n"),
        "{order:?}"
    );
    assert_eq!(
        field("hooks", "app", "lastState")["terminated"]["exitCode"],
        0
    );

    wait_until(
        "hooks-fail",
        "phase Failed",
        || phase("hooks-fail") == "Failed",
        RUNNING_TIMEOUT,
    );
    let evs = events("hooks-fail");
    let has = |reason: &str, message: &str| evs.iter().any(|(r, m)| r == reason && m == message);
    assert!(
        has("FailedPostStartHook", "PostStartHook failed"),
        "{evs:?}"
    );
    assert!(has("Killing", "FailedPostStartHook"), "{evs:?}");
    assert!(has("FailedPreStopHook", "PreStopHook failed"), "{evs:?}");
    assert_eq!(restart_count("hooks-fail", "app"), 0);

    wait_running("hooks-sleep");
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = peapod(&["delete", "pod", "hooks-sleep", "--grace-period", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let term: u64 = std::fs::read_to_string(host.join("term"))
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("the container never got SIGTERM");
    assert!(
        term >= asked + 3,
        "SIGTERM {}s after the delete, before the 3 s preStop sleep ended",
        term as i64 - asked as i64
    );
    let _ = std::fs::remove_dir_all(host);
}
