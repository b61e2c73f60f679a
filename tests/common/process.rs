//! The real binary as a child process: start it on a free port, read its
//! stdout, stop it with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::spool_dir;

/// Path of the built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_openim-bridge");

/// A running bridge process.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its standard output, line by line.
    pub stdout: std::sync::mpsc::Receiver<String>,
    /// Every line it wrote to standard error so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// Starts the binary on a free port (and a fresh spool unless `env` names
/// one) with `env`.
pub fn spawn(env: &[(&str, &str)]) -> Running {
    let mut child = openim_bridge_test_kit::bridge::command(BIN, "127.0.0.1:0", &spool_dir())
        // No load balancer to wait for; tests of the delay set their own.
        .env("OPENIM_BRIDGE__SHUTDOWN__READY_DELAY_MS", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, lines) = openim_bridge_test_kit::bridge::follow_log(child.stderr.take().unwrap());
    let addr = addr
        .recv_timeout(Duration::from_secs(30))
        .expect("binary logs its address");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    Running {
        child,
        addr,
        stdout: line_rx,
        stderr: lines,
    }
}

/// Sends SIGTERM and waits for the exit status.
pub fn terminate(child: Child) -> std::process::ExitStatus {
    signal(child.id(), "TERM");
    wait_exit(child, Duration::from_secs(15))
}

/// Waits at most `within` for `child` to exit (killing it and panicking
/// after that).
pub fn wait_exit(mut child: Child, within: Duration) -> std::process::ExitStatus {
    openim_bridge_test_kit::wait_exit(&mut child, within)
        .unwrap_or_else(|| panic!("bridge did not exit within {within:?}"))
}

/// Sends `signal` (e.g. `KILL`, `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    assert!(
        openim_bridge_test_kit::signal(pid, signal),
        "kill -{signal} {pid}"
    );
}
