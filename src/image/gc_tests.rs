//! Unit tests for `remove` and `prune`: stores filled with `load` from layouts built here.

use super::*;
use crate::image::unpack::tests::{file, gzip, sha, tar_of};
use crate::image::REF_NAME_ANNOTATION;
use crate::store::Paths;
use serde_json::{json, Value};
use std::fs::File;
use std::path::PathBuf;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const GZ_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn put(layout: &Path, data: &[u8]) -> Value {
    let d = sha(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.trim_start_matches("sha256:")), data).unwrap();
    json!({"digest": d, "size": data.len()})
}

fn desc(mt: &str, blob: &Value) -> Value {
    json!({"mediaType": mt, "digest": blob["digest"], "size": blob["size"]})
}

/// A gzip layer holding one file; returns (descriptor, diff_id).
fn layer(layout: &Path, path: &str, content: &[u8]) -> (Value, String) {
    let raw = tar_of(&[file(path, content, 0o644)]);
    (desc(GZ_LAYER, &put(layout, &gzip(&raw))), sha(&raw))
}

/// An image of `layers`; returns its manifest descriptor.
fn image(layout: &Path, layers: &[&(Value, String)], tag: &str) -> Value {
    let config = json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Labels": {"tag": tag}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.1).collect::<Vec<_>>()},
    });
    let config = put(layout, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| &l.0).collect::<Vec<_>>(),
    });
    desc(MANIFEST, &put(layout, manifest.to_string().as_bytes()))
}

fn named(mut d: Value, name: &str) -> Value {
    d["annotations"] = json!({REF_NAME_ANNOTATION: name});
    d
}

fn write_index(layout: &Path, manifests: Vec<Value>) {
    fs::write(layout.join("oci-layout"), OCI).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
}
const OCI: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

struct Fixture {
    _tmp: tempfile::TempDir,
    paths: Paths,
    store: ImageStore,
    /// diff_id hex of the shared base layer, of app:1's own layer, of app:2's own layer.
    base: String,
    one: String,
    two: String,
}

/// A store holding `app:1` (base + one) and `app:2` (base + two), and `alias:1` = `app:1`.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let base = layer(&src, "base", b"base layer");
    let one = layer(&src, "one", b"only in app 1");
    let two = layer(&src, "two", b"only in app 2");
    let m1 = image(&src, &[&base, &one], "1");
    let m2 = image(&src, &[&base, &two], "2");
    write_index(
        &src,
        vec![
            named(m1.clone(), "app:1"),
            named(m2, "app:2"),
            named(m1, "alias:1"),
        ],
    );
    let paths = Paths::under(&tmp.path().join("root"));
    let store = ImageStore::open(&paths).unwrap();
    store.load(&src, None).unwrap();
    let hex = |l: &(Value, String)| l.1.trim_start_matches("sha256:").to_string();
    Fixture {
        base: hex(&base),
        one: hex(&one),
        two: hex(&two),
        _tmp: tmp,
        paths,
        store,
    }
}

fn names(s: &ImageStore) -> Vec<String> {
    s.list().unwrap().into_iter().map(|i| i.reference).collect()
}

fn unused(_: &RemovalCheck) -> Vec<String> {
    Vec::new()
}

fn blob_count(s: &ImageStore) -> usize {
    fs::read_dir(s.root().join("blobs/sha256")).unwrap().count()
}

fn layer_dir(f: &Fixture, hex: &str) -> PathBuf {
    f.paths.layers().join(hex)
}

#[test]
fn rmi_untags_then_deletes_the_last_name() {
    let f = fixture();
    let id = f.store.list().unwrap()[0].id.clone();
    let r = f.store.remove("app:1", false, &unused).unwrap();
    assert_eq!(r.untagged, ["docker.io/library/app:1"]);
    assert!(r.deleted.is_empty(), "alias:1 still names the image");
    let r = f
        .store
        .remove("docker.io/library/alias:1", false, &unused)
        .unwrap();
    assert_eq!(r.untagged, ["docker.io/library/alias:1"]);
    assert_eq!(r.deleted, [id]);
    assert_eq!(names(&f.store), ["docker.io/library/app:2"]);
    let err = f.store.remove("app:1", false, &unused).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("app:1"));
}

