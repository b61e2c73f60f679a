//! The spool's segment files: opening and preparing them for the writer
//! thread; reading frames from a position, deleting confirmed segments and
//! writing the acked position for the reader. Everything here blocks:
//! [`SpoolReader`] runs its part on the blocking pool.
//!
//! [`SpoolReader`]: super::SpoolReader

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{error, warn};

use super::disk::SharedDisk;
use super::record::{self, Frame};
use super::{release, segment_path, write_acked, Position, Spooled};
use crate::stats::Stats;

/// Bytes read from a segment at a time.
const READ_CHUNK: u64 = 256 * 1024;

/// Opens segment `id` for writing: the preallocated file if one was
/// prepared, else a new empty one. The directory entry is synced.
pub(super) fn open_segment(
    disk: &dyn super::disk::Disk,
    dir: &Path,
    id: u64,
) -> std::io::Result<File> {
    let path = segment_path(dir, id);
    let prepared = prep_path(dir, id);
    match disk.rename(&prepared, &path) {
        Ok(()) => {}
        // None was prepared.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            warn!(cause = %err, "cannot use the preallocated spool segment; creating one");
            let _ = disk.remove(&prepared);
        }
    }
    let file = disk.open_write(&path)?;
    disk.sync_dir(dir)?;
    Ok(file)
}

/// Where segment `id` is prepared before it is used.
pub(super) fn prep_path(dir: &Path, id: u64) -> PathBuf {
    segment_path(dir, id).with_extension("seg.prep")
}

/// Starts preparing the segment file `path`: `len` zeros, synced, on a
/// thread of its own (the writer goes on meanwhile). `None` if no thread
/// could be started: the segment then grows as written.
pub(super) fn prepare(
    disk: SharedDisk,
    path: PathBuf,
    len: u64,
) -> Option<JoinHandle<std::io::Result<()>>> {
    std::thread::Builder::new()
        .name("spool-prepare".to_owned())
        .spawn(move || {
            disk.preallocate(&path, len).inspect_err(|_| {
                // At once: a half-made file would hold space records need.
                let _ = disk.remove(&path);
            })
        })
        .ok()
}

/// Waits for a [`prepare`]; whether the file is ready to be renamed into
/// place.
pub(super) fn prepared(preparing: JoinHandle<std::io::Result<()>>) -> bool {
    match preparing.join() {
        Ok(Ok(())) => true,
        // The preparing thread removed its half-made file already.
        Ok(Err(err)) => {
            warn!(cause = %err, "cannot preallocate the next spool segment; it grows as written");
            false
        }
        Err(_) => false,
    }
}

/// Events read from disk, and the cursor after them.
#[derive(Debug)]
pub(super) struct Chunk {
    pub cursor: Position,
    pub events: Vec<Spooled>,
}

/// What a checkpoint did: segments before `oldest` are deleted, and
/// whether `acked` was written.
#[derive(Debug)]
pub(super) struct Checkpoint {
    pub oldest: u64,
    pub acked: Position,
    pub written: std::io::Result<()>,
}

/// The spool's segment files, as the reader's blocking jobs see them.
#[derive(Debug, Clone)]
pub(super) struct Segments {
    pub dir: Arc<Path>,
    pub disk: SharedDisk,
    pub stats: Arc<Stats>,
}

