//! `ImageStore::pull`: resolves a reference at the configured endpoints (mirrors, then the
//! registry), picks this host's platform out of an index, and brings the config and layers
//! into the store. Manifests and config are verified in memory (they are small); layers are
//! streamed (see `image::fetch`). The name lands in `index.json` only once every blob and
//! layer is in place, so a failed pull leaves no image behind.

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt as _;
use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};

use super::document::{decode_config, decode_index_entry, decode_top_level, TopLevel};
use super::error::ImageError;
use super::fetch::LayerJob;
use super::reference::{normalize_reference, split_reference};
use super::registry::client::{build_client, Remote, Target};
use super::registry::config::{Endpoint, DOCKER_HUB};
use super::registry::retry::{with_retry, with_retry_limit, MAX_ATTEMPTS};
use super::registry::{PullEvent, PullOptions, PullSecret};
use super::store::{layer_compression, ImageStore};
use super::unpack::sha256_hex;
use super::{Image, ImageSummary, INDEX_DIGEST_ANNOTATION, REPO_DIGEST_ANNOTATION};

/// Configs are small JSON documents; anything bigger is not a config.
const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// What a successful pull produced.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub summary: ImageSummary,
    pub image: Image,
    /// `<repository>@sha256:<top-level digest>` (the index digest when the tag named an index).
    pub repo_digest: String,
    /// Bytes fetched from the registry for layers and config (0 when everything was local).
    pub downloaded_bytes: u64,
    /// Config plus compressed layers.
    pub size: u64,
}

/// A normalized reference split into what the registry API wants (registry host, repository,
/// tag, digest), as a pull splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub domain: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RemoteRef {
    /// Splits a reference [`normalize_reference`] returned.
    pub fn parse(normalized: &str) -> RemoteRef {
        let (name_tag, digest) = match normalized.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (normalized, None),
        };
        let (name, tag) = split_reference(name_tag);
        let tag = (tag != super::NO_TAG).then_some(tag);
        let (domain, repository) = name.split_once('/').unwrap_or((DOCKER_HUB, &name));
        RemoteRef {
            domain: domain.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        }
    }

    /// The digest when given (it wins over the tag, as in Docker), else the tag.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(super::reference::DEFAULT_TAG)
    }
}

/// A manifest chosen for this host, with the raw documents that lead to it.
struct Resolved {
    /// (digest, bytes, media type) of the top-level index when the reference named one.
    index: Option<(String, bytes::Bytes, String)>,
    manifest_digest: String,
    manifest_bytes: bytes::Bytes,
    manifest_media_type: String,
    manifest: ImageManifest,
}

