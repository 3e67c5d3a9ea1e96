//! Privileged smoke test of the executor (`container::runtime`): starts real containers from a
//! hand-written OCI Spec over a busybox overlay rootfs, joined to a sandbox-like process's
//! net/uts/ipc namespaces. Needs root; meant for the throwaway VM (also safe on a dev host: it
//! only creates namespaces and a tempdir, and every mount lives in the container's own private
//! mount namespace).
//!
//! Run: `PEAPOD_VM_TESTS=1 cargo test --test vm -- --ignored --nocapture runtime_smoke::`

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, UserBuilder,
};
use peapod::container::runtime::{
    exec_in, spawn_with_init, write_bundle, ContainerStdio, ExecMode, RuntimeError,
    ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR,
};

const SANDBOX_HOSTNAME: &str = "peapod-sbx";

fn require_vm() {
    if std::env::var("PEAPOD_VM_TESTS").as_deref() != Ok("1") {
        panic!("privileged test: set PEAPOD_VM_TESTS=1 (and run as root, in the test VM)");
    }
}

/// A busybox rootfs: /bin/busybox plus one symlink per applet.
fn busybox_rootfs(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "install busybox-static");
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
    }
}

/// A sandbox stand-in: a process owning new net/uts/ipc namespaces, with its own hostname.
fn start_sandbox() -> Child {
    // Only busybox is needed, so this also runs in the VM's minimal userland.
    let child = Command::new("/bin/busybox")
        .args([
            "unshare",
            "--net",
            "--uts",
            "--ipc",
            "/bin/busybox",
            "sh",
            "-c",
        ])
        .arg(format!(
            "/bin/busybox hostname {SANDBOX_HOSTNAME} && exec /bin/busybox sleep 120"
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let cmdline = format!("/proc/{}/cmdline", child.id());
    // Ready once the shell has set the hostname and exec'd sleep.
    while !std::fs::read(&cmdline)
        .unwrap_or_default()
        .starts_with(b"/bin/busybox\0sleep\0")
    {
        assert!(Instant::now() < deadline, "sandbox did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The peapod binary to run as the init: `PEAPOD_BIN` in the VM (where the build tree is
/// absent), else the one cargo built next to this test.
fn peapod_bin() -> PathBuf {
    std::env::var_os("PEAPOD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_peapod")))
}

struct Layout {
    _tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
    bundle: PathBuf,
}

fn layout() -> Layout {
    let tmp = tempfile::Builder::new()
        .prefix("peapod-rt-")
        .tempdir()
        .unwrap();
    let p = tmp.path().to_path_buf();
    for d in ["lower", "upper", "work", "merged", "bundle"] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    busybox_rootfs(&p.join("lower"));
    Layout {
        lower: p.join("lower"),
        upper: p.join("upper"),
        work: p.join("work"),
        merged: p.join("merged"),
        bundle: p.join("bundle"),
        _tmp: tmp,
    }
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> oci_spec::runtime::Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .unwrap()
}

fn spec_for(l: &Layout, sandbox_pid: u32, args: &[&str]) -> Spec {
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default()
            .path(l.merged.clone())
            .readonly(false)
            .build()
            .unwrap(),
    ));
    spec.set_annotations(Some(
        [
            (ANNOTATION_LOWERDIRS, l.lower.display().to_string()),
            (ANNOTATION_UPPERDIR, l.upper.display().to_string()),
            (ANNOTATION_WORKDIR, l.work.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    ));
    let default_caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .unwrap();
    spec.set_process(Some(
        ProcessBuilder::default()
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(vec!["PATH=/bin".to_string(), "HOME=/".to_string()])
            .cwd("/")
            .user(UserBuilder::default().uid(0u32).gid(0u32).build().unwrap())
            .capabilities(default_caps)
            .no_new_privileges(true)
            .oom_score_adj(-100)
            .build()
            .unwrap(),
    ));
    let mut namespaces = vec![];
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build().unwrap());
    }
    for (typ, name) in [
        (LinuxNamespaceType::Network, "net"),
        (LinuxNamespaceType::Uts, "uts"),
        (LinuxNamespaceType::Ipc, "ipc"),
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .path(format!("/proc/{sandbox_pid}/ns/{name}"))
                .build()
                .unwrap(),
        );
    }
    let linux_default = oci_spec::runtime::Linux::default();
    spec.set_linux(Some(
        LinuxBuilder::default()
            .namespaces(namespaces)
            .masked_paths(linux_default.masked_paths().clone().unwrap_or_default())
            .readonly_paths(linux_default.readonly_paths().clone().unwrap_or_default())
            .build()
            .unwrap(),
    ));
    spec.set_mounts(Some(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup2",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
        mount(
            "/etc/hostname-from-host",
            "bind",
            "/etc/hostname",
            &["rbind", "ro", "rprivate"],
        ),
    ]));
    spec
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

