//! The disk's own cost, measured in the same run: a 1 KiB append +
//! `fdatasync`, and a 1 KiB overwrite of zero-filled (preallocated) space +
//! `fdatasync`, in the directory the spools use.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Latency (us) of `n` writes + syncs of 1 KiB: (append, preallocated).
pub fn fdatasync_latency(n: u64) -> (Histogram<u64>, Histogram<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let record = vec![b'x'; 1024];
    let run = |preallocate: bool| {
        let path = dir
            .path()
            .join(if preallocate { "zeros" } else { "append" });
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        if preallocate {
            let zeros = vec![0u8; 1 << 20];
            for mb in 0..(n * 1024).div_ceil(1 << 20) {
                file.write_all_at(&zeros, mb << 20).unwrap();
            }
            file.sync_all().unwrap();
        }
        let mut latency = super::new_histogram();
        for i in 0..n {
            let start = Instant::now();
            file.write_all_at(&record, i * 1024).unwrap();
            file.sync_data().unwrap();
            latency
                .record(start.elapsed().as_micros().max(1) as u64)
                .unwrap();
        }
        latency
    };
    (run(false), run(true))
}
