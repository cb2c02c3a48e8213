//! Leases in the store: grant changes no key, puts attach and detach keys, append and cas keep
//! a key's lease, deletes detach, a revoke deletes every key at one revision in key order,
//! refusals change nothing, checkpoints record and clear, sessions cache the answers, and a
//! snapshot carries the table (format 4) while format 3 still restores.

use raftkv::store::{
    Change, ChangeKind, Compare, CompareOp, CompareTarget, KeySelector, LeaseCheckpoint,
    LeaseError, LeaseInfo, RangeEnd, RevisionChanges, SnapshotError, Txn, TxnOp, TxnOpOutcome,
    LEASE_ID_MAX, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_REVISIONS,
};

use super::*;

fn grant(id: u64, ttl_seconds: u64) -> Operation {
    Operation::LeaseGrant { id, ttl_seconds }
}

fn revoke(id: u64) -> Operation {
    Operation::LeaseRevoke { id, expired: false }
}

fn put_leased(key: &str, value: &'static [u8], lease: u64) -> Operation {
    Operation::Put {
        key: key.into(),
        value: Bytes::from_static(value),
        lease,
    }
}

fn checkpoint(checkpoints: &[(u64, u64)]) -> Operation {
    Operation::LeaseCheckpoint {
        checkpoints: checkpoints
            .iter()
            .map(|&(id, remaining_ms)| LeaseCheckpoint { id, remaining_ms })
            .collect(),
    }
}

fn not_found(id: u64) -> Outcome {
    Outcome::LeaseRefused {
        error: LeaseError::NotFound { id },
    }
}

/// The lease of `key` now (0: none or absent).
fn lease_of(harness: &Harness, key: &str) -> u64 {
    harness
        .machine
        .get_versioned(key)
        .map_or(0, |version| version.lease)
}

fn keys_of(harness: &Harness, id: u64) -> Vec<String> {
    harness.machine.lease(id).expect("the lease exists").keys
}

#[test]
fn a_grant_adds_a_lease_without_raising_the_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(
        harness.apply(grant(9, 60)),
        Outcome::LeaseGranted {
            id: 9,
            ttl_seconds: 60
        }
    );
    harness.apply(grant(3, 5));
    assert_eq!(harness.machine.revision(), 1, "a grant changes no key");
    assert_eq!(harness.machine.lease_ids(), vec![3, 9]);
    assert_eq!(harness.machine.leases_count(), 2);
    assert_eq!(
        harness.machine.lease(9),
        Some(LeaseInfo {
            id: 9,
            ttl_seconds: 60,
            remaining_ms: None,
            keys: Vec::new(),
        })
    );
    assert_eq!(harness.machine.lease(4), None);
    assert_eq!(
        harness.machine.lease_deadlines(),
        vec![(3, 5, None), (9, 60, None)]
    );
}

#[test]
fn a_grant_of_an_invalid_or_used_id_is_refused_and_changes_nothing() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(LEASE_ID_MAX, 10));
    for (id, error) in [
        (0, LeaseError::InvalidId { id: 0 }),
        (
            LEASE_ID_MAX + 1,
            LeaseError::InvalidId {
                id: LEASE_ID_MAX + 1,
            },
        ),
        (LEASE_ID_MAX, LeaseError::AlreadyExists { id: LEASE_ID_MAX }),
    ] {
        assert_eq!(
            harness.apply(grant(id, 99)),
            Outcome::LeaseRefused { error }
        );
    }
    assert_eq!(
        harness.machine.lease_deadlines(),
        vec![(LEASE_ID_MAX, 10, None)],
        "the first grant's TTL stands"
    );
    assert_eq!(harness.machine.revision(), 1);
}

#[test]
fn the_error_names_the_id() {
    assert_eq!(
        LeaseError::NotFound { id: 42 }.to_string(),
        "lease 42 does not exist (never granted, revoked or expired)"
    );
    assert!(LeaseError::AlreadyExists { id: 42 }
        .to_string()
        .contains("42"));
    assert!(LeaseError::InvalidId { id: 0 }.to_string().contains('0'));
}

#[test]
fn a_put_attaches_moves_and_detaches_its_key_and_past_reads_show_the_lease_then() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(grant(2, 10));
    harness.apply(put_leased("k", b"a", 1)); // 2
    assert_eq!(lease_of(&harness, "k"), 1);
    assert_eq!(keys_of(&harness, 1), vec!["k"]);
    harness.apply(put_leased("k", b"b", 2)); // 3
    assert_eq!(
        keys_of(&harness, 1),
        Vec::<String>::new(),
        "moved off lease 1"
    );
    assert_eq!(keys_of(&harness, 2), vec!["k"]);
    harness.apply(put("k", b"c")); // 4: a put without a lease detaches (etcd)
    assert_eq!(lease_of(&harness, "k"), 0);
    assert_eq!(keys_of(&harness, 2), Vec::<String>::new());
    let lease_at = |revision| {
        harness
            .machine
            .get_at("k", Some(revision))
            .expect("readable")
            .map(|version| version.lease)
    };
    assert_eq!(
        (lease_at(2), lease_at(3), lease_at(4)),
        (Some(1), Some(2), Some(0))
    );
}

