//! Errors of the write-ahead log. Every one of them is environmental (disk, corruption, another
//! process) and fatal to the node that owns the log: it must stop acknowledging writes.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why the write-ahead log could not open, read or write.
#[derive(Debug, Error)]
pub enum WalError {
    /// A file system call failed (disk full, permission, I/O error).
    #[error("{operation} {path}: {source}")]
    Io {
        /// What the log was doing.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Stored data failed its checksum or does not make sense. Refusing to start is the safe
    /// answer; [`crate::WalOptions::truncate_corrupt_tail`] lets an operator accept the loss.
    #[error("corrupt write-ahead log: {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file was written by a format this build does not read.
    #[error("{path}: format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it carries.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// Another process holds the data directory.
    #[error("data directory {path} is in use by another process (lock file held)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The caller handed over something the log cannot store (a gap before the appended
    /// entries, an oversized record). A bug in the caller, reported rather than written.
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// The options are out of range.
    #[error("invalid write-ahead log options: {0}")]
    InvalidOptions(String),
    /// An earlier write failed, so the log no longer knows what is on disk and accepts no more
    /// writes (after a failed fsync the page cache may have dropped the data: retrying could
    /// acknowledge something that was never stored).
    #[error("write-ahead log stopped after an earlier failure: {0}")]
    Stopped(String),
}

impl WalError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        WalError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;
