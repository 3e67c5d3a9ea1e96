//! Checks that the test VM itself is what the pod tests assume, so a broken VM fails loudly
//! here instead of as a confusing pod failure. Runs only in the VM (`scripts/test`).

use crate::common;

use common::{peapod, IP};
use std::process::Command;

fn sh(script: &str) -> (i32, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("cannot run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ {script}\n{text}");
    (out.status.code().unwrap_or(-1), text)
}

fn vm() {
    // not common::require_vm(): that would also load the image through peapod
    assert_eq!(
        std::env::var(common::VM_TESTS_ENV).as_deref(),
        Ok("1"),
        "runs only in the test VM; see scripts/vm/README.md"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn cgroup2_has_cpu_and_memory_controllers() {
    vm();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 ")),
        "cgroup2 is not mounted at /sys/fs/cgroup:\n{mounts}"
    );
    assert!(
        !mounts.contains(" - cgroup "),
        "a cgroup v1 hierarchy is mounted:\n{mounts}"
    );
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
    for c in ["cpu", "memory", "pids"] {
        assert!(
            controllers.split_whitespace().any(|x| x == c),
            "no {c} in {controllers}"
        );
    }
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn memory_limit_is_enforced() {
    vm();
    let (code, out) = sh("set -e; d=/sys/fs/cgroup/vm-env-oom; mkdir $d; \
         echo 16M > $d/memory.max; \
         sh -c 'echo $$ > /sys/fs/cgroup/vm-env-oom/cgroup.procs; x=a; while true; do x=$x$x; done'; \
         echo unreachable");
    assert_eq!(code, 137, "the memory hog was not OOM-killed: {out}");
    let events = std::fs::read_to_string("/sys/fs/cgroup/vm-env-oom/memory.events").unwrap();
    assert!(events.contains("oom_kill 1"), "memory.events: {events}");
    std::fs::remove_dir("/sys/fs/cgroup/vm-env-oom").unwrap();
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn overlay_veth_and_bridge_work() {
    vm();
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap();
    assert!(
        fs.contains("\toverlay\n"),
        "no overlay in /proc/filesystems:\n{fs}"
    );
    let (code, out) = sh(
        "set -e; d=$(mktemp -d); mkdir $d/l $d/u $d/w $d/m; echo hi > $d/l/f; \
         mount -t overlay overlay -o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w $d/m; \
         echo there >> $d/m/f; cat $d/m/f; umount $d/m; cat $d/l/f",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "hi\nthere\nhi\n"),
        "overlay mount"
    );
    let script = format!(
        "set -e; unshare --net sh -c '{IP} link add vmenv0 type veth peer name vmenv1 && \
         {IP} link add vmenvbr type bridge && {IP} link set vmenv0 master vmenvbr && \
         {IP} -o link show vmenv1'"
    );
    let (code, out) = sh(&script);
    assert_eq!(code, 0, "veth/bridge in a new netns: {out}");
    assert!(
        out.contains("vmenv1@vmenv0"),
        "veth peer name ignored: {out}"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn root_is_tmpfs_so_pivot_root_works() {
    vm();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root.contains(" - tmpfs "),
        "/ is not a tmpfs (still the initramfs?): {root}"
    );
    // pivot_root into a fresh tmpfs in a private mount namespace
    let (code, out) = sh("set -e; unshare --mount sh -c 'mount --make-rprivate / && \
         mkdir -p /tmp/pr && mount -t tmpfs tmpfs /tmp/pr && mkdir /tmp/pr/old && \
         cp /bin/busybox /tmp/pr/ && pivot_root /tmp/pr /tmp/pr/old && \
         /busybox test -d /old/peapod && echo pivoted'");
    assert_eq!((code, out.trim()), (0, "pivoted"), "pivot_root");
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn peapod_binary_runs() {
    vm();
    let out = peapod(&["--help"]);
    assert!(out.status.success(), "peapod --help failed: {out:?}");
}
