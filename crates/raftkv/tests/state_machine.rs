//! The key-value state machine and its command encoding: each operation's semantics,
//! exactly-once sessions and their eviction, snapshots, and hostile bytes.
//!
//! The property tests apply random command sequences (with sessions, retries, stale requests,
//! undecodable entries and skipped indexes) to a machine, to a second machine snapshotted and
//! restored part-way, and to a naive model, and require all three to agree.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use raftkv::command::{ClientId, Command, CommandError, Operation, Session};
use raftkv::state_machine::{Outcome, SnapshotError, StateMachine, SNAPSHOT_FORMAT_VERSION};

const SESSIONS_MAX: usize = 16;

/// A machine fed consecutive indexes.
struct Harness {
    machine: StateMachine,
    index: u64,
}

impl Harness {
    fn new(sessions_max: usize) -> Harness {
        Harness {
            machine: StateMachine::new(sessions_max),
            index: 0,
        }
    }

    fn apply_bytes(&mut self, data: &[u8]) -> Outcome {
        self.index += 1;
        let outcome = self.machine.apply(self.index, data);
        self.machine.check_invariants();
        assert_eq!(self.machine.applied_index(), self.index);
        outcome
    }

    /// Applies `operation` without a session.
    fn apply(&mut self, operation: Operation) -> Outcome {
        self.apply_bytes(&encode(None, operation))
    }

    /// Applies `operation` as request `sequence` of client `client_id`.
    fn apply_as(&mut self, client_id: u64, sequence: u64, operation: Operation) -> Outcome {
        self.apply_bytes(&encode(Some((client_id, sequence)), operation))
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.machine.get(key).map(|value| &value[..])
    }
}

fn encode(session: Option<(u64, u64)>, operation: Operation) -> Bytes {
    Command {
        session: session.map(|(client_id, sequence)| Session {
            client_id: ClientId::number(client_id),
            sequence,
        }),
        operation,
        request_id: None,
    }
    .encode()
}

fn put(key: &str, value: &'static [u8]) -> Operation {
    Operation::Put {
        key: key.into(),
        value: Bytes::from_static(value),
    }
}

fn delete(key: &str) -> Operation {
    Operation::Delete { key: key.into() }
}

fn append(key: &str, suffix: &'static [u8]) -> Operation {
    Operation::Append {
        key: key.into(),
        suffix: Bytes::from_static(suffix),
    }
}

fn cas(key: &str, expect: Option<&'static [u8]>, value: &'static [u8]) -> Operation {
    Operation::Cas {
        key: key.into(),
        expect: expect.map(Bytes::from_static),
        value: Bytes::from_static(value),
    }
}

fn cas_failed(current: Option<&'static [u8]>) -> Outcome {
    Outcome::Cas {
        swapped: false,
        current: current.map(Bytes::from_static),
    }
}

const CAS_SWAPPED: Outcome = Outcome::Cas {
    swapped: true,
    current: None,
};

// ---- Operations -------------------------------------------------------------------------------

#[test]
fn put_sets_and_overwrites_a_value() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.get("k"), None);
    assert_eq!(harness.apply(put("k", b"one")), Outcome::Put);
    assert_eq!(harness.get("k"), Some(&b"one"[..]));
    assert_eq!(harness.apply(put("k", b"two")), Outcome::Put);
    assert_eq!(harness.get("k"), Some(&b"two"[..]));
    assert_eq!(harness.machine.keys(), 1);
}

#[test]
fn delete_reports_whether_the_key_existed() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(
        harness.apply(delete("k")),
        Outcome::Deleted { existed: false }
    );
    harness.apply(put("k", b"v"));
    assert_eq!(
        harness.apply(delete("k")),
        Outcome::Deleted { existed: true }
    );
    assert_eq!(harness.get("k"), None);
    assert_eq!(harness.machine.keys(), 0);
}

#[test]
fn append_to_an_absent_key_creates_it() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(
        harness.apply(append("k", b"ab")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(harness.get("k"), Some(&b"ab"[..]));
}

#[test]
fn append_extends_an_existing_value() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"ab"));
    assert_eq!(
        harness.apply(append("k", b"cde")),
        Outcome::Appended { length: 5 }
    );
    assert_eq!(harness.get("k"), Some(&b"abcde"[..]));
}

