//! Image references: Docker-style normalization (`busybox` -> `docker.io/library/busybox:latest`)
//! and splitting a normalized reference into repository and tag. Pure string work, no I/O.

use super::error::ImageError;

/// The registry assumed when a reference names none, as Docker does.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of Docker Hub's official images.
pub const OFFICIAL_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";
/// What `repository`/`tag` show for an image known only by digest, as `docker images` does.
pub const NO_TAG: &str = "<none>";

fn invalid(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Normalizes a reference the way Docker does: adds `docker.io`, `library/` for single-name
/// Docker Hub images, and `:latest` when neither a tag nor a digest is given. A digest is kept.
pub fn normalize_reference(r: &str) -> Result<String, ImageError> {
    if r.is_empty() {
        return Err(invalid(r, "empty reference"));
    }
    let (name_tag, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        check_digest(r, d)?;
    }
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(t) = tag {
        check_tag(r, t)?;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let mut domain = DEFAULT_DOMAIN.to_string();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            check_domain(r, first)?;
            domain = if first == "index.docker.io" {
                DEFAULT_DOMAIN.to_string()
            } else {
                first.to_string()
            };
            parts.remove(0);
        }
    }
    for p in &parts {
        check_component(r, p)?;
    }
    if domain == DEFAULT_DOMAIN && parts.len() == 1 {
        parts.insert(0, OFFICIAL_NAMESPACE);
    }
    let mut out = format!("{domain}/{}", parts.join("/"));
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => {
            out.push(':');
            out.push_str(DEFAULT_TAG);
        }
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

/// True when `s` is only a tag (`latest`, `v1.2`): no repository, so it cannot name an image.
pub fn is_bare_tag(s: &str) -> bool {
    !s.contains('/') && !s.contains(':') && !s.contains('@')
}

/// Splits a normalized reference into (repository, tag); a digest-only reference has tag
/// [`NO_TAG`].
pub fn split_reference(normalized: &str) -> (String, String) {
    let name_tag = normalized.split('@').next().unwrap_or(normalized);
    match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => {
            (name_tag[..i].to_string(), name_tag[i + 1..].to_string())
        }
        _ => (name_tag.to_string(), NO_TAG.to_string()),
    }
}

fn check_digest(r: &str, d: &str) -> Result<(), ImageError> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        return Err(invalid(r, "digest must be sha256:<64 hex digits>"));
    };
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(
            r,
            "digest must be sha256:<64 lowercase hex digits>",
        ));
    }
    Ok(())
}

fn check_tag(r: &str, t: &str) -> Result<(), ImageError> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(r, format!("invalid tag {t:?}")))
    }
}

fn check_domain(r: &str, d: &str) -> Result<(), ImageError> {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-']);
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(invalid(r, format!("invalid registry host {d:?}")))
    }
}

fn check_component(r: &str, c: &str) -> Result<(), ImageError> {
    if c.is_empty() {
        return Err(invalid(r, "empty path component"));
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(r, "repository name must be lowercase"));
    }
    let ok = c
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            r,
            format!("invalid repository path component {c:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalizes_like_docker() {
        let n = |s: &str| normalize_reference(s).unwrap();
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            n("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(n("host:5000/a/b"), "host:5000/a/b:latest");
        assert_eq!(n("localhost/x:v1"), "localhost/x:v1");
        assert_eq!(n("quay.io/a/b:c"), "quay.io/a/b:c");
        assert_eq!(
            n(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            n(&format!("busybox:1@{D}")),
            format!("docker.io/library/busybox:1@{D}")
        );
    }

    #[test]
    fn rejects_bad_references_naming_them() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "busybox:",
            "busybox@sha256:12",
            "a/-b",
            "h:x/y/z:t:u",
        ] {
            let err = normalize_reference(bad).unwrap_err();
            assert!(matches!(err, ImageError::InvalidReference { .. }), "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn splits_repository_and_tag() {
        assert_eq!(
            split_reference("host:5000/a/b:v1"),
            ("host:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            split_reference(&format!("docker.io/library/b@{D}")),
            ("docker.io/library/b".into(), NO_TAG.into())
        );
        assert!(is_bare_tag("latest"));
        assert!(!is_bare_tag("busybox:latest"));
    }
}