fn pipe() -> Pipe {
    let (read, write) = nix::unistd::pipe().unwrap();
    Pipe { read, write }
}

/// Spawns `args` and returns (pid, stdout reader, stderr reader).
fn start(l: &Layout, sandbox: u32, args: &[&str]) -> Result<(i32, OwnedFd, OwnedFd), RuntimeError> {
    start_custom(l, sandbox, args, |_| {})
}

fn start_custom(
    l: &Layout,
    sandbox: u32,
    args: &[&str],
    customize: impl FnOnce(&mut Spec),
) -> Result<(i32, OwnedFd, OwnedFd), RuntimeError> {
    let mut spec = spec_for(l, sandbox, args);
    customize(&mut spec);
    write_bundle(&l.bundle, &spec).unwrap();
    let (out, err) = (pipe(), pipe());
    let stdio = ContainerStdio {
        stdin: None,
        stdout: out.write,
        stderr: err.write,
    };
    let spawned = spawn_with_init(&spec, &l.bundle, stdio, &peapod_bin())?;
    Ok((spawned.pid, out.read, err.read))
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

fn wait_exit(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

fn host_mountinfo_mentions(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&path.display().to_string())
}

#[test]
#[ignore = "privileged: runs in the test VM"]
fn container_lifecycle_smoke() {
    require_vm();
    // A hung spawn (an init that never closes its pipe) must fail the run, not stall it; every
    // process this test starts ends by itself within 120 s (sleep 60/120).
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(90));
        eprintln!("runtime_smoke: watchdog expired after 90 s");
        std::process::exit(1);
    });
    let l = layout();
    let mut sandbox = start_sandbox();
    let sbx = sandbox.id();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_checks(&l, sbx)));
    // Kill the sandbox by its pid, whatever happened.
    let _ = kill(Pid::from_raw(sbx as i32), Signal::SIGKILL);
    let _ = sandbox.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(
        !host_mountinfo_mentions(&l.merged),
        "rootfs mount leaked to the host"
    );
}

