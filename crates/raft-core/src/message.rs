//! The messages peers exchange. These are the core's own types; a transport encodes them in
//! whatever wire format it likes.

use bytes::Bytes;

use crate::forward::ForwardOutcome;
use crate::types::{Entry, Index, LogId, NodeId, SnapshotMeta, Term};

/// A message between two peers, stamped with the sender's term.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's current term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// An opaque token a caller attaches to a read request; handed back with the read's index.
pub type ReadContext = u64;

/// The payload of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// RequestVote (§5.2), or a pre-vote probe (thesis §9.6) when `pre_vote` is set.
    VoteRequest {
        /// The candidate's last log entry, for the up-to-date check (§5.4.1).
        last_log: LogId,
        /// A pre-vote probe: asks "would you vote for me?" without anyone changing term.
        pre_vote: bool,
        /// Sent because the leader asked the candidate to take over (thesis §3.10); lets the
        /// request through the leader-lease check of receivers.
        leadership_transfer: bool,
    },
    /// Answer to a [`MessageBody::VoteRequest`].
    VoteResponse {
        /// Whether the vote (or pre-vote) is granted.
        granted: bool,
        /// Answers a pre-vote probe.
        pre_vote: bool,
    },
    /// AppendEntries (§5.3). An empty `entries` still carries the consistency check.
    Append {
        /// The entry immediately before `entries`.
        prev: LogId,
        /// Entries to append, in index order, starting at `prev.index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
    },
    /// Answer to [`MessageBody::Append`].
    AppendResponse {
        /// On success: the last index the follower now durably matches. On rejection: the
        /// `prev.index` of the rejected request.
        index: Index,
        /// Whether the consistency check passed.
        success: bool,
        /// On rejection, a hint for fast backtracking: the follower's last log entry whose
        /// index is at most the rejected `prev.index` and whose term is at most the rejected
        /// `prev.term` (or the follower's last entry, when its log is shorter).
        hint: LogId,
    },
    /// A heartbeat: asserts leadership and carries the commit index, bounded by what the
    /// follower is known to hold. `read_round` echoes ReadIndex confirmation rounds.
    Heartbeat {
        /// `min(leader commit, follower match)`: never beyond what the follower holds.
        commit: Index,
        /// The leader's current ReadIndex round, echoed back in the response.
        read_round: u64,
    },
    /// The leader's commit index for a follower that holds everything an append would carry:
    /// sent when the commit index moved and no append is due to carry it. Bounded by what the
    /// follower is known to hold, like a heartbeat's, and not answered: an answer would tell
    /// the leader nothing it does not know, and cost it a wake-up per write.
    Commit {
        /// `min(leader commit, follower match)`.
        commit: Index,
    },
    /// Answer to [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// The echoed read round.
        read_round: u64,
    },
    /// One chunk of a snapshot (§7). Chunks are sent in order; `offset` lets a receiver that
    /// lost a chunk ask for the transfer to resume where it has data.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Byte offset of `data` within the snapshot.
        offset: u64,
        /// The chunk.
        data: Bytes,
        /// This is the last chunk.
        done: bool,
    },
    /// Answer to [`MessageBody::InstallSnapshot`].
    InstallSnapshotResponse {
        /// The snapshot being transferred.
        last_included: LogId,
        /// The offset the receiver expects next; on `done`, the size of the snapshot.
        next_offset: u64,
        /// The snapshot has been received completely and will be installed (or is already
        /// covered by the receiver's log).
        done: bool,
    },
    /// Tells the recipient to start an election at once (leadership transfer, thesis §3.10).
    TimeoutNow,
    /// A follower forwards a ReadIndex request to its leader (thesis §6.4).
    ReadIndexRequest {
        /// The requester's token.
        context: ReadContext,
    },
    /// The leader's answer to a forwarded [`MessageBody::ReadIndexRequest`].
    ReadIndexResponse {
        /// The requester's token.
        context: ReadContext,
        /// The index the requester must have applied before serving the read; `None` if the
        /// leader could not serve it (it is stepping down or not yet ready).
        index: Option<Index>,
    },
    /// A peer that restarted having possibly lost durable writes asks another voter for its
    /// term (the message's) and last log entry, before it trusts its own term, vote or log
    /// (protocol-aware recovery; see [`crate::InitialState::possibly_lost_writes`]). The
    /// receiver answers whatever its role and changes nothing: no term, vote, role or timer.
    RecoveryProbe,
    /// Answer to [`MessageBody::RecoveryProbe`], stamped with the answerer's current term.
    RecoveryProbeResponse {
        /// The answerer's last log entry.
        last_log: LogId,
    },
    /// A follower hands proposals to the leader of its term ([`crate::Raft::propose_or_forward`]).
    /// The proposals carry the forward ids `first_id`, `first_id + 1`, ... of the sender's
    /// `session`; the leader handles each id at most once (see [`crate::ForwardId`]).
    ForwardProposal {
        /// The sender's incarnation: its forward ids count from 1 in each.
        session: u64,
        /// The forward id of the first proposal; the others follow consecutively.
        first_id: u64,
        /// The commands, in id order (at least one, at most `Config::forward_batch_max`).
        proposals: Vec<Bytes>,
    },
    /// The leader's answer to a [`MessageBody::ForwardProposal`]: per proposal, in order, the
    /// id of the entry it appended, or why it refused it (then it is not in the log).
    ForwardProposalResponse {
        /// The session of the batch answered.
        session: u64,
        /// The forward id of the batch's first proposal.
        first_id: u64,
        /// One outcome per proposal of the batch.
        outcomes: Vec<ForwardOutcome>,
    },
}

