//! Pod manifests: strict decoding of YAML/JSON into Kubernetes `Pod`s, refusal of features the
//! runtime does not implement, API-server defaults, validation with kubectl-style field paths,
//! and resource quantities. Owns nothing on the host and must not touch it.
//!
//! - [`decode_objects`]: every `---` document (Pods, ConfigMaps, Secrets,
//!   PersistentVolumeClaims, `kind: List`s of them), strictly decoded (an unknown field is an
//!   error naming `spec.containers[0].resorces`), checked against the kind's support table in
//!   [`support`], defaulted (namespace `default`, restartPolicy Always, dnsPolicy ClusterFirst,
//!   terminationGracePeriodSeconds 30, imagePullPolicy, a Secret's type Opaque and its
//!   stringData merged, ...) and validated ([`objects`] for the kinds other than Pod). Nothing
//!   is returned when any document has a problem. [`decode_pods`] takes only Pods.
//! - [`Resources`] / [`container_resources`]: parsed cpu/memory requests and limits.
//! - [`QosClass`] / [`qos_class`].
//! - [`parse_quantity`] / [`Quantity`]: exact Kubernetes quantities.

mod decode;
pub mod defaults;
pub mod names;
pub mod objects;
pub mod pod_resources;
mod ports;
pub mod probes;
pub mod quantity;
pub mod resources;
mod security;
pub mod support;
mod validate;
mod validate_lifecycle;
mod validate_sources;
mod volume_rules;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod object_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use quantity::{parse_quantity, Quantity, QuantityError};
pub use resources::{container_resources, qos_class, QosClass, Resources};

/// Errors of the manifest module.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// One or more documents of a manifest file are wrong or ask for unsupported features.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
    /// A resource quantity of an already decoded container does not parse.
    #[error("{path}: {source}")]
    Quantity {
        path: String,
        #[source]
        source: QuantityError,
    },
}

impl ManifestError {
    /// The individual problems (empty for a [`ManifestError::Quantity`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ManifestError::Invalid { problems, .. } => problems,
            ManifestError::Quantity { .. } => &[],
        }
    }

    /// True when every problem is a refused feature rather than a mistake in the manifest.
    pub fn is_unsupported_only(&self) -> bool {
        let problems = self.problems();
        !problems.is_empty()
            && problems
                .iter()
                .all(|p| matches!(p.reason, Reason::NotSupported(_)))
    }
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{file}: {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One thing wrong with one document, located by a kubectl-style field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based position of the document in the file (empty documents count).
    pub document: usize,
    /// Field path such as `spec.containers[0].resources.limits.cpu`; empty for the whole document.
    pub path: String,
    pub reason: Reason,
}

/// Why a field is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The field does not exist in a Pod (usually a typo).
    UnknownField,
    /// A required field is missing or empty.
    Required,
    /// The value has the wrong type or is out of range; the text says what was expected.
    Invalid(String),
    /// Two entries share a name or path that must be unique.
    Duplicate(String),
    /// A valid Kubernetes feature that peapod's runtime does not implement; optional detail.
    NotSupported(Option<String>),
    /// The value is longer than the API allows (bytes).
    TooLong(usize),
    /// A required field is missing, with the API server's explanation.
    RequiredDetail(String),
    /// A valid value the API server does not allow here; the text says why.
    Forbidden(String),
    /// A list with more items than the API allows: its length and the limit.
    TooMany { len: usize, max: usize },
    /// A value outside an enumeration: the value and the allowed values, as the API server
    /// lists them (`Unsupported value: "X": supported values: "A", "B"`).
    Unsupported {
        value: String,
        supported: Vec<&'static str>,
    },
}

impl Problem {
    pub(crate) fn new(document: usize, path: impl Into<String>, reason: Reason) -> Self {
        Problem {
            document,
            path: path.into(),
            reason,
        }
    }
}

