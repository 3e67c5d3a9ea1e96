//! `peapod describe pod`: the layout of kubectl's pod describer
//! [kubernetes/kubectl pkg/describe/describe.go], built as tab-separated lines and aligned by
//! [`tabwrite`] like kubectl's tabwriter.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerState, ContainerStatus, Pod, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::format::{rfc1123z, since, tabwrite};
use super::get::effective_status;
use crate::pod::events;
use crate::pod::record::{Event, PodRecord};

/// kubectl's indentation levels.
pub(super) const L1: &str = "  ";
const L2: &str = "    ";
const L3: &str = "      ";

/// Labels as kubectl prints them: `key=value`, sorted, one a line [printLabelsMultiline].
pub(super) fn multiline(out: &mut String, title: &str, map: Option<&BTreeMap<String, String>>) {
    match map.filter(|m| !m.is_empty()) {
        None => {
            let _ = writeln!(out, "{title}:\t<none>");
        }
        Some(m) => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i == 0 {
                    let _ = writeln!(out, "{title}:\t{k}={v}");
                } else {
                    let _ = writeln!(out, "\t{k}={v}");
                }
            }
        }
    }
}

/// The annotation kubectl hides [describe.go skipAnnotations].
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Longer `key: value` annotations are cut [describe.go maxAnnotationLen].
const MAX_ANNOTATION_LEN: usize = 140;

/// Annotations as kubectl prints them: `key: value`, sorted, a long or multi-line value on
/// lines of its own, cut at 140 characters [describe.go printAnnotationsMultiline].
pub(super) fn annotations(out: &mut String, title: &str, map: Option<&BTreeMap<String, String>>) {
    let _ = write!(out, "{title}:\t");
    let entries: Vec<_> = map
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED)
        .collect();
    if entries.is_empty() {
        let _ = writeln!(out, "<none>");
        return;
    }
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            let _ = writeln!(out, "{key}:");
            for line in value.split('\n') {
                let cut = MAX_ANNOTATION_LEN - 2;
                let shown = match line.get(..cut) {
                    Some(head) if line.len() > cut => format!("{head}..."),
                    _ => line.to_string(),
                };
                let _ = writeln!(out, "\t  {shown}");
            }
        } else {
            let _ = writeln!(out, "{key}: {value}");
        }
    }
}

/// The Events section [describe.go DescribeEvents]: `Events:  <none>`, or a table sorted by
/// each event's last time (event.SortableEvents; events of the same second keep the order they
/// were first recorded in) whose From column is the scheduler for its events and `source`
/// otherwise.
pub(super) fn describe_events(out: &mut String, events: &[Event], source: &str, now: Timestamp) {
    if events.is_empty() {
        let _ = writeln!(out, "Events:\t<none>");
        return;
    }
    let _ = writeln!(out, "Events:\n{L1}Type\tReason\tAge\tFrom\tMessage");
    let _ = writeln!(out, "{L1}----\t------\t----\t----\t-------");
    for e in sorted_by_last_time(events) {
        let _ = writeln!(
            out,
            "{L1}{}\t{}\t{}\t{}\t{}",
            e.type_,
            e.reason,
            event_age(e, now),
            events::source_of(&e.reason, source),
            e.message.trim()
        );
    }
}

/// Events ordered by their last occurrence, ties in recording order (a stable sort).
pub fn sorted_by_last_time(events: &[Event]) -> Vec<&Event> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.last_timestamp.parse::<Timestamp>().ok());
    sorted
}

fn time_of(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    t.map(|t| rfc1123z(t.0)).unwrap_or_default()
}

