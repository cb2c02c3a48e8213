//! File system helpers: fsync and fdatasync (timed), directory fsync and the data directory
//! lock.

use std::fs::{File, OpenOptions};
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
