//! What openim-bridge's tests (`tests/common`) and benchmarks (`benches/`)
//! share: free ports, signals, the bridge as a child process, Kafka topics
//! and RabbitMQ bindings. A dev-only crate of the workspace; nothing here
//! is part of the bridge.

pub mod amqp;
pub mod bridge;
pub mod haproxy;
pub mod kafka;
pub mod otlp;

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// Sends `signal` (e.g. `KILL`, `TERM`, `STOP`, `CONT`) to `pid`; whether
/// it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// Waits at most `within` for `child` to exit; `None` (the child killed)
/// if it did not.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
