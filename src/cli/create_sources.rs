//! The data of `create configmap` and `create secret`, gathered as kubectl gathers it on the
//! client [kubectl pkg/cmd/create/create_configmap.go, create_secret.go,
//! create_secret_docker.go, create_secret_tls.go, pkg/util/util.go ParseFileSource,
//! ParseLiteralSource, pkg/cmd/util/env_file.go]: keys from file basenames or `key=path`, a
//! directory's regular files, `key=value` literals, env files; kubectl's refusals word for word.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use base64::Engine;
use k8s_openapi::ByteString;

use crate::manifest::go_quote;
use crate::manifest::names::messages;

/// Where `--from-file`, `--from-literal` and `--from-env-file` put things.
pub trait Sink {
    /// Adds a key; `from_file` when the value is a file's bytes (which may not be UTF-8).
    fn add(&mut self, key: &str, value: Vec<u8>, from_file: bool) -> Result<()>;
}

/// A ConfigMap's data: UTF-8 values in `data`, other file contents in `binaryData`.
#[derive(Debug, Default, PartialEq)]
pub struct ConfigMapData {
    pub name: String,
    pub data: BTreeMap<String, String>,
    pub binary: BTreeMap<String, ByteString>,
}

impl Sink for ConfigMapData {
    fn add(&mut self, key: &str, value: Vec<u8>, from_file: bool) -> Result<()> {
        let errs = messages::config_key(key);
        if !errs.is_empty() {
            bail!(
                "{} is not a valid key name for a ConfigMap: {}",
                go_quote(key),
                errs.join(",")
            );
        }
        if self.data.contains_key(key) {
            bail!(
                "cannot add key {}, another key by that name already exists in Data for ConfigMap {}",
                go_quote(key),
                go_quote(&self.name)
            );
        }
        if self.binary.contains_key(key) {
            bail!(
                "cannot add key {}, another key by that name already exists in BinaryData for ConfigMap {}",
                go_quote(key),
                go_quote(&self.name)
            );
        }
        match String::from_utf8(value) {
            Ok(text) => {
                self.data.insert(key.to_string(), text);
            }
            // Only files can hold bytes that are not UTF-8; literals and env values are text.
            Err(e) if from_file => {
                self.binary
                    .insert(key.to_string(), ByteString(e.into_bytes()));
            }
            Err(e) => {
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                self.data.insert(key.to_string(), text);
            }
        }
        Ok(())
    }
}

/// A Secret's data.
#[derive(Debug, Default, PartialEq)]
pub struct SecretData {
    pub data: BTreeMap<String, ByteString>,
}

impl Sink for SecretData {
    fn add(&mut self, key: &str, value: Vec<u8>, _from_file: bool) -> Result<()> {
        let errs = messages::config_key(key);
        if !errs.is_empty() {
            bail!(
                "{} is not valid key name for a Secret {}",
                go_quote(key),
                errs.join(";")
            );
        }
        if self.data.contains_key(key) {
            bail!("cannot add key {key}, another key by that name already exists");
        }
        self.data.insert(key.to_string(), ByteString(value));
        Ok(())
    }
}

/// Go's `path.Base` of a slash path: the last element, trailing slashes ignored.
fn base(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "/" }.to_string();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// `[key=]path` [ParseFileSource].
pub fn parse_file_source(source: &str) -> Result<(String, String)> {
    match source.matches('=').count() {
        0 => Ok((base(source), source.to_string())),
        1 if source.starts_with('=') => {
            Err(anyhow!("key name for file path {} missing", &source[1..]))
        }
        1 if source.ends_with('=') => Err(anyhow!(
            "file path for key name {} missing",
            &source[..source.len() - 1]
        )),
        1 => {
            let (k, p) = source.split_once('=').unwrap_or_default();
            Ok((k.to_string(), p.to_string()))
        }
        _ => Err(anyhow!("Key names or file paths cannot contain '='")),
    }
}