#[test]
fn a_put_naming_a_missing_lease_is_refused_and_changes_nothing() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(put_leased("k", b"old", 1)); // 2
    assert_eq!(harness.apply(put_leased("k", b"new", 7)), not_found(7));
    assert_eq!(harness.apply(put_leased("other", b"new", 7)), not_found(7));
    assert_eq!(harness.machine.revision(), 2);
    assert_eq!(harness.get("k"), Some(&b"old"[..]));
    assert_eq!(harness.get("other"), None);
    assert_eq!(lease_of(&harness, "k"), 1, "still attached to its lease");
}

#[test]
fn append_and_cas_keep_the_keys_lease() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(put_leased("k", b"a", 1));
    harness.apply(append("k", b"b"));
    assert_eq!(
        (harness.get("k"), lease_of(&harness, "k")),
        (Some(&b"ab"[..]), 1)
    );
    assert_eq!(harness.apply(cas("k", Some(b"ab"), b"c")), CAS_SWAPPED);
    assert_eq!(
        (harness.get("k"), lease_of(&harness, "k")),
        (Some(&b"c"[..]), 1)
    );
    assert_eq!(keys_of(&harness, 1), vec!["k"]);
    // Creating a key by append or cas attaches it to nothing.
    harness.apply(append("fresh", b"x"));
    harness.apply(cas("new", None, b"y"));
    assert_eq!(
        (lease_of(&harness, "fresh"), lease_of(&harness, "new")),
        (0, 0)
    );
}

#[test]
fn every_kind_of_delete_detaches() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    for key in ["a", "p/1", "p/2", "t"] {
        harness.apply(put_leased(key, b"v", 1));
    }
    harness.apply(delete("a"));
    assert_eq!(keys_of(&harness, 1), vec!["p/1", "p/2", "t"]);
    harness.apply(Operation::Txn(Txn {
        success: vec![
            TxnOp::DeletePrefix {
                prefix: "p/".into(),
            },
            TxnOp::Delete { key: "t".into() },
        ],
        ..Txn::default()
    }));
    assert_eq!(keys_of(&harness, 1), Vec::<String>::new());
    // A key put again after its delete is not attached unless the put says so.
    harness.apply(put("a", b"again"));
    assert_eq!(lease_of(&harness, "a"), 0);
}

#[test]
fn a_revoke_deletes_every_key_at_one_revision_in_key_order_and_removes_the_lease() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(grant(2, 10));
    harness.apply(put_leased("b", b"1", 1)); // 2
    harness.apply(put_leased("a", b"2", 1)); // 3
    harness.apply(put_leased("c", b"3", 2)); // 4
    harness.apply(put_leased("d", b"4", 1)); // 5
    harness.index += 1;
    let applied = harness.machine.apply_entry(
        harness.index,
        1,
        &encode(
            None,
            Operation::LeaseRevoke {
                id: 1,
                expired: true,
            },
        ),
    );
    harness.machine.check_invariants();
    assert_eq!(
        applied.outcome,
        Outcome::LeaseRevoked {
            id: 1,
            keys_deleted: 3,
            expired: true
        }
    );
    let deleted = |key: &str| Change {
        kind: ChangeKind::Delete,
        key: key.into(),
        value: VersionedValue {
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: 6,
            version: 0,
            lease: 0,
        },
    };
    let expected = RevisionChanges {
        revision: 6,
        changes: vec![deleted("a"), deleted("b"), deleted("d")],
    };
    assert_eq!(applied.revision, 6);
    assert_eq!(applied.changes, Some(expected.clone()));
    assert_eq!(
        harness
            .machine
            .changes_since(6, &KeySelector::Prefix(String::new())),
        Ok(vec![expected]),
        "watchers catching up see the deletes together"
    );
    assert_eq!(harness.machine.lease(1), None);
    assert_eq!(harness.machine.lease_ids(), vec![2]);
    assert_eq!(
        harness.get("c"),
        Some(&b"3"[..]),
        "another lease's key stays"
    );
    assert_eq!(harness.machine.keys(), 1);
    // The lease is gone: a put naming it is refused now.
    assert_eq!(harness.apply(put_leased("a", b"x", 1)), not_found(1));
}

