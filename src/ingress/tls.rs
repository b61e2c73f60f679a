//! Optional TLS for the listener: a certificate chain and private key in
//! PEM files (`http.tls_cert_file`, `http.tls_key_file`), read at startup.
//! To rotate a certificate, replace the files and restart (replicas one at a
//! time; the spool keeps acked events across the restart).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {file}: {problem} (check http.tls_cert_file and http.tls_key_file)")]
pub struct TlsError {
    file: PathBuf,
    #[source]
    problem: Problem,
}

/// What is wrong with the file.
#[derive(Debug, thiserror::Error)]
enum Problem {
    /// Not readable, or not PEM.
    #[error(transparent)]
    Pem(#[from] pem::Error),
    /// A PEM file without a certificate.
    #[error("no certificate in the file")]
    NoCertificate,
    /// rustls refused the certificate chain or the key.
    #[error(transparent)]
    Refused(#[from] rustls::Error),
}

impl TlsError {
    fn new(file: &Path, problem: impl Into<Problem>) -> Self {
        Self {
            file: file.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::new(cert_file, err))?;
    if certs.is_empty() {
        return Err(TlsError::new(cert_file, Problem::NoCertificate));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| TlsError::new(key_file, err))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| TlsError::new(cert_file, err))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
