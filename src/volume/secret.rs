//! secret volumes: a Secret's keys as files, on a tmpfs so that they never touch the node's
//! disk [pkg/volume/secret/secret.go]. A missing optional Secret gives an empty volume; a
//! missing item key fails unless the volume is optional.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::atomic_writer::Payload;
use super::projection::{key_payload, present_or_empty, KeySource, ProjectionError};
use crate::object::Snapshot;

/// The files of a Secret; shared with projected volumes (`secret.MakePayload`).
pub(super) fn payload(
    objects: &Snapshot,
    keys: KeySource,
    mode: u32,
) -> Result<Payload, ProjectionError> {
    let optional = keys.optional.unwrap_or(false);
    let empty = Secret::default();
    let secret = present_or_empty(objects.secret(keys.name), optional, &empty)?;
    let data: BTreeMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    key_payload(&data, keys.items, mode, optional, |key| {
        ProjectionError::SecretKey { key: key.into() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::KeyToPath;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    #[test]
    fn keys_become_files_and_missing_ones_are_named() {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "password".into(),
                ByteString(b"s3cr3t".to_vec()),
            )])),
            ..Default::default()
        };
        let snap = Snapshot::empty("ns").with_secret(s);
        let all = |name| KeySource {
            name,
            items: None,
            optional: None,
        };
        let p = payload(&snap, all("db"), 0o400).unwrap();
        assert_eq!(p["password"].data, b"s3cr3t");
        assert_eq!(p["password"].mode, 0o400);
        let items = [KeyToPath {
            key: "user".into(),
            path: "u".into(),
            ..Default::default()
        }];
        let picked = KeySource {
            items: Some(&items),
            ..all("db")
        };
        let err = payload(&snap, picked, 0o644).unwrap_err();
        assert_eq!(err.to_string(), "references non-existent secret key: user");
        let err = payload(&snap, all("other"), 0o644).unwrap_err();
        assert_eq!(err.to_string(), "secret \"other\" not found");
    }
}
