//! Every manifest of the shared pod corpus runs, not only decodes: each is applied unchanged,
//! its pods get a sandbox with an IP and their containers start, and `delete` leaves nothing.
//! Runs only in the test VM (`scripts/test --vm-only --only vm_corpus`), which has no network.
//!
//! The VM cannot reach the registries the manifests name (Docker Hub, registry.k8s.io, quay.io,
//! gcr.io), so the test serves a registry of its own on loopback as their mirror
//! (`PEAPOD_REGISTRIES_CONFIG`), holding under every name the corpus uses a stand-in image: the
//! busybox test image plus one layer whose entrypoint `/standin` serves HTTP on ports 80 and
//! 8080 (busybox httpd, so the manifests' httpGet and tcpSocket probes find a server) and then
//! waits, and whose `stress` and `python` are the same script. As `stress --vm-bytes N`, it
//! allocates N bytes once a second (busybox `dd` with a block of that size). Every image is
//! pulled as the kubelet would (`:latest` and untagged ones always, the others if not present).
//!
//! What cannot work without the real image or the internet is stated per manifest
//! ([`EXPECTED`]); every other pod must reach Running (or Succeeded, for the ones that end).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::accounting::{self, Keep};
use common::vm_registry;
use common::*;
use sha2::{Digest, Sha256};

