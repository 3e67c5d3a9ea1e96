//! The supervisor's side of containers: building each instance (image, writable layer, spec,
//! cgroup, log), starting it, collecting its output and exit, and the restart decision.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::pipe2;

use super::{Instance, Supervisor};
use crate::cgroup::PodLimits;
use crate::container::runtime::{self, ContainerStdio};
use crate::container::spec::{self, RootfsLayout, SpecInput};
use crate::image::Image;
use crate::logs::{CriLogWriter, Stream};
use crate::manifest::resources::{container_resources, qos_class};
use crate::pod::events;
use crate::pod::model::{
    self, RunState, Terminated, CONTAINER_ID_SCHEME, REASON_CRASH_LOOP_BACK_OFF,
    REASON_CREATE_CONTAINER_CONFIG_ERROR, REASON_CREATE_CONTAINER_ERROR,
};
use crate::pod::record::{ContainerState, ProcessRef, CONTAINERS_DIR};

/// The terminated reason when the runtime could not start the process [containerd].
pub const REASON_START_ERROR: &str = "StartError";
/// Exit code reported for a StartError, as containerd does.
pub const START_ERROR_EXIT_CODE: i32 = 128;
/// The kubelet reads at most this much of the termination message file.
const MAX_TERMINATION_MESSAGE: u64 = 4096;
/// FallbackToLogsOnError: the last lines of the log, at most 2048 bytes / 80 lines.
const FALLBACK_LOG_BYTES: usize = 2048;
const FALLBACK_LOG_LINES: usize = 80;
const TERMINATION_LOG: &str = "termination-log";

/// The pod cgroup's limits (the rule lives in `cgroup::pod_limits`).
pub(super) fn pod_limits(pod: &Pod) -> Result<PodLimits, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let parse = |cs: &[Container]| -> Result<Vec<_>, String> {
        cs.iter()
            .map(|c| container_resources(c).map_err(|e| e.to_string()))
            .collect()
    };
    let app = parse(&spec.containers)?;
    let init = parse(&spec.init_containers.unwrap_or_default())?;
    Ok(crate::cgroup::pod_limits(&app, &init))
}

fn restart_wanted(pod: &Pod, init: bool, exit_code: i32) -> bool {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match policy {
        "Never" => false,
        // Init containers restart only on failure, even under Always.
        "OnFailure" => exit_code != 0,
        _ if init => exit_code != 0,
        _ => true,
    }
}

fn stop_signal(image: &Image) -> Signal {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().clone())
        .and_then(|s| {
            let name = s.trim().to_ascii_uppercase();
            let name = if name.starts_with("SIG") {
                name
            } else {
                format!("SIG{name}")
            };
            name.parse::<Signal>().ok()
        })
        .unwrap_or(Signal::SIGTERM)
}

fn set_nonblocking(fd: &OwnedFd) {
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
}

