//! `peapod pull` against a real registry (Debian's docker-registry on loopback), on the host:
//! the ways a pull succeeds.
//!
//! Each test starts its own registry, pushes fixture images built by
//! `scripts/build-test-images`, pulls them with the peapod binary into a throwaway store and
//! checks what a user would see: the image ID printed, the name in the store, the unpacked
//! layers. Failures are in registry_pull_failures.rs. The tools come from `scripts/deps`; a
//! missing one fails the test saying so.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::pull::{assert_unpacked, image_id_of, is_whiteout, names, xattr, Peapod};
use common::registry::{
    fixture_image, layer_digests, layout, layout_json, layout_top_digest, manifest_image,
    mirrors_toml, normalized, Registry,
};

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

    // Pulling again finds everything local, downloads no blob and changes nothing.
    let layer = &layer_digests("busybox")[0];
    assert_eq!(
        reg.blob_gets(layer),
        1,
        "downloads of {layer} by the first pull"
    );
    let blobs = peapod.blobs();
    assert_eq!(peapod.pull_ok(&reference), want_id);
    assert_eq!(peapod.blobs(), blobs);
    assert_eq!(peapod.index_names(), vec![reference]);
    assert_eq!(
        reg.blob_gets(layer),
        1,
        "the second pull downloaded {layer} again"
    );
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

    // Two processes share one download: every layer came over the wire once (busybox's layer,
    // common to both images, too).
    let mut layers: Vec<String> = ["big", "multilayer"]
        .iter()
        .flat_map(|n| layer_digests(n))
        .collect();
    layers.sort();
    layers.dedup();
    for digest in layers {
        assert_eq!(
            reg.blob_gets(&digest),
            1,
            "downloads of layer {digest} by two concurrent pulls"
        );
    }
}

#[test]
fn docker_schema2_manifests_and_manifest_lists() {
    let reg = Registry::start();
    reg.push_docker_format("busybox", "docker/busybox:latest");
    reg.push_docker_format("multiarch", "docker/multiarch:latest");
    let manifest = reg.manifest("docker/busybox", "latest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let list = reg.manifest("docker/multiarch", "latest");
    assert_eq!(
        list["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let amd64 = list["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .and_then(|m| m["digest"].as_str())
        .expect("the manifest list has an amd64 entry")
        .to_string();
    let amd64_config = reg.manifest("docker/multiarch", &amd64)["config"]["digest"].clone();

    let peapod = Peapod::new();
    let id = peapod.pull_ok(&format!("{}/docker/busybox:latest", reg.host()));
    assert_eq!(
        id,
        manifest["config"]["digest"].as_str().unwrap_or_default()
    );
    let id = peapod.pull_ok(&format!("{}/docker/multiarch:latest", reg.host()));
    assert_eq!(
        id,
        amd64_config.as_str().unwrap_or_default(),
        "the amd64 image of the list"
    );
    peapod.assert_no_partial("after Docker-format pulls");
}
