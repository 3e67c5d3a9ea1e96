//! Pod manifests: strict decoding of YAML/JSON into Kubernetes `Pod`s, refusal of features the
//! runtime does not implement, API-server defaults, validation with kubectl-style field paths,
//! and resource quantities. Owns nothing on the host and must not touch it.
//!
//! - [`decode_pods`]: every `---` document, strictly decoded (an unknown field is an error naming
//!   `spec.containers[0].resorces`), checked against the support table in [`support`], defaulted
//!   (namespace `default`, restartPolicy Always, dnsPolicy ClusterFirst,
//!   terminationGracePeriodSeconds 30, imagePullPolicy, terminationMessagePath, ...) and
//!   validated. Nothing is returned when any document has a problem.
//! - [`Resources`] / [`container_resources`]: parsed cpu/memory requests and limits.
//! - [`QosClass`] / [`qos_class`].
//! - [`parse_quantity`] / [`Quantity`]: exact Kubernetes quantities.

mod decode;
pub mod defaults;
pub mod names;
pub mod quantity;
pub mod resources;
pub mod support;
mod validate;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::api::core::v1::Pod;

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

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}: ", self.document)?;
        let path = if self.path.is_empty() {
            "<document>"
        } else {
            &self.path
        };
        match &self.reason {
            Reason::UnknownField => write!(f, "{path}: unknown field"),
            Reason::Required => write!(f, "{path}: Required value"),
            Reason::Invalid(why) => write!(f, "{path}: Invalid value: {why}"),
            Reason::Duplicate(what) => write!(f, "{path}: Duplicate value: {what}"),
            Reason::NotSupported(None) => write!(f, "not supported: {path}"),
            Reason::NotSupported(Some(detail)) => write!(f, "not supported: {path} ({detail})"),
        }
    }
}

/// Decodes, checks, defaults and validates every Pod document of `text`.
///
/// `source` names the input in messages (a file name, or `-`/`<stdin>`). Empty documents are
/// skipped. When any document has a problem, nothing is returned and the error lists every
/// problem of every document.
pub fn decode_pods(text: &str, source: &str) -> Result<Vec<Pod>, ManifestError> {
    let mut pods = Vec::new();
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
        match check_document(&value, number) {
            Ok(pod) => pods.push((number, pod)),
            Err(mut found) => problems.append(&mut found),
        }
    }
    validate::check_unique_pods(&pods, &mut problems);
    if !problems.is_empty() {
        tracing::debug!(source, problems = problems.len(), "pod manifest refused");
        return Err(ManifestError::Invalid {
            file: source.to_string(),
            problems,
        });
    }
    Ok(pods.into_iter().map(|(_, pod)| pod).collect())
}

/// One document: kind check, strict decode, support table, defaults, validation.
fn check_document(value: &serde_json::Value, document: usize) -> Result<Pod, Vec<Problem>> {
    decode::check_kind(value, document)?;
    let mut pod = decode::decode_pod(value, document)?;
    let mut problems = support::check(&pod, document);
    defaults::apply(&mut pod);
    validate::validate(&pod, document, &mut problems);
    if problems.is_empty() {
        Ok(pod)
    } else {
        Err(problems)
    }
}