/// The container's termination message: its file, or with FallbackToLogsOnError and an
/// error exit, the tail of its log.
fn termination_message(c: &Container, file: &Path, log: &Path, exit_code: i32) -> Option<String> {
    let mut buf = String::new();
    if let Ok(f) = fs::File::open(file) {
        let _ = f.take(MAX_TERMINATION_MESSAGE).read_to_string(&mut buf);
    }
    if buf.is_empty()
        && exit_code != 0
        && c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    {
        if let Ok(lines) = crate::logs::read_log(
            log,
            &crate::logs::ReadOptions {
                tail: Some(FALLBACK_LOG_LINES),
            },
        ) {
            let text = lines
                .iter()
                .map(|l| l.content.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let start = text.len().saturating_sub(FALLBACK_LOG_BYTES);
            let start = (start..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            buf = text[start..].to_string();
        }
    }
    (!buf.is_empty()).then_some(buf)
}

impl Supervisor {
    /// Starts every container whose time has come.
    pub(super) fn start_due_containers(&mut self, now: Instant) {
        for i in 0..self.runs.len() {
            let r = &self.runs[i];
            if r.instance.is_none() && r.next_start.is_some_and(|t| now >= t) {
                self.runs[i].next_start = None;
                self.start_container(i);
            }
        }
    }

    /// Schedules every app container that has not finished for good.
    pub(super) fn schedule_app_containers(&mut self) {
        let now = Instant::now();
        for r in self.runs.iter_mut().filter(|r| !r.init) {
            if r.instance.is_none() && r.next_start.is_none() && !r.view.done {
                r.next_start = Some(now);
            }
        }
    }

    fn start_container(&mut self, i: usize) {
        if let Some(pending) = self.create_container(i) {
            self.start_created(i, pending);
        }
    }

    /// Everything up to a created (not yet started) container: image, writable layer, Spec,
    /// cgroup, and the cloned init preparing its mounts. None when it failed; the status and
    /// events say why and a retry is scheduled.
    pub(super) fn create_container(&mut self, i: usize) -> Option<Pending> {
        let c = self.runs[i].spec.clone();
        let image = self.image_step(i)?;
        // The resolved image ID, `<repository>@sha256:...`, as the kubelet reports it.
        self.runs[i].view.image_id = image.repo_digest.clone().unwrap_or_else(|| {
            format!(
                "{}@{}",
                crate::image::split_reference(&image.reference).0,
                image.manifest_digest
            )
        });

        let result = self.create_instance(i, &c, &image);
        self.mark_dirty();
        match result {
            Ok(pending) => return Some(pending),
            Err(StartFailure::Config(message)) => {
                let event = format!("Error: {message}");
                self.wait_and_retry(i, REASON_CREATE_CONTAINER_CONFIG_ERROR, message, event);
            }
            Err(StartFailure::Create(message)) => {
                let event = format!("Error: {message}");
                self.wait_and_retry(i, REASON_CREATE_CONTAINER_ERROR, message, event);
            }
            Err(StartFailure::Start {
                message,
                container_id,
            }) => self.start_error(i, message, container_id),
        }
        None
    }

    /// The container cannot be made yet: it waits with `reason`, a Warning `Failed` event is
    /// recorded, and another try comes after the back-off (at least a second).
    pub(super) fn wait_and_retry(
        &mut self,
        i: usize,
        reason: &str,
        message: String,
        event: String,
    ) {
        let field = self.runs[i].field_path();
        let r = &mut self.runs[i];
        let delay = r
            .backoff
            .on_exit(Duration::ZERO)
            .max(Duration::from_secs(1));
        r.next_start = Some(Instant::now() + delay);
        r.view.state = RunState::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        self.event(events::WARNING, events::REASON_FAILED, &field, event);
        self.mark_dirty();
    }

    /// The runtime could not start the process: a StartError instance, then the restart policy.
    fn start_error(&mut self, i: usize, message: String, container_id: String) {
        let field = self.runs[i].field_path();
        let name = self.runs[i].spec.name.clone();
        self.event(
            events::WARNING,
            events::REASON_FAILED,
            &field,
            format!("Error: failed to start container \"{name}\": {message}"),
        );
        let r = &mut self.runs[i];
        r.instances += 1;
        r.view.restart_count = r.instances - 1;
        r.view.ever_started = true;
        let now = Timestamp::now();
        let t = Terminated {
            exit_code: START_ERROR_EXIT_CODE,
            signal: None,
            reason: REASON_START_ERROR.into(),
            message: Some(message),
            started_at: Some(now),
            finished_at: now,
            container_id,
        };
        self.after_exit(i, t, Duration::ZERO);
        self.mark_dirty();
    }

    /// Opens a created container's gate and records the running instance.
    pub(super) fn start_created(&mut self, i: usize, p: Pending) {
        let Pending {
            created,
            dir,
            cgroup,
            container_id,
            pipes,
            log,
            termination_log,
            stop_signal,
        } = p;
        let name = self.runs[i].spec.name.clone();
        let pid = match created.start() {
            Ok(spawned) => spawned.pid,
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "container start failed");
                self.release_instance(&dir, cgroup.as_deref());
                self.start_error(i, e.to_string(), container_id);
                return;
            }
        };
        tracing::debug!(container = %name, %pid, "container process running");
        let process = ProcessRef::of(pid).unwrap_or(ProcessRef { pid, start_time: 0 });
        if let Some(s) = self.state.containers.get_mut(&name) {
            s.process = Some(process);
        }
        let _ = self.save_state();
        let now = Timestamp::now();
        let field = self.runs[i].field_path();
        let r = &mut self.runs[i];
        r.view.state = RunState::Running {
            started_at: now,
            container_id: container_id.clone(),
        };
        r.instance = Some(Instance {
            pid: nix::unistd::Pid::from_raw(pid),
            container_id,
            dir,
            cgroup,
            started_at: now,
            started: Instant::now(),
            pipes: pipes.map(Some),
            log,
            termination_log,
            stop_signal,
        });
        r.instances += 1;
        r.view.restart_count = r.instances - 1;
        r.view.ever_started = true;
        r.killed_by_sandbox = false;
        self.event(
            events::NORMAL,
            events::REASON_CREATED,
            &field,
            format!("Created container: {name}"),
        );
        self.event(
            events::NORMAL,
            events::REASON_STARTED,
            &field,
            format!("Started container {name}"),
        );
        self.mark_dirty();
    }

    /// Drops created containers that will not start (their init exits at the closed gate) and
    /// releases their writable layers and cgroups.
    pub(super) fn abandon_created(&mut self, pending: Vec<(usize, Pending)>) {
        for (_, p) in pending {
            let Pending {
                created,
                dir,
                cgroup,
                ..
            } = p;
            drop(created);
            self.release_instance(&dir, cgroup.as_deref());
        }
    }

    /// Builds and creates one instance. Everything it creates is recorded first and released
    /// again if a later step fails.
    fn create_instance(
        &mut self,
        i: usize,
        c: &Container,
        image: &Image,
    ) -> Result<Pending, StartFailure> {
        // No cgroup2 hierarchy: nowhere to attach the device allowlist, so no container.
        crate::cgroup::check_devices_supported(&self.cgroup_support)
            .map_err(|e| StartFailure::Config(e.to_string()))?;
        let uid = self.uid.clone();
        let attempt = self.runs[i].instances;
        let name = crate::container::names::container_name(
            self.pod_name(),
            self.namespace(),
            &uid,
            &c.name,
            attempt,
        );
        let id = crate::container::names::container_id(&name, &Timestamp::now().to_string());
        let container_id = format!("{CONTAINER_ID_SCHEME}{id}");
        let dir = self
            .paths
            .pod_dir(&uid)
            .join(CONTAINERS_DIR)
            .join(&c.name)
            .join(attempt.to_string());
        let cgroup = self
            .cgroups
            .as_ref()
            .map(|cg| cg.container_path(&uid, &c.name, attempt));
        let log_path =
            self.paths
                .container_log(self.namespace(), self.pod_name(), &uid, &c.name, attempt);
        self.state.containers.insert(
            c.name.clone(),
            ContainerState {
                id: id.clone(),
                restart_count: attempt,
                process: None,
                bundle: Some(dir.clone()),
                cgroup: cgroup.clone(),
                log_path: Some(log_path.clone()),
            },
        );
        self.save_state()
            .map_err(|e| StartFailure::Config(e.to_string()))?;
        let result =
            self.build_and_create(c, image, &dir, cgroup.as_deref(), &log_path, &container_id);
        if let Err(e) = &result {
            tracing::warn!(container = %c.name, error = ?e, "container start failed");
            self.release_instance(&dir, cgroup.as_deref());
        }
        result
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
        let config = |e: String| StartFailure::Config(e);
        let rootfs = RootfsLayout {
            lower: image.layers.clone(),
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("rootfs"),
        };
        for d in [&rootfs.upper, &rootfs.work, &rootfs.merged] {
            fs::create_dir_all(d).map_err(|e| config(format!("{}: {e}", d.display())))?;
        }
        let termination_log = dir.join(TERMINATION_LOG);
        fs::write(&termination_log, b"")
            .map_err(|e| config(format!("{}: {e}", termination_log.display())))?;
        let volume_dirs = self.volumes.dirs().map_err(|e| config(e.to_string()))?;
        // Env values are read once, now: later updates of the objects do not reach them.
        let objects = self.env_objects(c).map_err(|e| config(e.to_string()))?;
        self.warn_invalid_env_names(c, &objects);
        let run_dir = self.paths.pod_run_dir(&self.uid);
        let resources = container_resources(c).map_err(|e| config(e.to_string()))?;
        let sandbox_pid = self
            .sandbox
            .as_ref()
            .map(|s| s.pid.as_raw())
            .ok_or_else(|| config("the pod sandbox is not running".into()))?;
        // A privileged container gets the host's device nodes, read now (udev may have added
        // some since the last start), as containerd does at each container creation.
        let host_devices = if spec::is_privileged(c) {
            let dev = Path::new(crate::container::devices::HOST_DEV_DIR);
            crate::container::devices::host_devices(dev)
                .map_err(|e| config(format!("listing host devices in {}: {e}", dev.display())))?
        } else {
            Vec::new()
        };
        let mut input = SpecInput {
            pod: &self.pod,
            container: c,
            image_config: &image.config,
            rootfs,
            sandbox_pid,
            pod_ip: self.state.sandbox.ip,
            host_ip: Some(self.net.gateway()),
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
            resources,
            qos: qos_class(&self.pod),
            node_name: self.node_name.clone(),
            node_memory_bytes: self.node_memory,
        };
        input.sub_path_sources = self.prepare_sub_paths(&input).map_err(config)?;
        let oci = spec::build_spec(&input).map_err(|e| match e {
            // The runtime's failure to load a profile, a CreateContainerError for the kubelet.
            spec::SpecError::Seccomp(_) => StartFailure::Create(e.to_string()),
            e => config(e.to_string()),
        })?;
        tracing::debug!(container = %c.name, "spec built");
        runtime::write_bundle(dir, &oci).map_err(|e| config(e.to_string()))?;
        tracing::debug!(container = %c.name, "bundle written");
        if let (Some(cg), Some(mgr)) = (cgroup, self.cgroups.as_ref()) {
            let res = oci
                .linux()
                .as_ref()
                .and_then(|l| l.resources().clone())
                .unwrap_or_default();
            mgr.create(cg, &res).map_err(|e| config(e.to_string()))?;
        }

        let start = |message: String| StartFailure::Start {
            message,
            container_id: container_id.to_string(),
        };
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| start(format!("pipe: {e}")))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| start(format!("pipe: {e}")))?;
        set_nonblocking(&out_r);
        set_nonblocking(&err_r);
        let log = CriLogWriter::create(log_path).map_err(|e| start(e.to_string()))?;
        let created = runtime::create(
            &oci,
            dir,
            ContainerStdio {
                stdin: None,
                stdout: out_w,
                stderr: err_w,
            },
        )
        .map_err(|e| start(e.to_string()))?;
        Ok(Pending {
            created,
            dir: dir.to_path_buf(),
            cgroup: cgroup.map(Path::to_path_buf),
            container_id: container_id.to_string(),
            pipes: [out_r, err_r],
            log,
            termination_log,
            stop_signal: stop_signal(image),
        })
    }

    fn release_instance(&self, dir: &Path, cgroup: Option<&Path>) {
        if let (Some(cg), Some(mgr)) = (cgroup, self.cgroups.as_ref()) {
            // In the host's pid namespace (hostPID) a container's processes outlive its first
            // one; as containerd's shim does, they go with it.
            let _ = mgr.kill_all(cg);
            if let Err(e) = mgr.remove(cg) {
                tracing::warn!(cgroup = %cg.display(), error = %e, "cgroup removal failed");
            }
        }
        if let Err(e) = fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "writable layer removal failed");
            }
        }
    }

    /// Reads what a container wrote on stdout (0) or stderr (1) into its log.
    pub(super) fn drain_pipe(&mut self, ri: usize, pi: usize) {
        let Some(inst) = self.runs[ri].instance.as_mut() else {
            return;
        };
        let stream = if pi == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Some(fd) = inst.pipes[pi].as_ref() else {
                return;
            };
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    inst.pipes[pi] = None;
                    return;
                }
                Ok(n) => {
                    if let Err(e) = inst.log.write(stream, &buf[..n]) {
                        tracing::warn!(error = %e, "log write failed");
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    inst.pipes[pi] = None;
                    return;
                }
            }
        }
    }

    /// A container process exited with `exit_code` (128+N when killed by signal N).
    pub(super) fn on_container_exit(&mut self, i: usize, exit_code: i32, signal: Option<i32>) {
        self.drain_pipe(i, 0);
        self.drain_pipe(i, 1);
        let Some(mut inst) = self.runs[i].instance.take() else {
            return;
        };
        if let Err(e) = inst.log.flush_partial() {
            tracing::warn!(error = %e, "log flush failed");
        }
        let oom = match (&inst.cgroup, &self.cgroups) {
            (Some(cg), Some(mgr)) => mgr.oom_killed(cg).unwrap_or(false),
            _ => false,
        };
        let log_path = self
            .state
            .containers
            .get(&self.runs[i].spec.name)
            .and_then(|s| s.log_path.clone())
            .unwrap_or_default();
        let message = termination_message(
            &self.runs[i].spec,
            &inst.termination_log,
            &log_path,
            exit_code,
        );
        let (exit_code, signal) = if oom {
            (137, Some(9))
        } else {
            (exit_code, signal)
        };
        let t = Terminated {
            exit_code,
            signal,
            reason: model::terminated_reason(exit_code, oom).into(),
            message,
            started_at: Some(inst.started_at),
            finished_at: Timestamp::now(),
            container_id: inst.container_id.clone(),
        };
        tracing::info!(container = %self.runs[i].spec.name, exit_code, oom, "container exited");
        if let Some(s) = self.state.containers.get_mut(&self.runs[i].spec.name) {
            s.process = None;
        }
        self.release_instance(&inst.dir, inst.cgroup.as_deref());
        let ran_for = inst.started.elapsed();
        drop(inst);
        self.after_exit(i, t, ran_for);
        self.sandbox_lost_check();
        self.mark_dirty();
    }

    /// Applies the restart policy and back-off to a finished instance.
    fn after_exit(&mut self, i: usize, t: Terminated, ran_for: Duration) {
        let exit_code = t.exit_code;
        let init = self.runs[i].init;
        // An evicted pod's containers are done for good, as a stopping pod's are.
        let stopping = self.stopping.is_some() || self.evicted.is_some();
        let by_sandbox = self.runs[i].killed_by_sandbox;
        let restart = !stopping && restart_wanted(&self.pod, init, exit_code)
            || (by_sandbox && !stopping && restart_wanted(&self.pod, false, exit_code));
        let r = &mut self.runs[i];
        if !restart {
            // Finished for good; the previous instance stays as lastState.
            r.view.state = RunState::Terminated(t);
            r.view.done = true;
            if init && !stopping {
                if exit_code == 0 {
                    self.start_next_after_init(i);
                } else {
                    self.init_failed = true;
                }
            }
            return;
        }
        r.view.last_terminated = Some(t.clone());
        if by_sandbox || self.sandbox_lost {
            // Restarts once the new sandbox is up (see schedule_after_sandbox).
            r.view.state = RunState::Terminated(t);
            return;
        }
        let delay = r.backoff.on_exit(ran_for);
        if delay.is_zero() {
            r.view.state = RunState::Terminated(t);
            r.next_start = Some(Instant::now());
            return;
        }
        r.next_start = Some(Instant::now() + delay);
        let name = r.spec.name.clone();
        let field = r.field_path();
        let pod = format!("{}_{}({})", self.pod_name(), self.namespace(), self.uid);
        self.runs[i].view.state = RunState::Waiting {
            reason: REASON_CRASH_LOOP_BACK_OFF.into(),
            message: Some(format!(
                "back-off {} restarting failed container={name} pod={pod}",
                humantime(delay)
            )),
        };
        self.event(
            events::WARNING,
            events::REASON_BACKOFF,
            &field,
            format!("Back-off restarting failed container {name} in pod {pod}"),
        );
    }

    /// An init container succeeded: start the next one, or the app containers.
    fn start_next_after_init(&mut self, i: usize) {
        let next = self
            .runs
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, r)| r.init)
            .map(|(j, _)| j);
        match next {
            Some(j) => self.runs[j].next_start = Some(Instant::now()),
            None => self.schedule_app_containers(),
        }
    }

    /// Sends each running container its stop signal (SIGTERM unless the image says otherwise).
    pub(super) fn stop_containers_gracefully(&mut self) {
        let mut stopping = Vec::new();
        for r in &self.runs {
            if let Some(inst) = &r.instance {
                let _ = kill(inst.pid, inst.stop_signal);
                stopping.push((r.field_path(), r.spec.name.clone()));
            }
        }
        for (field, name) in stopping {
            self.event(
                events::NORMAL,
                events::REASON_KILLING,
                &field,
                format!("Stopping container {name}"),
            );
        }
    }

    /// SIGKILL to every container (through its cgroup when there is one).
    pub(super) fn kill_all_containers(&mut self) {
        for r in &self.runs {
            if let Some(inst) = &r.instance {
                if let (Some(cg), Some(mgr)) = (&inst.cgroup, &self.cgroups) {
                    let _ = mgr.kill_all(cg);
                }
                let _ = kill(inst.pid, Signal::SIGKILL);
            }
        }
        if let Some(s) = self.stopping.as_mut() {
            s.killed = true;
        }
    }
}

/// `10s`, `5m0s`, as Go prints durations in the back-off message.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A created container waiting for [`Supervisor::start_created`].
pub(super) struct Pending {
    created: runtime::Created,
    dir: PathBuf,
    cgroup: Option<PathBuf>,
    container_id: String,
    /// stdout, stderr read ends.
    pipes: [OwnedFd; 2],
    log: CriLogWriter,
    termination_log: PathBuf,
    stop_signal: Signal,
}

#[derive(Debug)]
enum StartFailure {
    /// The container could not be configured (spec, volumes, cgroup): retried, stays Waiting.
    Config(String),
    /// The runtime could not create it (a Localhost seccomp profile it cannot load): retried,
    /// stays Waiting with CreateContainerError.
    Create(String),
    /// The runtime could not start the process: a StartError instance.
    Start {
        message: String,
        container_id: String,
    },
}
