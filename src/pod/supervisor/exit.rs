//! The end of a container instance: its output drained into the log, the termination message,
//! OOM detection, and what follows (`machine::after_exit`: done, restart now, or back-off).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;

use super::start::{REASON_START_ERROR, START_ERROR_EXIT_CODE};
use super::stop::PodRun;
use super::Supervisor;
use crate::gofmt;
use crate::logs::Stream;
use crate::pod::events;
use crate::pod::machine::{after_exit, restarts_all, Exit, Lifecycle, Next, StopCause, Waiting};
use crate::pod::model::{self, Terminated, REASON_CRASH_LOOP_BACK_OFF};
use crate::probe::messages;

/// The kubelet reads at most this much of the termination message file, from its end
/// [kubecontainer.MaxContainerTerminationMessageLength; tail.ReadAtMost].
const MAX_TERMINATION_MESSAGE: u64 = 4096;
/// FallbackToLogsOnError: the last lines of the log, at most 2048 bytes / 80 lines
/// [MaxContainerTerminationMessageLogLength, MaxContainerTerminationMessageLogLines].
const FALLBACK_LOG_BYTES: usize = 2048;
const FALLBACK_LOG_LINES: usize = 80;
const FALLBACK_TO_LOGS_ON_ERROR: &str = "FallbackToLogsOnError";
/// The exit code the OOM killer leaves (SIGKILL).
const OOM_EXIT_CODE: i32 = 137;

/// The last `max` bytes of a file (the kubelet keeps the end of a long message).
fn read_tail(file: &Path, max: u64) -> Option<String> {
    let mut f = fs::File::open(file).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The last lines of the container's log as the kubelet's fallback reads them: each whole
/// line with its newline, the last 2048 bytes of the last 80 lines
/// [kuberuntime_container.go readLastStringFromContainerLogs].
fn log_tail(log: &Path) -> Option<String> {
    let lines = crate::logs::read_log(
        log,
        &crate::logs::ReadOptions {
            tail: Some(FALLBACK_LOG_LINES),
        },
    )
    .ok()?;
    let text: String = lines.iter().map(|l| format!("{}\n", l.content)).collect();
    let start = text.len().saturating_sub(FALLBACK_LOG_BYTES);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    Some(text[start..].to_string())
}

/// The container's termination message: its file, or with FallbackToLogsOnError and an
/// error exit, when the file is empty, the tail of its log [getTerminationMessage].
fn termination_message(c: &Container, file: &Path, log: &Path, exit_code: i32) -> Option<String> {
    let mut message = read_tail(file, MAX_TERMINATION_MESSAGE).unwrap_or_default();
    let fallback = exit_code != 0
        && c.termination_message_policy.as_deref() == Some(FALLBACK_TO_LOGS_ON_ERROR);
    if message.is_empty() && fallback {
        message = log_tail(log).unwrap_or_default();
    }
    (!message.is_empty()).then_some(message)
}

/// The CrashLoopBackOff message [kuberuntime_manager.go doBackOff].
fn back_off_message(delay: Duration, container: &str, pod: &str) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}",
        gofmt::duration(delay)
    )
}

impl Supervisor {
    /// `name_namespace(uid)`, as the kubelet names a pod in messages [format.Pod].
    pub(super) fn pod_ref(&self) -> String {
        format!("{}_{}({})", self.pod_name(), self.namespace(), self.uid)
    }

