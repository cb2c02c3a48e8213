//! Arbitrary messages thrown at peers in every role must never panic the core, and must never
//! make a peer's commit index pass its log.

mod common;

use bytes::Bytes;
use common::Net;
use proptest::prelude::*;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, SnapshotMeta, Term,
};

fn index() -> impl Strategy<Value = Index> {
    prop_oneof![0u64..8, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()].prop_map(Index)
}

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![0u64..6, Just(u64::MAX), any::<u64>()].prop_map(Term)
}

fn log_id() -> impl Strategy<Value = LogId> {
    (term(), index()).prop_map(|(term, index)| LogId::new(term, index))
}

/// A configuration of peers among 1..=5 (the harness has 3): joint or not, with learners.
fn configuration() -> impl Strategy<Value = Configuration> {
    (0u8..32, 0u8..32, 0u8..32).prop_map(|(voters, outgoing, learners)| {
        let set = |mask: u8| {
            (1..=5u64)
                .filter(move |bit| mask & (1 << (bit - 1)) != 0)
                .map(NodeId)
        };
        let voters: std::collections::BTreeSet<NodeId> = set(voters).collect();
        let outgoing: std::collections::BTreeSet<NodeId> = if voters.is_empty() {
            Default::default()
        } else {
            set(outgoing).collect()
        };
        let learners = set(learners)
            .filter(|id| !voters.contains(id) && !outgoing.contains(id))
            .collect();
        Configuration {
            voters,
            outgoing,
            learners,
        }
    })
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec(
        (
            log_id(),
            0u8..4,
            configuration(),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(id, kind, configuration, garbage)| {
                let (kind, data) = match kind {
                    0 => (EntryKind::Noop, Bytes::new()),
                    1 => (EntryKind::Configuration, configuration.encode()),
                    // Configuration entries whose data does not decode must be refused.
                    2 => (EntryKind::Configuration, Bytes::from(garbage)),
                    _ => (EntryKind::Normal, Bytes::from_static(b"payload")),
                };
                Entry { id, kind, data }
            }),
        0..4,
    )
}

fn body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (log_id(), any::<bool>(), any::<bool>()).prop_map(|(last_log, pre_vote, transfer)| {
            MessageBody::VoteRequest {
                last_log,
                pre_vote,
                leadership_transfer: transfer,
            }
        }),
        (any::<bool>(), any::<bool>())
            .prop_map(|(granted, pre_vote)| MessageBody::VoteResponse { granted, pre_vote }),
        (log_id(), entries(), index()).prop_map(|(prev, entries, commit)| MessageBody::Append {
            prev,
            entries,
            commit
        }),
        (index(), any::<bool>(), log_id()).prop_map(|(index, success, hint)| {
            MessageBody::AppendResponse {
                index,
                success,
                hint,
            }
        }),
        (index(), any::<u64>())
            .prop_map(|(commit, read_round)| MessageBody::Heartbeat { commit, read_round }),
        any::<u64>().prop_map(|read_round| MessageBody::HeartbeatResponse { read_round }),
        (
            log_id(),
            configuration(),
            any::<u64>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(last_included, configuration, offset, done, small)| {
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included,
                        configuration,
                    },
                    offset: if small { offset % 8 } else { offset },
                    data: Bytes::from_static(b"snap"),
                    done,
                }
            }),
        (log_id(), any::<u64>(), any::<bool>()).prop_map(|(last_included, next_offset, done)| {
            MessageBody::InstallSnapshotResponse {
                last_included,
                next_offset,
                done,
            }
        }),
        Just(MessageBody::TimeoutNow),
        any::<u64>().prop_map(|context| MessageBody::ReadIndexRequest { context }),
        (any::<u64>(), proptest::option::of(index()))
            .prop_map(|(context, index)| MessageBody::ReadIndexResponse { context, index }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (0u64..5, 0u64..5, term(), body()).prop_map(|(from, to, term, body)| Message {
        from: NodeId(from),
        to: NodeId(to),
        term,
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_messages_never_panic_a_peer(
        messages in proptest::collection::vec(message(), 1..40),
        ticks in 0u32..30,
    ) {
        let mut net = Net::new(3);
        net.elect(1);
        net.peer(1).propose(Bytes::from_static(b"x")).expect("leader");
        net.settle();
        net.tick_all(ticks);
        for message in messages {
            for id in 1..=3u64 {
                let mut message = message.clone();
                message.to = if message.to == NodeId(0) { NodeId(id) } else { message.to };
                let _ = net.peer(id).step(message);
                let peer = net.peer(id);
                prop_assert!(peer.commit_index() <= peer.last_index());
                // The self-check runs in every build here, not only in debug ones.
                let violations = peer.invariant_violations();
                prop_assert!(violations.is_empty(), "{id}: {violations:?}");
                let _ = peer.ready();
                peer.check_invariants();
            }
        }
    }
}