impl Problem {
    /// The problem as the API server words a field error (`path: Invalid value: ...`
    /// [apimachinery/pkg/util/validation/field/errors.go]), without the document.
    pub fn cause(&self) -> String {
        let path = if self.path.is_empty() {
            "<document>"
        } else {
            &self.path
        };
        match &self.reason {
            Reason::UnknownField => format!("{path}: unknown field"),
            Reason::Required => format!("{path}: Required value"),
            Reason::RequiredDetail(why) => format!("{path}: Required value: {why}"),
            Reason::Invalid(why) => format!("{path}: Invalid value: {why}"),
            Reason::Duplicate(what) => format!("{path}: Duplicate value: {what}"),
            Reason::Forbidden(why) => format!("{path}: Forbidden: {why}"),
            Reason::Unsupported { value, supported } => {
                let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
                format!(
                    "{path}: Unsupported value: {}: supported values: {}",
                    go_quote(value),
                    list.join(", ")
                )
            }
            Reason::NotSupported(None) => format!("not supported: {path}"),
            Reason::NotSupported(Some(detail)) => format!("not supported: {path} ({detail})"),
            // field.TooLong: the value is never shown.
            Reason::TooLong(1) => format!("{path}: Too long: may not be more than 1 byte"),
            Reason::TooLong(max) => {
                format!("{path}: Too long: may not be more than {max} bytes")
            }
            // field.TooMany.
            Reason::TooMany { len, max } => {
                format!("{path}: Too many: {len}: must have at most {max} items")
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}: {}", self.document, self.cause())
    }
}

/// Go's `%q` of a string (`strconv.Quote`), as the API server quotes bad values in its messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One object of a manifest, decoded, defaulted and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
}

impl Object {
    /// `pod`, `configmap`, `secret`, `persistentvolumeclaim`: how kubectl names the kind in
    /// `<kind>/<name> created`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Object::Pod(_) => "pod",
            Object::ConfigMap(_) => "configmap",
            Object::Secret(_) => "secret",
            Object::PersistentVolumeClaim(_) => "persistentvolumeclaim",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Pod(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The namespace (defaulted on decode).
    pub fn namespace(&self) -> &str {
        self.metadata()
            .namespace
            .as_deref()
            .unwrap_or(defaults::DEFAULT_NAMESPACE)
    }
}

/// The ConfigMap of an [`Object`], for callers that built one (`create configmap`).
impl TryFrom<Object> for ConfigMap {
    type Error = Object;
    fn try_from(o: Object) -> Result<Self, Object> {
        match o {
            Object::ConfigMap(c) => Ok(*c),
            other => Err(other),
        }
    }
}

/// The Secret of an [`Object`].
impl TryFrom<Object> for Secret {
    type Error = Object;
    fn try_from(o: Object) -> Result<Self, Object> {
        match o {
            Object::Secret(s) => Ok(*s),
            other => Err(other),
        }
    }
}

/// Decodes, checks, defaults and validates every object of `text`: Pods, ConfigMaps, Secrets,
/// PersistentVolumeClaims, and `kind: List`s of them (flattened, in order).
///
/// `source` names the input in messages (a file name, or `STDIN`). Empty documents are
/// skipped. When any document has a problem, nothing is returned and the error lists every
/// problem of every document.
pub fn decode_objects(text: &str, source: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (index, document) in decode::split_documents(text).into_iter().enumerate() {
        let number = index + 1;
        let value = match document {
            Ok(serde_json::Value::Null) => continue,
            Ok(value) => value,
            Err(why) => {
                problems.push(Problem::new(number, "", Reason::Invalid(why)));
                continue;
            }
        };
        check_document(&value, number, &mut objects, &mut problems);
    }
    validate::check_unique(&objects, &mut problems);
    if !problems.is_empty() {
        tracing::debug!(source, problems = problems.len(), "manifest refused");
        return Err(ManifestError::Invalid {
            file: source.to_string(),
            problems,
        });
    }
    Ok(objects.into_iter().map(|(_, object)| object).collect())
}

/// Checks one object that a command built (`create configmap`, `create secret`) exactly as a
/// manifest's object is checked: strict decoding, support table, defaults, validation. The
/// problems carry the API server's field errors ([`Problem::cause`]).
pub fn check_object_value(value: &serde_json::Value) -> Result<Object, Vec<Problem>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    check_document(value, 1, &mut objects, &mut problems);
    match objects.pop() {
        Some((_, object)) if problems.is_empty() => Ok(object),
        _ => Err(problems),
    }
}

