//! Each operation's semantics: put, delete, append, compare-and-swap, announcements, scans,
//! skipped and undecodable entries, and the byte count.

use raftkv::store::CommandError;

use super::*;

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
        grpc_address: None,
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
fn announce_records_a_grpc_address_and_one_without_it_forgets_it() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let announce = |grpc: Option<&str>| Operation::Announce {
        node: 2,
        http_address: "10.0.0.2:8080".into(),
        grpc_address: grpc.map(str::to_string),
    };
    assert_eq!(
        harness.apply(announce(Some("10.0.0.2:2379"))),
        Outcome::Announced
    );
    assert_eq!(harness.machine.grpc_address(2), Some("10.0.0.2:2379"));
    assert_eq!(harness.machine.grpc_address(1), None);
    // Restarted without --grpc-addr: nobody may forward to the old address any more.
    assert_eq!(harness.apply(announce(None)), Outcome::Announced);
    assert_eq!(harness.machine.grpc_address(2), None);
    assert_eq!(harness.machine.http_address(2), Some("10.0.0.2:8080"));
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
