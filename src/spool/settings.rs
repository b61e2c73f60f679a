//! `[spool]`: where the spool lives, how large it may grow, and when a
//! callback is acked.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{words, ConfigError};

/// When a callback is acked: what an acked event survives.
///
/// | mode | acked once | survives a bridge crash (`kill -9`) | survives a power loss or kernel crash |
/// |---|---|---|---|
/// | `durable` | its record is synced (`fdatasync`) | yes | yes |
/// | `written` | its record is written to the segment file | yes | no: up to `spool.sync_interval_ms` |
/// | `memory` | the spool's writer thread has it | no: the records not yet written (milliseconds) | no: up to `spool.sync_interval_ms` |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AckMode {
    /// After its record is synced to disk (`fdatasync`): survives a crash
    /// of the machine.
    #[default]
    Durable,
    /// After its record is written to the segment file (the kernel holds
    /// it): survives a crash of the bridge, not of the machine.
    Written,
    /// As soon as the spool's writer thread has it: fastest; a crash loses
    /// events not yet written (at most a few milliseconds' worth).
    Memory,
}

words!(AckMode: "durable" => Durable, "written" => Written, "memory" => Memory);

/// `[spool]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSettings {
    /// Directory of the spool's files (created if missing). One bridge
    /// process per directory. Default: `spool/<http.listen port>`, so two
    /// replicas on one host never share one by accident.
    pub dir: PathBuf,
    /// Disk space the spool may use; past it callbacks are answered 503
    /// until the broker has confirmed enough events.
    pub max_bytes: u64,
    /// `durable` | `written` | `memory`: when a callback is acked, and so
    /// what an acked event survives (docs/delivery.md; [`AckMode`]).
    pub ack: AckMode,
    /// In `written` and `memory` modes, the longest time between two
    /// syncs of written records (`durable` syncs every batch before it
    /// acks). Bounds what a power loss can take.
    #[schemars(range(min = 1, max = 60000))]
    pub sync_interval_ms: u64,
    /// Size at which a new segment file is started; confirmed segments are
    /// deleted whole. The next segment is preallocated while the current
    /// one fills, so the spool's files can exceed `max_bytes` by up to two
    /// segments.
    #[schemars(range(min = 1048576))]
    pub segment_bytes: u64,
    /// Size at which `dead-letter.jsonl` is rotated to
    /// `dead-letter.NNNNNN.jsonl` (kept, never deleted by the bridge;
    /// `openim-bridge replay` reads them all).
    #[schemars(range(min = 65536))]
    pub dead_letter_max_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            // Empty = `spool/<http.listen port>` in the working directory
            // (see `Settings::validate`): `cargo run` works anywhere, and two
            // replicas on one host do not share a spool by accident. The
            // container image sets /var/lib/openim-bridge/spool.
            dir: PathBuf::new(),
            // Hours of a busy cluster's events while a broker is down.
            max_bytes: 1024 * 1024 * 1024,
            ack: AckMode::Durable,
            sync_interval_ms: 100,
            // Small enough to free space soon after the broker catches up.
            segment_bytes: 16 * 1024 * 1024,
            dead_letter_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl SpoolSettings {
    /// Rejects values that cannot work.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.segment_bytes < 1024 * 1024 {
            return Err(ConfigError::invalid(
                "spool.segment_bytes",
                "must be at least 1 MiB (1048576)",
            ));
        }
        if self.dead_letter_max_bytes < 64 * 1024 {
            return Err(ConfigError::invalid(
                "spool.dead_letter_max_bytes",
                "must be at least 64 KiB (65536)",
            ));
        }
        if !(1..=60_000).contains(&self.sync_interval_ms) {
            return Err(ConfigError::invalid(
                "spool.sync_interval_ms",
                "must be between 1 and 60000 (it bounds what a power loss can take in written and memory modes)",
            ));
        }
        Ok(())
    }
}
