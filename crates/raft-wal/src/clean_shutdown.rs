//! The clean-shutdown marker: a file that says the last process to hold the data directory
//! stopped gracefully, after every write it acknowledged was durable.
//!
//! ```text
//!  Wal::open ─► lock ─► marker there? (remember) ─► remove it, fsync the directory ─► recover
//!                                                    (before any other change to the directory)
//!  Wal::close_cleanly ─► create the marker, fsync it, fsync the directory ─► unlock
//! ```
//!
//! Its absence at open is what tells a restart after a crash (a power loss, a killed process,
//! a kernel panic) from one after a graceful stop. After a crash the log holds whatever the
//! disk kept, and a disk that acknowledged an fsync it had not done (a volatile write cache
//! that lies) may have lost writes the node acknowledged to its peers: the peer must then
//! recover with its peers' help before it votes (see `raft_core`'s recovery and
//! [`crate::RecoveryReport::possibly_lost_writes`]).
//!
//! Removing the marker before anything else is written makes a crash after this open count
//! as unclean, whatever the previous stop was. A marker torn by a crash while it was being
//! written still says the truth: every write was durable before it was begun, so only its
//! presence is read, never its contents.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{Result, WalError};
use crate::fsutil::Syncer;

/// Name of the marker file inside a data directory.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "CLEAN_SHUTDOWN";

/// What the marker holds, for an operator who finds it (only its presence is read).
const CONTENTS: &[u8] = b"The write-ahead log in this directory was closed cleanly: every \
write acknowledged was durable. Removed when the log is opened.\n";

/// Removes the marker of `dir` if it is there, durably (the directory is synced), and
/// returns whether it was.
pub(crate) fn take(syncer: Syncer, dir: &Path) -> Result<bool> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match fs::remove_file(&path) {
        Ok(()) => {
            // A crash after this open must find the marker gone, or it would count as clean.
            syncer.dir(dir)?;
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(WalError::io("remove clean-shutdown marker", &path, error)),
    }
}

/// Writes the marker of `dir` durably: the file is synced, then the directory.
pub(crate) fn write(syncer: Syncer, dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|error| WalError::io("create clean-shutdown marker", &path, error))?;
    file.write_all(CONTENTS)
        .map_err(|error| WalError::io("write clean-shutdown marker", &path, error))?;
    syncer.file(&file, &path, "fsync clean-shutdown marker")?;
    syncer.dir(dir)
}