/// `key=value`, the value may hold `=` [ParseLiteralSource].
pub fn parse_literal_source(source: &str) -> Result<(String, String)> {
    match source.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(anyhow!(
            "invalid literal source {source}, expected key=value"
        )),
    }
}

/// An I/O error as Go words it: `open /x: no such file or directory`, or the bare reason.
pub fn go_io_error(op: Option<&str>, path: &str, e: &std::io::Error) -> String {
    let reason = match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut chars = desc.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
        None => e.to_string(),
    };
    match op {
        Some(op) => format!("{op} {path}: {reason}"),
        None => reason,
    }
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow!("{}", go_io_error(Some("open"), path, &e)))
}

/// `--from-literal` sources, in order.
pub fn add_literals(sink: &mut dyn Sink, sources: &[String]) -> Result<()> {
    for source in sources {
        let (key, value) = parse_literal_source(source)?;
        sink.add(&key, value.into_bytes(), false)?;
    }
    Ok(())
}

/// `--from-file` sources: a file as one key, a directory as a key per regular file in it.
pub fn add_files(sink: &mut dyn Sink, sources: &[String]) -> Result<()> {
    for source in sources {
        let (key, path) = parse_file_source(source)?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| anyhow!("error reading {path}: {}", go_io_error(None, &path, &e)))?;
        if !meta.is_dir() {
            sink.add(&key, read(&path)?, true)?;
            continue;
        }
        if source.contains('=') {
            bail!("cannot give a key name for a directory path");
        }
        let listing = std::fs::read_dir(&path).map_err(|e| {
            anyhow!(
                "error listing files in {path}: {}",
                go_io_error(None, &path, &e)
            )
        })?;
        let mut entries = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| {
                anyhow!(
                    "error listing files in {path}: {}",
                    go_io_error(None, &path, &e)
                )
            })?;
            // Only regular files: no subdirectories, symlinks, devices or pipes.
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                entries.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        // os.ReadDir returns the entries sorted by name.
        entries.sort();
        for name in entries {
            let file = Path::new(&path).join(&name);
            sink.add(&name, read(&file.to_string_lossy())?, true)?;
        }
    }
    Ok(())
}

/// `--from-env-file` sources [AddFromEnvFile]: `KEY=value` lines, leading blanks and a first
/// line's BOM dropped, `#` comments and empty lines skipped; a bare `KEY` takes the value of
/// the environment variable. The value is the rest of the line as it is.
pub fn add_env_files(sink: &mut dyn Sink, sources: &[String], kind: &str) -> Result<()> {
    for path in sources {
        let meta = std::fs::metadata(path)
            .map_err(|e| anyhow!("error reading {path}: {}", go_io_error(None, path, &e)))?;
        if meta.is_dir() {
            bail!("env {kind} file cannot be a directory");
        }
        let bytes = read(path)?;
        for (_, key, value) in env_lines(&bytes, path)? {
            sink.add(&key, value.into_bytes(), false)?;
        }
    }
    Ok(())
}

/// The `(line number, key, value)` of an env file's assignments.
pub fn env_lines(bytes: &[u8], path: &str) -> Result<Vec<(usize, String, String)>> {
    let mut out = Vec::new();
    // bufio.ScanLines: split on \n, drop one trailing \r.
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let count = if bytes.ends_with(b"\n") {
        lines.len() - 1
    } else {
        lines.len()
    };
    for (i, raw) in lines.into_iter().take(count).enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(mut line) = std::str::from_utf8(raw) else {
            bail!(
                "env file {path} contains invalid utf8 bytes at line {}: {raw:?}",
                i + 1
            );
        };
        if i == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        let errs = messages::env_var_name(key);
        if !errs.is_empty() {
            bail!(
                "{} is not a valid key name: {}",
                go_quote(key),
                errs.join(";")
            );
        }
        let value = match value {
            Some(v) => v.to_string(),
            None => std::env::var(key).unwrap_or_default(),
        };
        out.push((i + 1, key.to_string(), value));
    }
    Ok(out)
}

