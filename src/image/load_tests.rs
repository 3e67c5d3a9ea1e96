//! Unit tests for loading layouts and archives into a store, listing and resolving.

use super::*;
use crate::image::unpack::tests::{dir, file, gzip, sha, tar_of};
use crate::store::Paths;
use serde_json::json;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const GZ_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn put(layout: &Path, data: &[u8]) -> (String, u64) {
    let d = sha(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.trim_start_matches("sha256:")), data).unwrap();
    (d, data.len() as u64)
}

fn desc(mt: &str, (digest, size): &(String, u64)) -> serde_json::Value {
    json!({"mediaType": mt, "digest": digest, "size": size})
}

/// Writes the blobs of a one-layer image into `layout`; returns its manifest descriptor.
fn image_blobs(layout: &Path, layer_mt: &str, content: &[u8]) -> serde_json::Value {
    let raw = tar_of(&[dir("bin/"), file("bin/hello", content, 0o755)]);
    let compressed = if layer_mt.ends_with("+zstd") {
        zstd::encode_all(&raw[..], 3).unwrap()
    } else {
        gzip(&raw)
    };
    let layer = put(layout, &compressed);
    let config = json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(&raw)]},
    });
    let config = put(layout, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc(layer_mt, &layer)],
    });
    desc(MANIFEST, &put(layout, manifest.to_string().as_bytes()))
}

fn write_layout(layout: &Path, manifests: Vec<serde_json::Value>) {
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

fn named(mut d: serde_json::Value, ann: serde_json::Value) -> serde_json::Value {
    d["annotations"] = ann;
    d
}

fn simple_layout(layout: &Path, ref_name: &str) -> serde_json::Value {
    let d = image_blobs(layout, GZ_LAYER, b"hi");
    write_layout(
        layout,
        vec![named(d.clone(), json!({REF_NAME_ANNOTATION: ref_name}))],
    );
    d
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let tmp = tempfile::tempdir().unwrap();
    let s = ImageStore::open(&Paths::under(tmp.path())).unwrap();
    (tmp, s)
}

#[test]
fn open_creates_layout() {
    let (tmp, s) = store();
    assert!(s.root().join("oci-layout").is_file());
    assert!(s.root().join("blobs/sha256").is_dir());
    assert!(s.list().unwrap().is_empty());
    ImageStore::open(&Paths::under(tmp.path())).unwrap();
}

#[test]
fn load_layout_dir_then_list_and_resolve() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    let d = simple_layout(src.path(), "busybox:1.0");
    let loaded = s.load(src.path(), None).unwrap();
    assert_eq!(loaded.len(), 1);
    let sum = &loaded[0];
    assert_eq!(sum.reference, "docker.io/library/busybox:1.0");
    assert_eq!(
        (sum.repository.as_str(), sum.tag.as_str()),
        ("docker.io/library/busybox", "1.0")
    );
    assert_eq!(sum.manifest_digest, d["digest"]);
    assert_eq!(sum.created.as_deref(), Some("2026-01-01T00:00:00Z"));
    assert!(sum.size > 0);
    assert_eq!(s.list().unwrap(), loaded);

    // Re-loading the same name replaces the entry.
    s.load(src.path(), None).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    let index = fs::read_to_string(s.root().join("index.json")).unwrap();
    assert!(index.contains("docker.io/library/busybox:1.0"));

    let img = s.resolve("busybox:1.0").unwrap();
    assert_eq!(img.id, sum.id);
    assert_eq!(img.layers.len(), 1);
    assert_eq!(fs::read(img.layers[0].join("bin/hello")).unwrap(), b"hi");
    assert_eq!(
        img.config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .as_ref()
            .unwrap(),
        &["sh"]
    );
    let by_id = s
        .resolve(&sum.id["sha256:".len().."sha256:".len() + 12])
        .unwrap();
    assert_eq!(by_id.manifest_digest, sum.manifest_digest);
    assert_eq!(s.resolve(&sum.manifest_digest).unwrap().id, sum.id);
    let pinned = format!("busybox@{}", sum.manifest_digest);
    assert_eq!(s.resolve(&pinned).unwrap().id, sum.id);
    assert!(s
        .resolve(&format!("other@{}", sum.manifest_digest))
        .is_err());

    let err = s.resolve("nginx").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }));
    assert!(err.to_string().contains("peapod load") && err.to_string().contains("nginx"));
}

#[test]
fn load_gzip_archive_with_name() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    let layout = src.path().join("layout");
    fs::create_dir(&layout).unwrap();
    simple_layout(&layout, "latest");
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &layout).unwrap();
    let archive = src.path().join("img.tar.gz");
    fs::write(&archive, gzip(&b.into_inner().unwrap())).unwrap();

    let err = s.load(&archive, None).unwrap_err();
    assert!(matches!(err, ImageError::NameRequired { .. }), "{err}");
    assert!(err.to_string().contains("--name"));

    let loaded = s.load(&archive, Some("host:5000/a/b")).unwrap();
    assert_eq!(loaded[0].reference, "host:5000/a/b:latest");
    assert!(s.resolve("host:5000/a/b").unwrap().layers[0]
        .join("bin/hello")
        .exists());
    // The extraction directory is gone.
    let tmp = s.root().join(".tmp");
    assert_eq!(fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn containerd_name_annotation_is_used_for_a_bare_tag() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    let d = image_blobs(src.path(), GZ_LAYER, b"x");
    let ann = json!({REF_NAME_ANNOTATION: "latest", CONTAINERD_NAME_ANNOTATION: "docker.io/x/y:2"});
    write_layout(src.path(), vec![named(d, ann)]);
    assert_eq!(
        s.load(src.path(), None).unwrap()[0].reference,
        "docker.io/x/y:2"
    );
}

