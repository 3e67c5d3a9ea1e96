//! The support table: which Pod fields peapod's runtime implements. A field that is not listed
//! is refused with `not supported: <path>`, so a new Kubernetes field can never be silently
//! ignored. To widen support, implement the feature in the runtime and change its row here.
//!
//! The table is matched against the decoded Pod re-serialized to JSON; paths use the manifest's
//! camelCase names, and `[]` stands for any element of a list. A refused feature that is set to
//! its no-op value (`false`, `""`, `[]`, `{}` for [`Support::No`]; exactly the value given in
//! [`Support::UnlessEquals`]) is accepted.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::{Problem, Reason};

/// How peapod treats one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented (or without effect on one node without a scheduler): the whole subtree.
    Yes,
    /// An object or a list of objects whose own fields are looked up in the table.
    Into,
    /// Not implemented: refused unless set to a no-op value.
    No,
    /// Not implemented, but this value (as JSON text) is the no-op default and is accepted.
    UnlessEquals(&'static str),
}

use Support::{Into, No, UnlessEquals, Yes};

/// Pod-level fields. Container fields are in [`CONTAINER_FIELDS`].
pub const POD_FIELDS: &[(&str, Support)] = &[
    ("apiVersion", Yes),
    ("kind", Yes),
    ("status", Yes), // written by the runtime; ignored on create, as the API server does
    ("metadata", Into),
    ("metadata.name", Yes),
    ("metadata.namespace", Yes),
    ("metadata.labels", Yes),
    ("metadata.annotations", Yes),
    ("metadata.uid", Yes), // server-set fields from `kubectl get -o yaml`; no effect on create
    ("metadata.resourceVersion", Yes),
    ("metadata.creationTimestamp", Yes),
    ("metadata.generation", Yes),
    ("metadata.managedFields", Yes),
    ("metadata.selfLink", Yes),
    ("metadata.ownerReferences", Yes), // no garbage collector, no owners
    ("metadata.generateName", No),
    ("metadata.finalizers", No),
    ("metadata.deletionTimestamp", No),
    ("metadata.deletionGracePeriodSeconds", No),
    ("spec", Into),
    ("spec.containers", Into),
    ("spec.initContainers", Into), // run in order before the containers
    ("spec.restartPolicy", Yes),
    ("spec.terminationGracePeriodSeconds", Yes),
    ("spec.hostname", Yes),
    ("spec.subdomain", Yes),
    ("spec.hostAliases", Yes),
    ("spec.dnsPolicy", Yes),
    ("spec.dnsConfig", Yes),
    ("spec.volumes", Into),
    ("spec.volumes[].name", Yes),
    ("spec.volumes[].emptyDir", Into),
    ("spec.volumes[].emptyDir.medium", Yes), // "" or Memory, checked in validate
    ("spec.volumes[].emptyDir.sizeLimit", Yes),
    ("spec.volumes[].emptyDir.mode", No),
    ("spec.volumes[].hostPath", Yes),
    ("spec.securityContext", Into),
    ("spec.securityContext.runAsUser", Yes),
    ("spec.securityContext.runAsGroup", Yes),
    ("spec.securityContext.runAsNonRoot", Yes),
    ("spec.securityContext.supplementalGroups", Yes),
    (
        "spec.securityContext.supplementalGroupsPolicy",
        UnlessEquals("\"Merge\""),
    ),
    // Scheduling and API-access fields: no effect on one node without a scheduler.
    ("spec.nodeSelector", Yes),
    ("spec.affinity", Yes),
    ("spec.tolerations", Yes),
    ("spec.schedulerName", Yes),
    ("spec.priority", Yes),
    ("spec.priorityClassName", Yes),
    ("spec.preemptionPolicy", Yes),
    ("spec.topologySpreadConstraints", Yes),
    ("spec.nodeName", Yes),
    ("spec.serviceAccountName", Yes),
    ("spec.serviceAccount", Yes),
    ("spec.automountServiceAccountToken", Yes), // no token is mounted either way
    ("spec.enableServiceLinks", Yes),           // no services, so no service variables
    ("spec.imagePullSecrets", Yes),             // accepted; no registry auth yet
    // Refused: behaviour the runtime does not implement.
    ("spec.hostNetwork", No),
    ("spec.hostPID", No),
    ("spec.hostIPC", No),
    ("spec.hostUsers", UnlessEquals("true")),
    ("spec.shareProcessNamespace", No),
    ("spec.setHostnameAsFQDN", No),
    ("spec.hostnameOverride", No),
    ("spec.ephemeralContainers", No),
    ("spec.os", No),
    ("spec.runtimeClassName", No),
    ("spec.overhead", No),
    ("spec.activeDeadlineSeconds", No),
    ("spec.readinessGates", No),
    ("spec.resources", No),
    ("spec.resourceClaims", No),
    ("spec.schedulingGates", No),
];

