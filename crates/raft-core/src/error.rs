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
#[derive(Debug, Error, Clone, PartialEq, Eq, Hash)]
pub enum ProposeError {
    /// This peer is not the leader; `leader` is the one it knows of, if any.
    #[error("not the leader ({})", leader_hint(*leader))]
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
    /// A leadership transfer names a peer that is not a voter of the configuration in
    /// effect (a learner, a peer on its way out, or no member at all).
    #[error("{0} is not a voter")]
    NotVoter(NodeId),
}

/// Why [`crate::Raft::propose_conf_change`] refused a membership change. Every refusal leaves
/// the configuration as it was.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfChangeError {
    /// This peer is not the leader; `leader` is the one it knows of, if any.
    #[error("not the leader ({})", leader_hint(*leader))]
    NotLeader {
        /// The current leader, when known.
        leader: Option<NodeId>,
    },
    /// A change is under way: the latest configuration entry is not committed yet, or the
    /// configuration is joint. One change at a time keeps every pair of consecutive
    /// configurations overlapping (thesis §4.3); retry once it completes.
    #[error("a configuration change is in progress")]
    InProgress,
    /// A leadership transfer is under way; changes are refused until it ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// The learner to promote trails the leader's log by more than
    /// `Config::promotion_lag_max` entries.
    #[error("learner has not caught up: match index {match_index}, last index {last_index}")]
    NotCaughtUp {
        /// The learner's match index, as the leader knows it.
        match_index: Index,
        /// The leader's last index.
        last_index: Index,
    },
    /// The voters after the change would lack a majority that answers: fewer than `needed`
    /// of them (this leader, if it stays a voter, and the peers that answered it within an
    /// election timeout) are reachable, so the cluster could elect no leader once the change
    /// is done. Retry once the missing peers answer (etcd's strict reconfiguration check).
    #[error(
        "the voters after the change would lack a majority that answers: {active} of them \
         answered within an election timeout, {needed} needed"
    )]
    TooFewActiveVoters {
        /// Voters of the new configuration that answered within an election timeout.
        active: usize,
        /// A majority of the new configuration's voters.
        needed: usize,
    },
    /// The peer to add is a member already (voter or learner).
    #[error("{0} is already a member")]
    AlreadyMember(NodeId),
    /// The peer to promote is a voter already.
    #[error("{0} is already a voter")]
    AlreadyVoter(NodeId),
    /// The peer to promote or remove is not a member.
    #[error("{0} is not a member")]
    NotMember(NodeId),
    /// Removing the peer would leave no voter.
    #[error("{0} is the last voter")]
    LastVoter(NodeId),
    /// `NodeId(0)` is never a peer.
    #[error("node id 0 is not a valid peer")]
    InvalidNode,
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

/// The leader hint of a "not the leader" error, in words.
fn leader_hint(leader: Option<NodeId>) -> String {
    match leader {
        Some(leader) => format!("the leader is {leader}"),
        None => "no leader known".to_owned(),
    }
}