#[test]
fn cas_expecting_absence_succeeds_only_on_an_absent_key() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.apply(cas("k", None, b"first")), CAS_SWAPPED);
    assert_eq!(harness.get("k"), Some(&b"first"[..]));
    assert_eq!(
        harness.apply(cas("k", None, b"second")),
        cas_failed(Some(b"first"))
    );
    assert_eq!(harness.get("k"), Some(&b"first"[..]));
}

#[test]
fn cas_on_an_absent_key_with_an_expected_value_fails_reporting_absence() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.apply(cas("k", Some(b""), b"v")), cas_failed(None));
    assert_eq!(harness.get("k"), None);
    assert_eq!(harness.machine.keys(), 0);
}

#[test]
fn cas_swaps_only_when_the_value_matches() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"old"));
    assert_eq!(
        harness.apply(cas("k", Some(b"other"), b"new")),
        cas_failed(Some(b"old"))
    );
    assert_eq!(harness.get("k"), Some(&b"old"[..]));
    assert_eq!(harness.apply(cas("k", Some(b"old"), b"new")), CAS_SWAPPED);
    assert_eq!(harness.get("k"), Some(&b"new"[..]));
}

#[test]
fn cas_distinguishes_an_empty_value_from_an_absent_key() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b""));
    assert_eq!(harness.apply(cas("k", None, b"v")), cas_failed(Some(b"")));
    assert_eq!(harness.apply(cas("k", Some(b""), b"v")), CAS_SWAPPED);
}

#[test]
fn announce_records_an_address_and_a_later_announce_replaces_it() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let announce = |address: &str| Operation::Announce {
        node: 2,
        http_address: address.into(),
    };
    assert_eq!(harness.machine.http_address(2), None);
    assert_eq!(harness.apply(announce("10.0.0.2:8080")), Outcome::Announced);
    assert_eq!(harness.machine.http_address(2), Some("10.0.0.2:8080"));
    assert_eq!(harness.apply(announce("10.0.0.2:9090")), Outcome::Announced);
    assert_eq!(harness.machine.http_address(2), Some("10.0.0.2:9090"));
    assert_eq!(harness.machine.http_address(1), None);
    assert_eq!(harness.machine.keys(), 0, "addresses are not keys");
}

#[test]
fn raft_addresses_are_recorded_and_survive_a_snapshot() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let record = |address: &str| Operation::RaftAddress {
        node: 4,
        raft_address: address.into(),
    };
    assert_eq!(harness.apply(record("10.0.0.4:9001")), Outcome::Announced);
    assert_eq!(harness.apply(record("10.0.0.4:9002")), Outcome::Announced);
    assert_eq!(harness.machine.raft_address(4), Some("10.0.0.4:9002"));
    assert_eq!(harness.machine.http_address(4), None, "a separate map");
    let restored =
        StateMachine::restore(&harness.machine.snapshot(), SESSIONS_MAX).expect("restores");
    assert_eq!(restored.raft_address(4), Some("10.0.0.4:9002"));
    assert_eq!(restored.raft_addresses().len(), 1);
}

#[test]
fn undecodable_entry_is_rejected_and_advances_the_applied_index() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let outcome = harness.apply_bytes(&[0xff, 0xff, 0xff]);
    assert!(matches!(outcome, Outcome::Rejected { .. }), "{outcome:?}");
    assert_eq!(harness.machine.applied_index(), 1);
    // An empty entry has no operation.
    let outcome = harness.apply_bytes(&[]);
    assert_eq!(
        outcome,
        Outcome::Rejected {
            reason: CommandError::UnknownOperation.to_string()
        }
    );
    assert_eq!(harness.machine.keys(), 0);
}

#[test]
fn skip_moves_only_the_applied_index() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"v"));
    let before = harness.machine.snapshot();
    harness.machine.skip(5);
    assert_eq!(harness.machine.applied_index(), 5);
    assert_eq!(harness.get("k"), Some(&b"v"[..]));
    let mut expected = StateMachine::restore(&before, SESSIONS_MAX).expect("restores");
    expected.skip(5);
    assert_eq!(harness.machine.snapshot(), expected.snapshot());
}

