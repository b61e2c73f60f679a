//! Who may post callbacks: the client-address allowlist (`http.allow_ips`)
//! and the shared secret (`http.auth_token`), checked before the body is
//! read.

use std::borrow::Cow;
use std::net::IpAddr;

use hyper::Request;
use ipnet::IpNet;

use super::error::CallbackError;
use super::url::query_token;

/// The allowlist and the secret, parsed at startup.
#[derive(Debug)]
pub struct Gate {
    /// `http.allow_ips` (empty: every address).
    pub allow: Vec<IpNet>,
    /// `http.auth_token` (unset: no check).
    pub auth_token: Option<String>,
    /// `http.auth_header`.
    pub auth_header: String,
}

impl Gate {
    /// The client-address allowlist and the shared secret. The token is
    /// compared in constant time and never logged.
    pub fn admit<B>(&self, request: &Request<B>, peer: IpAddr) -> Result<(), CallbackError> {
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
    pub fn without_token(&self, path: &str) -> String {
        match &self.auth_token {
            Some(token) => path
                .split('/')
                .map(|segment| if segment == token { "***" } else { segment })
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_owned(),
        }
    }
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
