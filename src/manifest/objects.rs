//! The objects a manifest may hold besides Pods: ConfigMaps, Secrets and
//! PersistentVolumeClaims. Strict decoding, the defaults the API server applies, and its
//! validation rules with its field paths and its words [pkg/apis/core/validation/validation.go
//! ValidateConfigMap, ValidateSecret, ValidatePersistentVolumeClaimSpec; apimachinery
//! ValidateObjectMeta]. Map keys are checked in sorted order (the API server walks Go maps, in
//! no fixed order).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::Value;

use super::decode::decode_strict;
use super::defaults::DEFAULT_NAMESPACE;
use super::names::messages;
use super::quantity::parse_quantity;
use super::support::{self, Table};
use super::validate::Check;
use super::{go_quote, Problem, Reason};

/// The most a ConfigMap's or a Secret's data may hold [core.MaxSecretSize].
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Secret types and the keys they require [core/v1 types.go].
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";
pub const SECRET_TYPE_SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_TYPE_BASIC_AUTH: &str = "kubernetes.io/basic-auth";
pub const SECRET_TYPE_SSH_AUTH: &str = "kubernetes.io/ssh-auth";
pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The key `describe secret` shows in clear for a service-account token.
pub const SERVICE_ACCOUNT_TOKEN_KEY: &str = "token";
pub const DOCKERCFG_KEY: &str = ".dockercfg";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const BASIC_AUTH_USERNAME_KEY: &str = "username";
pub const BASIC_AUTH_PASSWORD_KEY: &str = "password";
pub const SSH_AUTH_PRIVATE_KEY: &str = "ssh-privatekey";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

/// Access modes of a claim [core/v1 types.go PersistentVolumeAccessMode], sorted as the API
/// server lists them.
pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
pub const ACCESS_MODE_RWOP: &str = "ReadWriteOncePod";
pub const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
pub const DEFAULT_VOLUME_MODE: &str = "Filesystem";
/// The storage class of peapod's local-path provisioner, the default class (as in k3s).
pub const DEFAULT_STORAGE_CLASS: &str = "local-path";
pub const CLAIM_PHASE_PENDING: &str = "Pending";
pub const CLAIM_PHASE_BOUND: &str = "Bound";
pub const RESOURCE_STORAGE: &str = "storage";

/// The bad value of an unreadable secret key, never its contents.
const REDACTED: &str = "<secret contents redacted>";

pub(crate) fn check_config_map(
    value: &Value,
    doc: usize,
    prefix: &str,
) -> Result<ConfigMap, Vec<Problem>> {
    let mut cm: ConfigMap = decode_strict(value, doc, prefix, Table::ConfigMap)?;
    let mut problems = support::check(&cm, Table::ConfigMap, doc, prefix);
    default_namespace(&mut cm.metadata);
    let mut check = Check {
        doc,
        out: &mut problems,
    };
    validate_meta(&cm.metadata, &mut check);
    let binary = cm.binary_data.clone().unwrap_or_default();
    let mut total = 0;
    for (key, value) in cm.data.iter().flatten() {
        config_key(&format!("data[{key}]"), key, &mut check);
        if binary.contains_key(key) {
            check.invalid(
                format!("data[{key}]"),
                format!("{}: duplicate of key present in binaryData", go_quote(key)),
            );
        }
        total += value.len();
    }
    for (key, value) in &binary {
        config_key(&format!("binaryData[{key}]"), key, &mut check);
        total += value.0.len();
    }
    if total > MAX_DATA_BYTES {
        // The API server names the whole object with an empty path, printed `[]`.
        check.push("[]", Reason::TooLong(MAX_DATA_BYTES));
    }
    finish(cm, problems, prefix)
}

