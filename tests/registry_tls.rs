//! `peapod pull` from an HTTPS registry whose certificate a private CA signed, on the host.
//!
//! `scripts/registry start --tls` makes a CA and a certificate for IP 127.0.0.1 at test time and
//! serves HTTPS only. Loopback registries are plain HTTP unless their entry in the registries
//! config names a `ca_file` or says `insecure = false` (src/image/registry/config.rs): with HTTPS
//! asked for and the CA not trusted the pull fails at once with a certificate error naming the
//! host; with the CA as `ca_file` it succeeds, directly and as a mirror.

mod common;

use std::time::Instant;

use common::pull::{expect_failure, Peapod};
use common::registry::{fixture_image, Registry};

fn tls_registry() -> Registry {
    let reg = Registry::start_tls();
    reg.push("busybox", "test/busybox:latest");
    reg.push("busybox", "library/busybox:latest");
    reg
}

#[test]
fn an_untrusted_ca_is_a_certificate_error_naming_the_host() {
    let reg = tls_registry();
    let reference = format!("{}/test/busybox:latest", reg.host());
    let peapod = Peapod::new();
    peapod.set_registries(&format!(
        "[registries.\"{}\"]\ninsecure = false\n",
        reg.host()
    ));
    let started = Instant::now();
    let err = expect_failure("pulling with an untrusted CA", &peapod.pull(&reference));
    let lower = err.to_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("tls"),
        "the error does not say TLS or certificate: {err}"
    );
    assert!(
        err.contains(&reg.host()) && err.contains(&reference),
        "the error does not name {} and {reference}: {err}",
        reg.host()
    );
    // A certificate does not fix itself: no retry back-off (0.5 + 1 + 2 s).
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "a TLS failure was retried: {:?}",
        started.elapsed()
    );
    peapod.assert_nothing_stored("after a TLS failure");
}

#[test]
fn plain_http_to_an_https_registry_fails_naming_it() {
    let reg = tls_registry();
    let reference = format!("{}/test/busybox:latest", reg.host());
    // No entry: loopback means plain HTTP, which this registry does not speak.
    let peapod = Peapod::new();
    let err = expect_failure("pulling over HTTP from HTTPS", &peapod.pull(&reference));
    assert!(
        err.contains(&reg.host()) && err.contains(&reference),
        "the error does not name {} and {reference}: {err}",
        reg.host()
    );
    assert!(
        err.contains("speaks HTTPS") && err.contains("ca_file"),
        "the error does not say how to reach it over HTTPS: {err}"
    );
    peapod.assert_nothing_stored("after HTTP to an HTTPS registry");
}

#[test]
fn a_ca_file_makes_the_registry_trusted() {
    let reg = tls_registry();
    let reference = format!("{}/test/busybox:latest", reg.host());
    let peapod = Peapod::new();
    peapod.set_registries(&format!(
        "[registries.\"{}\"]\nca_file = \"{}\"\n",
        reg.host(),
        reg.ca_file().display()
    ));
    let id = peapod.pull_ok(&reference);
    assert_eq!(id, fixture_image("busybox").0, "image ID of {reference}");
    assert_eq!(peapod.index_names(), vec![reference]);
    peapod.assert_no_partial("after a pull over HTTPS");
}

#[test]
fn an_https_mirror_with_its_ca_file() {
    let reg = tls_registry();
    let peapod = Peapod::new();
    peapod.set_registries(&format!(
        "[registries.\"docker.io\"]\nmirrors = [\"{}\"]\n[registries.\"{}\"]\nca_file = \"{}\"\n",
        reg.url(),
        reg.host(),
        reg.ca_file().display()
    ));
    assert_eq!(peapod.pull_ok("busybox"), fixture_image("busybox").0);
    assert_eq!(
        peapod.index_names(),
        vec!["docker.io/library/busybox:latest".to_string()]
    );
}

#[test]
fn push_over_https_with_the_ca_file() {
    let reg = tls_registry();
    let peapod = Peapod::new();
    peapod.set_registries(&format!(
        "[registries.\"{}\"]\nca_file = \"{}\"\n",
        reg.host(),
        reg.ca_file().display()
    ));
    let source = format!("{}/test/busybox:latest", reg.host());
    peapod.pull_ok(&source);
    let dest = format!("{}/team/pushed:v1", reg.host());
    let out = peapod.run(&["push", &source, &dest]);
    assert!(
        out.status.success(),
        "peapod push over HTTPS failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last().unwrap_or("").trim(),
        reg.manifest_digest("team/pushed", "v1"),
        "the digest peapod push printed is not the registry's"
    );
}
