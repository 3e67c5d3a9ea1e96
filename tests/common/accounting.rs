//! What pods may leave behind after their delete, counted from the host's side: links, mounts,
//! cgroups and pod directories ([`super::leftovers`]), IP allocations (`super::ipam_file`),
//! runtime and log directories, and processes (peapod's own, or any process in a pod cgroup).
//! Pods named in a [`Keep`] (a long-lived witness pod) are allowed their share. Also the
//! resource use of a long-lived process (open descriptors, PSS), for the soak.
//!
//! Everything here reads `/proc` and peapod's files directly: it must stay cheap enough to run
//! after every cycle of the fault and soak suites.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{leftovers, lib_dir, peapod_bin, run_dir};

/// peapod's log directory (`PEAPOD_LOG_DIR` overrides it).
pub const LOG_DIR: &str = "/var/log/pods";

/// The pods whose resources stay: their uids, found once they are running.
#[derive(Debug, Default, Clone)]
pub struct Keep {
    uids: Vec<String>,
    /// [`leftovers`] while only the kept pods exist.
    baseline: BTreeSet<String>,
}

impl Keep {
    /// Keeps the pods named `names` (already running); the rest of the host must be clean.
    pub fn pods(names: &[&str]) -> Keep {
        let uids = names
            .iter()
            .map(|n| pod_uid(n).unwrap_or_else(|| panic!("pod {n} is not on record")))
            .collect();
        Keep {
            uids,
            baseline: leftovers().into_iter().collect(),
        }
    }

    fn keeps(&self, text: &str) -> bool {
        self.uids.iter().any(|u| text.contains(u.as_str()))
    }
}

/// The uid of the pod named `name` (default namespace), read from `<lib>/pods/*/pod.json`.
pub fn pod_uid(name: &str) -> Option<String> {
    for entry in std::fs::read_dir(lib_dir().join("pods")).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("pod.json")) else {
            continue;
        };
        let Ok(pod) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if pod["metadata"]["name"] == name {
            return Some(entry.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

/// The pod's `state.json`, if it exists and parses.
pub fn read_state(uid: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(lib_dir().join("pods").join(uid).join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    /// Field 22, in clock ticks since boot: with the pid, names one process for good.
    pub start_time: u64,
}

/// `/proc/<pid>/stat`, or None if there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The recorded process `{"pid": N, "start_time": T}` if it is that very process and alive.
pub fn live_recorded(process: &serde_json::Value) -> Option<i32> {
    let pid = process["pid"].as_i64()? as i32;
    let start = process["start_time"].as_u64()?;
    proc_stat(pid)
        .filter(|s| s.start_time == start && s.state != 'Z')
        .map(|_| pid)
}

/// The children of `pid` (every thread's).
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// The process's command line, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn cgroup_line(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default()
}

/// Processes that belong to peapod or to a pod and are not the kept pods' (nor the pods of
/// another lane of tests, `PEAPOD_TEST_OTHER_LIB_DIRS`): peapod's binary
/// (supervisors and their keepers, pause processes, pull children, CLIs, inits before their
/// exec, the CLIs' zygote once no pod is on record) or anything in a `pod-<uid>` cgroup. Zombies are not counted: they hold nothing but a
/// pid.
pub fn stray_processes(keep: &Keep) -> Vec<String> {
    let me = std::process::id() as i32;
    let bin = std::fs::canonicalize(peapod_bin()).unwrap_or_else(|_| peapod_bin());
    let kept_supervisors: Vec<i32> = keep
        .uids
        .iter()
        .filter_map(|u| read_state(u))
        .flat_map(|s| [live_recorded(&s["supervisor"]), live_recorded(&s["keeper"])])
        .flatten()
        .collect();
    // The pods of another lane of tests running beside this one (their uids without dashes),
    // and its state directories: a process of peapod's that is in no pod's cgroup (a CLI, a
    // node agent, a supervisor) is another lane's if its environment names one of them.
    // Read before the scan and again after it (`super::leftovers` says why).
    let mut other_lanes = super::other_lanes_pods();
    let other_dirs = super::other_lib_dirs();
    let mut candidates = Vec::new();
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec!["cannot read /proc".into()];
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || kept_supervisors.contains(&pid) {
            continue;
        }
        let Some(stat) = proc_stat(pid) else { continue };
        if stat.state == 'Z' {
            continue;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let exe_text = exe.to_string_lossy();
        // A pause process runs peapod's pause program from a memfd (`sandbox::pause`).
        let is_peapod = exe == bin
            || exe_text.trim_end_matches(" (deleted)") == bin.to_string_lossy()
            || exe_text.starts_with("/memfd:peapod-pause");
        let cgroup = cgroup_line(pid);
        let in_pod = cgroup.contains("/peapod/pod-");
        let other_dir =
            is_peapod && !other_dirs.is_empty() && other_dirs.contains(&lib_dir_of(pid));
        // The CLIs' zygote (`pod::zygote::linger`) lives as long as a pod is on record.
        let serving_zygote = is_peapod && comm(pid) == "peapod-zygote" && pods_on_record();
        if (is_peapod || in_pod) && !keep.keeps(&cgroup) && !other_dir && !serving_zygote {
            candidates.push((pid, stat.ppid, cgroup));
        }
    }
    other_lanes.extend(super::other_lanes_pods());
    for (pid, ppid, cgroup) in candidates {
        let flat = cgroup.replace('-', "");
        if !other_lanes.iter().any(|u| flat.contains(u.as_str())) {
            found.push(format!(
                "process {pid} (ppid {ppid}, cgroup {cgroup}): {}",
                cmdline(pid)
            ));
        }
    }
    found
}

/// The process's name (`comm`).
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether a pod is on record in this lane's state directory.
fn pods_on_record() -> bool {
    names_in(&lib_dir().join("pods"))
        .iter()
        .any(|n| !n.starts_with('.'))
}

/// The state directory a process of peapod's works in: `PEAPOD_LIB_DIR` in the environment it
/// was executed with (a forked supervisor or init shows its parent's), else the default.
fn lib_dir_of(pid: i32) -> PathBuf {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"PEAPOD_LIB_DIR="))
        .map(|dir| PathBuf::from(String::from_utf8_lossy(dir).into_owned()))
        .unwrap_or_else(|| super::LIB_DIR.into())
}

