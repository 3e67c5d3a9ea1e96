//! A supervisor started by the pod's keeper after the previous one was killed (`pod::keeper`):
//! it takes the running pod over instead of starting it (`pod::adopt` decides). The sandbox is
//! kept; each running container becomes a running instance again, with the descriptors the
//! keeper held (its pipes, stdin, terminal), its log file appended to, its cgroup watched for
//! OOM kills and its probes resumed; an instance that ended meanwhile goes through the usual
//! exit path with the status the keeper collected. A pod that cannot be adopted is left as the
//! killed supervisor left it (`Unknown`), and this supervisor exits without touching anything.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
use nix::unistd::Pid;

use super::run::Instance;
use super::stop::PodRun;
use super::Supervisor;
use crate::logs::CriLogWriter;
use crate::pod::adopt::{adopt_container, may_adopt, Adopted, ContainerFacts, Ended, PodFacts};
use crate::pod::keeper::{self, Handoff, Role};
use crate::pod::machine::{after_exit, Exit, Lifecycle};
use crate::pod::reboot::{REASON_UNKNOWN, UNKNOWN_EXIT_CODE};
use crate::pod::record::{PodState, ProcessRef, DELETE_FILE, STATE_FILE, STATUS_FILE};
use crate::store::read_json;

/// The recorded process exists: same pid and start time (a zombie not collected yet counts: its
/// exit is still to come from the keeper).
fn exists(p: &ProcessRef) -> bool {
    crate::procfs::stat(p.pid).is_some_and(|s| s.start_time == p.start_time)
}

