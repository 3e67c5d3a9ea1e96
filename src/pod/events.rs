//! Pod events as kubectl shows them: deduplicated by type, reason, object and message, with a
//! count and first/last timestamps.

use crate::pod::record::Event;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

// Reasons the kubelet uses [pkg/kubelet/events/event.go].
pub const REASON_SCHEDULED: &str = "Scheduled";
pub const REASON_PULLING: &str = "Pulling";
pub const REASON_PULLED: &str = "Pulled";
pub const REASON_FAILED: &str = "Failed";
pub const REASON_CREATED: &str = "Created";
pub const REASON_STARTED: &str = "Started";
pub const REASON_KILLING: &str = "Killing";
pub const REASON_BACKOFF: &str = "BackOff";
pub const REASON_SANDBOX_CHANGED: &str = "SandboxChanged";
pub const REASON_FAILED_SANDBOX: &str = "FailedCreatePodSandBox";
pub const REASON_FAILED_MOUNT: &str = "FailedMount";
/// The scheduler's reason for a pod no node can take [scheduler/schedule_one.go].
pub const REASON_FAILED_SCHEDULING: &str = "FailedScheduling";
/// envFrom keys that cannot be variable names [pkg/kubelet/kubelet_pods.go].
pub const REASON_INVALID_ENV_NAMES: &str = "InvalidEnvironmentVariableNames";

/// The scheduler's FitError message for a one-node cluster whose only node is ruled out by
/// `reason` (a claim not found, being deleted...) [pkg/scheduler/framework/types.go FitError,
/// with the preemption plugin's verdict].
pub fn failed_scheduling_message(reason: &str) -> String {
    format!(
        "0/1 nodes are available: {reason}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
}

/// The kubelet's FailedMount message [pkg/volume/util/operationexecutor:
/// `GenerateError("MountVolume.SetUp failed", err)`].
pub fn failed_mount_message(volume: &str, reason: &str) -> String {
    format!("MountVolume.SetUp failed for volume {volume:?} : {reason}")
}

/// The reporting components, as `describe` shows them in its From column.
pub const SOURCE_SCHEDULER: &str = "default-scheduler";
pub const SOURCE_KUBELET: &str = "kubelet";

/// Who reports an event: the scheduler for its own reasons (Scheduled, FailedScheduling),
/// `default` (the kubelet for pods, a controller for other objects) otherwise.
pub fn source_of<'a>(reason: &str, default: &'a str) -> &'a str {
    if reason == REASON_SCHEDULED || reason == REASON_FAILED_SCHEDULING {
        SOURCE_SCHEDULER
    } else {
        default
    }
}

/// Keep at most this many distinct events per pod (oldest dropped).
pub const MAX_EVENTS: usize = 100;

/// Adds an event or bumps the count of an identical one.
pub fn record(
    events: &mut Vec<Event>,
    type_: &str,
    reason: &str,
    field_path: &str,
    message: String,
    now: &str,
) {
    if let Some(e) = events.iter_mut().find(|e| {
        e.type_ == type_ && e.reason == reason && e.field_path == field_path && e.message == message
    }) {
        e.count += 1;
        e.last_timestamp = now.to_string();
        return;
    }
    events.push(Event {
        type_: type_.to_string(),
        reason: reason.to_string(),
        message,
        field_path: field_path.to_string(),
        first_timestamp: now.to_string(),
        last_timestamp: now.to_string(),
        count: 1,
    });
    if events.len() > MAX_EVENTS {
        let excess = events.len() - MAX_EVENTS;
        events.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_events_are_counted_once() {
        let mut ev = Vec::new();
        record(
            &mut ev,
            WARNING,
            REASON_BACKOFF,
            "spec.containers{a}",
            "x".into(),
            "t1",
        );
        record(
            &mut ev,
            WARNING,
            REASON_BACKOFF,
            "spec.containers{a}",
            "x".into(),
            "t2",
        );
        record(
            &mut ev,
            NORMAL,
            REASON_STARTED,
            "spec.containers{a}",
            "y".into(),
            "t3",
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].count, 2);
        assert_eq!(ev[0].first_timestamp, "t1");
        assert_eq!(ev[0].last_timestamp, "t2");
    }
}