/// Entries of `dir` (names), or none if it does not exist.
fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// peapod's log directory (`PEAPOD_LOG_DIR` overrides it).
pub fn log_dir() -> PathBuf {
    std::env::var_os("PEAPOD_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| LOG_DIR.into())
}

/// Everything beyond the kept pods' share: leftovers, IPs, runtime and log directories,
/// processes. Empty when the host is clean.
pub fn residue(keep: &Keep) -> Vec<String> {
    let mut found: Vec<String> = leftovers()
        .into_iter()
        .filter(|l| !keep.baseline.contains(l))
        .collect();
    let ipam = super::ipam_file();
    if let Ok(text) = std::fs::read_to_string(&ipam) {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => {
                if let Some(allocs) = v["allocations"].as_object() {
                    for (uid, ip) in allocs {
                        if !keep.keeps(uid) {
                            found.push(format!("ip {ip} of pod {uid} in {}", ipam.display()));
                        }
                    }
                }
            }
            Err(e) => found.push(format!("{} does not parse: {e}", ipam.display())),
        }
    }
    for name in names_in(&run_dir().join("pods")) {
        if !keep.keeps(&name) {
            found.push(format!("runtime dir {}/pods/{name}", run_dir().display()));
        }
    }
    for name in names_in(&log_dir()) {
        if !keep.keeps(&name) {
            found.push(format!("log dir {}/{name}", log_dir().display()));
        }
    }
    found.extend(stray_processes(keep));
    found
}

/// Panics unless the host is clean beyond the kept pods (after `settle` for processes that
/// were just killed to go); `what` says after what.
pub fn assert_clean(keep: &Keep, what: &str) {
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let found = residue(keep);
        if found.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("after {what}: left behind:\n  {}", found.join("\n  "));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Open descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    names_in(Path::new(&format!("/proc/{pid}/fd"))).len()
}

/// A `NAME:  N kB` line of `/proc/<pid>/smaps_rollup`.
fn smaps_kb(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/smaps_rollup: {text}"))
}

/// Proportional set size of a process, in kB.
pub fn pss_kb(pid: i32) -> u64 {
    smaps_kb(pid, "Pss")
}

/// Anonymous memory (heap, stack, private copies) of a process, in kB.
pub fn anon_kb(pid: i32) -> u64 {
    smaps_kb(pid, "Anonymous")
}

/// `/proc/meminfo`'s `Shmem` in kB: the VM's root is a tmpfs, so files left anywhere show here.
pub fn shmem_kb() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Prints a suite's figures where they show also when it passes: on the VM's console as a line
/// of its own (`PEAPOD-VM: ...`, as the guest's output is shown), not through libtest's
/// captured output, nor inside its `test NAME ... ok` line (which scripts/test counts).
/// Outside the VM, on stdout.
pub fn report(line: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let console = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console");
    match console {
        Ok(mut c) if std::env::var(super::VM_TESTS_ENV).as_deref() == Ok("1") => {
            let _ = writeln!(c, "PEAPOD-VM: {line}");
        }
        _ => {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}