fn describe_state(out: &mut String, title: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(r) = &state.running {
        let _ = writeln!(out, "{L2}{title}:\tRunning");
        let _ = writeln!(out, "{L3}Started:\t{}", time_of(r.started_at.as_ref()));
    } else if let Some(w) = &state.waiting {
        let _ = writeln!(out, "{L2}{title}:\tWaiting");
        if let Some(r) = w.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "{L3}Reason:\t{r}");
        }
    } else if let Some(t) = &state.terminated {
        let _ = writeln!(out, "{L2}{title}:\tTerminated");
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "{L3}Reason:\t{r}");
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "{L3}Message:\t{m}");
        }
        let _ = writeln!(out, "{L3}Exit Code:\t{}", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            let _ = writeln!(out, "{L3}Signal:\t{sig}");
        }
        let _ = writeln!(out, "{L3}Started:\t{}", time_of(t.started_at.as_ref()));
        let _ = writeln!(out, "{L3}Finished:\t{}", time_of(t.finished_at.as_ref()));
    } else {
        let _ = writeln!(out, "{L2}{title}:\tWaiting");
    }
}

fn resources(out: &mut String, title: &str, map: Option<&BTreeMap<String, Quantity>>) {
    if let Some(m) = map.filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "{L2}{title}:");
        for (k, v) in m {
            let _ = writeln!(out, "{L3}{k}:\t{}", v.0);
        }
    }
}

fn ports(c: &Container, host: bool) -> String {
    c.ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let port = if host {
                p.host_port.unwrap_or(0)
            } else {
                p.container_port
            };
            format!("{port}/{proto}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_container(out: &mut String, c: &Container, status: Option<&ContainerStatus>) {
    let _ = writeln!(out, "{L1}{}:", c.name);
    if let Some(s) = status {
        let _ = writeln!(
            out,
            "{L2}Container ID:\t{}",
            s.container_id.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "{L2}Image:\t{}", c.image.as_deref().unwrap_or(""));
    if let Some(s) = status {
        let _ = writeln!(out, "{L2}Image ID:\t{}", s.image_id);
    }
    for (host, one, many) in [(false, "Port", "Ports"), (true, "Host Port", "Host Ports")] {
        let p = ports(c, host);
        if p.contains(',') {
            let _ = writeln!(out, "{L2}{many}:\t{p}");
        } else {
            let _ = writeln!(out, "{L2}{one}:\t{}", super::format::or_none(&p));
        }
    }
    for (title, list) in [("Command", &c.command), ("Args", &c.args)] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "{L2}{title}:");
            for line in list.iter().flat_map(|a| a.split('\n')) {
                let _ = writeln!(out, "{L3}{line}");
            }
        }
    }
    let (state, last) = status.map_or((None, None), |s| (s.state.as_ref(), s.last_state.as_ref()));
    if status.is_some() {
        describe_state(out, "State", state);
        if last.is_some_and(|l| l.terminated.is_some()) {
            describe_state(out, "Last State", last);
        }
        let s = status
            .map(|s| (s.ready, s.restart_count))
            .unwrap_or_default();
        let _ = writeln!(out, "{L2}Ready:\t{}", if s.0 { "True" } else { "False" });
        let _ = writeln!(out, "{L2}Restart Count:\t{}", s.1);
    }
    if let Some(r) = &c.resources {
        resources(out, "Limits", r.limits.as_ref());
        resources(out, "Requests", r.requests.as_ref());
    }
    // kubectl lists envFrom sources before the variables.
    if let Some(sources) = c.env_from.as_ref().filter(|e| !e.is_empty()) {
        let _ = writeln!(out, "{L2}Environment Variables from:");
        for e in sources {
            let (name, kind, optional) = match (&e.config_map_ref, &e.secret_ref) {
                (Some(r), _) => (r.name.as_str(), "ConfigMap", r.optional),
                (_, Some(r)) => (r.name.as_str(), "Secret", r.optional),
                _ => ("", "", None),
            };
            let prefix = e.prefix.as_deref().unwrap_or("");
            let with = if prefix.is_empty() {
                String::new()
            } else {
                format!(" with prefix '{prefix}'")
            };
            let optional = optional == Some(true);
            let _ = writeln!(out, "{L3}{name}\t{kind}{with}\tOptional: {optional}");
        }
    }
    let env = c.env.as_deref().unwrap_or(&[]);
    if env.is_empty() {
        let _ = writeln!(out, "{L2}Environment:\t<none>");
    } else {
        let _ = writeln!(out, "{L2}Environment:");
        for e in env {
            match (&e.value_from, e.value.as_deref().unwrap_or("")) {
                (None, value) => {
                    for (i, line) in value.split('\n').enumerate() {
                        if i == 0 {
                            let _ = writeln!(out, "{L3}{}:\t{line}", e.name);
                        } else {
                            let _ = writeln!(out, "{L3}\t{line}");
                        }
                    }
                }
                (Some(from), _) => {
                    let src = if let Some(f) = &from.field_ref {
                        format!(
                            "{} ({}:{})",
                            "",
                            f.api_version.as_deref().unwrap_or("v1"),
                            f.field_path
                        )
                    } else if let Some(r) = &from.config_map_key_ref {
                        format!(
                            "<set to the key '{}' of config map '{}'>\tOptional: {}",
                            r.key,
                            r.name,
                            r.optional == Some(true)
                        )
                    } else if let Some(r) = &from.secret_key_ref {
                        format!(
                            "<set to the key '{}' in secret '{}'>\tOptional: {}",
                            r.key,
                            r.name,
                            r.optional == Some(true)
                        )
                    } else {
                        "<set to the key of a source>".to_string()
                    };
                    let _ = writeln!(out, "{L3}{}:\t{}", e.name, src.trim_start());
                }
            }
        }
    }
    let mut mounts: Vec<_> = c.volume_mounts.iter().flatten().collect();
    if mounts.is_empty() {
        let _ = writeln!(out, "{L2}Mounts:\t<none>");
    } else {
        let _ = writeln!(out, "{L2}Mounts:");
        mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
        for m in mounts {
            let mut flags = vec![if m.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            }
            .to_string()];
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                flags.push(format!("path={sub:?}"));
            }
            let _ = writeln!(
                out,
                "{L3}{} from {} ({})",
                m.mount_path,
                m.name,
                flags.join(",")
            );
        }
    }
}