/// What a message is to a transport: a request wanting an answer, the answer to one, or a
/// notice that wants none. A request/response transport (gRPC unary, HTTP) can carry answers
/// on the reply of the call that brought the request, and needs no call back for them.
///
/// Answers are not one for one, and a transport must not wait for one:
/// - an answer comes out of a later [`crate::Raft::ready`] than the request was stepped in
///   when the answering peer must first make something durable (a vote, appended entries), and
///   some take a round of their own (a forwarded read waits for the leader's heartbeat round);
/// - a request may get no answer: a stale one is dropped, and appends whose entries become
///   durable in the same write are acknowledged together, by one
///   [`MessageBody::AppendResponse`] for the highest index;
/// - a peer at a higher term answers a stale message of the leader, notices included, with an
///   [`MessageBody::AppendResponse`] that tells it about the newer term.
///
/// An answer is complete in itself (it names the term, the indexes or the token it concerns),
/// so a transport may send it on the reply of any pending call from that peer, or as a call of
/// its own when none is pending; the core never relies on which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// The sender expects an answer (in the normal course).
    Request,
    /// Answers a request from the recipient.
    Response,
    /// Wants no answer.
    Notice,
}

/// The largest term or index an honest peer can produce in practice; larger values (which would
/// overflow arithmetic or exhaust the term space) mark a message as invalid.
pub const TERM_OR_INDEX_MAX: u64 = u64::MAX >> 1;

impl Message {
    /// Whether every term and index the message carries is within [`TERM_OR_INDEX_MAX`].
    pub fn is_within_limits(&self) -> bool {
        let ok = |value: u64| value <= TERM_OR_INDEX_MAX;
        let id_ok = |id: &LogId| ok(id.term.0) && ok(id.index.0);
        ok(self.term.0)
            && match &self.body {
                MessageBody::VoteRequest { last_log, .. } => id_ok(last_log),
                MessageBody::Append {
                    prev,
                    entries,
                    commit,
                } => id_ok(prev) && ok(commit.0) && entries.iter().all(|entry| id_ok(&entry.id)),
                MessageBody::AppendResponse { index, hint, .. } => ok(index.0) && id_ok(hint),
                MessageBody::Heartbeat { commit, .. } | MessageBody::Commit { commit } => {
                    ok(commit.0)
                }
                MessageBody::InstallSnapshot { meta, .. } => id_ok(&meta.last_included),
                MessageBody::InstallSnapshotResponse { last_included, .. } => id_ok(last_included),
                MessageBody::ReadIndexResponse { index, .. } => index.is_none_or(|i| ok(i.0)),
                MessageBody::RecoveryProbeResponse { last_log } => id_ok(last_log),
                MessageBody::ForwardProposalResponse { outcomes, .. } => outcomes
                    .iter()
                    .all(|outcome| outcome.as_ref().is_ok_and(id_ok) || outcome.is_err()),
                MessageBody::ForwardProposal { .. }
                | MessageBody::VoteResponse { .. }
                | MessageBody::HeartbeatResponse { .. }
                | MessageBody::TimeoutNow
                | MessageBody::ReadIndexRequest { .. }
                | MessageBody::RecoveryProbe => true,
            }
    }
}

