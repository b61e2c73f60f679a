//! One callback request: check it, normalize it, spool it, ack it.
//!
//! This is where a callback goes: [`Handler::handle`] reads the body,
//! [`crate::normalize`] turns it into an event, [`crate::spool`] stores it,
//! and the ack goes back without waiting for any broker.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use hyper::{Method, Request, StatusCode};
use time::OffsetDateTime;
use tracing::{debug, warn, Instrument};

use super::auth::Gate;
pub use super::error::CallbackError;
use super::invalid::InvalidLog;
use super::probes;
use super::reply::{self, Reply};
use super::settings::{HttpSettings, UnknownCommands};
use super::url::url_command;
use crate::normalize::{self, CallbackKind};
use crate::routing::{Filter, Routes};
use crate::spool::SpoolWriter;
use crate::stats::{CallbackOutcome, Stats};
use crate::telemetry::RateLimit;
use crate::traces;

/// What the handler learned of a request while accepting it, for its reply
/// and metrics.
#[derive(Debug, Default)]
struct Seen {
    /// The body's command, once known.
    kind: Option<CallbackKind>,
    /// The body, once read (a before-callback's reply may echo from it).
    body: Bytes,
    /// The command a refused body named, for the refusal's log line.
    refused_command: Option<String>,
}

impl Seen {
    /// The command a refusal's log line names: the body's, as it named it;
    /// after a refused spool append, the command of the event it became.
    fn refused_command(&self) -> Option<&str> {
        (self.refused_command.as_deref()).or(self.kind.map(CallbackKind::command))
    }
}

/// What [`Handler::accept`] knows of a request besides its body.
struct Callback<'a> {
    /// The command the URL names, if any.
    url_command: Option<&'a str>,
    /// OpenIM's `operationID` header.
    operation_id: &'a str,
    /// The trace context the request came with.
    incoming: Option<&'a traces::Incoming>,
    /// The request's `callback` span.
    span: &'a tracing::Span,
    /// Whether its trace is recorded.
    sampled: bool,
}

