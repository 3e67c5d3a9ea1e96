//! Unit tests of the volume mounts in the Spec: subPath and subPathExpr as the kubelet computes
//! them, propagation, read-only and recursive read-only options.

use super::*;

fn mount_of(volume_mount: serde_json::Value) -> serde_json::Value {
    app(json!({"volumeMounts": [volume_mount]}))
}

fn sub_paths_of(container: serde_json::Value) -> Result<Vec<Option<String>>, SpecError> {
    volume_sub_paths(&Fixture::new(container, json!({})).input())
}

#[test]
fn sub_path_expr_expands_the_containers_env() {
    let c = app(json!({
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DIR", "value": "logs/$(POD_NAME)"}
        ],
        "volumeMounts": [
            {"name": "data", "mountPath": "/a", "subPathExpr": "$(POD_NAME)"},
            {"name": "data", "mountPath": "/b", "subPathExpr": "$(DIR)/x-$$(HOME)"},
            {"name": "data", "mountPath": "/c", "subPath": "plain"},
            {"name": "data", "mountPath": "/d"}
        ]
    }));
    assert_eq!(
        sub_paths_of(c).unwrap(),
        [
            Some("web".to_string()),
            Some("logs/web/x-$(HOME)".to_string()),
            Some("plain".to_string()),
            None
        ]
    );
}

#[test]
fn sub_path_expr_refuses_missing_values_as_the_kubelet() {
    // Image env is not the container's env: PATH is not there to expand.
    let c = app(json!({
        "env": [{"name": "EMPTY", "value": ""}],
        "volumeMounts": [{"name": "data", "mountPath": "/a", "subPathExpr": "$(PATH)/$(EMPTY)/$(A)"}]
    }));
    assert_eq!(
        sub_paths_of(c).unwrap_err().to_string(),
        "missing value for A, EMPTY, PATH"
    );
}

#[test]
fn sub_paths_are_checked_after_expansion() {
    let c = app(json!({
        "env": [{"name": "UP", "value": "../etc"}, {"name": "ABS", "value": "/etc"}],
        "volumeMounts": [{"name": "data", "mountPath": "/a", "subPathExpr": "$(UP)"}]
    }));
    assert_eq!(
        sub_paths_of(c).unwrap_err().to_string(),
        "unable to provision SubPath `../etc`: must not contain '..'"
    );
    let c = app(json!({
        "env": [{"name": "ABS", "value": "/etc"}],
        "volumeMounts": [{"name": "data", "mountPath": "/a", "subPathExpr": "$(ABS)"}]
    }));
    assert_eq!(
        sub_paths_of(c).unwrap_err().to_string(),
        "error SubPath `/etc` must not be an absolute path"
    );
    let c = mount_of(json!({"name": "data", "mountPath": "/a", "subPath": "a/../../b"}));
    assert!(sub_paths_of(c).is_err());
}

fn volume_options(
    volume_mount: serde_json::Value,
) -> Result<(Vec<String>, Option<String>), SpecError> {
    let spec = Fixture::new(mount_of(volume_mount), json!({})).build()?;
    let mount = spec.mounts().as_ref().unwrap().last().unwrap().clone();
    let root = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    Ok((mount.options().clone().unwrap(), root))
}

#[test]
fn propagation_and_read_only_options_follow_containerd() {
    let (opts, root) = volume_options(json!({"name": "data", "mountPath": "/a"})).unwrap();
    assert_eq!(
        (opts, root),
        (vec!["rbind".into(), "rprivate".into(), "rw".into()], None)
    );
    let (opts, root) = volume_options(
        json!({"name": "data", "mountPath": "/a", "mountPropagation": "HostToContainer", "readOnly": true}),
    )
    .unwrap();
    assert_eq!(opts, ["rbind", "rslave", "ro"]);
    assert_eq!(root.as_deref(), Some("rslave"));
    let (opts, root) = volume_options(
        json!({"name": "data", "mountPath": "/a", "mountPropagation": "Bidirectional"}),
    )
    .unwrap();
    assert_eq!(opts, ["rbind", "rshared", "rw"]);
    assert_eq!(root.as_deref(), Some("rshared"));
    let (opts, _) = volume_options(
        json!({"name": "data", "mountPath": "/a", "readOnly": true, "recursiveReadOnly": "Enabled"}),
    )
    .unwrap();
    assert_eq!(opts, ["rbind", "rprivate", "ro", "rro"]);
    let (opts, _) = volume_options(
        json!({"name": "data", "mountPath": "/a", "readOnly": true, "recursiveReadOnly": "Disabled"}),
    )
    .unwrap();
    assert_eq!(opts, ["rbind", "rprivate", "ro"]);
    let err = volume_options(
        json!({"name": "data", "mountPath": "/a", "recursiveReadOnly": "IfPossible"}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to resolve recursive read-only mode: volume \"data\" requested recursive read-only mode, but it is not read-only"
    );
}
