//! One callback request: check it, normalize it, spool it, ack it.
//!
//! This is where a callback goes: [`Handler::handle`] reads the body,
//! [`crate::normalize`] turns it into an event, [`crate::spool`] stores it,
//! and the ack goes back without waiting for any broker.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use hyper::{Method, Request, StatusCode, Uri};
use ipnet::IpNet;
use time::OffsetDateTime;
use tracing::{debug, warn, Instrument};

use super::invalid::InvalidLog;
use super::reply::{self, Reply};
use super::settings::{HttpSettings, UnknownCommands};
use crate::normalize::{self, CallbackKind, Event, NormalizeError};
use crate::routing::{Filter, Routes};
use crate::spool::{AppendError, SpoolWriter};
use crate::stats::{Outcome, Stats, UNKNOWN_COMMAND};
use crate::telemetry::RateLimit;

/// Why a callback was not accepted. Each maps to one HTTP status, and its
/// text becomes `errMsg`.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Not a POST.
    #[error("method {0} is not allowed: OpenIM callbacks are POST requests")]
    MethodNotAllowed(Method),
    /// Body over `http.max_body_bytes`.
    #[error("request body is larger than http.max_body_bytes ({0} bytes)")]
    TooLarge(usize),
    /// A compressed body.
    #[error("content-encoding `{0}` is not supported: send the body uncompressed")]
    Encoding(String),
    /// The connection failed while the body was read.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The body did not arrive in time.
    #[error("the request body did not arrive within http.body_read_timeout_ms ({0} ms)")]
    BodyTimeout(u64),
    /// The body is not a callback.
    #[error(transparent)]
    Body(#[from] NormalizeError),
    /// URL and body disagree on the command.
    #[error("the URL names callback command `{url}` but the body's callbackCommand is `{body}`")]
    CommandMismatch {
        /// From the path or `?command=`.
        url: String,
        /// From the body.
        body: String,
    },
    /// The shared secret is missing or wrong.
    #[error("missing or wrong token: put http.auth_token in OpenIM's webhooks.url (as a path segment or ?token=) or have the proxy send it in the `{0}` header")]
    Unauthorized(String),
    /// The client's address is not in `http.allow_ips`.
    #[error("client address {0} is not in http.allow_ips")]
    Forbidden(IpAddr),
    /// A command the catalog does not know, with
    /// `http.unknown_commands = "reject"`.
    #[error("callback command `{0}` is not known to this version of openim-bridge (http.unknown_commands = \"reject\"; set it to \"publish\" to publish such callbacks raw)")]
    UnknownCommand(String),
    /// The spool refused the event.
    #[error("{0}; this callback was NOT accepted")]
    Unavailable(#[from] AppendError),
}

impl CallbackError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyRead(_) | Self::Body(_) | Self::CommandMismatch { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::UnknownCommand(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What the handler learned of a request while accepting it, for its reply
/// and metrics.
#[derive(Debug, Default)]
struct Seen {
    /// The body's command, once known.
    kind: Option<CallbackKind>,
    /// The body, once read (a before-callback's reply may echo from it).
    body: Bytes,
}

impl Seen {
    /// The metrics label: the command, or [`UNKNOWN_COMMAND`].
    fn command(&self) -> &'static str {
        self.kind.map_or(UNKNOWN_COMMAND, CallbackKind::command)
    }
}

/// Shared by every connection.
#[derive(Debug)]
pub struct Handler {
    spool: SpoolWriter,
    source: Arc<str>,
    max_body_bytes: usize,
    body_timeout: Duration,
    auth_token: Option<String>,
    auth_header: String,
    allow: Vec<IpNet>,
    stats: Arc<Stats>,
    refusal_log: Arc<RateLimit>,
    invalid_log: Option<InvalidLog>,
    routes: Arc<Routes>,
    filter: Filter,
    unknown_commands: UnknownCommands,
    unknown_log: RateLimit,
}

impl Handler {
    /// A handler appending to `spool` the callbacks `routes` and `filter`
    /// let through from the addresses in `allow` (`http.allow_ips`,
    /// parsed; empty: every address); refused callbacks are kept in
    /// `spool_dir` (see [`InvalidLog`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spool: SpoolWriter,
        source: &str,
        http: &HttpSettings,
        spool_dir: &Path,
        stats: Arc<Stats>,
        routes: Arc<Routes>,
        filter: Filter,
        allow: Vec<ipnet::IpNet>,
    ) -> Self {
        Self {
            routes,
            filter,
            unknown_commands: http.unknown_commands,
            unknown_log: RateLimit::default(),
            spool,
            source: Arc::from(source),
            max_body_bytes: http.max_body_bytes,
            body_timeout: Duration::from_millis(http.body_read_timeout_ms),
            auth_token: http.auth_token.clone(),
            auth_header: http.auth_header.clone(),
            allow,
            stats,
            refusal_log: Arc::default(),
            invalid_log: (http.invalid_log_max_bytes > 0)
                .then(|| InvalidLog::new(spool_dir, http.invalid_log_max_bytes)),
        }
    }

    /// Answers one request. Never fails: every problem becomes an
    /// OpenIM-shaped error reply.
    pub async fn handle(&self, request: Request<Incoming>, peer: IpAddr) -> Reply {
        if let Some(reply) = self.health(&request) {
            return reply;
        }
        let started = std::time::Instant::now();
        let operation_id = operation_id(&request);
        let span = tracing::info_span!(
            "callback",
            operation_id = %operation_id,
            command = tracing::field::Empty,
            event_id = tracing::field::Empty,
            key = tracing::field::Empty,
        );
        let mut seen = Seen::default();
        let named_in_url = url_command(request.uri());
        let result = match self.admit(&request, peer) {
            Ok(()) => {
                self.accept(request, named_in_url.as_deref(), &operation_id, &mut seen)
                    .instrument(span.clone())
                    .await
            }
            Err(refused) => Err(refused),
        };
        self.stats
            .ack_seconds
            .observe(started.elapsed().as_secs_f64());
        let _entered = span.enter();
        // A before-callback's catalog entry, by the body's command.
        let before = seen
            .kind
            .map(CallbackKind::spec)
            .filter(|spec| spec.is_before());
        match result {
            Ok(outcome) => {
                self.stats.callback(seen.command(), outcome);
                // "Continue", leaving the user's request as OpenIM sent it.
                reply::continue_unchanged(before.map_or(&[], |spec| spec.echo), &seen.body)
            }
            Err(err) => {
                let status = err.status();
                let outcome = match status {
                    StatusCode::SERVICE_UNAVAILABLE => Outcome::Unavailable,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Unauthorized,
                    _ => Outcome::Invalid,
                };
                self.stats.callback(seen.command(), outcome);
                // OpenIM waits for a before-callback's answer and blocks the
                // user's action on an error reply: those get "continue". The
                // body may not have named its command; the URL may.
                let before = before.or_else(|| {
                    let kind = CallbackKind::from_command(named_in_url.as_deref()?)?;
                    Some(kind.spec()).filter(|spec| spec.is_before())
                });
                let answer_continue = before.is_some() && outcome != Outcome::Unauthorized;
                if let Some(suppressed) = self.refusal_log.allow() {
                    warn!(status = status.as_u16(), reason = %err, answered_continue = answer_continue, suppressed, "callback refused (at most one such line per second; `suppressed` counts the others)");
                }
                if answer_continue {
                    let echo = before.map_or(&[][..], |spec| spec.echo);
                    return reply::continue_unchanged(echo, &seen.body);
                }
                reply::error(status, &err.to_string())
            }
        }
    }

    /// `GET /healthz`: the process serves requests. `GET /readyz`: it can
    /// take a callback now (the spool has room for the largest one).
    /// `GET /metrics`: Prometheus metrics. Any other request is a callback.
    fn health(&self, request: &Request<Incoming>) -> Option<Reply> {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return None;
        }
        match request.uri().path() {
            "/healthz" => Some(reply::json_value(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            "/metrics" => {
                self.stats.spool_bytes.set(self.spool.usage().0);
                Some(reply::metrics(self.stats.render()))
            }
            "/readyz" => {
                let (used, max) = self.spool.usage();
                let shutting_down = self.stats.shutting_down.get() != 0;
                // A replica the broker never accepted (a bad secret in a new
                // deploy) is not ready, so a rolling deploy stalls there;
                // one it accepted stays ready through later broker trouble
                // (acked callbacks wait in the spool).
                let accepted = self.stats.broker_accepted.get() == 1;
                let has_room = used + self.max_body_bytes as u64 <= max;
                let ready = has_room && accepted && !shutting_down;
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let refusal = self.stats.refusal();
                let broker = match refusal {
                    Some(refusal) => format!("refused: {}", refusal.label()),
                    None if self.stats.broker_up.get() == 1 && accepted => "up".to_owned(),
                    None if accepted => "failing".to_owned(),
                    None => "connecting".to_owned(),
                };
                // Reported, not required: callbacks are still spooled while
                // the publisher retries a failing read.
                let spool_reads = if self.stats.spool_read_failing.get() == 0 {
                    "ok"
                } else {
                    "failing"
                };
                let body = serde_json::json!({
                    "status": if shutting_down {
                        "shutting down"
                    } else if !accepted {
                        "waiting for the broker"
                    } else if ready {
                        "ready"
                    } else {
                        "spool full"
                    },
                    "spool_used_bytes": used,
                    "spool_max_bytes": max,
                    "spool_reads": spool_reads,
                    "broker": broker,
                });
                Some(reply::json_value(status, &body))
            }
            _ => None,
        }
    }

    /// The client-address allowlist and the shared secret. The token is
    /// compared in constant time and never logged.
    fn admit(&self, request: &Request<Incoming>, peer: IpAddr) -> Result<(), CallbackError> {
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&peer)) {
            return Err(CallbackError::Forbidden(peer));
        }
        let Some(token) = &self.auth_token else {
            return Ok(());
        };
        let uri = request.uri();
        let in_header = request
            .headers()
            .get(self.auth_header.as_str())
            .map(|v| Cow::Borrowed(v.as_bytes()));
        let in_query = query_token(uri).map(|token| Cow::Owned(token.into_bytes()));
        let in_path = uri.path().split('/').map(|s| Cow::Borrowed(s.as_bytes()));
        let presented = in_header.into_iter().chain(in_query).chain(in_path);
        // Check every candidate, so timing does not depend on where it is.
        let found = presented.fold(false, |found, candidate| {
            found | same(&candidate, token.as_bytes())
        });
        if found {
            Ok(())
        } else {
            Err(CallbackError::Unauthorized(self.auth_header.clone()))
        }
    }

    /// `path` with a path-segment token replaced by `***`.
    fn without_token(&self, path: &str) -> String {
        match &self.auth_token {
            Some(token) => path
                .split('/')
                .map(|segment| if segment == token { "***" } else { segment })
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_owned(),
        }
    }

    /// Checks, normalizes and spools one callback (unless its route is
    /// disabled or a filter drops it: [`Outcome::Skipped`]); records in
    /// `seen` the body and, once it names one, its command (for the reply
    /// and the metrics label).
    async fn accept(
        &self,
        request: Request<Incoming>,
        url_command: Option<&str>,
        operation_id: &str,
        seen: &mut Seen,
    ) -> Result<Outcome, CallbackError> {
        let received_at = OffsetDateTime::now_utc();
        if request.method() != Method::POST {
            return Err(CallbackError::MethodNotAllowed(request.method().clone()));
        }
        if let Some(encoding) = request.headers().get(CONTENT_ENCODING) {
            let encoding = String::from_utf8_lossy(encoding.as_bytes())
                .trim()
                .to_ascii_lowercase();
            if encoding != "identity" {
                return Err(CallbackError::Encoding(encoding));
            }
        }
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body_bytes as u64) {
            return Err(CallbackError::TooLarge(self.max_body_bytes));
        }
        // Kept in the invalid-callback log: without the secret (the query,
        // which may hold `?token=`, is never kept).
        let path = self.without_token(request.uri().path());
        let body = self.read_body(request.into_body()).await?;
        seen.body = body.clone();

        let event = match self.validate(&body, url_command, &mut seen.kind, received_at) {
            Ok(event) => event,
            Err(err) => {
                if let Some(log) = &self.invalid_log {
                    log.record(
                        err.status().as_u16(),
                        &err.to_string(),
                        operation_id,
                        &path,
                        &body,
                    );
                }
                return Err(err);
            }
        };
        let span = tracing::Span::current();
        span.record("event_id", event.id.as_str());
        span.record("key", event.key.as_str());
        if !self.routes.route(event.kind).enabled {
            debug!(event_id = %event.id, "not published: its route is disabled");
            return Ok(Outcome::Skipped);
        }
        if let Err(reason) = self.filter.check(&body) {
            debug!(event_id = %event.id, reason, "not published: filtered");
            return Ok(Outcome::Skipped);
        }
        debug!(event_id = %event.id, key = %event.key, "spooling the callback");
        self.spool.append(event).await?;
        Ok(Outcome::Acked)
    }

    /// The body as an event of a command this bridge handles.
    fn validate(
        &self,
        body: &[u8],
        url_command: Option<&str>,
        seen_kind: &mut Option<CallbackKind>,
        received_at: OffsetDateTime,
    ) -> Result<Event, CallbackError> {
        let named = normalize::peek_command(body)?;
        tracing::Span::current().record("command", named.as_str());
        if let Some(url) = url_command.filter(|url| *url != named) {
            return Err(CallbackError::CommandMismatch {
                url: url.to_owned(),
                body: named,
            });
        }
        let kind = match CallbackKind::from_command(&named) {
            Some(kind) => kind,
            None if self.unknown_commands.publishes() => {
                if let Some(suppressed) = self.unknown_log.allow() {
                    warn!(command = %named, suppressed, "unknown callback command: published raw as io.openim.callback.unknown (a newer OpenIM? see http.unknown_commands)");
                }
                CallbackKind::UNKNOWN
            }
            None => return Err(CallbackError::UnknownCommand(named)),
        };
        *seen_kind = Some(kind);
        Ok(normalize::normalize(kind, body, received_at, &self.source)?)
    }

    async fn read_body(&self, body: Incoming) -> Result<Bytes, CallbackError> {
        let read = tokio::time::timeout(
            self.body_timeout,
            Limited::new(body, self.max_body_bytes).collect(),
        );
        let Ok(collected) = read.await else {
            return Err(CallbackError::BodyTimeout(
                self.body_timeout.as_millis() as u64
            ));
        };
        match collected {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                Err(CallbackError::TooLarge(self.max_body_bytes))
            }
            Err(err) => Err(CallbackError::BodyRead(err.to_string())),
        }
    }
}

