//! The disk's sequential write bandwidth, measured the way the write-ahead log writes: buffered
//! writes of a large file in 1 MiB pieces, then one `fdatasync`, timed from the first write to
//! the flush's return.
//!
//! Measured here rather than with `dd`/`fio` so that a sweep reports it in the same run, with
//! no tool to install; written through the page cache, like the log (not `O_DIRECT`, which
//! measures a path the log never takes). The scratch file is removed afterwards.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

/// The size of each write: large enough that system calls cost nothing beside the copy.
const CHUNK_BYTES: usize = 1 << 20;

/// One measurement.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DiskBandwidth {
    /// Bytes written.
    pub bytes: u64,
    /// From the first write to the return of the `fdatasync`.
    pub seconds: f64,
    /// `bytes` over `seconds`, in MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
}

/// Writes `bytes` (rounded up to a whole MiB) to a scratch file in `dir`, syncs it, removes it.
pub fn measure(dir: &Path, bytes: u64) -> Result<DiskBandwidth, String> {
    let path = dir.join(format!(".raftkv-bench-disk-{}", std::process::id()));
    let result = write_and_sync(&path, bytes);
    // Removed whatever happened; a failure to remove it is worth a word, not the result.
    if let Err(error) = std::fs::remove_file(&path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            eprintln!("raftkv bench: cannot remove {}: {error}", path.display());
        }
    }
    result
}

fn write_and_sync(path: &Path, bytes: u64) -> Result<DiskBandwidth, String> {
    let context =
        |error: std::io::Error| format!("measuring the disk at {}: {error}", path.display());
    // Not zeros: a compressing or deduplicating layer would make light work of them.
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for byte in chunk.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let chunks = bytes.div_ceil(CHUNK_BYTES as u64).max(1);
    let mut file = std::fs::File::create(path).map_err(context)?;
    let started = Instant::now();
    for index in 0..chunks {
        // Each chunk differs from the last, for the same reason.
        chunk[0] = index as u8;
        file.write_all(&chunk).map_err(context)?;
    }
    file.sync_data().map_err(context)?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let written = chunks * CHUNK_BYTES as u64;
    Ok(DiskBandwidth {
        bytes: written,
        seconds,
        mb_per_sec: written as f64 / seconds / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_writes_whole_chunks_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("scratch directory");
        let measured = measure(dir.path(), 3 << 20).expect("measured");
        assert_eq!(measured.bytes, 3 << 20);
        assert!(measured.mb_per_sec > 0.0 && measured.mb_per_sec.is_finite());
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
        assert!(left.is_empty(), "the scratch file is removed: {left:?}");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("scratch directory");
        let missing = dir.path().join("not-there");
        let error = measure(&missing, 1 << 20).expect_err("no such directory");
        assert!(error.contains("not-there"), "{error}");
    }
}