/// `~/.docker/config.json` for one registry, as `create secret docker-registry` writes it:
/// compact, Go's field order, `auth` = base64(user:password), empty fields left out, and
/// `<`, `>`, `&` escaped as Go's encoder does.
pub fn docker_config_json(server: &str, user: &str, password: &str, email: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut entry = Vec::new();
    for (k, v) in [
        ("username", user),
        ("password", password),
        ("email", email),
        ("auth", auth.as_str()),
    ] {
        if !v.is_empty() {
            entry.push(format!("\"{k}\":{}", go_json_string(v)));
        }
    }
    format!(
        "{{\"auths\":{{{}:{{{}}}}}}}",
        go_json_string(server),
        entry.join(",")
    )
}

fn go_json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The PEM block types of `text`, in order.
fn pem_types(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
                .map(str::to_string)
        })
        .collect()
}

/// Go's `tls.X509KeyPair` refusals of what is not a certificate and a private key in PEM.
/// (Whether the key matches the certificate is not checked here.)
pub fn check_tls_pair(cert: &[u8], key: &[u8]) -> Result<()> {
    let found = |types: Vec<String>, want: &dyn Fn(&str) -> bool, input: &str, what: &str| {
        if types.is_empty() {
            bail!("tls: failed to find any PEM data in {input} input");
        }
        if types.iter().any(|t| want(t)) {
            return Ok(());
        }
        bail!(
            "tls: failed to find {what} in {input} input after skipping PEM blocks of the following types: [{}]",
            types.join(" ")
        )
    };
    found(
        pem_types(cert),
        &|t| t == "CERTIFICATE",
        "certificate",
        "\"CERTIFICATE\" PEM block",
    )?;
    found(
        pem_types(key),
        &|t| t == "PRIVATE KEY" || t.ends_with(" PRIVATE KEY"),
        "key",
        "PEM block with type ending in \"PRIVATE KEY\"",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn file_and_literal_sources() {
        assert_eq!(
            parse_file_source("dir/app.conf").unwrap(),
            ("app.conf".into(), "dir/app.conf".into())
        );
        assert_eq!(
            parse_file_source("k=dir/f").unwrap(),
            ("k".into(), "dir/f".into())
        );
        assert_eq!(parse_file_source("dir/").unwrap().0, "dir");
        assert_eq!(
            parse_file_source("=f").unwrap_err().to_string(),
            "key name for file path f missing"
        );
        assert_eq!(
            parse_file_source("k=").unwrap_err().to_string(),
            "file path for key name k missing"
        );
        assert_eq!(
            parse_file_source("a=b=c").unwrap_err().to_string(),
            "Key names or file paths cannot contain '='"
        );
        assert_eq!(
            parse_literal_source("k=a=b").unwrap(),
            ("k".into(), "a=b".into())
        );
        assert_eq!(parse_literal_source("k=").unwrap(), ("k".into(), "".into()));
        for bad in ["=v", "k"] {
            assert_eq!(
                parse_literal_source(bad).unwrap_err().to_string(),
                format!("invalid literal source {bad}, expected key=value")
            );
        }
    }

    #[test]
    fn config_map_keys_binary_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("text"), "hello").unwrap();
        std::fs::write(dir.path().join("blob"), [0xff, 0xfe]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut cm = ConfigMapData {
            name: "c".into(),
            ..Default::default()
        };
        add_files(&mut cm, &[dir.path().to_string_lossy().into_owned()]).unwrap();
        assert_eq!(cm.data["text"], "hello");
        assert_eq!(cm.binary["blob"].0, [0xff, 0xfe]);
        assert_eq!(cm.data.len() + cm.binary.len(), 2);
        let err = add_literals(&mut cm, &strings(&["blob=x"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot add key \"blob\", another key by that name already exists in BinaryData for ConfigMap \"c\""
        );
        let err = add_literals(&mut cm, &strings(&["text=x"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot add key \"text\", another key by that name already exists in Data for ConfigMap \"c\""
        );
        let err = add_literals(&mut cm, &strings(&["a b=x"])).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "\"a b\" is not a valid key name for a ConfigMap: a valid config key must consist"
            ),
            "{err}"
        );
        let missing = dir.path().join("nope").to_string_lossy().into_owned();
        assert_eq!(
            add_files(&mut cm, std::slice::from_ref(&missing))
                .unwrap_err()
                .to_string(),
            format!("error reading {missing}: no such file or directory")
        );
        let keyed = format!("k={}", dir.path().display());
        assert_eq!(
            add_files(&mut cm, &[keyed]).unwrap_err().to_string(),
            "cannot give a key name for a directory path"
        );
    }

    #[test]
    fn secret_keys() {
        let mut s = SecretData::default();
        add_literals(&mut s, &strings(&["user=me", "pass=a=b"])).unwrap();
        assert_eq!(s.data["pass"].0, b"a=b");
        assert_eq!(
            add_literals(&mut s, &strings(&["user=x"]))
                .unwrap_err()
                .to_string(),
            "cannot add key user, another key by that name already exists"
        );
        assert!(add_literals(&mut s, &strings(&["..x=1"]))
            .unwrap_err()
            .to_string()
            .starts_with("\"..x\" is not valid key name for a Secret must not start with '..'"));
    }

    #[test]
    fn env_file_rules() {
        std::env::set_var("PEAPOD_TEST_FROM_ENV", "from-env");
        let text =
            "\u{feff}A=1\r\n  # comment\n\n   B = two \nexport=x\nPEAPOD_TEST_FROM_ENV\nC=a=b";
        let lines = env_lines(text.as_bytes(), "f.env");
        assert_eq!(
            lines.unwrap_err().to_string(),
            "\"B \" is not a valid key name: a valid environment variable name must consist of \
             alphabetic characters, digits, '_', '-', or '.', and must not start with a digit \
             (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for \
             validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
        );
        let text =
            "\u{feff}A=1\r\n  # comment\n\n   B= two \nexport=x\nPEAPOD_TEST_FROM_ENV\nC=a=b";
        let got: Vec<(String, String)> = env_lines(text.as_bytes(), "f.env")
            .unwrap()
            .into_iter()
            .map(|(_, k, v)| (k, v))
            .collect();
        let want = [
            ("A", "1"),
            ("B", " two "),
            ("export", "x"),
            ("PEAPOD_TEST_FROM_ENV", "from-env"),
            ("C", "a=b"),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn docker_config() {
        assert_eq!(
            docker_config_json("https://r.example/v1/", "u", "p<&>", ""),
            "{\"auths\":{\"https://r.example/v1/\":{\"username\":\"u\",\"password\":\"p\\u003c\\u0026\\u003e\",\"auth\":\"dTpwPCY+\"}}}"
        );
    }

    #[test]
    fn tls_pair_refusals() {
        let cert = b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let key = b"-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n";
        assert!(check_tls_pair(cert, key).is_ok());
        assert_eq!(
            check_tls_pair(b"junk", key).unwrap_err().to_string(),
            "tls: failed to find any PEM data in certificate input"
        );
        assert_eq!(
            check_tls_pair(key, key).unwrap_err().to_string(),
            "tls: failed to find \"CERTIFICATE\" PEM block in certificate input after skipping PEM blocks of the following types: [RSA PRIVATE KEY]"
        );
        assert_eq!(
            check_tls_pair(cert, cert).unwrap_err().to_string(),
            "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input after skipping PEM blocks of the following types: [CERTIFICATE]"
        );
    }
}
