//! `peapod label` and `peapod annotate`: kubectl's rules for changing a pod's labels and
//! annotations [kubectl pkg/cmd/label/label.go, pkg/cmd/annotate/annotate.go], and the
//! rewrite of pod.json that carries them. Only `metadata.labels` or `metadata.annotations`
//! change, atomically and durably, under the pods lock; the pod's supervisor is then signalled
//! so that its downwardAPI files follow.

use std::collections::BTreeMap;

use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::Value;

use crate::manifest::names::{
    is_label_value, is_qualified_name, LABEL_VALUE_RULE, QUALIFIED_NAME_RULE,
};
use crate::pod::record::{self, POD_FILE};
use crate::pod::supervisor::METADATA_SIGNAL;
use crate::store::{read_json, write_atomic, FileLock, Paths, StoreError};

/// Which map a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    Labels,
    Annotations,
}

impl MetadataKind {
    fn field(self) -> &'static str {
        match self {
            MetadataKind::Labels => "labels",
            MetadataKind::Annotations => "annotations",
        }
    }
}

/// Keys to set and keys to remove, parsed from `k=v` and `k-` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChange {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
    pub overwrite: bool,
}

/// What a change did, in kubectl's words (`pod/x labeled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOutcome {
    /// `labeled`, `unlabeled`, `not labeled`, `label(s) changed`, or `annotated`.
    pub verb: &'static str,
    /// Keys asked to be removed that were not there (kubectl prints `label "k" not found.`).
    pub absent: Vec<String>,
}

