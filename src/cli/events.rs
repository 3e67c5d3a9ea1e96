//! `get events`: the events pods (`events.json`) and stored objects (`ObjectStore::events`)
//! recorded, as core/v1 Events and kubectl's rows [printers.go printEvent], sorted by their
//! last time as `kubectl events` and `describe` sort them (event.SortableEvents).

use anyhow::{Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Event as CoreEvent, EventSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::describe_objects::CLAIM_EVENT_SOURCE;
use super::format::since;
use super::get::Listed;
use super::kinds::Kind;

use crate::object::{ObjectStore, StoredObject};
use crate::pod::events::{source_of, SOURCE_KUBELET};
use crate::pod::record::{load_all, Event};
use crate::store::Paths;

/// Events about cluster-scoped objects live in this namespace, as the API server keeps them.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// The object an event is about.
#[derive(Debug, Clone)]
struct Involved<'a> {
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
    /// The reporting component, unless the scheduler reported it.
    source: &'a str,
    /// The node for the kubelet's events (source.host).
    host: Option<&'a str>,
}

fn time(s: &str) -> Option<Time> {
    s.parse::<Timestamp>().ok().map(Time)
}

/// The core/v1 Event for one recorded event; `index` (its place in the object's list) keeps
/// names unique within a second. Names follow the recorders' `<object>.<hex nanoseconds>`.
fn core_event(e: &Event, about: &Involved, index: usize) -> CoreEvent {
    let first = e.first_timestamp.parse::<Timestamp>().ok();
    let nanos = first.map_or(0, |t| t.as_nanosecond()) + index as i128;
    let source = source_of(&e.reason, about.source);
    let host = (source == about.source).then_some(about.host).flatten();
    let namespace = if about.namespace.is_empty() {
        CLUSTER_EVENTS_NAMESPACE
    } else {
        about.namespace
    };
    CoreEvent {
        metadata: ObjectMeta {
            name: Some(format!("{}.{nanos:x}", about.name)),
            namespace: Some(namespace.to_string()),
            creation_timestamp: time(&e.first_timestamp),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(about.kind.to_string()),
            name: Some(about.name.to_string()),
            namespace: (!about.namespace.is_empty()).then(|| about.namespace.to_string()),
            uid: Some(about.uid.to_string()),
            field_path: (!e.field_path.is_empty()).then(|| e.field_path.clone()),
            ..Default::default()
        },
        reason: Some(e.reason.clone()),
        message: Some(e.message.clone()),
        type_: Some(e.type_.clone()),
        count: Some(i32::try_from(e.count).unwrap_or(i32::MAX)),
        first_timestamp: time(&e.first_timestamp),
        last_timestamp: time(&e.last_timestamp),
        source: Some(EventSource {
            component: Some(source.to_string()),
            host: host.map(str::to_string),
        }),
        reporting_component: Some(source.to_string()),
        reporting_instance: host.map(str::to_string),
        ..Default::default()
    }
}

/// `kind/name` in lower case, as the OBJECT column shows it.
fn target(e: &CoreEvent) -> String {
    let o = &e.involved_object;
    format!(
        "{}/{}",
        o.kind.as_deref().unwrap_or_default().to_lowercase(),
        o.name.as_deref().unwrap_or_default()
    )
}

/// kubectl's row of an event and its wide row [printers.go printEvent].
pub fn event_listed(e: &CoreEvent, now: Timestamp) -> Result<Listed> {
    let first = e.first_timestamp.as_ref().map(|t| t.0);
    let last = e.last_timestamp.as_ref().map(|t| t.0).or(first);
    let last_seen = since(last, now);
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    let source = e.source.clone().unwrap_or_default();
    let source = match source.host.filter(|h| !h.is_empty()) {
        Some(host) => format!("{}, {host}", text(&source.component)),
        None => text(&source.component),
    };
    let message = text(&e.message).trim().to_string();
    let cells = vec![
        last_seen.clone(),
        text(&e.type_),
        text(&e.reason),
        target(e),
        message.clone(),
    ];
    let wide = vec![
        last_seen,
        text(&e.type_),
        text(&e.reason),
        target(e),
        text(&e.involved_object.field_path),
        source,
        message,
        since(first, now),
        e.count.unwrap_or(1).to_string(),
        text(&e.metadata.name),
    ];
    Ok(Listed {
        kind: Kind::Event,
        namespace: text(&e.metadata.namespace),
        name: text(&e.metadata.name),
        cells,
        wide,
        object: serde_json::to_value(e)?,
    })
}

