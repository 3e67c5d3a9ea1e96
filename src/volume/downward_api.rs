//! downwardAPI volumes: files holding the pod's metadata and its containers' resources
//! [pkg/volume/downwardapi/downwardapi.go], on a tmpfs as the kubelet keeps them. Also the
//! kubelet's field-path extraction [pkg/fieldpath/fieldpath.go], which env vars share:
//! labels and annotations as sorted `key="value"` lines with values quoted as Go's `%q`
//! ([`crate::gofmt::quote`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, Pod, ResourceFieldSelector,
};

use super::atomic_writer::{FileProjection, Payload};
use super::projection::{default_mode, file_mode, publish, Medium, ProjectionError};
use super::{HostVolume, PodVolumes, VolumeError, PLUGIN_DOWNWARD_API};
use crate::container::env::{resource_value, NodeAllocatable, ResourceRefError};
use crate::gofmt;
use crate::manifest::resources::container_resources;

pub const FIELD_NAME: &str = "metadata.name";
pub const FIELD_NAMESPACE: &str = "metadata.namespace";
pub const FIELD_UID: &str = "metadata.uid";
pub const FIELD_LABELS: &str = "metadata.labels";
pub const FIELD_ANNOTATIONS: &str = "metadata.annotations";

/// Why a downward API value could not be read; the messages are the kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum FieldPathError {
    #[error("unsupported fieldPath: {0}")]
    Unsupported(String),
    #[error("fieldPath {0:?} does not support subscript")]
    Subscript(String),
    #[error("container {0} not found")]
    NoContainer(String),
    #[error("container {container:?}: {source}")]
    Resources {
        container: String,
        #[source]
        source: crate::manifest::ManifestError,
    },
    #[error(transparent)]
    Resource(#[from] ResourceRefError),
}

pub(super) fn setup(
    pod: &PodVolumes,
    name: &str,
    source: &DownwardAPIVolumeSource,
) -> Result<HostVolume, VolumeError> {
    let payload = collect(
        source.items.as_deref().unwrap_or_default(),
        pod.pod,
        pod.node,
        default_mode(source.default_mode),
    );
    publish(pod, PLUGIN_DOWNWARD_API, name, Medium::Memory, payload)
}

/// The files of a downwardAPI source (`CollectData`): every item is attempted and the
/// failures are aggregated.
pub(super) fn collect(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    node: NodeAllocatable,
    mode: u32,
) -> Result<Payload, ProjectionError> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            metadata_field(pod, &f.field_path)
        } else if let Some(r) = &item.resource_field_ref {
            container_resource(pod, r, node)
        } else {
            Ok(String::new())
        };
        match value {
            Ok(v) => {
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: v.into_bytes(),
                        mode: file_mode(item.mode, mode),
                    },
                );
            }
            Err(e) => errors.push(ProjectionError::Field(e)),
        }
    }
    ProjectionError::aggregate(errors)?;
    Ok(payload)
}

/// A resource of the named container, node allocatable standing in for a missing limit
/// (`ExtractResourceValueByContainerNameAndNodeAllocatable`).
fn container_resource(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node: NodeAllocatable,
) -> Result<String, FieldPathError> {
    let name = selector.container_name.as_deref().unwrap_or_default();
    let container = find_container(pod, name)?;
    let resources = container_resources(container).map_err(|source| FieldPathError::Resources {
        container: name.to_string(),
        source,
    })?;
    let divisor = selector.divisor.as_ref().map(|q| q.0.as_str());
    Ok(resource_value(
        &resources,
        node,
        &selector.resource,
        divisor,
    )?)
}

fn find_container<'p>(pod: &'p Pod, name: &str) -> Result<&'p Container, FieldPathError> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| FieldPathError::NoContainer(name.to_string()))
}

/// `metadata.labels['key']` -> (`metadata.labels`, `key`) [fieldpath SplitMaybeSubscriptedPath].
pub fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let (field, key) = path.strip_suffix("']")?.split_once("['")?;
    (!field.is_empty()).then_some((field, key))
}