/// Errors of `label` and `annotate`; the messages are kubectl's.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("invalid label spec: {0}")]
    InvalidLabelSpec(String),
    #[error("invalid label value: {spec:?}: {LABEL_VALUE_RULE}")]
    InvalidLabelValue { spec: String },
    #[error("unknown label spec: {0}")]
    UnknownLabelSpec(String),
    #[error("can not both modify and remove a label in the same command")]
    LabelModifyAndRemove,
    #[error("invalid annotation format: {0}")]
    InvalidAnnotations(String),
    #[error("can not both modify and remove the following annotation(s) in the same command: {0}")]
    AnnotationModifyAndRemove(String),
    #[error("at least one {0} update is required")]
    NothingToDo(&'static str),
    /// `'k' already has a value (v), and --overwrite is false`, aggregated as Go does.
    #[error("{}", crate::gofmt::aggregate(.0))]
    LabelExists(Vec<String>),
    #[error("--overwrite is false but found the following declared annotation(s): {}", .0.join("; "))]
    AnnotationExists(Vec<String>),
    /// An annotation only the CRI server sets (`pod::control::reserved_annotation`).
    #[error(
        "The Pod {pod:?} is invalid: metadata.annotations[{key}]: Forbidden: {}",
        crate::pod::control::RESERVED_ANNOTATION
    )]
    ReservedAnnotation { pod: String, key: String },
    /// The API server's answer to a key that is not a qualified name.
    #[error("The Pod {pod:?} is invalid: metadata.{field}: Invalid value: {key:?}: {QUALIFIED_NAME_RULE}")]
    InvalidKey {
        pod: String,
        field: &'static str,
        key: String,
    },
    #[error("pods {0:?} not found")]
    NotFound(String),
    #[error("{path}: metadata.{field} is not a map of strings")]
    Corrupt {
        path: std::path::PathBuf,
        field: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `k=v` and `k-` arguments as kubectl's label parses them.
pub fn parse_labels(args: &[String]) -> Result<MetadataChange, MetadataError> {
    let mut change = MetadataChange::default();
    for arg in args {
        if arg.contains('=') {
            let parts: Vec<&str> = arg.split('=').collect();
            if parts.len() != 2 {
                return Err(MetadataError::InvalidLabelSpec(arg.clone()));
            }
            if !is_label_value(parts[1]) {
                return Err(MetadataError::InvalidLabelValue { spec: arg.clone() });
            }
            change
                .set
                .insert(parts[0].to_string(), parts[1].to_string());
        } else if let Some(key) = arg.strip_suffix('-') {
            change.remove.push(key.to_string());
        } else {
            return Err(MetadataError::UnknownLabelSpec(arg.clone()));
        }
    }
    if change.remove.iter().any(|k| change.set.contains_key(k)) {
        return Err(MetadataError::LabelModifyAndRemove);
    }
    if change.set.is_empty() && change.remove.is_empty() {
        return Err(MetadataError::NothingToDo("label"));
    }
    Ok(change)
}

/// `k=v` and `k-` arguments as kubectl's annotate parses them (`cmdutil.ParsePairs`): a value
/// may hold `=`.
pub fn parse_annotations(args: &[String]) -> Result<MetadataChange, MetadataError> {
    let mut change = MetadataChange::default();
    let mut invalid = Vec::new();
    for arg in args {
        if arg.contains('=') && !arg.starts_with('=') {
            if let Some((k, v)) = arg.split_once('=') {
                change.set.insert(k.to_string(), v.to_string());
            }
        } else if let Some(key) = arg.strip_suffix('-').filter(|_| arg != "-") {
            change.remove.push(key.to_string());
        } else {
            invalid.push(arg.clone());
        }
    }
    if !invalid.is_empty() {
        return Err(MetadataError::InvalidAnnotations(invalid.join(", ")));
    }
    if change.set.is_empty() && change.remove.is_empty() {
        return Err(MetadataError::NothingToDo("annotation"));
    }
    let both: Vec<&str> = change
        .remove
        .iter()
        .filter(|k| change.set.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !both.is_empty() {
        return Err(MetadataError::AnnotationModifyAndRemove(both.join(", ")));
    }
    Ok(change)
}

/// Applies `change` to one map. Without `--overwrite`, a key that exists with another value
/// is refused (the same value is no conflict, as kubectl has it since 1.27).
pub fn apply_change(
    kind: MetadataKind,
    map: &mut BTreeMap<String, String>,
    change: &MetadataChange,
) -> Result<MetadataOutcome, MetadataError> {
    if !change.overwrite {
        let conflicts: Vec<String> = change
            .set
            .iter()
            .filter_map(|(k, v)| map.get(k).filter(|cur| *cur != v).map(|cur| (k, cur)))
            .map(|(k, cur)| match kind {
                MetadataKind::Labels => {
                    format!("'{k}' already has a value ({cur}), and --overwrite is false")
                }
                MetadataKind::Annotations => format!("'{k}' already has a value ({cur})"),
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(match kind {
                MetadataKind::Labels => MetadataError::LabelExists(conflicts),
                MetadataKind::Annotations => MetadataError::AnnotationExists(conflicts),
            });
        }
    }
    let old = map.clone();
    let absent = change
        .remove
        .iter()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    for (k, v) in &change.set {
        map.insert(k.clone(), v.clone());
    }
    for k in &change.remove {
        map.remove(k);
    }
    let verb = match kind {
        MetadataKind::Annotations => "annotated",
        MetadataKind::Labels => {
            let added = map.iter().any(|(k, v)| old.get(k) != Some(v));
            let removed = old.keys().any(|k| !map.contains_key(k));
            match (added, removed) {
                (true, true) => "label(s) changed",
                (true, false) => "labeled",
                (false, true) => "unlabeled",
                (false, false) => "not labeled",
            }
        }
    };
    Ok(MetadataOutcome { verb, absent })
}

/// Changes the labels or annotations of pod `namespace/name`: pod.json is re-read and
/// rewritten under the pods lock with only that map changed, then the supervisor is told.
pub fn update(
    paths: &Paths,
    namespace: &str,
    name: &str,
    kind: MetadataKind,
    change: &MetadataChange,
) -> Result<MetadataOutcome, MetadataError> {
    let pod_name = name.to_string();
    for key in change.set.keys().chain(&change.remove) {
        if kind == MetadataKind::Annotations && crate::pod::control::reserved_annotation(key) {
            return Err(MetadataError::ReservedAnnotation {
                pod: pod_name,
                key: key.clone(),
            });
        }
    }
    for key in change.set.keys() {
        if !is_qualified_name(key) {
            return Err(MetadataError::InvalidKey {
                pod: pod_name,
                field: kind.field(),
                key: key.clone(),
            });
        }
    }
    let _lock = FileLock::exclusive(&paths.pods_lock())?;
    let rec = record::find(paths, namespace, name)?
        .ok_or_else(|| MetadataError::NotFound(pod_name.clone()))?;
    let uid = rec.pod.metadata.uid.clone().unwrap_or_default();
    let path = paths.pod_dir(&uid).join(POD_FILE);
    let mut pod: Value = read_json(&path)?;
    let corrupt = || MetadataError::Corrupt {
        path: path.clone(),
        field: kind.field(),
    };
    let meta = pod
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(corrupt)?;
    let mut map: BTreeMap<String, String> = match meta.get(kind.field()) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| corrupt())?,
    };
    let outcome = apply_change(kind, &mut map, change)?;
    if map.is_empty() {
        meta.remove(kind.field());
    } else {
        meta.insert(kind.field().to_string(), serde_json::json!(map));
    }
    let data = serde_json::to_vec(&pod).map_err(|source| StoreError::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, &data)?;
    notify_supervisor(rec.state.as_ref());
    Ok(outcome)
}

/// Tells a pod's supervisor that pod.json's labels or annotations changed (its downwardAPI
/// files follow them). A supervisor of an older peapod does not take the signal (it would die
/// of it): it is left alone, and its pod keeps the metadata the supervisor read when it
/// started.
pub fn notify_supervisor(state: Option<&crate::pod::record::PodState>) {
    let supervisor = state
        .and_then(|s| s.supervisor.as_ref())
        .filter(|s| s.is_alive() && crate::procfs::blocks_signal(s.pid, METADATA_SIGNAL as i32));
    if let Some(sup) = supervisor {
        if let Err(e) = kill(Pid::from_raw(sup.pid), METADATA_SIGNAL) {
            tracing::warn!(pid = sup.pid, error = %e, "cannot tell the supervisor");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_parsing_follows_kubectl() {
        let c = parse_labels(&args(&["a=1", "b-"])).unwrap();
        assert_eq!(c.set, map(&[("a", "1")]));
        assert_eq!(c.remove, ["b"]);
        let err = |a: &[&str]| parse_labels(&args(a)).unwrap_err().to_string();
        assert_eq!(err(&["a=b=c"]), "invalid label spec: a=b=c");
        assert_eq!(err(&["a"]), "unknown label spec: a");
        assert_eq!(
            err(&["a=1", "a-"]),
            "can not both modify and remove a label in the same command"
        );
        assert!(err(&["a=b c"]).starts_with("invalid label value: \"a=b c\": a valid label"));
        assert_eq!(err(&[]), "at least one label update is required");
    }

    #[test]
    fn annotation_parsing_keeps_equals_in_values() {
        let c = parse_annotations(&args(&["url=http://x/?a=b", "old-"])).unwrap();
        assert_eq!(c.set, map(&[("url", "http://x/?a=b")]));
        let err = |a: &[&str]| parse_annotations(&args(a)).unwrap_err().to_string();
        assert_eq!(err(&["=x", "y"]), "invalid annotation format: =x, y");
        assert_eq!(
            err(&["a=1", "a-"]),
            "can not both modify and remove the following annotation(s) in the same command: a"
        );
    }

    #[test]
    fn overwrite_rules_and_outcomes() {
        let mut m = map(&[("tier", "web")]);
        let change = parse_labels(&args(&["tier=db"])).unwrap();
        let err = apply_change(MetadataKind::Labels, &mut m, &change).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'tier' already has a value (web), and --overwrite is false"
        );
        let same = parse_labels(&args(&["tier=web"])).unwrap();
        let out = apply_change(MetadataKind::Labels, &mut m, &same).unwrap();
        assert_eq!(out.verb, "not labeled");
        let mut forced = change.clone();
        forced.overwrite = true;
        let out = apply_change(MetadataKind::Labels, &mut m, &forced).unwrap();
        assert_eq!(out.verb, "labeled");
        assert_eq!(m, map(&[("tier", "db")]));
        let rm = parse_labels(&args(&["tier-", "gone-"])).unwrap();
        let out = apply_change(MetadataKind::Labels, &mut m, &rm).unwrap();
        assert_eq!(
            (out.verb, out.absent),
            ("unlabeled", vec!["gone".to_string()])
        );

        let mut a = map(&[("k", "v")]);
        let change = parse_annotations(&args(&["k=w"])).unwrap();
        let err = apply_change(MetadataKind::Annotations, &mut a, &change).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--overwrite is false but found the following declared annotation(s): 'k' already has a value (v)"
        );
    }

    #[test]
    fn cri_annotations_cannot_be_set_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        for args_ in [
            &["peapod.io/cri-sandbox-id=x"][..],
            &["peapod.io/host-ports-"][..],
        ] {
            let change = parse_annotations(&args(args_)).unwrap();
            let e =
                update(&paths, "default", "web", MetadataKind::Annotations, &change).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("The Pod \"web\" is invalid: metadata.annotations[peapod.io/"),
                "{e}"
            );
            assert!(e
                .to_string()
                .ends_with("Forbidden: reserved for pods made through peapod's CRI socket"));
        }
    }
}