/// Events of the stored objects of kind `T` (those that record any).
fn object_events<T: StoredObject>(
    store: &ObjectStore,
    namespace: Option<&str>,
    out: &mut Vec<CoreEvent>,
) -> Result<()> {
    let objects = store
        .list::<T>(namespace.filter(|_| T::NAMESPACED))
        .with_context(|| format!("reading {}", T::URL_PATH_SEGMENT))?;
    for o in &objects {
        let meta = o.metadata();
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let events = store
            .events::<T>(ns, name)
            .with_context(|| format!("reading the events of {name:?}"))?;
        let about = Involved {
            kind: T::KIND,
            namespace: ns,
            name,
            uid: meta.uid.as_deref().unwrap_or_default(),
            source: CLAIM_EVENT_SOURCE,
            host: None,
        };
        out.extend(
            events
                .iter()
                .enumerate()
                .map(|(i, e)| core_event(e, &about, i)),
        );
    }
    Ok(())
}

/// Every event in `namespace` (all when None), oldest last time first.
pub fn list(paths: &Paths, namespace: Option<&str>, now: Timestamp) -> Result<Vec<Listed>> {
    let node = super::hostname();
    let mut all: Vec<CoreEvent> = Vec::new();
    for rec in load_all(paths).context("reading pod records")? {
        let about = Involved {
            kind: "Pod",
            namespace: rec.namespace(),
            name: rec.name(),
            uid: rec.pod.metadata.uid.as_deref().unwrap_or_default(),
            source: SOURCE_KUBELET,
            host: Some(&node),
        };
        all.extend(
            rec.events
                .iter()
                .enumerate()
                .map(|(i, e)| core_event(e, &about, i)),
        );
    }
    let store = ObjectStore::new(paths);
    object_events::<PersistentVolumeClaim>(&store, namespace, &mut all)?;
    object_events::<PersistentVolume>(&store, namespace, &mut all)?;
    all.retain(|e| namespace.is_none_or(|ns| e.metadata.namespace.as_deref() == Some(ns)));
    all.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    all.iter().map(|e| event_listed(e, now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::status::tests::ts;

    fn recorded(reason: &str, first: &str, last: &str, count: u32) -> Event {
        Event {
            type_: "Normal".into(),
            reason: reason.into(),
            message: "the message ".into(),
            field_path: "spec.containers{app}".into(),
            first_timestamp: first.into(),
            last_timestamp: last.into(),
            count,
        }
    }

    fn pod() -> Involved<'static> {
        Involved {
            kind: "Pod",
            namespace: "default",
            name: "web",
            uid: "u1",
            source: SOURCE_KUBELET,
            host: Some("node1"),
        }
    }

    #[test]
    fn rows_as_kubectl_prints_them() {
        let e = core_event(
            &recorded("BackOff", "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", 5),
            &pod(),
            0,
        );
        let l = event_listed(&e, ts("2024-01-01T00:02:00Z")).unwrap();
        assert_eq!(
            l.cells,
            ["60s", "Normal", "BackOff", "pod/web", "the message"]
        );
        assert_eq!(
            l.wide,
            [
                "60s",
                "Normal",
                "BackOff",
                "pod/web",
                "spec.containers{app}",
                "kubelet, node1",
                "the message",
                "2m",
                "5",
                "web.17a6101701650000"
            ]
        );
        assert_eq!(l.object["kind"], "Event");
        assert_eq!(l.object["involvedObject"]["kind"], "Pod");
        assert_eq!(l.object["source"]["component"], "kubelet");
    }

    #[test]
    fn scheduler_events_come_from_the_scheduler_without_a_host() {
        let e = core_event(
            &recorded(
                "Scheduled",
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
                1,
            ),
            &pod(),
            1,
        );
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("default-scheduler")
        );
        assert_eq!(e.reporting_instance, None);
        assert!(e.metadata.name.unwrap().ends_with('1'));
    }
}
