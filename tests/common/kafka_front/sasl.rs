//! A SASL test double: it plays the broker's half of Kafka's SASL exchange
//! so tests can check the *client* side (our producer's settings reach
//! librdkafka and it authenticates). It is not a broker and not a security
//! boundary: it knows one user, speaks only what librdkafka sends, and once
//! a client authenticated it copies bytes to Tansu untouched.
//!
//! Kafka framing: every request is a 4-byte big-endian length, then the
//! request header (api_key i16, api_version i16, correlation_id i32,
//! client_id nullable string with an i16 length; flexible versions add
//! tagged fields), then the body. Before authentication the double accepts:
//!
//! * ApiVersions (18), any version: relayed verbatim to Tansu, which
//!   advertises SaslHandshake and SaslAuthenticate (the self-test checks).
//! * SaslHandshake (17) v1: the mechanism name; answered with error 0 or
//!   33 (UNSUPPORTED_SASL_MECHANISM) and the one enabled mechanism.
//!   librdkafka 2.12 sends v1 whenever the broker advertises it; v0 would
//!   be followed by unframed tokens, which the double does not speak.
//! * SaslAuthenticate (36) v0 and v1 (librdkafka asks for at most v1, so
//!   the flexible v2 never comes): auth bytes in, error code, error message,
//!   auth bytes and (v1) a session lifetime of 0 (no re-authentication)
//!   out. A failed check answers 58 (SASL_AUTHENTICATION_FAILED).
//!
//! Anything else before authentication closes the connection.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::scram;

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Largest frame the double reads before authentication (librdkafka's
/// handshake frames are a few hundred bytes; ApiVersions replies ~1 KiB).
const MAX_FRAME: usize = 1 << 20;

/// The one user (or token subject) the double accepts, and how.
#[derive(Debug, Clone)]
pub enum Sasl {
    /// SASL/PLAIN: `authzid \0 user \0 password`.
    Plain { user: String, password: String },
    /// SASL/SCRAM-SHA-256 (RFC 5802), proof checked against the password.
    ScramSha256 { user: String, password: String },
    /// SASL/SCRAM-SHA-512, likewise.
    ScramSha512 { user: String, password: String },
    /// SASL/OAUTHBEARER (RFC 7628) with librdkafka's built-in *unsecured*
    /// JWT (`enable.sasl.oauthbearer.unsecure.jwt`, `alg: none`): accepted
    /// iff its `sub` claim is `principal` and it has not expired. This is
    /// what a client configured by properties alone (as the bridge is) can
    /// send: rdkafka's token callback needs code, and OIDC needs libcurl,
    /// which the bridge's rdkafka is built without.
    OAuthBearer { principal: String },
}

impl Sasl {
    /// The SASL mechanism name, as in `sasl.mechanism`.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Sasl::Plain { .. } => "PLAIN",
            Sasl::ScramSha256 { .. } => "SCRAM-SHA-256",
            Sasl::ScramSha512 { .. } => "SCRAM-SHA-512",
            Sasl::OAuthBearer { .. } => "OAUTHBEARER",
        }
    }

    /// The librdkafka `sasl.*` properties of a client with the right
    /// credentials.
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let mut properties = vec![("sasl.mechanism", self.mechanism().to_owned())];
        match self {
            Sasl::Plain { user, password }
            | Sasl::ScramSha256 { user, password }
            | Sasl::ScramSha512 { user, password } => {
                properties.push(("sasl.username", user.clone()));
                properties.push(("sasl.password", password.clone()));
            }
            Sasl::OAuthBearer { principal } => {
                properties.push(("enable.sasl.oauthbearer.unsecure.jwt", "true".to_owned()));
                properties.push(("sasl.oauthbearer.config", format!("principal={principal}")));
            }
        }
        properties
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect()
    }
}

/// The double for one front: its one user and what it has seen.
pub struct SaslDouble {
    sasl: Sasl,
    successes: AtomicUsize,
    failures: AtomicUsize,
}

