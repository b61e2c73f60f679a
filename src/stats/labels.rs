//! The label values of the metrics: bounded sets, never user input.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// How a callback was answered.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// "continue" ack: spooled.
    Acked,
    /// Refused as invalid (4xx).
    Invalid,
    /// Refused because the spool was full, failing or closing (503).
    Unavailable,
    /// Refused at the door: wrong token (401) or address not allowed (403).
    Unauthorized,
    /// "continue" ack, not published: a before-callback or a disabled
    /// route, or dropped by a `[filter]`.
    Skipped,
}

impl CallbackOutcome {
    /// Every outcome, each at its [`CallbackOutcome::index`].
    pub const ALL: [Self; 5] = [
        Self::Acked,
        Self::Invalid,
        Self::Unavailable,
        Self::Unauthorized,
        Self::Skipped,
    ];

    /// Its place in [`CallbackOutcome::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Acked => 0,
            Self::Invalid => 1,
            Self::Unavailable => 2,
            Self::Unauthorized => 3,
            Self::Skipped => 4,
        }
    }
}

impl EncodeLabelValue for CallbackOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            Self::Acked => "acked",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::Unauthorized => "unauthorized",
            Self::Skipped => "skipped",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallbackLabels {
    /// A command this bridge handles, or `unknown`.
    pub command: &'static str,
    pub outcome: CallbackOutcome,
}

/// What became of an event at the broker.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum EventOutcome {
    /// The broker confirmed it.
    Published,
    /// Sent again after a retryable error.
    Retried,
    /// A delivery attempt failed with a retryable error.
    Failed,
    /// Refused for good; written to the dead-letter file.
    DeadLettered,
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.label())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RefusalLabel {
    pub reason: Refusal,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SinkLabel {
    pub sink: &'static str,
}

/// Why the broker refuses this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Wrong username, password or token; or no permission on the vhost.
    Authentication,
    /// The broker's certificate is not trusted, its name does not match,
    /// or the broker refused our client certificate.
    Certificate,
    /// TLS spoken to a plaintext port or the other way round.
    TlsMismatch,
}

impl Refusal {
    /// Every reason, for metrics initialisation.
    pub const ALL: [Refusal; 3] = [
        Refusal::Authentication,
        Refusal::Certificate,
        Refusal::TlsMismatch,
    ];

    /// The `reason` label and `/readyz` word.
    pub fn label(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Certificate => "certificate",
            Self::TlsMismatch => "tls_mismatch",
        }
    }
}
