//! The request side of `httpGet`: the URL as the kubelet's formatURL builds it (and as a
//! redirect's Location resolves against it), the header map of newProbeRequest, and the bytes
//! net/http writes for it [pkg/probe/http/request.go; net/http request.go, header.go].

use std::collections::BTreeMap;
use std::fmt;

use super::http::Client;
use super::net::join_host_port;
use super::{HttpGet, KUBE_VERSION};
use crate::gofmt::quote;

/// Header lines the request writer puts elsewhere or never sends from the map.
const EXCLUDED: &[&str] = &[
    "Host",
    "User-Agent",
    "Content-Length",
    "Transfer-Encoding",
    "Trailer",
];

/// An absolute http(s) URL, split as the client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub https: bool,
    /// Host name or address, without brackets.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written (the Host header when none is given).
    pub authority: String,
    /// Path and query, escaped.
    pub target: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.target)
    }
}

impl Url {
    /// formatURL: scheme, `host:port` always with the port, the path as a request target.
    pub fn of(get: &HttpGet) -> Url {
        Url {
            https: get.scheme.eq_ignore_ascii_case("https"),
            host: get.host.clone(),
            port: get.port,
            authority: join_host_port(&get.host, get.port),
            target: request_target(&get.path),
        }
    }

    /// An absolute `http://` or `https://` URL.
    pub fn parse(s: &str) -> Result<Url, String> {
        let (scheme, rest) = s.split_once("://").ok_or("missing protocol scheme")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => return Err(format!("unsupported protocol scheme {}", quote(other))),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = split_authority(authority, if https { 443 } else { 80 })?;
        Ok(Url {
            https,
            host,
            port,
            authority: authority.to_string(),
            target: request_target(target),
        })
    }

    /// Resolves a `Location` against this URL.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let has_scheme = location.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
        if has_scheme {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = if self.https { "https" } else { "http" };
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let target = if location.starts_with('/') {
            location.to_string()
        } else if location.starts_with('?') {
            let path = self.target.split('?').next().unwrap_or("/");
            format!("{path}{location}")
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(Url {
            target: request_target(&target),
            ..self.clone()
        })
    }
}

fn split_authority(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or("missing ']' in host")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => p
            .parse()
            .map_err(|_| format!("invalid port {}", quote(p)))?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

/// A path as Go's url.Parse then RequestURI give it: the fragment dropped, a leading `/`,
/// bytes outside the path alphabet percent-encoded, the query kept as written.
pub(crate) fn request_target(path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escaped_ok = b == b'%'
            && bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@!'()*[]".contains(&b) || escaped_ok {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// textproto.CanonicalMIMEHeaderKey: `x-custom-header` -> `X-Custom-Header`; a name with a
/// byte outside the token alphabet is left as is.
pub(crate) fn canonical_key(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The header map of a probe or hook request [request.go newProbeRequest]: the given headers
/// under canonical names, then `User-Agent: kube-probe/<v>` (or `kube-lifecycle/<v>`) and
/// `Accept: */*` unless given; an Accept given empty is dropped.
pub(crate) fn build_headers(
    given: &[(String, String)],
    client: Client,
) -> BTreeMap<String, Vec<String>> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in given {
        headers
            .entry(canonical_key(name))
            .or_default()
            .push(value.clone());
    }
    let purpose = match client {
        Client::Probe => "probe",
        Client::Hook => "lifecycle",
    };
    headers
        .entry("User-Agent".into())
        .or_insert_with(|| vec![format!("kube-{purpose}/{KUBE_VERSION}")]);
    match headers.get("Accept").map(|v| v.first().map(String::as_str)) {
        None => {
            headers.insert("Accept".into(), vec!["*/*".into()]);
        }
        Some(None | Some("")) => {
            headers.remove("Accept");
        }
        Some(_) => {}
    }
    headers
}

pub(crate) fn first<'h>(headers: &'h BTreeMap<String, Vec<String>>, key: &str) -> Option<&'h str> {
    headers.get(key).and_then(|v| v.first()).map(String::as_str)
}

/// The request bytes in net/http's order: request line, Host, User-Agent, the other headers
/// sorted, then the transport's own (`Accept-Encoding: gzip` for hooks, `Connection: close`
/// for probes).
pub(crate) fn request_head(
    url: &Url,
    host: Option<&str>,
    headers: &BTreeMap<String, Vec<String>>,
    client: Client,
) -> Vec<u8> {
    let clean = |v: &str| {
        v.replace(['\r', '\n'], " ")
            .trim_matches([' ', '\t'])
            .to_string()
    };
    let mut out = format!("GET {} HTTP/1.1\r\n", url.target);
    out.push_str(&format!("Host: {}\r\n", host.unwrap_or(&url.authority)));
    if let Some(ua) = first(headers, "User-Agent")
        .map(clean)
        .filter(|u| !u.is_empty())
    {
        out.push_str(&format!("User-Agent: {ua}\r\n"));
    }
    for (key, values) in headers {
        if EXCLUDED.contains(&key.as_str()) {
            continue;
        }
        for v in values {
            out.push_str(&format!("{key}: {}\r\n", clean(v)));
        }
    }
    match client {
        Client::Hook => {
            if !headers.contains_key("Accept-Encoding") && !headers.contains_key("Range") {
                out.push_str("Accept-Encoding: gzip\r\n");
            }
        }
        Client::Probe => out.push_str("Connection: close\r\n"),
    }
    out.push_str("\r\n");
    out.into_bytes()
}
