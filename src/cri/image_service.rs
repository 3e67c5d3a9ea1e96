//! The CRI `ImageService` over peapod's content store: `PullImage` (the request's credentials
//! or peapod's credentials files, the registries config with its mirrors), `ImageStatus`,
//! `ListImages`, `RemoveImage` and `ImageFsInfo`, answering as containerd's CRI plugin does
//! (image IDs are config digests; a missing image is an empty status, and removing it is not an
//! error). Store work runs on tokio's blocking threads; a pull runs on the server's runtime.

use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use super::images::{self, CriImage};
use super::{auth, blocking, fs_usage};
use crate::image::{ImageError, ImageStore, PullOptions};
use crate::pod::image_use::layers_in_use;
use crate::pod::record;
use crate::store::Paths;

/// The image service over peapod's state directories.
#[derive(Debug, Clone)]
pub struct CriImages {
    paths: Paths,
}

impl CriImages {
    pub fn new(paths: Paths) -> CriImages {
        CriImages { paths }
    }
}

/// The store's images as the CRI groups them.
fn catalog(store: &ImageStore) -> Result<Vec<CriImage>, Status> {
    let named = store.list_named().map_err(store_error)?;
    let blob_size = |digest: &str| {
        let path = store.blob_path(digest).ok()?;
        std::fs::metadata(path).ok().map(|m| m.len())
    };
    Ok(images::catalog(&named, &blob_size))
}

/// The store's images as the CRI groups them (CreateContainer's image lookup).
pub(crate) fn store_catalog(paths: &Paths) -> Result<Vec<CriImage>, Status> {
    catalog(&open(paths)?)
}

fn open(paths: &Paths) -> Result<ImageStore, Status> {
    ImageStore::open(paths).map_err(store_error)
}

/// A store that cannot be read: the runtime's fault, not the request's.
fn store_error(e: ImageError) -> Status {
    Status::internal(format!("image store: {e}"))
}

/// The `ImageSpec.image` of a request, which must be there.
fn spec_image(spec: Option<&cri::ImageSpec>, field: &str) -> Result<String, Status> {
    match spec.map(|s| s.image.trim()) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(Status::invalid_argument(format!("{field}: no image given"))),
    }
}

fn find<'a>(catalog: &'a [CriImage], spec: &str) -> Result<Option<&'a CriImage>, Status> {
    images::find(catalog, spec).map_err(|e| Status::invalid_argument(format!("image.image: {e}")))
}

/// The CRI `Image` with the user its config names (an unreadable config: no user).
fn with_user(store: &ImageStore, image: &CriImage) -> cri::Image {
    let config = store.read_config(&image.id).ok();
    let user = config
        .as_ref()
        .and_then(|c| c.config().as_ref())
        .and_then(|c| c.user().clone());
    images::to_cri(image, user.as_deref())
}

/// How a failed pull reaches the kubelet: containerd's message shape (`failed to pull and
/// unpack image "<ref>": <cause>`), NotFound when the registry has no such manifest, Unknown
/// otherwise (as containerd answers a refused login or a network failure).
fn pull_error(reference: &str, e: ImageError) -> Status {
    let (name, cause) = match e {
        ImageError::Pull { reference, cause } => (reference, *cause),
        ImageError::InvalidReference { .. } => {
            return Status::invalid_argument(format!("image.image: {e}"))
        }
        other => (reference.to_string(), other),
    };
    let not_found = match &cause {
        ImageError::ManifestUnknown { .. } => true,
        ImageError::AllEndpoints { errors } => {
            matches!(errors.last(), Some(ImageError::ManifestUnknown { .. }))
        }
        _ => false,
    };
    let message = format!("failed to pull and unpack image {name:?}: {cause}");
    if not_found {
        Status::not_found(message)
    } else {
        Status::unknown(message)
    }
}

