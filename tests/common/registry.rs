//! A real local registry for the host-side registry tests, and the images to fill it with.
//!
//! - [`test_images`] builds the OCI layouts of `scripts/build-test-images` once per test run and
//!   caches them under Cargo's per-target temp dir, keyed by the scripts' content.
//! - [`Registry`] is Debian's `docker-registry` started by `scripts/registry` on a free loopback
//!   port with storage in a temp dir; dropping it stops the process (by its PID) and removes the
//!   dir. Images go in with `skopeo copy` ([`Registry::push`]) or byte for byte with curl
//!   ([`Registry::push_raw`], for uncompressed layers that skopeo would gzip on the way).
//! - [`Registry::corrupt_blob`] flips a byte of a stored blob so the registry serves bytes that do
//!   not match their digest.
//! - [`RegistryKind`] picks anonymous, basic auth or Docker's bearer-token auth (a token server
//!   beside the registry, `scripts/registry-token-server`), over plain HTTP or HTTPS with a
//!   private CA ([`Registry::ca_file`]).
//!
//! These tests need no VM: they only talk HTTP on loopback and write under temp dirs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The project's root (where `scripts/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The programs these tests drive; `scripts/deps` installs all of them.
const TOOLS: &[(&str, &str)] = &[
    ("docker-registry", "docker-registry"),
    ("skopeo", "skopeo"),
    ("htpasswd", "apache2-utils"),
    ("zstd", "zstd"),
    ("jq", "jq"),
    ("curl", "curl"),
    ("python3", "python3"),
    ("openssl", "openssl"),
];

/// Fails the test, saying what to install, unless every tool the registry tests use is present.
pub fn require_tools() {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(bin, pkg)| format!("{bin} (apt package {pkg})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the registry tests need {}: run scripts/deps (as root) to install them",
        missing.join(", ")
    );
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// Runs a command to completion; panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The sha256 of a file, as `sha256:<hex>`. sha256sum(1) because the sha2 crate is slow in
/// an unoptimized test build (~20 MB/s), and the store checks hash every blob.
pub fn file_digest(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    format!("sha256:{hex}")
}

/// The directory holding the test image layouts (busybox, multilayer, multiarch, zstd,
/// uncompressed, big), built once per key of the scripts' content.
pub fn test_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build_test_images)
}

fn build_test_images() -> PathBuf {
    require_tools();
    let root = repo_root();
    let mut key = Sha256::new();
    // Everything the layouts are made of, so that a change rebuilds them.
    for input in [
        "scripts/build-test-images",
        "scripts/build-image",
        "rootfs/passwd",
        "rootfs/group",
        "rootfs/index.html",
        "/bin/busybox",
    ] {
        let p = root.join(input);
        key.update(fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())));
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(format!(
        "test-images-{}",
        &hex::encode(key.finalize())[..16]
    ));
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
    // Test binaries run one after another, but a second `cargo test` may run at the same time.
    let lock = fs::File::create(tmp.join("test-images.lock")).unwrap_or_else(|e| {
        panic!(
            "cannot create the test image lock in {}: {e}",
            tmp.display()
        )
    });
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock the test images: {e}"));
    let done = dir.join(".done");
    if !done.exists() {
        let _ = fs::remove_dir_all(&dir);
        run_ok(Command::new(root.join("scripts/build-test-images")).arg(&dir));
        fs::write(&done, b"").unwrap_or_else(|e| panic!("cannot write {}: {e}", done.display()));
    }
    dir
}

/// One fixture image: its layout and the name of its top descriptor in the layout.
pub fn layout(name: &str) -> (PathBuf, &'static str) {
    let path = test_images().join(name);
    assert!(
        path.is_dir(),
        "test image {name} missing in {}",
        path.display()
    );
    let tag = if name == "busybox" {
        "docker.io/library/busybox:latest"
    } else {
        "latest"
    };
    (path, tag)
}

