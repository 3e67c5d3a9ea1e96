//! `peapod pull` against a real registry (Debian's docker-registry on loopback), on the host.
//!
//! Each test starts its own registry, pushes fixture images built by
//! `scripts/build-test-images`, pulls them with the peapod binary into a throwaway store and
//! checks what a user would see: the image ID printed, the name in the store, the unpacked
//! layers, and after a failure the error message, exit code 1 and a store with nothing partial.
//! The tools come from `scripts/deps`; a missing one fails the test saying so.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::pull::{expect_failure, image_id_of, is_whiteout, names, xattr, Peapod};
use common::registry::{
    file_digest, layout, layout_json, layout_top_digest, mirrors_toml, Registry,
};

/// The image ID (config digest) and diff_ids of a single-manifest fixture.
fn fixture_image(name: &str) -> (String, Vec<String>) {
    let (path, _) = layout(name);
    manifest_image(&path, &layout_top_digest(&path))
}

fn manifest_image(layout: &Path, manifest_digest: &str) -> (String, Vec<String>) {
    let manifest = layout_json(layout, manifest_digest);
    let id = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config = layout_json(layout, &id);
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    (id, diff_ids)
}

fn layer_digests(name: &str) -> Vec<String> {
    let (path, _) = layout(name);
    let manifest = layout_json(&path, &layout_top_digest(&path));
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str().map(str::to_string))
        .collect()
}

fn normalized(reference: &str) -> String {
    peapod::image::normalize_reference(reference)
        .unwrap_or_else(|e| panic!("test reference {reference} is invalid: {e}"))
}

/// Panics unless every layer of `diff_ids` is unpacked.
fn assert_unpacked(peapod: &Peapod, diff_ids: &[String]) {
    for d in diff_ids {
        assert!(
            peapod.layer_dir(d).is_dir(),
            "layer {d} is not unpacked in {}",
            peapod.layers_dir().display()
        );
    }
}

#[test]
fn pull_by_tag_names_the_image_and_unpacks_it() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let peapod = Peapod::new();
    let reference = format!("{}/test/busybox:latest", reg.host());

    let id = peapod.pull_ok(&reference);
    let (want_id, diff_ids) = fixture_image("busybox");
    assert_eq!(id, want_id, "image ID of {reference}");
    assert_eq!(peapod.index_names(), vec![reference.clone()]);
    assert_unpacked(&peapod, &diff_ids);
    assert!(peapod.layer_dir(&diff_ids[0]).join("bin/busybox").is_file());
    for digest in layer_digests("busybox").iter().chain([&want_id]) {
        assert!(
            peapod.blob_path(digest).is_file(),
            "blob {digest} missing from the store"
        );
    }
    peapod.assert_no_partial("after a pull");

    // Pulling again finds everything local and changes nothing.
    let blobs = peapod.blobs();
    assert_eq!(peapod.pull_ok(&reference), want_id);
    assert_eq!(peapod.blobs(), blobs);
    assert_eq!(peapod.index_names(), vec![reference]);
}

#[test]
fn pull_by_digest_and_by_tag_at_digest() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let (path, _) = layout("busybox");
    let digest = layout_top_digest(&path);
    let (want_id, _) = fixture_image("busybox");

    for reference in [
        format!("{}/test/busybox@{digest}", reg.host()),
        format!("{}/test/busybox:latest@{digest}", reg.host()),
    ] {
        let peapod = Peapod::new();
        assert_eq!(
            peapod.pull_ok(&reference),
            want_id,
            "image ID of {reference}"
        );
        assert_eq!(peapod.index_names(), vec![normalized(&reference)]);
        peapod.assert_no_partial(&reference);
    }
}

#[test]
fn docker_hub_names_resolve_through_a_mirror() {
    let reg = Registry::start();
    reg.push("busybox", "library/busybox:latest");
    let peapod = Peapod::new();
    peapod.set_registries(&mirrors_toml(
        &["docker.io"],
        &format!("http://{}", reg.host()),
    ));
    let (want_id, _) = fixture_image("busybox");

    for reference in [
        "busybox",
        "library/busybox:latest",
        "docker.io/library/busybox",
    ] {
        assert_eq!(
            peapod.pull_ok(reference),
            want_id,
            "image ID of {reference}"
        );
    }
    assert_eq!(
        peapod.index_names(),
        vec!["docker.io/library/busybox:latest".to_string()]
    );
    peapod.assert_no_partial("after mirror pulls");
}