#[tonic::async_trait]
impl ImageService for CriImages {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let filter = request
            .get_ref()
            .filter
            .as_ref()
            .and_then(|f| f.image.as_ref())
            .map(|s| s.image.trim().to_string())
            .filter(|s| !s.is_empty());
        let paths = self.paths.clone();
        blocking(move || {
            let store = open(&paths)?;
            let all = catalog(&store)?;
            let picked: Vec<&CriImage> = match &filter {
                Some(spec) => find(&all, spec)?.into_iter().collect(),
                None => all.iter().collect(),
            };
            let images = picked.into_iter().map(|i| with_user(&store, i)).collect();
            Ok(Response::new(cri::ListImagesResponse { images }))
        })
        .await
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let req = request.into_inner();
        let spec = spec_image(req.image.as_ref(), "image.image")?;
        let paths = self.paths.clone();
        blocking(move || {
            let store = open(&paths)?;
            let all = catalog(&store)?;
            let Some(found) = find(&all, &spec)? else {
                return Ok(Response::new(cri::ImageStatusResponse::default()));
            };
            let mut info = std::collections::HashMap::new();
            if req.verbose {
                // containerd's verbose info: {"chainID": ..., "imageSpec": <the config>}.
                let config = store.read_config(&found.id).map_err(store_error)?;
                let chain = images::chain_id(config.rootfs().diff_ids());
                let value = serde_json::json!({ "chainID": chain, "imageSpec": config });
                info.insert("info".to_string(), value.to_string());
            }
            Ok(Response::new(cri::ImageStatusResponse {
                image: Some(with_user(&store, found)),
                info,
            }))
        })
        .await
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let req = request.into_inner();
        let reference = spec_image(req.image.as_ref(), "image.image")?;
        if let Some(handler) = req
            .image
            .as_ref()
            .map(|s| s.runtime_handler.as_str())
            .filter(|h| !h.is_empty())
        {
            return Err(Status::invalid_argument(format!(
                "image.runtime_handler: unknown runtime handler {handler:?} (peapod has only the default one, \"\")"
            )));
        }
        let request_auth = auth::pull_auth(req.auth.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let paths = self.paths.clone();
        let rt = tokio::runtime::Handle::current();
        blocking(move || {
            let store = open(&paths)?;
            // Read at every pull, as `peapod pull` does: a changed config or login applies
            // without restarting the server.
            let mut opts = PullOptions::from_env(&paths)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            opts.request_auth = request_auth;
            let started = Instant::now();
            let outcome = store
                .pull_on(&rt, &reference, &opts, &|_| {})
                .map_err(|e| pull_error(&reference, e))?;
            tracing::info!(image = %reference, id = %outcome.summary.id, downloaded = outcome.downloaded_bytes, elapsed = ?started.elapsed(), "CRI PullImage");
            Ok(Response::new(cri::PullImageResponse {
                image_ref: outcome.summary.id,
            }))
        })
        .await
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let spec = spec_image(request.get_ref().image.as_ref(), "image.image")?;
        let paths = self.paths.clone();
        blocking(move || {
            let store = open(&paths)?;
            let all = catalog(&store)?;
            // Missing: done (containerd's RemoveImage is idempotent).
            let Some(found) = find(&all, &spec)? else {
                return Ok(Response::new(cri::RemoveImageResponse {}));
            };
            // Every name of the image goes, whichever one was given, and pods are not asked:
            // the kubelet only removes images its containers do not use, and the layers of
            // any container on record stay on disk (as containerd's leases keep them).
            match store.remove(&found.id, true, &|_| Vec::new()) {
                Ok(removed) => {
                    tracing::info!(image = %spec, untagged = ?removed.untagged, "CRI RemoveImage")
                }
                Err(ImageError::NotFound { .. }) => {}
                Err(e) => return Err(Status::unknown(format!("removing image {spec:?}: {e}"))),
            }
            let records = record::load_all(&paths)
                .map_err(|e| Status::internal(format!("reading pod records: {e}")))?;
            let in_use = layers_in_use(&paths, &records)
                .map_err(|e| Status::internal(format!("reading container bundles: {e}")))?;
            match store.try_prune(&in_use) {
                Ok(Some(p)) => tracing::debug!(?p, "collected the removed image's content"),
                Ok(None) => tracing::info!("the store is busy; the next prune reclaims the space"),
                Err(e) => {
                    tracing::warn!(error = %e, "the removed image's content was not reclaimed")
                }
            }
            Ok(Response::new(cri::RemoveImageResponse {}))
        })
        .await
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let paths = self.paths.clone();
        blocking(move || {
            fs_usage::image_fs_info(&paths)
                .map(Response::new)
                .map_err(|e| Status::internal(format!("measuring the image filesystem: {e}")))
        })
        .await
    }
}
