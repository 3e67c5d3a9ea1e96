//! Supervisor re-adoption: a supervisor killed in the same boot is replaced by its keeper, and
//! the new one takes the pod over as it runs (`pod::keeper`, `pod::adopt`): the containers
//! keep their processes, restart counts and logs, and their later exits (or one that happened
//! while no supervisor ran) go through the usual restart rules. Runs only in the test VM
//! (`scripts/test`). The tests take turns: the last one checks that the whole host is clean.

use crate::common;

use common::accounting::{self, Keep};
use common::*;
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ADOPT_TIMEOUT: Duration = Duration::from_secs(20);

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exits with `code` once /tmp/quit exists in the container.
fn quitter(name: &str, code: i32) -> String {
    container_entry(
        name,
        &format!("while [ ! -e /tmp/quit ]; do sleep 0.1; done; exit {code}"),
    )
}

fn pid_of(state: &serde_json::Value) -> i32 {
    state["pid"].as_i64().unwrap_or(0) as i32
}

/// The supervisor and keeper pids on record.
fn supervisor_and_keeper(pod: &str) -> (i32, i32) {
    let state = pod_state(pod);
    (pid_of(&state["supervisor"]), pid_of(&state["keeper"]))
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn state_char(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

fn alive(pid: i32) -> bool {
    state_char(pid).is_some_and(|c| c != 'Z')
}

/// Kills the supervisor and waits until a new one recorded itself and the pod is Running
/// again; returns the new supervisor's pid.
fn kill_supervisor_and_wait_adopted(pod: &str) -> i32 {
    let (old, keeper) = supervisor_and_keeper(pod);
    assert!(
        old > 0 && keeper > 0,
        "{pod}: no supervisor or keeper on record"
    );
    assert_eq!(
        ppid(old),
        Some(keeper),
        "{pod}: the keeper is not the supervisor's parent"
    );
    kill(old, "KILL");
    let mut new = 0;
    let adopted = wait_for(
        || {
            new = supervisor_and_keeper(pod).0;
            new != old && alive(new) && status_column(pod) == "Running"
        },
        ADOPT_TIMEOUT,
    );
    let log = std::fs::read_to_string(format!(
        "{RUN_DIR}/pods/{}/supervisor.log",
        accounting::pod_uid(pod).unwrap_or_default()
    ))
    .unwrap_or_default();
    assert!(
        adopted,
        "{pod}: not adopted after the kill of {old} (status {:?}); supervisor log:\n{log}",
        status_column(pod)
    );
    assert_eq!(
        ppid(new),
        Some(keeper),
        "the new supervisor is not the keeper's child"
    );
    new
}

/// The numbers of the `line N` records of the printer's log.
fn printed(pod: &str) -> Vec<u64> {
    peapod_ok(&["logs", pod, "-c", "printer"])
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.trim().parse().ok())
        .collect()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_killed_supervisor_is_replaced_and_the_pod_runs_on() {
    require_vm();
    let _turn = turn();
    let pod = "adopt-run";
    let containers = container_entry(
        "printer",
        "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    ) + &quitter("quitter", 3);
    let _guard = start_pod(pod, &pod_of(pod, "OnFailure", 2, &containers, ""));
    std::thread::sleep(Duration::from_millis(1500));
    let printer = container_pid(pod, "printer");
    let quitter_pid = container_pid(pod, "quitter");
    let pause = sandbox_pid(pod);
    let keeper = supervisor_and_keeper(pod).1;
    let before = printed(pod).len();

    kill_supervisor_and_wait_adopted(pod);
    // The kernel handed the killed supervisor's children to the keeper (its subreaper).
    for (what, pid) in [
        ("printer", printer),
        ("quitter", quitter_pid),
        ("pause", pause),
    ] {
        assert!(alive(pid), "{what} ({pid}) died with the supervisor");
        assert_eq!(
            ppid(pid),
            Some(keeper),
            "{what} was not reparented to the keeper"
        );
    }
    assert_eq!(container_pid(pod, "printer"), printer);
    assert_eq!(container_pid(pod, "quitter"), quitter_pid);
    assert_eq!(sandbox_pid(pod), pause);
    assert_eq!(restart_count(pod, "printer"), 0);
    assert_eq!(restart_count(pod, "quitter"), 0);

    // The log goes on: the pipe was held while no supervisor read it, so what the printer
    // wrote meanwhile (a line every 0.1 s while the keeper noticed the kill and the new
    // supervisor took over) is in the log. What the killed supervisor had read from the pipe
    // and not yet written to the file is lost with it, as with conmon or a containerd shim
    // killed so: one read, a line or two at this pace (a run of the VM suite lost line 15 of
    // 25 so). Nothing restarts the numbering, and nothing is written twice.
    wait_for(|| printed(pod).len() > before + 5, RUNNING_TIMEOUT);
    let lines = printed(pod);
    assert!(
        lines.len() > before + 5,
        "the log did not go on: {before} lines before, {} after",
        lines.len()
    );
    let last = *lines.last().unwrap();
    let missing: Vec<u64> = (0..=last).filter(|n| !lines.contains(n)).collect();
    assert!(
        lines.first() == Some(&0)
            && lines.windows(2).all(|w| w[0] < w[1])
            && missing.len() <= 2
            && missing.windows(2).all(|w| w[1] == w[0] + 1),
        "the printer's log has more than the killed supervisor's last read missing, a line \
         twice, or a restart: missing {missing:?} of {lines:?}"
    );
    assert_eq!(restart_count(pod, "printer"), 0);

    // A later exit goes through the restart rules with its exit code.
    let (code, _) = exec(pod, "quitter", &["touch", "/tmp/quit"]);
    assert_eq!(code, 0, "exec touch");
    wait_until(
        pod,
        "quitter restarted once",
        || restart_count(pod, "quitter") == 1,
        ADOPT_TIMEOUT,
    );
    let cs = container_status(pod, "quitter").unwrap();
    assert_eq!(
        cs["lastState"]["terminated"]["exitCode"], 3,
        "quitter's lastState: {cs}"
    );
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    wait_running(pod);
    assert_ne!(container_pid(pod, "quitter"), quitter_pid);
    assert_eq!(container_pid(pod, "printer"), printer);
    assert_eq!(restart_count(pod, "printer"), 0);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn an_exit_while_no_supervisor_runs_keeps_its_exit_code() {
    require_vm();
    let _turn = turn();
    let pod = "adopt-gap";
    let containers = quitter("seven", 7);
    let _guard = start_pod(pod, &pod_of(pod, "OnFailure", 2, &containers, ""));
    let (supervisor, keeper) = supervisor_and_keeper(pod);
    let seven = container_pid(pod, "seven");
    // The keeper stopped, the supervisor killed: no supervisor runs until the keeper goes on.
    kill(keeper, "STOP");
    kill(supervisor, "KILL");
    let (code, _) = exec(pod, "seven", &["touch", "/tmp/quit"]);
    assert_eq!(code, 0, "exec touch");
    let ended = wait_for(
        || state_char(seven) == Some('Z') && ppid(seven) == Some(keeper),
        ADOPT_TIMEOUT,
    );
    let seen = state_char(seven);
    kill(keeper, "CONT");
    assert!(
        ended,
        "the container did not end as the keeper's child (state {seen:?})"
    );
    wait_until(
        pod,
        "seven restarted once",
        || restart_count(pod, "seven") == 1,
        ADOPT_TIMEOUT,
    );
    let cs = container_status(pod, "seven").unwrap();
    assert_eq!(
        cs["lastState"]["terminated"]["exitCode"], 7,
        "lastState: {cs}"
    );
    wait_running(pod);
    let (new, same_keeper) = supervisor_and_keeper(pod);
    assert_ne!(new, supervisor);
    assert_eq!(same_keeper, keeper);
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn two_kills_in_a_row_then_delete_leave_nothing() {
    require_vm();
    let _turn = turn();
    let pod = "adopt-twice";
    let keep = Keep::pods(&[]);
    let containers = container_entry("app", "trap 'exit 0' TERM; while true; do sleep 1; done");
    apply_ok(&pod_of(pod, "Always", 2, &containers, ""));
    wait_running(pod);
    let app = container_pid(pod, "app");
    let keeper = supervisor_and_keeper(pod).1;
    kill_supervisor_and_wait_adopted(pod);
    let last = kill_supervisor_and_wait_adopted(pod);
    assert_eq!(container_pid(pod, "app"), app);
    assert_eq!(restart_count(pod, "app"), 0);
    let out = peapod(&["delete", "pod", pod]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_eq!(status_column(pod), "", "still listed after its delete");
    for (what, pid) in [("keeper", keeper), ("supervisor", last), ("app", app)] {
        assert!(
            wait_for(|| !alive(pid), Duration::from_secs(5)),
            "the {what} ({pid}) outlived the delete"
        );
    }
    accounting::assert_clean(&keep, "the delete of a twice-adopted pod");
}