/// The `Instant` of a wall-clock time in the past.
fn instant_of(t: Timestamp) -> Instant {
    let ago = Timestamp::now()
        .duration_since(t)
        .unsigned_abs()
        .min(Duration::from_secs(u32::MAX.into()));
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// Takes the descriptor tagged `tag` out of the handoff.
fn take(held: &mut Vec<(String, OwnedFd)>, tag: &str) -> Option<OwnedFd> {
    let i = held.iter().position(|(t, _)| t == tag)?;
    Some(held.swap_remove(i).1)
}

impl Supervisor {
    /// Takes over the pod the killed supervisor ran. False (logged) when it is not adopted.
    pub(super) fn adopt(&mut self, handoff: Handoff) -> bool {
        let Handoff { mut held, exits } = handoff;
        let dir = self.paths.pod_dir(&self.uid);
        let previous: Option<PodState> = read_json(&dir.join(STATE_FILE)).ok();
        let status: Option<PodStatus> = read_json(&dir.join(STATUS_FILE)).ok();
        // Every exit the keeper collected: handed over, and those up to its answer. A process of
        // the pod that is gone after this and not among them ended unseen.
        let mut exits = exits;
        match self.keeper.as_ref().map(|k| k.sync()) {
            Some(Ok(more)) => exits.extend(more),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the keeper did not answer; exits it collected may be missed")
            }
            None => {}
        }
        let boot = self.state.boot_id.clone().unwrap_or_default();
        let facts = PodFacts {
            state: previous.as_ref(),
            status: status.as_ref(),
            boot_id: &boot,
            deleting: dir.join(DELETE_FILE).exists(),
        };
        if let Err(refusal) = may_adopt(&facts) {
            tracing::warn!(
                reason = refusal.as_str(),
                "the previous supervisor was killed; the pod is not adopted (Unknown until deleted)"
            );
            return false;
        }
        let (Some(previous), Some(status)) = (previous, status) else {
            return false;
        };
        tracing::info!(
            previous = ?previous.supervisor.as_ref().map(|p| p.pid),
            "the previous supervisor was killed; adopting the pod"
        );
        let exit_of = |p: &ProcessRef| {
            exits
                .iter()
                .rev()
                .find(|(pid, _)| *pid == p.pid)
                .and_then(|(_, st)| keeper::exit_of(*st))
        };

        self.state.sandbox = previous.sandbox.clone();
        self.state.pod_cgroup = previous.pod_cgroup.clone();
        self.state.cgroup_parent = previous.cgroup_parent.clone();
        self.state.host_port_table = previous.host_port_table.clone();
        self.state.containers = previous.containers.clone();
        if let Some(start) = status.start_time.as_ref() {
            self.start_time = start.0;
            self.started = instant_of(start.0);
        }
        let pause = previous.sandbox.process.clone();
        if let Some(p) = &pause {
            self.sandbox.adopt(
                Pid::from_raw(p.pid),
                previous.sandbox.ip,
                status.host_ip.clone(),
            );
        }
        // Idempotent: the volumes are there; their directories are what later starts mount.
        self.volume_gate(Instant::now());

        let statuses: Vec<ContainerStatus> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .cloned()
            .collect();
        let now = Timestamp::now();
        let mut ended = Vec::new();
        let mut used = Vec::new();
        for i in 0..self.runs.len() {
            let name = self.runs[i].spec.name.clone();
            let instance = previous.containers.get(&name);
            let process = instance.and_then(|c| c.process.as_ref());
            let alive = process.is_some_and(exists);
            let facts = ContainerFacts {
                status: statuses.iter().find(|s| s.name == name),
                instance,
                alive,
                exit: process.filter(|_| !alive).and_then(exit_of),
            };
            let adopted = adopt_container(facts, now);
            tracing::info!(container = %name, ?adopted, "adopted");
            let (taken, end) = match adopted {
                Adopted::Running(t) => (t, None),
                Adopted::EndedMeanwhile(t, e) => (t, Some(e)),
                Adopted::NotRunning(restored) => {
                    let r = &mut self.runs[i];
                    r.instances = restored.instances;
                    r.image_id = restored.image_id;
                    r.before_last = restored.before_last;
                    r.last = restored.last;
                    if let Some(last) = &r.last {
                        let exit = Exit {
                            code: last.exit_code,
                            ran_for: Duration::ZERO,
                        };
                        let next = after_exit(r.kind, &r.policy, exit, None, &mut r.backoff);
                        r.life = Lifecycle::after_exit(next, Instant::now(), |_| {
                            crate::pod::machine::Waiting {
                                reason: crate::pod::model::REASON_CRASH_LOOP_BACK_OFF.into(),
                                message: None,
                            }
                        });
                    }
                    continue;
                }
            };
            let (Some(instance), Some(process)) = (instance, process) else {
                continue;
            };
            let inst = self.adopted_instance(i, &taken, instance, process, &mut held);
            used.push(keeper::instance_prefix(&name, taken.restart_count));
            let r = &mut self.runs[i];
            r.instances = taken.restart_count + 1;
            r.image_id = taken.image_id.clone();
            r.last = taken.last.clone();
            r.before_last = taken.before_last.clone();
            r.probes.on_container_started(inst.started);
            let probes = r.probes();
            r.life = match taken.started_at {
                Some(_) => Lifecycle::Running {
                    inst,
                    started: taken.started,
                    ready: taken.ready,
                },
                // Started after the last status: as a start shows it.
                None => Lifecycle::started(inst, false, probes),
            };
            if let Some(e) = end {
                ended.push((i, e));
            }
        }
        // What the keeper holds for instances no longer running is let go.
        if let Some(k) = &self.keeper {
            for (tag, _) in &held {
                if !used.iter().any(|p| tag.starts_with(p.as_str())) {
                    let _ = k.release(tag);
                }
            }
        }
        drop(held);
        self.sandbox.ran = true;
        self.pod_run = PodRun::Active { progress: 0 };
        self.status = Some(status);
        self.adopted = true;
        self.reconcile();
        // What happened while no supervisor ran, through the usual paths.
        for (i, e) in ended {
            let (code, signal) = match e {
                Ended::Seen { code, signal } => (code, signal),
                Ended::Unseen => (UNKNOWN_EXIT_CODE, None),
            };
            tracing::info!(container = %self.runs[i].spec.name, code, "the container ended while no supervisor ran");
            self.on_container_exit(i, code, signal);
            if e == Ended::Unseen {
                if let Some(last) = self.runs[i].last.as_mut() {
                    last.reason = REASON_UNKNOWN.into();
                }
            }
        }
        if let Some(p) = pause.filter(|p| !exists(p)) {
            tracing::warn!("the pause process ended while no supervisor ran");
            self.on_sandbox_exit(Pid::from_raw(p.pid));
        }
        self.mark_dirty();
        true
    }

    /// The running instance of container `i` as the killed supervisor left it, with the
    /// descriptors the keeper held for it.
    fn adopted_instance(
        &mut self,
        i: usize,
        taken: &crate::pod::adopt::Taken,
        instance: &crate::pod::record::ContainerState,
        process: &ProcessRef,
        held: &mut Vec<(String, OwnedFd)>,
    ) -> Instance {
        let spec = self.runs[i].spec.clone();
        let name = spec.name.as_str();
        let n = taken.restart_count;
        let tag = |role| keeper::tag(name, n, role);
        let terminal = take(held, &tag(Role::Terminal));
        let (pipes, input, resize) = match terminal {
            Some(master) => {
                let input = (spec.stdin == Some(true))
                    .then(|| master.try_clone().ok())
                    .flatten();
                let resize = master.try_clone().ok();
                ([Some(master), None], input, resize)
            }
            None => (
                [
                    take(held, &tag(Role::Stdout)),
                    take(held, &tag(Role::Stderr)),
                ],
                take(held, &tag(Role::Stdin)),
                None,
            ),
        };
        let log_path = instance.log_path.clone().unwrap_or_default();
        let log = CriLogWriter::create(&log_path).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot open the container's log again; its output goes to /dev/null");
            CriLogWriter::create(std::path::Path::new("/dev/null"))
                .expect("/dev/null opens for appending")
        });
        let image = spec.image.clone().unwrap_or_default();
        let stop_signal = match self.local_image(&image) {
            Ok(img) => super::create::stop_signal(&spec, &img),
            Err(_) => super::create::spec_stop_signal(&spec),
        };
        let dir = instance.bundle.clone().unwrap_or_default();
        let started_at = taken.started_at.unwrap_or_else(Timestamp::now);
        Instance {
            pid: Pid::from_raw(process.pid),
            attempt: n,
            container_id: taken.container_id.clone(),
            termination_log: dir.join(super::create::TERMINATION_LOG),
            dir,
            cgroup: instance.cgroup.clone(),
            started_at,
            started: instant_of(started_at),
            pipes,
            input,
            input_pending: Vec::new(),
            terminal: resize,
            log,
            stop_signal,
            exec_report: None,
        }
    }
}
