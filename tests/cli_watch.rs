//! `get pods -w` on the real binary without root: pod records written by hand into throwaway
//! state (as a supervisor and `apply` write them: temp file, then rename), the watch's lines
//! read as they come. Also measures the watch's reaction time (status.json renamed into place
//! to the line read): `cargo test --test cli_watch -- --nocapture` prints the median.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LINE_TIMEOUT: Duration = Duration::from_secs(10);

struct Lib {
    dir: tempfile::TempDir,
}

impl Lib {
    fn new() -> Lib {
        Lib {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn lib(&self) -> PathBuf {
        self.dir.path().join("lib")
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.lib().join("pods").join(uid)
    }

    /// Writes `name` in the pod's directory through a temp file and a rename.
    fn put(&self, uid: &str, name: &str, value: &serde_json::Value) {
        let dir = self.pod_dir(uid);
        std::fs::create_dir_all(&dir).expect("pod dir");
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, value.to_string()).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }

    fn add_pod(&self, uid: &str, name: &str) {
        self.put(
            uid,
            "pod.json",
            &serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "uid": uid,
                             "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}
            }),
        );
    }

    /// Removes the record as teardown does: pod.json first, then the directory.
    fn remove(&self, uid: &str) {
        std::fs::remove_file(self.pod_dir(uid).join("pod.json")).expect("remove pod.json");
        std::fs::remove_dir_all(self.pod_dir(uid)).expect("remove pod");
    }

    fn status(&self, uid: &str, ready: bool, running: bool, restarts: u32) {
        let state = if running {
            serde_json::json!({"running": {}})
        } else {
            serde_json::json!({"terminated": {"exitCode": 1, "reason": "Error"}})
        };
        self.put(
            uid,
            "status.json",
            &serde_json::json!({
                "phase": "Running", "podIP": "10.88.0.9",
                "containerStatuses": [{"name": "app", "image": "busybox", "imageID": "",
                    "ready": ready, "restartCount": restarts, "state": state}]
            }),
        );
    }

    fn watch(&self, args: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peapod"))
            .args(args)
            .env("PEAPOD_LIB_DIR", self.lib())
            .env("PEAPOD_RUN_DIR", self.dir.path().join("run"))
            .env("PEAPOD_LOG_DIR", self.dir.path().join("log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run peapod");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines: rx }
    }
}

struct Watch {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Watch {
    /// The next line and when it was read.
    fn next(&self) -> (Instant, String) {
        self.lines
            .recv_timeout(LINE_TIMEOUT)
            .expect("the watch printed no line in time")
    }

    /// The next line's cells.
    fn cells(&self) -> Vec<String> {
        self.next().1.split_whitespace().map(String::from).collect()
    }

    fn quiet_for(&self, d: Duration) -> bool {
        self.lines.recv_timeout(d).is_err()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn watch_prints_each_row_change_pods_made_and_deleted() {
    let lib = Lib::new();
    lib.add_pod("u1", "web");
    lib.status("u1", true, true, 0);
    let w = lib.watch(&["get", "pods", "-w"]);
    assert_eq!(w.cells(), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(w.cells()[..4], ["web", "1/1", "Running", "0"]);
    // A crash and a restart, as the supervisor writes them.
    lib.status("u1", false, false, 0);
    assert_eq!(w.cells()[..4], ["web", "0/1", "Error", "0"]);
    lib.status("u1", true, true, 1);
    assert_eq!(w.cells()[..4], ["web", "1/1", "Running", "1"]);
    // A write that leaves the row as it was prints nothing.
    lib.status("u1", true, true, 1);
    assert!(w.quiet_for(Duration::from_millis(300)));
    // A pod made under the watch, and one deleted: its last row.
    lib.add_pod("u2", "db");
    assert_eq!(w.cells()[..3], ["db", "0/1", "Pending"]);
    lib.remove("u1");
    assert_eq!(w.cells()[..4], ["web", "1/1", "Running", "1"]);
}

#[test]
fn watch_only_with_events_and_names() {
    let lib = Lib::new();
    lib.add_pod("u1", "web");
    lib.status("u1", true, true, 0);
    let w = lib.watch(&[
        "get",
        "pods",
        "web",
        "--watch-only",
        "--output-watch-events",
    ]);
    assert!(w.quiet_for(Duration::from_millis(300)));
    lib.status("u1", false, false, 0);
    assert_eq!(
        w.cells(),
        ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(w.cells()[..4], ["MODIFIED", "web", "0/1", "Error"]);
    lib.remove("u1");
    assert_eq!(w.cells()[..2], ["DELETED", "web"]);
    let names = lib.watch(&["get", "pods", "-w", "-o", "name"]);
    lib.add_pod("u3", "api");
    assert_eq!(names.next().1, "pod/api");
}

#[test]
fn a_killed_supervisor_turns_the_pod_unknown() {
    let lib = Lib::new();
    let mut sleeper = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = sleeper.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = stat.rsplit_once(')').expect("stat format").1;
    // Field 22, the start time: the 20th field after the command name.
    let start_time: u64 = after_comm
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .expect("start time");
    lib.add_pod("u1", "web");
    lib.status("u1", true, true, 0);
    lib.put(
        "u1",
        "state.json",
        &serde_json::json!({"uid": "u1", "namespace": "default", "name": "web",
            "supervisor": {"pid": pid, "start_time": start_time},
            "sandbox": {"attempt": 1}, "containers": {}}),
    );
    let w = lib.watch(&["get", "pods", "-w"]);
    w.next();
    assert_eq!(w.cells()[..3], ["web", "1/1", "Running"]);
    let _ = sleeper.kill();
    // Phase Unknown; printPod shows the status reason.
    assert_eq!(w.cells()[..3], ["web", "1/1", "SupervisorLost"]);
    let _ = sleeper.wait();
}

/// status.json renamed into place to the line read, over 30 changes. Generous bound: the
/// machine is shared; the printed median is what the README reports.
#[test]
fn watch_reacts_within_tens_of_milliseconds() {
    let lib = Lib::new();
    lib.add_pod("u1", "web");
    lib.status("u1", true, true, 0);
    let w = lib.watch(&["get", "pods", "-w"]);
    w.next();
    w.next();
    let mut took = Vec::new();
    for i in 1..=30 {
        let ready = i % 2 == 0;
        let start = Instant::now();
        lib.status("u1", ready, ready, 0);
        let (at, line) = w.next();
        took.push(at.duration_since(start));
        let want = if ready { "Running" } else { "Error" };
        assert!(line.contains(want), "{line}");
    }
    let m = median(took.clone());
    eprintln!(
        "watch reaction (status.json renamed -> line read), 30 changes: median {m:?}, min {:?}, max {:?}",
        took.iter().min().unwrap_or(&m),
        took.iter().max().unwrap_or(&m)
    );
    assert!(m < Duration::from_millis(250), "median {m:?}");
}