impl ImageStore {
    /// Pulls `reference` (any user form; normalized), stores and unpacks it, and names it in
    /// `index.json`. Blocking: runs its own tokio runtime. Safe to call from several processes
    /// at once: per-blob locks make the second one wait and then reuse the first one's work.
    pub fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<PullOutcome, ImageError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ImageError::Pull {
                reference: reference.to_string(),
                cause: Box::new(ImageError::io("tokio runtime", e)),
            })?;
        self.pull_on(rt.handle(), reference, opts, progress)
    }

    /// [`ImageStore::pull`] on a tokio runtime the caller runs (the CRI server's). It blocks:
    /// call it from a blocking thread of that runtime (`spawn_blocking`), never from a task.
    pub fn pull_on(
        &self,
        rt: &tokio::runtime::Handle,
        reference: &str,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<PullOutcome, ImageError> {
        let normalized = normalize_reference(reference)?;
        // Blobs and layers land before index.json names the image: keep `prune` away.
        let _guard = self.content_guard()?;
        self.sweep_orphan_temps();
        rt.block_on(self.pull_async(&normalized, opts, progress))
            .map_err(|e| ImageError::Pull {
                reference: normalized.clone(),
                cause: Box::new(e),
            })
    }

    async fn pull_async(
        &self,
        name: &str,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<PullOutcome, ImageError> {
        let started = Instant::now();
        let rref = RemoteRef::parse(name);
        let endpoints = opts.registries.endpoints(&rref.domain);
        let client = build_client(&endpoints)?;
        let mut errors = Vec::new();
        let mut found = None;
        for ep in endpoints {
            progress(PullEvent::Resolving {
                reference: name.to_string(),
                endpoint: ep.url(),
            });
            let remote = remote_for(client.clone(), ep, &rref, opts);
            match resolve(&remote, &rref, progress).await {
                Ok(r) => {
                    found = Some((remote, r));
                    break;
                }
                Err(e) => {
                    tracing::debug!(endpoint = %remote.endpoint.url(), error = %e, "endpoint failed");
                    errors.push(e);
                }
            }
        }
        let Some((remote, resolved)) = found else {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                ImageError::AllEndpoints { errors }
            });
        };

        let mdesc = resolved.manifest.config().clone();
        let (config_bytes, config_fetched) = self.fetch_config(&remote, &mdesc, progress).await?;
        let config = decode_config(remote.origin(), mdesc.digest().as_ref(), &config_bytes)?;
        let layers = resolved.manifest.layers();
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != layers.len() {
            return Err(ImageError::LayerCountMismatch {
                manifest: resolved.manifest_digest.clone(),
                layers: layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        progress(PullEvent::Resolved {
            reference: name.to_string(),
            manifest_digest: resolved.manifest_digest.clone(),
            layers: layers
                .iter()
                .map(|l| (l.digest().to_string(), l.size()))
                .collect(),
        });

        let mut jobs = Vec::new();
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            jobs.push(LayerJob {
                digest: layer.digest().to_string(),
                size: layer.size(),
                compression: layer_compression(layer)?,
                diff_id: diff_id.clone(),
            });
        }
        // Every layer runs to its end (success or cleaned-up failure) before we report, so no
        // download is cut off halfway with its temp files still open.
        let results: Vec<Result<u64, ImageError>> = futures::stream::iter(jobs)
            .map(|job| self.fetch_layer(&remote, job, progress))
            .buffer_unordered(opts.max_concurrent_downloads.max(1))
            .collect()
            .await;
        let mut downloaded = config_fetched;
        for r in results {
            downloaded += r?;
        }

        // The small documents last: an image is only visible once everything it needs is here.
        self.put_bytes(mdesc.digest().as_ref(), &config_bytes)?;
        self.put_bytes(&resolved.manifest_digest, &resolved.manifest_bytes)?;
        let mut ann: HashMap<String, String> = HashMap::new();
        let top_digest = match &resolved.index {
            Some((digest, bytes, _)) => {
                self.put_bytes(digest, bytes)?;
                ann.insert(INDEX_DIGEST_ANNOTATION.to_string(), digest.clone());
                digest.clone()
            }
            None => resolved.manifest_digest.clone(),
        };
        let (repository, _) = split_reference(name);
        let repo_digest = format!("{repository}@{top_digest}");
        ann.insert(REPO_DIGEST_ANNOTATION.to_string(), repo_digest.clone());
        let mut desc = Descriptor::new(
            MediaType::from(resolved.manifest_media_type.as_str()),
            resolved.manifest_bytes.len() as u64,
            oci_spec::image::Digest::try_from(resolved.manifest_digest.as_str()).map_err(|e| {
                ImageError::BadManifest {
                    endpoint: remote.endpoint.url(),
                    what: "manifest digest",
                    digest: resolved.manifest_digest.clone(),
                    reason: e.to_string(),
                }
            })?,
        );
        desc.set_annotations(Some(ann));
        self.record(&[(name.to_string(), desc.clone())])?;

        let summary = self.summary(name, &desc)?;
        let layer_dirs =
            self.unpack_layers(&resolved.manifest_digest, &resolved.manifest, &config)?;
        tracing::info!(image = name, manifest = %resolved.manifest_digest, elapsed = ?started.elapsed(), downloaded, "pulled image");
        Ok(PullOutcome {
            size: summary.size,
            image: Image {
                reference: name.to_string(),
                manifest_digest: resolved.manifest_digest.clone(),
                id: summary.id.clone(),
                config,
                layers: layer_dirs,
                repo_digest: Some(repo_digest.clone()),
            },
            summary,
            repo_digest,
            downloaded_bytes: downloaded,
        })
    }

    /// The config from the store when present, else from the registry (verified).
    async fn fetch_config(
        &self,
        remote: &Remote,
        desc: &Descriptor,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<(Vec<u8>, u64), ImageError> {
        let digest = desc.digest().to_string();
        let path = self.blob_path(&digest)?;
        if let Ok(data) = std::fs::read(&path) {
            return Ok((data, 0));
        }
        if desc.size() > MAX_CONFIG_SIZE {
            return Err(ImageError::BadManifest {
                endpoint: remote.endpoint.url(),
                what: "image config",
                digest,
                reason: format!("size {} is too large for a config", desc.size()),
            });
        }
        let data = with_retry(&format!("config {digest}"), progress, || async {
            let mut stream = remote.blob_stream(&digest).await?;
            let mut data = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    remote.classify(
                        oci_client::errors::OciDistributionError::IoError(e),
                        &Target::Blob(digest.clone()),
                    )
                })?;
                data.extend_from_slice(&chunk);
                if data.len() as u64 > desc.size() {
                    break;
                }
            }
            Ok(data)
        })
        .await?;
        verify_bytes(&digest, desc.size(), &data)?;
        let n = data.len() as u64;
        Ok((data, n))
    }
}