#[test]
fn a_dead_mirror_is_skipped_for_the_next_one() {
    let reg = Registry::start();
    reg.push("busybox", "library/busybox:latest");
    // A port nothing listens on: bound, then released.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port");
    let peapod = Peapod::new();
    peapod.set_registries(&format!(
        "[registries.\"docker.io\"]\nmirrors = [\"http://127.0.0.1:{dead}\", \"http://{}\"]\n",
        reg.host()
    ));
    let (want_id, _) = fixture_image("busybox");
    assert_eq!(peapod.pull_ok("busybox"), want_id);
}

#[test]
fn a_mirror_without_the_image_fails_naming_the_endpoints() {
    let reg = Registry::start();
    let peapod = Peapod::new();
    peapod.set_registries(&mirrors_toml(
        &["docker.io"],
        &format!("http://{}", reg.host()),
    ));
    let out = peapod.pull("busybox:1.36");
    let err = expect_failure("pulling an image no endpoint has", &out);
    assert!(
        err.contains("docker.io/library/busybox:1.36"),
        "error does not name the reference: {err}"
    );
    assert!(
        err.contains(&reg.host()),
        "error does not name the mirror {}: {err}",
        reg.host()
    );
    peapod.assert_nothing_stored("after a failed mirror pull");
}

/// The tree an overlay mount of `layers` (bottom first) would show, as path -> kind:
/// `dir`, `file:<content>`, `link:<target>`. Whiteouts and opaque dirs are applied as overlayfs does.
fn stacked(layers: &[PathBuf]) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::new();
    for layer in layers {
        walk(layer, layer, &mut tree);
    }
    tree
}

fn walk(root: &Path, dir: &Path, tree: &mut BTreeMap<String, String>) {
    for name in names(dir) {
        let path = dir.join(&name);
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let below = format!("{rel}/");
        let meta =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if is_whiteout(&path) {
            tree.retain(|p, _| p != &rel && !p.starts_with(&below));
        } else if meta.is_dir() {
            if xattr(&path, "trusted.overlay.opaque").as_deref() == Some(b"y") {
                tree.retain(|p, _| !p.starts_with(&below));
            }
            tree.insert(rel, "dir".into());
            walk(root, &path, tree);
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap_or_default();
            tree.insert(rel, format!("link:{}", target.display()));
        } else {
            tree.insert(
                rel,
                format!("file:{}", fs::read_to_string(&path).unwrap_or_default()),
            );
        }
    }
}

#[test]
fn multilayer_whiteouts_and_opaque_dirs_become_overlay_markers() {
    let reg = Registry::start();
    reg.push("multilayer", "test/multilayer:v1");
    let peapod = Peapod::new();
    let (want_id, diff_ids) = fixture_image("multilayer");
    assert_eq!(
        diff_ids.len(),
        4,
        "the multilayer fixture has busybox + 3 layers"
    );
    assert_eq!(
        peapod.pull_ok(&format!("{}/test/multilayer:v1", reg.host())),
        want_id
    );
    assert_unpacked(&peapod, &diff_ids);

    // Layer 3 deletes /data/a and /etc/gone and makes /data/dir opaque.
    let l3 = peapod.layer_dir(&diff_ids[2]);
    for gone in ["data/a", "etc/gone"] {
        assert!(
            is_whiteout(&l3.join(gone)),
            "{gone} in layer 3 is not a 0/0 char device whiteout"
        );
    }
    assert_eq!(
        xattr(&l3.join("data/dir"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..]),
        "data/dir in layer 3 lacks trusted.overlay.opaque=y"
    );
    let layers: Vec<PathBuf> = diff_ids.iter().map(|d| peapod.layer_dir(d)).collect();
    for l in &layers {
        let marker_names: Vec<String> = stacked(std::slice::from_ref(l))
            .into_keys()
            .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(".wh.")))
            .collect();
        assert!(
            marker_names.is_empty(),
            "OCI whiteout files left in {}: {marker_names:?}",
            l.display()
        );
    }

    let tree = stacked(&layers);
    let data: BTreeMap<&str, &str> = tree
        .iter()
        .filter(|(p, _)| p.starts_with("data") || *p == "fixture" || *p == "etc/gone")
        .map(|(p, k)| (p.as_str(), k.as_str()))
        .collect();
    let want: BTreeMap<&str, &str> = [
        ("data", "dir"),
        ("data/b", "file:b\n"),
        ("data/dir", "dir"),
        ("data/dir/new", "file:new\n"),
        ("data/keep", "dir"),
        ("data/keep/x", "file:x\n"),
        ("data/late", "file:late\n"),
        ("fixture", "file:multilayer\n"),
    ]
    .into_iter()
    .collect();
    assert_eq!(data, want, "the stacked multilayer tree");
    assert!(
        tree.get("bin/busybox")
            .is_some_and(|k| k.starts_with("file:")),
        "busybox missing from the stacked tree"
    );
}

