//! Registry credentials from docker-style `config.json` files (`{"auths": {"host": {"auth":
//! base64("user:pass")}}}`). Lookup order: `PEAPOD_AUTH_FILE` (the global `--authfile` flag)
//! or `<lib dir>/auth.json`, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
//! `peapod login` writes the first file (mode 0600, atomically). No network access here.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::image::error::ImageError;
use crate::store::Paths;

/// Names the credentials file `peapod login` writes and pulls read first.
pub const ENV_AUTH_FILE: &str = "PEAPOD_AUTH_FILE";
/// Names a pod's image pull secrets (a docker `config.json`), read before every other file:
/// the supervisor sets it for its pull children, as the kubelet puts a pod's pull secrets
/// ahead of the node's credentials.
pub const ENV_PULL_SECRETS_FILE: &str = "PEAPOD_PULL_SECRETS_FILE";
pub const AUTH_FILE_NAME: &str = "auth.json";

/// The keys Docker uses for Docker Hub in `auths` (the legacy v1 URL is what `docker login`
/// writes).
const DOCKER_HUB_KEYS: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "https://index.docker.io/v1/",
    "registry-1.docker.io",
];

/// A user name and password (or token) for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({:?}, <redacted>)", self.username)
    }
}

/// What a pull sends one registry host: nothing, a user name and password, or a bearer token
/// (the CRI's `registry_token`).
#[derive(Clone, PartialEq, Eq)]
pub enum PullSecret {
    Anonymous,
    Basic(Credential),
    Bearer(String),
}

impl From<Option<Credential>> for PullSecret {
    fn from(c: Option<Credential>) -> Self {
        c.map_or(PullSecret::Anonymous, PullSecret::Basic)
    }
}

impl std::fmt::Debug for PullSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullSecret::Anonymous => write!(f, "Anonymous"),
            PullSecret::Basic(c) => write!(f, "Basic({c:?})"),
            PullSecret::Bearer(_) => write!(f, "Bearer(<redacted>)"),
        }
    }
}

/// Credentials that come with one pull (the CRI's `AuthConfig`) and replace the credentials
/// files for it, as a request's auth replaces the configured one in containerd's CRI plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullAuth {
    /// The registry host they are for (`server_address`); `None`: whatever host the pull
    /// contacts, mirrors included (containerd hands them to every host too).
    pub server: Option<String>,
    pub secret: PullSecret,
}

impl PullAuth {
    /// What to send to `host`: anonymous when the credentials name another server (containerd
    /// does not fall back to its configured credentials then either).
    pub fn for_host(&self, host: &str) -> PullSecret {
        match &self.server {
            Some(server) if !host_keys(host).iter().any(|k| k == strip_url(server)) => {
                PullSecret::Anonymous
            }
            _ => self.secret.clone(),
        }
    }
}

/// Every credentials file found, in lookup order.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    files: Vec<(PathBuf, Map<String, Value>)>,
}