impl Segments {
    /// A checkpoint: deletes the segments from `oldest` up to `acked`'s,
    /// then writes the acked position.
    ///
    /// Deleting first frees space even when the disk is full (when writing
    /// the position could fail); a position left behind on disk only means
    /// re-delivery after a restart, never loss.
    pub fn checkpoint(&self, mut oldest: u64, acked: Position, used: &AtomicU64) -> Checkpoint {
        // Oldest first, so one that cannot be removed now is found again
        // next time (nothing older than it is left behind).
        while oldest < acked.segment {
            let path = segment_path(&self.dir, oldest);
            let len = match self.disk.len(&path) {
                Ok(len) => len,
                // Already gone (a segment a failed roll never created).
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    oldest += 1;
                    continue;
                }
                Err(_) => break,
            };
            if self.disk.remove(&path).is_err() {
                break;
            }
            release(used, len);
            oldest += 1;
        }
        Checkpoint {
            oldest,
            acked,
            written: write_acked(self.disk.as_ref(), &self.dir, acked),
        }
    }

    /// Reads the frames from `cursor` towards `watermark`: one chunk of the
    /// cursor's segment, or, at the end of a complete segment, the move to
    /// the next one.
    pub fn read(&self, cursor: Position, watermark: Position) -> std::io::Result<Chunk> {
        let mut chunk = Chunk {
            cursor,
            events: Vec::new(),
        };
        let segment = cursor.segment;
        if segment < watermark.segment {
            // An older segment is complete: read it to its end, then move on.
            let path = segment_path(&self.dir, segment);
            let len = match self.disk.len(&path) {
                Ok(len) => len,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // Only this reader deletes segments, and only confirmed
                    // ones: a missing one was removed by hand (or never
                    // created when a roll failed). There is nothing to read.
                    if cursor.offset > 0 {
                        error!(
                            segment,
                            "spool segment disappeared while being read; moving to the next one"
                        );
                    }
                    0
                }
                Err(err) => return Err(err),
            };
            if cursor.offset < len {
                self.read_range(&mut chunk, len, true)?;
            } else {
                chunk.cursor = Position {
                    segment: segment + 1,
                    offset: 0,
                };
            }
            return Ok(chunk);
        }
        self.read_range(&mut chunk, watermark.offset, false)?;
        Ok(chunk)
    }

    /// Reads frames of the cursor's segment from the cursor towards `end`.
    /// `closed`: the writer is done with this segment, so bytes at its end
    /// that do not form a frame are a failed write's leftovers, not data
    /// still coming.
    fn read_range(&self, chunk: &mut Chunk, end: u64, closed: bool) -> std::io::Result<()> {
        let cursor = &mut chunk.cursor;
        let segment = cursor.segment;
        let file = self.disk.open_read(&segment_path(&self.dir, segment))?;
        let len = (end - cursor.offset).min(READ_CHUNK);
        let mut buf = vec![0; len as usize];
        self.disk.read_at(&file, &mut buf, cursor.offset)?;
        let mut at = 0;
        loop {
            match record::frame(&buf[at..]) {
                Frame::Record(payload, used) => {
                    let position = Position {
                        segment,
                        offset: cursor.offset + at as u64,
                    };
                    match record::decode(payload) {
                        Ok(event) => chunk.events.push(Spooled::new(event, Some(position))),
                        // An intact frame this version cannot read (written by a
                        // newer bridge?): only this record is skipped.
                        Err(problem) => {
                            error!(?position, %problem, "spool record cannot be decoded; skipping it")
                        }
                    }
                    at += used;
                }
                Frame::Incomplete if at == 0 => {
                    // One frame bigger than a chunk: read exactly that frame.
                    let need = frame_len(&buf).unwrap_or(u64::MAX);
                    if need <= buf.len() as u64 || cursor.offset.saturating_add(need) > end {
                        // It runs past the end: in a closed segment, bytes a
                        // failed write left behind; in the open one (which
                        // the writer ends at frames) damage.
                        let problem = if closed {
                            "bytes after the last whole record"
                        } else {
                            "record runs past the written end"
                        };
                        self.skip(cursor, end, problem);
                        return Ok(());
                    }
                    buf.resize(need as usize, 0);
                    self.disk.read_at(&file, &mut buf, cursor.offset)?;
                    continue;
                }
                Frame::Incomplete => break,
                // The zeros after a closed segment's last record.
                Frame::End if closed => {
                    cursor.offset = end;
                    return Ok(());
                }
                // In the open segment the writer ends each write at a
                // frame: zeros below its end are damage.
                Frame::End => {
                    cursor.offset += at as u64;
                    self.skip(cursor, end, "zeros where a record should be");
                    return Ok(());
                }
                Frame::Corrupt(problem) => {
                    cursor.offset += at as u64;
                    // A checksum mismatch with a length that fits: skip this
                    // record only. An impossible length: nothing after it can
                    // be found, skip to the end of what is readable.
                    let to = match frame_len(&buf[at..]) {
                        Some(need)
                            if problem == record::CHECKSUM_MISMATCH
                                && cursor.offset + need <= end =>
                        {
                            cursor.offset + need
                        }
                        _ => end,
                    };
                    self.skip(cursor, to, problem);
                    return Ok(());
                }
            }
        }
        cursor.offset += at as u64;
        Ok(())
    }

    /// Moves `cursor` over damaged bytes up to `to`, counted and logged.
    fn skip(&self, cursor: &mut Position, to: u64, problem: &str) {
        let from = cursor.offset;
        Stats::add(&self.stats.spool_skipped_bytes, to - from);
        error!(
            segment = cursor.segment,
            from_byte = from,
            to_byte = to,
            %problem,
            "damaged bytes in the spool; skipping them (these events, if any, cannot be recovered)"
        );
        cursor.offset = to;
    }
}

fn frame_len(buf: &[u8]) -> Option<u64> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as u64;
    Some(record::HEADER_LEN as u64 + len)
}