#[test]
fn a_revoke_without_keys_does_not_raise_the_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"v")); // 2
    harness.apply(grant(5, 10));
    harness.index += 1;
    let applied = harness
        .machine
        .apply_entry(harness.index, 1, &encode(None, revoke(5)));
    assert_eq!(
        applied.outcome,
        Outcome::LeaseRevoked {
            id: 5,
            keys_deleted: 0,
            expired: false
        }
    );
    assert_eq!((applied.revision, applied.changes), (2, None));
    assert_eq!(harness.machine.leases_count(), 0);
}

#[test]
fn a_revoke_of_a_missing_lease_is_refused_and_changes_nothing() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(put_leased("k", b"v", 1));
    assert_eq!(harness.apply(revoke(2)), not_found(2));
    assert_eq!(harness.apply(revoke(0)), not_found(0));
    assert_eq!(harness.machine.revision(), 2);
    assert_eq!(keys_of(&harness, 1), vec!["k"]);
}

#[test]
fn a_transaction_attaches_compares_leases_and_refuses_a_missing_one_before_running() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(put_leased("held", b"v", 1)); // 2
    let lease_is = |key: &str, id| Compare {
        key: key.into(),
        range_end: RangeEnd::Single,
        op: CompareOp::Equal,
        target: CompareTarget::Lease(id),
    };
    let txn_put = |key: &str, lease| TxnOp::Put {
        key: key.into(),
        value: Bytes::from_static(b"t"),
        lease,
    };
    // The chosen branch names a missing lease after a valid put: nothing runs.
    let refused = Txn {
        compare: vec![lease_is("held", 1)],
        success: vec![txn_put("x", 1), txn_put("y", 9)],
        failure: Vec::new(),
    };
    assert_eq!(harness.apply(Operation::Txn(refused)), not_found(9));
    assert_eq!((harness.machine.revision(), harness.get("x")), (2, None));
    // The branch not chosen may name anything.
    let ran = Txn {
        compare: vec![lease_is("held", 1), lease_is("absent", 0)],
        success: vec![txn_put("x", 1), txn_put("held", 0)],
        failure: vec![txn_put("y", 9)],
    };
    assert_eq!(
        harness.apply(Operation::Txn(ran)),
        Outcome::Txn {
            succeeded: true,
            results: vec![
                TxnOpOutcome::Put { prev: None },
                TxnOpOutcome::Put {
                    prev: harness.machine.get_at("held", Some(2)).expect("readable"),
                },
            ],
        }
    );
    assert_eq!(keys_of(&harness, 1), vec!["x"], "x attached, held detached");
    assert_eq!(lease_of(&harness, "held"), 0);
}

#[test]
fn checkpoints_record_and_clear_the_remaining_time_of_leases_that_exist() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 60));
    harness.apply(grant(2, 60));
    assert_eq!(
        harness.apply(checkpoint(&[(1, 1500), (2, 30_000), (3, 9)])),
        Outcome::LeaseCheckpointed
    );
    assert_eq!(
        harness.machine.lease_deadlines(),
        vec![(1, 60, Some(1500)), (2, 60, Some(30_000))],
        "lease 3 does not exist and is skipped"
    );
    harness.apply(checkpoint(&[(1, 0)]));
    assert_eq!(harness.machine.lease(1).expect("exists").remaining_ms, None);
    assert_eq!(
        harness.machine.lease(2).expect("exists").remaining_ms,
        Some(30_000)
    );
    assert_eq!(harness.machine.revision(), 1);
}

#[test]
fn sessions_answer_a_retried_lease_command_with_its_first_outcome() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let granted = harness.apply_as(7, 1, grant(1, 10));
    assert_eq!(
        harness.apply_as(7, 1, grant(1, 10)),
        granted,
        "not AlreadyExists"
    );
    harness.apply(put_leased("k", b"v", 1));
    let revoked = harness.apply_as(7, 2, revoke(1));
    assert_eq!(harness.apply_as(7, 2, revoke(1)), revoked, "not NotFound");
    let refused = harness.apply_as(7, 3, put_leased("k", b"v", 1));
    assert_eq!(refused, not_found(1));
    harness.apply(grant(1, 10));
    assert_eq!(
        harness.apply_as(7, 3, put_leased("k", b"v", 1)),
        refused,
        "a refusal is cached too, so the retry changes nothing"
    );
    assert_eq!(harness.get("k"), None);
}