fn describe_volume(out: &mut String, v: &Volume) {
    let _ = writeln!(out, "{L1}{}:", v.name);
    if let Some(e) = &v.empty_dir {
        let _ = writeln!(
            out,
            "{L2}Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)"
        );
        let _ = writeln!(out, "{L2}Medium:\t{}", e.medium.as_deref().unwrap_or(""));
        let limit = e
            .size_limit
            .as_ref()
            .map_or("<unset>".to_string(), |q| q.0.clone());
        let _ = writeln!(out, "{L2}SizeLimit:\t{limit}");
    } else if let Some(h) = &v.host_path {
        let _ = writeln!(out, "{L2}Type:\tHostPath (bare host directory volume)");
        let _ = writeln!(out, "{L2}Path:\t{}", h.path);
        let _ = writeln!(
            out,
            "{L2}HostPathType:\t{}",
            h.type_.as_deref().unwrap_or("")
        );
    } else if let Some(cm) = &v.config_map {
        let _ = writeln!(
            out,
            "{L2}Type:\tConfigMap (a volume populated by a ConfigMap)"
        );
        let _ = writeln!(out, "{L2}Name:\t{}", cm.name);
        let _ = writeln!(out, "{L2}Optional:\t{}", cm.optional == Some(true));
    } else if let Some(sec) = &v.secret {
        let _ = writeln!(out, "{L2}Type:\tSecret (a volume populated by a Secret)");
        let name = sec.secret_name.as_deref().unwrap_or("");
        let _ = writeln!(out, "{L2}SecretName:\t{name}");
        let _ = writeln!(out, "{L2}Optional:\t{}", sec.optional == Some(true));
    } else if let Some(d) = &v.downward_api {
        let _ = writeln!(
            out,
            "{L2}Type:\tDownwardAPI (a volume populated by information about the pod)\n{L2}Items:"
        );
        for item in d.items.iter().flatten() {
            let field = item.field_ref.as_ref().map(|f| f.field_path.as_str());
            let resource = item
                .resource_field_ref
                .as_ref()
                .map(|r| r.resource.as_str());
            for from in [field, resource].into_iter().flatten() {
                let _ = writeln!(out, "{L3}{from} -> {}", item.path);
            }
        }
    } else if let Some(p) = &v.projected {
        let _ = writeln!(
            out,
            "{L2}Type:\tProjected (a volume that contains injected data from multiple sources)"
        );
        // kubectl prints the optional flags' pointers: `<nil>` when unset.
        let optional = |o: Option<bool>| o.map_or("<nil>".to_string(), |b| b.to_string());
        for source in p.sources.iter().flatten() {
            if let Some(sec) = &source.secret {
                let _ = writeln!(out, "{L2}SecretName:\t{}", sec.name);
                let _ = writeln!(out, "{L2}SecretOptionalName:\t{}", optional(sec.optional));
            } else if source.downward_api.is_some() {
                let _ = writeln!(out, "{L2}DownwardAPI:\ttrue");
            } else if let Some(cm) = &source.config_map {
                let _ = writeln!(out, "{L2}ConfigMapName:\t{}", cm.name);
                let _ = writeln!(out, "{L2}ConfigMapOptional:\t{}", optional(cm.optional));
            }
        }
    } else {
        let _ = writeln!(out, "{L2}Type:\t<unsupported>");
    }
}

