//! File system helpers: directory fsync and the data directory lock.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Result, WalError};

/// Name of the lock file inside a data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Makes the creation, rename or removal of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| WalError::io("fsync directory", dir, error))
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
