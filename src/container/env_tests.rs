//! Env from ConfigMaps, Secrets and the downward API, and read-only API-data mounts.

use super::*;
use crate::object::Snapshot;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use std::collections::BTreeMap;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("prod".into()),
        ..Default::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn objects() -> Snapshot {
    Snapshot::empty("prod")
        .with_config_map(config_map(
            "cfg",
            &[("LEVEL", "debug"), ("1badkey", "x"), ("mode", "fast")],
        ))
        .with_secret(secret("db", &[("password", "s3cr3t"), ("USER", "admin")]))
}

fn build(env: serde_json::Value, objects: Snapshot) -> Result<Vec<String>, SpecError> {
    let mut f = Fixture::new(app(env), json!({}));
    f.objects = objects;
    f.build().map(|s| env_of(&s))
}

#[test]
fn key_refs_resolve_and_expand() {
    let env = build(
        json!({"env": [
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "BOTH", "value": "$(LEVEL)/$(PW)"}
        ]}),
        objects(),
    )
    .unwrap();
    assert!(env.contains(&"LEVEL=debug".to_string()), "{env:?}");
    assert!(env.contains(&"PW=s3cr3t".to_string()));
    assert!(env.contains(&"BOTH=debug/s3cr3t".to_string()));
}

#[test]
fn missing_sources_give_the_kubelet_messages_unless_optional() {
    let err = |env: serde_json::Value| build(env, objects()).unwrap_err().to_string();
    assert_eq!(
        err(
            json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]})
        ),
        "configmap \"x\" not found"
    );
    assert_eq!(
        err(
            json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]})
        ),
        "secret \"x\" not found"
    );
    assert_eq!(
        err(
            json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]})
        ),
        "couldn't find key k in ConfigMap prod/cfg"
    );
    assert_eq!(
        err(
            json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]})
        ),
        "couldn't find key k in Secret prod/db"
    );
    assert_eq!(
        err(json!({"envFrom": [{"configMapRef": {"name": "nope"}}]})),
        "configmap \"nope\" not found"
    );
    let env = build(
        json!({
            "envFrom": [{"secretRef": {"name": "nope", "optional": true}}],
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k", "optional": true}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k", "optional": true}}}
            ]
        }),
        objects(),
    )
    .unwrap();
    assert!(
        !env.iter()
            .any(|e| e.starts_with("A=") || e.starts_with("B=")),
        "optional missing values are left out: {env:?}"
    );
}

#[test]
fn env_from_prefixes_keys_and_env_overrides() {
    let env = build(
        json!({
            "envFrom": [
                {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                {"secretRef": {"name": "db"}}
            ],
            "env": [{"name": "USER", "value": "$(CFG_LEVEL)-me"}]
        }),
        objects(),
    )
    .unwrap();
    let ours: Vec<&String> = env
        .iter()
        .filter(|e| !e.starts_with("HOSTNAME=") && !e.starts_with("PATH="))
        .collect();
    assert_eq!(
        ours,
        [
            "CFG_1badkey=x",
            "CFG_LEVEL=debug",
            "CFG_mode=fast",
            "USER=debug-me",
            "password=s3cr3t"
        ]
    );
}

#[test]
fn env_from_keeps_keys_the_relaxed_rule_allows_and_warns_about_others() {
    // Since RelaxedEnvironmentVariableValidation is GA the kubelet takes any printable ASCII
    // but '=': `1badkey` is a variable now.
    let env = build(
        json!({"envFrom": [{"configMapRef": {"name": "cfg"}}]}),
        objects(),
    )
    .unwrap();
    assert!(env.contains(&"1badkey=x".to_string()), "{env:?}");
    // A key the relaxed rule refuses (possible only with a prefix or a stored object that
    // escaped validation) is skipped with the kubelet's event.
    let objects = Snapshot::empty("prod").with_config_map(config_map(
        "odd",
        &[("ok", "1"), ("b\tad", "2"), ("a=b", "3")],
    ));
    let c: Container = serde_json::from_value(app(json!({
        "envFrom": [{"configMapRef": {"name": "odd"}}]
    })))
    .unwrap();
    assert_eq!(
        env::env_from_warnings(&c, &objects),
        [
            "Keys [a=b, b\tad] from the EnvFrom configMap prod/odd were skipped since they are \
          considered invalid environment variable names."
        ]
    );
    let env = build(
        json!({"envFrom": [{"configMapRef": {"name": "odd"}}]}),
        objects,
    )
    .unwrap();
    assert!(env.contains(&"ok=1".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("a=b")));
}

#[test]
fn refs_name_every_object_the_env_reads() {
    let c: Container = serde_json::from_value(app(json!({
        "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s1"}}],
        "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "k"}}},
            {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}
        ]
    })))
    .unwrap();
    let refs = env::env_refs(&c);
    assert_eq!(refs.config_maps, ["a".to_string(), "b".to_string()].into());
    assert_eq!(refs.secrets, ["s1".to_string(), "s2".to_string()].into());
}

#[test]
fn host_and_pod_ip_lists_and_metadata_maps() {
    let env = build(
        json!({"env": [
            {"name": "HIP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "HIPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
            {"name": "PIPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "LABELS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            {"name": "ANN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['none']"}}}
        ]}),
        Snapshot::empty("prod"),
    )
    .unwrap();
    for want in [
        "HIP=10.88.0.1",
        "HIPS=10.88.0.1",
        "PIPS=10.88.0.5",
        "LABELS=app=\"x\"",
        "ANN=",
    ] {
        assert!(env.contains(&want.to_string()), "no {want} in {env:?}");
    }
}

#[test]
fn api_data_volumes_mount_read_only() {
    let c = app(json!({"volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "cfg", "mountPath": "/etc/one", "subPath": "game.properties"}
    ]}));
    let mut f = Fixture::new(c, json!({}));
    // The supervisor resolves the subPath on the host (volume::subpath) and hands it over.
    f.sub_paths = [(1, PathBuf::from("/var/p/volume-subpaths/cfg/app/1"))].into();
    let spec = f.build().unwrap();
    let mounts = spec.mounts().as_ref().unwrap();
    let cfg = &mounts[mounts.len() - 2];
    assert_eq!(cfg.source().as_deref(), Some(Path::new("/var/p/cfg")));
    assert_eq!(cfg.options().clone().unwrap(), ["rbind", "rprivate", "ro"]);
    let one = &mounts[mounts.len() - 1];
    assert_eq!(
        one.source().as_deref(),
        Some(Path::new("/var/p/volume-subpaths/cfg/app/1"))
    );
    assert_eq!(one.options().clone().unwrap(), ["rbind", "rprivate", "ro"]);
}
