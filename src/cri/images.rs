//! The content store's images as the CRI reports them (containerd's CRI plugin is the model):
//! one entry per image ID (the config digest) carrying every name the store has for it, split
//! into `repo_tags` and `repo_digests`; how an `ImageSpec.image` finds its entry (an ID, a
//! name, a `repo@digest`, an ID prefix); and the `Image` message with the user the image's
//! config names. Pure functions over [`NamedImage`]s: no I/O but the blob sizes the caller
//! looks up.

use k8s_cri::v1 as cri;
use sha2::{Digest as _, Sha256};

use crate::image::{normalize_reference, split_reference, NamedImage, NO_TAG};

/// One image of the store as the CRI knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriImage {
    /// The config digest, `sha256:<hex>`: what `PullImage` returns and the kubelet keeps.
    pub id: String,
    /// `registry/repository:tag` names, sorted.
    pub repo_tags: Vec<String>,
    /// `registry/repository@sha256:...` of what registries served, sorted.
    pub repo_digests: Vec<String>,
    /// Every name `index.json` has for it, in index order (removal takes them all).
    pub names: Vec<String>,
    /// The manifest digests of those names (several when one config came in two ways).
    pub manifest_digests: Vec<String>,
    /// As containerd counts it: the top-level index (if any), the manifest, the config and the
    /// compressed layers.
    pub size: u64,
}

/// The store's images grouped by ID, in the order of their first name in `index.json`.
/// `blob_size` gives the size of a stored blob by digest (for the index a pull kept).
pub fn catalog(named: &[NamedImage], blob_size: &dyn Fn(&str) -> Option<u64>) -> Vec<CriImage> {
    let mut out: Vec<CriImage> = Vec::new();
    for n in named {
        let s = &n.summary;
        let pos = match out.iter().position(|c| c.id == s.id) {
            Some(i) => i,
            None => {
                let index_size = s.index_digest.as_deref().and_then(blob_size).unwrap_or(0);
                out.push(CriImage {
                    id: s.id.clone(),
                    repo_tags: Vec::new(),
                    repo_digests: Vec::new(),
                    names: Vec::new(),
                    manifest_digests: Vec::new(),
                    size: s.size + n.manifest_size + index_size,
                });
                out.len() - 1
            }
        };
        let entry = &mut out[pos];
        entry.names.push(s.reference.clone());
        if !entry.manifest_digests.contains(&s.manifest_digest) {
            entry.manifest_digests.push(s.manifest_digest.clone());
        }
        match s.reference.split_once('@') {
            // A name pulled by digest: a repo digest, whatever tag came with it (containerd
            // drops the tag of `name:tag@digest`).
            Some((_, digest)) => {
                let (repository, _) = split_reference(&s.reference);
                entry.repo_digests.push(format!("{repository}@{digest}"));
            }
            None if s.tag != NO_TAG => entry.repo_tags.push(s.reference.clone()),
            None => {}
        }
        entry.repo_digests.extend(n.repo_digest.iter().cloned());
    }
    for entry in &mut out {
        entry.repo_tags.sort();
        entry.repo_tags.dedup();
        entry.repo_digests.sort();
        entry.repo_digests.dedup();
    }
    out
}

/// Why an `ImageSpec.image` found no single image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("image ID prefix {prefix:?} is ambiguous: it matches {ids}")]
    Ambiguous { prefix: String, ids: String },
}