#[test]
#[should_panic(expected = "invariant applied-index-increases")]
fn applying_an_index_twice_is_a_bug() {
    let mut machine = StateMachine::new(SESSIONS_MAX);
    machine.apply(3, &encode(None, put("k", b"v")));
    machine.apply(3, &encode(None, put("k", b"v")));
}

#[test]
#[should_panic(expected = "invariant applied-index-increases")]
fn skipping_backwards_is_a_bug() {
    let mut machine = StateMachine::new(SESSIONS_MAX);
    machine.skip(3);
    machine.skip(2);
}

#[test]
fn scan_returns_prefix_matches_in_key_order_and_reports_truncation() {
    let mut harness = Harness::new(SESSIONS_MAX);
    for key in ["b2", "a", "b1", "b", "c", "b3"] {
        harness.apply(put(key, b"v"));
    }
    let keys = |(items, more): (Vec<(String, Bytes)>, bool)| {
        (
            items.into_iter().map(|(key, _)| key).collect::<Vec<_>>(),
            more,
        )
    };
    assert_eq!(
        keys(harness.machine.scan("b", 10)),
        (
            vec!["b".into(), "b1".into(), "b2".into(), "b3".into()],
            false
        )
    );
    assert_eq!(
        keys(harness.machine.scan("b", 2)),
        (vec!["b".into(), "b1".into()], true)
    );
    assert_eq!(
        keys(harness.machine.scan("b", 4)),
        (
            vec!["b".into(), "b1".into(), "b2".into(), "b3".into()],
            false
        ),
        "exactly the limit is not truncated"
    );
    assert_eq!(keys(harness.machine.scan("b", 0)), (vec![], true));
    assert_eq!(keys(harness.machine.scan("d", 10)), (vec![], false));
    assert_eq!(harness.machine.scan("", 100).0.len(), 6);
}

#[test]
fn data_bytes_counts_keys_and_values() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.machine.data_bytes(), 0);
    harness.apply(put("key", b"value"));
    assert_eq!(harness.machine.data_bytes(), 8);
    harness.apply(append("key", b"!!"));
    assert_eq!(harness.machine.data_bytes(), 10);
    harness.apply(put("key", b"v"));
    assert_eq!(harness.machine.data_bytes(), 4);
    harness.apply(delete("key"));
    assert_eq!(harness.machine.data_bytes(), 0);
}

// ---- Exactly-once sessions --------------------------------------------------------------------

#[test]
fn retried_request_returns_the_cached_outcome_without_applying_again() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let first = harness.apply_as(7, 1, append("k", b"ab"));
    assert_eq!(first, Outcome::Appended { length: 2 });
    let retry = harness.apply_as(7, 1, append("k", b"ab"));
    assert_eq!(retry, first);
    assert_eq!(harness.get("k"), Some(&b"ab"[..]), "appended once");
    assert_eq!(harness.machine.sessions(), 1);
}

#[test]
fn retried_cas_returns_its_first_outcome_even_after_the_value_changed() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.apply_as(7, 1, cas("k", None, b"mine")), CAS_SWAPPED);
    harness.apply(put("k", b"theirs"));
    assert_eq!(harness.apply_as(7, 1, cas("k", None, b"mine")), CAS_SWAPPED);
    assert_eq!(harness.get("k"), Some(&b"theirs"[..]));
}

#[test]
fn older_sequence_is_stale_and_not_applied() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply_as(7, 5, put("k", b"five"));
    assert_eq!(
        harness.apply_as(7, 4, put("k", b"four")),
        Outcome::StaleSequence { last: 5 }
    );
    assert_eq!(harness.get("k"), Some(&b"five"[..]));
    // The stale request did not replace the cached outcome.
    assert_eq!(harness.apply_as(7, 5, put("k", b"five")), Outcome::Put);
    assert_eq!(
        harness.apply_as(7, 5, delete("k")),
        Outcome::Put,
        "a retry is answered from the cache, whatever it carries"
    );
    assert_eq!(harness.get("k"), Some(&b"five"[..]));
}

