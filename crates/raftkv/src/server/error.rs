//! Why a request could not be served: [`ServeError`], and which refusals pass by themselves
//! ([`ServeError::is_transient`]), from the node's refusals ([`NodeError`]) to the service's.

use std::time::Duration;

use raft_core::{ConfChangeError, NodeId};
use raft_node::{NodeError, StopReason};
use thiserror::Error;

/// Why a request could not be served. Every condition a caller must tell apart is a variant
/// of its own; [`ServeError::is_transient`] says which pass by themselves, so that the same
/// request, retried shortly (at the leader, for [`ServeError::NotLeader`]), may succeed.
#[derive(Debug, Error)]
pub enum ServeError {
    /// This node is not the leader, and the request must be served by the leader, `leader`.
    #[error("this node is not the leader (node {} is)", leader.0)]
    NotLeader {
        /// The leader this node knows of.
        leader: NodeId,
    },
    /// No leader is known right now: an election is under way, or this node is cut off from
    /// a majority.
    #[error("no leader is known right now; retry shortly")]
    NoLeader,
    /// The leader is handing leadership over, and takes no proposals or membership changes
    /// until the transfer ends (within an election timeout).
    #[error("leadership transfer in progress; retry shortly")]
    TransferInProgress,
    /// This node leads but has not taken the leases over yet: it decides about leases only
    /// once it applied its own first entry of the term (and so every earlier one), within a
    /// moment of its election.
    #[error("the new leader has not taken the leases over yet; retry shortly")]
    LessorNotPromoted,
    /// Too much is queued or in flight on the node.
    #[error("busy: too many requests in flight; retry shortly")]
    Busy,
    /// The read could not be confirmed with the leader (leadership changed meanwhile).
    #[error("the read could not be confirmed with the leader; retry")]
    ReadNotConfirmed,
    /// This node confirmed a read at `index` but did not apply that far in time.
    #[error("this node did not apply through index {index} within {within:?}; retry")]
    ApplyBehind {
        /// The read's index.
        index: u64,
        /// How long it waited.
        within: Duration,
    },
    /// The command is larger than the node accepts; retrying it cannot succeed.
    #[error("the command of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The encoded command's size, in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The write's entry lost its place to another leader's entry: it was not applied.
    #[error("not committed: leadership changed before the write was committed; retry")]
    NotCommitted,
    /// A snapshot from the leader replaced this node's state before the write was seen
    /// applied: it may or may not have been.
    #[error(
        "a snapshot replaced this node's state before the write was seen applied; the outcome \
         is unknown (retry with the same client-id and request-seq to be safe)"
    )]
    ReplacedBySnapshot,
    /// The write was not seen applied within the request timeout: it may or may not be.
    #[error(
        "not applied within {within:?}; the outcome is unknown (retry with the same client-id \
         and request-seq to be safe)"
    )]
    TimedOut {
        /// The request timeout.
        within: Duration,
    },
    /// A write this node forwarded to the leader over Raft got no answer (the leader went
    /// away): it may or may not be applied.
    #[error(
        "the leader did not answer the forwarded write; the outcome is unknown (retry with the \
         same client-id and request-seq to be safe)"
    )]
    ForwardUnanswered,
    /// A leadership transfer named a node that is not a voter.
    #[error("node {} is not a voter", .0 .0)]
    NotVoter(NodeId),
    /// The membership change was refused, for the core's reason (the transient ones, a
    /// change or a transfer in progress and a learner not caught up, included).
    #[error("membership change refused: {0}")]
    Membership(ConfChangeError),
    /// The node stopped, and why.
    #[error("node stopped: {0}")]
    Stopped(StopReason),
    /// The apply loop ended (the state could not go on), so nothing is applied any more.
    #[error("this node stopped applying the log")]
    ApplyLoopEnded,
    /// Any other refusal of the node (none on the service's paths today); typed still, and
    /// transient as [`NodeError::is_retryable`] says.
    #[error(transparent)]
    Node(NodeError),
}

impl ServeError {
    /// Whether the same request may succeed if retried shortly (at the leader, for
    /// [`ServeError::NotLeader`]): true for everything but a command too large, a transfer to
    /// a non-voter, a membership change refused for good, and refusals of the node that are not
    /// retryable. A service answers these "try again" (HTTP 503), never "bad request".
    pub fn is_transient(&self) -> bool {
        match self {
            ServeError::NotLeader { .. }
            | ServeError::NoLeader
            | ServeError::TransferInProgress
            | ServeError::LessorNotPromoted
            | ServeError::Busy
            | ServeError::ReadNotConfirmed
            | ServeError::ApplyBehind { .. }
            | ServeError::NotCommitted
            | ServeError::ReplacedBySnapshot
            | ServeError::TimedOut { .. }
            | ServeError::ForwardUnanswered
            // Another node can serve the request.
            | ServeError::Stopped(_)
            | ServeError::ApplyLoopEnded => true,
            ServeError::Membership(refusal) => membership_refusal_is_transient(refusal),
            ServeError::TooLarge { .. } | ServeError::NotVoter(_) => false,
            ServeError::Node(error) => error.is_retryable(),
        }
    }

    /// Whether this is a moment of a leadership change, which passes within an election
    /// timeout or two: a transfer, a read that leadership changed under, or no leader known
    /// yet while an election is under way (`electing`), or right after one of the others.
    pub(super) fn is_leadership_changing(&self, electing: bool) -> bool {
        match self {
            ServeError::TransferInProgress
            | ServeError::ReadNotConfirmed
            | ServeError::LessorNotPromoted
            | ServeError::Membership(ConfChangeError::TransferInProgress) => true,
            ServeError::NoLeader => electing,
            _ => false,
        }
    }
}

/// Whether the core's refusal of a membership change passes by itself: a change or a transfer
/// in progress, a learner that has not caught up yet, new voters that do not answer yet, or not
/// the leader.
pub fn membership_refusal_is_transient(refusal: &ConfChangeError) -> bool {
    match refusal {
        ConfChangeError::NotLeader { .. }
        | ConfChangeError::InProgress
        | ConfChangeError::TransferInProgress
        | ConfChangeError::NotCaughtUp { .. }
        | ConfChangeError::TooFewActiveVoters { .. } => true,
        ConfChangeError::AlreadyMember(_)
        | ConfChangeError::AlreadyVoter(_)
        | ConfChangeError::NotMember(_)
        | ConfChangeError::LastVoter(_)
        | ConfChangeError::InvalidNode => false,
    }
}

impl From<NodeError> for ServeError {
    fn from(error: NodeError) -> ServeError {
        match error {
            NodeError::NotLeader {
                leader: Some(leader),
                ..
            }
            | NodeError::Membership(ConfChangeError::NotLeader {
                leader: Some(leader),
            }) => ServeError::NotLeader { leader },
            NodeError::NotLeader { leader: None, .. }
            | NodeError::Membership(ConfChangeError::NotLeader { leader: None }) => {
                ServeError::NoLeader
            }
            NodeError::TransferInProgress => ServeError::TransferInProgress,
            NodeError::TooLarge { size, limit } => ServeError::TooLarge { size, limit },
            NodeError::Busy => ServeError::Busy,
            NodeError::ReadFailed => ServeError::ReadNotConfirmed,
            NodeError::NotVoter(node) => ServeError::NotVoter(node),
            NodeError::Membership(refusal) => ServeError::Membership(refusal),
            NodeError::Stopped(reason) => ServeError::Stopped(reason),
            NodeError::ForwardUnanswered => ServeError::ForwardUnanswered,
            other => ServeError::Node(other),
        }
    }
}
