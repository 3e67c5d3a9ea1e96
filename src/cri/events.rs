//! `GetContainerEvents`, for the kubelet's Evented PLEG: container lifecycle events on a
//! bounded broadcast channel, as containerd's CRI plugin sends them.
//!
//! - CreateContainer, StartContainer, RemoveContainer send CREATED, STARTED, DELETED;
//! - a container's exit sends STOPPED once, whoever caused it: StopContainer (or a Remove or
//!   a StopPodSandbox that stopped it) after it returned, or [`watch`], which polls the CRI
//!   containers every [`WATCH_EVERY`] for one that ended by itself;
//! - a sandbox's own events carry its ID as the container ID: RunPodSandbox sends CREATED then
//!   STARTED, StopPodSandbox STOPPED, RemovePodSandbox DELETED (after the DELETED of each of
//!   its containers).
//!
//! Each event holds the sandbox's status and the statuses of all its containers at the time it
//! is sent. A subscriber that falls [`CAPACITY`] events behind skips the ones it missed (a
//! warning says how many); the server never waits for one. Events sent while nobody is
//! subscribed are held for [`HOLD_FOR`] (at most [`CAPACITY`] of them) and given to the next
//! subscriber first, as containerd's event queue holds them [internal/eventq; the CRI
//! plugin's `containerEventsQ`, 5 minutes].
//!
//! After a restart of the server, as after containerd's: what ran before is learnt by the
//! watcher's first look (at once), so a later exit is sent; an exit while no server ran is
//! not (containerd's recovery updates such a container's status without an event
//! [internal/cri/server/restart.go loadContainer]); the status shows it, and the kubelet's
//! PLEG relists when its event stream broke.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use tokio::sync::broadcast;

use super::records::{self, Live};
use super::{containers, sandboxes};
use crate::store::Paths;

/// Events kept for a subscriber that falls behind (containerd's channel holds 1000; tokio's
/// broadcast rounds up to a power of two).
pub const CAPACITY: usize = 1024;
/// How often the watcher looks for containers and sandboxes that ended by themselves.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long an event sent while nobody is subscribed waits for a subscriber (containerd's).
pub const HOLD_FOR: Duration = Duration::from_secs(5 * 60);

pub type EventStream =
    Pin<Box<dyn futures::Stream<Item = Result<cri::ContainerEventResponse, tonic::Status>> + Send>>;

/// Whether a container (or sandbox) was last seen running, to send its STOPPED once.
#[derive(Debug, Default)]
struct Seen {
    running: HashMap<String, bool>,
}

impl Seen {
    /// Notes `id`'s state; true when it ran before and does no longer (a STOPPED is due).
    fn note(&mut self, id: &str, running: bool) -> bool {
        let before = self.running.insert(id.to_string(), running);
        before == Some(true) && !running
    }

    fn forget(&mut self, id: &str) {
        self.running.remove(id);
    }

    /// Keeps only the IDs still on record.
    fn retain(&mut self, on_record: &std::collections::HashSet<String>) {
        self.running.retain(|id, _| on_record.contains(id));
    }
}

/// Events sent while nobody was subscribed, oldest first, with when they were sent.
#[derive(Debug, Default)]
struct Held {
    events: VecDeque<(Instant, cri::ContainerEventResponse)>,
}

impl Held {
    /// Keeps `event`, sent at `now`: those older than [`HOLD_FOR`] go, and the oldest beyond
    /// [`CAPACITY`].
    fn hold(&mut self, now: Instant, event: cri::ContainerEventResponse) {
        self.expire(now);
        if self.events.len() >= CAPACITY {
            self.events.pop_front();
            tracing::warn!("no GetContainerEvents subscriber: the oldest held event is dropped");
        }
        self.events.push_back((now, event));
    }

    fn expire(&mut self, now: Instant) {
        while self
            .events
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= HOLD_FOR)
        {
            self.events.pop_front();
        }
    }

    /// The events still held at `now`, for a new subscriber (nothing is held after).
    fn take(&mut self, now: Instant) -> Vec<cri::ContainerEventResponse> {
        self.expire(now);
        self.events.drain(..).map(|(_, e)| e).collect()
    }
}

