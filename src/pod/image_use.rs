//! Which pods use an image or an unpacked layer: what `rmi` must refuse and `image prune` must
//! keep. Reads pod records and container bundles; never changes them. Every pod on record
//! counts, running or not (as Docker counts stopped containers): its containers may restart.

use std::collections::HashSet;
use std::path::Path;

use k8s_openapi::api::core::v1::ContainerStatus;

use crate::container::spec::ANNOTATION_ROOTFS_LOWERDIRS;
use crate::image::{normalize_reference, RemovalCheck};
use crate::pod::record::{PodRecord, CONTAINERS_DIR};
use crate::store::{read_json, Paths, StoreError};

/// The pods (`namespace/name`) that use the image being removed: a container whose image
/// reference normalizes to the name, or, when the image itself goes, a container whose
/// status `imageID` names its manifest, index or config digest.
pub fn pods_using(records: &[PodRecord], check: &RemovalCheck) -> Vec<String> {
    let image = check.image;
    let mut digests = vec![image.manifest_digest.as_str()];
    digests.extend(image.index_digest.as_deref());
    if !image.id.is_empty() {
        digests.push(image.id.as_str());
    }
    let by_id = |s: &ContainerStatus| {
        check.deletes_image && digests.iter().any(|d| s.image_id.ends_with(d))
    };
    records
        .iter()
        .filter(|rec| {
            let spec = rec.pod.spec.as_ref();
            let containers = spec.into_iter().flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            });
            let by_name = containers
                .filter_map(|c| c.image.as_deref())
                .any(|r| normalize_reference(r).is_ok_and(|n| n == image.reference));
            let status = rec.status.as_ref();
            let statuses = status.into_iter().flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            });
            by_name || statuses.into_iter().any(by_id)
        })
        .map(|rec| format!("{}/{}", rec.namespace(), rec.name()))
        .collect()
}

/// The unpacked layers (directory names under `Paths::layers`) that some pod's container
/// overlay uses, from the `io.peapod.rootfs.lowerdirs` annotation of every bundle on record.
pub fn layers_in_use(paths: &Paths, records: &[PodRecord]) -> Result<HashSet<String>, StoreError> {
    let mut layers = HashSet::new();
    for rec in records {
        let mut bundles: Vec<std::path::PathBuf> = rec
            .state
            .iter()
            .flat_map(|s| s.containers.values())
            .filter_map(|c| c.bundle.clone())
            .collect();
        // Earlier instances too (a bundle whose removal failed stays until the pod goes): in
        // the run directory, and in the record directory for bundles of the earlier layout.
        if let Some(uid) = rec.pod.metadata.uid.as_deref() {
            for dir in [paths.pod_run_dir(uid), paths.pod_dir(uid)] {
                for container in subdirs(&dir.join(CONTAINERS_DIR))? {
                    // Not a writable layer (`<name>.<n>.upper`, `Paths::instance_layer`): a
                    // container's own files are no bundles.
                    if container
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().contains('.'))
                    {
                        continue;
                    }
                    bundles.extend(subdirs(&container)?);
                }
            }
        }
        for bundle in bundles {
            layers.extend(bundle_lowerdirs(&bundle)?);
        }
    }
    Ok(layers)
}

/// The lowerdir names of the bundle's config.json; none if it has no config yet.
fn bundle_lowerdirs(bundle: &Path) -> Result<Vec<String>, StoreError> {
    let path = bundle.join("config.json");
    let spec: serde_json::Value = match read_json(&path) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let lower = spec["annotations"][ANNOTATION_ROOTFS_LOWERDIRS]
        .as_str()
        .unwrap_or_default();
    Ok(lower
        .split(':')
        .filter_map(|d| Path::new(d).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect())
}

fn subdirs(dir: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageSummary;
    use crate::pod::record::{ContainerState, PodState};
    use k8s_openapi::api::core::v1::{Pod, PodStatus};
    use serde_json::json;

    const M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn record(name: &str, image: &str, image_id: &str) -> PodRecord {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }))
        .unwrap();
        let status: PodStatus = serde_json::from_value(json!({
            "containerStatuses": [{"name": "c", "image": image, "imageID": image_id,
                "ready": true, "restartCount": 0}],
        }))
        .unwrap();
        PodRecord {
            pod,
            status: Some(status),
            state: None,
            events: Vec::new(),
            deleting: None,
        }
    }

    fn summary(reference: &str) -> ImageSummary {
        ImageSummary {
            reference: reference.into(),
            repository: String::new(),
            tag: String::new(),
            manifest_digest: M.into(),
            index_digest: None,
            id: "sha256:cc".into(),
            created: None,
            size: 0,
        }
    }

    #[test]
    fn a_pod_uses_an_image_by_normalized_name_or_by_image_id() {
        let records = [
            record("web", "busybox", &format!("docker.io/library/busybox@{M}")),
            record("db", "other:1", &format!("docker.io/library/other@{M}")),
            record("x", "nginx", "docker.io/library/nginx@sha256:22"),
        ];
        let img = summary("docker.io/library/busybox:latest");
        let untag = RemovalCheck {
            image: &img,
            deletes_image: false,
        };
        assert_eq!(pods_using(&records, &untag), ["default/web"]);
        let delete = RemovalCheck {
            image: &img,
            deletes_image: true,
        };
        assert_eq!(pods_using(&records, &delete), ["default/web", "default/db"]);
    }

    #[test]
    fn layers_in_use_come_from_every_bundle_of_the_pod() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::under(tmp.path());
        let mut rec = record("web", "busybox", "");
        // A bundle of the earlier layout (in the record directory), one left in the run
        // directory by a failed removal, and the current one.
        let old = paths.pod_dir("uid-web").join("containers/c/0");
        let left = paths.instance_bundle("uid-web", "c", 2);
        let elsewhere = tmp.path().join("bundle");
        for (dir, lower) in [
            (&old, "/l/aaa:/l/bbb"),
            (&left, "/l/ddd"),
            (&elsewhere, "/l/ccc"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            let spec = json!({"annotations": {ANNOTATION_ROOTFS_LOWERDIRS: lower}});
            std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
        }
        std::fs::create_dir_all(paths.pod_dir("uid-web").join("containers/c/1")).unwrap();
        // A writable layer holding a file that looks like a bundle's: the container's own.
        let upper = paths.instance_layer("uid-web", "c", 2).upper.join("etc");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::write(upper.join("config.json"), "not a spec").unwrap();
        let mut state = PodState::default();
        state.containers.insert(
            "c".into(),
            ContainerState {
                bundle: Some(elsewhere),
                ..Default::default()
            },
        );
        rec.state = Some(state);
        let got = layers_in_use(&paths, &[rec]).unwrap();
        let want: HashSet<String> = ["aaa", "bbb", "ccc", "ddd"].map(String::from).into();
        assert_eq!(got, want);
    }
}