/// Shared by every connection.
#[derive(Debug)]
pub struct Handler {
    spool: SpoolWriter,
    source: Arc<str>,
    max_body_bytes: usize,
    body_timeout: Duration,
    gate: Gate,
    stats: Arc<Stats>,
    refusal_log: Arc<RateLimit>,
    invalid_log: Option<InvalidLog>,
    routes: Arc<Routes>,
    filter: Filter,
    unknown_commands: UnknownCommands,
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
            spool,
            source: Arc::from(source),
            max_body_bytes: http.max_body_bytes,
            body_timeout: Duration::from_millis(http.body_read_timeout_ms),
            gate: Gate {
                allow,
                auth_token: http.auth_token.clone(),
                auth_header: http.auth_header.clone(),
            },
            stats,
            refusal_log: Arc::default(),
            invalid_log: (http.invalid_log_max_bytes > 0)
                .then(|| InvalidLog::new(spool_dir, http.invalid_log_max_bytes)),
        }
    }

    /// Stops taking callbacks: waits (off the runtime) until the
    /// invalid-callback log has written what it was given.
    pub async fn close(self) {
        if let Some(log) = self.invalid_log {
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
        }
    }

    /// Answers one request. Never fails: every problem becomes an
    /// OpenIM-shaped error reply.
    pub async fn handle(&self, request: Request<Incoming>, peer: IpAddr) -> Reply {
        if let Some(reply) = probes::answer(&request, &self.spool, &self.stats, self.max_body_bytes)
        {
            return reply;
        }
        let started = std::time::Instant::now();
        let operation_id = operation_id(&request);
        let incoming = traces::Incoming::from_headers(request.headers());
        let (span, sampled) = traces::callback_span(&operation_id, incoming.as_ref());
        let mut seen = Seen::default();
        let named_in_url = url_command(request.uri());
        let result = match self.gate.admit(&request, peer) {
            Ok(()) => {
                let callback = Callback {
                    url_command: named_in_url.as_deref(),
                    operation_id: &operation_id,
                    incoming: incoming.as_ref(),
                    span: &span,
                    sampled,
                };
                self.accept(request, callback, &mut seen)
                    .instrument(span.clone())
                    .await
            }
            Err(refused) => Err(refused),
        };
        self.stats
            .ack_seconds
            .observe(started.elapsed().as_secs_f64());
        let span = match &result {
            Ok(_) => span,
            Err(_) => traces::refusal_span(&span, &operation_id, seen.refused_command()),
        };
        let _entered = span.enter();
        // A before-callback's catalog entry, by the body's command.
        let before = seen
            .kind
            .map(CallbackKind::spec)
            .filter(|spec| spec.is_before());
        match result {
            Ok(outcome) => {
                self.stats.callback(seen.kind, outcome);
                // "Continue", leaving the user's request as OpenIM sent it.
                reply::continue_unchanged(before.map_or(&[], |spec| spec.echo), &seen.body)
            }
            Err(err) => {
                let status = err.status();
                let outcome = match status {
                    StatusCode::SERVICE_UNAVAILABLE => CallbackOutcome::Unavailable,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        CallbackOutcome::Unauthorized
                    }
                    _ => CallbackOutcome::Invalid,
                };
                self.stats.callback(seen.kind, outcome);
                // OpenIM waits for a before-callback's answer and blocks the
                // user's action on an error reply: those get "continue". The
                // body may not have named its command; the URL may.
                let before = before.or_else(|| {
                    let kind = CallbackKind::from_command(named_in_url.as_deref()?)?;
                    Some(kind.spec()).filter(|spec| spec.is_before())
                });
                let answer_continue = before.is_some() && outcome != CallbackOutcome::Unauthorized;
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

    /// Checks, normalizes and spools one callback (unless its route is
    /// disabled or a filter drops it: [`CallbackOutcome::Skipped`]); records in
    /// `seen` the body and, once it names one, its command (for the reply
    /// and the metrics label).
    async fn accept(
        &self,
        request: Request<Incoming>,
        callback: Callback<'_>,
        seen: &mut Seen,
    ) -> Result<CallbackOutcome, CallbackError> {
        let Callback {
            url_command,
            operation_id,
            incoming,
            span,
            sampled,
        } = callback;
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
        let path = self.gate.without_token(request.uri().path());
        let body = self.read_body(request.into_body()).await?;
        seen.body = body.clone();

        let context = normalize::Context {
            source: &self.source,
            received_at,
            url_command,
            publish_unknown: self.unknown_commands.publishes(),
        };
        let mut event = match normalize::callback(&body, &context) {
            Ok(event) => {
                seen.kind = Some(event.kind);
                event
            }
            Err(refused) => {
                seen.kind = refused.kind;
                seen.refused_command = refused.command;
                let err = CallbackError::from(refused.error);
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
        traces::stamp(&mut event, span, incoming, sampled);
        if !self.routes.route(event.kind).enabled {
            debug!(event_id = %event.id, "not published: its route is disabled");
            return Ok(CallbackOutcome::Skipped);
        }
        if let Err(reason) = self.filter.check(&body) {
            debug!(event_id = %event.id, reason, "not published: filtered");
            return Ok(CallbackOutcome::Skipped);
        }
        debug!(event_id = %event.id, key = %event.key, "spooling the callback");
        // Open for the append's duration; not entered (nothing logs inside),
        // so no span bookkeeping at every poll.
        let appending = traces::append_span(sampled, self.spool.mode().word());
        self.spool.append(event).await?;
        drop(appending);
        Ok(CallbackOutcome::Acked)
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
            Err(err) => Err(CallbackError::BodyRead(err)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_body_s_command_or_the_event_s() {
        let mut seen = Seen::default();
        assert_eq!(seen.refused_command(), None, "nothing read yet");
        // Normalized, then refused by the spool.
        seen.kind = Some(CallbackKind::GROUP_MESSAGE_SENT);
        assert_eq!(
            seen.refused_command(),
            Some("callbackAfterSendGroupMsgCommand")
        );
        // Refused by normalize: the body's own spelling wins.
        seen.kind = None;
        seen.refused_command = Some("callbackSomethingNewCommand".to_owned());
        assert_eq!(seen.refused_command(), Some("callbackSomethingNewCommand"));
    }
}
