//! The `openim-bridge` binary as a child process.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// A command running the binary at `bin` listening on `listen` with its
/// spool in `spool`, and nothing else from this process's environment
/// (add settings with `.env("OPENIM_BRIDGE__...", ...)`).
pub fn command(bin: &str, listen: &str, spool: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("OPENIM_BRIDGE__HTTP__LISTEN", listen)
        .env("OPENIM_BRIDGE__SPOOL__DIR", spool);
    command
}

/// Reads a bridge's log (`stderr`) on a thread of its own: every line is
/// kept in the returned list, and the address from its "listening on"
/// line is sent once on the returned channel.
pub fn follow_log(
    stderr: impl Read + Send + 'static,
) -> (Receiver<SocketAddr>, Arc<Mutex<Vec<String>>>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = listening_on(&line) {
                let _ = addr_tx.send(addr);
            }
            log.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(line);
        }
    });
    (addr_rx, lines)
}

/// The address of a log line `openim-bridge listening on http://ADDR`.
pub fn listening_on(line: &str) -> Option<SocketAddr> {
    line.split("listening on http://")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
