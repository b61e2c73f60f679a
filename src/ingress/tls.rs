//! Optional TLS for the listener: a certificate chain and private key in
//! PEM files (`http.tls_cert_file`, `http.tls_key_file`), read at startup.
//! To rotate a certificate, replace the files and restart (replicas one at a
//! time; the spool keeps acked events across the restart).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {file}: {problem} (check http.tls_cert_file and http.tls_key_file)")]
pub struct TlsError {
    file: PathBuf,
    problem: String,
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let error = |file: &Path, problem: String| TlsError {
        file: file.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| error(cert_file, err.to_string()))?;
    if certs.is_empty() {
        return Err(error(cert_file, "no certificate in the file".to_owned()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|err| error(key_file, err.to_string()))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| error(cert_file, err.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
