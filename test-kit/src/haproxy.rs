//! The shipped load balancer (`deploy/haproxy/haproxy.cfg`) on loopback:
//! the same file with only its addresses rewritten, and its stats page
//! read the way `docs/operations.md` tells an operator to.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Where the loopback copy listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The `openim` frontend (`bind :8080` in the shipped file).
    pub frontend: u16,
    /// The `stats` frontend (`bind :8404`).
    pub stats: u16,
}

/// The shipped file `shipped` with the frontends on 127.0.0.1 `ports`, the
/// stats socket in `dir`, and `servers` (name, port on 127.0.0.1) in place
/// of its `server` lines. Everything else is kept as shipped.
pub fn loopback_config(
    shipped: &str,
    ports: Ports,
    servers: &[(String, u16)],
    dir: &Path,
) -> String {
    let mut config = String::new();
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server ") {
            continue;
        }
        let line = if trimmed.starts_with("bind :8080") {
            format!("    bind 127.0.0.1:{}", ports.frontend)
        } else if trimmed.starts_with("bind :8404") {
            format!("    bind 127.0.0.1:{}", ports.stats)
        } else if trimmed.starts_with("stats socket /tmp/haproxy.sock") {
            line.replace(
                "/tmp/haproxy.sock",
                &dir.join("haproxy.sock").display().to_string(),
            )
        } else {
            line.to_owned()
        };
        config.push_str(&line);
        config.push('\n');
    }
    for (name, port) in servers {
        let _ = writeln!(config, "    server {name} 127.0.0.1:{port}");
    }
    config
}

/// The status column (`UP`, `DOWN`, `UP 1/2`, `MAINT` ...) of `server` in
/// `backend`, from the stats page's CSV (`/stats;csv`) on `stats_port`;
/// `None` when the page cannot be read or does not list the server.
pub fn server_status(stats_port: u16, backend: &str, server: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", stats_port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /stats;csv HTTP/1.0\r\nHost: haproxy\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    // CSV columns: pxname, svname, ..., status is the 18th.
    body.lines().find_map(|line| {
        let columns: Vec<&str> = line.split(',').collect();
        (columns.first() == Some(&backend) && columns.get(1) == Some(&server))
            .then(|| columns.get(17).map(|status| (*status).to_owned()))
            .flatten()
    })
}
