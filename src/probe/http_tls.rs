//! TLS for `scheme: HTTPS`, as the kubelet dials it: `InsecureSkipVerify` (any certificate,
//! any name; the handshake's signatures are still checked, as Go does), no SNI for an IP host
//! [pkg/probe/http/http.go New, kubelet.go insecureContainerLifecycleHTTPClient].

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// Go's error when a TLS client reads an HTTP answer [net/http transport.go].
pub const HTTP_RESPONSE_TO_HTTPS: &str = "http: server gave HTTP response to HTTPS client";

/// A TLS connection over TCP.
pub type TlsStream = StreamOwned<ClientConnection, Recording>;

/// Accepts every certificate; checks that the peer holds its key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The socket under TLS, keeping the first bytes the server sent: an HTTP server answering a
/// ClientHello starts with `HTTP/`, which Go reports by name.
#[derive(Debug)]
pub struct Recording {
    sock: TcpStream,
    first: Vec<u8>,
}

impl Recording {
    /// The TCP socket under the TLS session.
    pub fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        let want = 5usize.saturating_sub(self.first.len()).min(n);
        self.first.extend_from_slice(&buf[..want]);
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// A failed handshake: Go's words, and whether it was the deadline.
#[derive(Debug)]
pub struct TlsError {
    pub message: String,
    pub io_timeout: bool,
}

/// Runs the TLS handshake with `host` over `sock` (timeouts already set on it).
pub fn handshake(sock: TcpStream, host: &str) -> Result<TlsStream, TlsError> {
    let fail = |message: String| TlsError {
        message,
        io_timeout: false,
    };
    let provider = crate::tls::provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(format!("tls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    // An IP address gets no SNI; neither does a host that is not a valid DNS name.
    let name = ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()));
    let conn =
        ClientConnection::new(Arc::new(config), name).map_err(|e| fail(format!("tls: {e}")))?;
    let mut stream = StreamOwned::new(
        conn,
        Recording {
            sock,
            first: Vec::new(),
        },
    );
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            if stream.sock.first.starts_with(b"HTTP/") {
                return Err(fail(HTTP_RESPONSE_TO_HTTPS.into()));
            }
            let io_timeout = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
            let message = match e.get_ref() {
                Some(inner) => format!("tls: {inner}"),
                None if e.kind() == io::ErrorKind::UnexpectedEof => "EOF".to_string(),
                None => format!("tls: {e}"),
            };
            return Err(TlsError {
                message,
                io_timeout,
            });
        }
    }
    Ok(stream)
}
