//! Building one container instance: writable layer, termination-message file, Spec, cgroup,
//! log, and the cloned init waiting at its start gate. Everything created is recorded in the
//! state file first and released again when a later step fails.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::Signal;
use nix::unistd::pipe2;

use super::Supervisor;
use crate::cgroup::CgroupError;
use crate::container::runtime::{self, ContainerStdio, RuntimeError};
use crate::container::spec::{self, RootfsLayout, SpecError, SpecInput};
use crate::image::Image;
use crate::logs::{CriLogWriter, LogError};
use crate::manifest::resources::{container_resources, qos_class};
use crate::manifest::ManifestError;
use crate::object::ObjectError;
use crate::pod::model::CONTAINER_ID_SCHEME;
use crate::pod::record::ContainerState;
use crate::store::StoreError;

/// The file bind-mounted at the container's terminationMessagePath.
pub(super) const TERMINATION_LOG: &str = "termination-log";
/// The kubelet makes the termination-message file writable by any user, so that a container
/// running as non-root can write its message [kuberuntime_container.go makeMounts: Chmod 0666].
const TERMINATION_LOG_MODE: u32 = 0o666;

/// How often the cgroup of an ended instance is tried again while the kernel still holds it,
/// and how many tries before it is left to the pod's teardown (which removes the pod cgroup
/// with everything below it).
const LEFTOVER_RETRY: Duration = Duration::from_millis(20);
const LEFTOVER_TRIES: u32 = 100;

/// Cgroups of ended instances that were still busy when they were released. Removing them
/// later, from the poll loop, keeps a restart from waiting for the kernel to let go of them.
#[derive(Debug, Default)]
pub(crate) struct Leftovers {
    cgroups: Vec<(PathBuf, u32)>,
    next_try: Option<Instant>,
}

impl Leftovers {
    /// When the next try is due.
    pub fn next_try(&self) -> Option<Instant> {
        self.next_try
    }

    /// Takes `cgroup` off the list: true if it was on it.
    fn take(&mut self, cgroup: &Path) -> bool {
        let before = self.cgroups.len();
        self.cgroups.retain(|(cg, _)| cg != cgroup);
        if self.cgroups.is_empty() {
            self.next_try = None;
        }
        self.cgroups.len() != before
    }

    fn add(&mut self, cgroup: PathBuf, now: Instant) {
        self.cgroups.push((cgroup, 0));
        self.next_try.get_or_insert(now + LEFTOVER_RETRY);
    }

    /// Tries each cgroup with `remove` (true: gone); keeps the busy ones for another try
    /// unless they have had their tries.
    fn retry(&mut self, now: Instant, mut remove: impl FnMut(&Path) -> bool) {
        if self.next_try.is_none_or(|t| now < t) {
            return;
        }
        self.cgroups.retain_mut(|(cg, tries)| {
            *tries += 1;
            if remove(cg) {
                return false;
            }
            if *tries >= LEFTOVER_TRIES {
                tracing::warn!(cgroup = %cg.display(), "cgroup still busy; left to the pod's teardown");
                return false;
            }
            true
        });
        self.next_try = (!self.cgroups.is_empty()).then_some(now + LEFTOVER_RETRY);
    }
}

/// Why a container could not be configured: a `CreateContainerConfigError` (the container
/// waits and is retried). The text is what the status and the `Failed` event show.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Volumes(#[from] super::volumes::VolumeSetupError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error(transparent)]
    Resources(#[from] ManifestError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    SubPath(#[from] super::subpaths::SubPathFailure),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("listing host devices in {}: {source}", path.display())]
    HostDevices {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the pod sandbox is not running")]
    NoSandbox,
}

/// Why an instance could not be made.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartFailure {
    /// The container could not be configured (spec, volumes, cgroup): retried, stays Waiting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The runtime could not create it (a Localhost seccomp or AppArmor profile it cannot use): retried,
    /// stays Waiting with CreateContainerError.
    #[error(transparent)]
    Create(SpecError),
    /// The runtime could not start the process: a StartError instance.
    #[error("{source}")]
    Start {
        container_id: String,
        #[source]
        source: StartError,
    },
}