/// The server's event channel (cheap to clone).
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<cri::ContainerEventResponse>,
    seen: Arc<Mutex<Seen>>,
    /// Also serializes a send with a subscription, so no event falls between the two.
    held: Arc<Mutex<Held>>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (sender, _) = broadcast::channel(CAPACITY);
        Events {
            sender,
            seen: Arc::new(Mutex::new(Seen::default())),
            held: Arc::new(Mutex::new(Held::default())),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new subscriber's stream: the events held for want of a subscriber, then those sent
    /// from now on.
    pub fn subscribe(&self) -> EventStream {
        let (rx, held) = {
            let mut held = self.held();
            (self.sender.subscribe(), held.take(Instant::now()))
        };
        let held = futures::stream::iter(held.into_iter().map(Ok));
        Box::pin(futures::StreamExt::chain(
            held,
            futures::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => return Some((Ok(event), rx)),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(
                                skipped = n,
                                "a GetContainerEvents subscriber fell behind; events skipped"
                            );
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }),
        ))
    }

    /// Sends `event` to the subscribers, or holds it while there is none.
    fn publish(&self, event: cri::ContainerEventResponse) {
        let mut held = self.held();
        if self.sender.receiver_count() == 0 {
            held.hold(Instant::now(), event);
        } else if let Err(broadcast::error::SendError(event)) = self.sender.send(event) {
            // The last subscriber left meanwhile.
            held.hold(Instant::now(), event);
        }
    }

    /// Sends `kind` for `container_id` of sandbox `sandbox_id`, with their statuses now.
    /// (Blocking: reads the records.)
    pub fn send(
        &self,
        paths: &Paths,
        container_id: &str,
        sandbox_id: &str,
        kind: cri::ContainerEventType,
    ) {
        let event = cri::ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at: records::now_ns(),
            pod_sandbox_status: sandboxes::status(paths, sandbox_id, false)
                .ok()
                .and_then(|s| s.status),
            containers_statuses: container_statuses(paths, sandbox_id),
        };
        self.publish(event);
    }

    /// `id` now runs (a started container, a sandbox that was run).
    pub fn running(&self, id: &str) {
        self.seen().note(id, true);
    }

    /// `id` no longer runs: STOPPED is sent if it was seen running (once, whoever sees it).
    pub fn stopped(&self, paths: &Paths, id: &str, sandbox_id: &str) {
        if self.seen().note(id, false) {
            self.send(
                paths,
                id,
                sandbox_id,
                cri::ContainerEventType::ContainerStoppedEvent,
            );
        }
    }

    /// `id` was removed: DELETED.
    pub fn deleted(&self, paths: &Paths, id: &str, sandbox_id: &str) {
        self.seen().forget(id);
        self.send(
            paths,
            id,
            sandbox_id,
            cri::ContainerEventType::ContainerDeletedEvent,
        );
    }

    /// One look at every CRI sandbox and container: STOPPED for those that ran when last
    /// seen and have ended (EXITED; a sandbox stopped or its pause process gone). The first
    /// look only learns what runs; an unreadable or UNKNOWN state changes nothing.
    pub fn poll(&self, paths: &Paths) {
        let Ok(sandboxes) = records::sandboxes(paths) else {
            return;
        };
        let mut on_record = std::collections::HashSet::new();
        for sandbox in &sandboxes {
            let live = Live::read(paths, &sandbox.uid);
            for c in records::containers_of(paths, &sandbox.uid) {
                let state = containers::observe_in(&live, &c).state;
                self.note_polled(paths, &c.id, &sandbox.id, polled(state));
                on_record.insert(c.id);
            }
            let sandbox_running = live
                .state
                .as_ref()
                .map(|s| !s.finished && s.sandbox.process.as_ref().is_some_and(|p| p.is_alive()));
            self.note_polled(paths, &sandbox.id, &sandbox.id, sandbox_running);
            on_record.insert(sandbox.id.clone());
        }
        self.seen().retain(&on_record);
    }

    /// `running`: Some(true) runs, Some(false) ended, None not known.
    fn note_polled(&self, paths: &Paths, id: &str, sandbox_id: &str, running: Option<bool>) {
        match running {
            // Learnt, if not known yet (a start this server made noted it already).
            Some(true) => {
                self.seen().running.entry(id.to_string()).or_insert(true);
            }
            Some(false) => self.stopped(paths, id, sandbox_id),
            None => {}
        }
    }
}

/// A container's CRI state as the watcher takes it: RUNNING runs, EXITED ended, others
/// (CREATED, UNKNOWN) tell nothing.
fn polled(state: i32) -> Option<bool> {
    match cri::ContainerState::try_from(state) {
        Ok(cri::ContainerState::ContainerRunning) => Some(true),
        Ok(cri::ContainerState::ContainerExited) => Some(false),
        _ => None,
    }
}