#[test]
fn newer_sequence_applies_and_replaces_the_cached_outcome() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply_as(7, 1, put("k", b"v"));
    // Sequence numbers may skip ahead: a client need not number contiguously.
    assert_eq!(
        harness.apply_as(7, 3, delete("k")),
        Outcome::Deleted { existed: true }
    );
    assert_eq!(
        harness.apply_as(7, 3, delete("k")),
        Outcome::Deleted { existed: true }
    );
    assert_eq!(
        harness.apply_as(7, 1, put("k", b"v")),
        Outcome::StaleSequence { last: 3 }
    );
    assert_eq!(harness.get("k"), None);
}

#[test]
fn sessions_of_different_clients_are_independent() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply_as(1, 10, append("k", b"a"));
    assert_eq!(
        harness.apply_as(2, 1, append("k", b"b")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(
        harness.apply_as(2, 1, append("k", b"b")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(harness.get("k"), Some(&b"ab"[..]));
    assert_eq!(harness.machine.sessions(), 2);
}

#[test]
fn commands_without_a_session_apply_every_time() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(append("k", b"a"));
    harness.apply(append("k", b"a"));
    assert_eq!(harness.get("k"), Some(&b"aa"[..]));
    assert_eq!(harness.machine.sessions(), 0);
}

#[test]
fn announce_with_a_session_follows_session_rules() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let announce = |address: &str| Operation::Announce {
        node: 1,
        http_address: address.into(),
    };
    harness.apply_as(9, 2, announce("new"));
    assert_eq!(
        harness.apply_as(9, 1, announce("old")),
        Outcome::StaleSequence { last: 2 }
    );
    assert_eq!(harness.machine.http_address(1), Some("new"));
}

#[test]
fn eviction_removes_the_least_recently_active_session() {
    let mut harness = Harness::new(2);
    harness.apply_as(1, 1, append("k", b"1"));
    harness.apply_as(2, 1, append("k", b"2"));
    harness.apply_as(3, 1, append("k", b"3"));
    assert_eq!(harness.machine.sessions(), 2);
    // Client 1 was least recently active and lost its session: its retry applies again.
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"1")),
        Outcome::Appended { length: 4 }
    );
    assert_eq!(harness.get("k"), Some(&b"1231"[..]));
    // Re-creating client 1's session evicted client 2; client 3's retry is still answered
    // from the cache.
    assert_eq!(
        harness.apply_as(3, 1, append("k", b"3")),
        Outcome::Appended { length: 3 }
    );
    assert_eq!(harness.get("k"), Some(&b"1231"[..]));
}

#[test]
fn a_retry_keeps_its_session_from_eviction() {
    let mut harness = Harness::new(2);
    harness.apply_as(1, 1, append("k", b"1"));
    harness.apply_as(2, 1, append("k", b"2"));
    // Client 1 retries: it is now more recently active than client 2.
    harness.apply_as(1, 1, append("k", b"1"));
    harness.apply_as(3, 1, append("k", b"3"));
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"1")),
        Outcome::Appended { length: 1 },
        "client 1 kept its session"
    );
    assert_eq!(
        harness.apply_as(2, 1, append("k", b"2")),
        Outcome::Appended { length: 4 },
        "client 2 was evicted, so its retry applied twice"
    );
}

#[test]
fn eviction_is_the_same_on_every_replica() {
    let log: Vec<Bytes> = (0..40u64)
        .map(|step| encode(Some((step * 7 % 11, step / 3)), append("k", b"x")))
        .collect();
    let mut replicas = [Harness::new(3), Harness::new(3)];
    for replica in &mut replicas {
        for entry in &log {
            replica.apply_bytes(entry);
        }
    }
    assert_eq!(replicas[0].machine.sessions(), 3);
    assert_eq!(
        replicas[0].machine.snapshot(),
        replicas[1].machine.snapshot()
    );
}

#[test]
fn zero_sessions_max_disables_exactly_once() {
    let mut harness = Harness::new(0);
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"a")),
        Outcome::Appended { length: 1 }
    );
    assert_eq!(
        harness.apply_as(1, 1, append("k", b"a")),
        Outcome::Appended { length: 2 }
    );
    assert_eq!(harness.machine.sessions(), 0);
}

