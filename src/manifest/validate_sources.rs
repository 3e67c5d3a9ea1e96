//! Validation of the API data a pod reads, after the API server's rules
//! [pkg/apis/core/validation/validation.go]: configMap, secret, downwardAPI and projected
//! volumes (names, item paths, file modes, field paths) and the env sources (`envFrom`,
//! `configMapKeyRef`, `secretKeyRef`, field references).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, EnvFromSource, EnvVarSource, KeyToPath, ProjectedVolumeSource, Volume,
};

use super::objects::config_key;
use super::support::{
    SUBSCRIPTED_FIELD_REFS, SUPPORTED_FIELD_REFS, SUPPORTED_RESOURCE_FIELD_REFS,
    SUPPORTED_VOLUME_FIELD_REFS,
};
use super::validate::Check;
use super::Reason;

const FILE_MODE_RULE: &str = "must be a number between 0 and 0777 (octal), both inclusive";
/// The relaxed env name rule, GA since Kubernetes 1.34 [apimachinery IsRelaxedEnvVarName].
pub(crate) const RELAXED_ENV_NAME_RULE: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";

fn mode(path: &str, mode: Option<i32>, check: &mut Check) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        check.invalid(path, format!("{m}: {FILE_MODE_RULE}"));
    }
}

/// A path inside a volume: relative, without `..`, not starting with `..`
/// [validateLocalNonReservedPath].
fn local_path(path: &str, value: &str, check: &mut Check) {
    if value.is_empty() {
        check.push(path, Reason::Required);
    } else if value.starts_with('/') {
        check.invalid(path, format!("{value:?}: must be a relative path"));
    } else if value.split('/').any(|p| p == "..") {
        check.invalid(path, format!("{value:?}: must not contain '..'"));
    } else if value.starts_with("..") {
        check.invalid(path, format!("{value:?}: must not start with '..'"));
    }
}

fn required(path: &str, value: &str, check: &mut Check) {
    if value.is_empty() {
        check.push(path, Reason::Required);
    }
}

fn items(path: &str, items: Option<&[KeyToPath]>, check: &mut Check) {
    for (i, item) in items.into_iter().flatten().enumerate() {
        let p = format!("{path}.items[{i}]");
        required(&format!("{p}.key"), &item.key, check);
        local_path(&format!("{p}.path"), &item.path, check);
        mode(&format!("{p}.mode"), item.mode, check);
    }
}

/// `fieldPath` among `allowed`, or a subscripted labels/annotations path.
fn field_path(path: &str, value: &str, allowed: &[&'static str], check: &mut Check) {
    let subscripted = crate::volume::downward_api::split_subscript(value)
        .is_some_and(|(field, key)| SUBSCRIPTED_FIELD_REFS.contains(&field) && !key.is_empty());
    if allowed.contains(&value) || subscripted {
        return;
    }
    // validateObjectFieldSelector: field.NotSupported with the sorted list of valid paths.
    let mut supported = allowed.to_vec();
    supported.sort_unstable();
    check.push(
        path,
        Reason::Unsupported {
            value: value.to_string(),
            supported,
        },
    );
}

fn resource(path: &str, value: &str, check: &mut Check) {
    if SUPPORTED_RESOURCE_FIELD_REFS.contains(&value) {
        return;
    }
    if value.starts_with("limits.") || value.starts_with("requests.") {
        check.push(
            path,
            Reason::NotSupported(Some(format!("resource {value}"))),
        );
    } else {
        check.invalid(
            path,
            format!(
                "{value:?}: supported values: {}",
                SUPPORTED_RESOURCE_FIELD_REFS.join(", ")
            ),
        );
    }
}

fn downward_items(path: &str, files: &[DownwardAPIVolumeFile], check: &mut Check) {
    for (i, f) in files.iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        local_path(&format!("{p}.path"), &f.path, check);
        mode(&format!("{p}.mode"), f.mode, check);
        match (&f.field_ref, &f.resource_field_ref) {
            (Some(r), None) => field_path(
                &format!("{p}.fieldRef.fieldPath"),
                &r.field_path,
                SUPPORTED_VOLUME_FIELD_REFS,
                check,
            ),
            (None, Some(r)) => {
                // A volume is not inside one container: it must say whose resources.
                if r.container_name.as_deref().unwrap_or_default().is_empty() {
                    check.push(
                        format!("{p}.resourceFieldRef.containerName"),
                        Reason::Required,
                    );
                }
                resource(
                    &format!("{p}.resourceFieldRef.resource"),
                    &r.resource,
                    check,
                );
            }
            (Some(_), Some(_)) => check.invalid(
                &p,
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ),
            (None, None) => check.invalid(&p, "one of fieldRef and resourceFieldRef is required"),
        }
    }
}

