//! The shared pod corpus (`../shared/pod-corpus`: real Pod manifests from the Kubernetes docs),
//! read by the registry test on the host and by vm_corpus in the VM.

use std::path::{Path, PathBuf};

/// Where scripts/test puts the corpus inside the VM.
const IN_VM: &str = "/peapod/pod-corpus";

/// The corpus: `PEAPOD_TEST_CORPUS` if set, else the first of the VM's copy, the folder beside
/// the project and the workplace's shared folder that exists.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEAPOD_TEST_CORPUS") {
        return PathBuf::from(dir);
    }
    [
        IN_VM,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pod-corpus"),
        "/work/shared/pod-corpus",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_dir())
    .unwrap_or_else(|| {
        panic!("the pod corpus is missing: not at {IN_VM} (scripts/test copies it into the VM) nor beside the project")
    })
}

/// Every manifest (`.yaml`, `.yml`, `.json`) under `dir`, in path order.
pub fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
}