// ---- Snapshots --------------------------------------------------------------------------------

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
                http_address: "stale".into()
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
    // Field 1 (version), varint 3: newer than this build reads.
    assert_eq!(
        StateMachine::restore(&[0x08, 0x03], SESSIONS_MAX).err(),
        Some(SnapshotError::UnsupportedVersion {
            version: 3,
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

// ---- Command encoding -------------------------------------------------------------------------

#[test]
fn every_operation_roundtrips_through_its_encoding() {
    let operations = [
        put("k", b"v"),
        put("", b""),
        delete("k"),
        append("ключ", b"\x00\xff"),
        cas("k", None, b"v"),
        cas("k", Some(b""), b""),
        Operation::Announce {
            node: u64::MAX,
            http_address: "[::1]:80".into(),
        },
        Operation::RaftAddress {
            node: 4,
            raft_address: "10.0.0.4:9001".into(),
        },
    ];
    for operation in operations {
        for session in [None, Some((0, 0)), Some((u64::MAX, u64::MAX))] {
            let command = Command {
                session: session.map(|(client_id, sequence)| Session {
                    client_id: ClientId::number(client_id),
                    sequence,
                }),
                operation: operation.clone(),
                request_id: None,
            };
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }
}

#[test]
fn unknown_fields_are_skipped_but_an_unknown_operation_is_refused() {
    let mut newer = encode(None, put("k", b"v")).to_vec();
    // Field 20, varint 1: a field a newer release might add.
    newer.extend_from_slice(&[0xa0, 0x01, 0x01]);
    assert_eq!(
        Command::decode(&newer),
        Ok(Command {
            session: None,
            operation: put("k", b"v"),
            request_id: None,
        })
    );
    // Field 8 (the next operation tag), an empty message: an operation this build lacks.
    assert_eq!(
        Command::decode(&[0x42, 0x00]),
        Err(CommandError::UnknownOperation)
    );
}

#[test]
fn newer_format_version_is_refused() {
    let mut newer = encode(None, put("k", b"v")).to_vec();
    // Field 15 (format_version), varint 1.
    newer.extend_from_slice(&[0x78, 0x01]);
    assert_eq!(
        Command::decode(&newer),
        Err(CommandError::UnsupportedVersion {
            version: 1,
            supported: 0
        })
    );
}

#[test]
fn key_that_is_not_utf8_is_refused() {
    // Field 3 (delete) { field 1 (key): 0xff }.
    assert_eq!(
        Command::decode(&[0x1a, 0x03, 0x0a, 0x01, 0xff]),
        Err(CommandError::KeyNotUtf8)
    );
}

#[test]
fn truncated_command_is_undecodable() {
    let bytes = encode(Some((1, 2)), put("key", b"value"));
    assert!(matches!(
        Command::decode(&bytes[..bytes.len() - 1]),
        Err(CommandError::Undecodable(_))
    ));
}

// ---- Properties -------------------------------------------------------------------------------

/// A naive reference: linear scans instead of ordered indexes.
struct Model {
    data: BTreeMap<String, Bytes>,
    /// `(client_id, sequence, outcome, last_active_index)`.
    sessions: Vec<(ClientId, u64, Outcome, u64)>,
    sessions_max: usize,
    addresses: BTreeMap<u64, String>,
}

impl Model {
    fn apply(&mut self, index: u64, data: &[u8]) -> Outcome {
        let command = match Command::decode(data) {
            Ok(command) => command,
            Err(error) => {
                return Outcome::Rejected {
                    reason: error.to_string(),
                }
            }
        };
        if let Some(session) = command.session {
            let found = self
                .sessions
                .iter_mut()
                .find(|(client_id, ..)| *client_id == session.client_id);
            if let Some((_, sequence, outcome, last_active_index)) = found {
                if session.sequence < *sequence {
                    return Outcome::StaleSequence { last: *sequence };
                }
                if session.sequence == *sequence {
                    *last_active_index = index;
                    return outcome.clone();
                }
            }
            let outcome = self.execute(command.operation);
            self.sessions
                .retain(|(client_id, ..)| *client_id != session.client_id);
            self.sessions
                .push((session.client_id, session.sequence, outcome.clone(), index));
            while self.sessions.len() > self.sessions_max {
                let oldest = (0..self.sessions.len())
                    .min_by_key(|&at| (self.sessions[at].3, self.sessions[at].0.clone()))
                    .expect("not empty");
                self.sessions.remove(oldest);
            }
            outcome
        } else {
            self.execute(command.operation)
        }
    }

    fn execute(&mut self, operation: Operation) -> Outcome {
        match operation {
            Operation::Put { key, value } => {
                self.data.insert(key, value);
                Outcome::Put
            }
            Operation::Delete { key } => Outcome::Deleted {
                existed: self.data.remove(&key).is_some(),
            },
            Operation::Append { key, suffix } => {
                let mut value = self.data.get(&key).map(|v| v.to_vec()).unwrap_or_default();
                value.extend_from_slice(&suffix);
                let length = value.len() as u64;
                self.data.insert(key, Bytes::from(value));
                Outcome::Appended { length }
            }
            Operation::Cas { key, expect, value } => {
                let current = self.data.get(&key).cloned();
                if current == expect {
                    self.data.insert(key, value);
                    Outcome::Cas {
                        swapped: true,
                        current: None,
                    }
                } else {
                    Outcome::Cas {
                        swapped: false,
                        current,
                    }
                }
            }
            Operation::Announce { node, http_address } => {
                self.addresses.insert(node, http_address);
                Outcome::Announced
            }
            // Raft addresses are checked by their own test; the model only acknowledges them.
            Operation::RaftAddress { .. } => Outcome::Announced,
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Apply a command at the next index.
    Apply(Command),
    /// Apply the previous command's bytes again, as a client retry that was committed twice.
    Retry,
    /// Apply bytes that are probably not a command.
    Garbage(Vec<u8>),
    /// Skip the next index (a no-op entry).
    Skip,
}

fn small_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "ab", "b", "ba"]).prop_map(String::from)
}

/// Values from a tiny alphabet, so that compare-and-swap expectations often match.
fn small_value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(0u8..2, 0..3).prop_map(Bytes::from)
}

fn small_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => (small_key(), small_value()).prop_map(|(key, value)| Operation::Put { key, value }),
        2 => small_key().prop_map(|key| Operation::Delete { key }),
        2 => (small_key(), small_value())
            .prop_map(|(key, suffix)| Operation::Append { key, suffix }),
        3 => (small_key(), prop::option::of(small_value()), small_value())
            .prop_map(|(key, expect, value)| Operation::Cas { key, expect, value }),
        1 => (1u64..4, prop::sample::select(vec!["h1:1", "h2:2"])).prop_map(
            |(node, http_address)| Operation::Announce {
                node,
                http_address: http_address.into()
            }
        ),
    ]
}

