//! The objects a manifest may hold besides Pods: ConfigMaps, Secrets and
//! PersistentVolumeClaims. Strict decoding, the defaults the API server applies, and its
//! validation rules [pkg/apis/core/validation/validation.go ValidateConfigMap, ValidateSecret,
//! ValidatePersistentVolumeClaim], with its field paths.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use serde_json::Value;

use super::decode::decode_strict;
use super::defaults::DEFAULT_NAMESPACE;
use super::names::is_dns1123_subdomain;
use super::quantity::parse_quantity;
use super::support::{self, Table};
use super::validate::Check;
use super::{Problem, Reason};

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
pub const DOCKERCFG_KEY: &str = ".dockercfg";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const BASIC_AUTH_USERNAME_KEY: &str = "username";
pub const BASIC_AUTH_PASSWORD_KEY: &str = "password";
pub const SSH_AUTH_PRIVATE_KEY: &str = "ssh-privatekey";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

/// Access modes of a claim [core/v1 types.go PersistentVolumeAccessMode].
pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
pub const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
pub const DEFAULT_VOLUME_MODE: &str = "Filesystem";
/// The storage class of peapod's local-path provisioner, the default class (as in k3s).
pub const DEFAULT_STORAGE_CLASS: &str = "local-path";
pub const CLAIM_PHASE_PENDING: &str = "Pending";

const CONFIG_KEY_RULE: &str = "a valid config key must consist of alphanumeric characters, \
'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation \
is '[-._a-zA-Z0-9]+')";

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
    let mut total = 0;
    for (key, value) in cm.data.iter().flatten() {
        config_key(&format!("data[{key}]"), key, &mut check);
        total += value.len();
    }
    for (key, value) in cm.binary_data.iter().flatten() {
        config_key(&format!("binaryData[{key}]"), key, &mut check);
        if cm.data.as_ref().is_some_and(|d| d.contains_key(key)) {
            check.invalid(
                "binaryData",
                format!("{key:?}: duplicate of key present in data"),
            );
        }
        total += value.0.len();
    }
    if total > MAX_DATA_BYTES {
        check.push("data", Reason::TooLong(MAX_DATA_BYTES));
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
    let required = |check: &mut Check, key: &str| {
        if !data.contains_key(key) {
            check.push(format!("data[{key}]"), Reason::Required);
        }
    };
    let json = |check: &mut Check, key: &str| {
        if let Some(v) = data.get(key) {
            if let Err(e) = serde_json::from_slice::<Value>(&v.0) {
                check.invalid(
                    format!("data[{key}]"),
                    format!("\"<secret contents redacted>\": {e}"),
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
        SECRET_TYPE_DOCKERCFG => {
            required(&mut check, DOCKERCFG_KEY);
            json(&mut check, DOCKERCFG_KEY);
        }
        SECRET_TYPE_DOCKER_CONFIG_JSON => {
            required(&mut check, DOCKER_CONFIG_JSON_KEY);
            json(&mut check, DOCKER_CONFIG_JSON_KEY);
        }
        SECRET_TYPE_BASIC_AUTH
            if !data.contains_key(BASIC_AUTH_USERNAME_KEY)
                && !data.contains_key(BASIC_AUTH_PASSWORD_KEY) =>
        {
            required(&mut check, BASIC_AUTH_USERNAME_KEY);
            required(&mut check, BASIC_AUTH_PASSWORD_KEY);
        }
        SECRET_TYPE_SSH_AUTH => required(&mut check, SSH_AUTH_PRIVATE_KEY),
        SECRET_TYPE_TLS => {
            required(&mut check, TLS_CERT_KEY);
            required(&mut check, TLS_PRIVATE_KEY_KEY);
        }
        _ => {}
    }
    finish(secret, problems, prefix)
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
    // Written by the provisioner, ignored on create as the API server does.
    claim.status = None;
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
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes.is_empty() {
        check.invalid(
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        );
    }
    for mode in &modes {
        check.one_of("spec.accessModes", mode, ACCESS_MODES);
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        check.invalid(
            "spec.accessModes",
            "may not use ReadWriteOncePod with other access modes",
        );
    }
    if let Some(mode) = spec.volume_mode.as_deref() {
        check.one_of("spec.volumeMode", mode, VOLUME_MODES);
    }
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => check.push("spec.resources[storage]", Reason::Required),
        Some(q) => match parse_quantity(&q.0) {
            Ok(v) if v.is_negative() || v.value_ceil() == 0 => check.invalid(
                "spec.resources[storage]",
                format!("{:?}: must be greater than zero", q.0),
            ),
            Ok(_) => {}
            Err(e) => check.invalid("spec.resources[storage]", e.to_string()),
        },
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        if !is_dns1123_subdomain(class) {
            check.invalid(
                "spec.storageClassName",
                format!("{class:?}: a lowercase RFC 1123 subdomain of at most 253 characters"),
            );
        }
    }
    finish(claim, problems, prefix)
}

fn default_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().unwrap_or_default().is_empty() {
        meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
    }
}

/// Name and namespace, as for every namespaced object.
fn validate_meta(meta: &ObjectMeta, check: &mut Check) {
    match meta.name.as_deref() {
        None | Some("") => check.push("metadata.name", Reason::Required),
        Some(name) if !is_dns1123_subdomain(name) => check.invalid(
            "metadata.name",
            format!("{name:?}: a lowercase RFC 1123 subdomain of at most 253 characters"),
        ),
        Some(_) => {}
    }
    if let Some(ns) = meta.namespace.as_deref() {
        check.label("metadata.namespace", ns);
    }
}

/// A key of a ConfigMap's or Secret's data [apimachinery validation IsConfigMapKey].
pub fn config_key_problem(key: &str) -> Option<String> {
    if key.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some(CONFIG_KEY_RULE.into());
    }
    match key {
        "." => Some("must not be '.'".into()),
        ".." => Some("must not be '..'".into()),
        k if k.starts_with("..") => Some("must not start with '..'".into()),
        _ => None,
    }
}

fn config_key(path: &str, key: &str, check: &mut Check) {
    if let Some(why) = config_key_problem(key) {
        check.invalid(path, format!("{key:?}: {why}"));
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