impl Credentials {
    /// Reads the credentials files that exist; a file that exists but is not valid JSON is an
    /// error naming it.
    pub fn load(paths: &Paths) -> Result<Credentials, ImageError> {
        let mut files = Vec::new();
        for path in lookup_files(paths) {
            match fs::read(&path) {
                Ok(data) => {
                    let auths = parse_auths(&data).map_err(|reason| ImageError::Credentials {
                        path: path.clone(),
                        reason,
                    })?;
                    files.push((path, auths));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ImageError::Credentials {
                        path,
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(Credentials { files })
    }

    /// No credentials at all (anonymous pulls).
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// The first credential for `host` in lookup order (Docker Hub under any of its names).
    pub fn lookup(&self, host: &str) -> Option<Credential> {
        let keys = host_keys(host);
        for (_, auths) in &self.files {
            for (key, entry) in auths {
                if keys.iter().any(|k| k == key || strip_url(key) == *k) {
                    if let Some(c) = decode_entry(entry) {
                        return Some(c);
                    }
                }
            }
        }
        None
    }

    /// Writes `host`'s credential into the file `peapod login` owns; returns its path.
    pub fn store(
        paths: &Paths,
        host: &str,
        user: &str,
        password: &str,
    ) -> Result<PathBuf, ImageError> {
        let path = login_file(paths);
        let mut doc = read_doc(&path)?;
        let auths = auths_mut(&mut doc, &path)?;
        for k in host_keys(host) {
            auths.remove(&k);
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        auths.insert(canonical_key(host), serde_json::json!({ "auth": token }));
        write_private(&path, &doc)?;
        Ok(path)
    }

    /// Removes `host`'s credential from the login file; false when there was none.
    pub fn remove(paths: &Paths, host: &str) -> Result<bool, ImageError> {
        let path = login_file(paths);
        if !path.exists() {
            return Ok(false);
        }
        let mut doc = read_doc(&path)?;
        let auths = auths_mut(&mut doc, &path)?;
        let keys = host_keys(host);
        let before = auths.len();
        auths.retain(|k, _| !keys.iter().any(|h| h == k || strip_url(k) == *h));
        if auths.len() == before {
            return Ok(false);
        }
        write_private(&path, &doc)?;
        Ok(true)
    }
}

/// The file `peapod login` writes: `PEAPOD_AUTH_FILE`, else `<lib>/auth.json`.
pub fn login_file(paths: &Paths) -> PathBuf {
    std::env::var_os(ENV_AUTH_FILE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.lib.join(AUTH_FILE_NAME))
}

fn lookup_files(paths: &Paths) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(f) = std::env::var_os(ENV_PULL_SECRETS_FILE).filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(f));
    }
    out.push(login_file(paths));
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        out.push(Path::new(&d).join("config.json"));
    } else if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        out.push(Path::new(&h).join(".docker").join("config.json"));
    }
    out
}

/// The `auths` keys that may hold `host`'s credential.
fn host_keys(host: &str) -> Vec<String> {
    if DOCKER_HUB_KEYS.contains(&host) {
        DOCKER_HUB_KEYS.iter().map(|s| s.to_string()).collect()
    } else {
        vec![host.to_string()]
    }
}

fn canonical_key(host: &str) -> String {
    if DOCKER_HUB_KEYS.contains(&host) {
        "docker.io".to_string()
    } else {
        host.to_string()
    }
}

/// `https://host/v1/` -> `host`: some tools write URLs as keys.
fn strip_url(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn parse_auths(data: &[u8]) -> Result<Map<String, Value>, String> {
    let doc: Value = serde_json::from_slice(data).map_err(|e| format!("invalid JSON: {e}"))?;
    match doc.get("auths") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err("\"auths\" must be an object".to_string()),
    }
}

