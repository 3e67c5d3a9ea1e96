//! `peapod pull`, `login` and `push` against a registry behind Docker's bearer-token flow, on
//! the host.
//!
//! The registry (distribution, `auth: token`) answers 401 with `WWW-Authenticate: Bearer
//! realm=...,service=...,scope=...`; the client asks the realm (`scripts/registry-token-server`)
//! for a token with basic credentials and retries with `Authorization: Bearer <jwt>`. The token
//! server gives anonymous clients a token granting nothing, as Docker Hub does, and refuses
//! wrong credentials; its log shows who asked for which scope, so the tests can tell that the
//! token flow really ran.

mod common;

use std::time::Instant;

use common::pull::{assert_unauthorized, expect_failure, Peapod};
use common::registry::{docker_config, fixture_image, Registry};

const USER: &str = "tokenuser";
const PASSWORD: &str = "t0ken-Pa55";
const REPO: &str = "team/app";

fn token_registry() -> Registry {
    let reg = Registry::start_with_token(USER, PASSWORD);
    reg.push("busybox", &format!("{REPO}:latest"));
    reg
}

fn app_ref(reg: &Registry) -> String {
    format!("{}/{REPO}:latest", reg.host())
}

/// Panics unless the token server granted `user` the actions `actions` on `repo`.
fn assert_granted(reg: &Registry, user: &str, repo: &str, actions: &str) {
    let want = format!(r#"{{"type": "repository", "name": "{repo}", "actions": [{actions}]}}"#);
    let log = reg.token_log();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("user={user} ")) && l.contains(&want)),
        "the token server never granted {user} {want}; its log:\n{log}"
    );
}

#[test]
fn anonymous_and_wrong_credentials_are_unauthorized() {
    let reg = token_registry();
    let reference = app_ref(&reg);
    assert_unauthorized("pulling anonymously", &reference, &Peapod::new());
    // The client followed the Bearer challenge to the realm (anonymously) before giving up.
    assert!(
        reg.token_log()
            .lines()
            .any(|l| l.contains("user=None") && l.contains(&format!("repository:{REPO}:pull"))),
        "the anonymous pull never asked the token server; its log:\n{}",
        reg.token_log()
    );

    let mut peapod = Peapod::new();
    peapod.set_authfile(&docker_config(&reg.host(), USER, "wrong"));
    assert_unauthorized("pulling with a wrong password", &reference, &peapod);
    assert!(
        reg.token_log()
            .lines()
            .any(|l| l.contains(&format!("user={USER} ")) && l.ends_with("-> 401")),
        "the token server was never asked with the wrong password; its log:\n{}",
        reg.token_log()
    );
}

#[test]
fn credentials_from_an_authfile_get_a_token() {
    let reg = token_registry();
    let reference = app_ref(&reg);
    let mut peapod = Peapod::new();
    peapod.set_authfile(&docker_config(&reg.host(), USER, PASSWORD));
    let id = peapod.pull_ok(&reference);
    assert_eq!(id, fixture_image("busybox").0, "image ID of {reference}");
    assert_eq!(peapod.index_names(), vec![reference]);
    peapod.assert_no_partial("after a pull with a token");
    assert_granted(&reg, USER, REPO, r#""pull""#);
}

#[test]
fn peapod_login_then_pull() {
    let reg = token_registry();
    let peapod = Peapod::new();

    let bad = peapod.run(&["login", "-u", USER, "-p", "wrong", &reg.host()]);
    let err = expect_failure("login with a wrong password", &bad);
    assert!(
        err.to_lowercase().contains("unauthorized"),
        "login error does not say unauthorized: {err}"
    );
    assert!(
        !peapod.lib_dir().join("auth.json").exists(),
        "a refused login stored the credentials"
    );

    let out = peapod.run(&["login", "-u", USER, "-p", PASSWORD, &reg.host()]);
    assert!(
        out.status.success(),
        "peapod login to a token registry failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        peapod.lib_dir().join("auth.json").is_file(),
        "peapod login stored no credentials"
    );
    let reference = app_ref(&reg);
    assert_eq!(peapod.pull_ok(&reference), fixture_image("busybox").0);
    assert_granted(&reg, USER, REPO, r#""pull""#);
}

#[test]
fn push_with_credentials_then_pull_back() {
    let reg = token_registry();
    let mut peapod = Peapod::new();
    peapod.set_authfile(&docker_config(&reg.host(), USER, PASSWORD));
    let id = peapod.pull_ok(&app_ref(&reg));

    let dest = format!("{}/team/pushed:v1", reg.host());

    // The same store without credentials: the push is refused and says so.
    let authfile = peapod.authfile.take();
    let started = Instant::now();
    let err = expect_failure(
        "pushing without credentials",
        &peapod.run(&["push", &app_ref(&reg), &dest]),
    );
    assert!(
        err.contains("unauthorized: ") && err.contains(&reg.host()) && err.contains(&dest),
        "push error does not say unauthorized at {} for {dest}: {err}",
        reg.host()
    );
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "a refused push was retried: {:?}",
        started.elapsed()
    );
    peapod.authfile = authfile;

    let out = peapod.run(&["push", &app_ref(&reg), &dest]);
    assert!(
        out.status.success(),
        "peapod push to a token registry failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let digest = stdout.lines().last().unwrap_or("").trim().to_string();
    assert_eq!(
        reg.manifest_digest("team/pushed", "v1"),
        digest,
        "the registry's digest of {dest} is not the one peapod push printed"
    );
    assert_granted(&reg, USER, "team/pushed", r#""pull", "push""#);

    let other = {
        let mut p = Peapod::new();
        p.set_authfile(&docker_config(&reg.host(), USER, PASSWORD));
        p
    };
    assert_eq!(other.pull_ok(&dest), id, "image ID of the pushed {dest}");
}
