//! What can go wrong, typed: a request refused ([`NodeError`], with which refusals pass by
//! themselves), why a node stopped ([`StopReason`]) and why it could not start
//! ([`StartError`]).

use std::collections::BTreeMap;

use raft_core::{CompactError, ConfChangeError, InitError, NodeId, ProposeError};
use thiserror::Error;

#[cfg(doc)]
use super::{NodeConfig, RaftNode};

/// Why a request to the node failed. Every condition a caller must tell apart is a variant of
/// its own; [`NodeError::is_retryable`] says which ones pass by themselves.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// This peer is not the leader; the leader it knows of, if any, and its address. Send the
    /// request there (or, with no leader known, retry shortly: an election is under way).
    #[error("not the leader (leader: {leader:?} at {address:?})")]
    NotLeader {
        /// The known leader.
        leader: Option<NodeId>,
        /// The known leader's address, from [`NodeConfig::addresses`].
        address: Option<String>,
    },
    /// A leadership transfer is under way: the leader takes no proposals until it ends (a
    /// moment: the target is caught up and campaigns, or the attempt is abandoned after an
    /// election timeout). Retry, at the new leader if it changed.
    #[error("leadership transfer in progress; retry shortly")]
    TransferInProgress,
    /// The command is larger than the core accepts (`Config::proposal_bytes_max`); retrying
    /// the same command cannot succeed.
    #[error("command of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The command's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Too much is queued or in flight (the node's request queue, uncommitted bytes, pending
    /// reads); retry later.
    #[error("busy: too many requests in flight; retry later")]
    Busy,
    /// The read could not be confirmed (leadership changed or the request was lost); retry.
    #[error("read failed; retry")]
    ReadFailed,
    /// A leadership transfer named a peer that is not a voter.
    #[error("{0} is not a voter")]
    NotVoter(NodeId),
    /// The membership change was refused as it stands (one already in progress, a learner not
    /// caught up, an unknown member...); the core's reason says which.
    #[error("membership change refused: {0}")]
    Membership(ConfChangeError),
    /// The snapshot handed to [`RaftNode::snapshot`] was refused: its index is not applied yet
    /// (the apply task reports applied indexes a moment after handing them over) or already
    /// covered by a snapshot.
    #[error("snapshot refused: {0}")]
    Compact(CompactError),
    /// The node has stopped, and why.
    #[error("node stopped: {0}")]
    Stopped(StopReason),
    /// A command forwarded to the leader ([`RaftNode::start_command_or_forward`]) got no
    /// answer that can still come (the leader or term changed, or the answer was lost): its
    /// outcome is unknown. It may be in the log; if it is committed, it is applied as usual
    /// and arrives on the apply channel like any other. Not retryable as such: a retry may
    /// apply the command twice unless the command is idempotent or deduplicated.
    #[error("forwarded to the leader, no answer: outcome unknown (it may be in the log)")]
    ForwardUnanswered,
}

impl NodeError {
    /// Whether the same request may succeed if retried after a short wait, here or at the
    /// leader named in [`NodeError::NotLeader`]: not the leader, a transfer or a membership
    /// change under way, busy, a read not confirmed, a snapshot whose index is not reported
    /// applied yet. A service maps these to "try again" (HTTP 503), never to "bad request".
    pub fn is_retryable(&self) -> bool {
        match self {
            NodeError::NotLeader { .. }
            | NodeError::TransferInProgress
            | NodeError::Busy
            | NodeError::ReadFailed => true,
            NodeError::Membership(refusal) => matches!(
                refusal,
                ConfChangeError::NotLeader { .. }
                    | ConfChangeError::InProgress
                    | ConfChangeError::TransferInProgress
                    | ConfChangeError::NotCaughtUp { .. }
                    | ConfChangeError::TooFewActiveVoters { .. }
            ),
            NodeError::Compact(refusal) => matches!(refusal, CompactError::NotApplied { .. }),
            NodeError::TooLarge { .. }
            | NodeError::NotVoter(_)
            | NodeError::Stopped(_)
            | NodeError::ForwardUnanswered => false,
        }
    }

    /// The error for a core refusal, with the leader's address looked up in `addresses`.
    pub(super) fn from_propose(
        error: ProposeError,
        addresses: &BTreeMap<NodeId, String>,
    ) -> NodeError {
        match error {
            ProposeError::NotLeader { leader } => NodeError::NotLeader {
                leader,
                address: leader.and_then(|leader| addresses.get(&leader).cloned()),
            },
            ProposeError::Busy => NodeError::Busy,
            ProposeError::TransferInProgress => NodeError::TransferInProgress,
            ProposeError::TooLarge { size, limit } => NodeError::TooLarge { size, limit },
            ProposeError::NotVoter(peer) => NodeError::NotVoter(peer),
        }
    }
}

/// Why a node stopped. A stopped node refuses every request with [`NodeError::Stopped`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Its owner stopped it: [`RaftNode::shutdown`], or every handle dropped.
    #[error("shut down")]
    Shutdown,
    /// The storage failed (an I/O error, a full disk, corruption found on a read): the node
    /// stopped rather than acknowledge anything it could not make durable. The text is the
    /// storage's error, for the operator.
    #[error("storage failed: {0}")]
    StorageFailed(String),
    /// The service closed its apply channel: nobody applies what commits any more, so the
    /// node stopped rather than commit more.
    #[error("the service closed its apply channel")]
    ApplyChannelClosed,
    /// A leader asked this node to overwrite an entry it knows is committed: this node or
    /// that leader lost durable state, or a peer is not a correct Raft peer. The node stopped
    /// rather than take part in a divergence; its storage needs examining (or wiping and
    /// rejoining as a new member) before it serves again. The text names the term, the index
    /// and the sender.
    #[error("{0}")]
    SafetyViolation(String),
}

/// Why [`RaftNode::start`] could not start a node.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The core refused the settings or could not read its initial state from storage.
    #[error("cannot start the core: {0}")]
    Core(#[from] InitError),
    /// The storage thread could not be spawned.
    #[error("cannot start the storage thread: {0}")]
    StorageThread(std::io::Error),
}
