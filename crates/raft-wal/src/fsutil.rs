//! File system helpers: fsync and fdatasync (timed), directory fsync and the data directory
//! lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::error::{Result, WalError};
use crate::metrics::LatencyHistogram;

/// Name of the lock file inside a data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Makes writes durable, or, for tests and simulation ([`crate::WalOptions::unsafe_no_sync`]),
/// does nothing at all.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syncer {
    enabled: bool,
}

impl Syncer {
    pub(crate) fn new(enabled: bool) -> Syncer {
        Syncer { enabled }
    }

    /// fsync: the file's data and metadata.
    pub(crate) fn file(self, file: &File, path: &Path, operation: &'static str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        file.sync_all()
            .map_err(|error| WalError::io(operation, path, error))
    }

    /// fdatasync: the file's data and the metadata needed to read it back (its size). Its
    /// duration goes into `latency` (a skipped sync records nothing).
    pub(crate) fn data(self, file: &File, path: &Path, latency: &LatencyHistogram) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let started = Instant::now();
        let result = file
            .sync_data()
            .map_err(|error| WalError::io("fdatasync segment", path, error));
        latency.record(started.elapsed());
        result
    }

    /// Writes `parts` one after the other to `file` (at its start), then fsyncs it, keeping
    /// little of it waiting in the page cache meanwhile: each [`WRITE_BEHIND_CHUNK`] is sent to
    /// the disk as soon as it is written (`sync_file_range`, Linux), and the writer waits for
    /// the chunk before the previous one to reach it before going on. Written whole and
    /// flushed at the end, a snapshot file of tens of megabytes sat in the disk's queue ahead
    /// of the log's own fdatasyncs (every node's, when they share a disk) for the hundreds of
    /// milliseconds its writeback took: every write waited for it. The final fsync still makes
    /// the file durable; without syncing ([`Syncer::new`]`(false)`) the parts are only written.
    ///
    /// With `bytes_per_second` above 0, the writer also sleeps as needed to write no faster
    /// than that: see [`crate::WalOptions::staged_snapshot_bytes_per_second`].
    pub(crate) fn write_behind(
        self,
        file: &mut File,
        path: &Path,
        parts: &[&[u8]],
        operation: &'static str,
        bytes_per_second: u64,
    ) -> Result<()> {
        let started = Instant::now();
        let mut chunks = WriteBehind::new(self.enabled);
        for part in parts {
            for piece in part.chunks(WRITE_BEHIND_CHUNK) {
                file.write_all(piece)
                    .and_then(|()| chunks.written(file, piece.len() as u64))
                    .map_err(|error| WalError::io(operation, path, error))?;
                if bytes_per_second > 0 {
                    let due = std::time::Duration::from_secs_f64(
                        chunks.written as f64 / bytes_per_second as f64,
                    );
                    if let Some(early) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(early);
                    }
                }
            }
        }
        self.file(file, path, operation)
    }

    /// Makes the creation, rename or removal of entries in `dir` durable.
    pub(crate) fn dir(self, dir: &Path) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|error| WalError::io("fsync directory", dir, error))
    }
}

/// Bytes [`Syncer::write_behind`] writes before starting their writeback: large enough that
/// the system calls cost nothing beside the copy (one pair per MiB), small enough that a log's
/// fdatasync queued behind two of them waits a few milliseconds, not the whole file's flush.
pub(crate) const WRITE_BEHIND_CHUNK: usize = 1 << 20;

/// The chunks of a file written front to back whose writeback was started: the range sent
/// last, and the one before it, which the next chunk waits for.
struct WriteBehind {
    enabled: bool,
    written: u64,
    /// Start of the range sent to the disk last, and of the one sent before it.
    sent_from: u64,
    previous_from: u64,
}

impl WriteBehind {
    fn new(enabled: bool) -> WriteBehind {
        WriteBehind {
            enabled,
            written: 0,
            sent_from: 0,
            previous_from: 0,
        }
    }

