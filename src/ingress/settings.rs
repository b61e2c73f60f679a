//! `[http]`: the endpoint OpenIM posts callbacks to.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tracing::warn;

use crate::config::{words, ConfigError};

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413.
    #[schemars(range(min = 1024, max = 33554432))]
    pub max_body_bytes: usize,
    /// A client must send a request's headers within this time, counted
    /// from when the connection is idle; otherwise it is closed. This is
    /// also the keep-alive idle timeout: keep it above Go's 90 s, so
    /// OpenIM closes an idle connection first (a close racing its next
    /// POST would lose that callback).
    pub header_read_timeout_ms: u64,
    /// Once the headers are in, the body must arrive within this time, or
    /// the request is answered 408 (protects against slow-body clients).
    pub body_read_timeout_ms: u64,
    /// Open connections at most; past it the bridge stops accepting until
    /// one closes (new ones wait in the kernel's backlog), so a flood of
    /// idle connections cannot exhaust file descriptors.
    #[schemars(range(min = 1))]
    pub max_connections: usize,
    /// Shared secret callbacks must carry (OpenIM signs nothing). Accepted
    /// as a path segment of `webhooks.url` (`http://bridge:8080/<token>`), a
    /// `?token=` query parameter, or the `auth_header` header added by a
    /// reverse proxy. Unset: no check.
    #[schemars(length(min = 16))]
    pub auth_token: Option<String>,
    /// Header that may carry `auth_token`.
    pub auth_header: String,
    /// Client addresses allowed to post callbacks, as IPs or CIDRs (e.g.
    /// `["10.0.0.0/8", "127.0.0.1"]`, or `"10.0.0.0/8,127.0.0.1"` from the
    /// environment); the TCP peer is checked. Empty: all.
    #[serde(deserialize_with = "list_or_commas")]
    #[schemars(with = "Vec<String>")]
    pub allow_ips: Vec<String>,
    /// Size cap of `{spool.dir}/invalid-callbacks.jsonl`, where refused
    /// (4xx after reading the body) callbacks are kept with their reason;
    /// 0 turns the log off.
    pub invalid_log_max_bytes: u64,
    /// PEM certificate chain: when set (with `tls_key_file`), the listener
    /// speaks HTTPS. Read at startup; restart to load a renewed certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// A `callbackCommand` this version does not know (a newer OpenIM):
    /// `publish` (acked and published raw as `io.openim.callback.unknown`,
    /// with a warning and a count) or `reject` (404).
    pub unknown_commands: UnknownCommands,
}

/// What to do with a command the catalog does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum UnknownCommands {
    /// Ack and publish raw: nothing is lost.
    #[default]
    Publish,
    /// Answer 404.
    Reject,
}

words!(UnknownCommands: "publish" => Publish, "reject" => Reject);

impl UnknownCommands {
    /// Whether unknown commands are published.
    pub fn publishes(self) -> bool {
        self == Self::Publish
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            // All interfaces: the bridge runs in a container behind a load balancer.
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            // OpenIM caps a text message far below this; merged-message and
            // custom payloads are the largest bodies seen.
            max_body_bytes: 4 * 1024 * 1024,
            // Longer than Go's 90 s idle-connection timeout, so OpenIM's
            // client always closes an idle connection first: a server-side
            // close racing a new POST would make OpenIM drop that callback.
            header_read_timeout_ms: 120_000,
            // OpenIM's own callback timeout is 5 s by default.
            body_read_timeout_ms: 10_000,
            // OpenIM opens at most 100 per process; well below the usual
            // 20k+ file descriptor limit.
            max_connections: 10_000,
            auth_token: None,
            auth_header: "x-openim-bridge-token".to_owned(),
            allow_ips: Vec::new(),
            // Room for tens of thousands of refused callbacks.
            invalid_log_max_bytes: 64 * 1024 * 1024,
            tls_cert_file: None,
            tls_key_file: None,
            unknown_commands: UnknownCommands::Publish,
        }
    }
}

/// A TOML list, or one comma-separated string (environment variables).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(deserializer)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl HttpSettings {
    /// Rejects values that cannot work; returns `allow_ips` parsed (a
    /// list that does not parse is an error, never an empty list, which
    /// would admit every address).
    pub(crate) fn validate(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let invalid = |key, problem| Err(ConfigError::invalid(key, problem));
        if self.auth_token.as_deref().is_some_and(|t| t.len() < 16) {
            return invalid(
                "http.auth_token",
                "is shorter than 16 characters; use a long random value",
            );
        }
        // It travels in a URL (path segment or `?token=`): characters that a
        // URL escapes or splits on would arrive changed.
        if self.auth_token.as_deref().is_some_and(|t| {
            !t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        }) {
            return invalid(
                "http.auth_token",
                "may contain only letters, digits, `-`, `.`, `_` and `~` (it goes into OpenIM's webhooks.url); e.g. `openssl rand -hex 24`",
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid(
                "http.tls_cert_file",
                "and http.tls_key_file must be set together",
            );
        }
        if self.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            return invalid("http.max_body_bytes", "must be at least 1024 bytes");
        }
        self.allow_ips
            .iter()
            .map(|item| {
                item.parse::<ipnet::IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            "http.allow_ips",
                            format!("`{item}` is not an IP address or CIDR (e.g. 10.0.0.0/8)"),
                        )
                    })
            })
            .collect()
    }
}

/// File descriptors kept free for the spool, the broker client, logs and
/// the runtime, beyond one per connection.
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-files limit to the hard one, and returns a
/// connection limit that fits in it: a connection flood must never leave
/// the spool without a descriptor (EMFILE), whatever `ulimit -n` says.
pub(crate) fn fit_open_files(max_connections: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            warn!(cause = %err, "cannot read or raise the open-files limit; http.max_connections is used as set");
            return max_connections;
        }
    };
    let fits = usize::try_from(limit.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
    if max_connections > fits {
        warn!(
            http_max_connections = max_connections,
            open_files_limit = limit,
            using = fits,
            "http.max_connections does not fit in the open-files limit; serving at most `using` connections (raise the limit, e.g. `ulimit -n` or the container's nofile ulimit, or lower http.max_connections)"
        );
        return fits;
    }
    max_connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_leaves_descriptors_for_the_spool() {
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().1;
        let connections = fit_open_files(usize::MAX);
        assert!(
            (connections as u64) + RESERVED_FILES <= limit.max(RESERVED_FILES + 1),
            "{connections} connections with a hard limit of {limit}"
        );
        let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0;
        assert_eq!(soft, limit, "the soft limit is raised to the hard one");
        assert_eq!(fit_open_files(10), 10, "a limit that fits is kept");
    }
}
