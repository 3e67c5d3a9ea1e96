//! The lifecycle of a pod as the kubelet runs it, driven through the peapod CLI: init
//! containers in order and failing under each restartPolicy, the CrashLoopBackOff timing,
//! native sidecars (start and stop order, a Job-like pod that completes),
//! activeDeadlineSeconds, a finished pod giving back its host resources, a dead sandbox,
//! shareProcessNamespace, pod-level resources, termination messages. Runs only in the test VM
//! (`scripts/test --vm-only --only vm_lifecycle`); every test uses its own pod names.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A shell loop that ends cleanly on SIGTERM.
// `wait` returns on the trapped signal at once: the trap need not wait for the sleep to end.
const SLEEPER: &str = "trap 'exit 0' TERM; while true; do sleep 1 & wait; done";

/// A fresh directory on the VM's root, shared with pods through a hostPath (it outlives them).
fn host_dir(name: &str) -> PathBuf {
    let dir = Path::new("/tmp").join(format!("vm-lifecycle-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One busybox container of a pod's `containers` or `initContainers` list, running `cmd` in
/// sh; `extra`: more of its fields, indented by four spaces.
fn container(name: &str, cmd: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, {cmd:?}]\n{extra}"
    )
}

fn read_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn position(lines: &[String], what: &str) -> usize {
    lines
        .iter()
        .position(|l| l == what)
        .unwrap_or_else(|| panic!("{what:?} missing from {lines:?}"))
}

/// The entry of `container` in the pod's (as JSON) `list` of statuses (`containerStatuses`,
/// `initContainerStatuses`), or null. One `get -o json` read for several checks: a CLI run
/// costs the VM about 0.4 s of CPU.
fn status_in<'a>(pod: &'a serde_json::Value, list: &str, container: &str) -> &'a serde_json::Value {
    pod["status"][list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .unwrap_or(&serde_json::Value::Null)
}

/// The pod's (as JSON) condition of this type, or null.
fn condition_in<'a>(pod: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&serde_json::Value::Null)
}

/// Whether the pod (as JSON) has an event with this reason whose message contains `message`
/// (read from its events.json, like [`has_event`], without another `get`).
fn has_event_in(pod: &serde_json::Value, reason: &str, message: &str) -> bool {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let path = lib_dir().join("pods").join(uid).join("events.json");
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or_default();
    list.iter()
        .any(|e| e["reason"] == reason && e["message"].as_str().unwrap_or("").contains(message))
}

/// A gate for a pod's container: a shell loop that waits for `/gate/open` (the host's
/// `dir/open`, through a hostPath), then runs `then`; and the volume lines that mount it.
/// The test opens it when it has seen what it needs (instead of a fixed sleep).
fn gated(dir: &Path, then: &str) -> (String, String) {
    let cmd = format!("until [ -e /gate/open ]; do sleep 0.2; done; {then}");
    let mount = format!(
        "    volumeMounts: [{{name: gate, mountPath: /gate}}]\n  volumes:\n  - name: gate\n    hostPath: {{path: {}, type: Directory}}\n",
        dir.display()
    );
    (cmd, mount)
}