/// What failed on the way to a started process.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error("pipe: {0}")]
    Pipe(#[source] nix::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// A created container waiting for [`Supervisor::start_created`].
pub(super) struct Pending {
    pub created: runtime::Created,
    pub dir: PathBuf,
    pub cgroup: Option<PathBuf>,
    pub container_id: String,
    /// stdout, stderr read ends; none for a terminal (its master comes with the start).
    pub pipes: [Option<OwnedFd>; 2],
    /// The write end of the container's stdin pipe (`stdin` without `tty`).
    pub input: Option<OwnedFd>,
    pub log: CriLogWriter,
    pub termination_log: PathBuf,
    pub stop_signal: Signal,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A signal name as the image config or `lifecycle.stopSignal` gives it: `SIGQUIT`, `QUIT`,
/// `sigquit`.
fn parse_signal(name: &str) -> Option<Signal> {
    let name = name.trim().to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<Signal>().ok()
}

/// The signal that stops the container: `lifecycle.stopSignal`, else the image's STOPSIGNAL,
/// else SIGTERM [KEP-4960: spec > image > runtime default; containerd's default is SIGTERM].
pub(super) fn stop_signal(c: &Container, image: &Image) -> Signal {
    let from_spec = spec_stop_signal_of(c);
    let from_image = || {
        image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.stop_signal().clone())
            .and_then(|s| parse_signal(&s))
    };
    from_spec.or_else(from_image).unwrap_or(Signal::SIGTERM)
}

fn spec_stop_signal_of(c: &Container) -> Option<Signal> {
    c.lifecycle
        .as_ref()
        .and_then(|l| l.stop_signal.as_deref())
        .and_then(parse_signal)
}

/// The stop signal when the image's config cannot be read: the spec's, else SIGTERM.
pub(super) fn spec_stop_signal(c: &Container) -> Signal {
    spec_stop_signal_of(c).unwrap_or(Signal::SIGTERM)
}

pub(super) fn set_nonblocking(fd: &OwnedFd) {
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// The container's standard streams, as a CRI runtime wires them: pipes for stdout and stderr
/// that the supervisor reads, a pipe for stdin when the container keeps it open (`stdin`), else
/// /dev/null. On a terminal (`tty`) the init replaces all three with the terminal it makes,
/// so the container is given /dev/null until then.
struct ContainerStreams {
    stdio: ContainerStdio,
    pipes: [Option<OwnedFd>; 2],
    input: Option<OwnedFd>,
}

impl ContainerStreams {
    fn new(tty: bool, stdin: bool) -> Result<Self, StartError> {
        if tty {
            let null = || {
                nix::fcntl::open(
                    "/dev/null",
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(StartError::Pipe)
            };
            return Ok(ContainerStreams {
                stdio: ContainerStdio {
                    stdin: None,
                    stdout: null()?,
                    stderr: null()?,
                },
                pipes: [None, None],
                input: None,
            });
        }
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(StartError::Pipe)?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(StartError::Pipe)?;
        set_nonblocking(&out_r);
        set_nonblocking(&err_r);
        let (stdin, input) = if stdin {
            let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).map_err(StartError::Pipe)?;
            set_nonblocking(&in_w);
            (Some(in_r), Some(in_w))
        } else {
            (None, None)
        };
        Ok(ContainerStreams {
            stdio: ContainerStdio {
                stdin,
                stdout: out_w,
                stderr: err_w,
            },
            pipes: [Some(out_r), Some(err_r)],
            input,
        })
    }
}

impl Supervisor {
    /// Builds and creates one instance. Everything it creates is recorded first and released
    /// again if a later step fails.
    pub(super) fn create_instance(
        &mut self,
        i: usize,
        c: &Container,
        image: &Image,
    ) -> Result<Pending, StartFailure> {
        // No cgroup2 hierarchy: nowhere to attach the device allowlist, so no container.
        crate::cgroup::check_devices_supported(&self.host.cgroup_support)
            .map_err(ConfigError::from)?;
        let uid = self.uid.clone();
        let attempt = self.runs[i].instances;
        let name = crate::container::names::container_name(
            self.pod_name(),
            self.namespace(),
            &uid,
            &c.name,
            attempt,
        );
        // Through the CRI: the ID the kubelet knows the container by, and its log path.
        let cri = self.cri_instances.get(&c.name).cloned();
        let id = match &cri {
            Some((id, _)) => id.clone(),
            None => crate::container::names::container_id(&name, &Timestamp::now().to_string()),
        };
        let container_id = format!("{CONTAINER_ID_SCHEME}{id}");
        let dir = self.paths.instance_bundle(&uid, &c.name, attempt);
        // Under a CRI sandbox's cgroup parent the container's cgroup is named by its CRI ID,
        // as containerd names it, and recorded as peapod's in that parent.
        let parent = self.cri_cgroup_parent().map(|(p, _)| p);
        let cgroup = self.host.cgroups.as_ref().map(|cg| match &parent {
            Some(parent) => cg.child_path(parent, &id),
            None => cg.container_path(&uid, &c.name, attempt),
        });
        if let (Some(cg), Some(record)) = (&cgroup, self.state.cgroup_parent.as_mut()) {
            record.add_child(cg);
        }
        // A retry after a failed creation reuses the attempt's cgroup path: one still being
        // given back by the kernel is removed first, waiting, so that the later removal cannot
        // take the new instance's cgroup.
        if let (Some(cg), Some(mgr)) = (&cgroup, self.host.cgroups.as_ref()) {
            if self.leftovers.take(cg) {
                mgr.remove(cg).map_err(ConfigError::from)?;
            }
        }
        let log_path = match cri {
            Some((_, path)) => path,
            None => {
                self.paths
                    .container_log(self.namespace(), self.pod_name(), &uid, &c.name, attempt)
            }
        };
        let instance = ContainerState {
            id: id.clone(),
            restart_count: attempt,
            process: None,
            bundle: Some(dir.clone()),
            cgroup: cgroup.clone(),
            log_path: Some(log_path.clone()),
            finished_at_ns: None,
        };
        let ahead = self.recorded_ahead(&c.name, &instance);
        self.state.containers.insert(c.name.clone(), instance);
        if !ahead {
            self.save_state().map_err(ConfigError::from)?;
        }
        self.sandbox.ran = true;
        crate::starttrace::mark("sup instance recorded");
        let result =
            self.build_and_create(c, image, &dir, cgroup.as_deref(), &log_path, &container_id);
        if let Err(e) = &result {
            tracing::warn!(container = %c.name, error = %e, "container start failed");
            self.release_instance(&dir, cgroup.as_deref());
        }
        result
    }

    /// Records the first instance of a new pod's first containers (every app container, or
    /// the first init container) in the supervisor's first state write, as
    /// `name_own_pod_cgroup` does for the pod cgroup: making them then needs no state write
    /// of its own (one file fewer created on the disk, and one replaced, on the start's path).
    /// Their ID stays empty (`ps` lists none, a reboot's recovery counts none as started)
    /// until they are made. Not for an adopted or recovered pod, a pod the kubelet drives,
    /// or one not admitted.
    pub(super) fn name_first_instances(&mut self) {
        if self.cri || self.adopted || self.after_reboot || self.admission.is_some() {
            return;
        }
        let first = match self.runs.iter().position(|r| r.kind.is_init()) {
            Some(i) => i..i + 1,
            None => 0..self.runs.len(),
        };
        for i in first {
            if self.runs[i].instances != 0 {
                continue;
            }
            let name = self.runs[i].spec.name.clone();
            let instance = ContainerState {
                id: String::new(),
                restart_count: 0,
                process: None,
                bundle: Some(self.paths.instance_bundle(&self.uid, &name, 0)),
                cgroup: self
                    .host
                    .cgroups
                    .as_ref()
                    .map(|cg| cg.container_path(&self.uid, &name, 0)),
                log_path: Some(self.paths.container_log(
                    self.namespace(),
                    self.pod_name(),
                    &self.uid,
                    &name,
                    0,
                )),
                finished_at_ns: None,
            };
            self.state.containers.insert(name, instance);
        }
    }

    /// Whether `instance` is, but its ID, the one recorded for container `name` ahead of its
    /// creation, and so on the disk already. A record without an ID is never one of a made
    /// instance: it was named before the supervisor's first state write (`name_first_instances`,
    /// or by a killed supervisor whose state this one adopted), which every later write keeps.
    fn recorded_ahead(&self, name: &str, instance: &ContainerState) -> bool {
        self.state.containers.get(name)
            == Some(&ContainerState {
                id: String::new(),
                ..instance.clone()
            })
    }

    fn build_and_create(
        &mut self,
        c: &Container,
        image: &Image,
        dir: &Path,
        cgroup: Option<&Path>,
        log_path: &Path,
        container_id: &str,
    ) -> Result<Pending, StartFailure> {
        let mut lower = image.layers.clone();
        // The bind mounts' targets, so that they are not created in the writable layer.
        lower.extend(crate::container::mountpoints::layer_for(
            &self.paths.mountpoints_layer(),
            &lower,
        ));
        let layer = self
            .paths
            .layer_of_bundle(dir)
            .ok_or_else(|| io_error(dir)(std::io::ErrorKind::InvalidInput.into()))?;
        let rootfs = RootfsLayout {
            lower,
            upper: layer.upper,
            work: layer.work,
            merged: dir.join("rootfs"),
        };
        for d in [&rootfs.upper, &rootfs.work, &rootfs.merged] {
            fs::create_dir_all(d).map_err(io_error(d))?;
        }
        let termination_log = dir.join(TERMINATION_LOG);
        fs::write(&termination_log, b"").map_err(io_error(&termination_log))?;
        fs::set_permissions(
            &termination_log,
            fs::Permissions::from_mode(TERMINATION_LOG_MODE),
        )
        .map_err(io_error(&termination_log))?;
        crate::starttrace::mark("sup layer dirs");
        let mut volume_dirs = self.volumes.dirs().map_err(ConfigError::from)?;
        if self.cri {
            // Through the CRI a container's mounts are host paths the kubelet prepared,
            // recorded as hostPath volumes when the container was added (`cri::translate`).
            for v in self
                .pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
            {
                if let (Some(hp), false) = (&v.host_path, volume_dirs.contains_key(&v.name)) {
                    volume_dirs.insert(
                        v.name.clone(),
                        crate::volume::HostVolume {
                            path: hp.path.clone().into(),
                            read_only: false,
                        },
                    );
                }
            }
        }
        // Env values are read once, now: later updates of the objects do not reach them.
        let objects = self.env_objects(c).map_err(ConfigError::from)?;
        self.warn_invalid_env_names(c, &objects);
        let run_dir = self.paths.pod_run_dir(&self.uid);
        let resources = container_resources(c).map_err(ConfigError::from)?;
        let sandbox_pid = self.sandbox.pid().ok_or(ConfigError::NoSandbox)?;
        // A privileged container gets the host's device nodes, read now (udev may have added
        // some since the last start), as containerd does at each container creation.
        let host_devices = if spec::is_privileged(c) {
            let dev = Path::new(crate::container::devices::HOST_DEV_DIR);
            crate::container::devices::host_devices(dev).map_err(|source| {
                ConfigError::HostDevices {
                    path: dev.to_path_buf(),
                    source,
                }
            })?
        } else {
            Vec::new()
        };
        // Read from the host (and the default profile loaded) at each creation, as containerd
        // does: a Localhost profile loaded since the last attempt is found.
        let apparmor = crate::container::apparmor::asked(&self.pod, c);
        let apparmor_profile =
            crate::container::apparmor::spec_profile(apparmor.as_ref(), spec::is_privileged(c))
                .map_err(|e| StartFailure::Create(SpecError::AppArmor(e)))?;
        let mut input = SpecInput {
            pod: &self.pod,
            container: c,
            image_config: &image.config,
            rootfs,
            sandbox_pid: sandbox_pid.as_raw(),
            pod_ip: self.state.sandbox.ip,
            host_ip: Some(self.host.net.gateway()),
            hosts_path: run_dir.join(super::sandbox::HOSTS_FILE),
            resolv_path: run_dir.join(super::sandbox::RESOLV_FILE),
            hostname_path: run_dir.join(super::sandbox::HOSTNAME_FILE),
            shm_path: run_dir.join(super::sandbox::SHM_DIR),
            termination_log_path: termination_log.clone(),
            volume_dirs,
            sub_path_sources: Default::default(),
            objects: &objects,
            cgroup_path: cgroup.map(Path::to_path_buf),
            host_devices,
            seccomp_root: self.paths.seccomp_profiles(),
            apparmor_profile,
            resources,
            qos: qos_class(&self.pod),
            node_name: self.host.node_name.clone(),
            node_memory_bytes: self.host.node_memory,
        };
        input.sub_path_sources = self.prepare_sub_paths(&input).map_err(ConfigError::from)?;
        let oci = spec::build_spec(&input).map_err(|e| match e {
            // The runtime's failure to load a profile, a CreateContainerError for the kubelet.
            e @ (SpecError::Seccomp(_) | SpecError::AppArmor(_)) => StartFailure::Create(e),
            e => ConfigError::from(e).into(),
        })?;
        tracing::debug!(container = %c.name, "spec built");
        crate::starttrace::mark("sup spec built");
        let mut devices = None;
        if let (Some(cg), Some(mgr)) = (cgroup, self.host.cgroups.as_ref()) {
            let res = oci
                .linux()
                .as_ref()
                .and_then(|l| l.resources().clone())
                .unwrap_or_default();
            devices = mgr
                .create_without_devices(cg, &res)
                .map_err(ConfigError::from)?
                .map(|rules| (cg, rules));
        }

        crate::starttrace::mark("sup ctr cgroup");
        let start = |source: StartError| StartFailure::Start {
            container_id: container_id.to_string(),
            source,
        };
        let tty = c.tty == Some(true);
        let streams = ContainerStreams::new(tty, c.stdin == Some(true)).map_err(start)?;
        crate::starttrace::mark("sup pipes");
        crate::starttrace::prepare();
        // The namespaces the container joins are built by the kernel while all of the above
        // ran, and may not be done: the init waits for them, which lets the clone overlap that
        // work (a failed sandbox is reported by `start_sandbox`, which awaits it too).
        let sandbox_ready = self.sandbox.namespaces_pending();
        let created = runtime::create_in_sandbox(&oci, dir, streams.stdio, sandbox_ready)
            .map_err(|e| start(e.into()))?;
        crate::starttrace::mark("sup cloned");
        // The bundle's config.json (read by exec and probes, never by this init, which has the
        // Spec in memory), the device allowlist and the log file, while the init mounts the
        // rootfs; before its gate opens (an error drops `created`: the init exits at its
        // closed gate and is reaped). Nothing is written to the log before the program runs,
        // and its directories cost inodes on the disk, off the path to the clone.
        runtime::write_bundle(dir, &oci).map_err(ConfigError::from)?;
        tracing::debug!(container = %c.name, "bundle written");
        crate::starttrace::mark("sup bundle written");
        if let (Some((cg, rules)), Some(mgr)) = (devices, self.host.cgroups.as_ref()) {
            mgr.attach_devices(cg, &rules).map_err(ConfigError::from)?;
            crate::starttrace::mark("sup devices attached");
        }
        let log = CriLogWriter::create(log_path).map_err(|e| start(e.into()))?;
        crate::starttrace::mark("sup log created");
        Ok(Pending {
            created,
            dir: dir.to_path_buf(),
            cgroup: cgroup.map(Path::to_path_buf),
            container_id: container_id.to_string(),
            pipes: streams.pipes,
            input: streams.input,
            log,
            termination_log,
            stop_signal: stop_signal(c, image),
        })
    }

    /// Removes an instance's bundle, writable layer and cgroup. Processes left in the cgroup
    /// (with a shared pid namespace, children of the container outlive its first process) are
    /// killed first, as containerd's shim does for such containers. A cgroup the kernel still
    /// holds is removed later ([`Leftovers`]), so that a restart does not wait for it.
    pub(super) fn release_instance(&mut self, dir: &Path, cgroup: Option<&Path>) {
        if let (Some(cg), Some(mgr)) = (cgroup, self.host.cgroups.as_ref()) {
            if cg.exists() {
                if let Err(e) = mgr.kill_all(cg) {
                    tracing::warn!(cgroup = %cg.display(), error = %e, "cgroup kill failed");
                }
            }
            match mgr.try_remove(cg) {
                Ok(true) => self.forget_parent_child(cg),
                Ok(false) => self.leftovers.add(cg.to_path_buf(), Instant::now()),
                Err(e) => {
                    tracing::warn!(cgroup = %cg.display(), error = %e, "cgroup removal failed")
                }
            }
        }
        let layer = self.paths.layer_dirs_of_bundle(dir);
        for d in std::iter::once(dir).chain(layer.iter().map(PathBuf::as_path)) {
            if let Err(e) = fs::remove_dir_all(d) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %d.display(), error = %e, "instance removal failed");
                }
            }
        }
    }
}

