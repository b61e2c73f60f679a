//! The spool's lock file (`{spool.dir}/lock`): one process uses a spool at
//! a time, and the holder says who it is in the file.

use std::fs::{self, File};
use std::path::Path;
use std::time::Duration;

/// How long `open` waits for the spool's lock (a previous process may still
/// be exiting, e.g. during a container restart).
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Takes the spool's lock file, so two processes never share a spool (two
/// replicas on one volume would corrupt it). Released when every handle on
/// it is closed: the writer's and the reader's (see [`super::open_on`]).
/// The holder writes who it is into the file, so a process refused the
/// lock can name it.
pub(super) fn take(dir: &Path) -> std::io::Result<File> {
    let path = dir.join("lock");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => {
                // Who holds it; informative only, so a failure is ignored.
                let _ = write_holder(&mut file);
                return Ok(file);
            }
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() { "unknown" } else { holder };
                return Err(std::io::Error::other(format!(
                    "another openim-bridge process holds this spool's lock ({holder}); give every replica its own spool.dir, or stop that process first"
                )));
            }
            Err(fs::TryLockError::Error(err)) => return Err(err),
        }
    }
}

/// Writes `pid N on HOST since TIME` into the held lock file.
fn write_holder(file: &mut File) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let since = crate::normalize::event::rfc3339(time::OffsetDateTime::now_utc());
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    writeln!(
        file,
        "pid {} on {} since {since}",
        std::process::id(),
        host.trim()
    )
}