pub(crate) fn check_secret(
    value: &Value,
    doc: usize,
    prefix: &str,
) -> Result<Secret, Vec<Problem>> {
    let mut secret: Secret = decode_strict(value, doc, prefix, Table::Secret)?;
    let mut problems = support::check(&secret, Table::Secret, doc, prefix);
    default_namespace(&mut secret.metadata);
    // The API server merges stringData into data (stringData wins) and drops it.
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in strings {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    if secret.type_.as_deref().unwrap_or_default().is_empty() {
        secret.type_ = Some(SECRET_TYPE_OPAQUE.to_string());
    }
    let mut check = Check {
        doc,
        out: &mut problems,
    };
    validate_meta(&secret.metadata, &mut check);
    let data = secret.data.clone().unwrap_or_default();
    let mut total = 0;
    for (key, value) in &data {
        config_key(&format!("data[{key}]"), key, &mut check);
        total += value.0.len();
    }
    if total > MAX_DATA_BYTES {
        check.push("data", Reason::TooLong(MAX_DATA_BYTES));
    }
    check_secret_type(&secret, &data, &mut check);
    finish(secret, problems, prefix)
}

/// The keys each Secret type requires [ValidateSecret's switch on the type].
fn check_secret_type(secret: &Secret, data: &BTreeMap<String, ByteString>, check: &mut Check) {
    let required = |check: &mut Check, key: &str| {
        check.push(format!("data[{key}]"), Reason::Required);
    };
    // Present and a JSON object, as `json.Unmarshal` into a map wants.
    let json_object = |check: &mut Check, key: &str| match data.get(key) {
        None => required(check, key),
        Some(v) => {
            if let Some(why) = go_json_object_error(&v.0) {
                check.invalid(
                    format!("data[{key}]"),
                    format!("{}: {why}", go_quote(REDACTED)),
                );
            }
        }
    };
    match secret.type_.as_deref().unwrap_or_default() {
        SECRET_TYPE_SERVICE_ACCOUNT_TOKEN => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SERVICE_ACCOUNT_NAME_ANNOTATION))
                .is_some_and(|n| !n.is_empty());
            if !named {
                check.push(
                    format!("metadata.annotations[{SERVICE_ACCOUNT_NAME_ANNOTATION}]"),
                    Reason::Required,
                );
            }
        }
        SECRET_TYPE_DOCKERCFG => json_object(check, DOCKERCFG_KEY),
        SECRET_TYPE_DOCKER_CONFIG_JSON => json_object(check, DOCKER_CONFIG_JSON_KEY),
        // Either may be empty, but one must be there.
        SECRET_TYPE_BASIC_AUTH
            if !data.contains_key(BASIC_AUTH_USERNAME_KEY)
                && !data.contains_key(BASIC_AUTH_PASSWORD_KEY) =>
        {
            required(check, BASIC_AUTH_USERNAME_KEY);
            required(check, BASIC_AUTH_PASSWORD_KEY);
        }
        // An empty private key counts as missing.
        SECRET_TYPE_SSH_AUTH
            if data
                .get(SSH_AUTH_PRIVATE_KEY)
                .is_none_or(|v| v.0.is_empty()) =>
        {
            required(check, SSH_AUTH_PRIVATE_KEY)
        }
        SECRET_TYPE_TLS => {
            for key in [TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY] {
                if !data.contains_key(key) {
                    required(check, key);
                }
            }
        }
        _ => {}
    }
}

/// Why Go's `json.Unmarshal(data, &map[string]interface{}{})` fails, in Go's words, or None.
/// Syntax errors name the offending character as Go does for a bad value start; Go words some
/// other positions differently ("after object key").
fn go_json_object_error(data: &[u8]) -> Option<String> {
    let kind = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(_) | Value::Null) => return None,
        Ok(Value::Array(_)) => "array",
        Ok(Value::String(_)) => "string",
        Ok(Value::Number(_)) => "number",
        Ok(Value::Bool(_)) => "bool",
        Err(e) if e.is_eof() => return Some("unexpected end of JSON input".into()),
        Err(e) => {
            let text = String::from_utf8_lossy(data);
            let bad = text
                .lines()
                .nth(e.line().saturating_sub(1))
                .and_then(|l| l.chars().nth(e.column().saturating_sub(1)));
            return Some(match bad {
                Some('\'') => "invalid character '\\'' looking for beginning of value".into(),
                Some(c) => format!("invalid character '{c}' looking for beginning of value"),
                None => "unexpected end of JSON input".into(),
            });
        }
    };
    Some(format!(
        "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    ))
}

pub(crate) fn check_claim(
    value: &Value,
    doc: usize,
    prefix: &str,
) -> Result<PersistentVolumeClaim, Vec<Problem>> {
    let mut claim: PersistentVolumeClaim =
        decode_strict(value, doc, prefix, Table::PersistentVolumeClaim)?;
    let mut problems = support::check(&claim, Table::PersistentVolumeClaim, doc, prefix);
    default_namespace(&mut claim.metadata);
    // Written by the binder, ignored on create as the API server does; a new claim is
    // Pending [core/v1 defaults.go SetDefaults_PersistentVolumeClaim].
    claim.status = Some(PersistentVolumeClaimStatus {
        phase: Some(CLAIM_PHASE_PENDING.to_string()),
        ..Default::default()
    });
    let spec = claim
        .spec
        .get_or_insert_with(PersistentVolumeClaimSpec::default);
    if spec.volume_mode.as_deref().unwrap_or_default().is_empty() {
        spec.volume_mode = Some(DEFAULT_VOLUME_MODE.to_string());
    }
    // The DefaultStorageClass admission plugin: an unset class (not an empty one) gets the
    // default class.
    if spec.storage_class_name.is_none() {
        spec.storage_class_name = Some(DEFAULT_STORAGE_CLASS.to_string());
    }
    let mut check = Check {
        doc,
        out: &mut problems,
    };
    validate_meta(&claim.metadata, &mut check);
    let spec = claim.spec.clone().unwrap_or_default();
    check_claim_spec(&spec, &mut check);
    finish(claim, problems, prefix)
}

/// ValidatePersistentVolumeClaimSpec, in its order.
fn check_claim_spec(spec: &PersistentVolumeClaimSpec, check: &mut Check) {
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.is_empty() {
        check.push(
            "spec.accessModes",
            Reason::RequiredDetail("at least 1 access mode is required".into()),
        );
    }
    let (mut once_pod, mut other) = (false, false);
    for mode in &modes {
        if !ACCESS_MODES.contains(&mode.as_str()) {
            check.push(
                "spec.accessModes",
                Reason::Unsupported {
                    value: mode.clone(),
                    supported: ACCESS_MODES.to_vec(),
                },
            );
        } else if mode == ACCESS_MODE_RWOP {
            once_pod = true;
        } else {
            other = true;
        }
    }
    if once_pod && other {
        check.push(
            "spec.accessModes",
            Reason::Forbidden("may not use ReadWriteOncePod with other access modes".into()),
        );
    }
    let storage_path = format!("spec.resources[{RESOURCE_STORAGE}]");
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(RESOURCE_STORAGE))
    {
        None => check.push(storage_path, Reason::Required),
        Some(q) => match parse_quantity(&q.0) {
            Ok(v) if v.is_negative() || v.value_ceil() == 0 => {
                // The API server shows the canonical quantity: zero is "0".
                let shown = if v.is_negative() { q.0.as_str() } else { "0" };
                check.invalid(
                    storage_path,
                    format!("{}: must be greater than zero", go_quote(shown)),
                )
            }
            Ok(_) => {}
            Err(e) => check.invalid(storage_path, e.to_string()),
        },
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        for msg in messages::dns1123_subdomain(class) {
            check.invalid(
                "spec.storageClassName",
                format!("{}: {msg}", go_quote(class)),
            );
        }
    }
    if let Some(mode) = spec.volume_mode.as_deref() {
        if !VOLUME_MODES.contains(&mode) {
            check.push(
                "spec.volumeMode",
                Reason::Unsupported {
                    value: mode.to_string(),
                    supported: VOLUME_MODES.to_vec(),
                },
            );
        }
    }
}