/// A few client ids, numbers and texts, so that sessions meet often; `007` and `7` are two.
fn small_client_id() -> impl Strategy<Value = ClientId> {
    prop_oneof![
        (0u64..5).prop_map(ClientId::number),
        prop::sample::select(vec![
            "7",
            "007",
            "a",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        ])
        .prop_map(|text| ClientId::parse(text.as_bytes()).expect("a valid client id")),
    ]
}

fn small_command() -> impl Strategy<Value = Command> {
    let session = prop::option::weighted(
        0.8,
        (small_client_id(), 0u64..6).prop_map(|(client_id, sequence)| Session {
            client_id,
            sequence,
        }),
    );
    (session, small_operation()).prop_map(|(session, operation)| Command {
        session,
        operation,
        request_id: None,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => small_command().prop_map(Step::Apply),
        3 => Just(Step::Retry),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Step::Garbage),
        1 => Just(Step::Skip),
    ]
}

fn any_command() -> impl Strategy<Value = Command> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
    let operation = prop_oneof![
        (any::<String>(), bytes()).prop_map(|(key, value)| Operation::Put { key, value }),
        any::<String>().prop_map(|key| Operation::Delete { key }),
        (any::<String>(), bytes()).prop_map(|(key, suffix)| Operation::Append { key, suffix }),
        (any::<String>(), prop::option::of(bytes()), bytes())
            .prop_map(|(key, expect, value)| Operation::Cas { key, expect, value }),
        (any::<u64>(), any::<String>())
            .prop_map(|(node, http_address)| Operation::Announce { node, http_address }),
    ];
    let client_id = prop_oneof![
        any::<u64>().prop_map(ClientId::number),
        "[!-~]{1,128}"
            .prop_map(|text| ClientId::parse(text.as_bytes()).expect("a valid client id")),
    ];
    let session =
        prop::option::of(
            (client_id, any::<u64>()).prop_map(|(client_id, sequence)| Session {
                client_id,
                sequence,
            }),
        );
    (session, operation).prop_map(|(session, operation)| Command {
        session,
        operation,
        request_id: None,
    })
}

