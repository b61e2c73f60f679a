//! The spool's file operations behind one small trait, so that tests can
//! make any of them fail (EMFILE, EIO, ENOSPC, a short write) at any call
//! and check that nothing acked is lost and nothing wedges.
//!
//! [`Os`] is the real file system and the only implementation outside
//! tests. Every operation of the writer thread and the reader goes through
//! it, housekeeping (the preallocated segments, directory syncs) included,
//! and so do the dead-letter file's writes and rotation. Startup-only work
//! (`spool::open`: the lock, listing, the torn-tail cut) uses `std::fs`
//! directly: a failure there stops the bridge with an error.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// What the spool does with files after startup.
pub trait Disk: Send + Sync + fmt::Debug + 'static {
    /// Opens (creating it if needed) a file to append to.
    fn open_append(&self, path: &Path) -> std::io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Opens (creating it if needed) a file to write at given offsets.
    fn open_write(&self, path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    }

    /// Opens a file to read.
    fn open_read(&self, path: &Path) -> std::io::Result<File> {
        File::open(path)
    }

    /// Fills `buf` from `file` at `offset`.
    fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        file.read_exact_at(buf, offset)
    }

    /// Appends all of `buf` to `file`.
    fn write(&self, mut file: &File, buf: &[u8]) -> std::io::Result<()> {
        file.write_all(buf)
    }

    /// Writes all of `buf` to `file` at `offset`.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        file.write_all_at(buf, offset)
    }

    /// Creates `path` holding `len` zero bytes, synced: a segment's space
    /// allocated ahead, so a later sync of records written into it does not
    /// also commit a new file size.
    fn preallocate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        const CHUNK: usize = 1024 * 1024;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        let zeros = vec![0u8; CHUNK];
        let mut at = 0;
        while at < len {
            let n = (len - at).min(CHUNK as u64) as usize;
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        file.sync_all()
    }

    /// Renames `from` to `to` (replacing it).
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)
    }

    /// `fdatasync`.
    fn sync(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }

    /// Makes the directory's entries durable (after creating a file in it).
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir)?.sync_all()
    }

    /// Truncates (or extends) `file` to `len` bytes.
    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()> {
        file.set_len(len)
    }

    /// The length of the file at `path`.
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        fs::metadata(path).map(|meta| meta.len())
    }

    /// Deletes the file at `path`.
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        fs::remove_file(path)
    }

    /// Replaces the file at `path` with `contents` atomically (a temporary
    /// file beside it, then rename).
    fn replace(&self, path: &Path, contents: &[u8]) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, contents)?;
        fs::rename(tmp, path)
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Os;

impl Disk for Os {}

/// The spool's disk, shared by its writer thread, reader and dead-letter
/// file.
pub type SharedDisk = Arc<dyn Disk>;

/// The real file system, shared.
pub fn os() -> SharedDisk {
    Arc::new(Os)
}

#[cfg(test)]
pub mod faults {
    //! A [`Disk`] that fails chosen operations on purpose.

    use super::*;
    use std::sync::Mutex;