fn default_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().unwrap_or_default().is_empty() {
        meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
    }
}

/// Name and namespace, as ValidateObjectMeta checks every namespaced object: the name a
/// DNS-1123 subdomain, the namespace a DNS-1123 label.
fn validate_meta(meta: &ObjectMeta, check: &mut Check) {
    match meta.name.as_deref() {
        None | Some("") => check.push(
            "metadata.name",
            Reason::RequiredDetail("name or generateName is required".into()),
        ),
        Some(name) => {
            for msg in messages::dns1123_subdomain(name) {
                check.invalid("metadata.name", format!("{}: {msg}", go_quote(name)));
            }
        }
    }
    if let Some(ns) = meta.namespace.as_deref() {
        for msg in messages::dns1123_label(ns) {
            check.invalid("metadata.namespace", format!("{}: {msg}", go_quote(ns)));
        }
    }
    validate_labels(meta, check);
}

/// The most bytes of annotations an object may carry (TotalAnnotationSizeLimitB).
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// ValidateLabels and ValidateAnnotations [apimachinery/pkg/apis/meta/v1/validation,
/// pkg/api/validation/objectmeta.go]: label keys qualified names and values label values;
/// annotation keys qualified names (lower-cased first) and all of them at most 256 KiB.
pub(crate) fn validate_labels(meta: &ObjectMeta, check: &mut Check) {
    const LABELS: &str = "metadata.labels";
    const ANNOTATIONS: &str = "metadata.annotations";
    for (key, value) in meta.labels.iter().flatten() {
        for msg in messages::qualified_name(key) {
            check.invalid(LABELS, format!("{}: {msg}", go_quote(key)));
        }
        for msg in messages::label_value(value) {
            check.invalid(LABELS, format!("{}: {msg}", go_quote(value)));
        }
    }
    let mut total = 0;
    for (key, value) in meta.annotations.iter().flatten() {
        for msg in messages::qualified_name(&key.to_lowercase()) {
            check.invalid(ANNOTATIONS, format!("{}: {msg}", go_quote(key)));
        }
        total += key.len() + value.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        check.push(ANNOTATIONS, Reason::TooLong(ANNOTATIONS_MAX_BYTES));
    }
}

/// One field error a message of `IsConfigMapKey`.
pub(crate) fn config_key(path: &str, key: &str, check: &mut Check) {
    for msg in messages::config_key(key) {
        check.invalid(path, format!("{}: {msg}", go_quote(key)));
    }
}

/// Locates the problems found after decoding in the object's document, and returns the object
/// when there are none.
fn finish<T>(object: T, mut problems: Vec<Problem>, prefix: &str) -> Result<T, Vec<Problem>> {
    if problems.is_empty() {
        return Ok(object);
    }
    for p in &mut problems {
        if !p.path.starts_with(prefix) {
            p.path = format!("{prefix}{}", p.path);
        }
    }
    Err(problems)
}