impl MessageBody {
    /// Whether the message is a request, a response or a notice (see [`MessageKind`]):
    ///
    /// | body | kind | answered by / answers |
    /// |---|---|---|
    /// | [`VoteRequest`](MessageBody::VoteRequest) (vote or pre-vote) | request | [`VoteResponse`](MessageBody::VoteResponse) with the same `pre_vote` |
    /// | [`VoteResponse`](MessageBody::VoteResponse) | response | a [`VoteRequest`](MessageBody::VoteRequest) |
    /// | [`Append`](MessageBody::Append) | request | [`AppendResponse`](MessageBody::AppendResponse) |
    /// | [`AppendResponse`](MessageBody::AppendResponse) | response | an [`Append`](MessageBody::Append) (or tells a stale leader of a newer term) |
    /// | [`Heartbeat`](MessageBody::Heartbeat) | request | [`HeartbeatResponse`](MessageBody::HeartbeatResponse) |
    /// | [`HeartbeatResponse`](MessageBody::HeartbeatResponse) | response | a [`Heartbeat`](MessageBody::Heartbeat) |
    /// | [`Commit`](MessageBody::Commit) (on the wire: a heartbeat flagged `commit_notice`) | notice | — |
    /// | [`InstallSnapshot`](MessageBody::InstallSnapshot) | request | [`InstallSnapshotResponse`](MessageBody::InstallSnapshotResponse) |
    /// | [`InstallSnapshotResponse`](MessageBody::InstallSnapshotResponse) | response | an [`InstallSnapshot`](MessageBody::InstallSnapshot) chunk |
    /// | [`TimeoutNow`](MessageBody::TimeoutNow) | notice | — (the recipient campaigns) |
    /// | [`ReadIndexRequest`](MessageBody::ReadIndexRequest) | request | [`ReadIndexResponse`](MessageBody::ReadIndexResponse) |
    /// | [`ReadIndexResponse`](MessageBody::ReadIndexResponse) | response | a [`ReadIndexRequest`](MessageBody::ReadIndexRequest) |
    /// | [`RecoveryProbe`](MessageBody::RecoveryProbe) | request | [`RecoveryProbeResponse`](MessageBody::RecoveryProbeResponse) |
    /// | [`RecoveryProbeResponse`](MessageBody::RecoveryProbeResponse) | response | a [`RecoveryProbe`](MessageBody::RecoveryProbe) |
    /// | [`ForwardProposal`](MessageBody::ForwardProposal) | request | [`ForwardProposalResponse`](MessageBody::ForwardProposalResponse) (none for a duplicate or late batch) |
    /// | [`ForwardProposalResponse`](MessageBody::ForwardProposalResponse) | response | a [`ForwardProposal`](MessageBody::ForwardProposal) |
    pub fn kind(&self) -> MessageKind {
        match self {
            MessageBody::VoteRequest { .. }
            | MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::RecoveryProbe
            | MessageBody::ForwardProposal { .. } => MessageKind::Request,
            MessageBody::VoteResponse { .. }
            | MessageBody::AppendResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::InstallSnapshotResponse { .. }
            | MessageBody::ReadIndexResponse { .. }
            | MessageBody::RecoveryProbeResponse { .. }
            | MessageBody::ForwardProposalResponse { .. } => MessageKind::Response,
            MessageBody::Commit { .. } | MessageBody::TimeoutNow => MessageKind::Notice,
        }
    }