fn projected(path: &str, p: &ProjectedVolumeSource, check: &mut Check) {
    mode(&format!("{path}.defaultMode"), p.default_mode, check);
    let mut seen = HashSet::new();
    for (i, s) in p.sources.iter().flatten().enumerate() {
        let sp = format!("{path}.sources[{i}]");
        let kinds = [
            s.config_map.is_some(),
            s.secret.is_some(),
            s.downward_api.is_some(),
            s.service_account_token.is_some(),
            s.cluster_trust_bundle.is_some(),
            s.pod_certificate.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            check.invalid(&sp, "may not specify more than 1 volume type per source");
        }
        let mut paths: Vec<(String, &str)> = Vec::new();
        if let Some(cm) = &s.config_map {
            required(&format!("{sp}.configMap.name"), &cm.name, check);
            items(&format!("{sp}.configMap"), cm.items.as_deref(), check);
            paths.extend(key_paths(&format!("{sp}.configMap"), cm.items.as_deref()));
        }
        if let Some(sec) = &s.secret {
            required(&format!("{sp}.secret.name"), &sec.name, check);
            items(&format!("{sp}.secret"), sec.items.as_deref(), check);
            paths.extend(key_paths(&format!("{sp}.secret"), sec.items.as_deref()));
        }
        if let Some(d) = &s.downward_api {
            let files = d.items.as_deref().unwrap_or_default();
            downward_items(&format!("{sp}.downwardAPI"), files, check);
            for (j, f) in files.iter().enumerate() {
                paths.push((format!("{sp}.downwardAPI.items[{j}].path"), &f.path));
            }
        }
        for (p, value) in paths {
            if !seen.insert(value) {
                check.invalid(p, format!("{value:?}: conflicting duplicate paths"));
            }
        }
    }
}

fn key_paths<'a>(path: &str, items: Option<&'a [KeyToPath]>) -> Vec<(String, &'a str)> {
    items
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(j, k)| (format!("{path}.items[{j}].path"), k.path.as_str()))
        .collect()
}

/// The API-data sources of one volume.
pub(crate) fn volume(path: &str, v: &Volume, check: &mut Check) {
    if let Some(cm) = &v.config_map {
        let p = format!("{path}.configMap");
        required(&format!("{p}.name"), &cm.name, check);
        mode(&format!("{p}.defaultMode"), cm.default_mode, check);
        items(&p, cm.items.as_deref(), check);
    }
    if let Some(s) = &v.secret {
        let p = format!("{path}.secret");
        required(
            &format!("{p}.secretName"),
            s.secret_name.as_deref().unwrap_or_default(),
            check,
        );
        mode(&format!("{p}.defaultMode"), s.default_mode, check);
        items(&p, s.items.as_deref(), check);
    }
    if let Some(d) = &v.downward_api {
        let p = format!("{path}.downwardAPI");
        mode(&format!("{p}.defaultMode"), d.default_mode, check);
        downward_items(&p, d.items.as_deref().unwrap_or_default(), check);
    }
    if let Some(p) = &v.projected {
        projected(&format!("{path}.projected"), p, check);
    }
}

/// An env var's `valueFrom` sources other than resourceFieldRef (checked with the env).
pub(crate) fn env_value_from(path: &str, from: &EnvVarSource, check: &mut Check) {
    if let Some(f) = &from.field_ref {
        field_path(
            &format!("{path}.fieldRef.fieldPath"),
            &f.field_path,
            SUPPORTED_FIELD_REFS,
            check,
        );
    }
    let key_refs = [
        from.config_map_key_ref
            .as_ref()
            .map(|r| ("configMapKeyRef", r.name.as_str(), r.key.as_str())),
        from.secret_key_ref
            .as_ref()
            .map(|r| ("secretKeyRef", r.name.as_str(), r.key.as_str())),
    ];
    for (kind, name, key) in key_refs.into_iter().flatten() {
        required(&format!("{path}.{kind}.name"), name, check);
        let kp = format!("{path}.{kind}.key");
        if key.is_empty() {
            check.push(kp, Reason::Required);
        } else {
            config_key(&kp, key, check);
        }
    }
    let sources = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
        from.file_key_ref.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => check.invalid(
            path,
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ),
        1 => {}
        _ => check.invalid(path, "may not have more than one field specified at a time"),
    }
}

/// One `envFrom` entry [ValidateEnvFrom].
pub(crate) fn env_from(path: &str, source: &EnvFromSource, check: &mut Check) {
    if let Some(prefix) = source.prefix.as_deref().filter(|p| !p.is_empty()) {
        if !super::names::is_env_name(prefix) {
            check.invalid(
                format!("{path}.prefix"),
                format!("{prefix:?}: {RELAXED_ENV_NAME_RULE}"),
            );
        }
    }
    match (&source.config_map_ref, &source.secret_ref) {
        (Some(r), None) => required(&format!("{path}.configMapRef.name"), &r.name, check),
        (None, Some(r)) => required(&format!("{path}.secretRef.name"), &r.name, check),
        (None, None) => check.invalid(path, "must specify one of: `configMapRef` or `secretRef`"),
        (Some(_), Some(_)) => {
            check.invalid(path, "may not have more than one field specified at a time")
        }
    }
}
