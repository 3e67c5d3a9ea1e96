//! projected volumes: configMap, secret and downwardAPI sources in one directory, on a tmpfs
//! [pkg/volume/projected/projected.go]. Each source is collected (a later source's file
//! replaces an earlier one's of the same path) and every failure is reported together.
//! serviceAccountToken, clusterTrustBundle and podCertificate sources are refused at apply.

use k8s_openapi::api::core::v1::{ProjectedVolumeSource, VolumeProjection};

use super::atomic_writer::Payload;
use super::projection::{default_mode, publish, Medium, ProjectionError};
use super::{config_map, downward_api, secret};
use super::{HostVolume, PodVolumes, VolumeError, PLUGIN_PROJECTED};

pub(super) fn setup(
    pod: &PodVolumes,
    name: &str,
    source: &ProjectedVolumeSource,
) -> Result<HostVolume, VolumeError> {
    let payload = collect(
        pod,
        source.sources.as_deref().unwrap_or_default(),
        default_mode(source.default_mode),
    );
    publish(pod, PLUGIN_PROJECTED, name, Medium::Memory, payload)
}

fn collect(
    pod: &PodVolumes,
    sources: &[VolumeProjection],
    mode: u32,
) -> Result<Payload, ProjectionError> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for source in sources {
        let part = if let Some(s) = &source.secret {
            secret::payload(pod.objects, s.into(), mode)
        } else if let Some(cm) = &source.config_map {
            config_map::payload(pod.objects, cm.into(), mode)
        } else if let Some(d) = &source.downward_api {
            downward_api::collect(
                d.items.as_deref().unwrap_or_default(),
                pod.pod,
                pod.node,
                mode,
            )
        } else if source.service_account_token.is_some() {
            Err(ProjectionError::UnsupportedSource("serviceAccountToken"))
        } else if source.cluster_trust_bundle.is_some() {
            Err(ProjectionError::UnsupportedSource("clusterTrustBundle"))
        } else if source.pod_certificate.is_some() {
            Err(ProjectionError::UnsupportedSource("podCertificate"))
        } else {
            continue;
        };
        match part {
            Ok(files) => payload.extend(files),
            Err(e) => errors.push(e),
        }
    }
    ProjectionError::aggregate(errors)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::env::NodeAllocatable;
    use crate::object::Snapshot;
    use crate::store::Paths;
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
        ObjectFieldSelector, Pod, SecretProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn sources() -> Vec<VolumeProjection> {
        vec![
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: "cfg".into(),
                    items: Some(vec![KeyToPath {
                        key: "k".into(),
                        path: "conf/k".into(),
                        mode: Some(0o600),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "name".into(),
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
            VolumeProjection {
                secret: Some(SecretProjection {
                    name: "gone".into(),
                    optional: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]
    }

    fn with<T>(objects: &Snapshot, f: impl FnOnce(&PodVolumes) -> T) -> T {
        let paths = Paths::under(std::path::Path::new("/nonexistent"));
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        f(&PodVolumes {
            paths: &paths,
            uid: "u",
            pod: &pod,
            objects,
            node: NodeAllocatable {
                cpu_millis: Some(1000),
                memory_bytes: 1 << 30,
            },
            node_name: "n",
        })
    }

    #[test]
    fn sources_merge_with_modes_and_optional_missing_ones_are_empty() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..Default::default()
        };
        let objects = Snapshot::empty("ns").with_config_map(cm);
        let p = with(&objects, |pod| collect(pod, &sources(), 0o640)).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["conf/k", "name"]);
        assert_eq!(p["conf/k"].mode, 0o600);
        assert_eq!(p["name"].mode, 0o640);
        assert_eq!(p["name"].data, b"p");
    }

    #[test]
    fn failures_of_several_sources_are_aggregated() {
        let mut srcs = sources();
        srcs[2].secret.as_mut().unwrap().optional = None;
        let objects = Snapshot::empty("ns");
        let err = with(&objects, |pod| collect(pod, &srcs, 0o644)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[configmap \"cfg\" not found, secret \"gone\" not found]"
        );
    }
}
