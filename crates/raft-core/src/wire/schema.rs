//! The protobuf schema of the wire format, derived in code with `prost`: one struct per
//! message, field tags fixed for good (a tag is never reused or renumbered).

use bytes::Bytes;

#[cfg(doc)]
use crate::{
    message::MessageBody,
    types::{Entry, LogId, SnapshotMeta},
};

/// One Raft message on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// The sender.
    #[prost(uint64, tag = "1")]
    pub from: u64,
    /// The receiver.
    #[prost(uint64, tag = "2")]
    pub to: u64,
    /// The sender's term.
    #[prost(uint64, tag = "3")]
    pub term: u64,
    /// What the message says.
    #[prost(
        oneof = "Body",
        tags = "4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18"
    )]
    pub body: Option<Body>,
}

/// The kinds of message, one per [`MessageBody`] variant except [`MessageBody::Commit`], which
/// travels as a [`Heartbeat`] with `commit_notice` set.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "4")]
    VoteRequest(VoteRequest),
    #[prost(message, tag = "5")]
    VoteResponse(VoteResponse),
    #[prost(message, tag = "6")]
    Append(Append),
    #[prost(message, tag = "7")]
    AppendResponse(AppendResponse),
    #[prost(message, tag = "8")]
    Heartbeat(Heartbeat),
    #[prost(message, tag = "9")]
    HeartbeatResponse(HeartbeatResponse),
    #[prost(message, tag = "10")]
    InstallSnapshot(InstallSnapshot),
    #[prost(message, tag = "11")]
    InstallSnapshotResponse(InstallSnapshotResponse),
    #[prost(message, tag = "12")]
    TimeoutNow(TimeoutNow),
    #[prost(message, tag = "13")]
    ReadIndexRequest(ReadIndexRequest),
    #[prost(message, tag = "14")]
    ReadIndexResponse(ReadIndexResponse),
    #[prost(message, tag = "15")]
    RecoveryProbe(RecoveryProbe),
    #[prost(message, tag = "16")]
    RecoveryProbeResponse(RecoveryProbeResponse),
    #[prost(message, tag = "17")]
    ForwardProposal(ForwardProposal),
    #[prost(message, tag = "18")]
    ForwardProposalResponse(ForwardProposalResponse),
}

/// A log entry's identity ([`LogId`]).
#[allow(missing_docs)]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct WireLogId {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
}

/// A log entry ([`Entry`]).
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireEntry {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// 0: a command, 1: a leader's no-op, 2: a configuration (data: the core's
    /// `Configuration::encode` form). An older peer refuses kind 2 as malformed, which the
    /// core treats as a lost message.
    #[prost(uint32, tag = "3")]
    pub kind: u32,
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// What a snapshot covers ([`SnapshotMeta`]): its last entry and the configuration as of it.
/// `outgoing` and `learners` came with membership changes (tags 3 and 4): a message from an
/// older peer has neither and decodes as a configuration of voters only. An older peer skips
/// them, so it would read a joint or learner configuration as its voters alone: membership
/// changes wait until every peer runs a build that knows them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireSnapshotMeta {
    /// The last entry the snapshot covers.
    #[prost(message, optional, tag = "1")]
    pub last_included: Option<WireLogId>,
    /// The voters (C_new while joint).
    #[prost(uint64, repeated, tag = "2")]
    pub voters: Vec<u64>,
    /// The outgoing voters (C_old) while the configuration is joint.
    #[prost(uint64, repeated, tag = "3")]
    pub outgoing: Vec<u64>,
    /// The learners.
    #[prost(uint64, repeated, tag = "4")]
    pub learners: Vec<u64>,
}

/// [`MessageBody::VoteRequest`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteRequest {
    #[prost(message, optional, tag = "1")]
    pub last_log: Option<WireLogId>,
    #[prost(bool, tag = "2")]
    pub pre_vote: bool,
    #[prost(bool, tag = "3")]
    pub leadership_transfer: bool,
}

/// [`MessageBody::VoteResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteResponse {
    #[prost(bool, tag = "1")]
    pub granted: bool,
    #[prost(bool, tag = "2")]
    pub pre_vote: bool,
}

/// [`MessageBody::Append`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Append {
    #[prost(message, optional, tag = "1")]
    pub prev: Option<WireLogId>,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<WireEntry>,
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

/// [`MessageBody::AppendResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppendResponse {
    #[prost(uint64, tag = "1")]
    pub index: u64,
    #[prost(bool, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "3")]
    pub hint: Option<WireLogId>,
}

