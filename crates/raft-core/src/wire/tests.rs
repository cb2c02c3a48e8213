//! The wire format's pinned bytes, its compatibility with older peers, and decoders that refuse
//! incomplete payloads and never panic.

use proptest::prelude::*;
use prost::Message as _;

use super::*;
use crate::message::MessageBody;
use crate::testing::messages::{joint_configuration, sample_entries, sample_messages};
use crate::types::{Configuration, EntryKind, Index, LogId, NodeId, Term};

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), Index(index))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn encoded(message: &Message) -> String {
    let mut payload = BytesMut::new();
    encode_message(message, &mut payload);
    hex(&payload)
}

/// Running clusters depend on these exact bytes: a change of tag, field type or the way a
/// variant maps onto the wire shows up here before it splits a cluster of mixed builds.
/// (Pinned from the encoder as it was in raft-node before it moved here.)
#[test]
fn message_encodings_are_pinned_byte_for_byte() {
    // One per sample, in the order of `sample_messages` (1->2 in term 3).
    let golden = [
        "080110021803220a0a040803100910011801",
        "0801100218032a020801",
        "080110021803322f0a04080210041206080310051801120d08031006220770757420782031120e08031007180222060102010200001804",
        "0801100218033a0808061a0408021003",
        "0801100218034205080610ac02",
        "0801100218034a0308ac02",
        "080110021803420408091801",
        "08011002180352210a130a040803106412030102041a030102032201051080201a056368756e6b2001",
        "0801100218035a0b0a040803106410e8271801",
        "0801100218036200",
        "0801100218036a020863",
        "080110021803720408631006",
        "0801100218037a00",
        "0801100218038201060a0408031009",
        "0801100218038a011108d5bc0110291a07707574207820311a00",
        "08011002180392013008d5bc0110291a060a040803100a1a04100118041a0210011a08100220a8462880401a0210031a0210041a0410053005",
        "08011002180372020862",
    ];
    let messages = sample_messages();
    assert_eq!(messages.len(), golden.len(), "a golden encoding per sample");
    for (message, golden_hex) in messages.into_iter().zip(golden) {
        assert_eq!(encoded(&message), golden_hex, "{message}");
        let mut payload = BytesMut::new();
        encode_message(&message, &mut payload);
        assert_eq!(decode_message(payload.freeze()), Ok(message));
    }
}

/// An entry and snapshot metadata encode alone exactly as they do inside a message (the
/// golden append and install-snapshot above), and decode back.
#[test]
fn entries_and_snapshot_metadata_encode_as_inside_messages() {
    let entry_golden = [
        "080310051801",
        "08031006220770757420782031",
        "0803100718022206010201020000",
    ];
    for (entry, golden_hex) in sample_entries().into_iter().zip(entry_golden) {
        let mut payload = BytesMut::new();
        encode_entry(&entry, &mut payload);
        assert_eq!(hex(&payload), golden_hex, "{entry:?}");
        assert_eq!(decode_entry(payload.freeze()), Ok(entry));
    }
    let meta = SnapshotMeta {
        last_included: id(3, 100),
        configuration: joint_configuration(),
    };
    let mut payload = BytesMut::new();
    encode_snapshot_meta(&meta, &mut payload);
    assert_eq!(hex(&payload), "0a040803106412030102041a03010203220105");
    assert_eq!(decode_snapshot_meta(payload.freeze()), Ok(meta));
}

