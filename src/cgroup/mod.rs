//! cgroup v2: a cgroup per pod and per container, resource limits, the device allowlist, OOM
//! detection, kill-all.
//!
//! Layout: `<root>/peapod/pod-<uid>/{sandbox,<container>-<attempt>}`; a CRI sandbox with a
//! `cgroup_parent` has `<root>/<parent>/{<sandbox id>,<container id>}` instead, as containerd
//! ([`parent`]). The manager takes the cgroup2 mount as a parameter so tests run against a temp
//! dir that mimics cgroupfs. It never touches cgroups outside `<root>/peapod` except enabling
//! controllers in `cgroup.subtree_control` of `<root>` (and of a cgroup parent's components),
//! and the components of a cgroup parent it had to make. Limits it cannot enforce are
//! reported, never dropped ([`check_limits_supported`]).
//!
//! On a hybrid host (cgroup v1 controllers, a cgroup2 mount at `/sys/fs/cgroup/unified` with none
//! of them) the same layout lives under the unified mount without controllers: it carries only
//! each container's device program (`devices.rs`), which any cgroup2 directory can hold. Where
//! there is no cgroup2 hierarchy at all, no container runs ([`check_devices_supported`]).

mod bpf;
pub mod clone;
pub(crate) mod devices;
pub mod parent;
pub mod pod;
pub mod stats;
mod support;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

pub use bpf::BpfError;
pub use devices::{Access, DeviceKind, DeviceRule, DeviceRules};
pub use pod::{pod_resources, PodResources};
pub use support::{check_devices_supported, check_limits_supported, detect, CgroupSupport};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
pub const PEAPOD_CGROUP: &str = "peapod";
pub const SANDBOX_CGROUP: &str = "sandbox";
/// Where systemd mounts the cgroup2 hierarchy on a hybrid host, below [`CGROUP_ROOT`].
pub const HYBRID_UNIFIED_DIR: &str = "unified";

pub const FILE_CONTROLLERS: &str = "cgroup.controllers";
pub const FILE_SUBTREE_CONTROL: &str = "cgroup.subtree_control";
pub const FILE_PROCS: &str = "cgroup.procs";
pub const FILE_KILL: &str = "cgroup.kill";
pub const FILE_CPU_MAX: &str = "cpu.max";
pub const FILE_CPU_WEIGHT: &str = "cpu.weight";
pub const FILE_MEMORY_MAX: &str = "memory.max";
pub const FILE_MEMORY_OOM_GROUP: &str = "memory.oom.group";
pub const FILE_MEMORY_EVENTS: &str = "memory.events";
pub const FILE_PIDS_MAX: &str = "pids.max";

/// Controllers peapod needs, as written to `cgroup.subtree_control`.
pub const REQUIRED_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];
/// CFS period the kubelet uses [pkg/kubelet/cm/helpers_linux.go].
pub const CPU_PERIOD_US: u64 = 100_000;
/// How often and how long `remove` retries an rmdir that fails with EBUSY (processes still
/// exiting after a kill).
const REMOVE_ATTEMPTS: u32 = 20;
const REMOVE_RETRY_DELAY: Duration = Duration::from_millis(25);

/// Errors from cgroup operations; each names the cgroup file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(
        "cgroup {path} is still busy after {attempts} attempts to remove it (processes left?)"
    )]
    Busy { path: PathBuf, attempts: u32 },
    #[error("{field}: the limit cannot be enforced: {reason}")]
    LimitUnsupported { field: String, reason: String },
    #[error("killing pid {pid} of cgroup {path}: {source}")]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("linux.resources.devices[{index}]: {reason}")]
    InvalidDeviceRule { index: usize, reason: String },
    #[error("cgroup {path}: installing the device allowlist: {source}")]
    DeviceProgram {
        path: PathBuf,
        #[source]
        source: BpfError,
    },
    #[error("generating the device allowlist program: {0}")]
    Generate(#[from] BpfError),
    #[error(
        "containers cannot run on this host: {reason}; peapod installs each container's device \
         allowlist in a cgroup2 directory and does not run containers with open device access"
    )]
    NoDeviceAllowlist { reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    tracing::debug!(path = %path.display(), value, "writing cgroup file");
    std::fs::write(&path, value).map_err(io_err(&path))
}

fn read_file(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(io_err(&path))
}