fn run_checks(l: &Layout, sbx: u32) {
    // 1. A container that reports what it sees.
    let script = "echo $$; hostname; grep CapEff /proc/self/status; ls /dev; mount; \
                  cat /proc/self/oom_score_adj; ls -l /etc/hostname-from-host; echo hi > /tmp/w";
    let (pid, out, err) = start(l, sbx, &["sh", "-c", script]).expect("spawn sh");
    let stdout = read_all(out);
    let stderr = read_all(err);
    let code = wait_exit(pid);
    println!("--- container stdout ---\n{stdout}--- stderr ---\n{stderr}--- exit {code}");
    assert_eq!(code, 0, "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1", "the container's shell is pid 1");
    assert_eq!(
        lines[1], SANDBOX_HOSTNAME,
        "joined the sandbox's uts namespace"
    );
    // Default OCI caps: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10).
    assert_eq!(lines[2].split_whitespace().nth(1), Some("0000000020000420"));
    for dev in [
        "null", "zero", "urandom", "tty", "pts", "ptmx", "fd", "stdout", "mqueue",
    ] {
        assert!(lines.contains(&dev), "/dev/{dev} missing: {stdout}");
    }
    assert!(stdout.contains("overlay on / type overlay"), "{stdout}");
    assert!(stdout.contains("sysfs on /sys type sysfs (ro"), "{stdout}");
    assert!(stdout.contains("/etc/hostname-from-host"), "{stdout}");
    assert!(
        l.upper.join("tmp/w").exists(),
        "writes land in the upperdir"
    );
    assert!(
        !host_mountinfo_mentions(&l.merged),
        "rootfs mount leaked to the host"
    );

    // 2. A missing program is a start error naming it.
    match start(l, sbx, &["nosuch"]) {
        Err(RuntimeError::Start { message }) => {
            println!("missing binary: {message}");
            assert_eq!(
                message,
                "exec: \"nosuch\": executable file not found in $PATH"
            );
        }
        other => panic!("expected a start error, got {other:?}"),
    }

    // 3. exec into a running container.
    let (pid, out, err) = start(l, sbx, &["sleep", "60"]).expect("spawn sleep");
    let spec = spec_for(l, sbx, &["sleep", "60"]);
    let exec_script = "echo $$ > /tmp/exec.out; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ' \
                       >> /tmp/exec.out; echo >> /tmp/exec.out; hostname >> /tmp/exec.out; \
                       grep CapEff /proc/self/status >> /tmp/exec.out; exit 3";
    let cmd: Vec<String> = ["sh", "-c", exec_script]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        !host_mountinfo_mentions(&l.merged),
        "a running container's rootfs must not be visible in the host's mount table"
    );
    let code = exec_in(pid, &spec, &cmd, ExecMode::default()).expect("exec_in");
    assert_eq!(code, 3);
    let seen = std::fs::read_to_string(l.upper.join("tmp/exec.out")).unwrap();
    println!("--- exec view ---\n{seen}");
    let lines: Vec<&str> = seen.lines().collect();
    let exec_pid: i32 = lines[0].trim().parse().unwrap();
    assert!(
        exec_pid > 1 && exec_pid < 100,
        "exec runs in the container's pid ns"
    );
    assert!(lines[1].split_whitespace().any(|p| p == "1"));
    assert!(
        lines[1].split_whitespace().count() < 10,
        "only container pids visible"
    );
    assert_eq!(lines[2], SANDBOX_HOSTNAME);
    assert_eq!(lines[3].split_whitespace().nth(1), Some("0000000020000420"));
    let missing = vec!["nosuch-cmd".to_string()];
    assert_eq!(
        exec_in(pid, &spec, &missing, ExecMode::default()).unwrap(),
        127
    );

    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_eq!(wait_exit(pid), 137);
    drop((out, err));
    assert!(
        !host_mountinfo_mentions(&l.merged),
        "rootfs mount leaked to the host"
    );

    // 4. Non-root user, read-only root, clean signals, and so many lowerdirs that the overlay
    //    options only fit in a page with relative paths.
    let parent = l
        .lower
        .parent()
        .unwrap()
        .join(format!("layers-{}", "x".repeat(60)));
    let mut lowers = Vec::new();
    for i in 0..40 {
        let dir = parent.join(format!("layer-{i:03}-{}", "y".repeat(40)));
        std::fs::create_dir_all(&dir).unwrap();
        lowers.push(dir.display().to_string());
    }
    let busybox_layer = parent.join("busybox");
    std::fs::rename(&l.lower, &busybox_layer).unwrap();
    lowers.push(busybox_layer.display().to_string());
    let lowerdirs = lowers.join(":");
    assert!(lowerdirs.len() > 4096, "test needs a long lowerdir list");
    let (up2, work2) = (
        l.upper.with_file_name("upper2"),
        l.work.with_file_name("work2"),
    );
    std::fs::create_dir_all(&up2).unwrap();
    std::fs::create_dir_all(&work2).unwrap();
    let script = "id -u; id -G; grep SigIgn /proc/self/status; grep CapEff /proc/self/status; \
                  touch /x 2>/dev/null || echo ro-ok";
    let (pid, out, err) = start_custom(l, sbx, &["sh", "-c", script], |spec| {
        let mut ann = spec.annotations().clone().unwrap();
        ann.insert(ANNOTATION_LOWERDIRS.into(), lowerdirs.clone());
        ann.insert(ANNOTATION_UPPERDIR.into(), up2.display().to_string());
        ann.insert(ANNOTATION_WORKDIR.into(), work2.display().to_string());
        spec.set_annotations(Some(ann));
        let mut root = spec.root().clone().unwrap();
        root.set_readonly(Some(true));
        spec.set_root(Some(root));
        let mut process = spec.process().clone().unwrap();
        process.set_user(
            UserBuilder::default()
                .uid(1000u32)
                .gid(1000u32)
                .additional_gids(vec![2000u32, 3000])
                .build()
                .unwrap(),
        );
        spec.set_process(Some(process));
    })
    .expect("spawn as uid 1000");
    let stdout = read_all(out);
    let stderr = read_all(err);
    let code = wait_exit(pid);
    println!("--- uid 1000 / ro root / 41 layers ---\n{stdout}--- stderr ---\n{stderr}");
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000 2000 3000");
    assert_eq!(lines[2].split_whitespace().nth(1), Some("0000000000000000"));
    // The default Spec lists the default caps as ambient too, so uid 1000 keeps them.
    assert_eq!(lines[3].split_whitespace().nth(1), Some("0000000020000420"));
    assert_eq!(lines[4], "ro-ok");
    std::fs::rename(&busybox_layer, &l.lower).unwrap();

    // 5. A failing mount names the mount and the cause.
    let bad = MountBuilder::default()
        .destination("/mnt/data")
        .typ("bind")
        .source("/nonexistent-peapod-src")
        .options(vec!["rbind".to_string()])
        .build()
        .unwrap();
    match start_custom(l, sbx, &["true"], |spec| {
        let mut mounts = spec.mounts().clone().unwrap();
        mounts.push(bad);
        spec.set_mounts(Some(mounts));
    }) {
        Err(RuntimeError::Start { message }) => {
            println!("bad mount: {message}");
            assert!(message.contains("/mnt/data") && message.contains("no such file"));
        }
        other => panic!("expected a start error, got {other:?}"),
    }
    assert!(
        !host_mountinfo_mentions(&l.merged),
        "rootfs mount leaked to the host"
    );
}
