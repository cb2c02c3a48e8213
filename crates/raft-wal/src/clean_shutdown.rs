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
    let operations = [
        "create clean-shutdown marker",
        "write clean-shutdown marker",
        "fsync clean-shutdown marker",
    ];
    write_durably(syncer, dir, CLEAN_SHUTDOWN_FILE, CONTENTS, operations)
}

/// Writes file `name` of `dir` with `contents`, then syncs it and the directory; errors name
/// the `[create, write, fsync]` operations given.
fn write_durably(
    syncer: Syncer,
    dir: &Path,
    name: &str,
    contents: &[u8],
    [create, write, fsync]: [&'static str; 3],
) -> Result<()> {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|error| WalError::io(create, &path, error))?;
    file.write_all(contents)
        .map_err(|error| WalError::io(write, &path, error))?;
    syncer.file(&file, &path, fsync)?;
    syncer.dir(dir)
}

/// Name of the file that keeps a log suspect of lost writes across starts, until a clean
/// shutdown of a recovered peer ([`crate::Wal::close_cleanly`]) removes it.
pub(crate) const SUSPECT_FILE: &str = "SUSPECT";

/// What the suspect file holds, for an operator who finds it (only its presence is read).
const SUSPECT_CONTENTS: &[u8] = b"The write-ahead log in this directory may have lost writes \
it reported durable; the peer recovers with its peers' help at every start until it is \
stopped cleanly after recovering.\n";

/// Whether `dir` holds the suspect file.
pub(crate) fn is_suspect(dir: &Path) -> bool {
    dir.join(SUSPECT_FILE).exists()
}

/// Writes the suspect file of `dir` durably.
pub(crate) fn mark_suspect(syncer: Syncer, dir: &Path) -> Result<()> {
    let operations = [
        "create suspect marker",
        "write suspect marker",
        "fsync suspect marker",
    ];
    write_durably(syncer, dir, SUSPECT_FILE, SUSPECT_CONTENTS, operations)
}

/// Removes the suspect file of `dir`, durably, if it is there: called once the clean-shutdown
/// marker is durable, so that a crash in between leaves the log suspect (the safe side).
pub(crate) fn clear_suspicion(syncer: Syncer, dir: &Path) -> Result<()> {
    let path = dir.join(SUSPECT_FILE);
    match fs::remove_file(&path) {
        Ok(()) => syncer.dir(dir),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(WalError::io("remove suspect marker", &path, error)),
    }
}