#[test]
fn a_multi_arch_index_resolves_to_linux_amd64() {
    let reg = Registry::start();
    reg.push("multiarch", "test/multiarch:latest");
    let (path, _) = layout("multiarch");
    let index = layout_json(&path, &layout_top_digest(&path));
    let amd64 = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .and_then(|m| m["digest"].as_str())
        .expect("the multiarch fixture has an amd64 entry")
        .to_string();
    let (want_id, diff_ids) = manifest_image(&path, &amd64);
    assert_eq!(layout_json(&path, &want_id)["architecture"], "amd64");

    let peapod = Peapod::new();
    let id = peapod.pull_ok(&format!("{}/test/multiarch:latest", reg.host()));
    assert_eq!(
        id, want_id,
        "the amd64 image's ID (other platforms come first in the index)"
    );
    assert_unpacked(&peapod, &diff_ids);
    for dir in names(&peapod.layers_dir())
        .iter()
        .filter(|n| !n.starts_with('.'))
    {
        let marker = peapod.layers_dir().join(dir).join("fixture");
        assert!(
            !marker.exists(),
            "a layer of another platform was unpacked: {}",
            fs::read_to_string(&marker).unwrap_or_default()
        );
    }
    peapod.assert_no_partial("after a multi-arch pull");
}

/// Pulls a busybox + marker fixture and checks both layers unpacked.
fn pull_marker_image(name: &str, raw: bool) {
    let reg = Registry::start();
    if raw {
        reg.push_raw(name, &format!("test/{name}:latest"));
    } else {
        reg.push(name, &format!("test/{name}:latest"));
    }
    let (want_id, diff_ids) = fixture_image(name);
    let peapod = Peapod::new();
    assert_eq!(
        peapod.pull_ok(&format!("{}/test/{name}:latest", reg.host())),
        want_id
    );
    assert_unpacked(&peapod, &diff_ids);
    assert!(peapod.layer_dir(&diff_ids[0]).join("bin/busybox").is_file());
    let marker = peapod.layer_dir(&diff_ids[1]).join("fixture");
    assert_eq!(
        fs::read_to_string(&marker).unwrap_or_default(),
        format!("{name}\n")
    );
    peapod.assert_no_partial(name);
}

#[test]
fn zstd_layers() {
    pull_marker_image("zstd", false);
}

#[test]
fn uncompressed_layers() {
    // Raw push: skopeo would gzip the layers on the way.
    pull_marker_image("uncompressed", true);
}

#[test]
fn a_missing_tag_fails_with_manifest_unknown() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let peapod = Peapod::new();
    for reference in [
        format!("{}/test/busybox:nope", reg.host()),
        format!("{}/test/nothing:latest", reg.host()),
    ] {
        let err = expect_failure(&format!("pulling {reference}"), &peapod.pull(&reference));
        assert!(
            err.contains(&reference),
            "error does not name {reference}: {err}"
        );
        let lower = err.to_lowercase();
        assert!(
            lower.contains("manifest unknown")
                || lower.contains("404")
                || lower.contains("not found"),
            "error does not say the manifest is unknown: {err}"
        );
    }
    peapod.assert_nothing_stored("after missing tags");
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_lands() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let layer = layer_digests("busybox")[0].clone();
    let (_, diff_ids) = fixture_image("busybox");
    reg.corrupt_blob(&layer);
    let peapod = Peapod::new();
    let reference = format!("{}/test/busybox:latest", reg.host());

    let started = std::time::Instant::now();
    let err = expect_failure("pulling a corrupt blob", &peapod.pull(&reference));
    assert!(
        err.contains(&layer),
        "error does not name the corrupt blob {layer}: {err}"
    );
    assert!(
        err.contains(&reference),
        "error does not name {reference}: {err}"
    );
    // A digest mismatch is permanent: no retry back-off (0.5 + 1 + 2 s).
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "a digest mismatch was retried: {:?}",
        started.elapsed()
    );
    peapod.assert_nothing_stored("after a corrupt blob");
    assert!(
        !peapod.blob_path(&layer).exists(),
        "the corrupt blob landed in the store"
    );
    assert!(
        !peapod.layer_dir(&diff_ids[0]).exists(),
        "the corrupt layer was unpacked"
    );
}