#[test]
fn structurally_incomplete_payloads_are_errors() {
    let no_body = Envelope {
        from: 1,
        to: 2,
        term: 3,
        body: None,
    };
    assert!(matches!(
        Message::try_from(no_body),
        Err(DecodeError::Malformed { .. })
    ));
    let no_prev = Envelope {
        from: 1,
        to: 2,
        term: 3,
        body: Some(Body::Append(Append {
            prev: None,
            entries: Vec::new(),
            commit: 0,
        })),
    };
    assert!(matches!(
        Message::try_from(no_prev),
        Err(DecodeError::Malformed { .. })
    ));
    let unknown_kind = WireEntry {
        term: 1,
        index: 1,
        kind: 3,
        data: Bytes::new(),
    };
    assert_eq!(
        decode_entry(Bytes::from(unknown_kind.encode_to_vec())),
        Err(DecodeError::Malformed {
            what: "entry",
            reason: "unknown entry kind"
        })
    );
    let no_last_included = WireSnapshotMeta {
        last_included: None,
        voters: vec![1],
        outgoing: Vec::new(),
        learners: Vec::new(),
    };
    assert!(matches!(
        decode_snapshot_meta(Bytes::from(no_last_included.encode_to_vec())),
        Err(DecodeError::Malformed { .. })
    ));
    assert!(matches!(
        decode_message(Bytes::from_static(&[0x0a, 0x05, 0x01])),
        Err(DecodeError::Undecodable(_))
    ));
}

/// The snapshot metadata an older peer sends (voters only, tags 1 and 2) decodes as a
/// configuration without outgoing voters or learners.
#[test]
fn snapshot_metadata_of_an_older_peer_decodes_as_voters_only() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct OlderSnapshotMeta {
        #[prost(message, optional, tag = "1")]
        last_included: Option<WireLogId>,
        #[prost(uint64, repeated, tag = "2")]
        voters: Vec<u64>,
    }
    let older = OlderSnapshotMeta {
        last_included: Some(WireLogId { term: 2, index: 9 }),
        voters: vec![1, 2, 3],
    };
    let decoded = decode_snapshot_meta(Bytes::from(older.encode_to_vec())).expect("decodes");
    assert_eq!(
        decoded.configuration,
        Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
    );
    // And an older peer reads the voters of a newer peer's metadata.
    let newer = WireSnapshotMeta {
        last_included: Some(WireLogId { term: 2, index: 9 }),
        voters: vec![1, 2, 4],
        outgoing: vec![1, 2, 3],
        learners: vec![5],
    };
    let read_by_older =
        OlderSnapshotMeta::decode(newer.encode_to_vec().as_slice()).expect("skips new fields");
    assert_eq!(read_by_older.voters, vec![1, 2, 4]);
}

#[test]
fn a_commit_notice_reads_as_a_heartbeat_to_an_older_peer() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct OlderHeartbeat {
        #[prost(uint64, tag = "1")]
        commit: u64,
        #[prost(uint64, tag = "2")]
        read_round: u64,
    }
    let notice = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        body: MessageBody::Commit { commit: Index(7) },
    };
    let Some(Body::Heartbeat(heartbeat)) = Envelope::from(&notice).body else {
        panic!("a commit notice travels as a heartbeat");
    };
    let read_by_older =
        OlderHeartbeat::decode(heartbeat.encode_to_vec().as_slice()).expect("skips the new field");
    assert_eq!(read_by_older.commit, 7);
    // A heartbeat is still a heartbeat to this build.
    let heartbeat = Message {
        body: MessageBody::Heartbeat {
            commit: Index(7),
            read_round: 0,
        },
        ..notice
    };
    assert_eq!(Message::try_from(Envelope::from(&heartbeat)), Ok(heartbeat));
}

proptest! {
    /// Bytes from outside never make a decoder panic (message-level round trips are
    /// raft-node's `tests/wire.rs`, through its frames).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let bytes = Bytes::from(bytes);
        let _ = decode_message(bytes.clone());
        let _ = decode_entry(bytes.clone());
        let _ = decode_snapshot_meta(bytes);
    }

    #[test]
    fn every_entry_roundtrips(
        term in any::<u64>(),
        index in any::<u64>(),
        kind in prop_oneof![
            Just(EntryKind::Normal),
            Just(EntryKind::Noop),
            Just(EntryKind::Configuration)
        ],
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let entry = Entry { id: id(term, index), kind, data: Bytes::from(data) };
        let mut payload = BytesMut::new();
        encode_entry(&entry, &mut payload);
        prop_assert_eq!(decode_entry(payload.freeze()), Ok(entry));
    }
}
