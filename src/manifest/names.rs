//! Name rules of Kubernetes objects [apimachinery/pkg/util/validation]: DNS-1123 labels and
//! subdomains, environment variable names, port names.

/// RFC 1123 label: lower case alphanumerics or '-', alphanumeric at both ends, 1 to 63 long.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 long.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Environment variable name under the relaxed rule, GA since Kubernetes 1.34 (the API server
/// for `env[].name` and `envFrom[].prefix`, the kubelet for `envFrom` keys): any printable
/// ASCII character but `=` [apimachinery validation IsRelaxedEnvVarName].
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The part of a qualified name after any prefix, and a label value: alphanumerics, '-', '_'
/// or '.', alphanumeric at both ends, at most 63 long.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: `name` or `prefix/name`, the prefix a DNS subdomain
/// [IsQualifiedName].
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_name_part(name),
        None => is_name_part(s),
    }
}

/// The API server's words for an invalid label value [IsValidLabelValue].
pub const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of \
alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character \
(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
/// The API server's words for an invalid key [IsQualifiedName].
pub const QUALIFIED_NAME_RULE: &str = "name part must consist of alphanumeric characters, '-', \
'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or \
'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// A label value: empty, or a name part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

/// IANA service name, as ports are named [RFC 6335].
pub fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a.".repeat(127)));
        assert!(is_env_name("MY_VAR.x-1"));
        assert!(is_env_name("1X y:z"));
        assert!(!is_env_name("A=B"));
        assert!(!is_env_name("tab\t"));
        assert!(!is_env_name("é"));
        assert!(!is_env_name(""));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("tier"));
        assert!(!is_qualified_name("-x"));
        assert!(!is_qualified_name("Bad_Prefix/x"));
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_b-c"));
        assert!(!is_label_value("a b"));
        assert!(is_port_name("http"));
        assert!(!is_port_name("80"));
        assert!(!is_port_name("a--b"));
    }
}
