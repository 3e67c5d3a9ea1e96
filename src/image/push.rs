//! `ImageStore::push`: uploads an image of the store (config, layers, then the manifest under
//! the destination tag) to a registry, skipping blobs the registry already has; and
//! `check_login`, which tries credentials against a registry without storing them.

use futures::StreamExt as _;
use oci_client::RegistryOperation;
use tokio::io::AsyncReadExt as _;

use super::error::ImageError;
use super::pull::RemoteRef;
use super::reference::normalize_reference;
use super::registry::client::{build_client, check_credentials, Remote, Target};
use super::registry::retry::with_retry;
use super::registry::{Credential, PullEvent, PullOptions};
use super::store::ImageStore;

/// Read size for blob uploads (oci-client re-chunks for its PATCH requests).
const UPLOAD_READ: usize = 1 << 20;
/// The repository `check_login` probes; it need not exist.
const LOGIN_PROBE_REPOSITORY: &str = "peapod/login-check";

impl ImageStore {
    /// Pushes the local image `local_ref` to `dest_ref` (the same name when `None`-like empty).
    /// Returns the manifest digest.
    pub fn push(
        &self,
        local_ref: &str,
        dest_ref: &str,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<String, ImageError> {
        let dest = normalize_reference(if dest_ref.is_empty() {
            local_ref
        } else {
            dest_ref
        })?;
        let wrap = |e| ImageError::Push {
            reference: dest.clone(),
            cause: Box::new(e),
        };
        let image = self.resolve(local_ref)?;
        let rt = runtime().map_err(wrap)?;
        rt.block_on(self.push_async(&image, &dest, opts, progress))
            .map_err(wrap)
    }

    async fn push_async(
        &self,
        image: &super::Image,
        dest: &str,
        opts: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<String, ImageError> {
        let rref = RemoteRef::parse(dest);
        let endpoint = opts.registries.direct_endpoint(&rref.domain);
        let client = build_client(std::slice::from_ref(&endpoint))?;
        let cred = opts.credentials.lookup(&rref.domain);
        let remote = Remote::new(client, endpoint, &rref.repository, cred, &rref.domain);
        let target = remote.reference(rref.tag.as_deref().unwrap_or("latest"));
        remote
            .client
            .auth(&target, remote.auth(), RegistryOperation::Push)
            .await
            .map_err(|e| remote.classify(e, &Target::Other))?;

        let manifest_path = self.blob_path(&image.manifest_digest)?;
        let manifest_bytes =
            std::fs::read(&manifest_path).map_err(|e| ImageError::io(&manifest_path, e))?;
        let manifest = self.read_manifest(&image.manifest_digest)?;
        let mut blobs = vec![(
            manifest.config().digest().to_string(),
            manifest.config().size(),
        )];
        blobs.extend(
            manifest
                .layers()
                .iter()
                .map(|l| (l.digest().to_string(), l.size())),
        );
        for (digest, size) in blobs {
            progress(PullEvent::LayerStarted {
                digest: digest.clone(),
                size,
            });
            let exists = with_retry(&format!("blob {digest}"), progress, || async {
                remote
                    .client
                    .blob_exists(&target, &digest)
                    .await
                    .map_err(|e| remote.classify(e, &Target::Blob(digest.clone())))
            })
            .await?;
            if !exists {
                let path = self.blob_path(&digest)?;
                with_retry(&format!("blob {digest}"), progress, || async {
                    let stream = file_stream(path.clone()).await?;
                    remote
                        .client
                        .push_blob_stream(&target, stream, &digest, Some(size))
                        .await
                        .map_err(|e| remote.classify(e, &Target::Blob(digest.clone())))
                })
                .await?;
            }
            progress(PullEvent::LayerDone {
                digest,
                cached: exists,
            });
        }
        let media_type = manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
        let bad_type = || ImageError::BadManifest {
            endpoint: remote.endpoint.url(),
            what: "manifest media type",
            digest: image.manifest_digest.clone(),
            reason: media_type.clone(),
        };
        with_retry("manifest", progress, || async {
            // The header type is oci-client's (reqwest's); let inference name it.
            let content_type = media_type.parse().map_err(|_| bad_type())?;
            remote
                .client
                .push_manifest_raw(&target, manifest_bytes.clone(), content_type)
                .await
                .map_err(|e| remote.classify(e, &Target::Other))
        })
        .await?;
        Ok(image.manifest_digest.clone())
    }
}

/// Checks `user`/`password` against the registry `host` (bearer token dance or basic auth)
/// without storing them anywhere.
pub fn check_login(
    host: &str,
    user: &str,
    password: &str,
    opts: &PullOptions,
) -> Result<(), ImageError> {
    let endpoint = opts.registries.direct_endpoint(host);
    let rt = runtime()?;
    rt.block_on(async {
        let client = build_client(std::slice::from_ref(&endpoint))?;
        let cred = Credential {
            username: user.to_string(),
            password: password.to_string(),
        };
        let remote = Remote::new(client, endpoint, LOGIN_PROBE_REPOSITORY, Some(cred), host);
        with_retry(&format!("login {host}"), &|_| {}, || {
            check_credentials(&remote)
        })
        .await
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ImageError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ImageError::io("tokio runtime", e))
}

type ByteStream = futures::stream::BoxStream<
    'static,
    Result<bytes::Bytes, oci_client::errors::OciDistributionError>,
>;

/// A blob file as a stream of 1 MiB chunks: uploads never hold a whole layer in memory.
async fn file_stream(path: std::path::PathBuf) -> Result<ByteStream, ImageError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ImageError::io(&path, e))?;
    let stream = futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; UPLOAD_READ];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e.into()), None)),
        }
    });
    Ok(stream.boxed())
}
