//! The registries configuration (`/etc/peapod/registries.toml`): mirrors per registry host, hosts
//! allowed over plain HTTP, extra trusted CAs; and the endpoint list a pull tries for a host
//! (mirrors in order, then the registry itself). Parsing is strict: an unknown key is an error
//! naming the key and the file. No network access here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::image::error::ImageError;

/// Where the registries configuration lives unless `PEAPOD_REGISTRIES_CONFIG` names another.
pub const DEFAULT_REGISTRIES_CONFIG: &str = "/etc/peapod/registries.toml";
/// Set by the global `--registries-config` flag so child processes (supervisors) see it too.
pub const ENV_REGISTRIES_CONFIG: &str = "PEAPOD_REGISTRIES_CONFIG";
/// Docker Hub's name in references, and the host that actually serves its v2 API.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// The parsed registries configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConfig {
    /// The file it came from (for messages); `None` for the empty default.
    pub path: Option<PathBuf>,
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// What the configuration says about one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Mirror URLs (`http://127.0.0.1:5000`, `https://mirror.example.com`), tried in order.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Plain HTTP allowed for this host.
    #[serde(default)]
    pub insecure: bool,
    /// An extra trusted CA (PEM) for this host's TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    registries: BTreeMap<String, RegistryConfig>,
}

/// One place a pull may fetch a repository from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as used in URLs.
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// True for a mirror (its failure moves on to the next endpoint).
    pub mirror: bool,
    pub ca_file: Option<PathBuf>,
}

impl Endpoint {
    /// `http://host` / `https://host`, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

impl RegistriesConfig {
    /// The file `PEAPOD_REGISTRIES_CONFIG` names (which must exist), else the default file if
    /// it exists, else an empty configuration.
    pub fn load() -> Result<RegistriesConfig, ImageError> {
        match std::env::var_os(ENV_REGISTRIES_CONFIG).filter(|v| !v.is_empty()) {
            Some(p) => Self::from_file(Path::new(&p)),
            None => {
                let p = Path::new(DEFAULT_REGISTRIES_CONFIG);
                if p.exists() {
                    Self::from_file(p)
                } else {
                    Ok(RegistriesConfig::default())
                }
            }
        }
    }

    pub fn from_file(path: &Path) -> Result<RegistriesConfig, ImageError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImageError::Config {
            path: path.to_path_buf(),
            reason: super::client::root_cause(&e),
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<RegistriesConfig, ImageError> {
        let bad = |reason: String| ImageError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let file: FileFormat =
            toml::from_str(text).map_err(|e| bad(e.message().to_string() + &span(text, &e)))?;
        for (host, reg) in &file.registries {
            if host.is_empty() || host.contains('/') {
                return Err(bad(format!(
                    "registries.{host:?}: expected a registry host like \"docker.io\" or \"127.0.0.1:5000\""
                )));
            }
            for m in &reg.mirrors {
                mirror_host(m).map_err(|r| bad(format!("registries.{host:?}.mirrors: {r}")))?;
            }
        }
        Ok(RegistriesConfig {
            path: Some(path.to_path_buf()),
            registries: file.registries,
        })
    }

    /// The endpoints to try for `registry` (a reference's domain), mirrors first.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let conf = self.lookup(registry);
        let mut out = Vec::new();
        for m in conf.map(|c| c.mirrors.as_slice()).unwrap_or_default() {
            let Ok((host, plain_http)) = mirror_host(m) else {
                continue;
            };
            out.push(Endpoint {
                ca_file: self.lookup(&host).and_then(|c| c.ca_file.clone()),
                plain_http: plain_http || self.lookup(&host).is_some_and(|c| c.insecure),
                host,
                mirror: true,
            });
        }
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST.to_string()
        } else {
            registry.to_string()
        };
        out.push(Endpoint {
            plain_http: is_loopback(&host) || conf.is_some_and(|c| c.insecure),
            ca_file: conf.and_then(|c| c.ca_file.clone()),
            host,
            mirror: false,
        });
        out
    }

    /// Plain-HTTP and CA settings for pushing to or logging in at `host` directly.
    pub fn direct_endpoint(&self, host: &str) -> Endpoint {
        self.endpoints(host).pop().unwrap_or_else(|| Endpoint {
            host: host.to_string(),
            plain_http: is_loopback(host),
            mirror: false,
            ca_file: None,
        })
    }

