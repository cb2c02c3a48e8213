//! Sample messages and entries for the tests of codecs and transports (feature `testing`), and,
//! with feature `proptest`, strategies that generate any message.
//!
//! ```text
//!  sample_messages()  every message kind (and both answers of a forwarded read, every outcome
//!                     of a forwarded proposal), 1->2 in term 3
//!  sample_entries()   one entry of each kind, as the sample append carries them
//!  arb_message()      any message: every kind, any terms and indexes, joint configurations
//! ```
//!
//! The samples are the messages whose encodings raft-core's `wire` tests pin byte for byte,
//! so a transport that carries them through its own frames tests exactly what is pinned.

use bytes::Bytes;

use crate::error::ProposeError;
use crate::message::{Message, MessageBody};
use crate::types::{Configuration, Entry, EntryKind, Index, LogId, NodeId, SnapshotMeta, Term};

/// The sender of every sample message.
pub const SAMPLE_FROM: NodeId = NodeId(1);
/// The receiver of every sample message.
pub const SAMPLE_TO: NodeId = NodeId(2);
/// The term of every sample message.
pub const SAMPLE_TERM: Term = Term(3);

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), Index(index))
}

/// A joint configuration with a learner: voters `{1,2,4}`, outgoing `{1,2,3}`, learners `{5}`.
pub fn joint_configuration() -> Configuration {
    Configuration {
        voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
        outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
        learners: [NodeId(5)].into_iter().collect(),
    }
}

/// One entry of each kind, at indexes 5, 6 and 7 of term 3: a no-op, a command
/// (`put x 1`) and a configuration (voters `{1,2}`).
pub fn sample_entries() -> Vec<Entry> {
    vec![
        Entry {
            id: id(3, 5),
            kind: EntryKind::Noop,
            data: Bytes::new(),
        },
        Entry {
            id: id(3, 6),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"put x 1"),
        },
        Entry {
            id: id(3, 7),
            kind: EntryKind::Configuration,
            data: Configuration::new([NodeId(1), NodeId(2)]).encode(),
        },
    ]
}

/// One body of every kind, in the order of [`MessageBody`]'s variants (a forwarded proposal's
/// answer with one outcome of every kind), and a refused [`MessageBody::ReadIndexResponse`]
/// last (17 in all). [`SAMPLE_BODY_NAMES`] names them.
pub fn sample_bodies() -> Vec<MessageBody> {
    vec![
        MessageBody::VoteRequest {
            last_log: id(3, 9),
            pre_vote: true,
            leadership_transfer: true,
        },
        MessageBody::VoteResponse {
            granted: true,
            pre_vote: false,
        },
        MessageBody::Append {
            prev: id(2, 4),
            entries: sample_entries(),
            commit: Index(4),
        },
        MessageBody::AppendResponse {
            index: Index(6),
            success: false,
            hint: id(2, 3),
        },
        MessageBody::Heartbeat {
            commit: Index(6),
            read_round: 300,
        },
        MessageBody::HeartbeatResponse { read_round: 300 },
        MessageBody::Commit { commit: Index(9) },
        MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last_included: id(3, 100),
                configuration: joint_configuration(),
            },
            offset: 4096,
            data: Bytes::from_static(b"chunk"),
            done: true,
        },
        MessageBody::InstallSnapshotResponse {
            last_included: id(3, 100),
            next_offset: 5096,
            done: true,
        },
        MessageBody::TimeoutNow,
        MessageBody::ReadIndexRequest { context: 99 },
        MessageBody::ReadIndexResponse {
            context: 99,
            index: Some(Index(6)),
        },
        MessageBody::RecoveryProbe,
        MessageBody::RecoveryProbeResponse { last_log: id(3, 9) },
        MessageBody::ForwardProposal {
            session: 0x5e55,
            first_id: 41,
            proposals: vec![Bytes::from_static(b"put x 1"), Bytes::new()],
        },
        MessageBody::ForwardProposalResponse {
            session: 0x5e55,
            first_id: 41,
            outcomes: vec![
                Ok(id(3, 10)),
                Err(ProposeError::NotLeader {
                    leader: Some(NodeId(4)),
                }),
                Err(ProposeError::NotLeader { leader: None }),
                Err(ProposeError::TooLarge {
                    size: 9000,
                    limit: 8192,
                }),
                Err(ProposeError::Busy),
                Err(ProposeError::TransferInProgress),
                Err(ProposeError::NotVoter(NodeId(5))),
            ],
        },
        MessageBody::ReadIndexResponse {
            context: 98,
            index: None,
        },
    ]
}

