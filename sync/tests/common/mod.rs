//! What openim-sync's tests share: where PostgreSQL and RabbitMQ are,
//! unique names, and the bridge's fixtures.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};

use serde_json::Value;

/// PostgreSQL for the tests (`scripts/test` starts the machine's).
pub fn postgres_url() -> String {
    std::env::var("OPENIM_SYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// RabbitMQ for the tests.
pub fn amqp_url() -> String {
    std::env::var("OPENIM_BRIDGE_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A name no other test (or run) uses; also a valid schema name.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A body from the bridge's `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The bridge binary, built beside this test by the workspace's test build.
pub fn bridge_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let bin = debug.join("openim-bridge");
    assert!(
        bin.is_file(),
        "{} is missing: run the workspace's tests (scripts/test) so it is built",
        bin.display()
    );
    bin
}