/// A JSON blob of a layout, by digest.
pub fn layout_json(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.trim_start_matches("sha256:");
    let path = layout.join("blobs/sha256").join(hex);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// The digest of the top descriptor (manifest or index) of a layout.
pub fn layout_top_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(layout.join("index.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("bad index.json in {}: {e}", layout.display()));
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no manifest in {}/index.json", layout.display()))
        .to_string()
}

/// Every manifest format the tests push, for curl's requests to the registry.
const MANIFEST_ACCEPT: &str = "Accept: application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// How a test registry authenticates and whether it speaks TLS.
#[derive(Debug, Clone, Default)]
pub struct RegistryKind {
    /// `user:password` the registry requires (basic auth, or the token server's check).
    pub creds: Option<String>,
    /// Bearer-token auth through a token server instead of basic auth.
    pub token: bool,
    /// HTTPS only, with a certificate signed by a private CA ([`Registry::ca_file`]).
    pub tls: bool,
}

/// A registry process with storage in its own temp dir; stopped and removed on drop.
pub struct Registry {
    dir: tempfile::TempDir,
    pub port: u16,
    /// `user:password` when the registry requires credentials.
    pub creds: Option<String>,
    kind: RegistryKind,
}

/// Held by a registry of this test binary while it picks a free port and starts, and by a test
/// between stopping a registry and starting it again on the same port: the tests of a binary
/// run in parallel, and another's registry could otherwise take the freed port meanwhile.
pub fn ports_lock() -> std::sync::MutexGuard<'static, ()> {
    static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// An anonymous registry on a free loopback port.
    pub fn start() -> Registry {
        Self::launch(RegistryKind::default())
    }

    /// A registry that requires basic auth with `user:password` for everything.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Self::launch(RegistryKind {
            creds: Some(format!("{user}:{password}")),
            ..RegistryKind::default()
        })
    }

    /// A registry behind Docker's token flow: a token server that takes `user:password`.
    pub fn start_with_token(user: &str, password: &str) -> Registry {
        Self::launch(RegistryKind {
            creds: Some(format!("{user}:{password}")),
            token: true,
            tls: false,
        })
    }

    /// An anonymous HTTPS-only registry whose certificate a private CA signed.
    pub fn start_tls() -> Registry {
        Self::launch(RegistryKind {
            tls: true,
            ..RegistryKind::default()
        })
    }

    pub fn launch(kind: RegistryKind) -> Registry {
        require_tools();
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let mut cmd = Command::new(repo_root().join("scripts/registry"));
        cmd.arg("start").arg(dir.path()).args(kind.start_args());
        {
            let _ports = ports_lock();
            run_ok(&mut cmd);
        }
        let port = read_port(dir.path());
        Registry {
            dir,
            port,
            creds: kind.creds.clone(),
            kind,
        }
    }

    /// The registry process's pid, as it recorded it (None once stopped).
    pub fn pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.path().join("pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.kind.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The PEM of the private CA that signed an HTTPS registry's certificate.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.kind.tls, "ca_file of a plain-HTTP registry");
        self.dir.path().join("tls/ca.pem")
    }

    /// The token server's log: a `token: user=... scopes=[...] -> ...` line per token request.
    pub fn token_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("token.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`, the registry host part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the registry process (by the PID it recorded); storage stays.
    pub fn stop(&self) {
        run_ok(
            Command::new(repo_root().join("scripts/registry"))
                .arg("stop")
                .arg(self.dir.path()),
        );
    }

    /// Starts it again on the same port with the same storage and credentials.
    pub fn restart(&self) {
        let mut cmd = Command::new(repo_root().join("scripts/registry"));
        cmd.arg("start")
            .arg(self.dir.path())
            .args(["--port", &self.port.to_string()])
            .args(self.kind.start_args());
        run_ok(&mut cmd);
    }

    /// Pushes the fixture image `name` (see [`test_images`]) as `REPO:TAG` with skopeo, every
    /// platform of an index included, digests unchanged (skopeo fails rather than recompress).
    pub fn push(&self, name: &str, dest: &str) {
        self.skopeo_push(name, dest, &["--preserve-digests"]);
    }

    /// Pushes the fixture image `name` converted to Docker's formats (schema 2 manifests, a
    /// manifest list for an index), as registries that predate OCI serve them.
    pub fn push_docker_format(&self, name: &str, dest: &str) {
        self.skopeo_push(name, dest, &["--format", "v2s2"]);
    }

    fn skopeo_push(&self, name: &str, dest: &str, extra: &[&str]) {
        let (path, tag) = layout(name);
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "-q", "--all"])
            .args(extra)
            .arg("--dest-tls-verify=false");
        if let Some(c) = &self.creds {
            cmd.args(["--dest-creds", c]);
        }
        cmd.arg(format!("oci:{}:{tag}", path.display()))
            .arg(format!("docker://{}/{dest}", self.host()));
        run_ok(&mut cmd);
    }

    /// The manifest (or index / manifest list) of `REPO:REF` as the registry serves it.
    pub fn manifest(&self, repo: &str, reference: &str) -> serde_json::Value {
        let out = run_ok(
            self.curl(repo)
                .args(["-f", "-H", MANIFEST_ACCEPT])
                .arg(format!("{}/v2/{repo}/manifests/{reference}", self.url())),
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("the manifest of {repo}:{reference} is not JSON: {e}"))
    }

    /// Pushes a single-manifest fixture byte for byte through the registry API with curl: the
    /// blobs, then the manifest under `REPO:TAG`. For layouts whose layers skopeo would recompress.
    pub fn push_raw(&self, name: &str, dest: &str) {
        let (path, _) = layout(name);
        let (repo, tag) = dest.rsplit_once(':').unwrap_or((dest, "latest"));
        let manifest_digest = layout_top_digest(&path);
        let manifest = layout_json(&path, &manifest_digest);
        let mut blobs = vec![manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string()];
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            blobs.push(layer["digest"].as_str().unwrap_or_default().to_string());
        }
        for digest in blobs {
            let file = path
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:"));
            let out = run_ok(
                self.curl(repo)
                    .args(["-X", "POST", "-D", "-", "-o", "/dev/null"])
                    .arg(format!("{}/v2/{repo}/blobs/uploads/", self.url())),
            );
            let headers = String::from_utf8_lossy(&out.stdout);
            let location = headers
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("location")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no upload location from the registry: {headers}"));
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{}{location}", self.url())
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            run_ok(
                self.curl(repo)
                    .args([
                        "-f",
                        "-X",
                        "PUT",
                        "-H",
                        "Content-Type: application/octet-stream",
                    ])
                    .arg("--data-binary")
                    .arg(format!("@{}", file.display()))
                    .arg(format!("{url}{sep}digest={digest}")),
            );
        }
        let file = path
            .join("blobs/sha256")
            .join(manifest_digest.trim_start_matches("sha256:"));
        run_ok(
            self.curl(repo)
                .args(["-f", "-X", "PUT", "-H"])
                .arg(format!(
                    "Content-Type: {}",
                    manifest["mediaType"].as_str().unwrap_or_default()
                ))
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg(format!("{}/v2/{repo}/manifests/{tag}", self.url())),
        );
    }

    /// curl with the registry's CA and credentials for `repo` (with a token registry, a bearer
    /// token for pull and push on `repo` from the token server).
    fn curl(&self, repo: &str) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S"]);
        if self.kind.tls {
            cmd.arg("--cacert").arg(self.ca_file());
        }
        match &self.creds {
            Some(c) if self.kind.token => {
                let header = format!("Authorization: Bearer {}", self.token(c, repo));
                cmd.args(["-H", &header]);
            }
            Some(c) => {
                cmd.args(["-u", c]);
            }
            None => {}
        }
        cmd
    }

    /// A token for pull and push on `repo` from the token server, asked with `creds`.
    fn token(&self, creds: &str, repo: &str) -> String {
        let port = fs::read_to_string(self.dir.path().join("token.port")).unwrap_or_default();
        let out = run_ok(
            Command::new("curl")
                .args(["-s", "-S", "-f", "-u", creds])
                .arg(format!(
                "http://127.0.0.1:{}/token?service=peapod-test&scope=repository:{repo}:pull,push",
                port.trim()
            )),
        );
        let body: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("the token server's answer is not JSON: {e}"));
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token from the token server: {body}"))
            .to_string()
    }

    /// The digest the registry gives for `REPO:TAG` (`Docker-Content-Digest` of a HEAD).
    pub fn manifest_digest(&self, repo: &str, tag: &str) -> String {
        let out = run_ok(
            self.curl(repo)
                .args(["-f", "-I", "-H", MANIFEST_ACCEPT])
                .arg(format!("{}/v2/{repo}/manifests/{tag}", self.url())),
        );
        let headers = String::from_utf8_lossy(&out.stdout);
        headers
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no Docker-Content-Digest for {repo}:{tag}: {headers}"))
    }

    /// The file in the registry's storage that holds blob `digest`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Flips one byte in the middle of a stored blob: same size, different digest, and the
    /// registry (which does not re-check what it serves) sends the bad bytes.
    pub fn corrupt_blob(&self, digest: &str) {
        let path = self.blob_file(digest);
        let mut data =
            fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(!data.is_empty(), "blob {digest} is empty");
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        let mut f = fs::File::create(&path)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        f.write_all(&data)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        assert_ne!(
            file_digest(&path),
            digest,
            "corrupting {digest} left its digest"
        );
    }

    /// How many times blob `digest` was served in full or in part (GET answered 200 or 206),
    /// from the registry's access log.
    pub fn blob_gets(&self, digest: &str) -> usize {
        let needle = format!("/blobs/{digest} HTTP/");
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(&needle))
            .filter(|l| l.contains("\" 200 ") || l.contains("\" 206 "))
            .count()
    }

    /// The registry's log (warnings and an access log line per request).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl RegistryKind {
    /// The `scripts/registry start` flags for this kind.
    fn start_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(c) = &self.creds {
            let flag = if self.token { "--token" } else { "--htpasswd" };
            args.extend([flag.to_string(), c.clone()]);
        }
        if self.tls {
            args.push("--tls".to_string());
        }
        args
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/registry"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn read_port(dir: &Path) -> u16 {
    let text = fs::read_to_string(dir.join("port")).unwrap_or_default();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("scripts/registry wrote no port in {}", dir.display()))
}

