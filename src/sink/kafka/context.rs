//! What librdkafka tells us besides delivery reports: errors (sorted into
//! outages and [`Refusal`]s), log lines (forwarded at debug level: they
//! repeat at every reconnect), and OAUTHBEARER tokens when it asks for one.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::debug;

use super::config::{KafkaSettings, SaslMechanism};
use crate::config::{read_secret_file, Secret};
use crate::sink::refusal::{self, Refusal};
use crate::stats::Stats;

/// The longest an OAUTHBEARER token is used before it is read again
/// (librdkafka asks at 80% of this).
const TOKEN_REREAD: Duration = Duration::from_secs(600);

/// The client context of the producer and the admin client.
pub struct BridgeContext {
    stats: Arc<Stats>,
    /// Connections closed at their first request (see [`Self::log`]).
    first_request_closed: AtomicU32,
    oauth: Option<TokenSource>,
    /// Principal for tokens that name none (no JWT `sub`).
    principal: String,
}

/// Where an OAUTHBEARER token comes from.
enum TokenSource {
    Fixed(Secret),
    /// Read again at every refresh: another process rotates it.
    File(PathBuf),
}

impl BridgeContext {
    /// A context reporting to `stats`, with the OAUTHBEARER token source
    /// of `settings` if it uses one.
    pub fn new(settings: &KafkaSettings, stats: Arc<Stats>) -> Self {
        let oauth = (settings.sasl_mechanism == SaslMechanism::OAuthBearer)
            .then(|| {
                match (
                    &settings.sasl_oauthbearer_token,
                    &settings.sasl_oauthbearer_token_file,
                ) {
                    (Some(token), _) => Some(TokenSource::Fixed(token.clone())),
                    (None, Some(path)) => Some(TokenSource::File(path.clone())),
                    (None, None) => None,
                }
            })
            .flatten();
        let principal = if settings.sasl_username.is_empty() {
            "openim-bridge".to_owned()
        } else {
            settings.sasl_username.clone()
        };
        Self {
            stats,
            first_request_closed: AtomicU32::new(0),
            oauth,
            principal,
        }
    }

