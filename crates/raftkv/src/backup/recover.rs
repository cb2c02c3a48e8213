//! `raftkv recover --force-new-cluster --data-dir DIR --id N`: a stopped node that survived
//! the loss of its cluster's majority becomes a cluster of one with its data, which new
//! members then join (`raftkv serve --join`).
//!
//! ```text
//!  DIR's log (Wal::open: the node must be stopped; a torn tail is cut as at any start)
//!    snapshot ─► StateMachine::restore ─► every entry the log holds applied, in order
//!    (commands applied, no-ops and configuration entries skipped: as the apply loop does)
//!    ─► other nodes' addresses forgotten ─► data_dir::build beside DIR: a snapshot at the
//!       last entry, the node alone as voter, its term and vote kept
//!    ─► DIR renamed to DIR.before-recover-<unix seconds> ─► the new one renamed to DIR
//! ```
//!
//! The two renames are not one step: a crash between them leaves no DIR, the old data at
//! `DIR.before-recover-<time>` and the new at `DIR.new-<pid>`; renaming the latter to DIR (or
//! running `recover` again on the former, renamed back) finishes the job.
//!
//! What is kept and what may be lost (docs/operations.md, "Losing a majority"): every entry
//! this node's log holds is applied, committed or not, so a write it received but the lost
//! majority never acknowledged becomes committed (its client may have been told it failed or
//! timed out); a write the majority committed that never reached this node is lost.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use raft_core::{Configuration, EntryKind, Index, LogId, NodeId, Storage as _};
use raft_wal::{Wal, WalOptions};

use super::data_dir::{self, FreshStart};
use super::restore::SESSIONS_MAX_DEFAULT;
use super::BackupError;
use crate::store::StateMachine;

/// `raftkv recover` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct RecoverArgs {
    /// Required: makes the node a new cluster of one, with its data. Only when the majority
    /// is lost for good: the other members must never start again with their old data.
    #[arg(long)]
    pub force_new_cluster: bool,
    /// The stopped node's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The node's id (as it ran with `raftkv serve --id`).
    #[arg(long)]
    pub id: u64,
    /// A cluster id for the new cluster, written to the data directory (`raftkv serve` uses
    /// it; nodes joining must run with the same --cluster-id). Default: the one the directory
    /// holds, if any, else the node's --cluster-id as before.
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Client sessions kept, as the node's `--sessions-max`.
    #[arg(long, default_value_t = SESSIONS_MAX_DEFAULT)]
    pub sessions_max: usize,
}

/// What a recovery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The index of the node's snapshot the state started from.
    pub snapshot_index: u64,
    /// The commit index the node had recorded.
    pub commit_index: u64,
    /// The last entry applied: the new cluster's snapshot.
    pub last_included: LogId,
    /// Entries applied after the snapshot.
    pub entries_applied: u64,
    /// Of those, the ones after the recorded commit index: possibly never committed by the
    /// old cluster, committed now.
    pub entries_beyond_commit: u64,
    /// The store's revision after them.
    pub revision: u64,
    /// Keys that exist.
    pub keys: u64,
    /// Where the old data directory was moved.
    pub moved_aside: PathBuf,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "recovered index={} term={} revision={} keys={} snapshot_index={} \
             entries_applied={} commit_index={} entries_beyond_commit={} old_data={}",
            self.last_included.index.0,
            self.last_included.term.0,
            self.revision,
            self.keys,
            self.snapshot_index,
            self.entries_applied,
            self.commit_index,
            self.entries_beyond_commit,
            self.moved_aside.display()
        )
    }
}

/// Most bytes of entries read from the log at a time.
const READ_BYTES_MAX: u64 = 64 << 20;

/// Runs `raftkv recover`.
pub fn run(args: &RecoverArgs) -> Result<Recovered, BackupError> {
    if !args.force_new_cluster {
        return Err(BackupError::Usage(
            "recover makes this node a new cluster of one: give --force-new-cluster to confirm \
             that the other members are lost for good (see docs/operations.md)"
                .into(),
        ));
    }
    let dir = &args.data_dir;
    if data_dir::is_missing_or_empty(dir)? {
        return Err(BackupError::Usage(format!(
            "{}: no data directory to recover",
            dir.display()
        )));
    }
    let id = NodeId(args.id);
    let cluster_id = match &args.cluster_id {
        Some(given) if given.trim().is_empty() => {
            return Err(BackupError::Usage("--cluster-id is empty".into()))
        }
        Some(given) => Some(given.trim().to_string()),
        None => data_dir::read_cluster_id(dir)?,
    };
    let (state, recovered) = replay(dir, id, args.sessions_max)?;
    let staging = data_dir::staging_path(dir)?;
    let moved_aside = aside_path(dir)?;
    data_dir::build(
        &staging,
        &FreshStart {
            state: &state,
            last_included: recovered.last_included,
            term: recovered.term,
            vote: recovered.vote,
            voters: Configuration::new([id]),
            cluster_id: cluster_id.as_deref(),
        },
    )?;
    data_dir::rename_synced(dir, &moved_aside)?;
    data_dir::rename_synced(&staging, dir)?;
    Ok(Recovered {
        snapshot_index: recovered.snapshot_index,
        commit_index: recovered.commit_index,
        last_included: recovered.last_included,
        entries_applied: recovered.entries_applied,
        entries_beyond_commit: recovered.entries_beyond_commit,
        revision: state.revision(),
        keys: state.keys() as u64,
        moved_aside,
    })
}

