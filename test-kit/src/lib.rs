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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A writer that keeps what is written, shared by its clones: hand one to
/// a sink or a log layer, read back from another.
#[derive(Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// What was written (it must be UTF-8), and its lines.
    pub fn lines(&self) -> (String, Vec<String>) {
        let bytes = self.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).expect("what was written is UTF-8");
        let lines = text.lines().map(str::to_owned).collect();
        (text, lines)
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
