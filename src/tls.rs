//! The TLS crypto provider of every HTTPS client peapod makes (registries, `apply -f https://`,
//! httpGet probes with scheme HTTPS): rustls' `ring` provider. reqwest and oci-client are built
//! without a provider of their own (`rustls-no-provider`): the process default is installed
//! here before the first client is built. ring rather than aws-lc-rs: the same protocols and
//! key types a registry or probe target uses (TLS 1.2 and 1.3; ECDSA, RSA, Ed25519), for a
//! fraction of the build (aws-lc-sys alone took 64 s of CPU of a fresh build) and of the binary.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider, for a client configured by hand (the probes').
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs the provider as the process default, once (later calls find it there): called
/// before building a reqwest or oci-client client, which take the default.
pub fn install_default() {
    if CryptoProvider::get_default().is_none() {
        // Err only if another thread installed one meanwhile: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
