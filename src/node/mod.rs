//! The node agent, `peapod node`: what a kubelet does for its node besides running pods, on one
//! host: when it starts, the pods a reboot stopped come back ([`recovery`]); then static pods
//! from a manifest directory ([`static_pods`]), kept in step with the directory by inotify and
//! a periodic rescan, as the kubelet's `staticPodPath` is. It runs in
//! the foreground (a systemd service: [`SYSTEMD_UNIT`]); the pods it creates are ordinary
//! peapod pods with their own supervisors, so stopping the agent stops no pod. It also keeps
//! the CRI server running, a child process of its own ([`cri_server`]).
//!
//! Single-threaded (supervisors are forked from it); must not print (it logs).

pub mod cri_server;
pub mod recovery;
pub mod static_pods;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::Signal;

use crate::pod::lifecycle::{self, ApplyOutcome, LifecycleError};
use crate::pod::record;
use crate::store::{FileLock, Paths, StoreError};
use static_pods::{Action, Running};

/// The kubelet's default `staticPodPath` is `/etc/kubernetes/manifests`; peapod's own.
pub const DEFAULT_MANIFEST_DIR: &str = "/etc/peapod/manifests";
/// How often the directory is read again even without a change notice [the kubelet's
/// `fileCheckFrequency`, 20 s].
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(20);
/// Changes that come together (an editor's write, rename and chmod) are read once.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// One agent per host.
pub const NODE_LOCK: &str = "node.lock";
/// How long a starting agent waits for the node lock.
const LOCK_WAIT: Duration = Duration::from_millis(500);

/// The systemd unit that runs the agent at boot. `KillMode=process`: stopping or restarting
/// the agent leaves the pods' supervisors and containers running, as a kubelet restart does.
///
/// At boot it is what brings the pods back (`recovery`): it starts after the local file
/// systems that hold peapod's records and logs are mounted (`RequiresMountsFor`), and once up
/// it starts a supervisor for each pod the reboot stopped.
pub const SYSTEMD_UNIT: &str = "[Unit]
Description=peapod node agent (pods back after a reboot, static pods, the CRI socket)
After=network-online.target local-fs.target
Wants=network-online.target
RequiresMountsFor=/var/lib/peapod /var/log/pods

[Service]
ExecStart=/usr/local/bin/peapod node --manifests /etc/peapod/manifests
Restart=always
RestartSec=2
KillMode=process

[Install]
WantedBy=multi-user.target
";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("delete of static pod {pod}: {message}")]
    Delete { pod: String, message: String },
    #[error("another peapod node agent is running (it holds {0})")]
    AlreadyRunning(PathBuf),
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Sys { what, source }
}

/// What `peapod node` was asked.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub manifests: PathBuf,
    pub node_name: String,
    /// Reconcile once and return (tests, cron).
    pub once: bool,
    /// Where the CRI server listens; `None`: no CRI server.
    pub cri_socket: Option<PathBuf>,
}

/// What one pass did, for the log and for `--once`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    pub invalid: Vec<String>,
    /// What the start-up recovery did (`--once` reports it).
    pub recovery: recovery::RecoveryReport,
}

/// Runs the agent until SIGTERM or SIGINT (or one pass with `once`).
pub fn run(paths: &Paths, opts: &NodeOptions) -> Result<SyncReport, NodeError> {
    let lock_path = paths.run.join(NODE_LOCK);
    let _lock = take_lock(&lock_path)?;
    // The zygote forks the keepers of every pod of the host, this agent's too (its socket is
    // removed and the zygote stopped when this returns). Dropped before the lock.
    let _zygote = crate::pod::zygote::listen(&paths.run, &lock_path);
    if _zygote.is_some() {
        crate::pod::spawner::connect_zygote(&paths.run);
    }
    // Pods an earlier boot ran come back first: a static pod among them is then found
    // running by the sync below, not made anew.
    let recovery = recovery::recover(paths)?;
    tracing::info!(?recovery, "recovery after boot done");
    if opts.once {
        let mut report = sync(paths, opts)?;
        report.recovery = recovery;
        return Ok(report);
    }
    let signals = crate::pod::loop_signalfd(&[]).map_err(|(step, e)| sys(step)(e))?;
    let inotify =
        Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(sys("inotify"))?;
    watch(&inotify, &opts.manifests)?;
    // A static pod deleted by hand comes back at once, as a kubelet recreates its mirror pod.
    watch(&inotify, &paths.pods())?;
    tracing::info!(manifests = %opts.manifests.display(), node = %opts.node_name, "node agent started");
    // Once SIGCHLD reaches the signalfd, so that its exit is never missed. Dropped (stopped)
    // whenever this function returns.
    let mut cri = opts.cri_socket.clone().map(cri_server::CriChild::start);

    let mut last = sync(paths, opts)?;
    let mut next_scan = Instant::now() + RESCAN_INTERVAL;
    let mut pending: Option<Instant> = None;
    loop {
        let due = [pending, cri.as_ref().and_then(|c| c.due())]
            .into_iter()
            .flatten()
            .fold(next_scan, Instant::min);
        let wait = due.saturating_duration_since(Instant::now());
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
        ];
        let timeout =
            PollTimeout::try_from(wait.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(sys("poll")(e)),
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let (signalled, changed) = (ready(0), ready(1));
        if signalled {
            while let Ok(Some(info)) = signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT) => {
                        tracing::info!("node agent stopping; pods keep running");
                        return Ok(last);
                    }
                    Ok(Signal::SIGHUP) => pending = Some(Instant::now()),
                    // Supervisors are forked from here and detach; reap any that exits.
                    _ => reap_children(&mut cri),
                }
            }
        }
        if changed {
            while let Ok(events) = inotify.read_events() {
                if events.is_empty() {
                    break;
                }
            }
            pending.get_or_insert(Instant::now() + DEBOUNCE);
            // The manifest directory may have been made since we started.
            watch(&inotify, &opts.manifests)?;
        }
        let now = Instant::now();
        if let Some(c) = &mut cri {
            c.tick(now);
        }
        if pending.is_some_and(|p| now >= p) || now >= next_scan {
            pending = None;
            next_scan = now + RESCAN_INTERVAL;
            last = sync(paths, opts)?;
        }
    }
}