#[test]
fn a_snapshot_carries_leases_their_keys_and_checkpoints() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(grant(2, 20));
    harness.apply(put_leased("a", b"1", 1));
    harness.apply(put_leased("b", b"2", 2));
    harness.apply(put_leased("a", b"3", 2));
    harness.apply_as(4, 1, revoke(1));
    harness.apply(checkpoint(&[(2, 7000)]));
    let snapshot = harness.machine.snapshot();
    let restored = StateMachine::restore(&snapshot, SESSIONS_MAX).expect("restores");
    restored.check_invariants();
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(
        restored.lease(2),
        Some(LeaseInfo {
            id: 2,
            ttl_seconds: 20,
            remaining_ms: Some(7000),
            keys: vec!["a".into(), "b".into()],
        })
    );
    assert_eq!(restored.lease_ids(), vec![2]);
    // Past versions keep their lease after the restore.
    assert_eq!(
        restored
            .get_at("a", Some(2))
            .expect("readable")
            .map(|version| version.lease),
        Some(1)
    );
}

/// The byte that carries the format version: field 1 is written first.
fn with_format(snapshot: &[u8], version: u32) -> Vec<u8> {
    let mut bytes = snapshot.to_vec();
    assert_eq!(
        bytes[..2],
        [0x08, SNAPSHOT_FORMAT_VERSION as u8],
        "field 1, the version"
    );
    bytes[1] = version as u8;
    bytes
}

#[test]
fn a_format_3_snapshot_restores_and_one_claiming_leases_is_refused() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"v"));
    harness.apply(put("k", b"w"));
    let format_3 = with_format(
        &harness.machine.snapshot(),
        SNAPSHOT_FORMAT_VERSION_REVISIONS,
    );
    let restored = StateMachine::restore(&format_3, SESSIONS_MAX).expect("format 3 restores");
    assert_eq!(restored.revision(), 3);
    assert_eq!(restored.leases_count(), 0);
    assert_eq!(restored.snapshot(), harness.machine.snapshot());
    harness.apply(grant(1, 10));
    harness.apply(put_leased("k", b"x", 1));
    let format_3 = with_format(
        &harness.machine.snapshot(),
        SNAPSHOT_FORMAT_VERSION_REVISIONS,
    );
    assert!(matches!(
        StateMachine::restore(&format_3, SESSIONS_MAX),
        Err(SnapshotError::Malformed { what: "leases", .. })
    ));
}

#[test]
fn a_key_moved_between_leases_by_every_kind_of_write_is_listed_by_its_latest_lease_only() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(grant(1, 10));
    harness.apply(grant(2, 10));
    // Harness::apply checks after each step that the lease table lists exactly the live keys
    // whose latest version names the lease, each once.
    let listed = |harness: &Harness| (keys_of(harness, 1), keys_of(harness, 2));
    let none = Vec::<String>::new;
    let k = || vec!["k".to_owned()];
    harness.apply(put_leased("k", b"a", 1));
    harness.apply(put_leased("k", b"b", 1)); // the same lease again
    assert_eq!(listed(&harness), (k(), none()));
    harness.apply(put_leased("k", b"c", 2));
    assert_eq!(listed(&harness), (none(), k()));
    harness.apply(append("k", b"d"));
    assert_eq!(listed(&harness), (none(), k()), "an append keeps the lease");
    harness.apply(Operation::Txn(Txn {
        success: vec![TxnOp::Put {
            key: "k".into(),
            value: Bytes::from_static(b"e"),
            lease: 1,
        }],
        ..Txn::default()
    }));
    assert_eq!(
        listed(&harness),
        (k(), none()),
        "a transaction's put moves it"
    );
    harness.apply(Operation::Txn(Txn {
        success: vec![TxnOp::PutKeeping {
            key: "k".into(),
            value: Some(Bytes::from_static(b"f")),
            lease: None,
        }],
        ..Txn::default()
    }));
    assert_eq!(
        listed(&harness),
        (k(), none()),
        "keeping the lease keeps it"
    );
    harness.apply(put("k", b"g"));
    assert_eq!(listed(&harness), (none(), none()));
    harness.apply(put_leased("k", b"h", 2));
    harness.apply(delete("k"));
    assert_eq!(listed(&harness), (none(), none()));
    // Compacted away entirely (its tombstone is old), then created again with a lease: the
    // lease lists the new key.
    harness.apply(put("other", b"x"));
    let revision = harness.machine.revision();
    harness.apply(Operation::Compact { revision });
    harness.apply(put_leased("k", b"i", 1));
    assert_eq!(listed(&harness), (k(), none()));
    let revoked = harness.apply(revoke(2));
    assert!(matches!(
        revoked,
        Outcome::LeaseRevoked {
            keys_deleted: 0,
            ..
        }
    ));
    assert_eq!(
        harness.get("k"),
        Some(&b"i"[..]),
        "lease 2 no longer held it"
    );
    harness.apply(revoke(1));
    assert_eq!(harness.get("k"), None);
}
