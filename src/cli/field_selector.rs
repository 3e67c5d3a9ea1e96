//! `--field-selector` of `get` and `delete`: the grammar of apimachinery's
//! `fields.ParseSelector`, the fields each kind can be selected by (pkg/apis/core/v1
//! conversion.go AddFieldLabelConversionFunc, else runtime.DefaultMetaV1FieldSelectorConversion,
//! with their messages) and the values the API server's registry selects on.

use std::collections::BTreeMap;

use serde_json::Value;

use super::kinds::Kind;

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    equal: bool,
    value: String,
}

/// A parsed `--field-selector`: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// `fields.ParseSelector`: comma-separated terms, sorted, each `a!=b`, `a==b` or `a=b`.
pub fn parse_fields(s: &str) -> Result<FieldSelector, String> {
    let mut parts: Vec<&str> = s.split(',').collect();
    parts.sort_unstable();
    let mut terms = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let split = |op: &str| {
            let pieces: Vec<&str> = part.split(op).collect();
            (pieces.len() == 2).then(|| (pieces[0].to_string(), pieces[1].to_string()))
        };
        let term = if let Some((field, value)) = split("!=") {
            FieldTerm {
                field,
                equal: false,
                value,
            }
        } else if let Some((field, value)) = split("==").or_else(|| split("=")) {
            FieldTerm {
                field,
                equal: true,
                value,
            }
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{part}'"
            ));
        };
        terms.push(term);
    }
    Ok(FieldSelector { terms })
}

/// The fields the API server lets a Pod be selected by.
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
/// The old name of spec.nodeName that v1 clients may still send.
const POD_LEGACY_HOST: &str = "spec.host";
const SECRET_FIELDS: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];
/// The fields the API server lets an Event be selected by [core/v1 conversion.go].
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
/// The API server's defaults for a pod's scheduler and service account.
const DEFAULT_SCHEDULER: &str = "default-scheduler";
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

impl FieldSelector {
    /// The field label conversion of `kind`: legacy names renamed, unknown fields refused with
    /// the API server's message.
    pub fn for_kind(mut self, kind: Kind) -> Result<FieldSelector, String> {
        for term in &mut self.terms {
            let field = term.field.as_str();
            match kind {
                Kind::Pod if field == POD_LEGACY_HOST => term.field = "spec.nodeName".into(),
                Kind::Pod if POD_FIELDS.contains(&field) => {}
                Kind::Secret if SECRET_FIELDS.contains(&field) => {}
                Kind::Event if EVENT_FIELDS.contains(&field) => {}
                Kind::Pod | Kind::Secret | Kind::Event => return Err(format!("field label not supported: {field}")),
                _ if META_FIELDS.contains(&field) => {}
                _ => {
                    return Err(format!(
                        "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    ))
                }
            }
        }
        Ok(self)
    }

    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| {
            let have = fields.get(&t.field).map(String::as_str).unwrap_or_default();
            (have == t.value) == t.equal
        })
    }
}

/// The selectable fields of an object as the API server's registry computes them
/// (pkg/registry/core/pod/strategy.go ToSelectableFields, generic.ObjectMetaFieldsSet).
/// `node` stands for spec.nodeName: peapod binds every pod to this host.
pub fn selectable_fields(kind: Kind, object: &Value, node: &str) -> BTreeMap<String, String> {
    let text = |path: &[&str]| {
        let mut v = object;
        for p in path {
            v = &v[*p];
        }
        match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            _ => String::new(),
        }
    };
    // What the API server would have set: its default scheduler, the ServiceAccount
    // admission's account.
    let or = |v: String, default: &str| if v.is_empty() { default.to_string() } else { v };
    let mut out = BTreeMap::new();
    out.insert("metadata.name".into(), text(&["metadata", "name"]));
    if kind.namespaced() {
        out.insert(
            "metadata.namespace".into(),
            text(&["metadata", "namespace"]),
        );
    }
    match kind {
        Kind::Pod => {
            let node_name = text(&["spec", "nodeName"]);
            let host_network = object["spec"]["hostNetwork"].as_bool().unwrap_or(false);
            out.extend([
                (
                    "spec.nodeName".to_string(),
                    if node_name.is_empty() {
                        node.to_string()
                    } else {
                        node_name
                    },
                ),
                (
                    "spec.restartPolicy".to_string(),
                    text(&["spec", "restartPolicy"]),
                ),
                (
                    "spec.schedulerName".to_string(),
                    or(text(&["spec", "schedulerName"]), DEFAULT_SCHEDULER),
                ),
                (
                    "spec.serviceAccountName".to_string(),
                    or(
                        text(&["spec", "serviceAccountName"]),
                        DEFAULT_SERVICE_ACCOUNT,
                    ),
                ),
                ("spec.hostNetwork".to_string(), host_network.to_string()),
                ("status.phase".to_string(), text(&["status", "phase"])),
                ("status.podIP".to_string(), text(&["status", "podIP"])),
                (
                    "status.nominatedNodeName".to_string(),
                    text(&["status", "nominatedNodeName"]),
                ),
            ]);
        }
        Kind::Secret => {
            out.insert("type".into(), text(&["type"]));
        }
        Kind::Event => {
            for field in EVENT_FIELDS {
                let path: Vec<&str> = field.split('.').collect();
                out.insert(field.to_string(), text(&path));
            }
            out.insert("source".into(), text(&["source", "component"]));
        }
        _ => {}
    }
    out
}