/// The double's answer to one SaslAuthenticate request.
enum Step {
    /// More to do: these bytes go back, the exchange goes on.
    Challenge(Vec<u8>),
    /// Authenticated; these bytes go back.
    Success(Vec<u8>),
    /// Wrong credentials or a malformed message.
    Failure,
}

impl SaslDouble {
    pub fn new(sasl: Sasl) -> Self {
        Self {
            sasl,
            successes: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        }
    }

    /// (successful, failed) authentications so far.
    pub fn authentications(&self) -> (usize, usize) {
        (
            self.successes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Plays the broker's side of SASL on `client` (ApiVersions go to
    /// `upstream`); `Ok(true)` once the client authenticated, `Ok(false)`
    /// if the connection should be closed.
    pub async fn authenticate<S>(
        &self,
        client: &mut S,
        upstream: &mut TcpStream,
    ) -> std::io::Result<bool>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mechanism = self.sasl.mechanism();
        let mut agreed = false;
        let mut scram: Option<scram::Pending> = None;
        loop {
            let frame = read_frame(client).await?;
            let Some(request) = Request::parse(&frame) else {
                return Ok(false);
            };
            let outcome = match (request.api_key, request.api_version) {
                (API_VERSIONS, _) => {
                    write_frame(upstream, &frame).await?;
                    let reply = read_frame(upstream).await?;
                    write_frame(client, &reply).await?;
                    continue;
                }
                (SASL_HANDSHAKE, 1) if !agreed => {
                    agreed = Reader(request.body).string().as_deref() == Some(mechanism);
                    let reply = handshake_reply(agreed, mechanism);
                    respond(client, request.correlation_id, &reply).await?;
                    if agreed {
                        continue;
                    }
                    Step::Failure
                }
                (SASL_AUTHENTICATE, version @ 0..=1) if agreed => {
                    let Some(message) = Reader(request.body).bytes() else {
                        return Ok(false);
                    };
                    let step = self.step(&mut scram, message);
                    let reply = authenticate_reply(version, &step);
                    respond(client, request.correlation_id, &reply).await?;
                    step
                }
                _ => return Ok(false),
            };
            match outcome {
                Step::Challenge(_) => {}
                Step::Success(_) => {
                    self.successes.fetch_add(1, Ordering::Relaxed);
                    return Ok(true);
                }
                Step::Failure => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
            }
        }
    }

    /// Checks one client message of the exchange.
    fn step(&self, scram: &mut Option<scram::Pending>, message: &[u8]) -> Step {
        let verdict = |ok: bool| {
            if ok {
                Step::Success(Vec::new())
            } else {
                Step::Failure
            }
        };
        let (hash, user, password) = match &self.sasl {
            Sasl::Plain { user, password } => {
                let mut parts = message.split(|byte| *byte == 0);
                let (_authzid, given_user, given_password) =
                    (parts.next(), parts.next(), parts.next());
                return verdict(
                    given_user == Some(user.as_bytes())
                        && given_password == Some(password.as_bytes())
                        && parts.next().is_none(),
                );
            }
            Sasl::OAuthBearer { principal } => {
                return verdict(bearer_subject(message).as_deref() == Some(principal.as_str()));
            }
            Sasl::ScramSha256 { user, password } => (scram::SHA_256, user, password),
            Sasl::ScramSha512 { user, password } => (scram::SHA_512, user, password),
        };
        match scram.take() {
            None => match scram::first(hash, password, message) {
                Some((server_first, pending)) => {
                    *scram = Some(pending);
                    Step::Challenge(server_first.into_bytes())
                }
                None => Step::Failure,
            },
            Some(pending) => match scram::last(hash, user, &pending, message) {
                Some(server_final) => Step::Success(server_final.into_bytes()),
                None => Step::Failure,
            },
        }
    }
}

/// SaslHandshake response body: error code, then the enabled mechanisms.
fn handshake_reply(agreed: bool, mechanism: &str) -> Vec<u8> {
    let error = if agreed {
        0
    } else {
        UNSUPPORTED_SASL_MECHANISM
    };
    let mut body = error.to_be_bytes().to_vec();
    body.extend(1i32.to_be_bytes());
    put_string(&mut body, mechanism);
    body
}

/// SaslAuthenticate response body (v0, v1) for `step`.
fn authenticate_reply(version: i16, step: &Step) -> Vec<u8> {
    let (error, message, auth) = match step {
        Step::Challenge(auth) | Step::Success(auth) => (0, None, auth.as_slice()),
        Step::Failure => (
            SASL_AUTHENTICATION_FAILED,
            Some("Authentication failed: Invalid username or password"),
            &[][..],
        ),
    };
    let mut body = error.to_be_bytes().to_vec();
    match message {
        Some(message) => put_string(&mut body, message),
        None => body.extend((-1i16).to_be_bytes()),
    }
    // Auth bytes here are a few hundred bytes at most.
    body.extend(i32::try_from(auth.len()).unwrap().to_be_bytes());
    body.extend(auth);
    if version >= 1 {
        body.extend(0i64.to_be_bytes()); // session_lifetime_ms: no re-authentication
    }
    body
}

/// The `sub` of the unexpired unsecured JWT in an OAUTHBEARER
/// client-first message (`n,,\x01auth=Bearer <token>\x01...\x01`).
fn bearer_subject(message: &[u8]) -> Option<String> {
    let message = std::str::from_utf8(message).ok()?;
    let mut fields = message.split('\x01');
    if !fields.next()?.starts_with("n,") {
        return None;
    }
    let token = fields.find_map(|field| field.strip_prefix("auth=Bearer "))?;
    let [header, claims, signature] = token.split('.').collect::<Vec<_>>()[..] else {
        return None;
    };
    let json = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    if json(header)?["alg"] != "none" || !signature.is_empty() {
        return None;
    }
    let claims = json(claims)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    if claims["exp"].as_f64()? <= now {
        return None;
    }
    claims["sub"].as_str().map(str::to_owned)
}

/// A request header (v1; a v2 header's tagged fields stay in `body`, which
/// only matters for ApiVersions, relayed whole).
struct Request<'a> {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    body: &'a [u8],
}