/// OpenIM's `Operationid` header (its trace ID), or empty.
fn operation_id<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get("operationid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Constant-time equality (for equal lengths) of a presented and the
/// configured secret.
fn same(presented: &[u8], secret: &[u8]) -> bool {
    presented.len() == secret.len()
        && presented
            .iter()
            .zip(secret)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The query's parameters, decoded as Go's `url.ParseQuery` does
/// (percent-escapes and `+` for a space).
fn query_pairs(uri: &Uri) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
}

/// The secret of a `?token=` in OpenIM's `webhooks.url`. OpenIM appends
/// `/<command>` to that URL by string concatenation, so the parameter
/// arrives as `token=S/callback...Command` (and, once newer OpenIM
/// re-encodes the query for message callbacks, as `token=S%2Fcallback...`):
/// the secret is the decoded value up to its first `/`. Only the `token`
/// parameter is read; no other parameter (`key`, ...) can pass for it.
fn query_token(uri: &Uri) -> impl Iterator<Item = String> + '_ {
    query_pairs(uri)
        .filter(|(key, _)| key == "token")
        .map(|(_, value)| match value.split_once('/') {
            Some((token, _command)) => token.to_owned(),
            None => value,
        })
}

/// The callback command the URL names, if any: the last path segment when it
/// looks like one (`/prefix/callbackAfterSendGroupMsgCommand`); else the
/// `command` query parameter (OpenIM 3.0-3.4 posted to `{url}?command=...`);
/// else what follows the last `/` of a query parameter (a `webhooks.url`
/// with a query, e.g. `?token=S`, gets `/<command>` appended to it).
pub fn url_command(uri: &Uri) -> Option<String> {
    let is_command = |s: &str| {
        s.starts_with("callback") && s.ends_with("Command") && s.len() > "callbackCommand".len()
    };
    let last = uri.path().rsplit('/').find(|s| !s.is_empty());
    if let Some(segment) = last.filter(|s| is_command(s)) {
        return Some(segment.to_owned());
    }
    let mut appended = None;
    for (key, value) in query_pairs(uri) {
        if key == "command" && is_command(&value) {
            return Some(value);
        }
        if let Some((_, tail)) = value.rsplit_once('/') {
            if is_command(tail) {
                appended = Some(tail.to_owned());
            }
        }
    }
    appended
}

