//! Static pods, as the kubelet's `staticPodPath` makes them [pkg/kubelet/config/file.go,
//! common.go]: every manifest file of a directory (dotfiles skipped) holds one Pod (or a
//! `kind: List` of Pods); each becomes a pod named `<name>-<nodename>` in its namespace
//! (`default` when unset), with `spec.nodeName` set, a UID that is a hash of the node, the file
//! and the pod, and the kubelet's annotations: `kubernetes.io/config.source: file`,
//! `kubernetes.io/config.hash` (the UID) and `kubernetes.io/config.seen`. A changed file gives a
//! new hash, so the pod is replaced; a removed file removes it. Pure: reads the directory and
//! decides; the agent acts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Toleration};
use sha2::{Digest, Sha256};

use crate::manifest::{decode_objects, Object};

/// The kubelet's annotation keys [pkg/kubelet/types/pod_update.go].
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The source of static pods read from files.
pub const SOURCE_FILE: &str = "file";
/// Which manifest file a static pod came from (peapod's own, for `delete`'s warning).
pub const CONFIG_FILE_ANNOTATION: &str = "peapod.io/config.file";

/// A pod the manifest directory asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPod {
    pub file: PathBuf,
    pub pod: Pod,
}

impl StaticPod {
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }
}

/// A manifest file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidManifest {
    pub file: PathBuf,
    pub reason: String,
}

/// What a scan of the manifest directory found.
#[derive(Debug, Default)]
pub struct Scan {
    pub pods: Vec<StaticPod>,
    pub invalid: Vec<InvalidManifest>,
}

/// The pod name a static pod gets on `node` [common.go generatePodName].
pub fn static_pod_name(name: &str, node: &str) -> String {
    format!("{name}-{}", node.to_lowercase())
}

/// Reads every manifest of `dir`. A missing directory is an empty one (the kubelet waits for
/// it to appear); an unreadable or invalid file is reported and skipped, the others still
/// count. `seen` is the time written to `config.seen`.
pub fn scan(dir: &Path, node: &str, seen: &str) -> Scan {
    let mut out = Scan::default();
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.invalid.push(InvalidManifest {
                file: dir.to_path_buf(),
                reason: format!("cannot read the manifest directory: {e}"),
            });
            return out;
        }
    };
    files.sort();
    for file in files {
        // The kubelet skips hidden files and anything that is not a regular file.
        let hidden = file
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden || !file.is_file() {
            continue;
        }
        match read_file(&file, node, seen) {
            Ok(mut pods) => out.pods.append(&mut pods),
            Err(reason) => out.invalid.push(InvalidManifest { file, reason }),
        }
    }
    // Two files may not make one pod: the first (in name order) wins, as a kubelet keeps one.
    let mut names: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut kept = Vec::new();
    for p in out.pods {
        let key = (p.namespace().to_string(), p.name().to_string());
        if let Some(first) = names.get(&key) {
            out.invalid.push(InvalidManifest {
                file: p.file.clone(),
                reason: format!(
                    "pod {}/{} is already defined by {}",
                    key.0,
                    key.1,
                    first.display()
                ),
            });
            continue;
        }
        names.insert(key, p.file.clone());
        kept.push(p);
    }
    out.pods = kept;
    out
}

fn read_file(file: &Path, node: &str, seen: &str) -> Result<Vec<StaticPod>, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let source = file.display().to_string();
    let objects = decode_objects(&text, &source).map_err(|e| e.to_string())?;
    let mut pods = Vec::new();
    for object in objects {
        match object {
            Object::Pod(pod) => pods.push(StaticPod {
                file: file.to_path_buf(),
                pod: static_pod(*pod, file, node, seen),
            }),
            other => {
                return Err(format!(
                    "a static pod manifest holds pods only, not a {}",
                    other.kind_name()
                ))
            }
        }
    }
    Ok(pods)
}

/// The kubelet's defaults for a pod read from a file [common.go applyDefaults].
fn static_pod(mut pod: Pod, file: &Path, node: &str, seen: &str) -> Pod {
    let uid = static_pod_uid(&pod, file, node);
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(static_pod_name(&name, node));
    pod.metadata.uid = Some(uid.clone());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    // Static pods tolerate every NoExecute taint, so node problems do not evict them.
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let tolerate_all = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Default::default()
    };
    if !tolerations.contains(&tolerate_all) {
        tolerations.push(tolerate_all);
    }
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(CONFIG_SOURCE_ANNOTATION.into(), SOURCE_FILE.into());
    ann.insert(CONFIG_HASH_ANNOTATION.into(), uid);
    ann.insert(CONFIG_SEEN_ANNOTATION.into(), seen.into());
    ann.insert(CONFIG_FILE_ANNOTATION.into(), file.display().to_string());
    pod
}

/// The UID of a static pod: a hash of the node, the file and the pod as written (the kubelet
/// uses MD5 over the same inputs; any change to the file gives a new UID, and so a new pod).
/// 32 hex digits, as the kubelet's.
pub fn static_pod_uid(pod: &Pod, file: &Path, node: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("host:{node}"));
    hasher.update(format!("file:{}", file.display()));
    hasher.update(serde_json::to_vec(pod).unwrap_or_default());
    hex::encode(&hasher.finalize()[..16])
}

/// True when `pod` is a static pod (it came from a manifest file).
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s == SOURCE_FILE)
}

/// The manifest file a static pod came from.
pub fn source_file(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_FILE_ANNOTATION))
        .map(String::as_str)
}

/// What the agent must do to make the pods on record match the directory.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A static pod that is not running (new file, or deleted by hand): create it.
    Create(Box<StaticPod>),
    /// A static pod whose file changed or went away: delete it (by namespace, name).
    Delete { namespace: String, name: String },
}

/// A static pod on record: namespace, name, and its `config.hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub namespace: String,
    pub name: String,
    pub hash: String,
}

/// Deletions first (a changed file's old pod, then removed files), then creations, so a
/// replaced pod's name is free when its new version is created.
pub fn reconcile(desired: &[StaticPod], running: &[Running]) -> Vec<Action> {
    let mut actions = Vec::new();
    for r in running {
        let wanted = desired
            .iter()
            .any(|d| d.namespace() == r.namespace && d.name() == r.name && d.uid() == r.hash);
        if !wanted {
            actions.push(Action::Delete {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            });
        }
    }
    for d in desired {
        let present = running
            .iter()
            .any(|r| r.namespace == d.namespace() && r.name == d.name() && r.hash == d.uid());
        if !present {
            actions.push(Action::Create(Box::new(d.clone())));
        }
    }
    actions
}

#[cfg(test)]
#[path = "static_pods_tests.rs"]
mod tests;
