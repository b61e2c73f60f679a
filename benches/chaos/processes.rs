//! Processes.

use super::*;
pub use openim_bridge_test_kit::{free_port, signal};

pub async fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A small tmpfs, unmounted when dropped; a plain directory when mounting
/// is not allowed here (then the disk-full fault is skipped).
pub struct Disk {
    pub dir: tempfile::TempDir,
    pub mounted: bool,
}

impl Disk {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        Self { dir, mounted }
    }

    pub fn dead_letter_ids(&self) -> std::collections::HashSet<String> {
        let path = self.dir.path().join("spool/dead-letter.jsonl");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|line| Some(line["event"]["id"].as_str()?.to_owned()))
            .collect()
    }

    pub fn filler(&self) -> PathBuf {
        self.dir.path().join("filler")
    }

    /// Appends to a file until the disk is full.
    pub fn fill(&self) {
        use std::io::Write;
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler());
        let Ok(mut file) = opened else {
            return;
        };
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

/// One bridge replica: a fixed port and spool, so a restart is the same
/// replica coming back.
pub struct Replica {
    pub name: String,
    pub port: u16,
    pub disk: Disk,
    pub env: Vec<(&'static str, String)>,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub starts: u32,
}

impl Replica {
    pub fn new(name: &str, env: Vec<(&'static str, String)>, logs: &Path) -> Self {
        Self {
            name: name.to_owned(),
            port: free_port(),
            disk: Disk::new(),
            env,
            log: logs.join(format!("{name}.log")),
            child: None,
            starts: 0,
        }
    }

    pub async fn start(&mut self) {
        let spool = self.disk.dir.path().join("spool");
        let child = support::spawn_bridge(BIN, self.port, &spool, &self.env, &self.log);
        self.child = Some(child);
        self.starts += 1;
        if !wait_for_port(self.port, Duration::from_secs(30)).await {
            eprintln!(
                "  {} did not listen within 30 s (log: {})",
                self.name,
                self.log.display()
            );
        }
    }

    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; the exit status (None: it had to be killed).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        openim_bridge_test_kit::wait_exit(&mut child, Duration::from_secs(30))
    }
}