/// The node lock. The zygote of an agent that just exited takes it for a moment (to remove its
/// socket unless a new agent made one): an agent started meanwhile waits that moment out.
fn take_lock(lock_path: &Path) -> Result<FileLock, NodeError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        if let Some(lock) = FileLock::try_exclusive(lock_path)? {
            return Ok(lock);
        }
        if Instant::now() >= deadline {
            return Err(NodeError::AlreadyRunning(lock_path.to_path_buf()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn watch(inotify: &Inotify, dir: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let flags = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_ONLYDIR;
    inotify
        .add_watch(dir, flags)
        .map_err(sys(format!("inotify watch of {}", dir.display())))?;
    Ok(())
}

/// Reaps every child that exited; the CRI server's exit schedules its restart.
fn reap_children(cri: &mut Option<cri_server::CriChild>) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        let Some(pid) = status.pid() else { break };
        if let Some(c) = cri {
            c.exited(pid, &status);
        }
    }
}

/// One reconciliation: read the directory, delete what no longer matches it, create what is
/// missing. An invalid file is logged and the rest goes on.
pub fn sync(paths: &Paths, opts: &NodeOptions) -> Result<SyncReport, NodeError> {
    let seen = jiff::Timestamp::now().to_string();
    let scan = static_pods::scan(&opts.manifests, &opts.node_name, &seen);
    let mut report = SyncReport::default();
    for bad in &scan.invalid {
        // The kubelet logs it and goes on with the other files [config/file.go].
        tracing::error!(file = %bad.file.display(), reason = %bad.reason, "could not process manifest file");
        report
            .invalid
            .push(format!("{}: {}", bad.file.display(), bad.reason));
    }
    let running: Vec<Running> = record::load_all(paths)?
        .into_iter()
        .filter(|r| static_pods::is_static(&r.pod))
        .map(|r| Running {
            namespace: r.namespace().to_string(),
            name: r.name().to_string(),
            hash: r.pod.metadata.uid.clone().unwrap_or_default(),
        })
        .collect();
    for action in static_pods::reconcile(&scan.pods, &running) {
        match action {
            Action::Delete { namespace, name } => {
                tracing::info!(pod = %format!("{namespace}/{name}"), "static pod's manifest changed or went away: deleting it");
                // In a child: a delete whose supervisor is gone tears down here (see
                // `recovery::in_child`).
                let deleted = recovery::in_child(|| {
                    match lifecycle::delete(paths, &namespace, &name, None, false) {
                        Ok(()) | Err(LifecycleError::NotFound { .. }) => Ok(()),
                        Err(e) => Err(e),
                    }
                });
                if let Err(message) = deleted {
                    return Err(NodeError::Delete {
                        pod: format!("{namespace}/{name}"),
                        message,
                    });
                }
                report.deleted.push(format!("{namespace}/{name}"));
            }
            Action::Create(pod) => {
                let key = format!("{}/{}", pod.namespace(), pod.name());
                tracing::info!(pod = %key, file = %pod.file.display(), "creating static pod");
                match lifecycle::apply_with_uid(paths, vec![pod.pod]) {
                    Ok(outcomes) => {
                        for o in outcomes {
                            if let ApplyOutcome::AlreadyExists { .. } = o {
                                // A pod of that name that is not this file's (made by hand):
                                // the kubelet would report the conflict; so do we.
                                tracing::error!(pod = %key, "a pod of this name exists and is not the static pod; not replacing it");
                                report
                                    .invalid
                                    .push(format!("{key}: a pod of this name exists"));
                            } else {
                                report.created.push(key.clone());
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(pod = %key, error = %e, "cannot create static pod");
                        report.invalid.push(format!("{key}: {e}"));
                    }
                }
            }
        }
    }
    Ok(report)
}
