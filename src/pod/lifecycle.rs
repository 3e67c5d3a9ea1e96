//! Creating and removing pods: what `apply` and `delete` do.
//!
//! `apply` records the pod (`pod.json`, with a fresh UID) under the pods lock, so two applies
//! cannot claim one name, and starts its supervisor as a detached process. `delete` writes
//! `delete.json`, signals the supervisor and waits until the pod is gone; if the supervisor
//! is dead it releases the pod's resources itself from the recorded state.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::pod::record::{
    self, DeleteRequest, PodState, ProcessRef, DELETE_FILE, POD_FILE, STATE_FILE,
};
use crate::pod::supervisor::{SUPERVISE_VERB, SUPERVISOR_LOG};
use crate::store::{
    read_json, write_json_in_existing_dir, write_json_unseen, FileLock, Paths, StoreError,
};

/// How long `apply` waits for a new supervisor to check in.
const SUPERVISOR_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time `delete` gives a supervisor beyond the grace period before cleaning up itself.
const DELETE_MARGIN: Duration = Duration::from_secs(30);

/// What `apply` did with one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// `pod/<name> created`
    Created {
        namespace: String,
        name: String,
        uid: String,
    },
    /// The name is taken in its namespace; the running pod was left alone.
    AlreadyExists { namespace: String, name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("pods \"{name}\" not found in namespace \"{namespace}\"")]
    NotFound { namespace: String, name: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("pod {pod}: {message}")]
    Pod { pod: String, message: String },
}

fn ns_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| crate::manifest::defaults::DEFAULT_NAMESPACE.into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Records each (already validated) pod and starts its supervisor. Pods whose limits this
/// host cannot enforce, or whose containers it cannot confine to their device allowlist, are
/// refused before anything is created.
pub fn apply(paths: &Paths, pods: Vec<Pod>) -> Result<Vec<ApplyOutcome>, LifecycleError> {
    create(paths, pods, UidChoice::New)
}

/// Like [`apply`] for pods whose UID the caller chose (static pods: the hash of their file,
/// as the kubelet makes it); a pod without one gets a new UID.
pub fn apply_with_uid(paths: &Paths, pods: Vec<Pod>) -> Result<Vec<ApplyOutcome>, LifecycleError> {
    create(paths, pods, UidChoice::Given)
}

/// Where a new pod's UID comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UidChoice {
    /// A fresh UUID, as the API server gives every pod it creates (a `uid` in the manifest,
    /// from `get -o yaml`, is not kept).
    New,
    /// The pod's own `metadata.uid`.
    Given,
}

fn create(
    paths: &Paths,
    pods: Vec<Pod>,
    uid_choice: UidChoice,
) -> Result<Vec<ApplyOutcome>, LifecycleError> {
    let support = crate::cgroup::detect(std::path::Path::new(crate::cgroup::CGROUP_ROOT));
    for pod in &pods {
        crate::cgroup::check_devices_supported(&support)
            .and_then(|()| crate::cgroup::check_limits_supported(pod, &support))
            .map_err(|e| {
                let (ns, name) = ns_name(pod);
                LifecycleError::Pod {
                    pod: format!("{ns}/{name}"),
                    message: e.to_string(),
                }
            })?;
    }
    crate::starttrace::mark("cli checked");
    let _lock = FileLock::exclusive(&paths.pods_lock())?;
    record::sweep_transient(paths);
    crate::starttrace::mark("cli locked+swept");
    // The names taken, read once under the lock (no other CLI claims one meanwhile), and
    // each pod's added as it is recorded.
    let mut taken: std::collections::HashSet<record::PodName> = record::list_keys(paths)?
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    let mut outcomes = Vec::new();
    for mut pod in pods {
        let (namespace, name) = ns_name(&pod);
        if !taken.insert((namespace.clone(), name.clone())) {
            outcomes.push(ApplyOutcome::AlreadyExists { namespace, name });
            continue;
        }
        let uid = match (uid_choice, pod.metadata.uid.as_deref()) {
            (UidChoice::Given, Some(uid)) if !uid.is_empty() => uid.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        pod.metadata.uid = Some(uid.clone());
        pod.metadata.namespace = Some(namespace.clone());
        pod.metadata.creation_timestamp = Some(Time(
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now()),
        ));
        pod.status = None;
        // Written now, made durable while the supervisor starts (off the pod's critical path),
        // and durable before `apply` reports the pod created. Made aside and renamed in, so
        // that an apply killed half-way leaves no pod directory without its pod.json.
        let staging = record::transient_pod_dir(paths, record::NEW_POD_PREFIX, &uid);
        let recorded = write_json_unseen(&staging.join(POD_FILE), &pod).and_then(|()| {
            fs::rename(&staging, paths.pod_dir(&uid)).map_err(|e| StoreError::io(&staging, e))
        });
        if let Err(e) = recorded {
            let _ = fs::remove_dir_all(&staging);
            return Err(e.into());
        }
        let pod_file = paths.pod_dir(&uid).join(POD_FILE);
        crate::starttrace::mark("cli pod.json written");
        if let Err(e) = start_supervisor(paths, &uid, &pod_file) {
            let _ = fs::remove_dir_all(paths.pod_dir(&uid));
            return Err(LifecycleError::Pod {
                pod: format!("{namespace}/{name}"),
                message: format!("cannot start its supervisor: {e}"),
            });
        }
        outcomes.push(ApplyOutcome::Created {
            namespace,
            name,
            uid,
        });
    }
    Ok(outcomes)
}

