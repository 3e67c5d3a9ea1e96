//! configMap volumes: a ConfigMap's keys as files, on the node's disk as the kubelet keeps
//! them [pkg/volume/configmap/configmap.go]. A missing optional ConfigMap gives an empty
//! volume; a missing item key fails unless the volume is optional.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::atomic_writer::Payload;
use super::projection::{key_payload, present_or_empty, KeySource, ProjectionError};
use crate::object::Snapshot;

/// The files of a ConfigMap (`data` and `binaryData` keys); shared with projected volumes, as
/// the kubelet's `configmap.MakePayload` is.
pub(super) fn payload(
    objects: &Snapshot,
    keys: KeySource,
    mode: u32,
) -> Result<Payload, ProjectionError> {
    let optional = keys.optional.unwrap_or(false);
    let empty = ConfigMap::default();
    let cm = present_or_empty(objects.config_map(keys.name), optional, &empty)?;
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in cm.data.iter().flatten() {
        data.insert(k, v.as_bytes());
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k, &v.0);
    }
    key_payload(&data, keys.items, mode, optional, |key| {
        ProjectionError::ConfigMapKey { key: key.into() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::KeyToPath;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn keys<'a>(
        name: &'a str,
        items: Option<&'a [KeyToPath]>,
        optional: Option<bool>,
    ) -> KeySource<'a> {
        KeySource {
            name,
            items,
            optional,
        }
    }

    fn cm() -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "game.properties".into(),
                "lives=3".into(),
            )])),
            binary_data: Some(BTreeMap::from([("bin".into(), ByteString(vec![0, 1]))])),
            ..Default::default()
        }
    }

    #[test]
    fn data_and_binary_data_become_files() {
        let snap = Snapshot::empty("ns").with_config_map(cm());
        let p = payload(&snap, keys("cfg", None, None), 0o644).unwrap();
        assert_eq!(p["game.properties"].data, b"lives=3");
        assert_eq!(p["bin"].data, [0, 1]);
    }

    #[test]
    fn missing_config_map_fails_unless_optional() {
        let snap = Snapshot::empty("ns");
        let err = payload(&snap, keys("cfg", None, None), 0o644).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"cfg\" not found");
        let optional = keys("cfg", None, Some(true));
        assert!(payload(&snap, optional, 0o644).unwrap().is_empty());
    }

    #[test]
    fn missing_item_key_names_the_key() {
        let snap = Snapshot::empty("ns").with_config_map(cm());
        let items = [KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            ..Default::default()
        }];
        let err = payload(&snap, keys("cfg", Some(&items), None), 0o644).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configmap references non-existent config key: nope"
        );
    }
}
