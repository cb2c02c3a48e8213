//! `raftkv snapshot restore FILE --data-dir DIR --id N --peers ...`: one member's data
//! directory of a new cluster, from a snapshot file. Every member restores the same file with
//! the same `--peers`, then starts with `raftkv serve` and the same id, peers and directory.
//!
//! ```text
//!  FILE ─► file::decode (magic, header CRC, length, SHA-256) ─► StateMachine::restore
//!       ─► the old cluster's node addresses forgotten ─► data_dir::build beside DIR
//!          (snapshot at the file's index and term, --peers as the voters, the cluster id)
//!       ─► renamed onto DIR (missing or empty)
//! ```
//!
//! The new log starts at the file's index, so the sessions' indexes (exactly-once writes)
//! stay meaningful: a client retrying a write applied before the snapshot gets its first
//! answer again. Leases keep their TTLs and checkpointed remaining time; the new cluster's
//! first leader gives each its remaining time anew, as after any leader change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use raft_core::{Configuration, LogId, NodeId, Term};
use sha2::{Digest, Sha256};

use super::data_dir::{self, FreshStart};
use super::file::{self, SnapshotHeader};
use super::{io_error, BackupError};
use crate::store::StateMachine;

/// Sessions kept by default, as `raftkv serve --sessions-max`'s default.
pub const SESSIONS_MAX_DEFAULT: usize = 100_000;

/// `raftkv snapshot restore` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot file (from `raftkv snapshot save`).
    pub file: PathBuf,
    /// The new node's data directory: must be missing or empty.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The new node's id, one of --peers.
    #[arg(long)]
    pub id: u64,
    /// Every member of the new cluster as ID=RAFT_ADDR pairs separated by commas, as
    /// `raftkv serve --peers` takes them (give every member the same list).
    #[arg(long)]
    pub peers: String,
    /// The new cluster's id. Default: derived from the file's checksum and --peers (the same
    /// for every member restoring the same file with the same peers, and not the old
    /// cluster's, so that a node of the old cluster cannot talk to the new one).
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Client sessions kept, as the nodes' `--sessions-max` (the least recently active are
    /// forgotten beyond it).
    #[arg(long, default_value_t = SESSIONS_MAX_DEFAULT)]
    pub sessions_max: usize,
}

/// What a restore wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The file's header.
    pub header: SnapshotHeader,
    /// The new cluster's id.
    pub cluster_id: String,
    /// The new cluster's voters.
    pub voters: Vec<u64>,
}

impl std::fmt::Display for Restored {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let voters: Vec<String> = self.voters.iter().map(u64::to_string).collect();
        write!(
            formatter,
            "restored {} cluster_id={} voters={}",
            self.header.figures(),
            self.cluster_id,
            voters.join(",")
        )
    }
}

/// Reads and checks a snapshot file whole: its header and the state it holds.
pub fn read_snapshot_file(
    path: &std::path::Path,
    sessions_max: usize,
) -> Result<(SnapshotHeader, StateMachine), BackupError> {
    let bytes = std::fs::read(path).map_err(io_error("read the snapshot file", path))?;
    let (header, body) = file::decode(&Bytes::from(bytes)).map_err(|error| BackupError::File {
        path: path.to_path_buf(),
        error,
    })?;
    let state = StateMachine::restore(&body, sessions_max).map_err(|error| BackupError::State {
        path: path.to_path_buf(),
        error,
    })?;
    if state.applied_index() != header.index || state.revision() != header.revision {
        return Err(BackupError::State {
            path: path.to_path_buf(),
            error: crate::store::SnapshotError::Malformed {
                what: "header",
                reason: "the header's index or revision is not the state's",
            },
        });
    }
    Ok((header, state))
}

/// The default cluster id of a restore: the old id with a digest of the file's checksum and
/// the new members.
fn derived_cluster_id(header: &SnapshotHeader, peers: &BTreeMap<NodeId, SocketAddr>) -> String {
    let mut digest = Sha256::new();
    digest.update(header.body_sha256.as_bytes());
    for (id, address) in peers {
        digest.update(format!(";{}={address}", id.0).as_bytes());
    }
    let short: String = digest.finalize()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{}-restored-{short}", header.cluster_id)
}

/// Runs `raftkv snapshot restore`.
pub fn run(args: &RestoreArgs) -> Result<Restored, BackupError> {
    let peers = crate::settings::parse_peers(&args.peers)
        .map_err(|error| BackupError::Usage(error.to_string()))?;
    if !peers.contains_key(&NodeId(args.id)) {
        return Err(BackupError::Usage(format!(
            "node {} is not listed in --peers",
            args.id
        )));
    }
    // Checked before the file is read: a slip of the directory fails at once.
    if !data_dir::is_missing_or_empty(&args.data_dir)? {
        return Err(BackupError::DataDirNotEmpty(args.data_dir.clone()));
    }
    let (header, mut state) = read_snapshot_file(&args.file, args.sessions_max)?;
    state.forget_addresses_except(|_| false);
    let cluster_id = match &args.cluster_id {
        Some(id) if id.trim().is_empty() => {
            return Err(BackupError::Usage("--cluster-id is empty".into()))
        }
        Some(id) => id.trim().to_string(),
        None => derived_cluster_id(&header, &peers),
    };
    let voters = Configuration::new(peers.keys().copied());
    let last_included = LogId::new(Term(header.term), raft_core::Index(header.index));
    let staging = data_dir::staging_path(&args.data_dir)?;
    data_dir::build(
        &staging,
        &FreshStart {
            state: &state,
            last_included,
            term: Term(header.term),
            vote: None,
            voters,
            cluster_id: Some(&cluster_id),
        },
    )?;
    data_dir::rename_synced(&staging, &args.data_dir)?;
    Ok(Restored {
        header,
        cluster_id,
        voters: peers.keys().map(|id| id.0).collect(),
    })
}