#[test]
fn rmi_by_id_across_repositories_needs_force() {
    let f = fixture();
    let id = f.store.resolve("app:1").unwrap().id;
    let short = &id["sha256:".len()..][..12];
    let err = f.store.remove(short, false, &unused).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::ManyNames { .. }), "{msg}");
    assert!(msg.contains("app:1") && msg.contains("alias:1") && msg.contains("--force"));
    assert_eq!(names(&f.store).len(), 3, "nothing removed");
    let r = f.store.remove(short, true, &unused).unwrap();
    assert_eq!(r.untagged.len(), 2);
    assert_eq!(r.deleted, [id]);
    assert_eq!(names(&f.store), ["docker.io/library/app:2"]);
}

#[test]
fn rmi_by_digest_and_ambiguous_prefix() {
    let f = fixture();
    let app2 = f.store.resolve("app:2").unwrap();
    let r = f
        .store
        .remove(&format!("app@{}", app2.manifest_digest), false, &unused)
        .unwrap();
    assert_eq!(r.untagged, ["docker.io/library/app:2"]);
    assert!(matches!(
        f.store.remove("zzzz", false, &unused).unwrap_err(),
        ImageError::NotFound { .. }
    ));
}

#[test]
fn rmi_refuses_an_image_a_pod_uses_unless_forced() {
    let f = fixture();
    let seen = std::cell::RefCell::new(Vec::new());
    let in_use = |c: &RemovalCheck| {
        seen.borrow_mut()
            .push((c.image.reference.clone(), c.deletes_image));
        if c.image.reference == "docker.io/library/app:2" {
            vec!["default/web".to_string(), "default/db".to_string()]
        } else {
            Vec::new()
        }
    };
    let err = f.store.remove("app:2", false, &in_use).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::InUse { .. }), "{msg}");
    assert!(
        msg.contains("\"docker.io/library/app:2\"")
            && msg.contains("pods default/web, default/db")
            && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(names(&f.store).len(), 3, "nothing removed");
    assert_eq!(
        seen.borrow().as_slice(),
        [("docker.io/library/app:2".to_string(), true)]
    );
    f.store.remove("alias:1", false, &in_use).unwrap();
    assert_eq!(
        seen.borrow()[1],
        ("docker.io/library/alias:1".into(), false)
    );
    let r = f.store.remove("app:2", true, &in_use).unwrap();
    assert_eq!(r.untagged, ["docker.io/library/app:2"]);
}

