//! Conversions between the core's types and the wire schema: infallible towards the wire,
//! checked (structure only: a body is there, every log id is, an entry kind is known) from it.

use std::collections::BTreeSet;

use super::schema::*;
use super::DecodeError;
use crate::error::ProposeError;
use crate::forward::ForwardOutcome;
use crate::message::{Message, MessageBody};
use crate::types::{Configuration, Entry, EntryKind, Index, LogId, NodeId, SnapshotMeta, Term};

fn node_ids(set: &BTreeSet<NodeId>) -> Vec<u64> {
    set.iter().map(|node| node.0).collect()
}

fn wire_log_id(id: LogId) -> Option<WireLogId> {
    Some(WireLogId {
        term: id.term.0,
        index: id.index.0,
    })
}

fn log_id(id: Option<WireLogId>, what: &'static str) -> Result<LogId, DecodeError> {
    let id = id.ok_or(DecodeError::Malformed {
        what,
        reason: "log id missing",
    })?;
    Ok(LogId::new(Term(id.term), Index(id.index)))
}

impl From<&Entry> for WireEntry {
    fn from(entry: &Entry) -> WireEntry {
        WireEntry {
            term: entry.id.term.0,
            index: entry.id.index.0,
            kind: match entry.kind {
                EntryKind::Normal => ENTRY_NORMAL,
                EntryKind::Noop => ENTRY_NOOP,
                EntryKind::Configuration => ENTRY_CONFIGURATION,
            },
            data: entry.data.clone(),
        }
    }
}

impl TryFrom<WireEntry> for Entry {
    type Error = DecodeError;

    fn try_from(entry: WireEntry) -> Result<Entry, DecodeError> {
        let kind = match entry.kind {
            ENTRY_NORMAL => EntryKind::Normal,
            ENTRY_NOOP => EntryKind::Noop,
            ENTRY_CONFIGURATION => EntryKind::Configuration,
            _ => {
                return Err(DecodeError::Malformed {
                    what: "entry",
                    reason: "unknown entry kind",
                })
            }
        };
        Ok(Entry {
            id: LogId::new(Term(entry.term), Index(entry.index)),
            kind,
            data: entry.data,
        })
    }
}

impl From<&SnapshotMeta> for WireSnapshotMeta {
    fn from(meta: &SnapshotMeta) -> WireSnapshotMeta {
        WireSnapshotMeta {
            last_included: wire_log_id(meta.last_included),
            voters: node_ids(&meta.configuration.voters),
            outgoing: node_ids(&meta.configuration.outgoing),
            learners: node_ids(&meta.configuration.learners),
        }
    }
}

impl TryFrom<WireSnapshotMeta> for SnapshotMeta {
    type Error = DecodeError;

    fn try_from(meta: WireSnapshotMeta) -> Result<SnapshotMeta, DecodeError> {
        Ok(SnapshotMeta {
            last_included: log_id(meta.last_included, "snapshot metadata")?,
            configuration: Configuration {
                voters: meta.voters.into_iter().map(NodeId).collect(),
                outgoing: meta.outgoing.into_iter().map(NodeId).collect(),
                learners: meta.learners.into_iter().map(NodeId).collect(),
            },
        })
    }
}

fn wire_forward_outcome(outcome: &ForwardOutcome) -> WireForwardOutcome {
    let refused = |refusal| WireForwardOutcome {
        refusal,
        ..WireForwardOutcome::default()
    };
    match outcome {
        Ok(id) => WireForwardOutcome {
            placed: wire_log_id(*id),
            ..WireForwardOutcome::default()
        },
        Err(ProposeError::NotLeader { leader }) => WireForwardOutcome {
            leader: leader.map(|leader| leader.0),
            ..refused(REFUSAL_NOT_LEADER)
        },
        Err(ProposeError::TooLarge { size, limit }) => WireForwardOutcome {
            size: *size,
            limit: *limit,
            ..refused(REFUSAL_TOO_LARGE)
        },
        Err(ProposeError::Busy) => refused(REFUSAL_BUSY),
        Err(ProposeError::TransferInProgress) => refused(REFUSAL_TRANSFER_IN_PROGRESS),
        Err(ProposeError::NotVoter(node)) => WireForwardOutcome {
            node: node.0,
            ..refused(REFUSAL_NOT_VOTER)
        },
    }
}

