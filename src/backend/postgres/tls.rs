//! TLS for PostgreSQL connections on rustls, with libpq's meaning of
//! `sslmode`: `require` encrypts without checking who answers (unless a
//! root certificate is given, then it checks the chain as `verify-ca`
//! does), `verify-ca` checks the chain, `verify-full` the chain and the
//! host name.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::tls::{ChannelBinding, TlsConnect};

use super::net::{PgSocket, Tapped, TAP_TLS};
use crate::config::{PgTarget, SslMode};
use crate::error::{Error, Result, Status};

pub type TlsStream = Tapped<tokio_rustls::client::TlsStream<Tapped<PgSocket>>>;

/// The rustls client configuration for a target, built once per pool.
pub fn client_config(target: &PgTarget) -> Result<Option<Arc<ClientConfig>>> {
    if target.ssl_mode == SslMode::Disable {
        return Ok(None);
    }
    #[allow(deprecated)] // ring has no post-quantum key exchange; servers need none.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_store(target)?;
    let verify_chain = matches!(target.ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (target.ssl_mode == SslMode::Require && target.ssl_root_cert.is_some());
    let verifier: Arc<dyn ServerCertVerifier> = match (verify_chain, roots) {
        (false, _) => Arc::new(AcceptAnyCertificate(provider.clone())),
        (true, None) => {
            return Err(Error::new(
                Status::InvalidOption,
                format!(
                    "sslmode={} needs a root certificate to check the server against: set \
                     sslrootcert to a PEM file, or sslrootcert=system for the platform's roots \
                     (or put one in ~/.postgresql/root.crt)",
                    target.ssl_mode.name()
                ),
            ))
        }
        (true, Some(roots)) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| {
                        tls_option_error(format!("cannot use the root certificates: {e}"))
                    })?;
            if target.ssl_mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_option_error(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_identity(target)? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            tls_option_error(format!(
                "cannot use the client certificate (sslcert/sslkey): {e}"
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

fn tls_option_error(message: String) -> Error {
    Error::new(Status::InvalidOption, message)
}

fn home_file(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".postgresql").join(name);
    path.is_file().then_some(path)
}

/// `sslrootcert`: a PEM file, `system`, or libpq's default file if present.
fn root_store(target: &PgTarget) -> Result<Option<RootCertStore>> {
    let mut store = RootCertStore::empty();
    match target.ssl_root_cert.as_deref() {
        Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(tls_option_error(
                    "sslrootcert=system: no trusted root certificates were found on this system"
                        .into(),
                ));
            }
        }
        Some(file) => add_pem_certs(&mut store, Path::new(file))?,
        None => match home_file("root.crt") {
            Some(file) => add_pem_certs(&mut store, &file)?,
            None => return Ok(None),
        },
    }
    Ok(Some(store))
}

fn add_pem_certs(store: &mut RootCertStore, file: &Path) -> Result<()> {
    let certs = read_certs(file, "sslrootcert")?;
    for cert in certs {
        store.add(cert).map_err(|e| {
            tls_option_error(format!(
                "sslrootcert {}: not a usable CA certificate: {e}",
                file.display()
            ))
        })?;
    }
    Ok(())
}

fn read_certs(file: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .map_err(|e| tls_option_error(format!("{option} {}: {e}", file.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_option_error(format!("{option} {}: {e}", file.display())))?;
    if certs.is_empty() {
        return Err(tls_option_error(format!(
            "{option} {}: no PEM certificate in the file",
            file.display()
        )));
    }
    Ok(certs)
}

/// `sslcert` + `sslkey`, or libpq's default files when both exist.
fn client_identity(
    target: &PgTarget,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    let (cert, key) = match (&target.ssl_cert, &target.ssl_key) {
        (Some(c), Some(k)) => (PathBuf::from(c), PathBuf::from(k)),
        (Some(_), None) | (None, Some(_)) => {
            return Err(tls_option_error(
                "sslcert and sslkey go together: set both or neither".into(),
            ))
        }
        (None, None) => match (home_file("postgresql.crt"), home_file("postgresql.key")) {
            (Some(c), Some(k)) => (c, k),
            _ => return Ok(None),
        },
    };
    let chain = read_certs(&cert, "sslcert")?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| tls_option_error(format!("sslkey {}: {e}", key.display())))?;
    Ok(Some((chain, key)))
}

/// `require` without a root certificate: encryption without checking who
/// answers (libpq's meaning). Handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

/// `verify-ca`: the chain must lead to a trusted root; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Connects TLS over a tapped socket, moving the tap to the plaintext.
pub struct Connector {
    config: Option<Arc<ClientConfig>>,
    name: Option<ServerName<'static>>,
}

impl Connector {
    /// `host`: the name to verify (a host name or an IP address).
    pub fn new(config: Option<Arc<ClientConfig>>, host: &str) -> Connector {
        let name = ServerName::try_from(host.to_owned()).ok();
        Connector { config, name }
    }
}

impl TlsConnect<Tapped<PgSocket>> for Connector {
    type Stream = TlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream>> + Send>>;

    fn connect(self, stream: Tapped<PgSocket>) -> Self::Future {
        Box::pin(async move {
            let (Some(config), Some(name)) = (self.config, self.name) else {
                return Err(io::Error::other(
                    "TLS is not configured for this connection (sslmode=disable or no host name)",
                ));
            };
            let tap = stream.tap();
            tap.mark_tls();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            Ok(Tapped::new(tls, tap, TAP_TLS))
        })
    }
}

impl tokio_postgres::tls::TlsStream for TlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.get_ref().get_ref();
        match session.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => ChannelBinding::tls_server_end_point(end_point_hash(cert.as_ref())),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 tls-server-end-point: the certificate hashed with its
/// signature's hash, SHA-256 for MD5 and SHA-1.
fn end_point_hash(der: &[u8]) -> Vec<u8> {
    // DER-encoded OIDs of the SHA-384 and SHA-512 signature algorithms.
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    let contains = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    let algorithm = if SHA512.iter().any(|o| contains(o)) {
        &ring::digest::SHA512
    } else if SHA384.iter().any(|o| contains(o)) {
        &ring::digest::SHA384
    } else {
        &ring::digest::SHA256
    };
    ring::digest::digest(algorithm, der).as_ref().to_vec()
}
