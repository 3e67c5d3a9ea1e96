//! The soak (issue 11): create/delete cycles of a pod with the fault suite's accounting after
//! each (links, mounts, cgroups, pod, runtime and log directories, IPs, processes), and the
//! resource use of a long-lived pod's supervisor (open descriptors, PSS) and of the VM's
//! tmpfs-backed files (`Shmem`) flat between the start and the end. Runs only in the test VM.
//!
//! `PEAPOD_SOAK_CYCLES` sets the number of measured cycles (default 12 in `scripts/test`;
//! `scripts/soak` runs 1,000). The cycles run while the witness warms up (about 12 s) come on
//! top: they are checked for residue like the others, before the first measure.

use crate::common;

use std::time::{Duration, Instant};

use common::accounting::{self, Keep};
use common::*;

/// A pod that lives through the whole soak; its supervisor is the one measured.
const WITNESS: &str = "soak-witness";
const DEFAULT_CYCLES: u64 = 12;
const CYCLES_ENV: &str = "PEAPOD_SOAK_CYCLES";
/// How much the supervisor's PSS may grow over the soak: noise of page sharing, not a leak.
const PSS_TOLERANCE_KB: u64 = 64;
/// How much its anonymous memory (heap, stack) may grow: a leak would grow it every cycle.
const ANON_TOLERANCE_KB: u64 = 32;
/// How much tmpfs-backed memory (the VM's files) may grow: the test's own transient files.
const SHMEM_TOLERANCE_KB: u64 = 1024;
/// An idle supervisor hands its start-up pages back after 2 s: measure after that.
const IDLE: Duration = Duration::from_secs(3);
/// Its first periodic wake (the log rotation check, every 10 s) faults the code of the idle
/// loop back in for good: the first measure comes after it (cycles run meanwhile).
const WARM_UP: Duration = Duration::from_secs(12);

/// What is measured at the start and at the end.
#[derive(Debug, Clone, Copy)]
struct Usage {
    supervisor_fds: usize,
    supervisor_pss_kb: u64,
    supervisor_anon_kb: u64,
    pause_pss_kb: u64,
    shmem_kb: u64,
}

fn usage(supervisor: i32, pause: i32) -> Usage {
    Usage {
        supervisor_fds: accounting::fd_count(supervisor),
        supervisor_pss_kb: accounting::pss_kb(supervisor),
        supervisor_anon_kb: accounting::anon_kb(supervisor),
        pause_pss_kb: accounting::pss_kb(pause),
        shmem_kb: accounting::shmem_kb(),
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn create_delete_cycles_leave_nothing_and_resource_use_stays_flat() {
    require_vm();
    let cycles = std::env::var(CYCLES_ENV)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{CYCLES_ENV}={v:?} is not a number"))
        })
        .unwrap_or(DEFAULT_CYCLES);
    let witness = start_pod(
        WITNESS,
        &pod_yaml(
            WITNESS,
            "Always",
            "",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ),
    );
    let supervisor = pod_state(WITNESS)["supervisor"]["pid"]
        .as_i64()
        .expect("no supervisor pid") as i32;
    let pause = sandbox_pid(WITNESS);
    let keep = Keep::pods(&[WITNESS]);
    accounting::assert_clean(&keep, "starting the witness");
    let cycle = |name: &str| {
        apply_ok(&pod_yaml(name, "Always", "", "sleep 3600"));
        wait_running(name);
        let out = delete(name);
        assert!(
            out.status.success(),
            "{name}: delete failed: {}",
            stderr(&out)
        );
        accounting::assert_clean(&keep, &format!("soak cycle {name}"));
    };
    // The warm-up is spent on cycles of their own (not counted), not on a sleep; the first
    // measure comes after the same idle time as the last.
    let warm = Instant::now() + WARM_UP - IDLE;
    let mut n = 0;
    while Instant::now() < warm {
        cycle(&format!("soak-warm-{n}"));
        n += 1;
    }
    std::thread::sleep(IDLE);
    let before = usage(supervisor, pause);
    accounting::report(&format!("soak: {cycles} cycles; at the start {before:?}"));

    let started = Instant::now();
    let every = (cycles / 10).max(1);
    for n in 0..cycles {
        cycle(&format!("soak-{n}"));
        if (n + 1) % every == 0 {
            accounting::report(&format!(
                "soak: cycle {} at {:.1}s: {:?}",
                n + 1,
                started.elapsed().as_secs_f64(),
                usage(supervisor, pause)
            ));
        }
    }
    let took = started.elapsed();
    assert_eq!(
        status_column(WITNESS),
        "Running",
        "the witness pod is not Running after the soak"
    );
    std::thread::sleep(IDLE);
    let after = usage(supervisor, pause);
    let summary = format!(
        "soak: {cycles} cycles in {:.1}s ({:.2}s a cycle); start {before:?}; end {after:?}",
        took.as_secs_f64(),
        took.as_secs_f64() / cycles.max(1) as f64
    );
    accounting::report(&summary);
    assert_eq!(
        after.supervisor_fds, before.supervisor_fds,
        "the long-lived supervisor's open descriptors changed"
    );
    for (what, start, end, tolerance) in [
        (
            "the long-lived supervisor's PSS",
            before.supervisor_pss_kb,
            after.supervisor_pss_kb,
            PSS_TOLERANCE_KB,
        ),
        (
            "the long-lived supervisor's anonymous memory",
            before.supervisor_anon_kb,
            after.supervisor_anon_kb,
            ANON_TOLERANCE_KB,
        ),
        (
            "the pause process's PSS",
            before.pause_pss_kb,
            after.pause_pss_kb,
            PSS_TOLERANCE_KB,
        ),
        (
            "the files in the VM's tmpfs (Shmem)",
            before.shmem_kb,
            after.shmem_kb,
            SHMEM_TOLERANCE_KB,
        ),
    ] {
        assert!(
            end <= start + tolerance,
            "{what} grew from {start} kB to {end} kB over the soak (tolerance {tolerance} kB)"
        );
    }
    drop(witness);
}
