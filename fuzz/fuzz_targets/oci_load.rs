//! `peapod load` (`ImageStore::load`) of an OCI image layout or archive into a fresh store on
//! tmpfs, then `images` and `resolve` of what it loaded: index.json, nested indexes,
//! manifests and configs as load reads them from files, the names from annotations, the
//! platform pick, blob verification, layer unpacking and the store's index update.
//!
//! Input, first byte `A`: the rest is an OCI archive file (tar, or tar+gzip). Otherwise the
//! input is up to four documents separated by NUL bytes: index.json, a nested index, a
//! manifest, a config. So that the fuzzer need not forge sha256 digests, the harness writes
//! the documents as blobs (config first) and replaces these tokens with the real digests and
//! sizes: `@INNER@`/`@INNER_SIZE@` (the nested index), `@MANIFEST@`/`@MANIFEST_SIZE@`,
//! `@CONFIG@`/`@CONFIG_SIZE@`, and `@LAYER@`/`@LAYER_SIZE@`/`@DIFF_ID@` (a small gzip layer the
//! harness provides).
#![no_main]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peapod::image::ImageStore;
use peapod::store::Paths;
use peapod_fuzz::{scratch_dir, sha256_digest as sha};

struct Layer {
    blob: Vec<u8>,
    digest: String,
    diff_id: String,
}

fn layer() -> &'static Layer {
    static LAYER: OnceLock<Layer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, "bin/sh", &b"x\n"[..])
            .expect("tar to memory");
        let tar = tar.into_inner().expect("tar to memory");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip to memory");
        let blob = gz.finish().expect("gzip to memory");
        Layer {
            digest: sha(&blob),
            diff_id: sha(&tar),
            blob,
        }
    })
}

fn replace(doc: &[u8], tokens: &[(String, String)]) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(doc).into_owned();
    for (token, value) in tokens {
        text = text.replace(token, value);
    }
    text.into_bytes()
}

/// Writes `data` as a blob of `layout`; returns its digest and size.
fn put(layout: &Path, data: &[u8]) -> (String, String) {
    let digest = sha(data);
    let hex = digest.trim_start_matches("sha256:");
    fs::write(layout.join("blobs/sha256").join(hex), data).expect("writing a blob");
    (digest, data.len().to_string())
}

fn write_layout(layout: &Path, data: &[u8]) {
    fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dir");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("writing oci-layout");
    let mut docs = data.splitn(4, |&b| b == 0);
    let (index, inner, manifest, config) = (
        docs.next().unwrap_or_default(),
        docs.next().unwrap_or_default(),
        docs.next().unwrap_or_default(),
        docs.next().unwrap_or_default(),
    );
    let l = layer();
    put(layout, &l.blob);
    let mut tokens = vec![
        ("@LAYER_SIZE@".to_string(), l.blob.len().to_string()),
        ("@LAYER@".to_string(), l.digest.clone()),
        ("@DIFF_ID@".to_string(), l.diff_id.clone()),
    ];
    for (doc, name) in [(config, "CONFIG"), (manifest, "MANIFEST"), (inner, "INNER")] {
        let (digest, size) = put(layout, &replace(doc, &tokens));
        tokens.push((format!("@{name}_SIZE@"), size));
        tokens.push((format!("@{name}@"), digest));
    }
    fs::write(layout.join("index.json"), replace(index, &tokens)).expect("writing index.json");
}

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(scratch_dir())
        .expect("temp dir");
    let source = match data.split_first() {
        Some((b'A', archive)) => {
            let path = tmp.path().join("image.tar");
            fs::write(&path, archive).expect("writing the archive");
            path
        }
        _ => {
            let layout = tmp.path().join("layout");
            write_layout(&layout, data);
            layout
        }
    };
    let paths = Paths::under(&tmp.path().join("lib"));
    let store = ImageStore::open(&paths).expect("opening a fresh store");
    match store.load(&source, None) {
        Ok(images) => {
            for image in images {
                store
                    .resolve(&image.reference)
                    .expect("a loaded image resolves");
            }
            store.list().expect("listing the store");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