/// The test's own registry, the mirror of every registry the corpus names.
const MIRROR: &str = "127.0.0.1:5055";
/// The registries the corpus' images come from.
const MIRRORED: [&str; 4] = ["docker.io", "registry.k8s.io", "quay.io", "gcr.io"];
/// The stand-in's name in the store, before it is pushed under the corpus' names.
const STANDIN_NAME: &str = "localhost/peapod-corpus-standin:v1";
/// Pods applied at a time (the VM has 2 CPUs and 2 GiB).
const ROUND: usize = 16;
/// How long a round's pods get to show what they do (TCG is slow).
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// The stand-in program (see the module comment).
const STANDIN: &str = r#"#!/bin/sh
# peapod's corpus test: stands in for the program of an image the VM cannot pull.
case "$(basename "$0")" in
stress)
    bytes=""
    while [ $# -gt 0 ]; do [ "$1" = --vm-bytes ] && bytes=$2; shift; done
    if [ -n "$bytes" ]; then
        while :; do dd if=/dev/zero of=/dev/null bs="$bytes" count=1 2>/dev/null || exit 1; sleep 1; done
    fi ;;
esac
httpd -p 80 -h /www 2>/dev/null
httpd -p 8080 -h /www 2>/dev/null
exec sleep 2147483647
"#;

/// coreutils' `printenv NAME...` (which busybox-static lacks), for the debian examples: each
/// variable's value, exit status 1 if one is not set.
const PRINTENV: &str = r#"#!/bin/sh
rc=0
for name in "$@"; do
    if eval "[ -n \"\${$name+set}\" ]"; then eval "printf '%s\n' \"\$$name\""; else rc=1; fi
done
exit $rc
"#;

/// What a manifest's pods do here when it is not "Running, every container started"
/// (the manifest's path in the corpus, the pod's expected phase, why).
const EXPECTED: &[(&str, &str, &str)] = &[
    (
        "k8s-website/pods/commands.yaml",
        "Running",
        "printenv exits 1 and is restarted (OnFailure): KUBERNETES_PORT comes from the API \
         server's `kubernetes` service, which a node without an API server does not have",
    ),
    (
        "k8s-website/service/networking/hostaliases-pod.yaml",
        "Succeeded",
        "cat ends, restartPolicy Never",
    ),
    (
        "k8s-website/pods/init-containers.yaml",
        "Pending",
        "the init container's wget of info.cern.ch fails without internet and is retried",
    ),
    (
        "k8s-examples/_archived/javaweb-tomcat-sidecar/javaweb.yaml",
        "Pending",
        "the init container copies /sample.war, which only the real image has",
    ),
];

/// Containers that must have ended with a given reason, as the documentation shows them (the
/// manifest, the container, the terminated reason in its state or last state).
const ENDED_WITH: &[(&str, &str, &str)] = &[(
    "k8s-website/pods/resource/memory-request-limit-2.yaml",
    "memory-demo-2-ctr",
    "OOMKilled",
)];

/// One pod of a manifest: its namespace, name, and containers (init containers first).
struct CorpusPod {
    file: String,
    namespace: String,
    name: String,
    init: Vec<String>,
    app: Vec<String>,
}

/// The pods a manifest file holds, read with peapod's own decoder.
fn pods_of(file: &Path, relative: &str) -> Vec<CorpusPod> {
    let text = std::fs::read_to_string(file).expect("cannot read a corpus manifest");
    let pods = peapod::manifest::decode_pods(&text, relative)
        .unwrap_or_else(|e| panic!("{relative}: refused: {e}"));
    pods.into_iter()
        .map(|pod| {
            let spec = pod.spec.unwrap_or_default();
            let names = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<String> {
                cs.iter().map(|c| c.name.clone()).collect()
            };
            CorpusPod {
                file: relative.to_string(),
                namespace: pod.metadata.namespace.unwrap_or_else(|| "default".into()),
                name: pod.metadata.name.expect("a pod without a name"),
                init: names(spec.init_containers.as_deref().unwrap_or_default()),
                app: names(&spec.containers),
            }
        })
        .collect()
}

/// The images a manifest's containers name.
fn images_of(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).expect("cannot read a corpus manifest");
    let pods = peapod::manifest::decode_pods(&text, &file.display().to_string())
        .unwrap_or_else(|e| panic!("{}: refused: {e}", file.display()));
    pods.into_iter()
        .flat_map(|pod| {
            let spec = pod.spec.unwrap_or_default();
            spec.init_containers
                .unwrap_or_default()
                .into_iter()
                .chain(spec.containers)
                .filter_map(|c| c.image)
        })
        .collect()
}
/// The repository and tag an image reference has in its registry's mirror
/// (`nginx` -> `library/nginx:latest`, `registry.k8s.io/busybox:1.27.2` -> `busybox:1.27.2`).
fn mirror_path(image: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let registry = first.contains('.') || first.contains(':') || first == "localhost";
    let mut repo = if registry {
        rest.to_string()
    } else {
        image.to_string()
    };
    if !registry && !repo.contains('/') {
        repo = format!("library/{repo}");
    }
    let last = repo.rsplit('/').next().unwrap_or("");
    if !last.contains(':') {
        repo.push_str(":latest");
    }
    repo
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Stores `bytes` as a blob of the layout at `dir`; returns its descriptor's digest and size.
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("cannot write a blob");
    (format!("sha256:{hex}"), bytes.len())
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The stand-in layer: /standin, /usr/bin/{stress,python} linking to it, /www with a page and
/// a `healthz`.
fn standin_layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut file = |path: &str, mode: u32, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, body)
            .expect("cannot build the stand-in layer");
    };
    file("standin", 0o755, STANDIN.as_bytes());
    file("usr/bin/printenv", 0o755, PRINTENV.as_bytes());
    file("www/index.html", 0o644, b"peapod corpus stand-in\n");
    file("www/healthz", 0o644, b"ok\n");
    for name in ["stress", "python"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut h, format!("usr/bin/{name}"), "/standin")
            .expect("cannot build the stand-in layer");
    }
    tar.into_inner().expect("cannot build the stand-in layer")
}