fn open_gate(dir: &Path) {
    std::fs::write(dir.join("open"), "").expect("cannot open the gate");
}

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn init_containers_run_in_order_before_the_app_container() {
    require_vm();
    let work = "    volumeMounts: [{name: work, mountPath: /work}]\n";
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: init-order
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
{}{}  containers:
{}  volumes:
  - name: work
    emptyDir: {{}}
",
        container("first", "echo first >> /work/log", work),
        container("second", "echo second >> /work/log", work),
        container("app", &format!("echo app >> /work/log; {SLEEPER}"), work),
    );
    apply_ok(&yaml);
    let _pod = PodGuard("init-order".into());
    wait_running("init-order");
    let mut log = String::new();
    wait_until(
        "init-order",
        "the app's line in the log",
        || {
            log = exec("init-order", "app", &["cat", "/work/log"]).1;
            log.lines().count() == 3
        },
        RUNNING_TIMEOUT,
    );
    assert_eq!(log, "first\nsecond\napp\n");
    let pod = pod_json("init-order");
    for name in ["first", "second"] {
        let cs = status_in(&pod, "initContainerStatuses", name);
        assert_eq!(cs["state"]["terminated"]["reason"], "Completed", "{cs}");
        assert_eq!(
            cs["ready"], true,
            "a completed init container is ready: {cs}"
        );
    }
    assert_eq!(condition_in(&pod, "Initialized")["status"], "True");
    assert_eq!(column("init-order", "READY"), "1/1");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_failing_init_container_under_each_restart_policy() {
    require_vm();
    let yaml = |name: &str, policy: &str| {
        pod_yaml(name, policy, "", "sleep 3600").replace(
            "  containers:\n",
            &format!(
                "  initContainers:\n{}  containers:\n",
                container("setup", "exit 3", "")
            ),
        )
    };
    apply_ok(&yaml("init-never", "Never"));
    let _never = PodGuard("init-never".into());
    apply_ok(&yaml("init-onfail", "OnFailure"));
    let _onfail = PodGuard("init-onfail".into());
    apply_ok(&yaml("init-always", "Always"));
    let _always = PodGuard("init-always".into());

    wait_until(
        "init-never",
        "phase Failed",
        || phase("init-never") == "Failed",
        RUNNING_TIMEOUT,
    );
    assert_eq!(status_column("init-never"), "Init:Error");
    let cs = init_status("init-never", "setup").unwrap();
    assert_eq!(cs["state"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(cs["restartCount"], 0, "{cs}");
    let app = container_status("init-never", "app").unwrap();
    assert_eq!(
        app["state"]["waiting"]["reason"], "PodInitializing",
        "the app container never ran: {app}"
    );
    let init = condition("init-never", "Initialized");
    assert_eq!(init["status"], "False");

    // OnFailure and Always run it again: immediately once, then with back-off.
    for name in ["init-onfail", "init-always"] {
        wait_until(
            name,
            "Init:CrashLoopBackOff",
            || status_column(name) == "Init:CrashLoopBackOff",
            RUNNING_TIMEOUT,
        );
        assert_eq!(phase(name), "Pending");
        let cs = init_status(name, "setup").unwrap();
        assert!(cs["restartCount"].as_u64() >= Some(1), "{cs}");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
        assert!(
            container_status(name, "app").unwrap()["state"]["waiting"].is_object(),
            "app container started although init failed"
        );
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn crash_loop_back_off_restarts_at_once_then_after_ten_seconds() {
    require_vm();
    apply_ok(&pod_yaml("crashloop", "Always", "", "sleep 1; exit 1"));
    let _pod = PodGuard("crashloop".into());
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    let mut back_off_message = String::new();
    let ok = wait_for(
        || {
            let Some(cs) = container_status("crashloop", "app") else {
                return false;
            };
            let count = cs["restartCount"].as_u64().unwrap_or(0);
            if seen.last().is_none_or(|(c, _)| *c != count) {
                seen.push((count, Instant::now()));
            }
            // The back-off before the second restart (a late poll may see the next one's).
            if count == 1 && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
                back_off_message = cs["state"]["waiting"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
            }
            count >= 2
        },
        Duration::from_secs(90),
    );
    assert!(ok, "no second restart: {seen:?}");
    let at = |n: u64| seen.iter().find(|(c, _)| *c == n).map(|(_, t)| *t);
    let (one, two) = (at(1).unwrap(), at(2).unwrap());
    // Instance 2 ran about a second, then the back-off held the third for 10 s.
    let gap = two - one;
    assert!(
        gap >= Duration::from_secs(9) && gap <= Duration::from_secs(30),
        "second restart {gap:?} after the first; want about 11 s: {seen:?}"
    );
    assert!(
        back_off_message
            .starts_with("back-off 10s restarting failed container=app pod=crashloop_default("),
        "waiting message: {back_off_message:?}"
    );
    assert!(has_event(
        "crashloop",
        "BackOff",
        "Back-off restarting failed container app in pod crashloop_default("
    ));
}

fn sidecar_pod(name: &str, log_dir: &Path, policy: &str, app_cmd: &str) -> String {
    let log = "    volumeMounts: [{name: log, mountPath: /log}]\n";
    let sidecar = |n: &str| {
        let cmd = format!(
            "echo start {n} >> /log/order; trap \"echo stop {n} >> /log/order; exit 0\" TERM; while true; do sleep 1 & wait; done"
        );
        container(n, &cmd, &format!("    restartPolicy: Always\n{log}"))
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 10
  initContainers:
{}{}{}  containers:
{}  volumes:
  - name: log
    hostPath: {{path: {}, type: Directory}}
",
        sidecar("proxy"),
        sidecar("logger"),
        container("setup", "echo setup >> /log/order", log),
        container("app", app_cmd, log),
        log_dir.display()
    )
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn sidecars_start_in_order_and_stop_after_the_app_in_reverse() {
    require_vm();
    let dir = host_dir("sidecar-order");
    // `sleep 1 & wait`: each trap runs as its signal comes, not after the loop's sleep, so that
    // the pod's shared grace period is not spent waiting for sleeps on a loaded VM.
    let app = "echo app >> /log/order; trap \"echo stop app >> /log/order; exit 0\" TERM; while true; do sleep 1 & wait; done";
    apply_ok(&sidecar_pod("sidecars", &dir, "Always", app));
    let guard = PodGuard("sidecars".into());
    wait_until(
        "sidecars",
        "the app's line",
        || read_lines(&dir.join("order")).contains(&"app".to_string()),
        RUNNING_TIMEOUT,
    );
    let lines = read_lines(&dir.join("order"));
    assert_eq!(
        lines,
        ["start proxy", "start logger", "setup", "app"],
        "start order"
    );
    // Sidecars count in READY, as kubectl counts restartable init containers.
    wait_until(
        "sidecars",
        "READY 3/3",
        || column("sidecars", "READY") == "3/3",
        RUNNING_TIMEOUT,
    );
    assert_eq!(status_column("sidecars"), "Running");
    let proxy = init_status("sidecars", "proxy").unwrap();
    assert_eq!(proxy["started"], true, "{proxy}");
    assert_eq!(proxy["ready"], true, "{proxy}");
    assert!(proxy["state"]["running"].is_object(), "{proxy}");

    let out = peapod(&["delete", "pod", "sidecars", "--grace-period", "10"]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    drop(guard);
    let lines = read_lines(&dir.join("order"));
    let (app, logger, proxy) = (
        position(&lines, "stop app"),
        position(&lines, "stop logger"),
        position(&lines, "stop proxy"),
    );
    assert!(
        app < logger && logger < proxy,
        "stop order: app, then the sidecars last to first: {lines:?}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_job_like_pod_with_a_sidecar_completes() {
    require_vm();
    let dir = host_dir("sidecar-job");
    apply_ok(&sidecar_pod(
        "sidecar-job",
        &dir,
        "Never",
        "echo app >> /log/order; sleep 1; echo done",
    ));
    let _pod = PodGuard("sidecar-job".into());
    wait_until(
        "sidecar-job",
        "phase Succeeded",
        || phase("sidecar-job") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    assert_eq!(status_column("sidecar-job"), "Completed");
    assert_eq!(column("sidecar-job", "READY"), "0/3");
    let lines = read_lines(&dir.join("order"));
    assert!(
        position(&lines, "stop logger") < position(&lines, "stop proxy"),
        "sidecars stopped last to first: {lines:?}"
    );
    let pod = pod_json("sidecar-job");
    for sidecar in ["proxy", "logger"] {
        let cs = status_in(&pod, "initContainerStatuses", sidecar);
        assert!(cs["state"]["terminated"].is_object(), "{cs}");
        assert_eq!(cs["restartCount"], 0, "stopped, not restarted: {cs}");
    }
    assert!(has_event_in(&pod, "Killing", "Stopping container proxy"));
    let logs = peapod_ok(&["logs", "sidecar-job", "-c", "app"]);
    assert_eq!(logs, "done\n");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn active_deadline_fails_the_pod() {
    require_vm();
    let yaml = pod_yaml("deadline", "Always", "", SLEEPER).replace(
        "  restartPolicy: Always\n",
        "  restartPolicy: Always\n  activeDeadlineSeconds: 5\n",
    );
    apply_ok(&yaml);
    let _pod = PodGuard("deadline".into());
    wait_until(
        "deadline",
        "phase Failed",
        || phase("deadline") == "Failed",
        RUNNING_TIMEOUT,
    );
    let status = &pod_json("deadline")["status"];
    assert_eq!(status["reason"], "DeadlineExceeded", "{status}");
    assert_eq!(
        status["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert!(has_event(
        "deadline",
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline"
    ));
    wait_until(
        "deadline",
        "the container stopped",
        || {
            container_status("deadline", "app")
                .is_some_and(|c| c["state"]["terminated"].is_object())
        },
        RUNNING_TIMEOUT,
    );
    assert!(has_event("deadline", "Killing", "Stopping container app"));
    assert_eq!(restart_count("deadline", "app"), 0);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_finished_pod_gives_back_its_host_resources_but_keeps_status_and_logs() {
    require_vm();
    let gate = host_dir("finished-gate");
    let before = leftovers();
    let (cmd, mount) = gated(&gate, "exit 0");
    apply_ok(&pod_yaml(
        "finished",
        "Never",
        &mount,
        &format!("echo hello; {cmd}"),
    ));
    let guard = PodGuard("finished".into());
    wait_running("finished");
    let pod = pod_json("finished");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let pause = sandbox_pid("finished");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    open_gate(&gate);
    wait_until(
        "finished",
        "phase Succeeded",
        || phase("finished") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    // The supervisor releases the host's resources (the pause process first), then records the
    // pod as finished and exits: the record is the last step, so it is what the test waits for.
    wait_until(
        "finished",
        "the pod recorded as finished",
        || pod_state("finished")["finished"] == true,
        Duration::from_secs(30),
    );
    assert!(!is_alive(pause), "the pause process outlived the finish");
    // What stays: the record, its status and logs; the supervisor is gone, not `Unknown`.
    assert_eq!(status_column("finished"), "Completed");
    assert_eq!(peapod_ok(&["logs", "finished"]), "hello\n");
    assert_eq!(
        condition("finished", "PodReadyToStartContainers")["status"],
        "False"
    );
    // What goes: veth, IP, cgroups, mounts.
    let ipam = std::fs::read_to_string(ipam_file()).unwrap_or_default();
    assert!(!ipam.contains(&uid), "IP {ip} still allocated: {ipam}");
    let left = leftovers();
    let extra: Vec<&String> = left
        .iter()
        .filter(|l| !before.contains(l) && !l.starts_with("pod dir"))
        .collect();
    assert!(extra.is_empty(), "a finished pod holds: {extra:?}");
    // delete cleans the rest.
    let out = peapod(&["delete", "pod", "finished"]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    drop(guard);
    assert_eq!(leftovers(), before, "delete left resources behind");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_never_pod_whose_sandbox_died_is_not_run_again() {
    require_vm();
    apply_ok(&pod_yaml("lost-never", "Never", "", "sleep 3600"));
    let _pod = PodGuard("lost-never".into());
    wait_running("lost-never");
    kill(sandbox_pid("lost-never"), "KILL");
    wait_until(
        "lost-never",
        "phase Failed",
        || phase("lost-never") == "Failed",
        RUNNING_TIMEOUT,
    );
    let pod = pod_json("lost-never");
    assert!(has_event_in(
        &pod,
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created."
    ));
    assert!(has_event_in(&pod, "Killing", "Stopping container app"));
    std::thread::sleep(Duration::from_secs(3));
    let pod = pod_json("lost-never");
    assert_eq!(
        status_in(&pod, "containerStatuses", "app")["restartCount"],
        0,
        "a Never pod ran again: {pod}"
    );
    assert_eq!(pod["status"]["phase"], "Failed");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn share_process_namespace_shows_the_other_containers_and_reaps_orphans() {
    require_vm();
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: shared-pids
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 2
  containers:
{}{}",
        container("shell", SLEEPER, ""),
        container("sleeper", "exec sleep 3601", ""),
    );
    apply_ok(&yaml);
    let _pod = PodGuard("shared-pids".into());
    wait_running("shared-pids");
    let (code, ps) = exec("shared-pids", "shell", &["ps", "-o", "pid,comm,args"]);
    assert_eq!(code, 0, "ps: {ps}");
    assert!(
        ps.contains("sleep 3601"),
        "the other container's process: {ps}"
    );
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or("");
    assert!(
        pid1.contains("peapod-pause"),
        "pid 1 is the pause process: {ps}"
    );
    // An orphan is reparented to the pause process, which reaps it. Only a zombie whose parent
    // is pid 1 counts: the shell container's own loop leaves its `sleep 1` a zombie for the
    // moment between that sleep's exit and the shell's wait, which ps may catch.
    let (code, _) = exec("shared-pids", "shell", &["sh", "-c", "(sleep 1 &) ; true"]);
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_secs(3));
    let (_, stat) = exec("shared-pids", "shell", &["ps", "-o", "stat,ppid,args"]);
    let orphan_zombie = |l: &str| {
        let mut fields = l.split_whitespace();
        fields.next().is_some_and(|s| s.starts_with('Z')) && fields.next() == Some("1")
    };
    assert!(
        !stat.lines().any(orphan_zombie),
        "a zombie of the pause process was left: {stat}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn pod_level_resources_set_the_pod_cgroup() {
    require_vm();
    let resources = "    resources:
      requests: {cpu: 250m, memory: 50Mi}
      limits: {cpu: 500m, memory: 100Mi}
";
    let yaml = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: pod-resources
spec:
  terminationGracePeriodSeconds: 2
  resources:
    requests: {{cpu: 500m, memory: 100Mi}}
    limits: {{cpu: '1', memory: 200Mi}}
  containers:
{}{}",
        container("app", SLEEPER, resources),
        container("helper", SLEEPER, ""),
    );
    apply_ok(&yaml);
    let _pod = PodGuard("pod-resources".into());
    wait_running("pod-resources");
    let uid = pod_json("pod-resources")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = PathBuf::from(CGROUP_DIR).join(format!("pod-{uid}"));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(read("cpu.max").trim(), "100000 100000");
    assert_eq!(read("memory.max").trim(), (200u64 << 20).to_string());
    // 500m -> 512 shares -> the kubelet's pod weight 1 + (512-2)*9999/262142.
    assert_eq!(read("cpu.weight").trim(), "20");
    // Created in their cgroups (clone3 CLONE_INTO_CGROUP, or cgroup.procs where refused): the
    // pause process in the sandbox cgroup, the container in its own, which is the root of its
    // cgroup namespace.
    let state = accounting::read_state(&uid).expect("state.json");
    let cgroup_of = |process: &serde_json::Value| {
        let pid = accounting::live_recorded(process).expect("a recorded live process");
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
    };
    let pause = cgroup_of(&state["sandbox"]["process"]);
    assert!(
        pause.contains(&format!("/pod-{uid}/sandbox\n")),
        "pause process: {pause}"
    );
    let app = cgroup_of(&state["containers"]["app"]["process"]);
    assert!(
        app.contains(&format!("/pod-{uid}/app-")),
        "container: {app}"
    );
    let (code, inside) = exec("pod-resources", "app", &["cat", "/proc/self/cgroup"]);
    assert_eq!((code, inside.trim()), (0, "0::/"), "seen inside: {inside}");
    assert_eq!(pod_json("pod-resources")["status"]["qosClass"], "Burstable");
    // A container above the pod's limit is refused with the API server's words.
    let bad = yaml
        .replace("name: pod-resources", "name: pod-resources-bad")
        .replace(
            "limits: {cpu: 500m, memory: 100Mi}",
            "limits: {cpu: '2', memory: 100Mi}",
        );
    let out = apply_yaml(&bad);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "spec.resources.containers[0][cpu].limits: Invalid value: \"2\": must be less than or equal to pod limits of 1"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn termination_messages_from_a_non_root_container_and_from_the_logs() {
    require_vm();
    let extra = "    securityContext: {runAsUser: 1000}\n";
    apply_ok(&pod_yaml(
        "message-file",
        "Never",
        extra,
        "echo -n bye > /dev/termination-log",
    ));
    let _file = PodGuard("message-file".into());
    let extra = "    terminationMessagePolicy: FallbackToLogsOnError\n";
    apply_ok(&pod_yaml(
        "message-logs",
        "Never",
        extra,
        "echo oops; exit 2",
    ));
    let _logs = PodGuard("message-logs".into());
    for name in ["message-file", "message-logs"] {
        wait_until(
            name,
            "the container to end",
            || container_status(name, "app").is_some_and(|c| c["state"]["terminated"].is_object()),
            RUNNING_TIMEOUT,
        );
    }
    let t = &container_status("message-file", "app").unwrap()["state"]["terminated"];
    assert_eq!(t["exitCode"], 0, "{t}");
    assert_eq!(t["message"], "bye", "{t}");
    let t = &container_status("message-logs", "app").unwrap()["state"]["terminated"];
    assert_eq!(t["message"], "oops\n", "{t}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn the_grace_period_ends_in_sigkill_for_a_container_that_ignores_the_stop_signal() {
    require_vm();
    // Past its 2 s deadline the pod is stopped; the container ignores SIGTERM, so SIGKILL
    // follows when terminationGracePeriodSeconds (4 s) is spent.
    let yaml = pod_yaml(
        "grace-kill",
        "Never",
        "",
        "trap '' TERM; while true; do sleep 1; done",
    )
    .replace(
        "  terminationGracePeriodSeconds: 2\n",
        "  terminationGracePeriodSeconds: 4\n  activeDeadlineSeconds: 2\n",
    );
    apply_ok(&yaml);
    let _pod = PodGuard("grace-kill".into());
    wait_until(
        "grace-kill",
        "the container to end",
        || {
            container_status("grace-kill", "app")
                .is_some_and(|c| c["state"]["terminated"].is_object())
        },
        RUNNING_TIMEOUT,
    );
    let t = &container_status("grace-kill", "app").unwrap()["state"]["terminated"];
    assert_eq!(t["exitCode"], 137, "{t}");
    assert_eq!(t["reason"], "Error", "{t}");
    let at = |f: &str| {
        t[f].as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(|| panic!("{f} in {t}"))
    };
    // The deadline counts from the pod's startTime (the container may start later on a slow
    // VM): 2 s to the deadline + 4 s of grace, with second precision on both ends.
    let pod_start = pod_json("grace-kill")["status"]["startTime"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .expect("the pod has a status.startTime");
    let ran = at("finishedAt").duration_since(pod_start);
    assert!(
        ran >= jiff::SignedDuration::from_secs(5),
        "killed {ran:?} after the pod started, before the grace period was spent: {t}"
    );
    let pod = pod_json("grace-kill");
    assert!(has_event_in(&pod, "Killing", "Stopping container app"));
    assert_eq!(pod["status"]["phase"], "Failed");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_dead_sandbox_is_reported_and_its_containers_killed_then_run_again() {
    require_vm();
    apply_ok(&pod_yaml("lost-always", "Always", "", SLEEPER));
    let _pod = PodGuard("lost-always".into());
    wait_running("lost-always");
    let first = pod_json("lost-always")["status"]["containerStatuses"][0]["containerID"].clone();
    kill(sandbox_pid("lost-always"), "KILL");
    wait_until(
        "lost-always",
        "restartCount 1",
        || restart_count("lost-always", "app") >= 1,
        RUNNING_TIMEOUT,
    );
    wait_running("lost-always");
    let pod = pod_json("lost-always");
    assert!(has_event_in(
        &pod,
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created."
    ));
    assert!(has_event_in(&pod, "Killing", "Stopping container app"));
    let cs = status_in(&pod, "containerStatuses", "app");
    assert_ne!(cs["containerID"], first, "the same instance: {cs}");
    // The container stopped on SIGTERM: its last state is that termination.
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 0, "{cs}");
    assert_eq!(pod["status"]["phase"], "Running");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_finished_pod_gives_back_its_host_port() {
    require_vm();
    let ports = "    ports:\n    - containerPort: 8080\n      hostPort: 18120\n";
    let gate = host_dir("hp-gate");
    let (cmd, mount) = gated(&gate, "exit 0");
    apply_ok(&pod_yaml(
        "hp-done",
        "Never",
        &format!("{ports}{mount}"),
        &cmd,
    ));
    let _done = PodGuard("hp-done".into());
    wait_running("hp-done");
    assert!(
        pod_state("hp-done")["host_port_table"].is_string(),
        "{}",
        pod_state("hp-done")
    );
    // Another pod wanting the port waits for it, unscheduled.
    apply_ok(&pod_yaml("hp-next", "Always", ports, SLEEPER));
    let _next = PodGuard("hp-next".into());
    wait_until(
        "hp-next",
        "Unschedulable",
        || condition("hp-next", "PodScheduled")["reason"] == "Unschedulable",
        RUNNING_TIMEOUT,
    );
    open_gate(&gate);
    wait_until(
        "hp-done",
        "phase Succeeded",
        || phase("hp-done") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    // The finished pod's table and claim go; the waiting pod gets the port.
    wait_until(
        "hp-done",
        "the host port table released",
        || pod_state("hp-done")["host_port_table"].is_null(),
        Duration::from_secs(30),
    );
    wait_running("hp-next");
    assert_eq!(status_column("hp-done"), "Completed");
}