/// kubectl's event Age: `10s`, or `10s (x3 over 2m)` for a repeated event.
pub fn event_age(e: &Event, now: Timestamp) -> String {
    let first = e.first_timestamp.parse::<Timestamp>().ok();
    let last = e.last_timestamp.parse::<Timestamp>().ok();
    if e.count > 1 {
        format!(
            "{} (x{} over {})",
            since(last, now),
            e.count,
            since(first, now)
        )
    } else {
        since(first, now)
    }
}

/// The whole `describe pod` text. `node` is this host's name.
pub fn describe_pod(rec: &PodRecord, now: Timestamp, node: &str) -> String {
    let pod: &Pod = &rec.pod;
    let status = effective_status(rec);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "Name:\t{}", rec.name());
    let _ = writeln!(out, "Namespace:\t{}", rec.namespace());
    let _ = writeln!(out, "Priority:\t{}", spec.priority.unwrap_or(0));
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        let _ = writeln!(out, "Service Account:\t{sa}");
    }
    match status.host_ip.as_deref().filter(|s| !s.is_empty()) {
        Some(ip) => {
            let _ = writeln!(out, "Node:\t{node}/{ip}");
        }
        None => {
            let _ = writeln!(out, "Node:\t{node}");
        }
    }
    if let Some(t) = &status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", rfc1123z(t.0));
    }
    multiline(&mut out, "Labels", pod.metadata.labels.as_ref());
    annotations(&mut out, "Annotations", pod.metadata.annotations.as_ref());
    if let Some(del) = &rec.deleting {
        let lasts = del
            .requested_at
            .parse::<Timestamp>()
            .map(|t| since(Some(t), now))
            .unwrap_or_else(|_| "<unknown>".to_string());
        let _ = writeln!(out, "Status:\tTerminating (lasts {lasts})");
        let _ = writeln!(
            out,
            "Termination Grace Period:\t{}s",
            del.grace_period_seconds
        );
    } else {
        let _ = writeln!(out, "Status:\t{}", status.phase.as_deref().unwrap_or(""));
    }
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Reason:\t{r}");
    }
    if let Some(m) = status.message.as_deref().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "Message:\t{m}");
    }
    let _ = writeln!(out, "IP:\t{}", status.pod_ip.as_deref().unwrap_or(""));
    let ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.as_str())
        .collect();
    let ips = if ips.is_empty() {
        status.pod_ip.as_deref().into_iter().collect()
    } else {
        ips
    };
    if ips.is_empty() {
        let _ = writeln!(out, "IPs:\t<none>");
    } else {
        let _ = writeln!(out, "IPs:");
        for ip in ips {
            let _ = writeln!(out, "{L1}IP:\t{ip}");
        }
    }
    let find = |list: &Option<Vec<ContainerStatus>>, name: &str| {
        list.iter().flatten().find(|s| s.name == name).cloned()
    };
    if let Some(inits) = spec.init_containers.as_ref().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "Init Containers:");
        for c in inits {
            describe_container(
                &mut out,
                c,
                find(&status.init_container_statuses, &c.name).as_ref(),
            );
        }
    }
    let _ = writeln!(out, "Containers:");
    for c in &spec.containers {
        describe_container(
            &mut out,
            c,
            find(&status.container_statuses, &c.name).as_ref(),
        );
    }
    if let Some(conds) = status.conditions.as_ref().filter(|c| !c.is_empty()) {
        let _ = writeln!(out, "Conditions:\n{L1}Type\tStatus");
        for c in conds {
            let _ = writeln!(out, "{L1}{} \t{} ", c.type_, c.status);
        }
    }
    match spec.volumes.as_ref().filter(|v| !v.is_empty()) {
        None => {
            let _ = writeln!(out, "Volumes:\t<none>");
        }
        Some(vols) => {
            let _ = writeln!(out, "Volumes:");
            for v in vols {
                describe_volume(&mut out, v);
            }
        }
    }
    let qos = status.qos_class.as_deref().unwrap_or("BestEffort");
    let _ = writeln!(out, "QoS Class:\t{qos}");
    multiline(&mut out, "Node-Selectors", spec.node_selector.as_ref());
    let tolerations: Vec<String> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| {
            let mut s = t.key.clone().unwrap_or_default();
            if let Some(v) = t.value.as_deref().filter(|v| !v.is_empty()) {
                s.push_str(&format!("={v}"));
            }
            if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
                s.push_str(&format!(":{e}"));
            }
            if t.operator.as_deref() == Some("Exists") && t.value.is_none() {
                s.push_str(" op=Exists");
            }
            if let Some(secs) = t.toleration_seconds {
                s.push_str(&format!(" for {secs}s"));
            }
            s
        })
        .collect();
    if tolerations.is_empty() {
        let _ = writeln!(out, "Tolerations:\t<none>");
    } else {
        for (i, t) in tolerations.iter().enumerate() {
            let title = if i == 0 { "Tolerations:" } else { "" };
            let _ = writeln!(out, "{title}\t{t}");
        }
    }
    describe_events(&mut out, &rec.events, events::SOURCE_KUBELET, now);
    tabwrite(&out, 0, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::status::tests::*;
    use crate::pod::record::DeleteRequest;

    fn record() -> PodRecord {
        let mut p = pod(&["app"], &["setup"]);
        p.metadata.labels = Some(BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "fe".to_string()),
        ]));
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].command = Some(vec!["sh".into(), "-c".into()]);
            spec.containers[0].args = Some(vec!["echo hi".into()]);
        }
        let mut st = status(
            "Running",
            vec![terminated("setup", 0, Some("Completed"))],
            vec![with_restarts(
                waiting("app", "CrashLoopBackOff"),
                3,
                "2024-01-01T00:00:50Z",
            )],
        );
        st.pod_ip = Some("10.88.0.7".into());
        st.qos_class = Some("Burstable".into());
        PodRecord {
            pod: p,
            status: Some(st),
            state: None,
            events: vec![Event {
                type_: "Warning".into(),
                reason: "BackOff".into(),
                message: "Back-off restarting failed container app in pod web".into(),
                field_path: "spec.containers{app}".into(),
                first_timestamp: "2024-01-01T00:00:00Z".into(),
                last_timestamp: "2024-01-01T00:00:50Z".into(),
                count: 3,
            }],
            deleting: None,
        }
    }

    #[test]
    fn describe_has_kubectl_sections() {
        let text = describe_pod(&record(), ts("2024-01-01T00:02:00Z"), "node1");
        assert!(
            text.starts_with("Name:         web\nNamespace:    default\n"),
            "{text}"
        );
        assert!(
            text.contains("\nLabels:       app=web\n              tier=fe\n"),
            "{text}"
        );
        assert!(text.contains("Status:       Running\n"), "{text}");
        assert!(text.contains("Init Containers:\n  setup:\n"), "{text}");
        assert!(
            text.contains("    State:          Waiting\n      Reason:       CrashLoopBackOff\n"),
            "{text}"
        );
        assert!(text.contains("    Last State:     Terminated\n      Reason:       Error\n      Exit Code:    1\n"), "{text}");
        assert!(text.contains("    Restart Count:  3\n"), "{text}");
        assert!(
            text.contains("    Command:\n      sh\n      -c\n    Args:\n      echo hi\n"),
            "{text}"
        );
        assert!(text.contains("QoS Class:"), "{text}");
        assert!(text.contains("Burstable"), "{text}");
        assert!(
            text.contains("  Warning  BackOff  70s (x3 over 2m)  kubelet  Back-off restarting"),
            "{text}"
        );
        assert!(
            text.contains("  Type     Reason   Age               From     Message\n"),
            "{text}"
        );
    }

    #[test]
    fn terminating_and_no_events() {
        let mut r = record();
        r.events.clear();
        r.deleting = Some(DeleteRequest {
            grace_period_seconds: 30,
            requested_at: "2024-01-01T00:01:50Z".into(),
        });
        let text = describe_pod(&r, ts("2024-01-01T00:02:00Z"), "node1");
        assert!(text.contains("Terminating (lasts 10s)"), "{text}");
        assert!(text.contains("Termination Grace Period:  30s"), "{text}");
        assert!(text.trim_end().ends_with("<none>"), "{text}");
        assert!(text.contains("\nEvents:"), "{text}");
    }

    #[test]
    fn api_data_volumes_and_env_sources_as_kubectl_shows_them() {
        let mut r = record();
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "app", "image": "busybox",
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "C_"}],
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cfg"}},
                {"name": "b", "secret": {"secretName": "db", "optional": true}},
                {"name": "c", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "d", "projected": {"sources": [{"configMap": {"name": "cfg"}}]}}
            ]
        }))
        .unwrap();
        r.pod.spec = Some(spec);
        let text = describe_pod(&r, ts("2024-01-01T00:02:00Z"), "node1");
        for want in [
            "Environment Variables from:\n",
            "PW:    <set to the key 'pw' in secret 'db'>  Optional: false",
            "cfg  ConfigMap with prefix 'C_'  Optional: false\n    Environment:\n",
            "Type:      ConfigMap (a volume populated by a ConfigMap)\n    Name:      cfg\n    Optional:  false",
            "Type:        Secret (a volume populated by a Secret)\n    SecretName:  db\n    Optional:    true",
            "Items:\n      metadata.labels -> labels",
            "ConfigMapName:      cfg\n    ConfigMapOptional:  <nil>",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn events_sorted_by_last_time_with_the_schedulers_source() {
        let mut r = record();
        let scheduled = Event {
            type_: "Normal".into(),
            reason: "Scheduled".into(),
            message: "Successfully assigned default/web to node1".into(),
            field_path: String::new(),
            first_timestamp: "2024-01-01T00:00:01Z".into(),
            last_timestamp: "2024-01-01T00:00:01Z".into(),
            count: 1,
        };
        r.events.push(scheduled);
        let text = describe_pod(&r, ts("2024-01-01T00:02:00Z"), "node1");
        let events = text.split("Events:\n").nth(1).unwrap_or_default();
        assert_eq!(
            events,
            "  Type     Reason     Age               From               Message\n\
             \x20 ----     ------     ----              ----               -------\n\
             \x20 Normal   Scheduled  119s              default-scheduler  Successfully assigned default/web to node1\n\
             \x20 Warning  BackOff    70s (x3 over 2m)  kubelet            Back-off restarting failed container app in pod web\n"
        );
    }

    #[test]
    fn event_age_single_and_repeated() {
        let mut e = record().events.remove(0);
        let now = ts("2024-01-01T00:02:00Z");
        assert_eq!(event_age(&e, now), "70s (x3 over 2m)");
        e.count = 1;
        assert_eq!(event_age(&e, now), "2m");
    }
}
