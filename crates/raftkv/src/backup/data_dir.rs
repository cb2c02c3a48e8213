//! A fresh data directory from a state: what `restore` and `recover` both write.
//!
//! ```text
//!  DIR.new-<pid>/  (built beside DIR, then renamed onto it; the parent directory synced)
//!    <the log>     Wal::open, one write: the state as the installed snapshot at `last_included`
//!                  with `voters` as its configuration, the hard state (term, vote, commit =
//!                  that index), then a clean close (the node starts trusting its log)
//!    CLUSTER_ID    the cluster id, when one is given: `raftkv serve` takes it from here unless
//!                  --cluster-id says otherwise (and then refuses to start if they differ)
//! ```
//!
//! The directory is built whole under another name and renamed into place, so a crash
//! leaves either no DIR or a complete one, never half a log a node would start from.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use raft_core::{Configuration, HardState, LogId, NodeId, PersistRequest, Snapshot, SnapshotMeta};
use raft_wal::{Wal, WalOptions};

use super::{io_error, BackupError};
use crate::store::StateMachine;

/// The file of a data directory that holds its cluster's id.
pub const CLUSTER_ID_FILE: &str = "CLUSTER_ID";

/// What a fresh data directory starts from.
#[derive(Debug)]
pub struct FreshStart<'a> {
    /// The state, at `last_included.index`.
    pub state: &'a StateMachine,
    /// The last entry the state includes: the installed snapshot's id.
    pub last_included: LogId,
    /// The term and vote to start in (the term no older than `last_included`'s).
    pub term: raft_core::Term,
    /// The vote in `term`, if one was cast.
    pub vote: Option<NodeId>,
    /// The members, all voters.
    pub voters: Configuration,
    /// Written to [`CLUSTER_ID_FILE`] when given.
    pub cluster_id: Option<&'a str>,
}

/// Whether `dir` is missing or an empty directory (a restore may write there).
pub fn is_missing_or_empty(dir: &Path) -> Result<bool, BackupError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(error) => Err(io_error("list the data directory", dir)(error)),
    }
}

/// The directory a new data directory for `dir` is built in, beside it (same file system, so
/// it can be renamed onto `dir`).
pub fn staging_path(dir: &Path) -> Result<PathBuf, BackupError> {
    let name = dir
        .file_name()
        .ok_or_else(|| BackupError::Usage(format!("{}: not a directory name", dir.display())))?;
    let mut staged = name.to_os_string();
    staged.push(format!(".new-{}", std::process::id()));
    Ok(dir.with_file_name(staged))
}

/// The parent of `dir` (`.` for a bare name).
pub fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Builds a data directory at `staging` (which must not exist) holding `start`.
pub fn build(staging: &Path, start: &FreshStart<'_>) -> Result<(), BackupError> {
    assert!(
        start.term >= start.last_included.term,
        "a log starts in a term no older than its snapshot's"
    );
    assert!(
        !start.voters.voters.is_empty() && start.voters.outgoing.is_empty(),
        "a fresh configuration has voters and is not joint"
    );
    let parent = parent_of(staging);
    fs::create_dir_all(&parent).map_err(io_error("create the parent directory", &parent))?;
    fs::create_dir(staging).map_err(io_error("create the new data directory", staging))?;
    let log_error = |reason: String| BackupError::Log {
        path: staging.to_path_buf(),
        reason,
    };
    let mut wal = Wal::open(staging, start.voters.clone(), WalOptions::default())
        .map_err(|error| log_error(error.to_string()))?;
    let index = start.last_included.index;
    let request = PersistRequest {
        id: 1,
        snapshot: Some(Snapshot {
            meta: SnapshotMeta {
                last_included: start.last_included,
                configuration: start.voters.clone(),
            },
            data: start.state.snapshot(),
        }),
        entries: Vec::new(),
        hard_state: Some(HardState {
            term: start.term,
            vote: start.vote,
            commit: index,
        }),
    };
    wal.write([request])
        .map_err(|error| log_error(error.to_string()))?;
    wal.close_cleanly()
        .map_err(|error| log_error(error.to_string()))?;
    if let Some(cluster_id) = start.cluster_id {
        write_synced(&staging.join(CLUSTER_ID_FILE), cluster_id.as_bytes())?;
    }
    sync_dir(staging)
}

/// The cluster id a data directory holds ([`CLUSTER_ID_FILE`]), if it holds one.
pub fn read_cluster_id(dir: &Path) -> Result<Option<String>, BackupError> {
    let path = dir.join(CLUSTER_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() {
                return Err(BackupError::Usage(format!("{}: empty", path.display())));
            }
            Ok(Some(id.to_string()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read the cluster id", &path)(error)),
    }
}

/// Writes `bytes` to a new file at `path` and syncs it (not its directory).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut file = File::create(path).map_err(io_error("create", path))?;
    file.write_all(bytes).map_err(io_error("write", path))?;
    file.sync_all().map_err(io_error("sync", path))
}

/// Syncs directory `dir`, so that the names created or renamed in it last.
pub fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error("sync the directory", dir))
}

/// Renames `from` to `to` and syncs their parent (they share it).
pub fn rename_synced(from: &Path, to: &Path) -> Result<(), BackupError> {
    fs::rename(from, to).map_err(io_error("rename into place", to))?;
    sync_dir(&parent_of(to))
}