/// A name for each of [`sample_bodies`], in its order (file names for fuzzing seeds).
pub const SAMPLE_BODY_NAMES: [&str; 17] = [
    "vote_request",
    "vote_response",
    "append",
    "append_response",
    "heartbeat",
    "heartbeat_response",
    "commit",
    "install_snapshot",
    "install_snapshot_response",
    "timeout_now",
    "read_index_request",
    "read_index_response",
    "recovery_probe",
    "recovery_probe_response",
    "forward_proposal",
    "forward_proposal_response",
    "read_index_response_refused",
];

/// [`sample_bodies`] as messages from [`SAMPLE_FROM`] to [`SAMPLE_TO`] in [`SAMPLE_TERM`].
pub fn sample_messages() -> Vec<Message> {
    sample_bodies()
        .into_iter()
        .map(|body| Message {
            from: SAMPLE_FROM,
            to: SAMPLE_TO,
            term: SAMPLE_TERM,
            body,
        })
        .collect()
}

#[cfg(feature = "proptest")]
pub use strategies::{
    arb_configuration, arb_entry, arb_forward_outcome, arb_log_id, arb_message, arb_message_body,
};

#[cfg(feature = "proptest")]
mod strategies {
    use bytes::Bytes;
    use proptest::prelude::*;

    use crate::error::ProposeError;
    use crate::forward::ForwardOutcome;
    use crate::message::{Message, MessageBody};
    use crate::types::{Configuration, Entry, EntryKind, Index, LogId, NodeId, SnapshotMeta, Term};

    /// Any log id.
    pub fn arb_log_id() -> impl Strategy<Value = LogId> {
        (any::<u64>(), any::<u64>()).prop_map(|(term, index)| LogId::new(Term(term), Index(index)))
    }

    /// Configurations as a snapshot may carry them: joint or not, with or without learners,
    /// valid or not (a codec carries the sets as they are; the core checks them).
    pub fn arb_configuration() -> impl Strategy<Value = Configuration> {
        let set = || proptest::collection::btree_set(1..10u64, 0..5);
        (set(), set(), set()).prop_map(|(voters, outgoing, learners)| Configuration {
            voters: voters.into_iter().map(NodeId).collect(),
            outgoing: outgoing.into_iter().map(NodeId).collect(),
            learners: learners.into_iter().map(NodeId).collect(),
        })
    }