    /// `bytes` more were written at the file's end: once a chunk's worth waits, sends it to
    /// the disk and waits for the range sent before it. A file system that does not support
    /// this leaves the rest of the file to the final fsync; any other error is the write's
    /// (waiting here takes a writeback error from the file, so the fsync would not see it).
    fn written(&mut self, file: &File, bytes: u64) -> std::io::Result<()> {
        self.written += bytes;
        if !self.enabled || self.written - self.sent_from < WRITE_BEHIND_CHUNK as u64 {
            return Ok(());
        }
        let sent =
            start_writeback(file, self.sent_from, self.written - self.sent_from).and_then(|()| {
                if self.sent_from > self.previous_from {
                    wait_for_writeback(
                        file,
                        self.previous_from,
                        self.sent_from - self.previous_from,
                    )
                } else {
                    Ok(())
                }
            });
        match sent {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
                self.enabled = false;
            }
            Err(error) => return Err(error),
        }
        self.previous_from = self.sent_from;
        self.sent_from = self.written;
        Ok(())
    }
}

/// Starts writing `length` bytes of `file` from `offset` to the disk, without waiting.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, length: u64) -> std::io::Result<()> {
    sync_file_range(file, offset, length, libc::SYNC_FILE_RANGE_WRITE)
}

/// Waits until `length` bytes of `file` from `offset` are written to the disk (perhaps only to
/// its volatile cache: only an fsync makes them durable).
#[cfg(target_os = "linux")]
fn wait_for_writeback(file: &File, offset: u64, length: u64) -> std::io::Result<()> {
    sync_file_range(
        file,
        offset,
        length,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

#[cfg(target_os = "linux")]
fn sync_file_range(
    file: &File,
    offset: u64,
    length: u64,
    flags: libc::c_uint,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
        return Ok(());
    };
    // SAFETY: a system call on an open descriptor this function borrows; no memory is passed.
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, flags) };
    if result == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        // Not supported by this file system or kind of file.
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE) => {
            Err(std::io::Error::new(std::io::ErrorKind::Unsupported, error))
        }
        _ => Err(error),
    }
}

// Elsewhere the final fsync alone flushes the file.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _length: u64) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn wait_for_writeback(_file: &File, _offset: u64, _length: u64) -> std::io::Result<()> {
    Ok(())
}

/// An exclusive lock on a data directory, held until dropped. The operating system releases
/// it when the process dies, so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub(crate) struct DirectoryLock {
    _file: File,
}

impl DirectoryLock {
    /// Takes the lock or fails with [`WalError::Locked`] if another process (or another
    /// handle in this one) holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirectoryLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| WalError::io("open lock file", &path, error))?;
        match file.try_lock() {
            Ok(()) => Ok(DirectoryLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(WalError::Locked { path }),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(WalError::io("lock data directory", &path, error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_behind_holds_every_part_in_order_synced_or_not() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let large: Vec<u8> = (0..3 * WRITE_BEHIND_CHUNK + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        for syncing in [true, false] {
            let path = dir.path().join(format!("file-{syncing}"));
            let mut file = File::create(&path).expect("create");
            let parts: [&[u8]; 4] = [b"head", &large, b"", b"tail"];
            Syncer::new(syncing)
                .write_behind(&mut file, &path, &parts, "write test file", 0)
                .expect("written");
            let expected: Vec<u8> = parts.concat();
            assert_eq!(std::fs::read(&path).expect("read back"), expected);
        }
    }

    #[test]
    fn a_paced_write_takes_at_least_its_bytes_over_the_rate() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("paced");
        let mut file = File::create(&path).expect("create");
        let data = vec![7u8; 2 * WRITE_BEHIND_CHUNK];
        let started = Instant::now();
        Syncer::new(true)
            .write_behind(&mut file, &path, &[&data], "write test file", 16 << 20)
            .expect("written");
        // 2 MiB at 16 MiB/s: the writer sleeps until 125 ms have passed (never less).
        assert!(started.elapsed() >= std::time::Duration::from_millis(125));
        assert_eq!(std::fs::read(&path).expect("read back"), data);
    }
}
