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

/// The API server's explanations of a refused value, word for word
/// [apimachinery/pkg/util/validation/validation.go]: each function returns every message that
/// applies, as the API server reports one field error per message.
pub mod messages {
    const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
    const DNS1123_SUBDOMAIN_FMT: &str =
        "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
    const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
        alphanumeric characters or '-', and must start and end with an alphanumeric character";
    const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower \
        case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
        character";
    const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
    const CONFIG_KEY_MSG: &str =
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
    const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
    const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist of \
        alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
    /// DNS1123SubdomainMaxLength, also the longest config key.
    const SUBDOMAIN_MAX: usize = 253;
    const LABEL_MAX: usize = 63;

    /// `MaxLenError`.
    pub fn max_len(length: usize) -> String {
        format!("must be no more than {length} characters")
    }

    /// `RegexError`: the message, then the examples and the regex, as
    /// `msg (e.g. 'a',  or 'b', regex used for validation is 'RE')`.
    pub fn regex(msg: &str, fmt: &str, examples: &[&str]) -> String {
        if examples.is_empty() {
            return format!("{msg} (regex used for validation is '{fmt}')");
        }
        let mut out = format!("{msg} (e.g. ");
        for (i, e) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push_str(&format!("'{e}', "));
        }
        out.push_str(&format!("regex used for validation is '{fmt}')"));
        out
    }

    /// `IsDNS1123Subdomain`: object names, storage class names.
    pub fn dns1123_subdomain(value: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if value.len() > SUBDOMAIN_MAX {
            errs.push(max_len(SUBDOMAIN_MAX));
        }
        if value.is_empty() || !subdomain_shape(value) {
            errs.push(regex(
                DNS1123_SUBDOMAIN_MSG,
                DNS1123_SUBDOMAIN_FMT,
                &["example.com"],
            ));
        }
        errs
    }

    /// `IsDNS1123Label`: namespace names.
    pub fn dns1123_label(value: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if value.len() > LABEL_MAX {
            errs.push(max_len(LABEL_MAX));
        }
        if !label_shape(value) {
            if subdomain_shape(value) {
                // A valid subdomain that is not a label (length was checked above): dots.
                errs.push("must not contain dots".to_string());
            } else {
                errs.push(regex(
                    DNS1123_LABEL_MSG,
                    DNS1123_LABEL_FMT,
                    &["my-name", "123-abc"],
                ));
            }
        }
        errs
    }

    /// `IsConfigMapKey`: keys of ConfigMaps and Secrets.
    pub fn config_key(key: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if key.len() > SUBDOMAIN_MAX {
            errs.push(max_len(SUBDOMAIN_MAX));
        }
        let charset = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        let rule = (
            CONFIG_KEY_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"][..],
        );
        file_name_rules(errs, !key.is_empty() && key.bytes().all(charset), rule, key)
    }

    /// `IsEnvVarName`: the keys of an env file (`--from-env-file`).
    pub fn env_var_name(name: &str) -> Vec<String> {
        let charset = |b: u8| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_' | b'.');
        let b = name.as_bytes();
        let ok =
            !b.is_empty() && charset(b[0]) && b.iter().all(|c| charset(*c) || c.is_ascii_digit());
        let examples = &["my.env-name", "MY_ENV.NAME", "MyEnvName1"][..];
        file_name_rules(
            Vec::new(),
            ok,
            (ENV_VAR_NAME_MSG, ENV_VAR_NAME_FMT, examples),
            name,
        )
    }

    /// The regex rule's message unless `matches`, then `hasChDirPrefix`'s.
    fn file_name_rules(
        mut errs: Vec<String>,
        matches: bool,
        (msg, fmt, examples): (&str, &str, &[&str]),
        value: &str,
    ) -> Vec<String> {
        if !matches {
            errs.push(regex(msg, fmt, examples));
        }
        errs.extend(ch_dir_prefix(value));
        errs
    }

    /// `hasChDirPrefix`: a key is a file name in a volume, so not `.`, `..` or `..x`.
    fn ch_dir_prefix(value: &str) -> Option<String> {
        match value {
            "." => Some("must not be '.'".into()),
            ".." => Some("must not be '..'".into()),
            v if v.starts_with("..") => Some("must not start with '..'".into()),
            _ => None,
        }
    }

    const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
    const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
        and must start and end with an alphanumeric character";
    const QUALIFIED_NAME_EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];
    const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of \
        alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
        character";

    /// `IsQualifiedName`: label keys, annotation keys (`[prefix/]name`).
    pub fn qualified_name(value: &str) -> Vec<String> {
        let mut errs = Vec::new();
        let parts: Vec<&str> = value.split('/').collect();
        let name = match parts[..] {
            [name] => name,
            [prefix, name] => {
                if prefix.is_empty() {
                    errs.push("prefix part must be non-empty".to_string());
                } else {
                    let bad = dns1123_subdomain(prefix);
                    errs.extend(bad.into_iter().map(|m| format!("prefix part {m}")));
                }
                name
            }
            _ => {
                let rule = regex(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    QUALIFIED_NAME_EXAMPLES,
                );
                errs.push(format!("a qualified name {rule} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
                return errs;
            }
        };
        if name.is_empty() {
            errs.push("name part must be non-empty".to_string());
        } else if name.len() > LABEL_MAX {
            errs.push(format!("name part {}", max_len(LABEL_MAX)));
        }
        if !qualified_shape(name) {
            let rule = regex(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                QUALIFIED_NAME_EXAMPLES,
            );
            errs.push(format!("name part {rule}"));
        }
        errs
    }

    /// `IsValidLabelValue`.
    pub fn label_value(value: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if value.len() > LABEL_MAX {
            errs.push(max_len(LABEL_MAX));
        }
        if !value.is_empty() && !qualified_shape(value) {
            errs.push(regex(
                LABEL_VALUE_MSG,
                LABEL_VALUE_FMT,
                &["MyValue", "my_value", "12345"],
            ));
        }
        errs
    }

    /// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
    fn qualified_shape(s: &str) -> bool {
        let b = s.as_bytes();
        let ext = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(ext)
    }

    /// The regex of a label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`), whatever the length.
    fn label_shape(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    }

    /// The regex of a subdomain: dot-separated labels, whatever the length.
    fn subdomain_shape(s: &str) -> bool {
        s.split('.').all(label_shape)
    }
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