/// Starts a supervisor again for a pod on record whose processes a reboot took (the node
/// agent's recovery: `node::recovery`); the supervisor takes the pod up from its records
/// (`pod::reboot`).
pub fn restart_supervisor(paths: &Paths, uid: &str) -> Result<(), LifecycleError> {
    let pod_file = paths.pod_dir(uid).join(POD_FILE);
    start_supervisor(paths, uid, &pod_file).map_err(|e| LifecycleError::Pod {
        pod: uid.to_string(),
        message: format!("cannot start its supervisor: {e}"),
    })
}

/// Starts the pod's supervisor in its own session, detached from the CLI, and waits until it
/// has recorded itself. The host's zygote or a single-threaded CLI forks it (no second exec of
/// peapod: about 2 ms and the relocated pages stay shared); otherwise it runs
/// `peapod __supervise <uid>`.
fn start_supervisor(paths: &Paths, uid: &str, durable: &std::path::Path) -> std::io::Result<()> {
    let run_dir = paths.pod_run_dir(uid);
    fs::create_dir_all(&run_dir)?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(SUPERVISOR_LOG))?;
    let single = crate::procfs::thread_count() == 1;
    if single || crate::pod::spawner::has_zygote() {
        use crate::pod::spawner;
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        crate::starttrace::mark("cli forking");
        let taken = if single {
            // The answer is read once the pod's file is synced: the spawner forks meanwhile.
            let sent = spawner::send(uid, &ready_w, &log).is_ok();
            sync_durable(durable)?;
            sent && spawner::taken().is_ok()
        } else if spawner::request(uid, &ready_w, &log).is_ok() {
            sync_durable(durable)?;
            true
        } else {
            false
        };
        if taken {
            drop(ready_w);
            return wait_supervisor(ready_r, &run_dir);
        }
        if single {
            fork_keeper(uid, ready_w, log, false)?;
            return wait_supervisor(ready_r, &run_dir);
        }
        // A threaded process whose zygote is gone: the supervisor is executed.
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(SUPERVISE_VERB)
        .arg(uid)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    sync_durable(durable)?;
    let state_file = paths.pod_dir(uid).join(STATE_FILE);
    let deadline = Instant::now() + SUPERVISOR_START_TIMEOUT;
    // A pod recovered after a reboot has a state file already: it must name this child, the
    // keeper (or the supervisor itself, when it could not set up a keeper).
    let recorded = |child: u32| {
        read_json::<PodState>(&state_file).ok().is_some_and(|s| {
            [s.keeper, s.supervisor]
                .iter()
                .flatten()
                .any(|p| p.pid as u32 == child)
        })
    };
    while Instant::now() < deadline {
        if recorded(child.id()) {
            started_children().push(child);
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!(
                "supervisor exited with {status}; see {}",
                run_dir.join(SUPERVISOR_LOG).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(std::io::Error::other("supervisor did not start in time"))
}

/// The keepers this (threaded) process started by re-exec: its children until they exit,
/// collected by [`reap_started`].
fn started_children() -> std::sync::MutexGuard<'static, Vec<std::process::Child>> {
    static CHILDREN: std::sync::Mutex<Vec<std::process::Child>> = std::sync::Mutex::new(Vec::new());
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Collects the keepers started by re-exec that have exited (a threaded caller of `apply`,
/// the CRI server, calls it now and then), so that no zombie piles up. Returns how many are
/// still running.
pub fn reap_started() -> usize {
    let mut children = started_children();
    children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    children.len()
}

/// Makes the pod's record durable while its supervisor starts: its file, the entry of the file
/// in the pod's directory and the directory's own entry (renamed in) in the pods directory.
fn sync_durable(durable: &std::path::Path) -> std::io::Result<()> {
    fs::File::open(durable)?.sync_all()?;
    let pod_dir = durable.parent();
    for dir in [pod_dir, pod_dir.and_then(std::path::Path::parent)]
        .into_iter()
        .flatten()
    {
        crate::store::sync_dir(dir).map_err(std::io::Error::other)?;
    }
    crate::starttrace::mark("cli pod.json synced");
    Ok(())
}

/// Waits until the supervisor forked (through its keeper) by the spawner, the zygote or this
/// process has recorded itself: it writes `ready` then, and a supervisor that could not start
/// (or a keeper never forked) closes it unwritten.
fn wait_supervisor(ready_r: OwnedFd, run_dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Read;

    let mut answer = Vec::new();
    fs::File::from(ready_r).read_to_end(&mut answer)?;
    crate::starttrace::mark("cli supervisor ready");
    if answer.is_empty() {
        return Err(std::io::Error::other(format!(
            "supervisor exited before recording the pod; see {}",
            run_dir.join(SUPERVISOR_LOG).display()
        )));
    }
    Ok(())
}

/// Forks the pod's keeper, which forks its supervisor. The child gets a new session, /dev/null
/// and `log` as stdio, and no other descriptor of this process's (the pods lock above all) but
/// the readiness pipe, on which the supervisor writes once its state file exists. The caller
/// is single-threaded. `sibling`: the keeper is made a child of the caller's parent
/// (`CLONE_PARENT`) rather than of the caller: a zygote's server, itself nobody's child (its
/// parent is init or the host's subreaper), so that the keeper is nobody's child either, with
/// no intermediate fork that exits at once on the start's path.
pub(crate) fn fork_keeper(
    uid: &str,
    ready_w: OwnedFd,
    log: fs::File,
    sibling: bool,
) -> std::io::Result<()> {
    use crate::cgroup::clone::{clone_into, Cloned};
    use std::os::fd::AsRawFd;

    let null = fs::OpenOptions::new().read(true).open("/dev/null")?;
    let flags = if sibling {
        libc::CLONE_PARENT as u64
    } else {
        0
    };
    // SAFETY: this process has a single thread (the caller's contract), so the child may run
    // ordinary code; it leaves through _exit and never returns into the caller.
    match unsafe { clone_into(flags, None) }.map_err(std::io::Error::from)? {
        Cloned::Child { .. } => {
            let ready = ready_w.as_raw_fd();
            // SAFETY: descriptor plumbing on fds this process owns; nothing else runs yet.
            unsafe {
                libc::setsid();
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(log.as_raw_fd(), 1);
                libc::dup2(log.as_raw_fd(), 2);
                if ready > 3 {
                    libc::syscall(libc::SYS_close_range, 3u32, (ready - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (ready + 1) as u32, u32::MAX, 0u32);
            }
            crate::starttrace::reopen();
            std::mem::forget((null, log));
            let code = crate::pod::supervisor::main_forked(uid, ready_w);
            // SAFETY: leave without running the caller's destructors or flushing its buffers.
            unsafe { libc::_exit(code) }
        }
        Cloned::Parent { .. } => Ok(()),
    }
}

/// A delete asked of a pod's supervisor, not yet finished.
#[derive(Debug)]
pub struct PendingDelete {
    namespace: String,
    name: String,
    uid: String,
    supervisor: Option<ProcessRef>,
    /// The supervisor's keeper: it may start a new supervisor meanwhile.
    keeper: Option<ProcessRef>,
    grace_seconds: i64,
}

/// Stops a pod (stop signal, grace period, SIGKILL) and removes everything it holds.
/// `grace_period_seconds: None` uses the pod's terminationGracePeriodSeconds (0 with `force`).
/// Returns when the pod is gone.
pub fn delete(
    paths: &Paths,
    namespace: &str,
    name: &str,
    grace_period_seconds: Option<i64>,
    force: bool,
) -> Result<(), LifecycleError> {
    let pending = request_delete(paths, namespace, name, grace_period_seconds, force)?;
    finish_delete(paths, pending)
}

/// Asks the pod's supervisor to stop it (delete.json, SIGTERM) and returns at once, so that
/// several pods stop together (`delete pods --all`); [`finish_delete`] waits for each.
pub fn request_delete(
    paths: &Paths,
    namespace: &str,
    name: &str,
    grace_period_seconds: Option<i64>,
    force: bool,
) -> Result<PendingDelete, LifecycleError> {
    let rec = record::find(paths, namespace, name)?.ok_or_else(|| LifecycleError::NotFound {
        namespace: namespace.into(),
        name: name.into(),
    })?;
    let uid = rec.pod.metadata.uid.clone().unwrap_or_default();
    let pod_default = rec
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    // The CLI applies kubectl's rules (0 only with --force); here None is the pod's own period.
    let grace = match grace_period_seconds {
        Some(g) if g >= 0 => g,
        _ if force => 0,
        _ => pod_default,
    };
    // Not write_json: the pod may be going away under an earlier delete, and its directory must
    // not come back holding only this file.
    let requested = write_json_in_existing_dir(
        &paths.pod_dir(&uid).join(DELETE_FILE),
        &DeleteRequest {
            grace_period_seconds: grace,
            requested_at: jiff::Timestamp::now().to_string(),
        },
    );
    let gone = match requested {
        Ok(()) => false,
        Err(e) if e.is_not_found() => true,
        Err(e) => return Err(e.into()),
    };
    let supervisor = rec
        .state
        .as_ref()
        .and_then(|s| s.supervisor.clone())
        .filter(|s| !gone && s.is_alive());
    if let Some(sup) = &supervisor {
        let _ = kill(Pid::from_raw(sup.pid), Signal::SIGTERM);
    }
    let keeper = rec
        .state
        .as_ref()
        .and_then(|s| s.keeper.clone())
        .filter(|k| !gone && k.is_alive());
    Ok(PendingDelete {
        namespace: namespace.into(),
        name: name.into(),
        uid,
        supervisor,
        keeper,
        grace_seconds: grace,
    })
}

/// Waits at most `timeout` for one of `processes` (those still alive) to exit.
fn await_any_exit<'a>(processes: impl Iterator<Item = &'a ProcessRef>, timeout: Duration) {
    let fds: Vec<std::os::fd::OwnedFd> = processes
        .filter_map(|p| {
            let fd = crate::procfs::pidfd_open(p.pid)?;
            // The pid names our process still (not one that reused it after its exit).
            p.is_alive().then_some(fd)
        })
        .collect();
    if fds.is_empty() {
        // None to poll (a kernel without pidfd_open, or they exited meanwhile): a plain wait.
        std::thread::sleep(timeout);
        return;
    }
    crate::procfs::await_any_pidfd(&fds, timeout);
}

/// Waits until the supervisor has stopped the pod (SIGKILL after the grace period and a
/// margin); if it could not (killed, crashed), releases what the record says the pod holds.
pub fn finish_delete(paths: &Paths, pending: PendingDelete) -> Result<(), LifecycleError> {
    let PendingDelete {
        namespace,
        name,
        uid,
        supervisor,
        mut keeper,
        grace_seconds,
    } = pending;
    let deadline =
        Instant::now() + Duration::from_secs(grace_seconds.max(0) as u64) + DELETE_MARGIN;
    let state_file = paths.pod_dir(&uid).join(STATE_FILE);
    // The supervisors asked to stop; a keeper may start another one (a supervisor killed
    // meanwhile), which refuses to adopt a pod being deleted, or adopted it just before and
    // is asked in turn. The keeper ends once its supervisor has.
    let mut supervisors: Vec<ProcessRef> = supervisor.into_iter().collect();
    loop {
        if let Ok(state) = read_json::<PodState>(&state_file) {
            keeper = state.keeper.or(keeper);
            if let Some(sup) = state.supervisor.filter(|s| s.is_alive()) {
                if !supervisors.contains(&sup) {
                    let _ = kill(Pid::from_raw(sup.pid), Signal::SIGTERM);
                    supervisors.push(sup);
                }
            }
        }
        let running = supervisors.iter().any(ProcessRef::is_alive)
            || keeper.as_ref().is_some_and(ProcessRef::is_alive);
        if !running {
            break;
        }
        if Instant::now() >= deadline {
            // The keeper first, so that it starts no other supervisor.
            for p in keeper.iter().chain(supervisors.iter()) {
                crate::pod::teardown::kill_recorded(p);
            }
            break;
        }
        // Woken by the first of them to exit (pidfds), else in 5 ms: the state file may name
        // a supervisor started meanwhile.
        await_any_exit(
            keeper.iter().chain(supervisors.iter()),
            Duration::from_millis(5),
        );
    }
    let dir = paths.pod_dir(&uid);
    if dir.exists() {
        let state: PodState = read_json(&dir.join(STATE_FILE)).unwrap_or_else(|_| PodState {
            uid: uid.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            ..Default::default()
        });
        crate::pod::teardown::release_all(paths, &state).map_err(|e| LifecycleError::Pod {
            pod: format!("{namespace}/{name}"),
            message: e.to_string(),
        })?;
    }
    Ok(())
}