/// Like [`decode_objects`], for input that must hold only Pods.
pub fn decode_pods(text: &str, source: &str) -> Result<Vec<Pod>, ManifestError> {
    let mut pods = Vec::new();
    let mut problems = Vec::new();
    for (index, object) in decode_objects(text, source)?.into_iter().enumerate() {
        match object {
            Object::Pod(pod) => pods.push(*pod),
            other => problems.push(Problem::new(
                index + 1,
                "kind",
                Reason::Invalid(format!(
                    "a Pod is expected here, not a {}",
                    other.kind_name()
                )),
            )),
        }
    }
    if problems.is_empty() {
        Ok(pods)
    } else {
        Err(ManifestError::Invalid {
            file: source.to_string(),
            problems,
        })
    }
}

/// One document: kind check, then each object (a List's items one by one).
fn check_document(
    value: &serde_json::Value,
    document: usize,
    objects: &mut Vec<(usize, Object)>,
    problems: &mut Vec<Problem>,
) {
    match decode::check_kind(value, document, "") {
        Ok("List") => {
            let items = value.get("items").and_then(serde_json::Value::as_array);
            let extra = value.as_object().into_iter().flatten().filter(|(k, _)| {
                !matches!(k.as_str(), "apiVersion" | "kind" | "items" | "metadata")
            });
            for (key, _) in extra {
                problems.push(Problem::new(document, key.as_str(), Reason::UnknownField));
            }
            for (i, item) in items.into_iter().flatten().enumerate() {
                let prefix = format!("items[{i}].");
                match decode::check_kind(item, document, &prefix) {
                    Ok("List") => problems.push(Problem::new(
                        document,
                        format!("{prefix}kind"),
                        Reason::Invalid("a List may not hold a List".into()),
                    )),
                    Ok(kind) => check_object(kind, item, document, &prefix, objects, problems),
                    Err(mut found) => problems.append(&mut found),
                }
            }
        }
        Ok(kind) => check_object(kind, value, document, "", objects, problems),
        Err(mut found) => problems.append(&mut found),
    }
}

/// One object: strict decode, support table, defaults, validation.
fn check_object(
    kind: &str,
    value: &serde_json::Value,
    document: usize,
    prefix: &str,
    objects: &mut Vec<(usize, Object)>,
    problems: &mut Vec<Problem>,
) {
    let result = match kind {
        "Pod" => check_pod(value, document, prefix).map(|p| Object::Pod(Box::new(p))),
        "ConfigMap" => objects::check_config_map(value, document, prefix)
            .map(|o| Object::ConfigMap(Box::new(o))),
        "Secret" => {
            objects::check_secret(value, document, prefix).map(|o| Object::Secret(Box::new(o)))
        }
        "PersistentVolumeClaim" => objects::check_claim(value, document, prefix)
            .map(|o| Object::PersistentVolumeClaim(Box::new(o))),
        other => Err(vec![Problem::new(
            document,
            format!("{prefix}kind"),
            Reason::Invalid(format!("kind {other} is not supported")),
        )]),
    };
    match result {
        Ok(object) => objects.push((document, object)),
        Err(mut found) => problems.append(&mut found),
    }
}

fn check_pod(
    value: &serde_json::Value,
    document: usize,
    prefix: &str,
) -> Result<Pod, Vec<Problem>> {
    let mut pod: Pod = decode::decode_strict(value, document, prefix, support::Table::Pod)?;
    let mut problems = support::check(&pod, support::Table::Pod, document, prefix);
    defaults::apply(&mut pod);
    let mut found = Vec::new();
    validate::validate(&pod, document, &mut found);
    for p in &mut found {
        p.path = format!("{prefix}{}", p.path);
    }
    problems.append(&mut found);
    if problems.is_empty() {
        Ok(pod)
    } else {
        Err(problems)
    }
}