/// `{"auth": base64("user:pass")}` or `{"username": .., "password": ..}`.
fn decode_entry(entry: &Value) -> Option<Credential> {
    if let Some(a) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        return Some(Credential {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    let u = entry.get("username")?.as_str()?;
    let p = entry.get("password")?.as_str()?;
    Some(Credential {
        username: u.to_string(),
        password: p.to_string(),
    })
}

fn read_doc(path: &Path) -> Result<Value, ImageError> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| ImageError::Credentials {
            path: path.to_path_buf(),
            reason: format!("invalid JSON: {e}"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(ImageError::Credentials {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn auths_mut<'a>(
    doc: &'a mut Value,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, ImageError> {
    let bad = || ImageError::Credentials {
        path: path.to_path_buf(),
        reason: "expected a JSON object with an \"auths\" object".to_string(),
    };
    let obj = doc.as_object_mut().ok_or_else(bad)?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if auths.is_null() {
        *auths = Value::Object(Map::new());
    }
    auths.as_object_mut().ok_or_else(bad)
}

/// Temp file (0600) in the same directory, fsync, rename: readers never see a torn file and
/// the secret is never world-readable, not even briefly.
fn write_private(path: &Path, doc: &Value) -> Result<(), ImageError> {
    let err = |e: io::Error| ImageError::Credentials {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let data = serde_json::to_vec_pretty(doc).map_err(|e| err(io::Error::other(e)))?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&data)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn creds(files: Vec<(&str, &str)>) -> Credentials {
        Credentials {
            files: files
                .into_iter()
                .map(|(p, j)| (PathBuf::from(p), parse_auths(j.as_bytes()).unwrap()))
                .collect(),
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn looks_up_in_order_with_docker_hub_aliases() {
        let first = format!(
            r#"{{"auths": {{"127.0.0.1:5001": {{"auth": "{}"}}}}}}"#,
            b64("a:1")
        );
        let second = format!(
            r#"{{"auths": {{"127.0.0.1:5001": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{"auth": "{}"}}, "quay.io": {{"username": "q", "password": "p:x"}}}}}}"#,
            b64("b:2"),
            b64("hub:pw:with:colons")
        );
        let c = creds(vec![("/a", &first), ("/b", &second)]);
        assert_eq!(c.lookup("127.0.0.1:5001").unwrap().username, "a");
        let hub = c.lookup("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "pw:with:colons")
        );
        assert_eq!(c.lookup("registry-1.docker.io").unwrap().username, "hub");
        assert_eq!(c.lookup("quay.io").unwrap().password, "p:x");
        assert!(c.lookup("ghcr.io").is_none());
    }

    #[test]
    fn request_credentials_go_to_their_server_only() {
        let basic = PullSecret::Basic(Credential {
            username: "u".into(),
            password: "p".into(),
        });
        let any = PullAuth {
            server: None,
            secret: basic.clone(),
        };
        assert_eq!(any.for_host("mirror.local:5000"), basic);
        let hub = PullAuth {
            server: Some("https://index.docker.io/v1/".into()),
            secret: basic.clone(),
        };
        assert_eq!(hub.for_host("docker.io"), basic);
        assert_eq!(hub.for_host("registry-1.docker.io"), basic);
        assert_eq!(hub.for_host("quay.io"), PullSecret::Anonymous);
        let local = PullAuth {
            server: Some("127.0.0.1:5000".into()),
            secret: PullSecret::Bearer("t".into()),
        };
        assert_eq!(
            local.for_host("127.0.0.1:5000"),
            PullSecret::Bearer("t".into())
        );
        assert_eq!(local.for_host("127.0.0.1:5001"), PullSecret::Anonymous);
        assert_eq!(format!("{:?}", local.secret), "Bearer(<redacted>)");
    }

    #[test]
    fn bad_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        fs::create_dir_all(&paths.lib).unwrap();
        fs::write(paths.lib.join(AUTH_FILE_NAME), "{nope").unwrap();
        // Only the default location: the env var is not set in unit tests.
        if std::env::var_os(ENV_AUTH_FILE).is_none() {
            let e = Credentials::load(&paths).unwrap_err().to_string();
            assert!(e.contains("auth.json"), "{e}");
        }
    }

    #[test]
    fn store_and_remove_keep_other_entries_and_mode_0600() {
        if std::env::var_os(ENV_AUTH_FILE).is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let file = paths.lib.join(AUTH_FILE_NAME);
        fs::create_dir_all(&paths.lib).unwrap();
        fs::write(
            &file,
            r#"{"auths": {"other:1": {"auth": "eDp5"}}, "credsStore": "x"}"#,
        )
        .unwrap();
        assert_eq!(
            Credentials::store(&paths, "index.docker.io", "u", "p").unwrap(),
            file
        );
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let doc: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "x");
        assert_eq!(doc["auths"]["docker.io"]["auth"], b64("u:p"));
        assert!(doc["auths"]["other:1"].is_object());
        assert!(Credentials::remove(&paths, "docker.io").unwrap());
        assert!(!Credentials::remove(&paths, "docker.io").unwrap());
        let doc: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        assert!(doc["auths"].get("docker.io").is_none());
        let names: Vec<_> = fs::read_dir(&paths.lib).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
    }
}
