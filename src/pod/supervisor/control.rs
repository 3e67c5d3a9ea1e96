//! The control socket of a pod driven through the CRI ([`crate::pod::control`]): served from
//! the poll loop, one request a connection, answered before the next poll. Start creates and
//! starts the container before answering (the kubelet's StartContainer returns once it runs);
//! Stop answers once the stop signal is sent (the CRI server waits for the exit in the status);
//! StopPod ends the pod as a finished one (everything given back, records kept).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{accept4, recv, send, MsgFlags, SockFlag};

use super::run::ContainerRun;
use super::stop::{End, PodRun};
use super::Supervisor;
use crate::pod::control::{Reply, Request, MAX_MESSAGE};
use crate::pod::machine::{ContainerPolicy, Kind, Lifecycle, StopCause};
use crate::pod::record::POD_FILE;
use crate::store::read_json;

/// How long a connected client may take to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(1);

/// The listening socket, open only for a pod driven through the CRI.
pub(crate) struct Control {
    listener: Option<OwnedFd>,
    path: PathBuf,
}

impl Control {
    /// No socket: the pod is not driven through the CRI.
    pub fn none() -> Control {
        Control {
            listener: None,
            path: PathBuf::new(),
        }
    }

    /// Listens on `path` (a stale file replaced). A failure is logged: the CRI server then
    /// reports the pod's supervisor unreachable.
    pub fn open(path: &Path) -> Control {
        let listener = match super::attach::listen_on(path) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "no control socket");
                None
            }
        };
        Control {
            listener,
            path: path.to_path_buf(),
        }
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.listener.as_ref().map(|l| l.as_fd())
    }

    pub fn close(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads one request from a just-accepted client, waiting at most [`REQUEST_WAIT`].
fn read_request(fd: &OwnedFd) -> Option<Request> {
    let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    if !matches!(
        poll(&mut pfd, PollTimeout::from(REQUEST_WAIT.as_millis() as u16)),
        Ok(1)
    ) {
        return None;
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
    serde_json::from_slice(&buf[..n])
        .map_err(|e| tracing::warn!(error = %e, "bad control request"))
        .ok()
}

impl Supervisor {
    /// Answers every pending connection.
    pub(super) fn on_control_ready(&mut self) {
        loop {
            let Some(listener) = &self.control.listener else {
                return;
            };
            let fd = match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                Ok(fd) => unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) },
                Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    return;
                }
            };
            let Some(request) = read_request(&fd) else {
                continue;
            };
            tracing::info!(?request, "CRI request");
            let reply = match self.on_control(request) {
                Ok(started_at_ns) => Reply {
                    error: None,
                    started_at_ns,
                },
                Err(e) => Reply {
                    error: Some(e),
                    started_at_ns: None,
                },
            };
            if let Some(e) = &reply.error {
                tracing::warn!(error = %e, "CRI request failed");
            }
            // The status shows what was done before the CRI server reads it.
            if self.dirty {
                self.write_status_or_log();
            }
            let body = serde_json::to_vec(&reply).unwrap_or_default();
            if let Err(e) = send(fd.as_raw_fd(), &body, MsgFlags::MSG_NOSIGNAL) {
                tracing::warn!(error = %e, "control reply not sent");
            }
        }
    }

    /// Handles one request; a Start answers with the start time (ns since the epoch).
    fn on_control(&mut self, request: Request) -> Result<Option<i64>, String> {
        match request {
            Request::Start {
                container,
                id,
                log_path,
            } => self.cri_start(&container, id, log_path),
            Request::Stop {
                container,
                timeout_seconds,
            } => {
                let i = self.cri_run(&container)?;
                if self.runs[i].life.instance().is_some() {
                    let grace = Duration::from_secs(timeout_seconds.max(0).unsigned_abs());
                    let now = Instant::now();
                    self.stop_container(i, StopCause::PodTermination, grace, now);
                    self.drive_stops(now);
                    self.mark_dirty();
                }
                Ok(None)
            }
            Request::ReopenLog { container } => {
                let i = self.cri_run(&container)?;
                let Some(inst) = self.runs[i].life.instance_mut() else {
                    return Err(format!("container {container:?} is not running"));
                };
                let _ = inst.log.flush_partial();
                let path = inst.log.path().to_path_buf();
                inst.log = crate::logs::CriLogWriter::create(&path).map_err(|e| e.to_string())?;
                Ok(None)
            }
            Request::Remove { container } => {
                let i = self.cri_run(&container)?;
                if self.runs[i].life.instance().is_some() {
                    return Err(format!("container {container:?} is still running"));
                }
                self.runs[i].removed = true;
                self.runs[i].life = Lifecycle::Done;
                self.state.containers.remove(&container);
                self.cri_instances.remove(&container);
                self.mark_dirty();
                Ok(None)
            }
            Request::StopPod => {
                if matches!(self.pod_run, PodRun::Active { .. } | PodRun::Blocked) {
                    self.terminate(End::Finish, Duration::ZERO, None);
                }
                Ok(None)
            }
        }
    }

    fn cri_run(&self, name: &str) -> Result<usize, String> {
        self.runs
            .iter()
            .position(|r| r.spec.name == name && !r.removed)
            .ok_or_else(|| format!("no container {name:?} in the pod"))
    }

    /// Creates and starts `name`, taken from pod.json as the CRI server wrote it.
    fn cri_start(
        &mut self,
        name: &str,
        id: String,
        log_path: PathBuf,
    ) -> Result<Option<i64>, String> {
        if !matches!(self.pod_run, PodRun::Active { .. }) {
            return Err("the pod sandbox is stopped".into());
        }
        if !self.sandbox.is_ready() {
            return Err("the pod sandbox is not ready".into());
        }
        let pod: Pod =
            read_json(&self.paths.pod_dir(&self.uid).join(POD_FILE)).map_err(|e| e.to_string())?;
        let spec = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .cloned()
            .ok_or_else(|| format!("container {name:?} is not in the pod's pod.json"))?;
        // A removed container's name may come back (the kubelet made it again): a new run.
        let i = match self
            .runs
            .iter()
            .position(|r| r.spec.name == name && !r.removed)
        {
            Some(i) if self.runs[i].instances > 0 => {
                return Err(format!("container {name:?} was already started"));
            }
            Some(i) => {
                self.runs[i].spec = spec;
                i
            }
            None => {
                let policy = ContainerPolicy::of(&pod, &spec);
                self.runs
                    .push(ContainerRun::new(spec, Kind::App, false, policy));
                self.runs.len() - 1
            }
        };
        self.pod = pod;
        self.cri_instances.insert(name.to_string(), (id, log_path));
        if let Some(pending) = self.create_container(i) {
            self.start_created(i, pending);
        }
        self.mark_dirty();
        match &self.runs[i].life {
            Lifecycle::Running { inst, .. } | Lifecycle::Starting { inst } => {
                Ok(Some(inst.started_at.as_nanosecond() as i64))
            }
            // Ended already (it ran, briefly): its start is on record; a StartError is not one.
            Lifecycle::Exited { .. } | Lifecycle::Done
                if self.runs[i]
                    .last
                    .as_ref()
                    .is_some_and(|t| t.reason != super::start::REASON_START_ERROR) =>
            {
                Ok(self.runs[i]
                    .last
                    .as_ref()
                    .and_then(|t| t.started_at)
                    .map(|t| t.as_nanosecond() as i64))
            }
            Lifecycle::Waiting { waiting, .. } => Err(format!(
                "{}: {}",
                waiting.reason,
                waiting.message.clone().unwrap_or_default()
            )),
            _ => Err(self.runs[i]
                .last
                .as_ref()
                .and_then(|t| t.message.clone())
                .unwrap_or_else(|| "the container did not start".into())),
        }
    }
}