/// cgroup v1 cpu.shares -> v2 cpu.weight with the quadratic mapping of runc >= 1.3.2 and
/// crun >= 1.23: weight = ceil(10^((L^2 + 125L)/612 - 7/34)), L = log2(shares), in [1, 10000].
/// It maps the v1 default (1024) to the v2 default (100), unlike the old linear formula.
pub fn cpu_weight_from_shares(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    // Round away float noise first so 1024 (exponent exactly 2) gives 100, not 101.
    let value = (10f64.powf(exponent) * 1e9).round() / 1e9;
    (value.ceil() as u64).clamp(1, 10_000)
}

/// Loads and attaches a device program; tests record the rules instead.
type AttachDevices = fn(&Path, &DeviceRules) -> Result<(), CgroupError>;

/// Creates and configures pod and container cgroups under one cgroup2 mount.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    root: PathBuf,
    /// cpu, memory and pids are available under `root`. False for a hybrid host's unified
    /// hierarchy, where the cgroups carry only device programs.
    controllers: bool,
    attach_devices: AttachDevices,
}

impl CgroupManager {
    /// `root` is a cgroup2 mount with the cpu, memory and pids controllers (normally
    /// [`CGROUP_ROOT`]).
    pub fn new(root: PathBuf) -> Self {
        CgroupManager {
            root,
            controllers: true,
            attach_devices: devices::attach,
        }
    }

    /// A cgroup2 mount without those controllers (a hybrid host's `/sys/fs/cgroup/unified`):
    /// cgroups hold processes and device programs, and no limit is written.
    pub fn without_controllers(root: PathBuf) -> Self {
        CgroupManager {
            controllers: false,
            ..Self::new(root)
        }
    }

    /// The same manager with another way to attach device programs (tests record them).
    #[cfg(test)]
    pub(crate) fn with_device_attacher(self, attach_devices: AttachDevices) -> Self {
        CgroupManager {
            attach_devices,
            ..self
        }
    }