#[test]
fn a_registry_that_dies_mid_pull_leaves_nothing_and_a_retry_works() {
    use common::proxy::CutProxy;
    let reg = Registry::start();
    reg.push_raw("big", "test/big:latest");
    let (want_id, diff_ids) = fixture_image("big");
    let big_layer = layer_digests("big")[1].clone();
    // 4 MiB into a 24 MiB layer every connection is cut and the port refuses from then on.
    let mut proxy = CutProxy::start(reg.port, 0, Some(4 << 20));
    let port = proxy.port();
    let reference = format!("127.0.0.1:{port}/test/big:latest");
    let peapod = Peapod::new();

    let err = expect_failure(
        "pulling from a registry that dies",
        &peapod.pull(&reference),
    );
    assert!(
        proxy.has_cut(),
        "the proxy never cut the transfer: the test proves nothing"
    );
    assert!(
        err.contains(&reference),
        "error does not name {reference}: {err}"
    );
    peapod.assert_nothing_stored("after a registry died mid-pull");
    assert!(
        !peapod.blob_path(&big_layer).exists(),
        "the cut layer landed in the store"
    );
    assert!(
        !peapod.layer_dir(&diff_ids[1]).exists(),
        "the cut layer was unpacked"
    );

    // The registry comes back on the same port: the same pull now works.
    proxy.stop();
    let _proxy = CutProxy::start(reg.port, port, None);
    assert_eq!(peapod.pull_ok(&reference), want_id);
    let random = peapod.layer_dir(&diff_ids[1]).join("random.bin");
    let want = file_digest(&extract_random_bin());
    assert_eq!(
        file_digest(&random),
        want,
        "random.bin differs from the fixture after the re-pull"
    );
    peapod.assert_no_partial("after the re-pull");
}

/// The fixture's random.bin, extracted from the big image's plain tar layer with tar(1).
fn extract_random_bin() -> PathBuf {
    static OUT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = OUT.get_or_init(|| tempfile::tempdir().expect("cannot create a temporary directory"));
    let (path, _) = layout("big");
    let blob = path
        .join("blobs/sha256")
        .join(layer_digests("big")[1].trim_start_matches("sha256:"));
    common::registry::run_ok(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&blob)
            .arg("-C")
            .arg(dir.path())
            .arg("./random.bin"),
    );
    dir.path().join("random.bin")
}

#[test]
fn a_stopped_registry_fails_the_pull_and_a_restarted_one_serves_it() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let reference = format!("{}/test/busybox:latest", reg.host());
    let peapod = Peapod::new();
    reg.stop();
    let err = expect_failure("pulling from a stopped registry", &peapod.pull(&reference));
    assert!(
        err.contains(&reference),
        "error does not name {reference}: {err}"
    );
    assert!(
        err.contains(&reg.host()),
        "error does not name the host {}: {err}",
        reg.host()
    );
    peapod.assert_nothing_stored("after a pull from a stopped registry");
    reg.restart();
    let (want_id, _) = fixture_image("busybox");
    assert_eq!(peapod.pull_ok(&reference), want_id);
}

#[test]
fn two_concurrent_pulls_share_a_consistent_store() {
    let reg = Registry::start();
    reg.push_raw("big", "test/big:latest");
    reg.push("multilayer", "test/multilayer:latest");
    let peapod = Peapod::new();
    for name in ["big", "multilayer"] {
        let reference = format!("{}/test/{name}:latest", reg.host());
        let children = [peapod.spawn_pull(&reference), peapod.spawn_pull(&reference)];
        let (want_id, _) = fixture_image(name);
        for child in children {
            let out = child
                .wait_with_output()
                .expect("cannot wait for peapod pull");
            common::pull::log_output(&["pull", &reference], &out);
            assert_eq!(image_id_of(&reference, &out), want_id);
        }
    }
    let want_names: Vec<String> = ["big", "multilayer"]
        .iter()
        .map(|n| format!("{}/test/{n}:latest", reg.host()))
        .collect();
    let mut got = peapod.index_names();
    got.sort();
    assert_eq!(got, want_names, "index.json after concurrent pulls");
    peapod.assert_no_partial("after concurrent pulls");

    let mut want_layers: Vec<String> = ["big", "multilayer"]
        .iter()
        .flat_map(|n| fixture_image(n).1)
        .map(|d| d.trim_start_matches("sha256:").to_string())
        .collect();
    want_layers.sort();
    want_layers.dedup();
    let got_layers: Vec<String> = names(&peapod.layers_dir())
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(
        got_layers, want_layers,
        "unpacked layer dirs after concurrent pulls"
    );
}
