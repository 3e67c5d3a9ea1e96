//! Starting containers: whose turn it is (from `machine::order`), the image step, failures that
//! leave a container waiting, and the started instance.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::create::{Pending, StartFailure};
use super::hooks::HookKind;
use super::run::Instance;
use super::stop::{End, PodRun};
use super::Supervisor;
use crate::pod::events;
use crate::pod::machine::order::{advance, completion, init_count, may_start};
use crate::pod::machine::{Entry, Lifecycle, Waiting};
use crate::pod::model::{
    Terminated, REASON_CREATE_CONTAINER_CONFIG_ERROR, REASON_CREATE_CONTAINER_ERROR,
};
use crate::pod::record::ProcessRef;

/// The terminated reason when the runtime could not start the process [containerd].
pub const REASON_START_ERROR: &str = "StartError";
/// Exit code reported for a StartError, as containerd does.
pub const START_ERROR_EXIT_CODE: i32 = 128;
/// A container that failed to be made is retried after its back-off, but not sooner than this.
const MIN_RETRY: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Every container as the pod-level decisions see it, in spec order.
    pub(super) fn entries(&self) -> Vec<Entry> {
        self.runs.iter().map(|r| r.entry()).collect()
    }

    /// Starts every container whose time and turn have come.
    pub(super) fn start_due_containers(&mut self, now: Instant) {
        let Some(progress) = self.pod_run.progress() else {
            return;
        };
        let entries = self.entries();
        for i in 0..self.runs.len() {
            let due = self.runs[i].life.next_start().is_some_and(|t| now >= t);
            if due && may_start(i, &entries, progress) {
                self.runs[i].life.schedule(None);
                if let Some(pending) = self.create_container(i) {
                    self.start_created(i, pending);
                }
            }
        }
    }

    /// Schedules container `i` now unless a start is already scheduled (a back-off keeps its
    /// time) or it runs.
    fn schedule_turn(&mut self, i: usize, now: Instant) {
        let life = &mut self.runs[i].life;
        if matches!(life, Lifecycle::Waiting { .. } | Lifecycle::Exited { .. })
            && life.next_start().is_none()
        {
            life.schedule(Some(now));
        }
    }

    /// After any change: the pod may be complete, or the init order may have moved on (the
    /// next init container, or the app containers, are scheduled).
    pub(super) fn reconcile(&mut self) {
        let PodRun::Active { progress } = self.pod_run else {
            return;
        };
        // Through the CRI the pod ends only when the kubelet stops it.
        if self.cri {
            return;
        }
        let entries = self.entries();
        if let Some(how) = completion(&entries) {
            tracing::info!(?how, "the pod's containers are done");
            let grace = self.pod_grace();
            self.terminate(End::Finish, grace, None);
            return;
        }
        if !self.sandbox.is_ready() {
            return;
        }
        let next = advance(progress, &entries);
        if next == progress {
            return;
        }
        self.pod_run = PodRun::Active { progress: next };
        let now = Instant::now();
        let inits = init_count(&entries);
        if next < inits {
            self.schedule_turn(next, now);
        } else {
            for i in inits..self.runs.len() {
                self.schedule_turn(i, now);
            }
        }
        self.mark_dirty();
    }

    /// Everything up to a created (not yet started) container: image, writable layer, Spec,
    /// cgroup, and the cloned init preparing its mounts. None when it failed; the status and
    /// events say why and a retry is scheduled.
    pub(super) fn create_container(&mut self, i: usize) -> Option<Pending> {
        let c = self.runs[i].spec.clone();
        let image = self.image_step(i)?;
        self.runs[i].image = c.image.clone().unwrap_or_default();
        // The resolved image ID, `<repository>@sha256:...`, as the kubelet reports it.
        self.runs[i].image_id = image.repo_digest.clone().unwrap_or_else(|| {
            format!(
                "{}@{}",
                crate::image::split_reference(&image.reference).0,
                image.manifest_digest
            )
        });
        crate::starttrace::mark("sup image resolved");
        let result = self.create_instance(i, &c, &image);
        self.mark_dirty();
        match result {
            Ok(pending) => return Some(pending),
            Err(StartFailure::Config(e)) => {
                let message = e.to_string();
                let event = format!("Error: {message}");
                self.wait_and_retry(i, REASON_CREATE_CONTAINER_CONFIG_ERROR, message, event);
            }
            Err(StartFailure::Create(e)) => {
                let message = e.to_string();
                let event = format!("Error: {message}");
                self.wait_and_retry(i, REASON_CREATE_CONTAINER_ERROR, message, event);
            }
            Err(StartFailure::Start {
                container_id,
                source,
            }) => self.start_error(i, source.to_string(), container_id),
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
        let delay = r.backoff.on_exit(Duration::ZERO).max(MIN_RETRY);
        r.life.wait(
            Waiting {
                reason: reason.into(),
                message: Some(message),
            },
            Some(Instant::now() + delay),
        );
        self.event(events::WARNING, events::REASON_FAILED, &field, event);
        self.mark_dirty();
    }

    /// The runtime could not start the process: a StartError instance, then the restart policy.
    fn start_error(&mut self, i: usize, message: String, container_id: String) {
        let field = self.runs[i].field_path();
        let name = self.runs[i].spec.name.clone();
        self.start_failed_event(&field, &name, &message);
        self.runs[i].instances += 1;
        self.runs[i].redefining = false;
        self.runs[i].rerun = false;
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
        self.after_exit(i, t, Duration::ZERO, None);
    }

    /// The kubelet's Failed event for a container the runtime could not start.
    pub(super) fn start_failed_event(&mut self, field: &str, name: &str, message: &str) {
        self.event(
            events::WARNING,
            events::REASON_FAILED,
            field,
            format!("Error: failed to start container \"{name}\": {message}"),
        );
    }

    /// Opens a created container's gate and records the running instance; a postStart hook
    /// keeps it Starting until it returns.
    pub(super) fn start_created(&mut self, i: usize, p: Pending) {
        let Pending {
            created,
            dir,
            cgroup,
            container_id,
            pipes,
            input,
            log,
            termination_log,
            stop_signal,
        } = p;
        let name = self.runs[i].spec.name.clone();
        // The process is recorded (its start time is the init's, kept across the execve) while
        // the init passes its gate. It is Running once past it, as a container is once `runc
        // start` returns: its status is written while the execve runs on another CPU, and an
        // execve that fails after all ends the instance as a StartError (`on_container_exit`).
        let init = created.pid();
        let started = created.start_at_gate(|| {
            let process = ProcessRef::of(init).unwrap_or(ProcessRef {
                pid: init,
                start_time: 0,
            });
            self.set_container_process(&name, Some(process));
            self.save_state_or_log();
        });
        let (pid, terminal, exec_report) = match started {
            Ok(spawned) => {
                crate::starttrace::mark("sup started (past the gate)");
                (spawned.pid, spawned.terminal, spawned.exec_report)
            }
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "container start failed");
                // Reaped: never ran the user program.
                self.set_container_process(&name, None);
                self.release_instance(&dir, cgroup.as_deref());
                self.start_error(i, e.to_string(), container_id);
                return;
            }
        };
        tracing::debug!(container = %name, %pid, "container process running");
        let field = self.runs[i].field_path();
        let wants_stdin = self.runs[i].spec.stdin == Some(true);
        let (pipes, input, terminal) = match terminal {
            // A terminal's output is all stdout, as CRI runtimes log it; its input and window
            // size go to the same master.
            Some(master) => {
                super::create::set_nonblocking(&master);
                let input = wants_stdin.then(|| master.try_clone().ok()).flatten();
                let resize = master.try_clone().ok();
                ([Some(master), None], input, resize)
            }
            None => (pipes, input, None),
        };
        let attempt = self.runs[i].instances;
        let inst = Instance {
            pid: nix::unistd::Pid::from_raw(pid),
            attempt,
            container_id,
            dir,
            cgroup,
            started_at: Timestamp::now(),
            started: Instant::now(),
            pipes,
            input,
            input_pending: Vec::new(),
            terminal,
            log,
            termination_log,
            stop_signal,
            exec_report,
        };
        self.keep_descriptors(&name, &inst);
        let r = &mut self.runs[i];
        r.instances += 1;
        r.redefining = false;
        r.rerun = false;
        let post_start = r.has_post_start();
        r.life = Lifecycle::started(inst, post_start, r.probes());
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
        if post_start {
            self.start_hook(i, HookKind::PostStart);
        } else {
            let r = &mut self.runs[i];
            if let Some(inst) = r.life.instance() {
                let started = inst.started;
                r.probes.on_container_started(started);
            }
        }
        self.reconcile();
        self.mark_dirty();
    }

    fn set_container_process(&mut self, name: &str, process: Option<ProcessRef>) {
        if let Some(s) = self.state.containers.get_mut(name) {
            s.process = process;
        }
    }

    /// Gives the keeper a copy of each descriptor the instance needs to outlive this
    /// supervisor: its output pipes (or terminal) and its stdin.
    fn keep_descriptors(&self, name: &str, inst: &Instance) {
        use crate::pod::keeper::{tag, Role};
        use std::os::fd::AsFd;
        let Some(k) = &self.keeper else {
            return;
        };
        let mut fds = Vec::new();
        if let Some(master) = &inst.terminal {
            fds.push((Role::Terminal, master.as_fd()));
        } else {
            for (role, fd) in [
                (Role::Stdout, &inst.pipes[0]),
                (Role::Stderr, &inst.pipes[1]),
            ] {
                if let Some(fd) = fd {
                    fds.push((role, fd.as_fd()));
                }
            }
            if let Some(fd) = &inst.input {
                fds.push((Role::Stdin, fd.as_fd()));
            }
        }
        for (role, fd) in fds {
            if let Err(e) = k.hold(&tag(name, inst.attempt, role), fd) {
                tracing::warn!(container = %name, error = %e, "the keeper cannot hold the container's descriptors: a killed supervisor loses its output");
            }
        }
    }

    /// The keeper lets go of an instance's descriptors (`role`, or all of them).
    pub(super) fn release_kept(
        &self,
        name: &str,
        attempt: u32,
        role: Option<crate::pod::keeper::Role>,
    ) {
        use crate::pod::keeper::{instance_prefix, tag};
        if let Some(k) = &self.keeper {
            let prefix = match role {
                Some(role) => tag(name, attempt, role),
                None => instance_prefix(name, attempt),
            };
            if let Err(e) = k.release(&prefix) {
                tracing::debug!(error = %e, "keeper release");
            }
        }
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

    /// The containers to create with a new sandbox. Init containers, sidecars included, run
    /// again from the first: the kubelet purges their old statuses, so no back-off holds them
    /// [kuberuntime_manager.go SyncPod: purgeInitContainers]. App containers keep their
    /// back-off. Returns those whose start is due now (the first init container, or the app
    /// containers when there is none).
    pub(super) fn begin_sandbox_run(&mut self, now: Instant) -> Vec<usize> {
        for r in self.runs.iter_mut().filter(|r| r.kind.is_init()) {
            if r.life.instance().is_none() {
                r.life = Lifecycle::waiting(r.waiting_reason);
            }
        }
        self.pod_run = PodRun::Active { progress: 0 };
        let entries = self.entries();
        if init_count(&entries) > 0 {
            self.schedule_turn(0, now);
        } else {
            for i in 0..self.runs.len() {
                self.schedule_turn(i, now);
            }
        }
        (0..self.runs.len())
            .filter(|&i| {
                may_start(i, &entries, 0)
                    && self.runs[i].life.next_start().is_some_and(|t| t <= now)
            })
            .collect()
    }
}