    fn lookup(&self, host: &str) -> Option<&RegistryConfig> {
        self.registries.get(host).or_else(|| {
            // docker.io is also written index.docker.io / registry-1.docker.io.
            if matches!(host, "index.docker.io" | DOCKER_HUB_API_HOST) {
                self.registries.get(DOCKER_HUB)
            } else {
                None
            }
        })
    }
}

/// ` (line N)` for a TOML error with a position.
fn span(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// A mirror URL's `host[:port]` and whether it is plain HTTP. Paths are refused: the v2 API
/// lives at the root.
pub fn mirror_host(url: &str) -> Result<(String, bool), String> {
    let (rest, plain_http) = if let Some(r) = url.strip_prefix("http://") {
        (r, true)
    } else if let Some(r) = url.strip_prefix("https://") {
        (r, false)
    } else {
        (url, is_loopback(url))
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains('@') || host.contains('?') {
        return Err(format!(
            "invalid mirror {url:?}: expected http(s)://host[:port]"
        ));
    }
    Ok((host.to_string(), plain_http))
}

/// localhost, 127.0.0.0/8 and ::1, with or without a port: Docker talks plain HTTP to these.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        }
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistriesConfig, ImageError> {
        RegistriesConfig::parse(text, Path::new("/etc/r.toml"))
    }

    #[test]
    fn parses_mirrors_insecure_and_ca() {
        let c = parse(
            r#"
[registries."docker.io"]
mirrors = ["http://127.0.0.1:5000", "https://mirror.example.com/"]
[registries."reg.local:5001"]
insecure = true
ca_file = "/etc/ca.pem"
"#,
        )
        .unwrap();
        let eps = c.endpoints("docker.io");
        let hosts: Vec<_> = eps
            .iter()
            .map(|e| (e.host.as_str(), e.plain_http, e.mirror))
            .collect();
        assert_eq!(
            hosts,
            [
                ("127.0.0.1:5000", true, true),
                ("mirror.example.com", false, true),
                ("registry-1.docker.io", false, false)
            ]
        );
        let eps = c.endpoints("reg.local:5001");
        assert_eq!(eps.len(), 1);
        assert!(eps[0].plain_http);
        assert_eq!(eps[0].ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
    }

    #[test]
    fn unknown_keys_name_the_key_and_file() {
        let e = parse("[registries.\"docker.io\"]\nmirror = [\"x\"]\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/r.toml") && msg.contains("mirror"),
            "{msg}"
        );
        assert!(msg.contains("line 2"), "{msg}");
        let e = parse("registry = 1\n").unwrap_err().to_string();
        assert!(e.contains("registry") && e.contains("/etc/r.toml"), "{e}");
        let e = parse("[registries.\"a\"]\nmirrors = [\"http://h/path\"]\n").unwrap_err();
        assert!(e.to_string().contains("http://h/path"), "{e}");
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_it() {
        let e = RegistriesConfig::from_file(Path::new("/nonexistent/r.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/r.toml"), "{e}");
    }

    #[test]
    fn loopback_is_plain_http_by_default_others_https() {
        let c = RegistriesConfig::default();
        for h in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.3.4.5",
        ] {
            assert!(c.endpoints(h)[0].plain_http, "{h}");
        }
        for h in [
            "quay.io",
            "10.0.0.1:5000",
            "docker.io",
            "localhost.example.com",
        ] {
            assert!(!c.endpoints(h)[0].plain_http, "{h}");
        }
        assert_eq!(c.endpoints("docker.io")[0].host, DOCKER_HUB_API_HOST);
    }

    #[test]
    fn mirror_hosts_take_insecure_from_their_own_entry() {
        let c = parse(
            "[registries.\"quay.io\"]\nmirrors = [\"m.example:80\"]\n[registries.\"m.example:80\"]\ninsecure = true\n",
        )
        .unwrap();
        let eps = c.endpoints("quay.io");
        assert_eq!(eps[0].host, "m.example:80");
        assert!(eps[0].plain_http);
        assert!(!eps[1].plain_http);
    }
}