/// The image `spec` designates, as containerd's `LocalResolve`: a full `sha256:` ID; else a
/// name (normalized: `busybox` is `docker.io/library/busybox:latest`) among the tags and repo
/// digests (or `repo@<manifest digest>`); else an ID prefix with or without `sha256:`.
/// `Ok(None)` when nothing matches: ImageStatus then answers with no image, not an error.
pub fn find<'a>(images: &'a [CriImage], spec: &str) -> Result<Option<&'a CriImage>, LookupError> {
    if is_full_id(spec) {
        return Ok(images.iter().find(|i| i.id == spec));
    }
    if let Ok(name) = normalize_reference(spec) {
        let by_name = images.iter().find(|i| {
            i.repo_tags.contains(&name)
                || i.repo_digests.contains(&name)
                || i.names.contains(&name)
                || name.split_once('@').is_some_and(|(n, digest)| {
                    let (repository, _) = split_reference(n);
                    i.manifest_digests.iter().any(|m| m == digest)
                        && i.names
                            .iter()
                            .any(|own| split_reference(own).0 == repository)
                })
        });
        if by_name.is_some() {
            return Ok(by_name);
        }
    }
    let prefix = spec.strip_prefix("sha256:").unwrap_or(spec);
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hits: Vec<&CriImage> = images
        .iter()
        .filter(|i| {
            i.id.strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(prefix))
        })
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(LookupError::Ambiguous {
            prefix: spec.to_string(),
            ids: many
                .iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn is_full_id(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The CRI `Image` of an entry; `user` is the image config's `User` (`uid`, `name`,
/// `uid:gid`...): a number is the `uid`, anything else the `username` (containerd's
/// `getUserFromImage`).
pub fn to_cri(image: &CriImage, user: Option<&str>) -> cri::Image {
    let (uid, username) = user_of(user.unwrap_or_default());
    cri::Image {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        size: image.size,
        uid: uid.map(|value| cri::Int64Value { value }),
        username,
        spec: Some(cri::ImageSpec {
            image: image.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

fn user_of(user: &str) -> (Option<i64>, String) {
    let user = user.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

/// The OCI chain ID of a layer stack (image-spec config.md: ChainID(L0) = DiffID(L0),
/// ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))), for ImageStatus's verbose
/// info as containerd gives it.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let mut chain = ids.next()?.clone();
    for d in ids {
        chain = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{chain} {d}").as_bytes()))
        );
    }
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageSummary;

    const ID_A: &str = "sha256:aaaa000000000000000000000000000000000000000000000000000000000001";
    const ID_B: &str = "sha256:aabb000000000000000000000000000000000000000000000000000000000002";
    const MAN_A: &str = "sha256:1111000000000000000000000000000000000000000000000000000000000001";
    const IDX_A: &str = "sha256:2222000000000000000000000000000000000000000000000000000000000001";
    const MAN_B: &str = "sha256:3333000000000000000000000000000000000000000000000000000000000001";

    fn named(reference: &str, id: &str, manifest: &str, index: Option<&str>) -> NamedImage {
        let (repository, tag) = split_reference(reference);
        let top = index.unwrap_or(manifest);
        NamedImage {
            summary: ImageSummary {
                reference: reference.into(),
                repository: repository.clone(),
                tag,
                manifest_digest: manifest.into(),
                index_digest: index.map(String::from),
                id: id.into(),
                created: None,
                size: 1000,
            },
            repo_digest: Some(format!("{repository}@{top}")),
            manifest_size: 400,
        }
    }

    fn store() -> Vec<CriImage> {
        let mut loaded = named("docker.io/library/busybox:latest", ID_B, MAN_B, None);
        loaded.repo_digest = None;
        let named = [
            named(
                "127.0.0.1:5000/test/busybox:latest",
                ID_A,
                MAN_A,
                Some(IDX_A),
            ),
            named("127.0.0.1:5000/test/busybox:v1", ID_A, MAN_A, Some(IDX_A)),
            named(
                &format!("127.0.0.1:5000/other@{IDX_A}"),
                ID_A,
                MAN_A,
                Some(IDX_A),
            ),
            loaded,
        ];
        catalog(&named, &|d| (d == IDX_A).then_some(300))
    }

    #[test]
    fn one_entry_per_id_with_tags_and_digests_as_containerd() {
        let images = store();
        assert_eq!(images.len(), 2);
        let a = &images[0];
        assert_eq!(a.id, ID_A);
        assert_eq!(
            a.repo_tags,
            [
                "127.0.0.1:5000/test/busybox:latest",
                "127.0.0.1:5000/test/busybox:v1"
            ]
        );
        assert_eq!(
            a.repo_digests,
            [
                format!("127.0.0.1:5000/other@{IDX_A}"),
                format!("127.0.0.1:5000/test/busybox@{IDX_A}")
            ]
        );
        // index + manifest + (config + layers)
        assert_eq!(a.size, 300 + 400 + 1000);
        assert_eq!(a.names.len(), 3);
        let b = &images[1];
        assert_eq!(b.repo_tags, ["docker.io/library/busybox:latest"]);
        assert!(
            b.repo_digests.is_empty(),
            "a loaded image has no repo digest"
        );
        assert_eq!(b.size, 1400);
    }

    #[test]
    fn finds_by_id_name_digest_and_prefix() {
        let images = store();
        let id = |s: &str| find(&images, s).unwrap().map(|i| i.id.clone());
        assert_eq!(id(ID_A).as_deref(), Some(ID_A));
        assert_eq!(id("busybox").as_deref(), Some(ID_B));
        assert_eq!(
            id("docker.io/library/busybox:latest").as_deref(),
            Some(ID_B)
        );
        assert_eq!(id("127.0.0.1:5000/test/busybox:v1").as_deref(), Some(ID_A));
        assert_eq!(
            id(&format!("127.0.0.1:5000/test/busybox@{IDX_A}")).as_deref(),
            Some(ID_A)
        );
        assert_eq!(
            id(&format!("127.0.0.1:5000/test/busybox@{MAN_A}")).as_deref(),
            Some(ID_A),
            "the platform manifest's digest in the same repository"
        );
        assert_eq!(id(&format!("127.0.0.1:5000/elsewhere@{MAN_A}")), None);
        assert_eq!(id("aaaa").as_deref(), Some(ID_A));
        assert_eq!(id("sha256:aabb").as_deref(), Some(ID_B));
        assert_eq!(id("127.0.0.1:5000/test/busybox:v2"), None);
        assert_eq!(
            id("sha256:ffff000000000000000000000000000000000000000000000000000000000001"),
            None
        );
        let e = find(&images, "aa").unwrap_err().to_string();
        assert!(e.contains(ID_A) && e.contains(ID_B), "{e}");
    }

    #[test]
    fn the_user_is_a_uid_or_a_name() {
        let images = store();
        let img = to_cri(&images[0], Some("1000:1000"));
        assert_eq!(
            (img.uid.map(|u| u.value), img.username.as_str()),
            (Some(1000), "")
        );
        let img = to_cri(&images[0], Some("nobody"));
        assert_eq!((img.uid, img.username.as_str()), (None, "nobody"));
        let img = to_cri(&images[0], None);
        assert_eq!((img.uid, img.username.as_str()), (None, ""));
        assert_eq!(img.spec.map(|s| s.image).as_deref(), Some(ID_A));
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let d1 = "sha256:a".to_string();
        let d2 = "sha256:b".to_string();
        assert_eq!(chain_id(std::slice::from_ref(&d1)), Some(d1.clone()));
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"sha256:a sha256:b"))
        );
        assert_eq!(chain_id(&[d1, d2]), Some(expected));
        assert_eq!(chain_id(&[]), None);
    }
}
