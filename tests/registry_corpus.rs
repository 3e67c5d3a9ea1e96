//! Every image the pod corpus names can be pulled, unchanged, from a local registry mirror.
//!
//! The corpus (`/work/shared/pod-corpus`, or `../shared/pod-corpus` next to the project) holds
//! real manifests naming images on Docker Hub, registry.k8s.io, gcr.io and others. For each
//! manifest peapod accepts, the test pushes busybox under each image's repository and tag to a
//! local registry, configures that registry as the mirror of every host involved, and pulls the
//! image by the exact string the manifest uses: the image side of "the corpus runs unchanged
//! against a local registry".

mod common;

use std::collections::BTreeSet;

use common::pull::Peapod;
use common::registry::{layout, layout_json, layout_top_digest, mirrors_toml, Registry};

/// The `image:` values of every container of every manifest peapod accepts.
fn corpus_images() -> BTreeSet<String> {
    let files = common::corpus::manifests(&common::corpus::dir());
    let mut images = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let Ok(pods) = peapod::manifest::decode_pods(&text, &file.display().to_string()) else {
            continue;
        };
        for pod in pods {
            let Some(spec) = pod.spec else { continue };
            let containers = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten());
            images.extend(containers.filter_map(|c| c.image.clone()));
        }
    }
    images
}

#[test]
fn every_corpus_image_pulls_through_a_local_mirror() {
    let images = corpus_images();
    assert!(
        images.len() >= 10,
        "expected the corpus to name many images, found {images:?}"
    );
    let reg = Registry::start();
    let mut hosts = BTreeSet::new();
    let mut want_names = BTreeSet::new();
    for image in &images {
        let name = peapod::image::normalize_reference(image)
            .unwrap_or_else(|e| panic!("corpus image {image} does not normalize: {e}"));
        assert!(
            !name.contains('@'),
            "corpus image {image} is pinned by digest: busybox cannot stand in"
        );
        let (host, path) = name
            .split_once('/')
            .expect("a normalized reference has a host");
        hosts.insert(host.to_string());
        reg.push("busybox", path);
        want_names.insert(name);
    }
    let peapod = Peapod::new();
    let host_list: Vec<&str> = hosts.iter().map(String::as_str).collect();
    peapod.set_registries(&mirrors_toml(&host_list, &format!("http://{}", reg.host())));

    let (busybox, _) = layout("busybox");
    let want_id = layout_json(&busybox, &layout_top_digest(&busybox))["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut failed = Vec::new();
    for image in &images {
        let out = peapod.pull(image);
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        if !out.status.success() || last != want_id {
            failed.push(format!(
                "{image}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "corpus images that did not pull through the mirror:\n{}",
        failed.join("\n")
    );
    let names: BTreeSet<String> = peapod.index_names().into_iter().collect();
    assert_eq!(
        names, want_names,
        "the store names every corpus image, normalized"
    );
    peapod.assert_no_partial("after pulling the corpus images");
}
