//! The start-time breakdown: with `PEAPOD_TRACE_START=FILE` in the environment, `apply`, the
//! supervisor and the container's init append one line per step of a pod's start to FILE:
//! `<CLOCK_MONOTONIC ns> <pid> <step>`. `scripts/bench --profile` reads it beside its own
//! monotonic clock (Python's `time.monotonic_ns`, the same clock) and prints the median time
//! from the `apply` command's start to each step. Off (one cached environment lookup) when
//! the variable is unset.

use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The variable naming the file the steps are appended to.
pub const ENV_TRACE_START: &str = "PEAPOD_TRACE_START";

const UNOPENED: i32 = -2;
const OFF: i32 = -1;
/// The trace file's descriptor in this process, OFF without the variable, UNOPENED at first.
static FD: AtomicI32 = AtomicI32::new(UNOPENED);

fn fd() -> i32 {
    let fd = FD.load(Ordering::Relaxed);
    if fd != UNOPENED {
        return fd;
    }
    let opened = std::env::var_os(ENV_TRACE_START)
        .and_then(|path| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .ok()
        })
        .map_or(OFF, |f| f.into_raw_fd());
    FD.store(opened, Ordering::Relaxed);
    opened
}

/// Opens the trace file now (if tracing), so that a child cloned later, in another mount
/// namespace, only writes.
pub fn prepare() {
    fd();
}

/// In a forked child that closed the descriptors it inherited: open the file again at the
/// next mark.
pub fn reopen() {
    FD.store(UNOPENED, Ordering::Relaxed);
}

/// Records that `step` is reached now: one write(2) of one line (appends do not interleave).
pub fn mark(step: &str) {
    let fd = fd();
    if fd < 0 {
        return;
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0);
    let line = format!("{now} {} {step}\n", std::process::id());
    // SAFETY: write(2) of a buffer we own to a descriptor this module opened.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}
