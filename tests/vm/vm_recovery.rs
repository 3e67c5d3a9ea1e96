//! Pods after a host reboot: a simulated reboot (every process of the pods killed by pid, what
//! peapod mounted unmounted, /run/peapod, the veths and the bridge gone, a new boot id), then
//! `peapod node` brings the pods back as a kubelet's node does. Runs only in the test VM
//! (`scripts/test`); it takes down every pod on record, so it must run alone.

use crate::common;

use common::reboot::simulate_reboot;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";
use common::reboot::NEW_BOOT;

fn uid(pod: &str) -> String {
    pod_json(pod)["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ipam() -> serde_json::Value {
    let text = std::fs::read_to_string(ipam_file()).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// The body of `GET /` from port 8080 of `ip`, retried while the server comes up.
fn http_get(ip: &str) -> String {
    use std::io::{Read, Write};
    let mut body = String::new();
    let answered = wait_for(
        || {
            let Ok(mut s) = std::net::TcpStream::connect_timeout(
                &format!("{ip}:8080").parse().unwrap(),
                Duration::from_secs(5),
            ) else {
                return false;
            };
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            !body.is_empty()
        },
        RUNNING_TIMEOUT,
    );
    assert!(answered, "{ip}:8080 does not answer");
    body
}

fn agent_once() -> String {
    let out = peapod_env(
        &["node", "--once", "--manifests", "/tmp/recovery-manifests"],
        &[("PEAPOD_BOOT_ID", PathBuf::from(NEW_BOOT))],
    );
    expect_ok(&["node", "--once"], out)
}

fn wait_container_running(pod: &str, container: &str) {
    let running =
        || container_status(pod, container).is_some_and(|s| s["state"]["running"].is_object());
    if !wait_for(running, RUNNING_TIMEOUT) {
        explain(pod);
        panic!("{pod}: container {container} not running");
    }
}

/// After a recovery: waits until every container of the pod runs; on failure prints what the
/// pod's events and its supervisor's log say.
fn wait_recovered(pod: &str) {
    let running = || {
        try_pod_json(pod).is_some_and(|v| {
            v["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
        })
    };
    if !wait_for(running, RUNNING_TIMEOUT) {
        explain(pod);
        panic!("{pod} did not come back: {}", pod_json(pod));
    }
}

fn explain(pod: &str) {
    eprintln!(
        "{}",
        String::from_utf8_lossy(&peapod(&["describe", "pod", pod]).stdout)
    );
    let log = format!("{RUN_DIR}/pods/{}/supervisor.log", uid(pod));
    eprintln!(
        "{log}:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn logs(args: &[&str]) -> String {
    peapod_ok(&[&["logs"], args].concat())
}

fn terminated(status: &serde_json::Value, which: &str) -> (i64, String) {
    let t = &status[which]["terminated"];
    (
        t["exitCode"].as_i64().unwrap_or(-1),
        t["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn pods_come_back_after_a_reboot_as_their_restart_policy_says() {
    require_vm();
    load_test_image();
    let _ = std::fs::create_dir_all("/tmp/recovery-manifests");
    let always = pod_of(
        "rb-always",
        "Always",
        2,
        &container_entry(
            "app",
            "echo up-$(cat /proc/sys/kernel/random/uuid); mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www",
        ),
        "",
    );
    // Its emptyDir outlives the reboot, as the pod's directory does.
    let long = container_entry(
        "long",
        &format!(
            "if [ -f /data/mark ]; then echo kept; else touch /data/mark; echo new; fi; {SLEEP}"
        ),
    ) + "    volumeMounts:\n    - {name: data, mountPath: /data}\n";
    let onfail = pod_of(
        "rb-onfail",
        "OnFailure",
        2,
        &(container_entry("done", "echo finished") + &long),
        "  volumes:\n  - {name: data, emptyDir: {}}\n",
    );
    let never_done = pod_yaml("rb-never-done", "Never", "", "echo bye");
    let never_running = pod_yaml("rb-never-running", "Never", "", SLEEP);
    let init = pod_of(
        "rb-init",
        "Always",
        2,
        &container_entry("app", SLEEP),
        &format!(
            "  initContainers:\n{}",
            container_entry("prep", "echo prepared")
        ),
    );
    let deleting = pod_yaml("rb-deleting", "Always", "", SLEEP);
    let names = [
        "rb-always",
        "rb-onfail",
        "rb-never-done",
        "rb-never-running",
        "rb-init",
        "rb-deleting",
    ];
    let _guards: Vec<PodGuard> = names.iter().map(|n| PodGuard(n.to_string())).collect();
    for yaml in [
        &always,
        &onfail,
        &never_done,
        &never_running,
        &init,
        &deleting,
    ] {
        apply_ok(yaml);
    }
    for n in ["rb-always", "rb-never-running", "rb-init", "rb-deleting"] {
        wait_running(n);
    }
    wait_container_running("rb-onfail", "long");
    wait_until(
        "rb-never-done",
        "Succeeded",
        || phase("rb-never-done") == "Succeeded",
        RUNNING_TIMEOUT,
    );
    wait_until(
        "rb-onfail",
        "done Completed",
        || {
            container_status("rb-onfail", "done")
                .is_some_and(|s| terminated(&s, "state").1 == "Completed")
        },
        RUNNING_TIMEOUT,
    );
    let ips: Vec<Option<String>> = ["rb-always", "rb-onfail", "rb-init"]
        .iter()
        .map(|n| pod_ip(n))
        .collect();
    // Running is told at the exec; the output reaches the log when the supervisor drains it.
    wait_for(|| logs(&["rb-always"]).starts_with("up-"), RUNNING_TIMEOUT);
    let first_log = logs(&["rb-always"]);
    assert!(first_log.starts_with("up-"), "{first_log}");
    let finished_status = std::fs::read(
        lib_dir()
            .join("pods")
            .join(uid("rb-never-done"))
            .join("status.json"),
    )
    .unwrap();
    let never_running_uid = uid("rb-never-running");
    let deleting_uid = uid("rb-deleting");
    // The running instance's writable layer, on the disk (its bundle is in the run directory,
    // which the reboot empties).
    let old_layer = lib_dir()
        .join("pods")
        .join(uid("rb-always"))
        .join("containers/app.0.upper");
    assert!(old_layer.exists(), "{}", old_layer.display());
    assert!(old_layer.with_file_name("app.0.work").exists());

    simulate_reboot();
    assert!(
        !ipam_file().exists(),
        "the IP allocations went with the reboot"
    );
    // Leftovers of pods gone before the reboot: a runtime directory, and an address in the
    // allocation file an earlier version kept on the disk (read when the run directory has
    // none, swept, then superseded).
    let earlier = lib_dir().join("network/ipam.json");
    std::fs::write(
        &earlier,
        r#"{"allocations": {"0000-gone": "10.88.255.200"}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(format!("{RUN_DIR}/pods/0000-gone")).unwrap();
    // A delete the reboot cut short (asked, the supervisor gone before it was done).
    std::fs::write(
        lib_dir()
            .join("pods")
            .join(&deleting_uid)
            .join("delete.json"),
        r#"{"gracePeriodSeconds": 30, "requestedAt": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    for n in ["rb-always", "rb-onfail", "rb-init"] {
        assert_eq!(phase(n), "Unknown", "{n} before the agent");
    }

    let recovering = std::time::Instant::now();
    let out = agent_once();
    for n in ["rb-always", "rb-onfail", "rb-never-running", "rb-init"] {
        assert!(
            out.contains(&format!("pod default/{n} recovered after a reboot")),
            "{out}"
        );
    }
    assert!(
        !out.contains("rb-never-done"),
        "a finished pod was touched: {out}"
    );
    assert!(out.contains("pod default/rb-deleting deleted"), "{out}");
    assert!(
        try_pod_json("rb-deleting").is_none(),
        "the deleted pod is back"
    );
    assert!(!lib_dir().join("pods").join(&deleting_uid).exists());

    // Always: running again, one restart, the lost instance Unknown 255, its log kept.
    for n in ["rb-always", "rb-init"] {
        wait_recovered(n);
    }
    wait_container_running("rb-onfail", "long");
    common::accounting::report(&format!(
        "recovery: 3 pods running again {} ms after `peapod node --once` started (TCG VM)",
        recovering.elapsed().as_millis()
    ));
    let s = container_status("rb-always", "app").unwrap();
    assert_eq!(s["restartCount"], 1, "{s}");
    assert_eq!(
        terminated(&s, "lastState"),
        (255, "Unknown".to_string()),
        "{s}"
    );
    assert_eq!(logs(&["rb-always", "--previous"]), first_log);
    assert!(has_event(
        "rb-always",
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created."
    ));
    assert!(
        !old_layer.exists() && !old_layer.with_file_name("app.0.work").exists(),
        "the lost instance's writable layer stayed"
    );
    // OnFailure: the running container again, the completed one not re-run.
    let long = container_status("rb-onfail", "long").unwrap();
    assert_eq!(long["restartCount"], 1, "{long}");
    assert_eq!(terminated(&long, "lastState"), (255, "Unknown".to_string()));
    let done = container_status("rb-onfail", "done").unwrap();
    assert_eq!(done["restartCount"], 0, "{done}");
    assert_eq!(terminated(&done, "state"), (0, "Completed".to_string()));
    assert_eq!(phase("rb-onfail"), "Running");
    wait_for(
        || logs(&["rb-onfail", "-c", "long"]).trim() == "kept",
        RUNNING_TIMEOUT,
    );
    assert_eq!(logs(&["rb-onfail", "-c", "long"]).trim(), "kept");
    assert_eq!(
        logs(&["rb-onfail", "-c", "long", "--previous"]).trim(),
        "new"
    );
    // The init container ran again in the new sandbox, before the app.
    let prep = init_status("rb-init", "prep").unwrap();
    assert_eq!(prep["restartCount"], 1, "{prep}");
    assert_eq!(terminated(&prep, "state"), (0, "Completed".to_string()));
    assert_eq!(
        logs(&["rb-init", "-c", "prep", "--previous"]).trim(),
        "prepared"
    );
    assert_eq!(
        container_status("rb-init", "app").unwrap()["restartCount"],
        1
    );
    // The same addresses, reachable again.
    let now: Vec<Option<String>> = ["rb-always", "rb-onfail", "rb-init"]
        .iter()
        .map(|n| pod_ip(n))
        .collect();
    assert_eq!(now, ips);
    let ip = now[0].clone().expect("rb-always has an IP");
    assert_eq!(
        http_get(&ip).trim(),
        "hi",
        "the recovered pod does not answer at {ip}"
    );
    // Never: a finished pod untouched; one that ran is Failed (lost, not run again).
    let after = std::fs::read(
        lib_dir()
            .join("pods")
            .join(uid("rb-never-done"))
            .join("status.json"),
    )
    .unwrap();
    assert_eq!(after, finished_status, "the finished pod's status changed");
    wait_until(
        "rb-never-running",
        "Failed",
        || phase("rb-never-running") == "Failed",
        RUNNING_TIMEOUT,
    );
    let lost = container_status("rb-never-running", "app").unwrap();
    assert_eq!(lost["restartCount"], 0, "{lost}");
    assert_eq!(terminated(&lost, "state"), (255, "Unknown".to_string()));
    assert!(!has_event(
        "rb-never-running",
        "SandboxChanged",
        "Pod sandbox changed, it will be killed and re-created."
    ));
    // Nothing leaked: the Never pod's address and the gone pod's are given back.
    wait_until(
        "rb-never-running",
        "its state finished",
        || pod_state("rb-never-running")["finished"] == true,
        RUNNING_TIMEOUT,
    );
    let held = ipam()["allocations"].clone();
    let owners: Vec<&String> = held.as_object().unwrap().keys().collect();
    let mut expected: Vec<String> = ["rb-always", "rb-onfail", "rb-init"]
        .iter()
        .map(|n| uid(n))
        .collect();
    expected.sort();
    assert_eq!(owners, expected.iter().collect::<Vec<_>>(), "{held}");
    assert!(!owners.contains(&&never_running_uid));
    assert!(!owners.contains(&&deleting_uid));
    assert!(
        !earlier.exists(),
        "the earlier allocation file is superseded"
    );
    assert!(!Path::new(&format!("{RUN_DIR}/pods/0000-gone")).exists());

    // The agent restarted in the same boot: pods whose supervisors run are left alone.
    let supervisors: Vec<serde_json::Value> = ["rb-always", "rb-onfail", "rb-init"]
        .iter()
        .map(|n| pod_state(n)["supervisor"].clone())
        .collect();
    let again = agent_once();
    assert!(!again.contains("recovered"), "{again}");
    let same: Vec<serde_json::Value> = ["rb-always", "rb-onfail", "rb-init"]
        .iter()
        .map(|n| pod_state(n)["supervisor"].clone())
        .collect();
    assert_eq!(same, supervisors);
    assert_eq!(
        container_status("rb-always", "app").unwrap()["restartCount"],
        1
    );

    for n in names.into_iter().filter(|n| *n != "rb-deleting") {
        let out = delete(n);
        assert!(out.status.success(), "delete {n}: {}", stderr(&out));
    }
    let left = leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
