//! Runs the peapod binary under test against a throwaway state directory, and inspects the
//! content store it leaves behind.
//!
//! [`Peapod`] owns a temp dir holding `PEAPOD_LIB_DIR`, `PEAPOD_RUN_DIR`, `PEAPOD_LOG_DIR`, a
//! generated `registries.toml` and an isolated `DOCKER_CONFIG`/`HOME` (so the machine's own
//! credentials never leak into a test). The store checks say what a user would see after a
//! failed pull: no temp files, no half-unpacked layer, no name in `index.json`, and every blob
//! matching its digest.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::registry::file_digest;

/// The peapod binary Cargo built for these tests.
pub const PEAPOD: &str = env!("CARGO_BIN_EXE_peapod");

/// A peapod with its own state, registries config and credentials, all under one temp dir.
pub struct Peapod {
    root: tempfile::TempDir,
    /// Passed as `--authfile` when set.
    pub authfile: Option<PathBuf>,
}

impl Default for Peapod {
    fn default() -> Self {
        Self::new()
    }
}

impl Peapod {
    /// A fresh state dir and an empty registries config.
    pub fn new() -> Peapod {
        let root = tempfile::tempdir().expect("cannot create a temporary directory");
        let p = Peapod {
            root,
            authfile: None,
        };
        p.set_registries("");
        fs::create_dir_all(p.root.path().join("docker")).expect("cannot create DOCKER_CONFIG");
        p
    }

    /// Replaces the registries config (`--registries-config`) with `toml`.
    pub fn set_registries(&self, toml: &str) {
        fs::write(self.registries_config(), toml).expect("cannot write registries.toml");
    }

    pub fn registries_config(&self) -> PathBuf {
        self.root.path().join("registries.toml")
    }

    /// Writes `json` as the docker config.json passed with `--authfile`.
    pub fn set_authfile(&mut self, json: &str) {
        let path = self.root.path().join("authfile.json");
        fs::write(&path, json).expect("cannot write the auth file");
        self.authfile = Some(path);
    }

    /// Writes `json` as `$DOCKER_CONFIG/config.json`, the fallback credentials file.
    pub fn set_docker_config(&self, json: &str) {
        let path = self.root.path().join("docker/config.json");
        fs::write(&path, json).expect("cannot write the docker config.json");
    }

    pub fn lib_dir(&self) -> PathBuf {
        self.root.path().join("lib")
    }

    /// `PEAPOD_RUN_DIR`.
    pub fn run_dir(&self) -> PathBuf {
        self.root.path().join("run")
    }

    /// The content store (an OCI layout).
    pub fn store(&self) -> PathBuf {
        self.lib_dir().join("images")
    }

    /// Unpacked layers, one dir per diff_id hex.
    pub fn layers_dir(&self) -> PathBuf {
        self.lib_dir().join("l")
    }