/// A `registries.toml` that sends each of `hosts` to `mirror` (e.g. `http://127.0.0.1:5000`).
pub fn mirrors_toml(hosts: &[&str], mirror: &str) -> String {
    hosts
        .iter()
        .map(|h| format!("[registries.\"{h}\"]\nmirrors = [\"{mirror}\"]\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A docker-style `config.json` with basic credentials for `host`.
pub fn docker_config(host: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({ "auths": { host: { "auth": auth } } }).to_string()
}

/// The image ID (config digest) and diff_ids of a single-manifest fixture.
pub fn fixture_image(name: &str) -> (String, Vec<String>) {
    let (path, _) = layout(name);
    manifest_image(&path, &layout_top_digest(&path))
}

/// The image ID (config digest) and diff_ids of manifest `manifest_digest` of a layout.
pub fn manifest_image(layout: &Path, manifest_digest: &str) -> (String, Vec<String>) {
    let manifest = layout_json(layout, manifest_digest);
    let id = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config = layout_json(layout, &id);
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    (id, diff_ids)
}

/// The layer digests of a single-manifest fixture, bottom first.
pub fn layer_digests(name: &str) -> Vec<String> {
    let (path, _) = layout(name);
    let manifest = layout_json(&path, &layout_top_digest(&path));
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["digest"].as_str().map(str::to_string))
        .collect()
}

/// A reference normalized by peapod's own rules (the name the store records).
pub fn normalized(reference: &str) -> String {
    peapod::image::normalize_reference(reference)
        .unwrap_or_else(|e| panic!("test reference {reference} is invalid: {e}"))
}