    /// A file operation of [`Disk`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Op {
        /// `open_append`, `open_write` and `open_read`.
        Open,
        /// `read_at`.
        Read,
        /// `write` and `write_at`.
        Write,
        /// `preallocate`.
        Preallocate,
        /// `rename`.
        Rename,
        /// `sync`.
        Sync,
        /// `sync_dir`.
        SyncDir,
        /// `set_len`.
        SetLen,
        /// `len`.
        Len,
        /// `remove`.
        Remove,
        /// `replace`.
        Replace,
    }

    #[derive(Debug)]
    struct Rule {
        op: Op,
        /// Calls to let through before failing.
        skip: usize,
        /// Calls to fail (`usize::MAX`: until cleared).
        times: usize,
        errno: i32,
        /// For writes: write half of the buffer before failing.
        short: bool,
    }

    /// The real file system, with failures injected by rules.
    #[derive(Debug, Default)]
    pub struct Faulty {
        rules: Mutex<Vec<Rule>>,
        /// Calls that failed, by any rule.
        failed: Mutex<usize>,
    }

    /// `EMFILE`: the process is out of file descriptors.
    pub const EMFILE: i32 = 24;
    /// `EIO`: an I/O error.
    pub const EIO: i32 = 5;
    /// `ENOSPC`: no space left on the device.
    pub const ENOSPC: i32 = 28;

    impl Faulty {
        /// A shared faulty disk.
        pub fn new() -> Arc<Self> {
            Arc::default()
        }

        /// Fails `times` calls of `op` with `errno`, after letting `skip`
        /// through.
        pub fn fail(&self, op: Op, errno: i32, skip: usize, times: usize) {
            self.add(Rule {
                op,
                skip,
                times,
                errno,
                short: false,
            });
        }

        /// Fails every write until [`Faulty::clear`], after writing half of
        /// what was asked (a short write, as on a disk that just filled up).
        pub fn short_writes(&self, errno: i32) {
            self.add(Rule {
                op: Op::Write,
                skip: 0,
                times: usize::MAX,
                errno,
                short: true,
            });
        }

        /// Removes every rule: the disk works again.
        pub fn clear(&self) {
            self.rules.lock().unwrap().clear();
        }

        /// How many calls failed so far.
        pub fn failures(&self) -> usize {
            *self.failed.lock().unwrap()
        }

        fn add(&self, rule: Rule) {
            self.rules.lock().unwrap().push(rule);
        }

        /// The error for this call of `op`, if a rule fails it; and whether
        /// it is a short write.
        fn check(&self, op: Op) -> Option<(std::io::Error, bool)> {
            let mut rules = self.rules.lock().unwrap();
            let rule = rules
                .iter_mut()
                .find(|rule| rule.op == op && rule.times > 0)?;
            if rule.skip > 0 {
                rule.skip -= 1;
                return None;
            }
            if rule.times != usize::MAX {
                rule.times -= 1;
            }
            *self.failed.lock().unwrap() += 1;
            Some((std::io::Error::from_raw_os_error(rule.errno), rule.short))
        }

        fn gate(&self, op: Op) -> std::io::Result<()> {
            match self.check(op) {
                Some((err, _)) => Err(err),
                None => Ok(()),
            }
        }
    }

    impl Disk for Faulty {
        fn open_append(&self, path: &Path) -> std::io::Result<File> {
            self.gate(Op::Open)?;
            Os.open_append(path)
        }
        fn open_write(&self, path: &Path) -> std::io::Result<File> {
            self.gate(Op::Open)?;
            Os.open_write(path)
        }
        fn open_read(&self, path: &Path) -> std::io::Result<File> {
            self.gate(Op::Open)?;
            Os.open_read(path)
        }
        fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
            match self.check(Op::Write) {
                Some((err, short)) => {
                    if short {
                        Os.write_at(file, &buf[..buf.len() / 2], offset)?;
                    }
                    Err(err)
                }
                None => Os.write_at(file, buf, offset),
            }
        }
        fn preallocate(&self, path: &Path, len: u64) -> std::io::Result<()> {
            self.gate(Op::Preallocate)?;
            Os.preallocate(path, len)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.gate(Op::Rename)?;
            Os.rename(from, to)
        }
        fn read_at(&self, file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            self.gate(Op::Read)?;
            Os.read_at(file, buf, offset)
        }
        fn write(&self, file: &File, buf: &[u8]) -> std::io::Result<()> {
            match self.check(Op::Write) {
                Some((err, short)) => {
                    if short {
                        Os.write(file, &buf[..buf.len() / 2])?;
                    }
                    Err(err)
                }
                None => Os.write(file, buf),
            }
        }
        fn sync(&self, file: &File) -> std::io::Result<()> {
            self.gate(Op::Sync)?;
            Os.sync(file)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.gate(Op::SyncDir)?;
            Os.sync_dir(dir)
        }
        fn set_len(&self, file: &File, len: u64) -> std::io::Result<()> {
            self.gate(Op::SetLen)?;
            Os.set_len(file, len)
        }
        fn len(&self, path: &Path) -> std::io::Result<u64> {
            self.gate(Op::Len)?;
            Os.len(path)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            self.gate(Op::Remove)?;
            Os.remove(path)
        }
        fn replace(&self, path: &Path, contents: &[u8]) -> std::io::Result<()> {
            self.gate(Op::Replace)?;
            Os.replace(path, contents)
        }
    }
}
