//! Stage 1: the HTTP endpoint OpenIM posts callbacks to.
//!
//! [`server`] accepts connections; [`handler`] answers each request
//! (after [`auth`]; [`error`] maps refusals to statuses; [`probes`] answers
//! `/healthz`, `/readyz` and `/metrics`);
//! [`reply`] holds the exact bodies OpenIM parses; [`tls`] loads the
//! optional certificate; [`settings`] is `[http]`.

pub mod auth;
pub mod error;
pub mod handler;
pub mod invalid;
pub mod probes;
pub mod reply;
pub mod server;
pub mod settings;
pub mod tls;
pub mod url;

pub use handler::Handler;
