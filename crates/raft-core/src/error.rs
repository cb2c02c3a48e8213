//! Errors a caller can match on. Broken invariants are bugs and panic; storage failures are
//! fatal and returned; operational refusals are the variants below.

use thiserror::Error;

use crate::storage::StorageError;
use crate::types::{Index, NodeId};

/// A configuration that cannot work.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Why a peer could not be created.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InitError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Storage could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a proposal, read or transfer request was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This peer is not the leader; `leader` is the one it knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, when known.
        leader: Option<NodeId>,
    },
    /// The proposal is larger than `proposal_bytes_max`.
    #[error("proposal of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The proposal's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Too much is in flight already; retry later.
    #[error("busy: too many uncommitted proposals or pending reads")]
    Busy,
    /// A leadership transfer is under way; proposals are refused until it ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// The request itself is invalid (for example, a transfer to an unknown peer).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Why [`crate::Raft::compact`] refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CompactError {
    /// The index is not yet applied (a snapshot must only cover applied state).
    #[error("index {index} is beyond the applied index {applied}")]
    NotApplied {
        /// The requested index.
        index: Index,
        /// The applied index.
        applied: Index,
    },
    /// The index is already covered by the current snapshot.
    #[error("index {index} is already compacted (snapshot at {snapshot})")]
    AlreadyCompacted {
        /// The requested index.
        index: Index,
        /// The current snapshot index.
        snapshot: Index,
    },
    /// Storage could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
