//! The registry client over `oci-client`: one HTTP client per pull (plain HTTP only for the
//! hosts the configuration or the loopback default allows), manifests fetched raw with the OCI
//! and Docker v2 Accept types, blobs streamed, credentials applied (oci-client does the bearer
//! token dance given basic credentials), and every failure turned into an [`ImageError`] that
//! says whether it is worth retrying.

use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::config::Endpoint;
use super::{Credential, PullSecret};
use crate::image::document::Origin;
use crate::image::error::ImageError;

/// Every manifest type peapod understands: without these a registry answers 404 or falls back
/// to a Docker schema 1 manifest.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

const USER_AGENT: &str = concat!("peapod/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per read, not per request: a large layer may take long, a silent socket may not.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What a request was after, for 404 messages.
#[derive(Debug, Clone)]
pub enum Target {
    /// `tag "latest"` or `manifest sha256:...`.
    Manifest(String),
    Blob(String),
    /// A login check or a push step.
    Other,
}

/// One HTTP client for a set of endpoints.
pub fn build_client(endpoints: &[Endpoint]) -> Result<Client, ImageError> {
    let plain: Vec<String> = endpoints
        .iter()
        .filter(|e| e.plain_http)
        .map(|e| e.host.clone())
        .collect();
    let mut certs = Vec::new();
    for ep in endpoints {
        if let Some(path) = &ep.ca_file {
            let data = std::fs::read(path).map_err(|e| ImageError::Config {
                path: path.clone(),
                reason: format!("ca_file for {}: {e}", ep.host),
            })?;
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
    }
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        extra_root_certificates: certs,
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    crate::tls::install_default();
    Client::try_from(config).map_err(|e| ImageError::Registry {
        endpoint: endpoints.first().map(Endpoint::url).unwrap_or_default(),
        status: None,
        message: {
            let cause = root_cause(&e);
            // rustls refuses to build a client without any trusted root, even for plain HTTP.
            let hint = if cause.contains("No CA certificates") {
                " (this host has no CA certificates: install the ca-certificates package)"
            } else {
                ""
            };
            format!("cannot set up the HTTP client: {cause}{hint}")
        },
        transient: false,
    })
}

/// A repository at one endpoint, with the credentials for that endpoint's host.
pub struct Remote {
    pub client: Client,
    pub endpoint: Endpoint,
    pub repository: String,
    auth: RegistryAuth,
    /// The host `peapod login` should be given when credentials are missing or refused.
    login_host: String,
}

impl Remote {
    pub fn new(
        client: Client,
        endpoint: Endpoint,
        repository: &str,
        credential: Option<Credential>,
        login_host: &str,
    ) -> Remote {
        Self::with_secret(
            client,
            endpoint,
            repository,
            PullSecret::from(credential),
            login_host,
        )
    }

    /// [`Remote::new`] with any kind of secret (a bearer token given with a CRI pull).
    pub fn with_secret(
        client: Client,
        endpoint: Endpoint,
        repository: &str,
        secret: PullSecret,
        login_host: &str,
    ) -> Remote {
        let auth = match secret {
            PullSecret::Basic(c) => RegistryAuth::Basic(c.username, c.password),
            PullSecret::Bearer(token) => RegistryAuth::Bearer(token),
            PullSecret::Anonymous => RegistryAuth::Anonymous,
        };
        Remote {
            client,
            endpoint,
            repository: repository.to_string(),
            auth,
            login_host: login_host.to_string(),
        }
    }

    /// This endpoint and repository, to name them in errors about what they served.
    pub fn origin(&self) -> Origin<'_> {
        Origin {
            endpoint: &self.endpoint,
            repository: &self.repository,
        }
    }

    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// A reference to this repository at this endpoint, by tag or digest.
    pub fn reference(&self, tag_or_digest: &str) -> Reference {
        if tag_or_digest.contains(':') {
            Reference::with_digest(
                self.endpoint.host.clone(),
                self.repository.clone(),
                tag_or_digest.to_string(),
            )
        } else {
            Reference::with_tag(
                self.endpoint.host.clone(),
                self.repository.clone(),
                tag_or_digest.to_string(),
            )
        }
    }

    /// Fetches a manifest or index as raw bytes; returns them with their digest (verified by
    /// oci-client against `Docker-Content-Digest` and a digest reference).
    pub async fn manifest(
        &self,
        tag_or_digest: &str,
    ) -> Result<(bytes::Bytes, String), ImageError> {
        let what = if tag_or_digest.contains(':') {
            format!("manifest {tag_or_digest}")
        } else {
            format!("tag {tag_or_digest:?}")
        };
        let reference = self.reference(tag_or_digest);
        self.client
            .pull_manifest_raw(&reference, &self.auth, &MANIFEST_ACCEPT)
            .await
            .map_err(|e| self.classify(e, &Target::Manifest(what)))
    }

    /// Opens a blob's byte stream. oci-client checks the digest at the end of the stream.
    pub async fn blob_stream(
        &self,
        digest: &str,
    ) -> Result<oci_client::client::SizedStream, ImageError> {
        let reference = self.reference(digest);
        // pull_blob_stream uses the stored auth only; make sure there is one.
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &self.auth)
            .await;
        self.client
            .pull_blob_stream(&reference, digest)
            .await
            .map_err(|e| self.classify(e, &Target::Blob(digest.to_string())))
    }

    /// Turns an oci-client error into an [`ImageError`] naming this endpoint.
    pub fn classify(&self, e: OciDistributionError, target: &Target) -> ImageError {
        let endpoint = self.endpoint.url();
        let unauthorized = |status| ImageError::Unauthorized {
            endpoint: endpoint.clone(),
            repository: self.repository.clone(),
            status,
            had_credentials: self.auth != RegistryAuth::Anonymous,
            login_host: self.login_host.clone(),
        };
        let not_found = || match target {
            Target::Manifest(what) => ImageError::ManifestUnknown {
                endpoint: self.endpoint.host.clone(),
                repository: self.repository.clone(),
                what: what.clone(),
            },
            Target::Blob(digest) => ImageError::BlobUnknown {
                endpoint: self.endpoint.host.clone(),
                repository: self.repository.clone(),
                digest: digest.clone(),
            },
            Target::Other => ImageError::Registry {
                endpoint: endpoint.clone(),
                status: Some(404),
                message: format!("{} not found (404)", self.repository),
                transient: false,
            },
        };
        let registry = |status: Option<u16>, message: String, transient| ImageError::Registry {
            endpoint: endpoint.clone(),
            status,
            message,
            transient,
        };
        let by_status = |code: u16, message: &str| match code {
            404 => not_found(),
            401 | 403 => unauthorized(code),
            429 => registry(Some(code), format!("too many requests ({code})"), true),
            500..=599 => registry(
                Some(code),
                format!("server error ({code}){}", brief(message)),
                true,
            ),
            // Go's net/http answers this to plain HTTP on a TLS port.
            400 if self.endpoint.plain_http && message.contains("HTTPS server") => registry(
                Some(code),
                format!(
                    "the registry speaks HTTPS, not plain HTTP: name its CA with `ca_file` \
                     (or set `insecure = false`) for {} in the registries config",
                    self.endpoint.host
                ),
                false,
            ),
            _ => registry(
                Some(code),
                format!("unexpected answer ({code}){}", brief(message)),
                false,
            ),
        };
        match e {
            OciDistributionError::UnauthorizedError { .. } => unauthorized(401),
            OciDistributionError::AuthenticationFailure(_) => unauthorized(401),
            OciDistributionError::RegistryError { envelope, .. } => {
                let code = envelope.errors.first().map(|e| &e.code);
                let text = envelope
                    .errors
                    .iter()
                    .map(|e| e.message.to_lowercase())
                    .collect::<Vec<_>>()
                    .join("; ");
                match code {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound,
                    ) => not_found(),
                    Some(OciErrorCode::Unauthorized) => unauthorized(401),
                    Some(OciErrorCode::Denied) => unauthorized(403),
                    Some(OciErrorCode::Toomanyrequests) => {
                        registry(Some(429), format!("too many requests: {text}"), true)
                    }
                    _ => registry(None, text, false),
                }
            }
            OciDistributionError::ServerError { code, message, .. } => {
                by_status(code, message.trim())
            }
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => match target {
                Target::Blob(digest) => ImageError::BlobCorrupt {
                    digest: digest.clone(),
                    actual,
                },
                _ => ImageError::ManifestCorrupt {
                    endpoint: self.endpoint.host.clone(),
                    repository: self.repository.clone(),
                    expected,
                    actual,
                },
            },
            // Some oci-client calls (a blob HEAD before a push) turn an HTTP status into a
            // request error: a 401 there is a refusal, not a network failure to retry.
            OciDistributionError::RequestError(e) => match e.status() {
                Some(status) => by_status(status.as_u16(), ""),
                None => network_error(&endpoint, &e),
            },
            OciDistributionError::IoError(e) => {
                if let Some(DigestError::VerificationError { actual, .. }) =
                    e.get_ref().and_then(|i| i.downcast_ref::<DigestError>())
                {
                    if let Target::Blob(digest) = target {
                        return ImageError::BlobCorrupt {
                            digest: digest.clone(),
                            actual: actual.clone(),
                        };
                    }
                }
                network_error(&endpoint, &e)
            }
            other => registry(None, root_cause(&other), false),
        }
    }
}