/// An OCI layout at `dir`: the busybox test image plus the stand-in layer, its entrypoint
/// `/standin`.
fn build_standin(dir: &Path) {
    let base =
        PathBuf::from(std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_string()));
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    for blob in std::fs::read_dir(base.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(blob.path(), dir.join("blobs/sha256").join(blob.file_name())).unwrap();
    }
    std::fs::copy(base.join("oci-layout"), dir.join("oci-layout")).unwrap();
    let index = read_json(&base.join("index.json"));
    let top = index["manifests"][0]["digest"]
        .as_str()
        .expect("busybox layout without a manifest");
    let blob = |digest: &str| {
        base.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let mut manifest = read_json(&blob(top));
    let mut config = read_json(&blob(manifest["config"]["digest"].as_str().unwrap()));

    let layer = standin_layer();
    let (layer_digest, layer_size) = put_blob(dir, &layer);
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(layer_digest.clone().into());
    config["config"]["Entrypoint"] = serde_json::json!(["/standin"]);
    config["config"]["Cmd"] = serde_json::Value::Null;
    let (config_digest, config_size) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }));
    let (manifest_digest, manifest_size) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Records in the registry's filesystem storage (at `storage`) the pushed `from`
/// (`repo:tag`) under the name `to` too, as a push of the same image there would: the
/// repository's links to the blobs and the manifest, and the tag.
fn tag_in_storage(storage: &Path, from: &str, to: &str) {
    let repos = storage.join("docker/registry/v2/repositories");
    let split = |r: &str| {
        let (repo, tag) = r.rsplit_once(':').expect("a mirror path without a tag");
        (repos.join(repo), tag.to_string())
    };
    let ((from_repo, from_tag), (to_repo, to_tag)) = (split(from), split(to));
    for (src, dst) in [
        (from_repo.join("_layers"), to_repo.join("_layers")),
        (
            from_repo.join("_manifests/revisions"),
            to_repo.join("_manifests/revisions"),
        ),
        (
            from_repo.join("_manifests/tags").join(&from_tag),
            to_repo.join("_manifests/tags").join(&to_tag),
        ),
    ] {
        if src == dst {
            continue; // another tag of the same repository: only the tag is new
        }
        std::fs::create_dir_all(&dst).unwrap();
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(src.join("."))
            .arg(&dst)
            .status()
            .expect("cannot run cp");
        assert!(
            ok.success(),
            "cannot copy {} to {}",
            src.display(),
            dst.display()
        );
    }
}

/// Every pod on the node as JSON by (namespace, name): one `peapod get pods -A -o json` for
/// a whole round (a CLI run costs the VM about 0.4 s of CPU; one a pod per poll was most of
/// the test's time).
fn all_pods() -> BTreeMap<(String, String), serde_json::Value> {
    let out = peapod(&["get", "pods", "-A", "-o", "json"]);
    let list: serde_json::Value = if out.status.success() {
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    let items = match list["kind"].as_str() {
        Some("Pod") => vec![list.clone()],
        _ => list["items"].as_array().cloned().unwrap_or_default(),
    };
    items
        .into_iter()
        .map(|pod| {
            let meta = &pod["metadata"];
            let key = (
                meta["namespace"].as_str().unwrap_or("default").to_string(),
                meta["name"].as_str().unwrap_or("").to_string(),
            );
            (key, pod)
        })
        .collect()
}

/// Whether a container status shows its process ran: running now, or ended (now or before)
/// after it started. A StartError never ran.
fn ran(status: &serde_json::Value) -> bool {
    let ended = |t: &serde_json::Value| {
        t.is_object()
            && t["reason"] != "StartError"
            && t["startedAt"].as_str().is_some_and(|s| !s.is_empty())
    };
    status["state"]["running"].is_object()
        || ended(&status["state"]["terminated"])
        || ended(&status["lastState"]["terminated"])
}

/// The waiting reasons that say a container could not be made at all.
const FAILED_TO_MAKE: [&str; 7] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "RunContainerError",
];