    /// Any entry: a command or a no-op with any bytes, or a configuration entry carrying an
    /// encoded configuration.
    pub fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            arb_log_id(),
            0u8..3,
            proptest::collection::vec(any::<u8>(), 0..64),
            arb_configuration(),
        )
            .prop_map(|(id, kind, data, configuration)| {
                let (kind, data) = match kind {
                    0 => (EntryKind::Normal, Bytes::from(data)),
                    1 => (EntryKind::Noop, Bytes::from(data)),
                    _ => (EntryKind::Configuration, configuration.encode()),
                };
                Entry { id, kind, data }
            })
    }

    /// Any body of any kind.
    pub fn arb_message_body() -> impl Strategy<Value = MessageBody> {
        prop_oneof![
            (arb_log_id(), any::<bool>(), any::<bool>()).prop_map(
                |(last_log, pre_vote, transfer)| MessageBody::VoteRequest {
                    last_log,
                    pre_vote,
                    leadership_transfer: transfer,
                }
            ),
            (any::<bool>(), any::<bool>())
                .prop_map(|(granted, pre_vote)| MessageBody::VoteResponse { granted, pre_vote }),
            (
                arb_log_id(),
                proptest::collection::vec(arb_entry(), 0..5),
                any::<u64>()
            )
                .prop_map(|(prev, entries, commit)| MessageBody::Append {
                    prev,
                    entries,
                    commit: Index(commit),
                }),
            (any::<u64>(), any::<bool>(), arb_log_id()).prop_map(|(index, success, hint)| {
                MessageBody::AppendResponse {
                    index: Index(index),
                    success,
                    hint,
                }
            }),
            (any::<u64>(), any::<u64>()).prop_map(|(commit, read_round)| {
                MessageBody::Heartbeat {
                    commit: Index(commit),
                    read_round,
                }
            }),
            any::<u64>().prop_map(|read_round| MessageBody::HeartbeatResponse { read_round }),
            any::<u64>().prop_map(|commit| MessageBody::Commit {
                commit: Index(commit),
            }),
            (
                arb_log_id(),
                arb_configuration(),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..64),
                any::<bool>()
            )
                .prop_map(|(last_included, configuration, offset, data, done)| {
                    MessageBody::InstallSnapshot {
                        meta: SnapshotMeta {
                            last_included,
                            configuration,
                        },
                        offset,
                        data: Bytes::from(data),
                        done,
                    }
                }),
            (arb_log_id(), any::<u64>(), any::<bool>()).prop_map(
                |(last_included, next_offset, done)| MessageBody::InstallSnapshotResponse {
                    last_included,
                    next_offset,
                    done,
                }
            ),
            Just(MessageBody::TimeoutNow),
            any::<u64>().prop_map(|context| MessageBody::ReadIndexRequest { context }),
            (any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(context, index)| {
                MessageBody::ReadIndexResponse {
                    context,
                    index: index.map(Index),
                }
            }),
            Just(MessageBody::RecoveryProbe),
            arb_log_id().prop_map(|last_log| MessageBody::RecoveryProbeResponse { last_log }),
            (
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..5)
            )
                .prop_map(|(session, first_id, proposals)| {
                    MessageBody::ForwardProposal {
                        session,
                        first_id,
                        proposals: proposals.into_iter().map(Bytes::from).collect(),
                    }
                }),
            (
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec(arb_forward_outcome(), 0..5)
            )
                .prop_map(|(session, first_id, outcomes)| {
                    MessageBody::ForwardProposalResponse {
                        session,
                        first_id,
                        outcomes,
                    }
                }),
        ]
    }

    /// Any outcome of a forwarded proposal: placed anywhere, or any refusal.
    pub fn arb_forward_outcome() -> impl Strategy<Value = ForwardOutcome> {
        prop_oneof![
            arb_log_id().prop_map(Ok),
            proptest::option::of(any::<u64>()).prop_map(|leader| Err(ProposeError::NotLeader {
                leader: leader.map(NodeId)
            })),
            (any::<u64>(), any::<u64>())
                .prop_map(|(size, limit)| Err(ProposeError::TooLarge { size, limit })),
            Just(Err(ProposeError::Busy)),
            Just(Err(ProposeError::TransferInProgress)),
            any::<u64>().prop_map(|node| Err(ProposeError::NotVoter(NodeId(node)))),
        ]
    }

    /// Any message: any sender, receiver and term (valid or not), any body.
    pub fn arb_message() -> impl Strategy<Value = Message> {
        (any::<u64>(), any::<u64>(), any::<u64>(), arb_message_body()).prop_map(
            |(from, to, term, body)| Message {
                from: NodeId(from),
                to: NodeId(to),
                term: Term(term),
                body,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The samples cover every kind of body (by name) and every entry kind, so a codec test
    /// that runs them all misses none.
    #[test]
    fn the_samples_cover_every_kind() {
        let bodies = sample_bodies();
        assert_eq!(bodies.len(), SAMPLE_BODY_NAMES.len());
        let kinds: BTreeSet<&str> = bodies.iter().map(MessageBody::kind_name).collect();
        // A vote request or response is either kind's name: the samples carry the pre-vote
        // request and the plain vote response.
        for name in [
            "PreVote",
            "VoteResp",
            "Append",
            "AppendResp",
            "Heartbeat",
            "HeartbeatResp",
            "Commit",
            "InstallSnapshot",
            "InstallSnapshotResp",
            "TimeoutNow",
            "ReadIndex",
            "ReadIndexResp",
            "RecoveryProbe",
            "RecoveryProbeResp",
            "ForwardProposal",
            "ForwardProposalResp",
        ] {
            assert!(kinds.contains(name), "no sample of {name}");
        }
        let entry_kinds: Vec<EntryKind> = sample_entries().iter().map(|entry| entry.kind).collect();
        assert_eq!(
            entry_kinds,
            [EntryKind::Noop, EntryKind::Normal, EntryKind::Configuration]
        );
    }
}