    /// Whether limits can be written (see [`CgroupManager::without_controllers`]).
    pub fn has_controllers(&self) -> bool {
        self.controllers
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/peapod/pod-<uid>`
    pub fn pod_path(&self, uid: &str) -> PathBuf {
        self.root.join(PEAPOD_CGROUP).join(format!("pod-{uid}"))
    }

    /// Whether `path` has the shape of peapod's own pod cgroups, `.../peapod/pod-<uid>` (the
    /// only pod cgroups teardown may remove whole).
    pub fn is_own_pod_path(path: &Path) -> bool {
        let parent = path.parent().and_then(Path::file_name);
        let name = path.file_name().map(|n| n.to_string_lossy());
        parent.is_some_and(|p| p == PEAPOD_CGROUP) && name.is_some_and(|n| n.starts_with("pod-"))
    }

    /// `<root>/peapod/pod-<uid>/<container>-<attempt>`
    pub fn container_path(&self, uid: &str, container: &str, attempt: u32) -> PathBuf {
        self.pod_path(uid).join(format!("{container}-{attempt}"))
    }

    /// `<root>/peapod/pod-<uid>/sandbox`
    pub fn sandbox_path(&self, uid: &str) -> PathBuf {
        self.pod_path(uid).join(SANDBOX_CGROUP)
    }

    /// Creates the pod cgroup with controllers enabled for its children, and the pod's
    /// cpu.weight, cpu.max and memory.max as the kubelet sets them (see [`pod`]). Without
    /// controllers: the bare directories (a limit is refused; the weight has nowhere to go).
    pub fn create_pod(&self, uid: &str, limits: PodResources) -> Result<PathBuf, CgroupError> {
        let peapod = self.root.join(PEAPOD_CGROUP);
        let pod = self.pod_path(uid);
        if !self.controllers {
            if limits.cpu_limit_millis.is_some() || limits.memory_limit_bytes.is_some() {
                return Err(self.no_controllers("spec.resources"));
            }
            std::fs::create_dir_all(&pod).map_err(io_err(&pod))?;
            tracing::info!(path = %pod.display(), "created pod cgroup (no controllers)");
            return Ok(pod);
        }
        let enable = REQUIRED_CONTROLLERS
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        write_file(&self.root, FILE_SUBTREE_CONTROL, &enable)?;
        std::fs::create_dir_all(&peapod).map_err(io_err(&peapod))?;
        write_file(&peapod, FILE_SUBTREE_CONTROL, &enable)?;
        std::fs::create_dir_all(&pod).map_err(io_err(&pod))?;
        if let Some(weight) = limits.cpu_weight {
            write_file(&pod, FILE_CPU_WEIGHT, &weight.to_string())?;
        }
        if let Some(millis) = limits.cpu_limit_millis {
            let quota = millis.saturating_mul(100).max(1000);
            write_file(&pod, FILE_CPU_MAX, &format!("{quota} {CPU_PERIOD_US}"))?;
        }
        if let Some(bytes) = limits.memory_limit_bytes {
            write_file(&pod, FILE_MEMORY_MAX, &bytes.to_string())?;
        }
        write_file(&pod, FILE_SUBTREE_CONTROL, &enable)?;
        tracing::info!(path = %pod.display(), ?limits, "created pod cgroup");
        Ok(pod)
    }

    fn no_controllers(&self, field: &str) -> CgroupError {
        CgroupError::LimitUnsupported {
            field: field.to_string(),
            reason: format!(
                "the cgroup2 hierarchy at {} has no cpu/memory/pids controllers",
                self.root.display()
            ),
        }
    }

    /// Creates a container (or sandbox) cgroup and applies the Spec's resources: limits, then
    /// the device allowlist of `devices` (before any process joins the cgroup).
    pub fn create(&self, path: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
        match self.create_without_devices(path, res)? {
            Some(rules) => self.attach_devices(path, &rules),
            None => Ok(()),
        }
    }

    /// [`Self::create`] up to the device allowlist, which it returns to attach with
    /// [`Self::attach_devices`] later, once the container's init is in the cgroup but before it
    /// runs the container's program (runc, too, sets the device rules after its init joined
    /// the cgroup): the kernel's load of the program then overlaps the init's mounts.
    pub fn create_without_devices(
        &self,
        path: &Path,
        res: &LinuxResources,
    ) -> Result<Option<DeviceRules>, CgroupError> {
        let rules = match res.devices() {
            Some(list) => Some(DeviceRules::from_spec(list)?),
            None => None,
        };
        if !self.controllers {
            // Shares and peapod's own pids.max default have nowhere to go; a limit must not
            // be dropped (the apply-time check refuses such pods first).
            let quota = res.cpu().as_ref().and_then(|c| c.quota());
            let memory = res.memory().as_ref().and_then(|m| m.limit());
            for (field, limit) in [
                ("linux.resources.cpu.quota", quota),
                ("linux.resources.memory.limit", memory),
            ] {
                if limit.is_some_and(|l| l > 0) {
                    return Err(self.no_controllers(field));
                }
            }
        }
        std::fs::create_dir_all(path).map_err(io_err(path))?;
        if self.controllers {
            self.write_limits(path, res)?;
        }
        Ok(rules)
    }

    /// Attaches the device allowlist `rules` to the cgroup at `path`.
    pub fn attach_devices(&self, path: &Path, rules: &DeviceRules) -> Result<(), CgroupError> {
        (self.attach_devices)(path, rules)
    }

    /// Applies new limits to an existing (running) container's cgroup, as runc's `update`.
    pub fn update(&self, path: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
        if !self.controllers {
            return Err(self.no_controllers("linux.resources"));
        }
        self.write_limits(path, res)
    }

    fn write_limits(&self, path: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(cpu) = res.cpu() {
            let period = cpu.period().unwrap_or(CPU_PERIOD_US);
            let max = match cpu.quota() {
                Some(q) if q > 0 => format!("{q} {period}"),
                _ => format!("max {period}"),
            };
            write_file(path, FILE_CPU_MAX, &max)?;
            if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
                write_file(
                    path,
                    FILE_CPU_WEIGHT,
                    &cpu_weight_from_shares(shares).to_string(),
                )?;
            }
        }
        if let Some(limit) = res.memory().as_ref().and_then(|m| m.limit()) {
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".to_string()
            };
            write_file(path, FILE_MEMORY_MAX, &value)?;
        }
        // The whole container is OOM-killed as a unit, like the kubelet asks of runc.
        write_file(path, FILE_MEMORY_OOM_GROUP, "1")?;
        if let Some(pids) = res.pids() {
            let value = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".to_string()
            };
            write_file(path, FILE_PIDS_MAX, &value)?;
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup.
    pub fn add_process(&self, path: &Path, pid: i32) -> Result<(), CgroupError> {
        write_file(path, FILE_PROCS, &pid.to_string())
    }

    /// Whether the kernel OOM killer hit this cgroup (`memory.events`: oom_kill or
    /// oom_group_kill above zero).
    pub fn oom_killed(&self, path: &Path) -> Result<bool, CgroupError> {
        if !self.controllers {
            return Ok(false);
        }
        let text = read_file(path, FILE_MEMORY_EVENTS)?;
        let file = path.join(FILE_MEMORY_EVENTS);
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            if key == "oom_kill" || key == "oom_group_kill" {
                let n: u64 = value.parse().map_err(|_| CgroupError::Parse {
                    path: file.clone(),
                    reason: format!("{key} has a non-numeric value {value:?}"),
                })?;
                if n > 0 {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The pids directly in this cgroup (`cgroup.procs`).
    pub fn pids(&self, path: &Path) -> Result<Vec<i32>, CgroupError> {
        let text = read_file(path, FILE_PROCS)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim().parse().map_err(|_| CgroupError::Parse {
                    path: path.join(FILE_PROCS),
                    reason: format!("{l:?} is not a pid"),
                })
            })
            .collect()
    }

    /// SIGKILLs every process in the cgroup and its children: `cgroup.kill` (Linux >= 5.14),
    /// else each pid of every `cgroup.procs` in the subtree.
    pub fn kill_all(&self, path: &Path) -> Result<(), CgroupError> {
        if path.join(FILE_KILL).exists() {
            return write_file(path, FILE_KILL, "1");
        }
        for dir in subtree_dirs(path)? {
            for pid in self.pids(&dir)? {
                let target = nix::unistd::Pid::from_raw(pid);
                match nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(source) => {
                        return Err(CgroupError::Kill {
                            pid,
                            path: dir.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes the cgroup and its children (deepest first). A missing cgroup is fine; EBUSY
    /// (processes still exiting) is retried briefly.
    pub fn remove(&self, path: &Path) -> Result<(), CgroupError> {
        if !path.exists() {
            return Ok(());
        }
        let mut dirs = subtree_dirs(path)?;
        dirs.reverse();
        for dir in dirs {
            remove_one(&dir, REMOVE_ATTEMPTS)?;
        }
        Ok(())
    }

    /// Removes the cgroup and its children without waiting: false when one is still busy
    /// (the kernel releases an exited task's cgroup a little after its parent reaped it);
    /// the caller tries again later instead of sleeping.
    pub fn try_remove(&self, path: &Path) -> Result<bool, CgroupError> {
        if !path.exists() {
            return Ok(true);
        }
        let mut dirs = subtree_dirs(path)?;
        dirs.reverse();
        for dir in dirs {
            match remove_one(&dir, 1) {
                Ok(()) => {}
                Err(CgroupError::Busy { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// `path` and every directory below it, parents before children.
fn subtree_dirs(path: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = vec![path.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let dir = out[i].clone();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                i += 1;
                continue;
            }
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            if entry.file_type().map_err(io_err(&dir))?.is_dir() {
                out.push(entry.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// True for names the kernel uses for cgroup control files.
fn is_control_file(name: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "cgroup.", "cpu.", "cpuset.", "memory.", "pids.", "io.", "hugetlb.", "rdma.", "misc.",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// rmdir with up to `attempts` tries while the cgroup is busy, [`REMOVE_RETRY_DELAY`] apart.
fn remove_one(dir: &Path, attempts: u32) -> Result<(), CgroupError> {
    for attempt in 1..=attempts {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if attempt < attempts {
                    std::thread::sleep(REMOVE_RETRY_DELAY);
                }
            }
            // On cgroupfs control files never make rmdir fail with ENOTEMPTY; a plain directory
            // that mimics cgroupfs (tests, a tmpfs mock) does. Remove only control-file names
            // so a wrong path can never lose real data.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
                let mut removed = false;
                for entry in entries {
                    let entry = entry.map_err(io_err(dir))?;
                    let name = entry.file_name();
                    let is_file = entry.file_type().map_err(io_err(dir))?.is_file();
                    if is_file && is_control_file(&name.to_string_lossy()) {
                        std::fs::remove_file(entry.path()).map_err(io_err(dir))?;
                        removed = true;
                    }
                }
                if !removed {
                    return Err(io_err(dir)(e));
                }
            }
            Err(e) => return Err(io_err(dir)(e)),
        }
    }
    if attempts > 1 {
        tracing::warn!(path = %dir.display(), "cgroup still busy, giving up");
    }
    Err(CgroupError::Busy {
        path: dir.to_path_buf(),
        attempts,
    })
}

#[cfg(test)]
mod tests;
