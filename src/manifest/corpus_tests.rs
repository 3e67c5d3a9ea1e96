//! Every manifest of the shared pod corpus must decode or be refused as `not supported`.

use std::path::{Path, PathBuf};

use super::decode_pods;

fn corpus_dir() -> Option<PathBuf> {
    [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pod-corpus"),
        "/work/shared/pod-corpus",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_dir())
}

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            manifests(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn corpus_decodes_or_is_refused_as_not_supported() {
    let Some(dir) = corpus_dir() else {
        panic!("pod corpus not found next to the project or at /work/shared/pod-corpus");
    };
    let mut files = Vec::new();
    manifests(&dir, &mut files);
    files.sort();
    assert!(
        files.len() >= 48,
        "expected the 48 corpus manifests, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let mut accepted = 0;
    eprintln!("| manifest | result | why |\n|---|---|---|");
    for file in &files {
        let name = file
            .strip_prefix(&dir)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        match decode_pods(&text, &name) {
            Ok(pods) => {
                accepted += 1;
                eprintln!("| {name} | accepted | {} pod(s) |", pods.len());
            }
            Err(e) => {
                let why: Vec<String> = e
                    .problems()
                    .iter()
                    .map(|p| p.to_string().replace("document 1: ", ""))
                    .collect();
                eprintln!("| {name} | refused | {} |", why.join("; "));
                if !e.to_string().contains("not supported:") {
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
    }
    eprintln!("accepted {accepted} of {}", files.len());
    assert!(
        failures.is_empty(),
        "unexpected errors:\n{}",
        failures.join("\n")
    );
}

/// The downward API tutorial's pod runs now: its downwardAPI volume is implemented.
#[test]
fn corpus_downward_api_volume_is_accepted() {
    let Some(dir) = corpus_dir() else {
        panic!("pod corpus not found next to the project or at /work/shared/pod-corpus");
    };
    let file = dir.join("k8s-website/pods/inject/dapi-volume.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let pods = decode_pods(&text, "dapi-volume.yaml")
        .unwrap_or_else(|e| panic!("{} is refused: {e}", file.display()));
    let volumes = pods[0].spec.as_ref().and_then(|s| s.volumes.clone());
    assert!(volumes.is_some_and(|v| v[0].downward_api.is_some()));
}

#[test]
fn corpus_manifests_with_probes_and_hooks_are_accepted() {
    let Some(dir) = corpus_dir() else {
        panic!("pod corpus not found next to the project or at /work/shared/pod-corpus");
    };
    for name in [
        "k8s-website/pods/probe/exec-liveness.yaml",
        "k8s-website/pods/probe/http-liveness.yaml",
        "k8s-website/pods/probe/tcp-liveness-readiness.yaml",
        "k8s-website/pods/probe/pod-with-http-healthcheck.yaml",
        "k8s-website/pods/lifecycle-events.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let pods = decode_pods(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pods.len(), 1, "{name}");
    }
}