/// Why the pod (`v`: as listed, if it is) is not (yet) what the corpus expects of it, or None
/// once it is.
fn not_yet(pod: &CorpusPod, v: Option<&serde_json::Value>, want_phase: &str) -> Option<String> {
    let Some(v) = v else {
        return Some("not listed".into());
    };
    let status = &v["status"];
    let phase = status["phase"].as_str().unwrap_or("");
    let statuses = |key: &str| status[key].as_array().cloned().unwrap_or_default();
    let (init, app) = (
        statuses("initContainerStatuses"),
        statuses("containerStatuses"),
    );
    for c in init.iter().chain(&app) {
        let reason = c["state"]["waiting"]["reason"].as_str().unwrap_or("");
        if FAILED_TO_MAKE.contains(&reason) || c["state"]["terminated"]["reason"] == "StartError" {
            return Some(format!("FAILED container {}: {}", c["name"], c["state"]));
        }
    }
    if phase != want_phase {
        return Some(format!("phase {phase:?}"));
    }
    if status["podIP"].as_str().unwrap_or("").is_empty() && v["spec"]["hostNetwork"] != true {
        return Some("no pod IP".into());
    }
    let ran_named =
        |list: &[serde_json::Value], name: &str| list.iter().any(|c| c["name"] == name && ran(c));
    if want_phase == "Pending" {
        // The first init container ran (and keeps failing for the reason given).
        let first = pod
            .init
            .first()
            .expect("a Pending expectation without init containers");
        return (!ran_named(&init, first)).then(|| format!("init container {first} has not run"));
    }
    for (_, name, reason) in ENDED_WITH.iter().filter(|e| e.0 == pod.file) {
        let seen = app.iter().chain(&init).any(|c| {
            c["name"] == *name
                && (c["state"]["terminated"]["reason"] == *reason
                    || c["lastState"]["terminated"]["reason"] == *reason)
        });
        if !seen {
            return Some(format!("container {name} has not ended with {reason}"));
        }
    }
    let missing: Vec<&String> = pod
        .init
        .iter()
        .filter(|n| !ran_named(&init, n))
        .chain(pod.app.iter().filter(|n| !ran_named(&app, n)))
        .collect();
    (!missing.is_empty()).then(|| format!("containers not run: {missing:?}"))
}

/// Splits the pods into rounds of at most [`ROUND`] with no (namespace, name) twice in one.
fn rounds(pods: Vec<CorpusPod>) -> Vec<Vec<CorpusPod>> {
    let mut rounds: Vec<Vec<CorpusPod>> = Vec::new();
    for pod in pods {
        let slot = rounds.iter().position(|r| {
            r.len() < ROUND
                && !r
                    .iter()
                    .any(|p| p.namespace == pod.namespace && p.name == pod.name)
        });
        match slot {
            Some(k) => rounds[k].push(pod),
            None => rounds.push(vec![pod]),
        }
    }
    rounds
}

