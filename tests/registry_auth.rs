//! `peapod pull` from a registry that requires basic auth (htpasswd, bcrypt), on the host.
//!
//! Without credentials, or with wrong ones, the pull fails at once with exit code 1 and an
//! error naming the reference and saying "unauthorized"; credentials from `--authfile`, from
//! `$DOCKER_CONFIG/config.json` and from `peapod login` let it through, also through a mirror.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::pull::{assert_unauthorized, expect_failure, Peapod};
use common::registry::{docker_config, mirrors_toml, Registry};

const USER: &str = "peapod";
const PASSWORD: &str = "s3cret-Pa55";

fn auth_registry() -> Registry {
    let reg = Registry::start_with_auth(USER, PASSWORD);
    reg.push("busybox", "test/busybox:latest");
    reg.push("busybox", "library/busybox:latest");
    reg
}

#[test]
fn without_credentials_the_pull_is_unauthorized() {
    let reg = auth_registry();
    let reference = format!("{}/test/busybox:latest", reg.host());
    assert_unauthorized("pulling without credentials", &reference, &Peapod::new());

    let mut peapod = Peapod::new();
    peapod.set_authfile(&docker_config(&reg.host(), USER, "wrong"));
    assert_unauthorized("pulling with a wrong password", &reference, &peapod);

    // Credentials for another host are not sent.
    peapod.set_authfile(&docker_config("127.0.0.1:1", USER, PASSWORD));
    assert_unauthorized(
        "pulling with another host's credentials",
        &reference,
        &peapod,
    );
}

#[test]
fn credentials_from_an_authfile() {
    let reg = auth_registry();
    let reference = format!("{}/test/busybox:latest", reg.host());
    let mut peapod = Peapod::new();
    peapod.set_authfile(&docker_config(&reg.host(), USER, PASSWORD));
    peapod.pull_ok(&reference);
    peapod.assert_no_partial("after an authenticated pull");
}

#[test]
fn credentials_from_the_docker_config() {
    let reg = auth_registry();
    let peapod = Peapod::new();
    peapod.set_docker_config(&docker_config(&reg.host(), USER, PASSWORD));
    peapod.pull_ok(&format!("{}/test/busybox:latest", reg.host()));
}

#[test]
fn a_mirror_uses_its_own_credentials() {
    let reg = auth_registry();
    let mut peapod = Peapod::new();
    peapod.set_registries(&mirrors_toml(
        &["docker.io"],
        &format!("http://{}", reg.host()),
    ));
    peapod.set_authfile(&docker_config(&reg.host(), USER, PASSWORD));
    peapod.pull_ok("busybox");
    assert_eq!(
        peapod.index_names(),
        vec!["docker.io/library/busybox:latest".to_string()]
    );
}

#[test]
fn peapod_login_then_pull_then_logout() {
    let reg = auth_registry();
    let reference = format!("{}/test/busybox:latest", reg.host());
    let peapod = Peapod::new();
    let help = peapod.run(&["login", "--help"]);
    assert!(
        help.status.success(),
        "`peapod login` does not exist yet (issue 3 asks for it)"
    );

    let bad = peapod.run(&["login", "-u", USER, "-p", "wrong", &reg.host()]);
    let err = expect_failure("login with a wrong password", &bad);
    assert!(
        err.to_lowercase().contains("unauthorized"),
        "login error does not say unauthorized: {err}"
    );

    let out = peapod.run(&["login", "-u", USER, "-p", PASSWORD, &reg.host()]);
    assert!(
        out.status.success(),
        "peapod login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let authfile = peapod.lib_dir().join("auth.json");
    let mode = std::fs::metadata(&authfile)
        .unwrap_or_else(|e| panic!("peapod login wrote no {}: {e}", authfile.display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "{} is readable by others",
        authfile.display()
    );
    peapod.pull_ok(&reference);

    let out = peapod.run(&["logout", &reg.host()]);
    assert!(
        out.status.success(),
        "peapod logout failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another name, so the registry must be asked again: now without credentials.
    let other = format!("{}/library/busybox:latest", reg.host());
    let err = expect_failure("pulling after logout", &peapod.pull(&other));
    assert!(
        err.to_lowercase().contains("unauthorized"),
        "error after logout does not say unauthorized: {err}"
    );
    assert_eq!(peapod.index_names(), vec![reference]);
}