#[cfg(test)]
mod tests {
    use super::url_command;

    fn command(uri: &str) -> Option<String> {
        url_command(&uri.parse().unwrap())
    }

    #[test]
    fn command_from_path_or_query() {
        assert_eq!(
            command("/callbackExample/callbackAfterSendGroupMsgCommand?contenttype=json")
                .as_deref(),
            Some("callbackAfterSendGroupMsgCommand")
        );
        assert_eq!(
            command("/openim/callbackAfterSendSingleMsgCommand/").as_deref(),
            Some("callbackAfterSendSingleMsgCommand")
        );
        assert_eq!(
            command("/hook?command=callbackAfterSendGroupMsgCommand").as_deref(),
            Some("callbackAfterSendGroupMsgCommand")
        );
        assert_eq!(command("/callbackExample?key=abc%3D"), None);
        assert_eq!(command("/"), None);
    }

    #[test]
    fn command_appended_to_a_query() {
        // OpenIM v3.8: `webhooks.url + "/" + command`, the URL having a query.
        assert_eq!(
            command("/openim?token=S/callbackAfterQuitGroupCommand").as_deref(),
            Some("callbackAfterQuitGroupCommand")
        );
        // OpenIM main, message callbacks: the query re-encoded, keys sorted.
        assert_eq!(
            command(
                "/openim?key=eyJzZW5kSUQiOiIxIn0%3D&token=S%2FcallbackAfterSendGroupMsgCommand"
            )
            .as_deref(),
            Some("callbackAfterSendGroupMsgCommand")
        );
    }

    #[test]
    fn the_query_token_is_the_value_up_to_its_first_slash() {
        let tokens = |uri: &str| {
            let uri: hyper::Uri = uri.parse().unwrap();
            super::query_token(&uri).collect::<Vec<_>>()
        };
        assert_eq!(
            tokens("/openim?token=S3/callbackAfterQuitGroupCommand"),
            ["S3"]
        );
        assert_eq!(
            tokens("/openim?key=dG9rZW4%3D&token=S3%2FcallbackAfterSendGroupMsgCommand"),
            ["S3"]
        );
        assert_eq!(tokens("/openim?token=S3"), ["S3"]);
        // Only `token` counts: a `key` holding the secret is not a token.
        assert!(tokens("/openim?key=S3&tok=S3").is_empty());
    }
}