impl<'a> Request<'a> {
    fn parse(frame: &'a [u8]) -> Option<Self> {
        let mut reader = Reader(frame);
        let api_key = reader.i16()?;
        let api_version = reader.i16()?;
        let correlation_id = reader.i32()?;
        let _client_id = reader.nullable_string()?;
        Some(Self {
            api_key,
            api_version,
            correlation_id,
            body: reader.0,
        })
    }
}

/// Reads big-endian Kafka primitives off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A nullable string: `Some(None)` for null.
    fn nullable_string(&mut self) -> Option<Option<&'a [u8]>> {
        match self.i16()? {
            -1 => Some(None),
            len => Some(Some(self.take(usize::try_from(len).ok()?)?)),
        }
    }

    fn string(&mut self) -> Option<String> {
        let bytes = self.nullable_string()??;
        String::from_utf8(bytes.to_vec()).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.i32()?).ok()?;
        self.take(len)
    }
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    // Every string the double writes is short and its own.
    out.extend(i16::try_from(text.len()).unwrap().to_be_bytes());
    out.extend(text.as_bytes());
}

/// One frame's contents (without the length prefix).
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes before authentication"),
        ));
    }
    let mut frame = vec![0; len];
    stream.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, frame: &[u8]) -> std::io::Result<()> {
    // Frames here are at most MAX_FRAME bytes.
    stream
        .write_u32(u32::try_from(frame.len()).unwrap())
        .await?;
    stream.write_all(frame).await?;
    stream.flush().await
}

/// Writes a response (header v0: the correlation id) with `body`.
async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    correlation_id: i32,
    body: &[u8],
) -> std::io::Result<()> {
    let mut frame = correlation_id.to_be_bytes().to_vec();
    frame.extend(body);
    write_frame(stream, &frame).await
}