    /// `peapod [global flags] ARGS...`, ready to run, with the isolated environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(PEAPOD);
        cmd.env("PEAPOD_LIB_DIR", self.lib_dir())
            .env("PEAPOD_RUN_DIR", self.run_dir())
            .env("PEAPOD_LOG_DIR", self.root.path().join("log"))
            .env("DOCKER_CONFIG", self.root.path().join("docker"))
            .env("HOME", self.root.path())
            .env_remove("PEAPOD_AUTH_FILE")
            .env_remove("PEAPOD_REGISTRIES_CONFIG")
            .arg("--registries-config")
            .arg(self.registries_config());
        if let Some(a) = &self.authfile {
            cmd.arg("--authfile").arg(a);
        }
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `peapod ARGS...` and returns its output; logs the call and its result.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {PEAPOD}: {e}"));
        log_output(args, &out);
        out
    }

    /// Starts `peapod pull REF` without waiting (stdout and stderr piped).
    pub fn spawn_pull(&self, reference: &str) -> Child {
        self.command(&["pull", reference])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PEAPOD}: {e}"))
    }

    /// `peapod pull REF`.
    pub fn pull(&self, reference: &str) -> Output {
        self.run(&["pull", reference])
    }

    /// Pulls `REF`, panics unless it succeeds, and returns the image ID it printed last.
    pub fn pull_ok(&self, reference: &str) -> String {
        let out = self.pull(reference);
        image_id_of(reference, &out)
    }

    /// Image names recorded in the store's `index.json` (`org.opencontainers.image.ref.name`).
    pub fn index_names(&self) -> Vec<String> {
        let path = self.store().join("index.json");
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        let index: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()));
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or("<unnamed>")
                    .to_string()
            })
            .collect()
    }

    /// Digests of the blobs in the store.
    pub fn blobs(&self) -> Vec<String> {
        names(&self.store().join("blobs/sha256"))
            .into_iter()
            .map(|h| format!("sha256:{h}"))
            .collect()
    }

    /// The path of the store's blob `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.store()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// The unpacked layer directory of `diff_id`.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.layers_dir()
            .join(diff_id.trim_start_matches("sha256:"))
    }

    /// Every way a store can be left half-written, as readable lines (empty when clean):
    /// a blob whose content does not match its name, a file in `.tmp`, a half-unpacked layer.
    pub fn partial_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for digest in self.blobs() {
            let actual = file_digest(&self.blob_path(&digest));
            if actual != digest {
                found.push(format!("blob {digest} holds {actual}"));
            }
        }
        for name in names(&self.store().join(".tmp")) {
            found.push(format!("temp file .tmp/{name}"));
        }
        for name in names(&self.layers_dir()) {
            if name.starts_with(".tmp") {
                found.push(format!("half-unpacked layer l/{name}"));
            }
        }
        found
    }

    /// Panics unless the store is clean (see [`Peapod::partial_leftovers`]).
    pub fn assert_no_partial(&self, what: &str) {
        let left = self.partial_leftovers();
        assert!(
            left.is_empty(),
            "{what}: the store holds partial state: {left:#?}"
        );
    }

    /// Panics unless a failed pull left the store clean and named nothing.
    pub fn assert_nothing_stored(&self, what: &str) {
        self.assert_no_partial(what);
        let names = self.index_names();
        assert!(names.is_empty(), "{what}: index.json names {names:?}");
    }
}

/// Panics unless pulling `reference` fails at once as unauthorized and stores nothing.
pub fn assert_unauthorized(what: &str, reference: &str, peapod: &Peapod) {
    let started = std::time::Instant::now();
    let err = expect_failure(what, &peapod.pull(reference));
    assert!(
        err.to_lowercase().contains("unauthorized"),
        "{what}: error does not say unauthorized: {err}"
    );
    assert!(
        err.contains(reference),
        "{what}: error does not name {reference}: {err}"
    );
    // 401 is permanent: no retry back-off (0.5 + 1 + 2 s).
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "{what}: a 401 was retried: {:?}",
        started.elapsed()
    );
    peapod.assert_nothing_stored(what);
}

/// The image ID (`sha256:<config digest>`) on the last stdout line of a successful pull.
pub fn image_id_of(reference: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "peapod pull {reference} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("").trim().to_string();
    assert!(
        last.starts_with("sha256:") && last.len() == 71,
        "peapod pull {reference}: the last stdout line should be the image ID, got {stdout:?}"
    );
    last
}

/// Panics unless a command failed with exit code 1 and an `error: ` line; returns its stderr.
pub fn expect_failure(what: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail with exit code 1; stderr: {stderr}"
    );
    // api.md says `Error: `; the CLI has always printed `error: ` (cli/mod.rs): either will do.
    assert!(
        stderr
            .lines()
            .any(|l| l.to_lowercase().starts_with("error: ")),
        "{what}: no `error: ` line on stderr: {stderr}"
    );
    stderr
}

pub fn log_output(args: &[&str], out: &Output) {
    eprintln!(
        "$ peapod {} -> {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// File names in `dir` (none if it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// True if `path` is an overlayfs whiteout: a character device 0/0.
pub fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// The value of xattr `name` on `path` (not following symlinks), if set.
pub fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Panics unless every layer of `diff_ids` is unpacked.
pub fn assert_unpacked(peapod: &Peapod, diff_ids: &[String]) {
    for d in diff_ids {
        assert!(
            peapod.layer_dir(d).is_dir(),
            "layer {d} is not unpacked in {}",
            peapod.layers_dir().display()
        );
    }
}
