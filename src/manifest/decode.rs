//! Strict decoding of manifest text into `Pod`s. k8s-openapi's types accept and drop unknown
//! fields, so the decoder is wrapped: `serde_ignored` reports every ignored key (a typo) and
//! `serde_path_to_error` the path of a type error. To report every type error of a document and
//! not only the first, the offending member is removed and decoding is retried.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::support::{Support, Table};
use super::{Problem, Reason};

/// Enough retries for any hand-written manifest; bounds the work on a pathological one.
const MAX_TYPE_ERRORS: usize = 64;

/// Splits `text` into documents: a stream of JSON objects, or `---`-separated YAML.
/// A document that does not parse ends the stream (later positions are unknown).
pub(crate) fn split_documents(text: &str) -> Vec<Result<Value, String>> {
    let mut out = Vec::new();
    if text.trim_start().starts_with('{') {
        for doc in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match doc {
                Ok(v) => out.push(Ok(v)),
                Err(e) => {
                    out.push(Err(format!("not valid JSON: {e}")));
                    break;
                }
            }
        }
        return out;
    }
    for doc in serde_norway::Deserializer::from_str(text) {
        match Value::deserialize(doc) {
            Ok(v) => out.push(Ok(v)),
            Err(e) => {
                out.push(Err(format!("not valid YAML: {e}")));
                break;
            }
        }
    }
    out
}

/// The kinds a manifest may hold, by their `kind` field; all are core `v1` objects.
pub(crate) const KINDS: &[&str] = &[
    "Pod",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "List",
];

/// apiVersion and kind are checked before decoding, so a Deployment gets a clear answer.
/// Returns the kind.
pub(crate) fn check_kind<'a>(
    value: &'a Value,
    document: usize,
    prefix: &str,
) -> Result<&'a str, Vec<Problem>> {
    let Value::Object(map) = value else {
        return Err(vec![Problem::new(
            document,
            prefix.trim_end_matches('.'),
            Reason::Invalid("a document must be a mapping (a Kubernetes object)".into()),
        )]);
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or_default();
    let at = |field: &str| format!("{prefix}{field}");
    let mut problems = Vec::new();
    let kind = text("kind");
    match kind {
        "" => problems.push(Problem::new(document, at("kind"), Reason::Required)),
        k if KINDS.contains(&k) => {}
        other => problems.push(Problem::new(
            document,
            at("kind"),
            Reason::Invalid(format!(
                "kind {other} is not supported, peapod takes {}",
                KINDS.join(", ")
            )),
        )),
    }
    match text("apiVersion") {
        "" => problems.push(Problem::new(document, at("apiVersion"), Reason::Required)),
        "v1" => {}
        other => problems.push(Problem::new(
            document,
            at("apiVersion"),
            Reason::Invalid(format!("{other:?}, a {kind} is apiVersion v1")),
        )),
    }
    if problems.is_empty() {
        Ok(kind)
    } else {
        Err(problems)
    }
}

/// Decodes one object strictly; every unknown field and every type error becomes a problem.
/// `prefix` locates the object in its document (`items[2].` inside a List); `table` is the
/// kind's support table, for errors inside refused features.
pub(crate) fn decode_strict<T: DeserializeOwned>(
    value: &Value,
    document: usize,
    prefix: &str,
    table: Table,
) -> Result<T, Vec<Problem>> {
    let mut working = value.clone();
    let mut unknown: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let mut ignored = Vec::new();
        let result = {
            let mut note = |path: serde_ignored::Path| ignored.push(ignored_path(&path));
            let de = serde_ignored::Deserializer::new(&working, &mut note);
            serde_path_to_error::deserialize::<_, T>(de)
        };
        for path in ignored {
            if !unknown.contains(&path) {
                unknown.push(path);
            }
        }
        match result {
            Ok(object) => {
                if problems.is_empty() && unknown.is_empty() {
                    return Ok(object);
                }
                break;
            }
            Err(err) => {
                let segments: Vec<_> = err.path().iter().cloned().collect();
                if yaml_octal(&mut working, &segments, &err.inner().to_string()) {
                    continue;
                }
                problems.push(type_problem(
                    &segments,
                    &err.inner().to_string(),
                    document,
                    table,
                ));
                if !remove_member(&mut working, &segments) {
                    break;
                }
            }
        }
    }
    let mut all: Vec<Problem> = unknown
        .into_iter()
        .map(|path| Problem::new(document, path, Reason::UnknownField))
        .collect();
    all.append(&mut problems);
    for p in &mut all {
        p.path = format!("{prefix}{}", p.path);
    }
    Err(all)
}