    /// Reads what a container wrote on stdout (0) or stderr (1) into its log.
    pub(super) fn drain_pipe(&mut self, ri: usize, pi: usize) {
        let Some(inst) = self.runs[ri].life.instance_mut() else {
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
                    self.attach.broadcast(ri, stream, &buf[..n]);
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
        self.end_attach(i);
        let Some((mut inst, cause)) = self.runs[i].life.take_exited() else {
            return;
        };
        self.cancel_runs(i);
        let name = self.runs[i].spec.name.clone();
        self.release_kept(&name, inst.attempt, None);
        if let Err(e) = inst.log.flush_partial() {
            tracing::warn!(error = %e, "log flush failed");
        }
        let oom = match (&inst.cgroup, &self.host.cgroups) {
            (Some(cg), Some(mgr)) => mgr.oom_killed(cg).unwrap_or(false),
            _ => false,
        };
        let log_path = self
            .state
            .containers
            .get(&name)
            .and_then(|s| s.log_path.clone())
            .unwrap_or_default();
        let exec_failed = inst
            .exec_report
            .take()
            .and_then(crate::container::runtime::exec_failure);
        let (exit_code, signal, reason, message) = match exec_failed {
            // Past its gate, the init's execve failed: the user program never ran.
            Some(failure) => {
                let field = self.runs[i].field_path();
                self.start_failed_event(&field, &name, &failure);
                (
                    START_ERROR_EXIT_CODE,
                    None,
                    REASON_START_ERROR,
                    Some(failure),
                )
            }
            None => {
                let message = termination_message(
                    &self.runs[i].spec,
                    &inst.termination_log,
                    &log_path,
                    exit_code,
                );
                let (exit_code, signal) = if oom {
                    (
                        OOM_EXIT_CODE,
                        Some(nix::sys::signal::Signal::SIGKILL as i32),
                    )
                } else {
                    (exit_code, signal)
                };
                let reason = model::terminated_reason(exit_code, oom);
                (exit_code, signal, reason, message)
            }
        };
        let finished_at = Timestamp::now();
        if let Some(s) = self.state.containers.get_mut(&name) {
            s.finished_at_ns = Some(finished_at.as_nanosecond() as i64);
        }
        let t = Terminated {
            exit_code,
            signal,
            reason: reason.into(),
            message,
            started_at: Some(inst.started_at),
            finished_at,
            container_id: inst.container_id.clone(),
        };
        tracing::info!(container = %name, exit_code, oom, ?cause, "container exited");
        // The ended process stays on record (its pid and start time no longer match a live
        // process): `ps -a` shows the instance Exited, as crictl shows an exited container,
        // not Created.
        self.release_instance(&inst.dir, inst.cgroup.as_deref());
        let ran_for = inst.started.elapsed();
        drop(inst);
        self.after_exit(i, t, ran_for, cause);
    }

    /// Applies the restart rules and back-off to an ended instance, then lets the pod-level
    /// decisions run (the next init container, completion, a lost sandbox's end).
    pub(super) fn after_exit(
        &mut self,
        i: usize,
        t: Terminated,
        ran_for: Duration,
        cause: Option<StopCause>,
    ) {
        let exit = Exit {
            code: t.exit_code,
            ran_for,
        };
        let active = matches!(self.pod_run, PodRun::Active { .. });
        let pod = self.pod_ref();
        let field = self.runs[i].field_path();
        let r = &mut self.runs[i];
        r.record_exit(t);
        if active && restarts_all(&r.policy, exit.code, cause) {
            // The whole pod starts over, after this container's back-off.
            r.life = Lifecycle::Done;
            let delay = r.backoff.on_exit(ran_for);
            let name = r.spec.name.clone();
            self.begin_restart_all(&name, delay);
            return;
        }
        // A terminating pod restarts nothing, whatever stopped the container.
        let next = if active {
            after_exit(r.kind, &r.policy, exit, cause, &mut r.backoff)
        } else {
            Next::Done
        };
        let name = r.spec.name.clone();
        let life = Lifecycle::after_exit(next, Instant::now(), |delay| Waiting {
            reason: REASON_CRASH_LOOP_BACK_OFF.into(),
            message: Some(back_off_message(delay, &name, &pod)),
        });
        let start_error = r.start_error.take();
        r.life = match (start_error, cause) {
            (Some(message), Some(StopCause::PostStartHook)) => life.with_start_error(Waiting {
                reason: messages::ERR_POST_START_HOOK.into(),
                message: Some(message),
            }),
            _ => life,
        };
        if matches!(next, Next::Restart { delay } if !delay.is_zero()) {
            self.event(
                events::WARNING,
                events::REASON_BACKOFF,
                &field,
                format!("Back-off restarting failed container {name} in pod {pod}"),
            );
        }
        self.reconcile();
        self.sandbox_lost_check();
        self.mark_dirty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_file_is_read_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termination-log");
        let long = format!("{}END", "x".repeat(5000));
        fs::write(&file, &long).unwrap();
        let read = read_tail(&file, MAX_TERMINATION_MESSAGE).unwrap();
        assert_eq!(read.len(), 4096);
        assert!(read.ends_with("END"));
        assert_eq!(read_tail(&dir.path().join("missing"), 10), None);
    }

    #[test]
    fn fallback_to_logs_only_on_an_error_exit_with_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termination-log");
        fs::write(&file, "").unwrap();
        let log = dir.path().join("0.log");
        fs::write(
            &log,
            "2024-01-01T00:00:00.000000000Z stdout F first\n\
             2024-01-01T00:00:00.000000001Z stderr F boom\n",
        )
        .unwrap();
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "a", "terminationMessagePolicy": "FallbackToLogsOnError"
        }))
        .unwrap();
        assert_eq!(
            termination_message(&c, &file, &log, 1).as_deref(),
            Some("first\nboom\n")
        );
        assert_eq!(termination_message(&c, &file, &log, 0), None);
        fs::write(&file, "bye").unwrap();
        assert_eq!(
            termination_message(&c, &file, &log, 1).as_deref(),
            Some("bye")
        );
        let plain: Container = serde_json::from_value(serde_json::json!({"name": "a"})).unwrap();
        fs::write(&file, "").unwrap();
        assert_eq!(termination_message(&plain, &file, &log, 1), None);
    }

    #[test]
    fn back_off_message_prints_go_durations() {
        assert_eq!(
            back_off_message(Duration::from_secs(80), "app", "web_default(u)"),
            "back-off 1m20s restarting failed container=app pod=web_default(u)"
        );
        assert_eq!(
            back_off_message(Duration::from_secs(300), "app", "p"),
            "back-off 5m0s restarting failed container=app pod=p"
        );
    }
}
