//! Stage 1: the HTTP endpoint OpenIM posts callbacks to.
//!
//! [`server`] accepts connections; [`handler`] answers each request;
//! [`reply`] holds the exact bodies OpenIM parses; [`tls`] loads the
//! optional certificate; [`settings`] is `[http]`.

pub mod handler;
pub mod invalid;
pub mod reply;
pub mod server;
pub mod settings;
pub mod tls;

pub use handler::{CallbackError, Handler};
