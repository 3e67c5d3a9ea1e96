//! The seed pod scenarios, driven through the peapod CLI as a user would: networking, the files
//! the kubelet writes, restarts, restart policies, resource limits, OOM, delete, validation.
//! Runs only in the test VM (`scripts/test`); every test uses its own pod names.

use crate::common;

use common::*;
use std::time::Duration;

fn sleeper(name: &str) -> String {
    pod_yaml(
        name,
        "Always",
        "",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    )
}

fn start(name: &str, yaml: &str) -> PodGuard {
    apply_ok(yaml);
    let guard = PodGuard(name.to_string());
    wait_running(name);
    guard
}

fn in_pod_network(ip: &str) -> bool {
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    octets.len() == 4 && octets[0] == 10 && octets[1] == 88
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn pod_runs_and_gets_an_ip() {
    require_vm();
    let _pod = start("run-ip", &sleeper("run-ip"));
    let ip = pod_ip("run-ip").expect("running pod has no podIP");
    assert!(in_pod_network(&ip), "pod IP {ip} is not in 10.88.0.0/16");
    assert_eq!(status_column("run-ip"), "Running");
    // The harness reads pods in-process (`try_pod_json`): it must see what the CLI prints.
    let printed: serde_json::Value =
        serde_json::from_str(&peapod_ok(&["get", "pods", "run-ip", "-o", "json"])).unwrap();
    assert_eq!(
        printed,
        pod_json("run-ip"),
        "get -o json and the harness's reading differ"
    );
    let (code, out) = exec("run-ip", "app", &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("inet {ip}/")),
        "eth0 does not hold {ip}: {out}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn hostname_hosts_and_resolv_conf_match_the_kubelet() {
    require_vm();
    let _pod = start("files", &sleeper("files"));
    let ip = pod_ip("files").expect("no podIP");
    let (_, hostname) = exec("files", "app", &["cat", "/etc/hostname"]);
    assert_eq!(hostname.trim(), "files");
    let (_, uts) = exec("files", "app", &["hostname"]);
    assert_eq!(uts.trim(), "files");
    let (_, hosts) = exec("files", "app", &["cat", "/etc/hosts"]);
    let expected = format!(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{ip}\tfiles\n"
    );
    assert_eq!(hosts, expected, "/etc/hosts differs from the kubelet's");
    // No cluster DNS: ClusterFirst behaves like Default and carries the node's nameservers,
    // search domains and options (re-emitted in containerd's order: search, nameserver, options).
    let (_, resolv) = exec("files", "app", &["cat", "/etc/resolv.conf"]);
    let node = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    let mut pod_lines: Vec<&str> = resolv.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut node_lines: Vec<&str> = node
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    pod_lines.sort_unstable();
    node_lines.sort_unstable();
    assert_eq!(
        pod_lines, node_lines,
        "resolv.conf does not carry the node's settings"
    );
    assert!(resolv.starts_with("search "), "search line first: {resolv}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn containers_of_a_pod_share_localhost() {
    require_vm();
    let yaml = "apiVersion: v1
kind: Pod
metadata:
  name: localhost
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www\"]
  - name: client
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
";
    let _pod = start("localhost", yaml);
    let mut body = String::new();
    let ok = wait_for(
        || {
            let (code, out) = exec(
                "localhost",
                "client",
                &["wget", "-qO-", "http://127.0.0.1:8080/"],
            );
            body = out;
            code == 0
        },
        Duration::from_secs(30),
    );
    assert!(
        ok && body.trim() == "hello-from-web",
        "client cannot reach web: {body:?}"
    );
    // same network namespace: the port is taken for the other container too
    let (code, _) = exec("localhost", "client", &["httpd", "-f", "-p", "8080"]);
    assert_ne!(
        code, 0,
        "a second bind of port 8080 in the same pod succeeded"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn pods_reach_each_other_over_the_bridge() {
    require_vm();
    let web = pod_yaml(
        "bridge-web",
        "Always",
        "",
        "mkdir -p /www && echo hello-bridge > /www/index.html && exec httpd -f -p 80 -h /www",
    );
    let _web = start("bridge-web", &web);
    let _client = start("bridge-client", &sleeper("bridge-client"));
    let ip = pod_ip("bridge-web").expect("no podIP");
    assert_ne!(
        Some(ip.clone()),
        pod_ip("bridge-client"),
        "two pods share an IP"
    );
    let url = format!("http://{ip}/");
    let mut body = String::new();
    let ok = wait_for(
        || {
            let (code, out) = exec("bridge-client", "app", &["wget", "-qO-", &url]);
            body = out;
            code == 0
        },
        Duration::from_secs(30),
    );
    assert!(
        ok && body.trim() == "hello-bridge",
        "{url} from the other pod: {body:?}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn killed_container_is_restarted_and_counted() {
    require_vm();
    let _pod = start("restart", &sleeper("restart"));
    let first = container_pid("restart", "app");
    kill(first, "KILL");
    wait_until(
        "restart",
        "restartCount 1",
        || restart_count("restart", "app") == 1,
        RUNNING_TIMEOUT,
    );
    wait_running("restart");
    let second = container_pid("restart", "app");
    assert_ne!(first, second, "the container was not started anew");
    let cs = container_status("restart", "app").unwrap();
    assert_eq!(
        cs["lastState"]["terminated"]["exitCode"], 137,
        "lastState: {cs}"
    );
    let status = peapod_ok(&["get", "pods", "restart"]);
    assert!(
        status.contains("1 ("),
        "RESTARTS does not show `1 (<age> ago)`: {status}"
    );

    // a graceful exit on SIGTERM is a restart too (restartPolicy Always)
    kill(second, "TERM");
    wait_until(
        "restart",
        "restartCount 2",
        || restart_count("restart", "app") == 2,
        RUNNING_TIMEOUT,
    );
    let cs = container_status("restart", "app").unwrap();
    assert_eq!(
        cs["lastState"]["terminated"]["exitCode"], 0,
        "lastState: {cs}"
    );
    assert_eq!(
        cs["lastState"]["terminated"]["reason"], "Completed",
        "lastState: {cs}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn killed_sandbox_restarts_the_whole_pod() {
    require_vm();
    let _pod = start("sandbox", &sleeper("sandbox"));
    let app = container_pid("sandbox", "app");
    kill(sandbox_pid("sandbox"), "KILL");
    wait_until(
        "sandbox",
        "restartCount 1",
        || restart_count("sandbox", "app") >= 1,
        RUNNING_TIMEOUT,
    );
    wait_running("sandbox");
    assert!(
        !std::path::Path::new(&format!("/proc/{app}")).exists(),
        "old container survived"
    );
    let ip = pod_ip("sandbox").expect("no podIP after the sandbox restart");
    assert!(in_pod_network(&ip), "pod IP {ip}");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn restart_policy_never_reports_the_failure() {
    require_vm();
    apply_ok(&pod_yaml("never", "Never", "", "exit 3"));
    let _pod = PodGuard("never".into());
    wait_until(
        "never",
        "phase Failed",
        || phase("never") == "Failed",
        RUNNING_TIMEOUT,
    );
    assert_eq!(status_column("never"), "Error");
    let cs = container_status("never", "app").unwrap();
    assert_eq!(cs["state"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(cs["state"]["terminated"]["reason"], "Error", "{cs}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        restart_count("never", "app"),
        0,
        "restartPolicy Never restarted"
    );
}

/// A program the kernel refuses to execute: the container is a StartError (exit code 128, the
/// reason in its message, a Failed event), as the kubelet shows it, and never Running. A
/// missing path is found before the init's gate, as runc's init finds it before its exec fifo
/// (in Go's LookPath words: `stat <path>: ...`);
/// a file that is no program only by the execve, after the gate, and still ends as one.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_program_that_cannot_be_executed_is_a_start_error() {
    require_vm();
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new("/tmp/vm-pods-start-error");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let prog = dir.join("prog");
    std::fs::write(&prog, "neither ELF nor a script\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, program, reason) in [
        (
            "start-error-enoent",
            "/bad/missing",
            "stat /bad/missing: no such file or directory",
        ),
        ("start-error-enoexec", "/bad/prog", "exec format error"),
    ] {
        let yaml = pod_of(
            name,
            "Never",
            2,
            &format!(
                "  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [{program:?}]
    volumeMounts:
    - {{name: bad, mountPath: /bad}}
"
            ),
            &format!(
                "  volumes:
  - name: bad
    hostPath: {{path: {}}}
",
                dir.display()
            ),
        );
        apply_ok(&yaml);
        let _pod = PodGuard(name.into());
        wait_until(
            name,
            "phase Failed",
            || phase(name) == "Failed",
            RUNNING_TIMEOUT,
        );
        let cs = container_status(name, "app").unwrap();
        let t = &cs["state"]["terminated"];
        assert_eq!(t["reason"], "StartError", "{cs}");
        assert_eq!(t["exitCode"], 128, "{cs}");
        let message = format!("exec: \"{program}\": {reason}");
        assert_eq!(t["message"], message.as_str(), "{cs}");
        assert_eq!(status_column(name), "StartError");
        assert!(
            has_event(
                name,
                "Failed",
                &format!("Error: failed to start container \"app\": {message}")
            ),
            "{:?}",
            events(name)
        );
        assert_eq!(restart_count(name, "app"), 0, "{cs}");
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn restart_policy_on_failure() {
    require_vm();
    apply_ok(&pod_yaml("onfail-ok", "OnFailure", "", "exit 0"));
    let _ok = PodGuard("onfail-ok".into());
    wait_until(
        "onfail-ok",
        "phase Succeeded",
        || phase("onfail-ok") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    assert_eq!(status_column("onfail-ok"), "Completed");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        restart_count("onfail-ok", "app"),
        0,
        "exit 0 was restarted under OnFailure"
    );

    apply_ok(&pod_yaml("onfail-bad", "OnFailure", "", "exit 1"));
    let _bad = PodGuard("onfail-bad".into());
    wait_until(
        "onfail-bad",
        "a restart",
        || restart_count("onfail-bad", "app") >= 1,
        RUNNING_TIMEOUT,
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn cpu_and_memory_limits_reach_the_cgroup() {
    require_vm();
    let extra = "    resources:\n      limits:\n        cpu: 500m\n        memory: 64Mi\n";
    let yaml = pod_yaml(
        "limits",
        "Always",
        extra,
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    );
    let _pod = start("limits", &yaml);
    let cg = cgroup_of(container_pid("limits", "app"));
    let read = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap_or_default();
    assert_eq!(
        read("cpu.max").trim(),
        "50000 100000",
        "cpu.max of {}",
        cg.display()
    );
    assert_eq!(
        read("memory.max").trim(),
        "67108864",
        "memory.max of {}",
        cg.display()
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn memory_hog_is_oom_killed() {
    require_vm();
    let extra = "    resources:\n      limits:\n        memory: 32Mi\n";
    let yaml = pod_yaml("oom", "Never", extra, "x=a; while true; do x=$x$x; done");
    apply_ok(&yaml);
    let _pod = PodGuard("oom".into());
    wait_until(
        "oom",
        "the container to terminate",
        || container_status("oom", "app").is_some_and(|c| c["state"]["terminated"].is_object()),
        Duration::from_secs(120),
    );
    let cs = container_status("oom", "app").unwrap();
    assert_eq!(cs["state"]["terminated"]["reason"], "OOMKilled", "{cs}");
    assert_eq!(cs["state"]["terminated"]["exitCode"], 137, "{cs}");
    assert_eq!(status_column("oom"), "OOMKilled");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn delete_leaves_nothing_behind() {
    require_vm();
    let before = leftovers();
    apply_ok(&sleeper("gone"));
    wait_running("gone");
    let ip = pod_ip("gone").expect("no podIP");
    let out = peapod(&["delete", "pod", "gone", "--grace-period", "5"]);
    assert!(out.status.success(), "delete failed: {}", stderr(&out));
    assert!(
        try_pod_json("gone").is_none(),
        "pod still listed after delete"
    );
    let list = peapod_ok(&["get", "pods"]);
    assert!(
        !list.lines().any(|l| l.starts_with("gone ")),
        "pod still listed: {list}"
    );
    assert_eq!(leftovers(), before, "delete left resources behind");
    // the IP is released: a new pod may get it, and nothing on the host answers it meanwhile
    let addrs = std::process::Command::new(IP)
        .args(["-o", "addr"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&addrs.stdout).contains(&format!("inet {ip}/")),
        "the pod IP {ip} is still configured"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn misspelled_field_is_refused_with_its_path() {
    require_vm();
    let before = leftovers();
    let yaml = "apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
  - name: app
    image: busybox
    resorces:
      limits:
        memory: 64Mi
";
    let out = apply_yaml(yaml);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad YAML was not refused with exit 1"
    );
    assert!(
        stderr(&out).contains("spec.containers[0].resorces"),
        "stderr does not name the field: {}",
        stderr(&out)
    );
    assert!(try_pod_json("typo").is_none(), "a refused pod was created");
    assert_eq!(leftovers(), before, "a refused pod left resources behind");
}