/// `spec.containers[0].resorces` from serde_ignored's path.
fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => join_key(ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn join_key(parent: String, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn segments_path(segments: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment as S;
    segments
        .iter()
        .fold(String::new(), |acc, segment| match segment {
            S::Seq { index } => format!("{acc}[{index}]"),
            S::Map { key } => join_key(acc, key),
            S::Enum { variant } => join_key(acc, variant),
            S::Unknown => join_key(acc, "?"),
        })
}

fn type_problem(
    segments: &[serde_path_to_error::Segment],
    message: &str,
    doc: usize,
    table: Table,
) -> Problem {
    if let Some(refused) = refused_ancestor(segments, table) {
        return Problem::new(doc, refused, Reason::NotSupported(None));
    }
    let path = segments_path(segments);
    // serde says "missing field `name`" at the enclosing object; kubectl names the field.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return Problem::new(doc, join_key(path, field), Reason::Required);
    }
    Problem::new(doc, path, Reason::Invalid(message.to_string()))
}

/// A type error inside a feature the runtime refuses anyway is reported as that feature being
/// not supported: the user has to remove it either way. Returns the refused field's path.
fn refused_ancestor(segments: &[serde_path_to_error::Segment], table: Table) -> Option<String> {
    use serde_path_to_error::Segment as S;
    let (mut path, mut pattern) = (String::new(), String::new());
    for segment in segments {
        match segment {
            S::Seq { index } => {
                path = format!("{path}[{index}]");
                pattern.push_str("[]");
                continue;
            }
            S::Map { key } => {
                path = join_key(path, key);
                pattern = join_key(pattern, key);
            }
            S::Enum { .. } | S::Unknown => return None,
        }
        match table.lookup(&pattern) {
            Some(Support::Into) => {}
            Some(Support::Yes) => return None,
            Some(Support::No | Support::UnlessEquals(_)) | None => return Some(path),
        }
    }
    None
}

/// The value at `segments`.
fn member_mut<'v>(
    value: &'v mut Value,
    segments: &[serde_path_to_error::Segment],
) -> Option<&'v mut Value> {
    use serde_path_to_error::Segment as S;
    let mut node = value;
    for segment in segments {
        node = match (segment, node) {
            (S::Map { key }, Value::Object(map)) => map.get_mut(key)?,
            (S::Seq { index }, Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Removes the member at `segments` so that decoding can go on to find further errors. Only an
/// object member can go: removing an array element would shift the indices of later errors.
fn remove_member(value: &mut Value, segments: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment as S;
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    match (last, member_mut(value, parents)) {
        (S::Map { key }, Some(Value::Object(map))) => map.remove(key).is_some(),
        _ => false,
    }
}

/// Kubernetes reads YAML 1.1, where `0644` is an octal integer (file modes are written so);
/// the YAML 1.2 parser here keeps it a string. Where an integer is expected, such a string
/// becomes the octal number. Returns whether the member was changed.
fn yaml_octal(value: &mut Value, segments: &[serde_path_to_error::Segment], message: &str) -> bool {
    let wants_int = message.starts_with("invalid type: string")
        && [", expected i", ", expected u"]
            .iter()
            .any(|e| message.contains(e));
    let Some(node) = member_mut(value, segments).filter(|_| wants_int) else {
        return false;
    };
    let Value::String(text) = node else {
        return false;
    };
    let digits = match text.strip_prefix('0') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| (b'0'..=b'7').contains(&b)) => d,
        _ => return false,
    };
    match i64::from_str_radix(digits, 8) {
        Ok(n) => {
            *node = Value::from(n);
            true
        }
        Err(_) => false,
    }
}