/// [`MessageBody::Heartbeat`], or [`MessageBody::Commit`] when `commit_notice` is set.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    #[prost(uint64, tag = "1")]
    pub commit: u64,
    #[prost(uint64, tag = "2")]
    pub read_round: u64,
    /// A commit notice ([`MessageBody::Commit`]), which wants no answer. It travels as a
    /// heartbeat so that an older peer, which skips this field, takes it for one and answers
    /// it, rather than refusing a message kind it does not know.
    #[prost(bool, tag = "3")]
    pub commit_notice: bool,
}

/// [`MessageBody::HeartbeatResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatResponse {
    #[prost(uint64, tag = "1")]
    pub read_round: u64,
}

/// [`MessageBody::InstallSnapshot`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallSnapshot {
    #[prost(message, optional, tag = "1")]
    pub meta: Option<WireSnapshotMeta>,
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    #[prost(bool, tag = "4")]
    pub done: bool,
}

/// [`MessageBody::InstallSnapshotResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallSnapshotResponse {
    #[prost(message, optional, tag = "1")]
    pub last_included: Option<WireLogId>,
    #[prost(uint64, tag = "2")]
    pub next_offset: u64,
    #[prost(bool, tag = "3")]
    pub done: bool,
}

/// [`MessageBody::TimeoutNow`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeoutNow {}

/// [`MessageBody::ReadIndexRequest`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadIndexRequest {
    #[prost(uint64, tag = "1")]
    pub context: u64,
}

/// [`MessageBody::ReadIndexResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadIndexResponse {
    #[prost(uint64, tag = "1")]
    pub context: u64,
    #[prost(uint64, optional, tag = "2")]
    pub index: Option<u64>,
}

/// [`MessageBody::RecoveryProbe`]. An older peer decodes it as an envelope without a body
/// and drops it, which the recovering peer sees as an unanswered probe.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecoveryProbe {}

/// [`MessageBody::RecoveryProbeResponse`]; the answerer's term is the envelope's.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecoveryProbeResponse {
    #[prost(message, optional, tag = "1")]
    pub last_log: Option<WireLogId>,
}

/// [`MessageBody::ForwardProposal`]. An older peer decodes it as an envelope without a body
/// and drops it, which the follower sees as proposals without an answer.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardProposal {
    #[prost(uint64, tag = "1")]
    pub session: u64,
    #[prost(uint64, tag = "2")]
    pub first_id: u64,
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub proposals: Vec<Bytes>,
}

/// [`MessageBody::ForwardProposalResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardProposalResponse {
    #[prost(uint64, tag = "1")]
    pub session: u64,
    #[prost(uint64, tag = "2")]
    pub first_id: u64,
    #[prost(message, repeated, tag = "3")]
    pub outcomes: Vec<WireForwardOutcome>,
}

/// One outcome of a [`ForwardProposalResponse`]: `refusal` 0 with `placed` set, the entry's
/// id; otherwise the refusal ([`REFUSAL_NOT_LEADER`] and the others below) with its values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireForwardOutcome {
    /// The appended entry's id, when `refusal` is 0.
    #[prost(message, optional, tag = "1")]
    pub placed: Option<WireLogId>,
    /// 0: placed; otherwise which refusal.
    #[prost(uint32, tag = "2")]
    pub refusal: u32,
    /// Not the leader: the leader the refuser knows of, if any.
    #[prost(uint64, optional, tag = "3")]
    pub leader: Option<u64>,
    /// Too large: the proposal's size.
    #[prost(uint64, tag = "4")]
    pub size: u64,
    /// Too large: the limit.
    #[prost(uint64, tag = "5")]
    pub limit: u64,
    /// Not a voter: the peer named.
    #[prost(uint64, tag = "6")]
    pub node: u64,
}

/// [`WireForwardOutcome::refusal`] of `ProposeError::NotLeader`.
pub const REFUSAL_NOT_LEADER: u32 = 1;
/// [`WireForwardOutcome::refusal`] of `ProposeError::TooLarge`.
pub const REFUSAL_TOO_LARGE: u32 = 2;
/// [`WireForwardOutcome::refusal`] of `ProposeError::Busy`.
pub const REFUSAL_BUSY: u32 = 3;
/// [`WireForwardOutcome::refusal`] of `ProposeError::TransferInProgress`.
pub const REFUSAL_TRANSFER_IN_PROGRESS: u32 = 4;
/// [`WireForwardOutcome::refusal`] of `ProposeError::NotVoter`.
pub const REFUSAL_NOT_VOTER: u32 = 5;

/// [`WireEntry::kind`] of a command.
pub(super) const ENTRY_NORMAL: u32 = 0;
/// [`WireEntry::kind`] of a leader's no-op.
pub(super) const ENTRY_NOOP: u32 = 1;
/// [`WireEntry::kind`] of a configuration entry.
pub(super) const ENTRY_CONFIGURATION: u32 = 2;