    /// A short name for logs and per-kind counters.
    pub fn kind_name(&self) -> &'static str {
        match self {
            MessageBody::VoteRequest { pre_vote: true, .. } => "PreVote",
            MessageBody::VoteRequest { .. } => "Vote",
            MessageBody::VoteResponse { pre_vote: true, .. } => "PreVoteResp",
            MessageBody::VoteResponse { .. } => "VoteResp",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { .. } => "AppendResp",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::Commit { .. } => "Commit",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResp",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResp",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndexRequest { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResp",
            MessageBody::RecoveryProbe => "RecoveryProbe",
            MessageBody::RecoveryProbeResponse { .. } => "RecoveryProbeResp",
            MessageBody::ForwardProposal { .. } => "ForwardProposal",
            MessageBody::ForwardProposalResponse { .. } => "ForwardProposalResp",
        }
    }

    /// Approximate encoded size, for byte accounting in tests and simulators.
    pub fn size_bytes(&self) -> u64 {
        const HEADER_BYTES: u64 = 32;
        HEADER_BYTES
            + match self {
                MessageBody::Append { entries, .. } => {
                    entries.iter().map(Entry::size_bytes).sum::<u64>()
                }
                MessageBody::InstallSnapshot { data, meta, .. } => {
                    data.len() as u64 + 8 * meta.configuration.members().count() as u64
                }
                MessageBody::ForwardProposal { proposals, .. } => proposals
                    .iter()
                    .map(|data| data.len() as u64 + 2)
                    .sum::<u64>(),
                MessageBody::ForwardProposalResponse { outcomes, .. } => 16 * outcomes.len() as u64,
                _ => 0,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every body, with the kind the table of [`MessageBody::kind`] gives it.
    #[test]
    fn every_body_has_the_kind_its_documentation_gives() {
        let id = LogId::default();
        let meta = SnapshotMeta::default();
        let table = [
            (
                MessageBody::VoteRequest {
                    last_log: id,
                    pre_vote: false,
                    leadership_transfer: false,
                },
                MessageKind::Request,
            ),
            (
                MessageBody::VoteRequest {
                    last_log: id,
                    pre_vote: true,
                    leadership_transfer: false,
                },
                MessageKind::Request,
            ),
            (
                MessageBody::VoteResponse {
                    granted: true,
                    pre_vote: true,
                },
                MessageKind::Response,
            ),
            (
                MessageBody::Append {
                    prev: id,
                    entries: Vec::new(),
                    commit: Index(0),
                },
                MessageKind::Request,
            ),
            (
                MessageBody::AppendResponse {
                    index: Index(0),
                    success: true,
                    hint: id,
                },
                MessageKind::Response,
            ),
            (
                MessageBody::Heartbeat {
                    commit: Index(0),
                    read_round: 0,
                },
                MessageKind::Request,
            ),
            (
                MessageBody::HeartbeatResponse { read_round: 0 },
                MessageKind::Response,
            ),
            (
                MessageBody::Commit { commit: Index(0) },
                MessageKind::Notice,
            ),
            (
                MessageBody::InstallSnapshot {
                    meta,
                    offset: 0,
                    data: Bytes::new(),
                    done: true,
                },
                MessageKind::Request,
            ),
            (
                MessageBody::InstallSnapshotResponse {
                    last_included: id,
                    next_offset: 0,
                    done: true,
                },
                MessageKind::Response,
            ),
            (MessageBody::TimeoutNow, MessageKind::Notice),
            (
                MessageBody::ReadIndexRequest { context: 0 },
                MessageKind::Request,
            ),
            (
                MessageBody::ReadIndexResponse {
                    context: 0,
                    index: None,
                },
                MessageKind::Response,
            ),
            (MessageBody::RecoveryProbe, MessageKind::Request),
            (
                MessageBody::RecoveryProbeResponse { last_log: id },
                MessageKind::Response,
            ),
            (
                MessageBody::ForwardProposal {
                    session: 1,
                    first_id: 1,
                    proposals: vec![Bytes::new()],
                },
                MessageKind::Request,
            ),
            (
                MessageBody::ForwardProposalResponse {
                    session: 1,
                    first_id: 1,
                    outcomes: vec![Ok(id)],
                },
                MessageKind::Response,
            ),
        ];
        for (body, kind) in table {
            assert_eq!(body.kind(), kind, "{}", body.kind_name());
        }
    }
}