#[test]
#[ignore = "privileged: runs in the test VM (scripts/test)"]
fn every_corpus_manifest_runs() {
    require_vm();
    let corpus = common::corpus::dir();
    let files = common::corpus::manifests(&corpus);
    assert!(
        files.len() >= 48,
        "the corpus has {} manifests, expected 48",
        files.len()
    );

    // The stand-in, pushed to the mirror under every name the corpus uses.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("standin");
    build_standin(&layout);
    let mut registry = vm_registry::serve_storage(
        MIRROR,
        &work.path().join("registry"),
        &work.path().join("registry/storage"),
        "",
    );
    peapod_ok(&["load", layout.to_str().unwrap(), "--name", STANDIN_NAME]);
    let images: BTreeSet<String> = files.iter().flat_map(|f| images_of(f)).collect();
    // Pushed once; every other name is a copy of that push's links in the registry's storage
    // (a CLI run costs the VM about 0.4 s of CPU, a push more: the names are many).
    let storage = work.path().join("registry/storage");
    let mut paths = images.iter().map(|i| mirror_path(i));
    let first = paths.next().expect("the corpus names no image");
    peapod_ok(&["push", STANDIN_NAME, &format!("{MIRROR}/{first}")]);
    for path in paths {
        tag_in_storage(&storage, &first, &path);
    }
    let config = work.path().join("registries.toml");
    let mirrors: String = MIRRORED
        .iter()
        .map(|r| format!("[registries.\"{r}\"]\nmirrors = [\"http://{MIRROR}\"]\n\n"))
        .collect();
    std::fs::write(&config, mirrors).unwrap();
    let env = [("PEAPOD_REGISTRIES_CONFIG", config.clone())];

    let expected: BTreeMap<&str, (&str, &str)> = EXPECTED
        .iter()
        .map(|(f, p, why)| (*f, (*p, *why)))
        .collect();
    let mut pods = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&corpus)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        pods.extend(pods_of(file, &relative));
    }
    let keep = Keep::pods(&[]);
    let mut failures = Vec::new();
    for round in rounds(pods) {
        let started = std::time::Instant::now();
        // One `apply` of the round's files (a CLI run costs the VM about 0.4 s of CPU).
        let files: BTreeSet<&str> = round.iter().map(|p| p.file.as_str()).collect();
        let paths: Vec<String> = files
            .iter()
            .map(|f| corpus.join(f).to_str().unwrap().to_string())
            .collect();
        let mut args = vec!["apply"];
        for path in &paths {
            args.extend(["-f", path.as_str()]);
        }
        let out = peapod_env(&args, &env);
        assert!(
            out.status.success(),
            "apply refused one of {files:?}: {}",
            stderr(&out)
        );
        let want = |p: &CorpusPod| expected.get(p.file.as_str()).map_or("Running", |e| e.0);
        // A pod counts once it has been what is expected (ml-worker, for one, restarts all
        // its containers after a minute and is Pending meanwhile).
        let mut done = vec![false; round.len()];
        let mut last = vec![String::new(); round.len()];
        wait_for(
            || {
                let listed = all_pods();
                for (k, p) in round.iter().enumerate() {
                    if !done[k] {
                        let v = listed.get(&(p.namespace.clone(), p.name.clone()));
                        match not_yet(p, v, want(p)) {
                            None => done[k] = true,
                            Some(why) => last[k] = why,
                        }
                    }
                }
                let all = done.iter().all(|d| *d);
                if !all {
                    // A poll a second: the pods take seconds to start under TCG.
                    std::thread::sleep(Duration::from_millis(750));
                }
                all
            },
            ROUND_TIMEOUT,
        );
        for (k, p) in round.iter().enumerate() {
            if !done[k] {
                let also = expected
                    .get(p.file.as_str())
                    .map_or(String::new(), |e| format!(" (expected: {})", e.1));
                failures.push(format!(
                    "{} pod {}/{}: {}{also}",
                    p.file, p.namespace, p.name, last[k]
                ));
            }
        }
        let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &round {
            by_namespace.entry(&p.namespace).or_default().push(&p.name);
        }
        for (ns, names) in by_namespace {
            let mut args = vec!["delete", "pods", "-n", ns, "--grace-period=0", "--force"];
            args.extend(&names);
            let out = peapod(&args);
            assert!(
                out.status.success(),
                "delete of {names:?} in {ns} failed: {}",
                stderr(&out)
            );
        }
        eprintln!("round of {} pods: {:.1?}", round.len(), started.elapsed());
    }
    let _ = registry.kill();
    let _ = registry.wait();
    assert!(
        failures.is_empty(),
        "corpus pods that did not run:\n{}",
        failures.join("\n")
    );
    // The other lanes' CLI commands (`peapod apply`, `get`...) may be running meanwhile: the
    // residue leaves them out by the state directory their environment names.
    assert!(
        wait_for(
            || accounting::residue(&keep).is_empty(),
            Duration::from_secs(5)
        ),
        "after deleting the corpus pods, left behind:\n  {}",
        accounting::residue(&keep).join("\n  ")
    );
}