/// `DIR.before-recover-<unix seconds>`, beside `dir`.
fn aside_path(dir: &Path) -> Result<PathBuf, BackupError> {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let name = dir
        .file_name()
        .ok_or_else(|| BackupError::Usage(format!("{}: not a directory name", dir.display())))?;
    let mut aside = name.to_os_string();
    aside.push(format!(".before-recover-{seconds}"));
    let aside = dir.with_file_name(aside);
    if aside.exists() {
        return Err(BackupError::Usage(format!(
            "{} exists already: try again in a second",
            aside.display()
        )));
    }
    Ok(aside)
}

/// What replaying a log found, besides the state.
struct Replayed {
    snapshot_index: u64,
    commit_index: u64,
    last_included: LogId,
    term: raft_core::Term,
    vote: Option<NodeId>,
    entries_applied: u64,
    entries_beyond_commit: u64,
}

/// The state of the log in `dir`: its snapshot with every entry after it applied.
fn replay(
    dir: &Path,
    id: NodeId,
    sessions_max: usize,
) -> Result<(StateMachine, Replayed), BackupError> {
    let log_error = |reason: String| BackupError::Log {
        path: dir.to_path_buf(),
        reason,
    };
    // The bootstrap configuration is unused: the directory holds a log (checked above).
    let wal = Wal::open(dir, Configuration::new([id]), WalOptions::default())
        .map_err(|error| log_error(format!("{error} (is the node still running?)")))?;
    let storage = wal.storage();
    let initial = storage
        .initial_state()
        .map_err(|error| log_error(error.to_string()))?;
    if !initial.configuration.members().any(|member| member == id) {
        let members: Vec<String> = initial
            .configuration
            .members()
            .map(|member| member.0.to_string())
            .collect();
        return Err(BackupError::Usage(format!(
            "node {} is not a member of the configuration in {} (members: {}): is --id this \
             node's?",
            id.0,
            dir.display(),
            members.join(",")
        )));
    }
    let snapshot = storage
        .snapshot()
        .map_err(|error| log_error(error.to_string()))?;
    let snapshot_id = snapshot.meta.last_included;
    let mut state = if snapshot_id.index.0 == 0 {
        StateMachine::new(sessions_max)
    } else {
        StateMachine::restore(&snapshot.data, sessions_max).map_err(|error| BackupError::State {
            path: dir.to_path_buf(),
            error,
        })?
    };
    let last_index = storage
        .last_index()
        .map_err(|error| log_error(error.to_string()))?;
    let mut next = Index(snapshot_id.index.0 + 1);
    let mut last_included = snapshot_id;
    let mut entries_applied = 0u64;
    let commit_index = initial.hard_state.commit.0;
    while next <= last_index {
        let entries = storage
            .entries(next, Index(last_index.0 + 1), READ_BYTES_MAX)
            .map_err(|error| log_error(error.to_string()))?;
        if entries.is_empty() {
            return Err(log_error(format!("no entry at index {}", next.0)));
        }
        for entry in entries {
            if entry.index() != next {
                return Err(log_error(format!(
                    "entry {} where entry {} belongs",
                    entry.index().0,
                    next.0
                )));
            }
            match entry.kind {
                EntryKind::Normal => {
                    state.apply_entry(entry.index().0, entry.term().0, &entry.data);
                }
                EntryKind::Noop | EntryKind::Configuration => state.skip(entry.index().0),
            }
            last_included = entry.id;
            entries_applied += 1;
            next = Index(next.0 + 1);
        }
    }
    state.forget_addresses_except(|node| node == id.0);
    let hard_state = initial.hard_state;
    let term = hard_state.term.max(last_included.term);
    let vote = hard_state.vote.filter(|_| hard_state.term == term);
    let replayed = Replayed {
        snapshot_index: snapshot_id.index.0,
        commit_index,
        last_included,
        term,
        vote,
        entries_applied,
        entries_beyond_commit: last_included
            .index
            .0
            .saturating_sub(commit_index.max(snapshot_id.index.0)),
    };
    // Dropped, not closed cleanly: the old directory is kept as it was found, and if it is
    // ever started again it must not trust itself.
    drop(wal);
    Ok((state, replayed))
}
