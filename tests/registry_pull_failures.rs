//! `peapod pull` against a real registry on the host: the ways a pull fails.
//!
//! A missing tag, a blob whose bytes do not match its digest, a registry that dies mid-pull or
//! is stopped, a mirror without the image: each must fail with exit code 1 and an error naming
//! the reference and the cause, and leave nothing partial in the store (no temp file, no
//! half-unpacked layer, no unverified blob, no name in index.json). A retry after the registry
//! comes back must then work.

mod common;

use common::pull::{expect_failure, Peapod};
use common::registry::{file_digest, fixture_image, layer_digests, layout, mirrors_toml, Registry};

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
    let want = random_bin_digest();
    assert_eq!(
        file_digest(&random),
        want,
        "random.bin differs from the fixture after the re-pull"
    );
    peapod.assert_no_partial("after the re-pull");
}

/// The digest of the fixture's random.bin, extracted from the big image's plain tar layer.
fn random_bin_digest() -> String {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
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
    file_digest(&dir.path().join("random.bin"))
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
fn a_pull_killed_mid_layer_leaves_no_name_and_the_next_pull_cleans_up() {
    use common::proxy::CutProxy;
    let reg = Registry::start();
    reg.push_raw("big", "test/big:latest");
    let (want_id, _) = fixture_image("big");
    // The registry hangs 4 MiB into the 24 MiB layer: the pull is mid-layer when it is killed.
    let mut proxy = CutProxy::stalling(reg.port, 4 << 20);
    let hung = format!("127.0.0.1:{}/test/big:latest", proxy.port());
    let peapod = Peapod::new();
    let mut child = peapod.spawn_pull(&hung);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !proxy.has_cut() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(proxy.has_cut(), "the pull never reached the stall");
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().expect("cannot SIGKILL the pull");
    let _ = child.wait();
    // A SIGKILL runs no cleanup: the temp file is there, but nothing is named.
    assert!(
        !peapod.partial_leftovers().is_empty(),
        "the killed pull left no temp file: the test proves nothing"
    );
    assert!(
        peapod.index_names().is_empty(),
        "a killed pull named an image"
    );
    proxy.stop();

    // The next pull (straight from the registry) removes what the dead one left and lands.
    assert_eq!(
        peapod.pull_ok(&format!("{}/test/big:latest", reg.host())),
        want_id
    );
    peapod.assert_no_partial("after the pull that followed a killed one");
}
