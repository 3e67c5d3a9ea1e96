//! CPU shared between pods in proportion to their requests, as the kubelet's pod cgroups share
//! it: two pods spinning on the same CPU, one asking for 4 times the CPU of the other, get
//! roughly that share of it. Runs only in the test VM (`scripts/test --vm-only --only vm_cpu`).

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A container spinning on CPU 0 only (taskset: both pods compete for the same CPU whatever
/// the VM's count), with `cpu` requested.
fn spinner(name: &str, cpu: &str) -> String {
    pod_of(
        name,
        "Always",
        1,
        &format!(
            "  - name: spin
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, \"exec taskset -c 0 sh -c 'while :; do :; done'\"]
    resources:
      requests: {{cpu: {cpu}}}
"
        ),
        "",
    )
}

fn pod_cgroup(pod: &str) -> PathBuf {
    let uid = pod_json(pod)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    PathBuf::from(CGROUP_DIR).join(format!("pod-{uid}"))
}

/// `usage_usec` of a cgroup's cpu.stat.
fn usage_usec(cgroup: &Path) -> u64 {
    let stat = std::fs::read_to_string(cgroup.join("cpu.stat")).unwrap();
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no usage_usec in {stat}"))
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn cpu_is_shared_between_pods_in_proportion_to_their_requests() {
    require_vm();
    load_test_image();
    let _small = start_pod("spin-small", &spinner("spin-small", "100m"));
    let _big = start_pod("spin-big", &spinner("spin-big", "400m"));
    let (small, big) = (pod_cgroup("spin-small"), pod_cgroup("spin-big"));
    // The kubelet's pod weight: shares = milli * 1024 / 1000, weight = 1 + (shares - 2) *
    // 9999 / 262142 [cm/cgroup_manager_linux.go CpuSharesToCpuWeight]: 102 -> 4, 409 -> 16.
    let weight = |cg: &Path| std::fs::read_to_string(cg.join("cpu.weight")).unwrap();
    assert_eq!(weight(&small).trim(), "4");
    assert_eq!(weight(&big).trim(), "16");
    // Both spin on CPU 0 (the affinity is inherited by the loop's shell).
    for pod in ["spin-small", "spin-big"] {
        let (code, out) = exec(pod, "spin", &["taskset", "-p", "1"]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.trim().ends_with(": 1"),
            "{pod} not pinned to CPU 0: {out}"
        );
    }
    let before = (usage_usec(&small), usage_usec(&big));
    std::thread::sleep(Duration::from_secs(5));
    let after = (usage_usec(&small), usage_usec(&big));
    let (s, b) = (after.0 - before.0, after.1 - before.1);
    println!(
        "PEAPOD-FIGURE cpu share over 5 s: small {s} us, big {b} us, ratio {:.2}",
        b as f64 / s.max(1) as f64
    );
    assert!(
        s > 0,
        "the small pod got no CPU at all: small {s} us, big {b} us"
    );
    // Weights 16:4; a wide margin: the bigger gets more than twice the smaller's.
    assert!(b > 2 * s, "small {s} us, big {b} us");
}