#[test]
fn prune_deletes_what_no_image_reaches_and_keeps_the_rest() {
    let f = fixture();
    let before = blob_count(&f.store);
    assert_eq!(f.store.prune(&HashSet::new()).unwrap(), Pruned::default());
    assert_eq!(blob_count(&f.store), before);

    f.store.remove("app:2", false, &unused).unwrap();
    let p = f.store.prune(&HashSet::new()).unwrap();
    // app:2's manifest, config and own layer.
    assert_eq!((p.blobs, p.layers, p.temp), (3, 1, 0), "{p:?}");
    assert!(p.bytes > "only in app 2".len() as u64);
    assert_eq!(blob_count(&f.store), before - 3);
    assert!(!layer_dir(&f, &f.two).exists());
    assert!(layer_dir(&f, &f.base).is_dir() && layer_dir(&f, &f.one).is_dir());
    let img = f.store.resolve("alias:1").unwrap();
    assert_eq!(
        fs::read(img.layers[1].join("one")).unwrap(),
        b"only in app 1"
    );

    f.store.remove("app:1", false, &unused).unwrap();
    f.store.remove("alias:1", false, &unused).unwrap();
    let p = f.store.prune(&HashSet::new()).unwrap();
    assert_eq!((p.blobs, p.layers), (4, 2), "{p:?}");
    assert_eq!(blob_count(&f.store), 0);
    let left: Vec<_> = fs::read_dir(f.paths.layers())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn prune_keeps_layers_a_pod_overlay_uses() {
    let f = fixture();
    f.store.remove("app:2", false, &unused).unwrap();
    let in_use: HashSet<String> = [f.two.clone()].into();
    let p = f.store.prune(&in_use).unwrap();
    assert_eq!((p.blobs, p.layers), (3, 0));
    assert_eq!(p.layers_in_use, std::slice::from_ref(&f.two));
    assert!(layer_dir(&f, &f.two).join("two").is_file());
}

fn age(path: &Path, secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs);
    File::options()
        .write(true)
        .open(path)
        .or_else(|_| File::open(path))
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn prune_removes_stale_temp_entries_that_no_one_holds() {
    let f = fixture();
    let tmp = f.store.root().join(TMP_DIR);
    fs::create_dir_all(&tmp).unwrap();
    let stale = tmp.join("blob-1-0");
    let fresh = tmp.join("blob-1-1");
    let held = tmp.join("blob-1-2");
    let stale_dir = tmp.join("load-1-3");
    for p in [&stale, &fresh, &held] {
        fs::write(p, b"partial").unwrap();
    }
    fs::create_dir(&stale_dir).unwrap();
    fs::write(stale_dir.join("x"), b"x").unwrap();
    for p in [&stale, &held, &stale_dir] {
        age(p, 2 * 3600);
    }
    let _holder = FileLock::exclusive(&held).unwrap();
    // A crashed unpack and a crashed prune in the layers directory.
    let crashed = f.paths.layers().join(format!(".tmp-{}", "a".repeat(64)));
    fs::create_dir(&crashed).unwrap();
    age(&crashed, 2 * 3600);
    let gc_left = f
        .paths
        .layers()
        .join(format!("{GC_PREFIX}{}", "b".repeat(64)));
    fs::create_dir(&gc_left).unwrap();
    // Download locks: one of a blob that is gone, one of a blob that is still there.
    let locks = f.store.root().join(LOCKS_DIR);
    fs::create_dir_all(&locks).unwrap();
    let gone_lock = locks.join(format!("{}.lock", "c".repeat(64)));
    let manifest = f.store.list().unwrap()[0].manifest_digest.clone();
    let live_lock = locks.join(format!("{}.lock", &manifest["sha256:".len()..]));
    fs::write(&gone_lock, b"").unwrap();
    fs::write(&live_lock, b"").unwrap();

    let p = f.store.prune(&HashSet::new()).unwrap();
    assert_eq!((p.blobs, p.layers, p.temp), (0, 0, 4), "{p:?}");
    assert!(!stale.exists() && !stale_dir.exists() && !crashed.exists() && !gc_left.exists());
    assert!(fresh.exists() && held.exists());
    assert!(!gone_lock.exists() && live_lock.exists());
}

#[test]
fn prune_keeps_the_index_a_platform_was_picked_from() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let l = layer(&src, "f", b"multi");
    let mut amd = image(&src, &[&l], "m");
    amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [amd]});
    let index_blob = put(&src, index.to_string().as_bytes());
    write_index(&src, vec![named(desc(INDEX, &index_blob), "multi:1")]);
    let store = ImageStore::open(&Paths::under(&tmp.path().join("root"))).unwrap();
    store.load(&src, None).unwrap();
    let summary = &store.list().unwrap()[0];
    assert_eq!(
        summary.index_digest.as_deref(),
        index_blob["digest"].as_str()
    );
    let before = blob_count(&store);
    assert_eq!(before, 4);
    assert_eq!(store.prune(&HashSet::new()).unwrap().blobs, 0);
    store.remove("multi:1", false, &unused).unwrap();
    assert_eq!(store.prune(&HashSet::new()).unwrap().blobs, 4);
}

#[test]
fn prune_refuses_when_an_image_is_unreadable_and_rmi_still_removes_it() {
    let f = fixture();
    let app2 = f.store.resolve("app:2").unwrap();
    fs::remove_file(f.store.blob_path(&app2.manifest_digest).unwrap()).unwrap();
    let before = blob_count(&f.store);
    let err = f.store.prune(&HashSet::new()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::PruneUnreadable { .. }), "{msg}");
    assert!(
        msg.contains("docker.io/library/app:2") && msg.contains("rmi"),
        "{msg}"
    );
    assert_eq!(blob_count(&f.store), before, "nothing deleted");
    let r = f.store.remove("app:2", false, &unused).unwrap();
    assert_eq!(r.deleted, [app2.manifest_digest]);
    let p = f.store.prune(&HashSet::new()).unwrap();
    assert_eq!((p.blobs, p.layers), (2, 1), "{p:?}");
}

#[test]
fn try_prune_does_not_wait_for_a_writer() {
    let f = fixture();
    f.store.remove("app:2", false, &unused).unwrap();
    let guard = f.store.content_guard().unwrap();
    assert_eq!(f.store.try_prune(&HashSet::new()).unwrap(), None);
    assert!(layer_dir(&f, &f.two).is_dir());
    drop(guard);
    assert_eq!(
        f.store.try_prune(&HashSet::new()).unwrap().unwrap().layers,
        1
    );
}
