//! The front's test PKI: a CA, a server certificate for `localhost` and
//! `127.0.0.1` signed by it, client certificates on demand, and an unrelated
//! CA for "wrong CA" cases. Everything is made fresh per front and written as
//! PEM into the front's temporary directory, where librdkafka reads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// A CA, the server certificate it signed, and the directory of PEM files.
pub struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
    server: (CertificateDer<'static>, KeyPair),
    ca_file: PathBuf,
    other_ca_file: PathBuf,
}

impl Pki {
    /// Makes both CAs and the server certificate, and writes the CA files.
    pub fn new() -> Self {
        // A test cannot go on without its certificates: panics say why.
        let dir = tempfile::Builder::new()
            .prefix("kafka-front-")
            .tempdir()
            .expect("temporary directory for the test PKI");
        let ca = new_ca("openim-bridge test CA");
        let other_ca = new_ca("unrelated test CA");
        let (server_cert, server_key) = issue(
            &ca,
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let ca_file = dir.path().join("ca.pem");
        let other_ca_file = dir.path().join("other-ca.pem");
        write(&ca_file, &ca.pem());
        write(&other_ca_file, &other_ca.pem());
        Self {
            dir,
            ca,
            other_ca,
            server: (server_cert.der().clone(), server_key),
            ca_file,
            other_ca_file,
        }
    }

    /// The directory the PEM files live in (deleted with the front).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PEM file of the CA that signed the server certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// PEM file of a CA that signed nothing the front uses.
    pub fn other_ca_file(&self) -> &Path {
        &self.other_ca_file
    }

    /// Certificate and key PEM files for a client named `cn`, signed by the
    /// CA (so mutual TLS accepts it).
    pub fn client_cert(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.write_client(&self.ca, cn, "client")
    }

    /// Like [`Self::client_cert`], but signed by the unrelated CA (so mutual
    /// TLS refuses it).
    pub fn untrusted_client_cert(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.write_client(&self.other_ca, cn, "untrusted-client")
    }

    /// The front's TLS server configuration; with `mutual`, a client must
    /// present a certificate signed by the CA.
    pub fn server_config(&self, mutual: bool) -> ServerConfig {
        let builder = if mutual {
            let mut roots = RootCertStore::empty();
            roots
                .add(self.ca.der().clone())
                .expect("CA is a valid root");
            // No CA names in the certificate request: given them, OpenSSL
            // keeps a client certificate from another CA to itself, and the
            // front's chain check would never be exercised.
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .clear_root_hint_subjects()
                .build()
                .expect("client verifier");
            ServerConfig::builder().with_client_cert_verifier(verifier)
        } else {
            ServerConfig::builder().with_no_client_auth()
        };
        let (cert, key) = &self.server;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        builder
            .with_single_cert(vec![cert.clone()], key)
            .expect("server certificate matches its key")
    }

    fn write_client(
        &self,
        ca: &CertifiedIssuer<'static, KeyPair>,
        cn: &str,
        prefix: &str,
    ) -> (PathBuf, PathBuf) {
        let (cert, key) = issue(ca, &[], cn, ExtendedKeyUsagePurpose::ClientAuth);
        let cert_file = self.dir.path().join(format!("{prefix}-{cn}.pem"));
        let key_file = self.dir.path().join(format!("{prefix}-{cn}.key"));
        write(&cert_file, &cert.pem());
        write(&key_file, &key.serialize_pem());
        (cert_file, key_file)
    }
}

/// A self-signed CA allowed to sign certificates.
fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    CertifiedIssuer::self_signed(params, key).expect("CA certificate")
}

/// A leaf certificate for `names` (DNS names or IP addresses) and its key.
fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (Certificate, KeyPair) {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("valid subject names");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("leaf certificate");
    (cert, key)
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|err| panic!("writing {path:?}: {err}"));
}