/// A connection-level failure: transient, unless TLS itself failed (a wrong certificate or
/// HTTPS spoken to a plain-HTTP registry does not fix itself).
pub fn network_error(endpoint: &str, e: &(dyn std::error::Error + 'static)) -> ImageError {
    let cause = root_cause(e);
    let lower = chain(e).to_lowercase();
    if lower.contains("certificate") || lower.contains("corrupt message") || lower.contains("tls") {
        return ImageError::Registry {
            endpoint: endpoint.to_string(),
            status: None,
            message: format!(
                "TLS failed: {cause} (to trust a private CA, name it with `ca_file` for this host \
                 in the registries config; for a plain-HTTP registry, set `insecure = true`)"
            ),
            transient: false,
        };
    }
    ImageError::Network {
        endpoint: endpoint.to_string(),
        cause,
    }
}

/// ` : <first line of the body>` for messages, short.
fn brief(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        String::new()
    } else {
        let cut: String = line.chars().take(200).collect();
        format!(": {cut}")
    }
}

/// The innermost cause's message, lowercase first letter ("connection refused (os error
/// 111)"), which is what a user can act on.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let msg = match cur.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        Some(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
            "connection reset by peer".to_string()
        }
        _ => cur.to_string(),
    };
    let msg = if msg.is_empty() { e.to_string() } else { msg };
    // Lowercase only a capitalized word: "Connection reset", not "HTTP status".
    let mut chars = msg.chars();
    match (chars.next(), chars.next()) {
        (Some(c), second) if !second.is_some_and(char::is_uppercase) => {
            c.to_lowercase().chain(msg.chars().skip(1)).collect()
        }
        _ => msg,
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Checks that `user`/`password` are accepted by `endpoint`: the token endpoint for bearer
/// registries, an authenticated request for basic-auth ones.
pub async fn check_credentials(remote: &Remote) -> Result<(), ImageError> {
    let probe = remote.reference("latest");
    let token = remote
        .client
        .auth(&probe, remote.auth(), RegistryOperation::Pull)
        .await;
    match token {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err(remote.classify(e, &Target::Other)),
    }
    match remote
        .client
        .fetch_manifest_digest(&probe, remote.auth())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match remote.classify(e, &Target::Other) {
            e @ (ImageError::Unauthorized { .. }
            | ImageError::Network { .. }
            | ImageError::Registry {
                transient: true, ..
            }) => Err(e),
            // 404 and friends: the credentials were accepted, the probe repository is absent.
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn remote(auth: Option<Credential>) -> Remote {
        let ep = Endpoint {
            host: "127.0.0.1:5000".into(),
            plain_http: true,
            mirror: false,
            ca_file: None,
        };
        Remote::new(
            build_client(std::slice::from_ref(&ep)).unwrap(),
            ep,
            "library/busybox",
            auth,
            "127.0.0.1:5000",
        )
    }

    fn envelope(code: &str) -> OciDistributionError {
        let envelope: OciEnvelope = serde_json::from_str(&format!(
            r#"{{"errors":[{{"code":"{code}","message":"Manifest Unknown"}}]}}"#
        ))
        .unwrap();
        let _unused: Option<OciError> = None;
        OciDistributionError::RegistryError {
            envelope,
            url: "u".into(),
        }
    }

    #[test]
    fn classifies_registry_answers() {
        let r = remote(None);
        let tag = Target::Manifest("tag \"nope\"".into());
        let e = r.classify(envelope("MANIFEST_UNKNOWN"), &tag);
        assert_eq!(
            e.to_string(),
            "manifest unknown: 127.0.0.1:5000 has no tag \"nope\" in library/busybox (404)"
        );
        assert!(!e.is_transient());
        let e = r.classify(
            OciDistributionError::UnauthorizedError { url: "u".into() },
            &tag,
        );
        assert!(e.to_string().contains("requires credentials"), "{e}");
        assert!(e.to_string().contains("peapod login 127.0.0.1:5000"), "{e}");
        let with_creds = remote(Some(Credential {
            username: "u".into(),
            password: "p".into(),
        }));
        let e = with_creds.classify(envelope("DENIED"), &tag);
        assert!(
            e.to_string().starts_with("denied: ") && e.to_string().contains("(403)"),
            "{e}"
        );
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        for (code, transient) in [
            (500, true),
            (503, true),
            (429, true),
            (404, false),
            (400, false),
        ] {
            let e = r.classify(
                OciDistributionError::ServerError {
                    code,
                    url: "u".into(),
                    message: "x".into(),
                },
                &Target::Blob("sha256:ab".into()),
            );
            assert_eq!(e.is_transient(), transient, "{code}: {e}");
        }
        let e = r.classify(envelope("TOOMANYREQUESTS"), &tag);
        assert!(e.is_transient());
        // Plain HTTP to a TLS port: Go's answer, turned into a hint naming the host.
        let e = r.classify(
            OciDistributionError::ServerError {
                code: 400,
                url: "u".into(),
                message: "Client sent an HTTP request to an HTTPS server.\n".into(),
            },
            &tag,
        );
        assert!(
            e.to_string().contains("speaks HTTPS") && e.to_string().contains("127.0.0.1:5000"),
            "{e}"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn root_cause_keeps_acronyms() {
        let e = std::io::Error::other("HTTP status client error");
        assert_eq!(root_cause(&e), "HTTP status client error");
        let e = std::io::Error::other("Broken pipe");
        assert_eq!(root_cause(&e), "broken pipe");
    }

    #[test]
    fn classifies_stream_errors() {
        let r = remote(None);
        let blob = Target::Blob("sha256:aa".into());
        let io = std::io::Error::other(DigestError::VerificationError {
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        });
        let e = r.classify(OciDistributionError::IoError(io), &blob);
        assert_eq!(
            e.to_string(),
            "blob sha256:aa has digest sha256:bb (corrupt or tampered); nothing was stored"
        );
        assert!(!e.is_transient());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = r.classify(OciDistributionError::IoError(reset), &blob);
        assert!(e.is_transient());
        assert!(e.to_string().contains("connection reset"), "{e}");
    }
}
