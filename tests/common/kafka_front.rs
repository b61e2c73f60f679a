//! A front for Tansu so tests can publish over TLS and with SASL.
//!
//! Tansu (the test broker) serves neither TLS nor SASL with in-memory
//! storage (0.6.0 accepts `--cert`/`--key` but never wraps a connection in
//! TLS, and its `--authentication` needs SCRAM credentials in storage), so
//! each [`KafkaFront`] is a TCP listener on 127.0.0.1:0 that
//! optionally terminates TLS (rustls, its own test CA, optionally requiring
//! a client certificate) and optionally plays the broker's half of SASL
//! (the [`SaslDouble`](sasl::SaslDouble): PLAIN, SCRAM-SHA-256/512 and
//! OAUTHBEARER with real checks), then copies bytes to its own Tansu.
//! That Tansu advertises the front's port, so metadata sends clients back
//! through the front for every broker connection.
//!
//! ```text
//! client --TLS?--> front --SASL double?--> copy_bidirectional --> tansu
//! ```
//!
//! The front runs on its own runtime (one worker thread): tests read
//! records with a blocking consumer, which would otherwise starve the front
//! on the test's runtime. Dropping the front stops it and kills its Tansu.

mod pki;
mod sasl;
mod scram;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use pki::Pki;
pub use sasl::Sasl;
use sasl::SaslDouble;

/// What the front asks of its clients.
#[derive(Debug, Clone, Default)]
pub struct FrontOptions {
    /// TLS on the front's port (`None`: plain TCP).
    pub tls: Option<FrontTls>,
    /// The SASL user the double accepts (`None`: no authentication).
    pub sasl: Option<Sasl>,
}

/// TLS with the front's own test CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontTls {
    /// The server authenticates itself; clients need the CA.
    Server,
    /// Clients must also present a certificate signed by the CA.
    Mutual,
}

/// The client name of [`KafkaFront::client_properties`]' certificate in
/// mutual TLS.
pub const CLIENT_CN: &str = "openim-bridge";

/// A running front and its Tansu.
pub struct KafkaFront {
    port: u16,
    options: FrontOptions,
    pki: Pki,
    /// [`CLIENT_CN`]'s certificate and key files, made once in mutual TLS.
    client_files: Option<(PathBuf, PathBuf)>,
    double: Option<Arc<SaslDouble>>,
    /// Runs the accept loop and every connection; shut down on drop.
    runtime: Option<tokio::runtime::Runtime>,
    tansu: Child,
}