/// A byte edit: overwrite, truncate at, or insert at a position (taken modulo the length).
fn mutations() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..4)
}

fn mutate(mut bytes: Vec<u8>, mutations: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(position, kind, byte) in mutations {
        let at = position % (bytes.len() + 1);
        match kind {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

proptest! {
    /// Two replicas apply the same log, one of them snapshotted and restored part-way: both give
    /// the same outcomes and end in the same state, and the data and outcomes match the model.
    #[test]
    fn replicas_agree_across_snapshot_and_restore_and_match_the_model(
        steps in prop::collection::vec(step(), 0..60),
        restore_at in any::<prop::sample::Index>(),
        sessions_max in 0usize..4,
    ) {
        let restore_at = restore_at.index(steps.len() + 1);
        let mut straight = StateMachine::new(sessions_max);
        let mut restored = StateMachine::new(sessions_max);
        let mut model = Model {
            data: BTreeMap::new(),
            sessions: Vec::new(),
            sessions_max,
            addresses: BTreeMap::new(),
        };
        let mut index = 0;
        let mut previous = Bytes::new();
        for (at, step) in steps.iter().enumerate() {
            if at == restore_at {
                let snapshot = restored.snapshot();
                restored = StateMachine::restore(&snapshot, sessions_max).expect("restores");
                prop_assert_eq!(restored.snapshot(), snapshot);
            }
            index += 1;
            let data = match step {
                Step::Apply(command) => command.encode(),
                Step::Retry => previous.clone(),
                Step::Garbage(bytes) => Bytes::from(bytes.clone()),
                Step::Skip => {
                    straight.skip(index);
                    restored.skip(index);
                    continue;
                }
            };
            previous = data.clone();
            let outcome = straight.apply(index, &data);
            prop_assert_eq!(&restored.apply(index, &data), &outcome);
            prop_assert_eq!(&model.apply(index, &data), &outcome, "step {}: {:?}", at, step);
            straight.check_invariants();
            restored.check_invariants();
        }
        prop_assert_eq!(straight.snapshot(), restored.snapshot());
        prop_assert_eq!(straight.applied_index(), index);
        prop_assert_eq!(restored.applied_index(), index);
        let (items, more) = straight.scan("", usize::MAX);
        prop_assert!(!more);
        prop_assert_eq!(items, model.data.clone().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(straight.keys(), model.data.len());
        prop_assert_eq!(straight.sessions(), model.sessions.len());
        for node in 0..4 {
            prop_assert_eq!(
                straight.http_address(node),
                model.addresses.get(&node).map(String::as_str)
            );
        }
    }

    #[test]
    fn command_encoding_roundtrips(command in any_command()) {
        prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn decoding_a_damaged_command_never_panics(
        command in any_command(),
        mutations in mutations(),
    ) {
        let damaged = mutate(command.encode().to_vec(), &mutations);
        if let Ok(decoded) = Command::decode(&damaged) {
            // Whatever survived must itself be a command that encodes and decodes.
            prop_assert_eq!(Command::decode(&decoded.encode()), Ok(decoded));
        }
    }

    #[test]
    fn restoring_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = StateMachine::restore(&bytes, SESSIONS_MAX);
    }

    #[test]
    fn restoring_a_damaged_snapshot_never_panics(
        steps in prop::collection::vec(small_command(), 0..12),
        mutations in mutations(),
        sessions_max in 0usize..4,
    ) {
        let mut machine = StateMachine::new(sessions_max);
        for (at, command) in steps.iter().enumerate() {
            machine.apply(at as u64 + 1, &command.encode());
        }
        let damaged = mutate(machine.snapshot().to_vec(), &mutations);
        if let Ok(restored) = StateMachine::restore(&damaged, sessions_max) {
            restored.check_invariants();
            let again = StateMachine::restore(&restored.snapshot(), sessions_max)
                .expect("a restored machine's snapshot restores");
            prop_assert_eq!(again.snapshot(), restored.snapshot());
        }
    }
}
