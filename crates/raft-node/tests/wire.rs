//! The wire format against arbitrary input: every message survives a round trip, and no byte
//! string makes decoding panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, SnapshotMeta, Term,
};
use raft_node::wire::{decode_message, encode_message_frame, FrameDecoder};

fn log_id() -> impl Strategy<Value = LogId> {
    (any::<u64>(), any::<u64>()).prop_map(|(term, index)| LogId::new(Term(term), Index(index)))
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        log_id(),
        0u8..3,
        proptest::collection::vec(any::<u8>(), 0..64),
        configuration(),
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

/// Configurations as a snapshot may carry them: joint or not, with or without learners. The
/// wire format carries the sets as they are; the core checks them.
fn configuration() -> impl Strategy<Value = Configuration> {
    let set = || proptest::collection::btree_set(1..10u64, 0..5);
    (set(), set(), set()).prop_map(|(voters, outgoing, learners)| Configuration {
        voters: voters.into_iter().map(NodeId).collect(),
        outgoing: outgoing.into_iter().map(NodeId).collect(),
        learners: learners.into_iter().map(NodeId).collect(),
    })
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
        (
            log_id(),
            proptest::collection::vec(entry(), 0..5),
            any::<u64>()
        )
            .prop_map(|(prev, entries, commit)| MessageBody::Append {
                prev,
                entries,
                commit: Index(commit),
            }),
        (any::<u64>(), any::<bool>(), log_id()).prop_map(|(index, success, hint)| {
            MessageBody::AppendResponse {
                index: Index(index),
                success,
                hint,
            }
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(commit, read_round)| MessageBody::Heartbeat {
            commit: Index(commit),
            read_round,
        }),
        any::<u64>().prop_map(|read_round| MessageBody::HeartbeatResponse { read_round }),
        any::<u64>().prop_map(|commit| MessageBody::Commit {
            commit: Index(commit),
        }),
        (
            log_id(),
            configuration(),
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
        (log_id(), any::<u64>(), any::<bool>()).prop_map(|(last_included, next_offset, done)| {
            MessageBody::InstallSnapshotResponse {
                last_included,
                next_offset,
                done,
            }
        }),
        Just(MessageBody::TimeoutNow),
        any::<u64>().prop_map(|context| MessageBody::ReadIndexRequest { context }),
        (any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(context, index)| {
            MessageBody::ReadIndexResponse {
                context,
                index: index.map(Index),
            }
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u64>(), any::<u64>(), any::<u64>(), body()).prop_map(|(from, to, term, body)| Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    })
}

proptest! {
    #[test]
    fn every_message_roundtrips(messages in proptest::collection::vec(message(), 1..8)) {
        let mut stream = BytesMut::new();
        for message in &messages {
            encode_message_frame(message, &mut stream);
        }
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.extend(&stream);
        let mut decoded = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("within the limit") {
            decoded.push(decode_message(frame).expect("decodes"));
        }
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = FrameDecoder::new(256);
        decoder.extend(&bytes);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let _ = decode_message(frame);
        }
        let _ = decode_message(Bytes::from(bytes));
    }
}