impl KafkaFront {
    /// Starts a front with `options` and a Tansu behind it.
    pub async fn start(options: FrontOptions) -> Self {
        let pki = Pki::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("front listener");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("front address").port();
        let (tansu, tansu_addr) = start_tansu(port, pki.dir()).await;
        let tls = options
            .tls
            .map(|tls| TlsAcceptor::from(Arc::new(pki.server_config(tls == FrontTls::Mutual))));
        let client_files =
            (options.tls == Some(FrontTls::Mutual)).then(|| pki.client_cert(CLIENT_CN));
        let double = options
            .sasl
            .clone()
            .map(|sasl| Arc::new(SaslDouble::new(sasl)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kafka-front")
            .enable_all()
            .build()
            .expect("front runtime");
        runtime.spawn(accept(listener, tls, double.clone(), tansu_addr));
        Self {
            port,
            options,
            pki,
            client_files,
            double,
            runtime: Some(runtime),
            tansu,
        }
    }

    /// Bootstrap servers: `localhost:P` with TLS (so the client checks the
    /// host name against the certificate), `127.0.0.1:P` without. Brokers
    /// in metadata are `127.0.0.1:P` (the certificate names that too).
    pub fn bootstrap(&self) -> String {
        match self.options.tls {
            Some(_) => format!("localhost:{}", self.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// PEM file of the CA that signed the front's certificate.
    pub fn ca_file(&self) -> &Path {
        self.pki.ca_file()
    }

    /// PEM file of a CA unrelated to the front.
    pub fn other_ca_file(&self) -> &Path {
        self.pki.other_ca_file()
    }

    /// Certificate and key PEM files for client `cn`, signed by the CA
    /// (a new certificate on every call).
    pub fn client_cert(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.pki.client_cert(cn)
    }

    /// Certificate and key PEM files for client `cn`, signed by the
    /// unrelated CA (mutual TLS refuses them).
    pub fn untrusted_client_cert(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.pki.untrusted_client_cert(cn)
    }

    /// The librdkafka properties a correct client needs besides
    /// `bootstrap.servers`: `security.protocol`, `ssl.ca.location`, a
    /// client certificate ([`CLIENT_CN`]) in mutual TLS, and the `sasl.*`
    /// credentials.
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let protocol = match (&self.options.tls, &self.options.sasl) {
            (None, None) => "PLAINTEXT",
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (Some(_), Some(_)) => "SASL_SSL",
        };
        let mut properties = vec![("security.protocol".to_owned(), protocol.to_owned())];
        let path = |path: &Path| path.to_string_lossy().into_owned();
        if self.options.tls.is_some() {
            properties.push(("ssl.ca.location".to_owned(), path(self.ca_file())));
        }
        if let Some((cert, key)) = &self.client_files {
            properties.push(("ssl.certificate.location".to_owned(), path(cert)));
            properties.push(("ssl.key.location".to_owned(), path(key)));
        }
        if let Some(sasl) = &self.options.sasl {
            properties.extend(sasl.client_properties());
        }
        properties
    }

    /// Creates `topic` through the front with [`Self::client_properties`]
    /// (Tansu does not create topics on first use).
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        super::kafka::create_topic_with(
            &self.bootstrap(),
            &self.client_properties(),
            topic,
            partitions,
        )
        .await;
    }

    /// (successful, failed) authentications the SASL double has seen;
    /// (0, 0) without SASL.
    pub fn authentications(&self) -> (usize, usize) {
        self.double
            .as_ref()
            .map_or((0, 0), |double| double.authentications())
    }
}

impl Drop for KafkaFront {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Allowed inside an async test, unlike dropping a runtime.
            runtime.shutdown_background();
        }
        let _ = self.tansu.kill();
        let _ = self.tansu.wait();
    }
}

/// Accepts clients forever (until the runtime is shut down).
async fn accept(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    double: Option<Arc<SaslDouble>>,
    tansu: SocketAddr,
) {
    // Runs inside the front's runtime, which from_std needs.
    let listener = TcpListener::from_std(listener).expect("front listener on the runtime");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (tls, double) = (tls.clone(), double.clone());
        tokio::spawn(async move {
            // A failed handshake or a dropped connection is for the client
            // to report; the front just closes.
            let _ = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve(stream, double, tansu).await,
                    Err(_) => Ok(()),
                },
                None => serve(tcp, double, tansu).await,
            };
        });
    }
}

/// One client: SASL first if the front requires it, then bytes both ways.
async fn serve<S>(
    mut client: S,
    double: Option<Arc<SaslDouble>>,
    tansu: SocketAddr,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut upstream = TcpStream::connect(tansu).await?;
    upstream.set_nodelay(true)?;
    if let Some(double) = double {
        if !double.authenticate(&mut client, &mut upstream).await? {
            return Ok(());
        }
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// The Tansu binary (see [`openim_bridge_test_kit::kafka::tansu_binary`]).
fn tansu_binary() -> PathBuf {
    openim_bridge_test_kit::kafka::tansu_binary().unwrap_or_else(|| {
        panic!("no tansu binary (set OPENIM_BRIDGE_TANSU, or run scripts/test once: it installs tansu into ~/.cargo/bin)")
    })
}

/// Starts Tansu on a free port, advertising the front's `front_port`;
/// retries on another port if it does not come up (the free port may be
/// taken between our check and its bind). Logs go to `dir`.
async fn start_tansu(front_port: u16, dir: &Path) -> (Child, SocketAddr) {
    let binary = tansu_binary();
    let mut last_log = String::new();
    for attempt in 0..5 {
        let addr = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        let log_file = dir.join(format!("tansu-{attempt}.log"));
        let log = std::fs::File::create(&log_file).expect("tansu log file");
        let mut child = openim_bridge_test_kit::kafka::tansu(addr.port(), front_port)
            .stdout(log.try_clone().expect("tansu log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {binary:?}: {err}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            if TcpStream::connect(addr).await.is_ok() {
                return (child, addr);
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        last_log = std::fs::read_to_string(&log_file).unwrap_or_default();
    }
    panic!("tansu did not start listening in 5 attempts; last log:\n{last_log}");
}