/// The statuses of the sandbox's containers, as ContainerStatus gives them.
fn container_statuses(paths: &Paths, sandbox_id: &str) -> Vec<cri::ContainerStatus> {
    let Ok(sandbox) = records::find_sandbox(paths, sandbox_id) else {
        return Vec::new();
    };
    let live = Live::read(paths, &sandbox.uid);
    records::containers_of(paths, &sandbox.uid)
        .iter()
        .filter_map(|c| containers::cri_status_in(&live, c, false).status)
        .collect()
}

/// Polls every [`WATCH_EVERY`] for the exits the server did not cause, for as long as the
/// server's runtime lives.
pub async fn watch(events: Events, paths: Paths) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let (events, paths) = (events.clone(), paths.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || events.poll(&paths)).await {
            tracing::warn!(error = %e, "the CRI event watcher's poll failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn a_stop_is_due_once_and_only_after_running() {
        let mut seen = Seen::default();
        // Never seen running (created, or exited before the first look): nothing due.
        assert!(!seen.note("a", false));
        assert!(!seen.note("a", true));
        assert!(seen.note("a", false));
        // Seen by both the call and the watcher: due once.
        assert!(!seen.note("a", false));
        seen.note("b", true);
        seen.forget("b");
        assert!(!seen.note("b", false));
        seen.note("c", true);
        seen.retain(&std::collections::HashSet::new());
        assert!(!seen.note("c", false));
    }

    #[test]
    fn only_running_and_exited_count() {
        assert_eq!(
            polled(cri::ContainerState::ContainerRunning as i32),
            Some(true)
        );
        assert_eq!(
            polled(cri::ContainerState::ContainerExited as i32),
            Some(false)
        );
        assert_eq!(polled(cri::ContainerState::ContainerUnknown as i32), None);
        assert_eq!(polled(cri::ContainerState::ContainerCreated as i32), None);
    }

    fn event(id: &str) -> cri::ContainerEventResponse {
        cri::ContainerEventResponse {
            container_id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_and_never_blocks_the_sender() {
        let events = Events::new();
        let mut slow = events.subscribe();
        // Far more than the channel holds: sending never waits.
        for i in 0..CAPACITY + 5 {
            events.sender.send(event(&i.to_string())).unwrap();
        }
        // The oldest five are skipped; the rest come in order.
        let first = slow.next().await.unwrap().unwrap();
        assert_eq!(first.container_id, "5");
        let second = slow.next().await.unwrap().unwrap();
        assert_eq!(second.container_id, "6");
        // With a subscriber, nothing is held: a second one sees only what comes after it.
        let mut late = events.subscribe();
        events.publish(event("new"));
        assert_eq!(late.next().await.unwrap().unwrap().container_id, "new");
        drop(events);
        // Closed: the stream ends once drained.
        while let Some(e) = late.next().await {
            e.unwrap();
        }
    }

    #[tokio::test]
    async fn events_nobody_received_wait_for_the_next_subscriber() {
        let events = Events::new();
        events.publish(event("a"));
        events.publish(event("b"));
        let mut first = events.subscribe();
        events.publish(event("c"));
        for want in ["a", "b", "c"] {
            assert_eq!(first.next().await.unwrap().unwrap().container_id, want);
        }
        // Given once: a second subscriber does not get them again.
        let mut second = events.subscribe();
        events.publish(event("d"));
        assert_eq!(second.next().await.unwrap().unwrap().container_id, "d");
        // Everyone left: held again, for the next one.
        drop((first, second));
        events.publish(event("e"));
        let mut third = events.subscribe();
        assert_eq!(third.next().await.unwrap().unwrap().container_id, "e");
    }

    #[test]
    fn held_events_expire_and_are_bounded() {
        let mut held = Held::default();
        let t0 = Instant::now();
        held.hold(t0, event("old"));
        held.hold(t0 + Duration::from_secs(60), event("newer"));
        assert_eq!(
            held.take(t0 + HOLD_FOR)
                .into_iter()
                .map(|e| e.container_id)
                .collect::<Vec<_>>(),
            ["newer"]
        );
        for i in 0..CAPACITY + 3 {
            held.hold(t0, event(&i.to_string()));
        }
        let kept = held.take(t0);
        assert_eq!(kept.len(), CAPACITY);
        assert_eq!(kept[0].container_id, "3", "the oldest go first");
        assert!(held.take(t0).is_empty());
    }
}
