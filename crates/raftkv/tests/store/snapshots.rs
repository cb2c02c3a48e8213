//! Snapshots: what a restored machine holds and how it answers retries, eviction at a smaller
//! limit, and refused bytes.

use raftkv::store::{SnapshotError, SNAPSHOT_FORMAT_VERSION};

use super::*;

fn busy_harness() -> Harness {
    let mut harness = Harness::new(3);
    harness.apply_as(1, 1, put("a", b"1"));
    harness.apply_as(2, 4, cas("b", Some(b"x"), b"2"));
    harness.apply(append("c", b"\xff\x00"));
    harness.apply_as(3, 2, delete("zz"));
    harness.apply_as(
        4,
        1,
        Operation::Announce {
            node: 3,
            http_address: "127.0.0.1:7003".into(),
            grpc_address: Some("127.0.0.1:2379".into()),
        },
    );
    harness.apply_bytes(b"\x0agarbage");
    harness.machine.skip(harness.index + 5);
    harness.index += 5;
    harness
}

#[test]
fn snapshot_restores_data_sessions_addresses_and_applied_index() {
    let harness = busy_harness();
    let snapshot = harness.machine.snapshot();
    let restored = StateMachine::restore(&snapshot, 3).expect("restores");
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.applied_index(), harness.machine.applied_index());
    assert_eq!(restored.keys(), 2);
    assert_eq!(restored.get("c").map(|v| &v[..]), Some(&b"\xff\x00"[..]));
    assert_eq!(restored.sessions(), 3);
    assert_eq!(restored.http_address(3), Some("127.0.0.1:7003"));
    assert_eq!(restored.grpc_address(3), Some("127.0.0.1:2379"));
    assert_eq!(restored.data_bytes(), harness.machine.data_bytes());
}

#[test]
fn restored_machine_answers_retries_and_evicts_like_the_original() {
    let mut original = busy_harness();
    let mut restored = Harness {
        machine: StateMachine::restore(&original.machine.snapshot(), 3).expect("restores"),
        index: original.index,
    };
    for harness in [&mut original, &mut restored] {
        assert_eq!(
            harness.apply_as(2, 4, cas("b", Some(b"x"), b"2")),
            cas_failed(None),
            "cached outcome survives the snapshot"
        );
        harness.apply_as(5, 1, put("e", b"5"));
        // Client 3 was the least recently active of {2, 3, 4} and is gone.
        assert_eq!(
            harness.apply_as(3, 1, put("zz", b"")),
            Outcome::Put,
            "an evicted session starts over"
        );
    }
    assert_eq!(original.machine.snapshot(), restored.machine.snapshot());
}

#[test]
fn restore_with_a_smaller_limit_evicts_the_least_recently_active() {
    let harness = busy_harness();
    let mut restored = Harness {
        machine: StateMachine::restore(&harness.machine.snapshot(), 1).expect("restores"),
        index: harness.index,
    };
    assert_eq!(restored.machine.sessions(), 1);
    // Client 4 was the most recently active and is kept.
    assert_eq!(
        restored.apply_as(
            4,
            0,
            Operation::Announce {
                node: 3,
                http_address: "stale".into(),
                grpc_address: None,
            }
        ),
        Outcome::StaleSequence { last: 1 }
    );
}

#[test]
fn restore_refuses_garbage_and_other_versions() {
    assert!(matches!(
        StateMachine::restore(&[0xff; 8], SESSIONS_MAX),
        Err(SnapshotError::Undecodable(_))
    ));
    // An empty buffer decodes as a message of default fields, version 0.
    assert_eq!(
        StateMachine::restore(&[], SESSIONS_MAX).err(),
        Some(SnapshotError::UnsupportedVersion {
            version: 0,
            supported: SNAPSHOT_FORMAT_VERSION
        })
    );
    // Field 1 (version), varint 5: newer than this build reads.
    assert_eq!(
        StateMachine::restore(&[0x08, 0x05], SESSIONS_MAX).err(),
        Some(SnapshotError::UnsupportedVersion {
            version: 5,
            supported: SNAPSHOT_FORMAT_VERSION
        })
    );
    // Version 1, applied index 1, and a session (field 4) active at index 9.
    assert!(matches!(
        StateMachine::restore(
            &[0x08, 0x01, 0x10, 0x01, 0x22, 0x02, 0x18, 0x09],
            SESSIONS_MAX
        ),
        Err(SnapshotError::Malformed { .. })
    ));
}

#[test]
fn empty_machine_snapshot_roundtrips() {
    let machine = StateMachine::new(SESSIONS_MAX);
    let restored = StateMachine::restore(&machine.snapshot(), SESSIONS_MAX).expect("restores");
    assert_eq!(restored.applied_index(), 0);
    assert_eq!(restored.keys(), 0);
    assert_eq!(restored.snapshot(), machine.snapshot());
}