#[test]
fn bad_blob_is_refused_and_never_lands() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    simple_layout(src.path(), "busybox:latest");
    // Corrupt the largest blob (the layer) in place.
    let blobs = src.path().join("blobs/sha256");
    let victim = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
        .unwrap();
    let mut data = fs::read(&victim).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&victim, data).unwrap();
    let digest = format!("sha256:{}", victim.file_name().unwrap().to_str().unwrap());

    let err = s.load(src.path(), None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&digest) && err.to_string().contains(victim.to_str().unwrap())
    );
    assert!(!s.blob_path(&digest).unwrap().exists());
    assert!(s.list().unwrap().is_empty());
    let tmp = s.root().join(".tmp");
    assert_eq!(fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn multi_arch_index_resolves_to_linux_amd64() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    let mut amd = image_blobs(src.path(), GZ_LAYER, b"amd64");
    amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    // The arm64 manifest's blobs are absent: only the chosen platform is copied.
    let arm = json!({"mediaType": MANIFEST, "digest": sha(b"missing"), "size": 7,
        "platform": {"os": "linux", "architecture": "arm64"}});
    let nested = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [arm, amd.clone()]});
    let nested = put(src.path(), nested.to_string().as_bytes());
    write_layout(
        src.path(),
        vec![named(
            desc(INDEX, &nested),
            json!({REF_NAME_ANNOTATION: "multi:v1"}),
        )],
    );

    let loaded = s.load(src.path(), None).unwrap();
    assert_eq!(loaded[0].manifest_digest, amd["digest"]);
    assert!(s.blob_path(&nested.0).unwrap().is_file());
    let img = s.resolve("multi:v1").unwrap();
    assert_eq!(fs::read(img.layers[0].join("bin/hello")).unwrap(), b"amd64");
}

#[test]
fn zstd_layers_are_unpacked() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    let d = image_blobs(
        src.path(),
        "application/vnd.oci.image.layer.v1.tar+zstd",
        b"z",
    );
    write_layout(
        src.path(),
        vec![named(d, json!({REF_NAME_ANNOTATION: "z:1"}))],
    );
    s.load(src.path(), None).unwrap();
    let img = s.resolve("z:1").unwrap();
    assert_eq!(fs::read(img.layers[0].join("bin/hello")).unwrap(), b"z");
}

#[test]
fn missing_index_names_the_source() {
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    let err = s.load(src.path(), None).unwrap_err();
    assert!(err.to_string().contains("no index.json"), "{err}");
}

/// Loads what `scripts/build-image` produced, when it has been run.
#[test]
fn loads_the_built_busybox_image_if_present() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("out/images");
    if !out.join("busybox/index.json").is_file() {
        return;
    }
    let (_t, s) = store();
    for src in [out.join("busybox"), out.join("busybox.tar")] {
        let loaded = s.load(&src, None).unwrap();
        assert_eq!(loaded[0].reference, "docker.io/library/busybox:latest");
    }
    let img = s.resolve("busybox").unwrap();
    let root = &img.layers[0];
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(fs::read_to_string(root.join("var/www/index.html"))
        .unwrap()
        .contains("hello from peapod"));
}

/// An archive written by skopeo (`oci-archive:` transport) loads, named by its ref.name.
#[test]
fn loads_a_skopeo_archive_if_available() {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("out/images/busybox");
    if !built.join("index.json").is_file() || !Path::new("/usr/bin/skopeo").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("s.tar");
    let status = std::process::Command::new("/usr/bin/skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg("--quiet")
        .arg(format!("oci:{}", built.display()))
        .arg(format!("oci-archive:{}:busybox:v9", archive.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let (_t, s) = store();
    let loaded = s.load(&archive, None).unwrap();
    assert_eq!(loaded[0].reference, "docker.io/library/busybox:v9");
    assert!(s.resolve("busybox:v9").unwrap().layers[0]
        .join("bin/busybox")
        .is_file());
}

/// The examples are Pods whose images name what `scripts/build-image` builds.
#[test]
fn examples_are_pods_using_the_built_image() {
    for f in ["examples/web.yaml", "examples/hello.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let pod: k8s_openapi::api::core::v1::Pod =
            serde_norway::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        for c in pod.spec.unwrap().containers {
            let image = c.image.unwrap();
            assert_eq!(
                normalize_reference(&image).unwrap(),
                "docker.io/library/busybox:latest"
            );
        }
    }
}

/// The store stays a plain OCI layout: skopeo finds an image in it by its full reference.
#[test]
fn store_is_readable_by_skopeo_if_available() {
    if !Path::new("/usr/bin/skopeo").exists() {
        return;
    }
    let (_t, s) = store();
    let src = tempfile::tempdir().unwrap();
    simple_layout(src.path(), "busybox:1.0");
    let sum = s.load(src.path(), None).unwrap().remove(0);
    let out = std::process::Command::new("/usr/bin/skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{}", s.root().display(), sum.reference))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sum.manifest_digest));
}