    fn token(&self) -> Result<OAuthToken, String> {
        let secret = match &self.oauth {
            Some(TokenSource::Fixed(token)) => token.clone(),
            Some(TokenSource::File(path)) => read_secret_file(path).map_err(|err| {
                format!(
                    "cannot read kafka.sasl_oauthbearer_token_file {}: {err}",
                    path.display()
                )
            })?,
            None => {
                return Err("sasl_mechanism is oauthbearer but no token is configured: set kafka.sasl_oauthbearer_token or kafka.sasl_oauthbearer_token_file".to_owned())
            }
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        token_for(secret.expose(), &self.principal, now_ms)
    }
}

/// The token librdkafka gets: its lifetime is the JWT's `exp` (when it is
/// one) but at most [`TOKEN_REREAD`], its principal the JWT's `sub` or
/// `principal`. An expired JWT is an error naming it.
fn token_for(token: &str, principal: &str, now_ms: i64) -> Result<OAuthToken, String> {
    let token = token.trim();
    if token.is_empty() {
        return Err(
            "the OAUTHBEARER token is empty (kafka.sasl_oauthbearer_token or its file)".to_owned(),
        );
    }
    let claims = jwt_claims(token);
    let reread = now_ms + TOKEN_REREAD.as_millis() as i64;
    let expires = claims
        .as_ref()
        .and_then(|claims| claims.get("exp")?.as_f64())
        .map(|exp| (exp * 1000.0) as i64);
    if let Some(expires) = expires.filter(|expires| *expires <= now_ms) {
        return Err(format!(
            "the OAUTHBEARER token expired {} s ago: put a fresh one in kafka.sasl_oauthbearer_token (or its file)",
            (now_ms - expires) / 1000
        ));
    }
    let principal = claims
        .as_ref()
        .and_then(|claims| claims.get("sub")?.as_str().map(str::to_owned))
        .filter(|sub| !sub.is_empty())
        .unwrap_or_else(|| principal.to_owned());
    Ok(OAuthToken {
        token: token.to_owned(),
        principal_name: principal,
        lifetime_ms: expires.map_or(reread, |expires| expires.min(reread)),
    })
}

/// The claims of a JWT (`header.claims.signature`, base64url), if `token`
/// is one. The signature is the broker's business, not ours.
fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let claims = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

const TLS_MISMATCH_FIX: &str = "kafka.security_protocol does not match the listener in kafka.brokers: use `ssl` or `sasl_ssl` for a TLS port, `plaintext` or `sasl_plaintext` for a plain one";

/// Consecutive connections closed at their first request, before the broker
/// ever accepted us, that count as plaintext spoken to a TLS port.
const FIRST_REQUEST_CLOSED_LIMIT: u32 = 2;

/// Whether a librdkafka log line says the broker closed the connection
/// while we were asking for its API versions (our first request).
fn closed_at_first_request(facility: &str, message: &str) -> bool {
    facility == "FAIL"
        && message.contains("Disconnected")
        && message.contains("state APIVERSION_QUERY")
}

/// Sorts a librdkafka error into a refusal, with the settings to fix, or
/// `None` for an outage (waited out without a special log line).
pub fn refusal(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<(Refusal, &'static str)> {
    let reason = reason.to_ascii_lowercase();
    let mismatch = [
        "incorrect security.protocol",
        "wrong version number",
        "packet length too long",
        "http request",
    ];
    if mismatch.iter().any(|words| reason.contains(words)) {
        return Some((Refusal::TlsMismatch, TLS_MISMATCH_FIX));
    }
    if code == Some(RDKafkaErrorCode::Authentication) || reason.contains("sasl authentication") {
        return Some((
            Refusal::Authentication,
            "check kafka.sasl_username, kafka.sasl_password (or kafka.sasl_password_file) and kafka.sasl_mechanism, or the OAUTHBEARER token (kafka.sasl_oauthbearer_token or _file)",
        ));
    }
    let certificate = [
        "ssl handshake failed",
        "certificate required",
        "alert unknown ca",
        "alert bad certificate",
        "certificate verify failed",
    ];
    if code == Some(RDKafkaErrorCode::SSL) || certificate.iter().any(|words| reason.contains(words))
    {
        return Some((
            Refusal::Certificate,
            "set kafka.ssl_ca_file to the CA that signed the brokers' certificates (unset: the system's roots) and check that kafka.brokers names them as their certificates do; if the brokers require a client certificate, set kafka.ssl_cert_file and kafka.ssl_key_file",
        ));
    }
    None
}

impl ClientContext for BridgeContext {
    // librdkafka only asks when sasl.mechanism is OAUTHBEARER.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // Repeats at every reconnect; what matters arrives in `error`.
        debug!(target: "librdkafka", ?level, facility, message);
        // A TLS listener closes a plaintext client's first request; a
        // broker that never accepted us doing so again and again is that.
        if !self.stats.accepted() && closed_at_first_request(facility, message) {
            let count = self.first_request_closed.fetch_add(1, Ordering::Relaxed) + 1;
            if count >= FIRST_REQUEST_CLOSED_LIMIT {
                refusal::report(
                    &self.stats,
                    "kafka",
                    Refusal::TlsMismatch,
                    message,
                    TLS_MISMATCH_FIX,
                );
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match refusal(error.rdkafka_error_code(), reason) {
            Some((refusal, fix)) => refusal::report(&self.stats, "kafka", refusal, reason, fix),
            None => debug!(target: "librdkafka", cause = %error, reason, "kafka client error"),
        }
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn Error>> {
        self.token().map_err(|problem| {
            refusal::report(
                &self.stats,
                "kafka",
                Refusal::Authentication,
                &problem,
                "fix the OAUTHBEARER token",
            );
            problem.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let part = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        format!("{}.{}.sig", part(r#"{"alg":"none"}"#), part(claims))
    }

    #[test]
    fn a_jwt_lives_until_its_exp_but_is_read_again_within_ten_minutes() {
        let now = 1_800_000_000_000;
        let soon = token_for(&jwt(r#"{"sub":"svc","exp":1800000060}"#), "x", now).unwrap();
        assert_eq!(soon.lifetime_ms, 1_800_000_060_000);
        assert_eq!(soon.principal_name, "svc");
        let late = token_for(&jwt(r#"{"exp":1900000000}"#), "bridge", now).unwrap();
        assert_eq!(late.lifetime_ms, now + 600_000);
        assert_eq!(late.principal_name, "bridge");
        let opaque = token_for("opaque-token\n", "bridge", now).unwrap();
        assert_eq!(opaque.token, "opaque-token");
        assert_eq!(opaque.lifetime_ms, now + 600_000);
        let expired = token_for(&jwt(r#"{"exp":1799999000}"#), "x", now)
            .err()
            .unwrap();
        assert!(expired.contains("expired 1000 s ago"), "{expired}");
        assert!(token_for(" ", "x", now).is_err());
    }

    #[test]
    fn refusals_are_told_apart_from_outages() {
        use RDKafkaErrorCode as C;
        let cases = [
            (Some(C::Authentication), "SASL authentication error: Authentication failed: Invalid username or password (after 3ms in state AUTH_REQ)", Some(Refusal::Authentication)),
            (Some(C::SSL), "ssl://localhost:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified", Some(Refusal::Certificate)),
            (Some(C::SSL), "SSL handshake failed: error:0A00010B:SSL routines::wrong version number", Some(Refusal::TlsMismatch)),
            (Some(C::BrokerTransportFailure), "127.0.0.1:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?)", Some(Refusal::TlsMismatch)),
            (Some(C::BrokerTransportFailure), "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused", None),
            (Some(C::AllBrokersDown), "1/1 brokers are down", None),
            (Some(C::BrokerTransportFailure), "localhost:9093/bootstrap: SSL transport error: error:0A00045C:SSL routines::tlsv13 alert certificate required", Some(Refusal::Certificate)),
        ];
        for (code, reason, expected) in cases {
            assert_eq!(refusal(code, reason).map(|(r, _)| r), expected, "{reason}");
        }
        assert!(closed_at_first_request("FAIL", "localhost:9093/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 0ms in state APIVERSION_QUERY)"));
        assert!(!closed_at_first_request(
            "FAIL",
            "localhost:9093/bootstrap: Disconnected (after 5000ms in state UP)"
        ));
        let (_, fix) = refusal(Some(C::Authentication), "").unwrap();
        assert!(fix.contains("kafka.sasl_password"), "{fix}");
    }
}
