//! The registry test fixtures are what the other registry tests assume, checked with skopeo
//! (an independent client) rather than with peapod.
//!
//! Pushed images keep their layout digests; a multi-arch pull picks amd64; a corrupted blob and
//! a proxy cut really break a pull; the auth registry really refuses anonymous requests. When a
//! peapod pull test fails, this file tells whether the fixture or peapod is at fault.

mod common;

use std::process::Command;

use common::proxy::CutProxy;
use common::registry::{layout, layout_json, layout_top_digest, ports_lock, run_ok, Registry};

/// `skopeo copy docker://127.0.0.1:PORT/SRC oci:DIR:latest`; returns the command's output.
fn skopeo_pull(port: u16, src: &str, dir: &std::path::Path) -> std::process::Output {
    Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--retry-times=0",
        ])
        .arg(format!("docker://127.0.0.1:{port}/{src}"))
        .arg(format!("oci:{}:latest", dir.display()))
        .output()
        .expect("cannot run skopeo")
}

#[test]
fn pushed_fixtures_keep_their_digests() {
    let reg = Registry::start();
    for (name, raw) in [
        ("busybox", false),
        ("multilayer", false),
        ("multiarch", false),
        ("zstd", false),
        ("uncompressed", true),
        ("big", true),
    ] {
        let dest = format!("test/{name}:latest");
        if raw {
            reg.push_raw(name, &dest);
        } else {
            reg.push(name, &dest);
        }
        let (path, _) = layout(name);
        assert_eq!(
            reg.manifest_digest(&format!("test/{name}"), "latest"),
            layout_top_digest(&path),
            "{name} changed digest on the way into the registry"
        );
    }
}

#[test]
fn skopeo_picks_amd64_from_the_multi_arch_fixture() {
    let reg = Registry::start();
    reg.push("multiarch", "test/multiarch:latest");
    let out = tempfile::tempdir().expect("cannot create a temporary directory");
    let dir = out.path().join("oci");
    let res = skopeo_pull(reg.port, "test/multiarch:latest", &dir);
    assert!(
        res.status.success(),
        "skopeo pull failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let manifest = layout_json(&dir, &layout_top_digest(&dir));
    let config = layout_json(
        &dir,
        manifest["config"]["digest"].as_str().unwrap_or_default(),
    );
    assert_eq!(config["architecture"], "amd64");
}

#[test]
fn a_corrupted_blob_breaks_an_independent_client() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let (path, _) = layout("busybox");
    let layer = layout_json(&path, &layout_top_digest(&path))["layers"][0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    reg.corrupt_blob(&layer);
    let out = tempfile::tempdir().expect("cannot create a temporary directory");
    let res = skopeo_pull(reg.port, "test/busybox:latest", &out.path().join("oci"));
    assert!(
        !res.status.success(),
        "skopeo accepted the corrupted blob {layer}"
    );
}

#[test]
fn the_cutting_proxy_cuts_and_the_open_proxy_forwards() {
    let reg = Registry::start();
    reg.push_raw("big", "test/big:latest");
    let out = tempfile::tempdir().expect("cannot create a temporary directory");

    let mut proxy = CutProxy::start(reg.port, 0, Some(4 << 20));
    let port = proxy.port();
    let res = skopeo_pull(port, "test/big:latest", &out.path().join("cut"));
    assert!(
        !res.status.success(),
        "skopeo got the whole image through a cutting proxy"
    );
    assert!(proxy.has_cut());
    proxy.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the stopped proxy still accepts connections"
    );

    let _open = CutProxy::start(reg.port, port, None);
    let res = skopeo_pull(port, "test/big:latest", &out.path().join("ok"));
    assert!(
        res.status.success(),
        "skopeo through the open proxy: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn the_auth_registry_refuses_anonymous_requests() {
    let reg = Registry::start_with_auth("peapod", "pw");
    reg.push("busybox", "test/busybox:latest");
    let code = |creds: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(c) = creds {
            cmd.args(["-u", c]);
        }
        cmd.arg(format!(
            "http://{}/v2/test/busybox/manifests/latest",
            reg.host()
        ))
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"]);
        String::from_utf8_lossy(&run_ok(&mut cmd).stdout).into_owned()
    };
    assert_eq!(code(None), "401");
    assert_eq!(code(Some("peapod:wrong")), "401");
    assert_eq!(code(Some("peapod:pw")), "200");
}

#[test]
fn a_stopped_registry_frees_its_port_and_restarts_with_its_content() {
    let reg = Registry::start();
    reg.push("busybox", "test/busybox:latest");
    let pid = reg.pid().expect("the registry records its pid");
    // No other test's registry may take the port between the stop and the restart.
    let ports = ports_lock();
    reg.stop();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.is_empty(), "the registry process {pid} still runs");
    assert!(std::net::TcpStream::connect(("127.0.0.1", reg.port)).is_err());
    reg.restart();
    drop(ports);
    let (path, _) = layout("busybox");
    assert_eq!(
        reg.manifest_digest("test/busybox", "latest"),
        layout_top_digest(&path)
    );
}
