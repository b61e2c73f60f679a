//! Why a callback was not accepted, and the HTTP status each reason gets.

use std::net::IpAddr;

use hyper::{Method, StatusCode};

use crate::normalize::NormalizeError;
use crate::spool::AppendError;

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
    BodyRead(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The body did not arrive in time.
    #[error("the request body did not arrive within http.body_read_timeout_ms ({0} ms)")]
    BodyTimeout(u64),
    /// The body is not a callback this bridge takes.
    #[error(transparent)]
    Body(#[from] NormalizeError),
    /// The shared secret is missing or wrong.
    #[error("missing or wrong token: put http.auth_token in OpenIM's webhooks.url (as a path segment or ?token=) or have the proxy send it in the `{0}` header")]
    Unauthorized(String),
    /// The client's address is not in `http.allow_ips`.
    #[error("client address {0} is not in http.allow_ips")]
    Forbidden(IpAddr),
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
            Self::Body(NormalizeError::UnknownCommand(_)) => StatusCode::NOT_FOUND,
            Self::BodyRead(_) | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}