/// A pod metadata field as the kubelet renders it (`ExtractFieldPathAsString`).
pub fn metadata_field(pod: &Pod, path: &str) -> Result<String, FieldPathError> {
    let meta = &pod.metadata;
    if let Some((field, key)) = split_subscript(path) {
        let map = match field {
            FIELD_ANNOTATIONS => meta.annotations.as_ref(),
            FIELD_LABELS => meta.labels.as_ref(),
            _ => return Err(FieldPathError::Subscript(path.to_string())),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    Ok(match path {
        FIELD_ANNOTATIONS => format_map(meta.annotations.as_ref()),
        FIELD_LABELS => format_map(meta.labels.as_ref()),
        FIELD_NAME => meta.name.clone().unwrap_or_default(),
        FIELD_NAMESPACE => meta.namespace.clone().unwrap_or_default(),
        FIELD_UID => meta.uid.clone().unwrap_or_default(),
        other => return Err(FieldPathError::Unsupported(other.to_string())),
    })
}

/// `key="value"` lines in key order, no newline after the last (fieldpath.FormatMap).
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", gofmt::quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("kubernetes-downwardapi-volume-example".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([
                    ("zone".into(), "us-est-coast".into()),
                    ("cluster".into(), "test-cluster1".into()),
                    ("rack".into(), "rack-22".into()),
                ])),
                annotations: Some(BTreeMap::from([
                    ("builder".into(), "john-doe".into()),
                    ("build".into(), "two".into()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([("memory".into(), Quantity("64Mi".into()))])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field(path: &str, file: &str) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: file.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const NODE: NodeAllocatable = NodeAllocatable {
        cpu_millis: Some(2000),
        memory_bytes: 1 << 30,
    };

    #[test]
    fn labels_and_annotations_are_sorted_quoted_lines() {
        let items = [
            field("metadata.labels", "labels"),
            field("metadata.annotations", "annotations"),
        ];
        let p = collect(&items, &pod(), NODE, 0o644).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&p["labels"].data),
            "cluster=\"test-cluster1\"\nrack=\"rack-22\"\nzone=\"us-est-coast\""
        );
        assert_eq!(
            String::from_utf8_lossy(&p["annotations"].data),
            "build=\"two\"\nbuilder=\"john-doe\""
        );
        assert_eq!(p["labels"].mode, 0o644);
    }

    #[test]
    fn scalar_and_subscripted_fields() {
        let p = pod();
        assert_eq!(
            metadata_field(&p, "metadata.name").unwrap(),
            "kubernetes-downwardapi-volume-example"
        );
        assert_eq!(metadata_field(&p, "metadata.namespace").unwrap(), "default");
        assert_eq!(metadata_field(&p, "metadata.uid").unwrap(), "u-1");
        assert_eq!(
            metadata_field(&p, "metadata.labels['rack']").unwrap(),
            "rack-22"
        );
        assert_eq!(
            metadata_field(&p, "metadata.annotations['none']").unwrap(),
            ""
        );
        assert_eq!(
            metadata_field(&p, "spec.nodeName").unwrap_err().to_string(),
            "unsupported fieldPath: spec.nodeName"
        );
        assert_eq!(
            metadata_field(&p, "metadata.name['x']")
                .unwrap_err()
                .to_string(),
            "fieldPath \"metadata.name['x']\" does not support subscript"
        );
    }

    #[test]
    fn maps_are_quoted_lines_and_nothing_for_none() {
        let m = BTreeMap::from([("k".to_string(), "a\"b\nc".to_string())]);
        assert_eq!(format_map(Some(&m)), "k=\"a\\\"b\\nc\"");
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn resources_use_the_named_container_and_node_allocatable() {
        let item = |resource: &str, divisor: Option<&str>| DownwardAPIVolumeFile {
            path: resource.into(),
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some("c".into()),
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            mode: Some(0o400),
            ..Default::default()
        };
        let items = [
            item("limits.memory", Some("1Mi")),
            item("limits.cpu", Some("1m")),
        ];
        let p = collect(&items, &pod(), NODE, 0o644).unwrap();
        assert_eq!(p["limits.memory"].data, b"64");
        assert_eq!(p["limits.cpu"].data, b"2000");
        assert_eq!(p["limits.cpu"].mode, 0o400);
        let mut bad = item("limits.cpu", None);
        bad.resource_field_ref.as_mut().unwrap().container_name = Some("x".into());
        let err = collect(&[bad], &pod(), NODE, 0o644).unwrap_err();
        assert_eq!(err.to_string(), "container x not found");
    }
}