fn remote_for(
    client: oci_client::Client,
    ep: Endpoint,
    rref: &RemoteRef,
    opts: &PullOptions,
) -> Remote {
    // A mirror's own credentials are looked up by the mirror host; the registry's by its name.
    let login_host = if ep.mirror {
        ep.host.clone()
    } else {
        rref.domain.clone()
    };
    let secret = match &opts.request_auth {
        Some(auth) => auth.for_host(&login_host),
        None => PullSecret::from(opts.credentials.lookup(&login_host)),
    };
    Remote::with_secret(client, ep, &rref.repository, secret, &login_host)
}

/// Fetches the manifest `rref` names at `remote`; for an index, this host's manifest in it.
async fn resolve(
    remote: &Remote,
    rref: &RemoteRef,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
) -> Result<Resolved, ImageError> {
    let what = rref.tag_or_digest().to_string();
    let (bytes, digest) = fetch_manifest(remote, &what, progress).await?;
    match decode_top_level(remote.origin(), &digest, &bytes)? {
        TopLevel::Index {
            media_type, chosen, ..
        } => {
            let mdigest = chosen.digest().to_string();
            let (mbytes, got) = fetch_manifest(remote, &mdigest, progress).await?;
            if got != mdigest {
                return Err(ImageError::ManifestCorrupt {
                    endpoint: remote.endpoint.host.clone(),
                    repository: remote.repository.clone(),
                    expected: mdigest,
                    actual: got,
                });
            }
            let (mmt, manifest) = decode_index_entry(remote.origin(), &digest, &mdigest, &mbytes)?;
            Ok(Resolved {
                index: Some((digest, bytes, media_type)),
                manifest_digest: mdigest,
                manifest_bytes: mbytes,
                manifest_media_type: mmt,
                manifest,
            })
        }
        TopLevel::Manifest {
            media_type,
            manifest,
        } => Ok(Resolved {
            index: None,
            manifest,
            manifest_digest: digest,
            manifest_bytes: bytes,
            manifest_media_type: media_type,
        }),
    }
}

async fn fetch_manifest(
    remote: &Remote,
    tag_or_digest: &str,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
) -> Result<(bytes::Bytes, String), ImageError> {
    // A mirror gets one quick retry: a dead mirror should not delay every pull by seconds
    // when the registry itself is the fallback.
    let attempts = if remote.endpoint.mirror {
        2
    } else {
        MAX_ATTEMPTS
    };
    let what = format!("manifest {tag_or_digest}");
    let (bytes, digest) =
        with_retry_limit(attempts, &what, progress, || remote.manifest(tag_or_digest)).await?;
    // oci-client checked the body against Docker-Content-Digest and a digest reference; the
    // store addresses blobs by sha256 of the bytes, so that is the digest we keep.
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if tag_or_digest.contains(':') && actual != tag_or_digest {
        return Err(ImageError::ManifestCorrupt {
            endpoint: remote.endpoint.host.clone(),
            repository: remote.repository.clone(),
            expected: tag_or_digest.to_string(),
            actual,
        });
    }
    if digest.starts_with("sha256:") && digest != actual {
        return Err(ImageError::ManifestCorrupt {
            endpoint: remote.endpoint.host.clone(),
            repository: remote.repository.clone(),
            expected: digest,
            actual,
        });
    }
    Ok((bytes, actual))
}

/// Checks `data` against a descriptor's digest and size.
pub(crate) fn verify_bytes(digest: &str, size: u64, data: &[u8]) -> Result<(), ImageError> {
    let expected = sha256_hex(digest)?;
    let actual = hex::encode(Sha256::digest(data));
    if actual != expected {
        return Err(ImageError::BlobCorrupt {
            digest: digest.to_string(),
            actual: format!("sha256:{actual}"),
        });
    }
    if data.len() as u64 != size {
        return Err(ImageError::BlobSize {
            digest: digest.to_string(),
            expected: size,
            actual: data.len() as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_normalized_references() {
        let r = RemoteRef::parse("docker.io/library/busybox:latest");
        assert_eq!(
            (
                r.domain.as_str(),
                r.repository.as_str(),
                r.tag.as_deref(),
                r.digest.as_deref()
            ),
            ("docker.io", "library/busybox", Some("latest"), None)
        );
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = RemoteRef::parse(&format!("127.0.0.1:5000/a/b:v1@{d}"));
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag_or_digest(), d);
        let r = RemoteRef::parse(&format!("localhost/x@{d}"));
        assert_eq!((r.domain.as_str(), r.tag.as_deref()), ("localhost", None));
    }

    #[test]
    fn verify_bytes_names_both_digests() {
        let data = b"hello";
        let good = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        verify_bytes(&good, 5, data).unwrap();
        let e = verify_bytes(&good, 5, b"hellp").unwrap_err().to_string();
        assert!(e.contains(&good) && e.contains("corrupt"), "{e}");
        assert!(verify_bytes(&good, 6, data)
            .unwrap_err()
            .to_string()
            .contains("6"));
    }
}