fn forward_outcome(outcome: WireForwardOutcome) -> Result<ForwardOutcome, DecodeError> {
    let malformed = |reason| DecodeError::Malformed {
        what: "forwarded proposal outcome",
        reason,
    };
    Ok(match outcome.refusal {
        0 => Ok(log_id(outcome.placed, "forwarded proposal outcome")?),
        REFUSAL_NOT_LEADER => Err(ProposeError::NotLeader {
            leader: outcome.leader.map(NodeId),
        }),
        REFUSAL_TOO_LARGE => Err(ProposeError::TooLarge {
            size: outcome.size,
            limit: outcome.limit,
        }),
        REFUSAL_BUSY => Err(ProposeError::Busy),
        REFUSAL_TRANSFER_IN_PROGRESS => Err(ProposeError::TransferInProgress),
        REFUSAL_NOT_VOTER => Err(ProposeError::NotVoter(NodeId(outcome.node))),
        _ => return Err(malformed("unknown refusal")),
    })
}

impl From<&Message> for Envelope {
    fn from(message: &Message) -> Envelope {
        let body = match &message.body {
            MessageBody::VoteRequest {
                last_log,
                pre_vote,
                leadership_transfer,
            } => Body::VoteRequest(VoteRequest {
                last_log: wire_log_id(*last_log),
                pre_vote: *pre_vote,
                leadership_transfer: *leadership_transfer,
            }),
            MessageBody::VoteResponse { granted, pre_vote } => Body::VoteResponse(VoteResponse {
                granted: *granted,
                pre_vote: *pre_vote,
            }),
            MessageBody::Append {
                prev,
                entries,
                commit,
            } => Body::Append(Append {
                prev: wire_log_id(*prev),
                entries: entries.iter().map(WireEntry::from).collect(),
                commit: commit.0,
            }),
            MessageBody::AppendResponse {
                index,
                success,
                hint,
            } => Body::AppendResponse(AppendResponse {
                index: index.0,
                success: *success,
                hint: wire_log_id(*hint),
            }),
            MessageBody::Heartbeat { commit, read_round } => Body::Heartbeat(Heartbeat {
                commit: commit.0,
                read_round: *read_round,
                commit_notice: false,
            }),
            MessageBody::HeartbeatResponse { read_round } => {
                Body::HeartbeatResponse(HeartbeatResponse {
                    read_round: *read_round,
                })
            }
            MessageBody::Commit { commit } => Body::Heartbeat(Heartbeat {
                commit: commit.0,
                read_round: 0,
                commit_notice: true,
            }),
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => Body::InstallSnapshot(InstallSnapshot {
                meta: Some(WireSnapshotMeta::from(meta)),
                offset: *offset,
                data: data.clone(),
                done: *done,
            }),
            MessageBody::InstallSnapshotResponse {
                last_included,
                next_offset,
                done,
            } => Body::InstallSnapshotResponse(InstallSnapshotResponse {
                last_included: wire_log_id(*last_included),
                next_offset: *next_offset,
                done: *done,
            }),
            MessageBody::TimeoutNow => Body::TimeoutNow(TimeoutNow {}),
            MessageBody::ReadIndexRequest { context } => {
                Body::ReadIndexRequest(ReadIndexRequest { context: *context })
            }
            MessageBody::ReadIndexResponse { context, index } => {
                Body::ReadIndexResponse(ReadIndexResponse {
                    context: *context,
                    index: index.map(|index| index.0),
                })
            }
            MessageBody::RecoveryProbe => Body::RecoveryProbe(RecoveryProbe {}),
            MessageBody::RecoveryProbeResponse { last_log } => {
                Body::RecoveryProbeResponse(RecoveryProbeResponse {
                    last_log: wire_log_id(*last_log),
                })
            }
            MessageBody::ForwardProposal {
                session,
                first_id,
                proposals,
            } => Body::ForwardProposal(ForwardProposal {
                session: *session,
                first_id: *first_id,
                proposals: proposals.clone(),
            }),
            MessageBody::ForwardProposalResponse {
                session,
                first_id,
                outcomes,
            } => Body::ForwardProposalResponse(ForwardProposalResponse {
                session: *session,
                first_id: *first_id,
                outcomes: outcomes.iter().map(wire_forward_outcome).collect(),
            }),
        };
        Envelope {
            from: message.from.0,
            to: message.to.0,
            term: message.term.0,
            body: Some(body),
        }
    }
}

