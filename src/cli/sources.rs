//! Where `-f` reads manifests from, as kubectl's resource builder does (cli-runtime
//! resource/builder.go FilenameParam, visitor.go ExpandPathsToFileVisitors and URLVisitor):
//! `-` is stdin; `http://` and `https://` URLs are fetched (three attempts a second apart,
//! retrying failed connections and 5xx answers; HTTPS with the system's roots); a directory
//! gives its `.json`, `.yaml` and `.yml` files in lexical order, and those of its
//! subdirectories with `-R`; any other path is read as it is.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::manifest::Object;

/// The extensions a directory walk takes [visitor.go FileExtensions].
const FILE_EXTENSIONS: &[&str] = &["json", "yaml", "yml"];
/// kubectl's attempts at a URL, and the pause between them [builder.go defaultHttpGetAttempts].
const HTTP_ATTEMPTS: u32 = 3;
const HTTP_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The name of standard input in messages.
const STDIN: &str = "STDIN";

/// The `-f` arguments and `-R`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub files: Vec<String>,
    pub recursive: bool,
}

/// One manifest read: its name in messages and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub source: String,
    pub text: String,
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

impl Sources {
    pub fn new(files: Vec<String>, recursive: bool) -> Sources {
        Sources { files, recursive }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every manifest, in argument order, directories expanded.
    pub fn read(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for file in &self.files {
            if file == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading stdin")?;
                out.push(Manifest {
                    source: STDIN.to_string(),
                    text,
                });
            } else if is_url(file) {
                out.push(Manifest {
                    source: file.clone(),
                    text: fetch(file)?,
                });
            } else {
                let path = Path::new(file);
                if !path.exists() {
                    bail!("the path {file:?} does not exist");
                }
                if path.is_dir() {
                    walk(path, self.recursive, &mut out)?;
                } else {
                    out.push(read_file(path)?);
                }
            }
        }
        Ok(out)
    }

    /// Every object of every manifest, decoded and validated (one bad document and nothing is
    /// returned).
    pub fn decode(&self) -> Result<Vec<Object>> {
        let mut objects = Vec::new();
        for m in self.read()? {
            objects.extend(
                crate::manifest::decode_objects(&m.text, &m.source)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
        }
        Ok(objects)
    }
}

fn read_file(path: &Path) -> Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Manifest {
        source: path.display().to_string(),
        text,
    })
}

/// The manifest files of `dir`, lexically, descending into subdirectories with `recursive`.
fn walk(dir: &Path, recursive: bool, out: &mut Vec<Manifest>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, out)?;
            }
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if FILE_EXTENSIONS.contains(&ext) {
            out.push(read_file(&path)?);
        }
    }
    Ok(())
}

/// One GET of `url`: the status and the body.
async fn get(
    client: &reqwest::Client,
    url: &str,
) -> reqwest::Result<(reqwest::StatusCode, String)> {
    let response = client.get(url).send().await?;
    let status = response.status();
    Ok((status, response.text().await?))
}

/// Fetches a manifest as kubectl's URLVisitor does, with its messages: `unable to read URL
/// "U", server reported 404 Not Found, status code=404`.
fn fetch(url: &str) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP client")?;
    crate::tls::install_default();
    let client = reqwest::Client::builder()
        .build()
        .context("starting the HTTP client")?;
    let mut last = None;
    for attempt in 0..HTTP_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(HTTP_RETRY_PAUSE);
        }
        match runtime.block_on(get(&client, url)) {
            Ok((status, body)) if status == reqwest::StatusCode::OK => return Ok(body),
            Ok((status, _)) => {
                let reason = status.canonical_reason().unwrap_or_default();
                let message = format!(
                    "unable to read URL {url:?}, server reported {} {reason}, status code={}",
                    status.as_u16(),
                    status.as_u16()
                );
                if !status.is_server_error() {
                    bail!(message);
                }
                last = Some(message);
            }
            // Go's net/http words a failed request `Get "URL": cause`.
            Err(e) => last = Some(format!("Get {url:?}: {}", request_error(&e, url))),
        }
    }
    bail!(last.unwrap_or_default())
}

/// A failed request as Go words it: a refused or failed connection reads `dial tcp HOST:PORT:
/// connect: connection refused`; anything else is the error and its causes, `: `-joined.
fn request_error(e: &reqwest::Error, url: &str) -> String {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let authority = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
                .unwrap_or_default();
            let text = io.to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_lowercase();
            return format!("dial tcp {authority}: connect: {text}");
        }
        chain.push(s.to_string());
        source = s.source();
    }
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_give_their_manifests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("b.yaml"), "b").unwrap();
        std::fs::write(root.join("a.json"), "a").unwrap();
        std::fs::write(root.join("notes.txt"), "no").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/c.yml"), "c").unwrap();
        let texts = |recursive| {
            Sources::new(vec![root.display().to_string()], recursive)
                .read()
                .unwrap()
                .into_iter()
                .map(|m| m.text)
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(false), ["a", "b"]);
        assert_eq!(texts(true), ["a", "b", "c"]);
        // A file named explicitly is read whatever its extension.
        let named = Sources::new(vec![root.join("notes.txt").display().to_string()], false);
        assert_eq!(named.read().unwrap()[0].text, "no");
        let missing = Sources::new(vec!["/nonexistent/x.yaml".into()], false);
        assert_eq!(
            missing.read().unwrap_err().to_string(),
            "the path \"/nonexistent/x.yaml\" does not exist"
        );
    }

    #[test]
    fn urls_are_recognized() {
        assert!(is_url("https://example.com/pod.yaml"));
        assert!(is_url("HTTP://127.0.0.1:8000/x"));
        assert!(!is_url("./http/pod.yaml"));
    }
}
