//! Proof under faults (issue 11): peapod's own processes are killed with SIGKILL at random
//! moments of its operations, then the pod is deleted and the host must be clean; and a full
//! disk during a pull and during container creation must give a clear error and leave nothing
//! half-written. Runs only in the test VM (`scripts/test`; `scripts/faults` for the long run).
//!
//! Each cycle of [`kill_9_at_random_points_leaves_nothing_behind`] picks, from a seeded RNG, an
//! operation (apply of a pod, restart of a crashing container, a pull from the VM's registry,
//! delete), one of peapod's processes (the CLI, the supervisor, its keeper, the pause process,
//! the pull child, the container's init) and a delay; it starts the operation, waits the delay and sends
//! SIGKILL to that process, found by PID from the pod's state.json or the supervisor's
//! children in /proc (never by name). Then: a pod on record is still listed by `get`, `delete`
//! works, and nothing is left (`accounting::assert_clean`: links, mounts, cgroups, pod, runtime
//! and log directories, IPs in the allocation file, processes) beside a witness pod that runs
//! throughout.
//!
//! `PEAPOD_FAULT_CYCLES` sets the number of cycles (default 8, about 40 s in the VM),
//! `PEAPOD_FAULT_SEED` replays a run (the seed is printed first).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::accounting::{self, Keep};
use common::vm_registry::{self, REGISTRY};
use common::*;

/// A pod that runs through every cycle: it must never be lost nor disturbed.
const WITNESS: &str = "fault-witness";
/// Cycles of the default run (inside `scripts/test`).
const DEFAULT_CYCLES: u64 = 8;
const CYCLES_ENV: &str = "PEAPOD_FAULT_CYCLES";
const SEED_ENV: &str = "PEAPOD_FAULT_SEED";
/// How long the operation under fault may take to end on its own (a delete waits for the
/// grace period and a margin).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a victim that does not exist yet (not started) is waited for.
const VICTIM_WAIT: Duration = Duration::from_secs(5);

/// busybox plus a 24 MiB layer of random bytes: a pull that takes long enough to be hit.
fn big_image() -> String {
    format!("{REGISTRY}/faults/big:v1")
}

/// splitmix64: small, seeded, reproducible across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn env_u64(var: &str) -> Option<u64> {
    let v = std::env::var(var).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `peapod apply` of a sleeping pod.
    Apply,
    /// A container that exits after a second and is restarted.
    Restart,
    /// `peapod pull` of the big image, or a pod that pulls it.
    Pull,
    /// `peapod delete` (graceful) of a running pod.
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    Cli,
    Supervisor,
    /// The supervisor's keeper: a supervisor killed later is no longer replaced.
    Keeper,
    Pause,
    PullChild,
    Container,
}

impl Op {
    const ALL: [Op; 4] = [Op::Apply, Op::Restart, Op::Pull, Op::Delete];

    fn victims(self) -> &'static [Victim] {
        use Victim::*;
        match self {
            Op::Apply | Op::Delete => &[Cli, Supervisor, Keeper, Pause, Container],
            Op::Restart => &[Supervisor, Keeper, Pause, Container],
            Op::Pull => &[Cli, Supervisor, Keeper, PullChild],
        }
    }

    /// The delays are drawn up to this: about how long the operation takes in the VM.
    fn max_delay(self) -> Duration {
        Duration::from_millis(match self {
            Op::Apply => 1500,
            Op::Restart => 2500,
            Op::Pull => 2500,
            Op::Delete => 2000,
        })
    }
}

/// A pod that sleeps until it is told to stop.
const SLEEP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn sleeper(name: &str, image: &str) -> String {
    pod_yaml(name, "Always", "", SLEEP)
        .replace("    image: busybox\n", &format!("    image: {image}\n"))
}

/// A manifest file that lives as long as the value.
struct Manifest {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn manifest(yaml: &str) -> Manifest {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, yaml).expect("cannot write the pod manifest");
    Manifest { _dir: dir, path }
}