impl Supervisor {
    /// Tries again to remove the cgroups of ended instances that were still busy.
    pub(super) fn retry_leftovers(&mut self, now: Instant) {
        let Some(mgr) = self.host.cgroups.as_ref() else {
            return;
        };
        let mut removed = Vec::new();
        self.leftovers.retry(now, |cg| match mgr.try_remove(cg) {
            Ok(gone) => {
                if gone {
                    removed.push(cg.to_path_buf());
                }
                gone
            }
            Err(e) => {
                tracing::warn!(cgroup = %cg.display(), error = %e, "cgroup removal failed");
                true
            }
        });
        for cg in removed {
            self.forget_parent_child(&cg);
        }
    }

    /// A cgroup of this pod in a CRI cgroup parent is gone: teardown need not look for it.
    fn forget_parent_child(&mut self, cgroup: &Path) {
        if let Some(record) = self.state.cgroup_parent.as_mut() {
            record.children.retain(|c| c != cgroup);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_cgroups_are_tried_again_until_gone_or_out_of_tries() {
        let t0 = Instant::now();
        let mut left = Leftovers::default();
        assert_eq!(left.next_try(), None);
        left.add(PathBuf::from("/cg/a-0"), t0);
        left.add(PathBuf::from("/cg/b-0"), t0);
        assert_eq!(left.next_try(), Some(t0 + LEFTOVER_RETRY));
        // Not yet due: nothing is tried.
        left.retry(t0, |_| panic!("tried before its time"));
        // a goes, b is still busy.
        let mut tried = Vec::new();
        left.retry(t0 + LEFTOVER_RETRY, |cg| {
            tried.push(cg.to_path_buf());
            cg.ends_with("a-0")
        });
        assert_eq!(tried.len(), 2);
        assert_eq!(left.next_try(), Some(t0 + 2 * LEFTOVER_RETRY));
        let mut now = t0 + 2 * LEFTOVER_RETRY;
        for _ in 1..LEFTOVER_TRIES {
            left.retry(now, |cg| {
                assert!(cg.ends_with("b-0"));
                false
            });
            now += LEFTOVER_RETRY;
        }
        assert_eq!(left.next_try(), None, "given up after its tries");

        left.add(PathBuf::from("/cg/c-0"), now);
        assert!(left.take(Path::new("/cg/c-0")));
        assert!(!left.take(Path::new("/cg/c-0")));
        assert_eq!(left.next_try(), None);
    }

    #[test]
    fn signal_names_as_images_and_specs_write_them() {
        assert_eq!(parse_signal("SIGQUIT"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("quit"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal(" SIGUSR1 "), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
