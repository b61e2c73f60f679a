//! The real binary as a child process: start it on a free port, read its
//! stdout, stop it with SIGTERM or SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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
    let mut child = Command::new(BIN)
        .env_clear()
        .env("OPENIM_BRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("OPENIM_BRIDGE__SPOOL__DIR", spool_dir())
        // No load balancer to wait for; tests of the delay set their own.
        .env("OPENIM_BRIDGE__SHUTDOWN__READY_DELAY_MS", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = addr_tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("binary logs its address")
        .parse()
        .unwrap();
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
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_exit(child, Duration::from_secs(15))
}

/// Waits at most `within` for `child` to exit (killing it and panicking
/// after that).
pub fn wait_exit(mut child: Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("bridge did not exit within {within:?}");
}

/// Sends `signal` (e.g. `KILL`, `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}
