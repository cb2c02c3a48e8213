//! The wire format against arbitrary input: every message survives a round trip, and no byte
//! string makes decoding panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, SnapshotMeta, Term,
};
use raft_node::wire::{decode_message, encode_message, FrameDecoder};

fn log_id() -> impl Strategy<Value = LogId> {
    (any::<u64>(), any::<u64>()).prop_map(|(term, index)| LogId::new(Term(term), Index(index)))
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        log_id(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(id, noop, data)| Entry {
            id,
            kind: if noop {
                EntryKind::Noop
            } else {
                EntryKind::Normal
            },
            data: Bytes::from(data),
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
        (
            log_id(),
            proptest::collection::btree_set(1..10u64, 0..5),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(last_included, voters, offset, data, done)| {
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included,
                        configuration: Configuration::new(voters.into_iter().map(NodeId)),
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
            encode_message(message, &mut stream);
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