impl TryFrom<Envelope> for Message {
    type Error = DecodeError;

    fn try_from(envelope: Envelope) -> Result<Message, DecodeError> {
        let body = match envelope.body.ok_or(DecodeError::Malformed {
            what: "envelope",
            reason: "no body (a message kind this build does not know?)",
        })? {
            Body::VoteRequest(request) => MessageBody::VoteRequest {
                last_log: log_id(request.last_log, "vote request")?,
                pre_vote: request.pre_vote,
                leadership_transfer: request.leadership_transfer,
            },
            Body::VoteResponse(response) => MessageBody::VoteResponse {
                granted: response.granted,
                pre_vote: response.pre_vote,
            },
            Body::Append(append) => MessageBody::Append {
                prev: log_id(append.prev, "append")?,
                entries: append
                    .entries
                    .into_iter()
                    .map(Entry::try_from)
                    .collect::<Result<_, _>>()?,
                commit: Index(append.commit),
            },
            Body::AppendResponse(response) => MessageBody::AppendResponse {
                index: Index(response.index),
                success: response.success,
                hint: log_id(response.hint, "append response")?,
            },
            Body::Heartbeat(heartbeat) if heartbeat.commit_notice => MessageBody::Commit {
                commit: Index(heartbeat.commit),
            },
            Body::Heartbeat(heartbeat) => MessageBody::Heartbeat {
                commit: Index(heartbeat.commit),
                read_round: heartbeat.read_round,
            },
            Body::HeartbeatResponse(response) => MessageBody::HeartbeatResponse {
                read_round: response.read_round,
            },
            Body::InstallSnapshot(install) => MessageBody::InstallSnapshot {
                meta: SnapshotMeta::try_from(install.meta.ok_or(DecodeError::Malformed {
                    what: "install snapshot",
                    reason: "metadata missing",
                })?)?,
                offset: install.offset,
                data: install.data,
                done: install.done,
            },
            Body::InstallSnapshotResponse(response) => MessageBody::InstallSnapshotResponse {
                last_included: log_id(response.last_included, "install snapshot response")?,
                next_offset: response.next_offset,
                done: response.done,
            },
            Body::TimeoutNow(TimeoutNow {}) => MessageBody::TimeoutNow,
            Body::ReadIndexRequest(request) => MessageBody::ReadIndexRequest {
                context: request.context,
            },
            Body::ReadIndexResponse(response) => MessageBody::ReadIndexResponse {
                context: response.context,
                index: response.index.map(Index),
            },
            Body::RecoveryProbe(RecoveryProbe {}) => MessageBody::RecoveryProbe,
            Body::RecoveryProbeResponse(response) => MessageBody::RecoveryProbeResponse {
                last_log: log_id(response.last_log, "recovery probe response")?,
            },
            Body::ForwardProposal(forward) => MessageBody::ForwardProposal {
                session: forward.session,
                first_id: forward.first_id,
                proposals: forward.proposals,
            },
            Body::ForwardProposalResponse(response) => MessageBody::ForwardProposalResponse {
                session: response.session,
                first_id: response.first_id,
                outcomes: response
                    .outcomes
                    .into_iter()
                    .map(forward_outcome)
                    .collect::<Result<_, _>>()?,
            },
        };
        Ok(Message {
            from: NodeId(envelope.from),
            to: NodeId(envelope.to),
            term: Term(envelope.term),
            body,
        })
    }
}