/// Starts `peapod ARGS...` without waiting (its output discarded: only its fate matters).
fn spawn(args: &[&str]) -> Child {
    eprintln!("$ peapod {} &", args.join(" "));
    Command::new(peapod_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", peapod_bin().display()))
}

/// Waits for a CLI started by [`spawn`]; panics if it hangs.
fn wait_cli(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + OPERATION_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for the CLI") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the CLI did not end within {OPERATION_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PID of the victim now, if it exists: the CLI by its handle, the others from the pod's
/// state.json (checked against their recorded start time) or the supervisor's children.
fn find_victim(victim: Victim, pod: &str, cli: Option<&mut Child>) -> Option<i32> {
    if victim == Victim::Cli {
        let child = cli?;
        return match child.try_wait() {
            Ok(None) => Some(child.id() as i32),
            _ => None,
        };
    }
    let state = accounting::read_state(&accounting::pod_uid(pod)?)?;
    match victim {
        Victim::Supervisor => accounting::live_recorded(&state["supervisor"]),
        Victim::Keeper => accounting::live_recorded(&state["keeper"]),
        Victim::Pause => accounting::live_recorded(&state["sandbox"]["process"]),
        Victim::Container => accounting::live_recorded(&state["containers"]["app"]["process"]),
        Victim::PullChild => {
            let supervisor = accounting::live_recorded(&state["supervisor"])?;
            accounting::children(supervisor)
                .into_iter()
                .find(|&c| accounting::cmdline(c).contains("__pull"))
        }
        Victim::Cli => None,
    }
}

/// Sends SIGKILL to the victim once it exists (waiting up to [`VICTIM_WAIT`] for it to be
/// born); false if it never showed up or was already gone.
fn kill_victim(victim: Victim, pod: &str, mut cli: Option<&mut Child>) -> bool {
    let deadline = Instant::now() + VICTIM_WAIT;
    loop {
        if let Some(pid) = find_victim(victim, pod, cli.as_deref_mut()) {
            eprintln!("kill -9 {pid} ({victim:?} of {pod})");
            // SAFETY: kill(2) with a pid just read; no memory is involved.
            return unsafe { libc::kill(pid, libc::SIGKILL) } == 0;
        }
        // A CLI that has ended, or a pull that has finished, will not come back.
        let gone_for_good = match victim {
            Victim::Cli => true,
            Victim::PullChild => accounting::pod_uid(pod)
                .and_then(|u| accounting::read_state(&u))
                .is_some_and(|s| !s["containers"]["app"]["process"].is_null()),
            _ => false,
        };
        if gone_for_good || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Hits per (operation, victim), and misses (the victim did not exist at that moment).
#[derive(Default)]
struct Tally {
    hits: BTreeMap<String, u64>,
    misses: u64,
}

impl Tally {
    fn record(&mut self, op: Op, victim: Victim, hit: bool) {
        if hit {
            *self.hits.entry(format!("{op:?}/{victim:?}")).or_default() += 1;
        } else {
            self.misses += 1;
        }
    }

    fn total(&self) -> u64 {
        self.hits.values().sum()
    }

    fn victims_hit(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .hits
            .keys()
            .filter_map(|k| k.split('/').nth(1).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Runs the operation of one cycle with its fault; returns whether the victim was hit.
fn cycle(rng: &mut Rng, n: u64, tally: &mut Tally) {
    let op = rng.pick(&Op::ALL);
    let victim = rng.pick(op.victims());
    let delay = Duration::from_millis(rng.below(op.max_delay().as_millis() as u64));
    let name = format!("fault-{n}");
    eprintln!("=== cycle {n}: {op:?}, SIGKILL to {victim:?} after {delay:?}");

    let mut cli: Option<Child> = None;
    let mut _file = None;
    match op {
        Op::Apply => {
            let m = manifest(&sleeper(&name, "busybox"));
            cli = Some(spawn(&["apply", "-f", m.path.to_str().unwrap_or_default()]));
            _file = Some(m);
        }
        Op::Restart => {
            apply_ok(&pod_yaml(&name, "Always", "", "sleep 1; exit 3"));
            wait_running(&name);
        }
        Op::Pull => {
            // From nothing: the image and its big layer are removed first.
            let image = big_image();
            peapod(&["rmi", "-f", &image]);
            peapod_ok(&["image", "prune"]);
            if victim == Victim::Cli {
                cli = Some(spawn(&["pull", &image]));
            } else {
                apply_ok(&sleeper(&name, &image));
            }
        }
        Op::Delete => {
            apply_ok(&sleeper(&name, "busybox"));
            wait_running(&name);
            cli = Some(spawn(&["delete", "pod", &name, "--grace-period", "1"]));
        }
    }
    std::thread::sleep(delay);
    let hit = kill_victim(victim, &name, cli.as_mut());
    tally.record(op, victim, hit);
    let cli_status = cli.as_mut().map(|c| wait_cli(c, &format!("cycle {n}")));

    // No pod lost: an apply that said yes, or anything on record (but a pod being deleted,
    // which may be gone), is listed by `get`; the witness runs on.
    if op == Op::Apply && cli_status.is_some_and(|s| s.success()) {
        assert!(
            accounting::pod_uid(&name).is_some(),
            "cycle {n}: apply succeeded but pod {name} is not on record"
        );
    }
    if matches!(op, Op::Restart) || (op == Op::Pull && victim != Victim::Cli) {
        assert!(
            accounting::pod_uid(&name).is_some(),
            "cycle {n}: pod {name} lost its record"
        );
    }
    // A pod whose delete was under way may finish going at any moment (its supervisor
    // carries on): only the others must be listed, and the delete may find it gone.
    let deleting = op == Op::Delete;
    if accounting::pod_uid(&name).is_some() {
        if !deleting {
            assert_ne!(
                status_column(&name),
                "",
                "cycle {n}: pod {name} is on record but `get` does not list it"
            );
        }
        let out = delete(&name);
        assert!(
            out.status.success() || (deleting && stderr(&out).contains("NotFound")),
            "cycle {n}: delete of {name} failed: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        status_column(&name),
        "",
        "cycle {n}: pod {name} still listed after its delete"
    );
    assert_eq!(
        status_column(WITNESS),
        "Running",
        "cycle {n}: the witness pod is not Running"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn kill_9_at_random_points_leaves_nothing_behind() {
    require_vm();
    vm_registry::start();
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let cycles = env_u64(CYCLES_ENV).unwrap_or(DEFAULT_CYCLES);
    eprintln!("fault injection: {cycles} cycles, seed {seed} (replay: {SEED_ENV}={seed})");
    accounting::report(&format!("fault injection: seed {seed}, {cycles} cycles"));

    apply_ok(&sleeper(WITNESS, "busybox"));
    let _witness = PodGuard(WITNESS.into());
    wait_running(WITNESS);
    let witness_ip = pod_ip(WITNESS);
    let witness_supervisor = pod_state(WITNESS)["supervisor"]["pid"].clone();
    let keep = Keep::pods(&[WITNESS]);
    accounting::assert_clean(&keep, "starting the witness");

    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..cycles {
        cycle(&mut rng, n, &mut tally);
        accounting::assert_clean(&keep, &format!("cycle {n} (seed {seed})"));
    }
    let took = started.elapsed();

    // The store after killed pulls: a pull works, no temp file is left, every blob is whole.
    peapod_ok(&["pull", &big_image()]);
    check_image_store(&lib_dir());

    assert_eq!(pod_ip(WITNESS), witness_ip, "the witness changed its IP");
    assert_eq!(
        pod_state(WITNESS)["supervisor"]["pid"],
        witness_supervisor,
        "the witness's supervisor changed"
    );
    let summary = format!(
        "fault injection: {cycles} cycles in {:.1}s ({:.2}s a cycle), seed {seed}, {} kills ({:?}), {} misses",
        took.as_secs_f64(),
        took.as_secs_f64() / cycles.max(1) as f64,
        tally.total(),
        tally.hits,
        tally.misses
    );
    accounting::report(&summary);
    // A run whose kills all missed proves nothing.
    assert!(
        tally.total() * 2 >= cycles,
        "only {} of {cycles} kills hit a process",
        tally.total()
    );
    if cycles >= 100 {
        assert_eq!(
            tally.victims_hit().len(),
            6,
            "not every kind of process was killed: {:?}",
            tally.hits
        );
    }
}

/// No temp file in the image store of `lib`, no half-unpacked layer, and every blob matches
/// its digest.
fn check_image_store(lib: &Path) {
    let images = lib.join("images");
    let tmp: Vec<_> = std::fs::read_dir(images.join(".tmp"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        tmp.is_empty(),
        "temp files left in the image store: {tmp:?}"
    );
    let half: Vec<_> = std::fs::read_dir(lib.join("l"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    assert!(half.is_empty(), "half-unpacked layers left: {half:?}");
    verify_blobs(&images);
}

/// Every blob under `<images>/blobs/sha256` hashes to its name.
fn verify_blobs(images: &Path) {
    use sha2::Digest;
    let dir = images.join("blobs").join("sha256");
    for e in std::fs::read_dir(&dir)
        .expect("no blobs directory")
        .flatten()
    {
        let data = std::fs::read(e.path()).expect("cannot read a blob");
        let hex: String = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            e.file_name().to_string_lossy(),
            "blob {} does not match its digest",
            e.path().display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk.

/// A size-limited tmpfs for peapod's state (PEAPOD_LIB_DIR), with runtime and logs beside it;
/// unmounted when dropped.
struct SmallDisk {
    root: PathBuf,
    /// What `fill` wrote: a test that fails while the disk is full must not leave it full,
    /// or its clean-up (a delete records its intent on this disk) fails too and its pods
    /// outlive it into the next tests.
    fillers: std::cell::RefCell<Vec<PathBuf>>,
}

impl SmallDisk {
    fn new(name: &str, size: &str) -> SmallDisk {
        let root = PathBuf::from(format!("/tmp/{name}"));
        let lib = root.join("lib");
        std::fs::create_dir_all(&lib).expect("cannot create the small disk's mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&lib)
            .status()
            .expect("cannot run mount");
        assert!(
            ok.success(),
            "cannot mount a {size} tmpfs on {}",
            lib.display()
        );
        SmallDisk {
            root,
            fillers: Default::default(),
        }
    }

    fn lib(&self) -> PathBuf {
        self.root.join("lib")
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.lib())
            .status()
            .expect("cannot run mount");
        assert!(ok.success(), "cannot resize the small disk to {size}");
    }

    /// Fills what is left with a file (the kernel says ENOSPC); returns its path.
    fn fill(&self, under: &Path) -> PathBuf {
        use std::io::Write;
        let path = under.join("filler");
        let mut f = std::fs::File::create(&path).expect("cannot create the filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // The last partial page too.
        while f.write(&chunk[..512]).is_ok_and(|n| n > 0) {}
        self.fillers.borrow_mut().push(path.clone());
        path
    }

    /// Runs peapod with this disk as its state.
    fn peapod(&self, args: &[&str]) -> std::process::Output {
        peapod_env(
            args,
            &[
                ("PEAPOD_LIB_DIR", self.lib()),
                ("PEAPOD_RUN_DIR", self.root.join("run")),
                ("PEAPOD_LOG_DIR", self.root.join("log")),
            ],
        )
    }

    fn peapod_ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.peapod(args))
    }

    /// `peapod describe pod NAME` (events included).
    fn events(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.peapod(&["describe", "pod", name]).stdout).into_owned()
    }

    /// Loads busybox and applies a pod that waits (FailedMount) for a hostPath file, so that
    /// the disk can fill before its sandbox and containers are made; returns its uid and the
    /// file that lets it go on.
    fn gated_pod(&self, name: &str) -> (String, PathBuf) {
        let layout = std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
        self.peapod_ok(&["load", &layout]);
        let gate = self.root.join("gate");
        let yaml = pod_yaml(
            name,
            "Always",
            &format!(
                "    volumeMounts:\n    - name: gate\n      mountPath: /gate\n  volumes:\n  - name: gate\n    hostPath:\n      path: {}\n      type: File\n",
                gate.display()
            ),
            SLEEP,
        );
        let file = manifest(&yaml);
        self.peapod_ok(&["apply", "-f", file.path.to_str().unwrap_or_default()]);
        assert!(
            wait_for(
                || self.events(name).contains("FailedMount"),
                Duration::from_secs(30)
            ),
            "the pod does not wait for its hostPath: {}",
            self.events(name)
        );
        (self.pod_uid(), gate)
    }

    /// The UID of the (one) pod on this disk's record.
    fn pod_uid(&self) -> String {
        std::fs::read_dir(self.lib().join("pods"))
            .expect("no pods dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| !n.starts_with('.'))
            .expect("the pod is not on record")
    }

    /// The pod's first container status, as JSON (null if none).
    fn container_status(&self, name: &str) -> serde_json::Value {
        let out = self.peapod(&["get", "pods", name, "-o", "json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["status"]["containerStatuses"][0].clone())
            .unwrap_or_default()
    }

    fn used_kb(&self) -> u64 {
        let out = Command::new("df")
            .arg("-k")
            .arg(self.lib())
            .output()
            .expect("cannot run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // A test that failed half-way leaves its pods: they go before their disk, once it has
        // room for the delete's record.
        for filler in self.fillers.borrow().iter() {
            let _ = std::fs::remove_file(filler);
        }
        let _ = self.peapod(&["delete", "pods", "--all", "--grace-period", "0", "--force"]);
        let _ = Command::new("umount").arg("-l").arg(self.lib()).status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn full_disk_during_a_pull_fails_clearly_and_leaves_nothing_half_written() {
    require_vm();
    vm_registry::start();
    // Room for busybox's layer (1 MiB compressed, 2 MiB unpacked), not for the 24 MiB one.
    let disk = SmallDisk::new("peapod-full-pull", "8m");
    let image = big_image();
    let out = disk.peapod(&["pull", &image]);
    let err = stderr(&out);
    assert!(!out.status.success(), "a pull onto a full disk succeeded");
    assert!(
        err.contains("No space left on device"),
        "the error does not say the disk is full: {err}"
    );
    assert!(
        err.contains(&disk.lib().to_string_lossy().into_owned()) || err.contains("sha256:"),
        "the error does not name what could not be written: {err}"
    );
    // Nothing listed, nothing half-written: no temp files, no partial layer, whole blobs.
    let images = disk.peapod_ok(&["images"]);
    assert!(
        !images.contains("faults/big"),
        "a failed pull is listed:\n{images}"
    );
    check_image_store(&disk.lib());
    assert!(
        disk.used_kb() < 6 * 1024,
        "the failed pull still holds {} kB of the 8 MiB disk",
        disk.used_kb()
    );
    assert!(mounts_under(&disk.root).len() == 1, "stray mounts");

    // Space freed: the same pull works and the image is listed.
    disk.resize("96m");
    disk.peapod_ok(&["pull", &image]);
    let images = disk.peapod_ok(&["images"]);
    assert!(
        images.contains("faults/big"),
        "the image is not listed after the pull:\n{images}"
    );
    verify_blobs(&disk.lib().join("images"));
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn full_disk_during_container_creation_fails_clearly_and_recovers() {
    require_vm();
    let disk = SmallDisk::new("peapod-full-create", "64m");
    let name = "full-create";
    let (uid, gate) = disk.gated_pod(name);
    let events = || disk.events(name);

    // Full: the directory of the pod's container bundles (in the run directory: config.json,
    // the rootfs mount point, the termination log) is a full filesystem of its own (the
    // state and status files, elsewhere, can still be written, so the error can be read).
    // The instances' writable layers are on the record's disk.
    let containers = disk.root.join("run/pods").join(&uid).join("containers");
    let layers = disk.lib().join("pods").join(&uid).join("containers");
    std::fs::create_dir_all(&containers).expect("cannot create the containers dir");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&containers)
        .status()
        .expect("cannot run mount");
    assert!(ok.success(), "cannot mount the small containers disk");
    let filler = disk.fill(&containers);
    std::fs::write(&gate, "open\n").expect("cannot write the gate file");

    let waiting = || {
        let out = disk.peapod(&["get", "pods", name, "-o", "json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                v["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    assert!(
        wait_for(
            || waiting().contains("No space left on device"),
            Duration::from_secs(60)
        ),
        "the container does not wait with a full-disk error: {:?}\n{}",
        waiting(),
        events()
    );
    let message = waiting();
    assert!(
        message.contains(&containers.to_string_lossy().into_owned()),
        "the error does not name what could not be written: {message}"
    );
    // Nothing half-made: no instance directory, no container cgroup, no overlay mount. The
    // supervisor tries again every second or so, and a try in progress has its instance's
    // directory (a full tmpfs still lets mkdir through) until it fails: what a failed try
    // leaves must be gone between tries, so the check is repeated until it holds, and fails
    // only if something stays.
    let cg = PathBuf::from(CGROUP_DIR).join(format!("pod-{uid}"));
    let half_made = || {
        let mut found = Vec::new();
        let container_cgroups: Vec<_> = std::fs::read_dir(&cg)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "sandbox")
                    .collect()
            })
            .unwrap_or_default();
        found.extend(
            container_cgroups
                .iter()
                .map(|c| format!("container cgroup {c}")),
        );
        let mut stray = mounts_under(&containers);
        stray.retain(|m| Path::new(m) != containers);
        found.extend(stray.iter().map(|m| format!("mount {m}")));
        let instances: Vec<_> = std::fs::read_dir(&containers)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "filler")
                    .collect()
            })
            .unwrap_or_default();
        for i in &instances {
            let entries = std::fs::read_dir(containers.join(i))
                .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default();
            found.extend(
                entries
                    .iter()
                    .map(|e| format!("instance entry {}", e.display())),
            );
            // Its writable layers: `<name>.<n>.upper` and `.work` beside each other.
            let made: Vec<_> = std::fs::read_dir(&layers)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            found.extend(
                made.iter()
                    .filter(|l| {
                        l.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{i}.")))
                    })
                    .map(|l| format!("writable layer {}", l.display())),
            );
        }
        found
    };
    assert!(
        wait_for(|| half_made().is_empty(), Duration::from_secs(10)),
        "left by the failed creation: {:?}",
        half_made()
    );

    // Space freed: the container is made at the next try and runs.
    std::fs::remove_file(&filler).expect("cannot remove the filler");
    let running = || {
        let out = disk.peapod(&["get", "pods", name, "-o", "json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .is_some_and(|v| v["status"]["containerStatuses"][0]["state"]["running"].is_object())
    };
    assert!(
        wait_for(running, Duration::from_secs(60)),
        "the container does not run once space is freed:\n{}",
        events()
    );
    disk.peapod_ok(&["delete", "pod", name, "--grace-period", "0", "--force"]);
    let left: Vec<_> = std::fs::read_dir(disk.lib().join("pods"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pod files left after delete: {left:?}");
    assert_eq!(
        mounts_under(&disk.root),
        vec![disk.lib().to_string_lossy().into_owned()],
        "mounts left after delete"
    );
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn full_state_disk_fails_apply_clearly_and_keeps_the_supervisor() {
    require_vm();
    let disk = SmallDisk::new("peapod-full-state", "64m");
    let name = "full-state";
    let (uid, gate) = disk.gated_pod(name);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(disk.lib().join("pods").join(&uid).join("state.json"))
            .expect("no state.json"),
    )
    .expect("bad state.json");
    let supervisor = state["supervisor"]["pid"].as_i64().expect("no supervisor") as i32;

    // The whole state disk full. A new pod is refused with the reason, and leaves nothing.
    let filler = disk.fill(&disk.lib());
    let file = manifest(&pod_yaml("full-other", "Always", "", "sleep 3600"));
    let out = disk.peapod(&["apply", "-f", file.path.to_str().unwrap_or_default()]);
    assert!(!out.status.success(), "apply onto a full disk succeeded");
    assert!(
        stderr(&out).contains("No space left on device") && stderr(&out).contains("pod.json"),
        "apply does not say what it could not write: {}",
        stderr(&out)
    );
    let pods: Vec<String> = std::fs::read_dir(disk.lib().join("pods"))
        .expect("no pods dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(pods, vec![uid.clone()], "the refused apply left files");

    // The waiting pod goes on: its sandbox cannot be recorded, nor its status written, and
    // its supervisor keeps going.
    std::fs::write(&gate, "open\n").expect("cannot write the gate file");
    let log = || {
        std::fs::read_to_string(
            disk.root
                .join("run")
                .join("pods")
                .join(&uid)
                .join("supervisor.log"),
        )
        .unwrap_or_default()
    };
    // The volume's next try comes after its back-off (up to seconds after the gate opens);
    // then the sandbox's record fails. (Before that, the status and events of the waiting
    // pod may already have failed to be written: not what this waits for.)
    let sandbox_failed = || {
        log()
            .lines()
            .any(|l| l.contains("sandbox creation failed") && l.contains("No space left on device"))
    };
    assert!(
        wait_for(sandbox_failed, Duration::from_secs(60)),
        "the supervisor never met the full disk making the sandbox; its log:\n{}",
        log()
    );
    assert!(
        accounting::proc_stat(supervisor).is_some_and(|s| s.state != 'Z'),
        "the supervisor died when the disk filled up; its log:\n{}",
        log()
    );
    let listed = disk.peapod(&["get", "pods", name]);
    assert!(
        listed.status.success(),
        "the pod is not listed while the disk is full: {}",
        stderr(&listed)
    );

    // Space freed: the pod says what happened and runs.
    std::fs::remove_file(&filler).expect("cannot remove the filler");
    assert!(
        wait_for(
            || disk.container_status(name)["state"]["running"].is_object(),
            Duration::from_secs(60)
        ),
        "the container does not run once space is freed:\n{}",
        disk.events(name)
    );
    let events = disk.events(name);
    assert!(
        events.contains("No space left on device"),
        "no event says the disk was full:\n{events}"
    );
    disk.peapod_ok(&["delete", "pod", name, "--grace-period", "0", "--force"]);
    let left: Vec<_> = std::fs::read_dir(disk.lib().join("pods"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pod files left after delete: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// A network that cannot be wired.

/// `ip ARGS` in the VM; panics with its error when it fails.
fn ip_ok(args: &[&str]) {
    let out = Command::new(IP).args(args).output().expect("cannot run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The configured bridge is a veth, which another link cannot join: the pause process, which
/// wires the pod's network from inside its namespace, fails, and the sandbox's failure is the
/// pod's FailedCreatePodSandBox event with netlink's reason, naming the veth and the bridge.
/// Nothing of a failed try stays (no veth, no pause process: the next try is a new one), and
/// once the name is free the bridge is made and the pod runs.
#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn a_veth_that_cannot_join_the_bridge_fails_the_sandbox_clearly_and_recovers() {
    require_vm();
    // Not "pp..." nor "peapod...": the other lanes' residue checks count those.
    const BRIDGE: &str = "fltbr0";
    let disk = SmallDisk::new("peapod-full-bridge", "64m");
    let _ = Command::new(IP).args(["link", "del", BRIDGE]).status();
    // A veth (the VM's kernel has no dummy links): not a bridge, so no link can join it.
    ip_ok(&[
        "link", "add", BRIDGE, "type", "veth", "peer", "name", "fltpeer0",
    ]);
    let peapod = |args: &[&str]| {
        peapod_env(
            args,
            &[
                ("PEAPOD_LIB_DIR", disk.lib()),
                ("PEAPOD_RUN_DIR", disk.root.join("run")),
                ("PEAPOD_LOG_DIR", disk.root.join("log")),
                ("PEAPOD_BRIDGE", PathBuf::from(BRIDGE)),
                ("PEAPOD_POD_CIDR", PathBuf::from("10.253.7.0/24")),
            ],
        )
    };
    let layout = std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    expect_ok(&["load"], peapod(&["load", &layout]));
    let name = "unwired";
    let file = manifest(&pod_yaml(name, "Always", "", SLEEP));
    let path = file.path.to_str().unwrap_or_default();
    expect_ok(&["apply"], peapod(&["apply", "-f", path]));
    let describe =
        || String::from_utf8_lossy(&peapod(&["describe", "pod", name]).stdout).into_owned();
    assert!(
        wait_for(
            || describe().contains("FailedCreatePodSandBox"),
            Duration::from_secs(30)
        ),
        "no sandbox failure: {}",
        describe()
    );
    let uid = disk.pod_uid();
    let veth = format!("pp{}", uid.replace('-', "").get(..12).unwrap_or_default());
    let text = describe();
    let line = text
        .lines()
        .find(|l| l.contains("FailedCreatePodSandBox"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!(
            "Failed to create pod sandbox: netlink: failed to create veth pair {veth} (on {BRIDGE}) / eth0 (in the pod):"
        )),
        "the event does not say what failed: {line}"
    );
    // Between tries: no veth of the pod, and no pause process but the one being tried.
    let link_gone = || {
        !String::from_utf8_lossy(
            &Command::new(IP)
                .args(["-o", "link"])
                .output()
                .expect("ip link")
                .stdout,
        )
        .contains(&veth)
    };
    assert!(
        wait_for(link_gone, Duration::from_secs(10)),
        "the failed try left its veth {veth}"
    );
    let pauses = || {
        let cg = PathBuf::from(CGROUP_DIR)
            .join(format!("pod-{uid}"))
            .join("sandbox/cgroup.procs");
        std::fs::read_to_string(cg)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(
        wait_for(|| pauses() <= 1, Duration::from_secs(10)),
        "failed tries left pause processes: {}",
        pauses()
    );
    assert_eq!(
        phase_of(&peapod(&["get", "pods", name, "-o", "json"])),
        "Pending",
        "{}",
        describe()
    );

    // The name freed: the next try makes the bridge, and the pod runs with an address of it.
    ip_ok(&["link", "del", BRIDGE]);
    let running = || phase_of(&peapod(&["get", "pods", name, "-o", "json"])) == "Running";
    assert!(
        wait_for(running, Duration::from_secs(60)),
        "the pod does not run once the bridge can be made: {}",
        describe()
    );
    let out = peapod(&["get", "pods", name, "-o", "json"]);
    let ip = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|v| {
            v["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    assert!(
        ip.starts_with("10.253.7."),
        "pod IP {ip:?} not of the configured CIDR"
    );
    expect_ok(
        &["delete"],
        peapod(&["delete", "pod", name, "--grace-period", "0", "--force"]),
    );
    assert!(
        wait_for(link_gone, Duration::from_secs(10)),
        "the pod's veth {veth} stays after delete"
    );
    ip_ok(&["link", "del", BRIDGE]);
}

/// `status.phase` of `get pods -o json` output.
fn phase_of(out: &std::process::Output) -> String {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|v| {
            v["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}
