//! A simulated host reboot for the VM tests (tests/vm/vm_recovery.rs, tests/vm/vm_cri.rs): every
//! process of the pods on record killed by pid, what peapod mounted unmounted, /run/peapod, the
//! veths and the bridge gone, the cgroups removed; the new boot is [`NEW_BOOT`], which the
//! node agent is given as `PEAPOD_BOOT_ID`. It takes down every pod on record: a test that
//! uses it runs alone.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The boot id the simulated reboot starts (the agent and the supervisors it starts see it).
pub const NEW_BOOT: &str = "00000000-0000-4000-8000-00000000b007";

pub fn live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Every process of the pods on record, from their records and their cgroups.
pub fn pods_processes() -> Vec<i32> {
    let mut pids = Vec::new();
    let pods = lib_dir().join("pods");
    for entry in std::fs::read_dir(&pods).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else {
            continue;
        };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut recorded = vec![
            &state["keeper"],
            &state["supervisor"],
            &state["sandbox"]["process"],
        ];
        if let Some(cs) = state["containers"].as_object() {
            recorded.extend(cs.values().map(|c| &c["process"]));
        }
        pids.extend(
            recorded
                .into_iter()
                .filter_map(|p| p["pid"].as_i64())
                .map(|p| p as i32),
        );
    }
    fn walk(dir: &Path, pids: &mut Vec<i32>) {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.parse::<i32>().ok()));
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), pids);
            }
        }
    }
    walk(Path::new(CGROUP_DIR), &mut pids);
    pids.sort();
    pids.dedup();
    pids.into_iter().filter(|p| live(*p)).collect()
}

/// Cgroup directories under `dir`, deepest first.
fn cgroups_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(cgroups_under(&e.path()));
            out.push(e.path());
        }
    }
    out
}

/// What a reboot does to peapod's pods: every process gone (keepers, then supervisors first,
/// so none reacts: a keeper would start a new supervisor), mounts gone, /run emptied, links and
/// cgroups gone; then a new boot id.
pub fn simulate_reboot() {
    let states: Vec<serde_json::Value> = lib_dir()
        .join("pods")
        .read_dir()
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("state.json")).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .collect();
    for role in ["keeper", "supervisor"] {
        let pids = states
            .iter()
            .filter_map(|s| s[role]["pid"].as_i64())
            .map(|p| p as i32)
            .filter(|p| live(*p));
        for pid in pids {
            kill(pid, "KILL");
        }
    }
    let gone = wait_for(
        || {
            for pid in pods_processes() {
                // Best effort: a process may end between the listing and the kill.
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .output();
            }
            pods_processes().is_empty()
        },
        Duration::from_secs(30),
    );
    assert!(gone, "processes left: {:?}", pods_processes());
    // Mounts under peapod's directories, deepest first.
    let lib = lib_dir().to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut mounts: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&lib) || m.starts_with(RUN_DIR))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let ok = Command::new("umount").args(["-l", m]).status().unwrap();
        assert!(ok.success(), "umount {m}");
    }
    std::fs::remove_dir_all(RUN_DIR).unwrap();
    // The links (veths, the bridge) and the cgroups go with the boot.
    let out = Command::new(IP).args(["-o", "link"]).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if name.starts_with("pp") || name.contains("peapod") {
            // A veth goes by itself with its namespace, maybe between the listing and here.
            let _ = Command::new(IP).args(["link", "del", name]).output();
        }
    }
    // A cgroup whose last process just died may stay busy for a moment.
    let removed = wait_for(
        || {
            for cg in cgroups_under(Path::new(CGROUP_DIR)) {
                let _ = std::fs::remove_dir(&cg);
            }
            cgroups_under(Path::new(CGROUP_DIR)).is_empty()
        },
        Duration::from_secs(30),
    );
    assert!(
        removed,
        "cgroups left: {:?}",
        cgroups_under(Path::new(CGROUP_DIR))
    );
}