/// Fields of one entry of `spec.containers` or `spec.initContainers`.
pub const CONTAINER_FIELDS: &[(&str, Support)] = &[
    ("name", Yes),
    ("image", Yes),
    ("imagePullPolicy", Yes),
    ("command", Yes),
    ("args", Yes),
    ("workingDir", Yes),
    ("terminationMessagePath", Yes),
    ("terminationMessagePolicy", Yes),
    ("env", Into),
    ("env[].name", Yes),
    ("env[].value", Yes),
    ("env[].valueFrom", Into),
    ("env[].valueFrom.fieldRef", Yes), // field paths checked in validate
    ("env[].valueFrom.resourceFieldRef", Yes),
    ("ports", Into),
    ("ports[].containerPort", Yes),
    ("ports[].name", Yes),
    ("ports[].protocol", Yes),
    ("ports[].hostPort", UnlessEquals("0")),
    ("ports[].hostIP", No),
    ("resources", Into),
    ("resources.limits", Yes),
    ("resources.requests", Yes),
    ("volumeMounts", Into),
    ("volumeMounts[].name", Yes),
    ("volumeMounts[].mountPath", Yes),
    ("volumeMounts[].readOnly", Yes),
    ("securityContext", Into),
    ("securityContext.runAsUser", Yes),
    ("securityContext.runAsGroup", Yes),
    ("securityContext.runAsNonRoot", Yes),
    ("securityContext.privileged", Yes),
    ("securityContext.readOnlyRootFilesystem", Yes),
    ("securityContext.allowPrivilegeEscalation", Yes),
    ("securityContext.capabilities", Into),
    ("securityContext.capabilities.add", Yes),
    ("securityContext.capabilities.drop", Yes),
    ("securityContext.procMount", UnlessEquals("\"Default\"")),
    ("stdin", No),
    ("stdinOnce", No),
    ("tty", No),
];

/// Finds the row for a normalized path (`spec.containers[].env[].name`).
pub fn lookup(pattern: &str) -> Option<Support> {
    for prefix in ["spec.containers[].", "spec.initContainers[]."] {
        if let Some(rest) = pattern.strip_prefix(prefix) {
            return find(CONTAINER_FIELDS, rest);
        }
    }
    find(POD_FIELDS, pattern)
}

fn find(table: &[(&str, Support)], pattern: &str) -> Option<Support> {
    table
        .iter()
        .find(|(path, _)| *path == pattern)
        .map(|(_, support)| *support)
}

/// Every refused feature the pod uses, as `not supported` problems.
pub(crate) fn check(pod: &Pod, document: usize) -> Vec<Problem> {
    let mut problems = Vec::new();
    match serde_json::to_value(pod) {
        Ok(value) => walk(
            &value,
            String::new(),
            String::new(),
            document,
            &mut problems,
        ),
        Err(e) => problems.push(Problem::new(
            document,
            "",
            Reason::Invalid(format!("pod cannot be re-encoded: {e}")),
        )),
    }
    problems
}

fn walk(value: &Value, path: String, pattern: String, doc: usize, out: &mut Vec<Problem>) {
    let support = if pattern.is_empty() {
        Into
    } else {
        lookup(&pattern).unwrap_or(No)
    };
    match support {
        Yes => {}
        Into => match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let (p, q) = if path.is_empty() {
                        (key.clone(), key.clone())
                    } else {
                        (format!("{path}.{key}"), format!("{pattern}.{key}"))
                    };
                    walk(child, p, q, doc, out);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let p = format!("{path}[{index}]");
                    walk_element(item, p, format!("{pattern}[]"), doc, out);
                }
            }
            _ => {}
        },
        No => {
            if !is_no_op(value) {
                out.push(Problem::new(doc, path, Reason::NotSupported(None)));
            }
        }
        UnlessEquals(allowed) => {
            let no_op = serde_json::from_str::<Value>(allowed).ok();
            if !value.is_null() && no_op.as_ref() != Some(value) {
                out.push(Problem::new(doc, path, Reason::NotSupported(None)));
            }
        }
    }
}

/// A list element is an object whose fields are looked up under `pattern`.
fn walk_element(item: &Value, path: String, pattern: String, doc: usize, out: &mut Vec<Problem>) {
    match item {
        Value::Object(map) => {
            for (key, child) in map {
                walk(
                    child,
                    format!("{path}.{key}"),
                    format!("{pattern}.{key}"),
                    doc,
                    out,
                );
            }
        }
        _ => out.push(Problem::new(doc, path, Reason::NotSupported(None))),
    }
}

fn is_no_op(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    }
}

/// `env[].valueFrom.fieldRef.fieldPath` values the runtime fills in.
pub const SUPPORTED_FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "status.podIP",
    "spec.nodeName",
    "spec.serviceAccountName",
];

/// `env[].valueFrom.resourceFieldRef.resource` values the runtime fills in.
pub const SUPPORTED_RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

/// `emptyDir.medium` values: node disk, or tmpfs.
pub const SUPPORTED_EMPTY_DIR_MEDIA: &[&str] = &["", "Memory"];
