//! Transactions: comparisons choose the branch, the branch runs at one revision with its reads
//! seeing its earlier writes, refusals change nothing, the encoding round-trips and refuses
//! what it does not know, and a retry under a session gets the first answer and revision.

use raftkv::store::{
    CommandError, Compare, CompareOp, CompareTarget, KeySelector, RangeEnd, Txn, TxnError, TxnOp,
    TxnOpOutcome, TXN_SCAN_LIMIT_MAX,
};

use super::*;

fn txn_put(key: &str, value: &'static [u8]) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: Bytes::from_static(value),
        lease: 0,
    }
}

fn version_is(key: &str, version: u64) -> Compare {
    Compare {
        key: key.into(),
        range_end: RangeEnd::Single,
        op: CompareOp::Equal,
        target: CompareTarget::Version(version),
    }
}

#[test]
fn the_success_branch_runs_at_one_revision_and_its_reads_see_its_writes() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("acct/a", b"10")); // 2
    harness.apply(put("acct/b", b"5")); // 3
    let txn = Txn {
        compare: vec![version_is("acct/a", 1), version_is("missing", 0)],
        success: vec![
            txn_put("acct/a", b"7"),
            txn_put("acct/b", b"8"),
            TxnOp::Get {
                key: "acct/a".into(),
            },
            TxnOp::Scan {
                prefix: "acct/".into(),
                limit: 1,
            },
            TxnOp::DeletePrefix {
                prefix: "other/".into(),
            },
        ],
        failure: vec![TxnOp::Delete {
            key: "acct/a".into(),
        }],
    };
    harness.index += 1;
    let applied = harness
        .machine
        .apply_entry(harness.index, 1, &encode(None, Operation::Txn(txn)));
    harness.machine.check_invariants();
    assert_eq!(
        applied.revision, 4,
        "one revision for the whole transaction"
    );
    let Outcome::Txn { succeeded, results } = applied.outcome else {
        panic!("a transaction outcome: {:?}", applied.outcome);
    };
    assert!(succeeded);
    let a_now = VersionedValue {
        value: Bytes::from_static(b"7"),
        create_revision: 2,
        mod_revision: 4,
        version: 2,
        lease: 0,
    };
    assert_eq!(
        results,
        vec![
            TxnOpOutcome::Put {
                prev: Some(VersionedValue {
                    value: Bytes::from_static(b"10"),
                    create_revision: 2,
                    mod_revision: 2,
                    version: 1,
                    lease: 0,
                })
            },
            TxnOpOutcome::Put {
                prev: Some(VersionedValue {
                    value: Bytes::from_static(b"5"),
                    create_revision: 3,
                    mod_revision: 3,
                    version: 1,
                    lease: 0,
                })
            },
            TxnOpOutcome::Get {
                value: Some(a_now.clone())
            },
            TxnOpOutcome::Scan {
                items: vec![("acct/a".into(), a_now)],
                truncated: true,
            },
            TxnOpOutcome::Delete { deleted: 0 },
        ]
    );
    let changes = applied.changes.expect("the transaction changed keys");
    let keys: Vec<&str> = changes.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        ["acct/a", "acct/b"],
        "events in the order the branch made them"
    );
    assert_eq!(
        harness
            .machine
            .changes_since(4, &KeySelector::Prefix("acct/".into())),
        Ok(vec![changes]),
        "history keeps the same order"
    );
}

#[test]
fn a_failed_comparison_runs_the_failure_branch_and_value_comparisons_fail_on_a_missing_key() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"v"));
    let txn = Txn {
        compare: vec![Compare {
            key: "missing".into(),
            range_end: RangeEnd::Single,
            op: CompareOp::NotEqual,
            target: CompareTarget::Value(Bytes::from_static(b"x")),
        }],
        success: vec![txn_put("k", b"success")],
        failure: vec![
            TxnOp::Delete { key: "k".into() },
            TxnOp::Get { key: "k".into() },
        ],
    };
    assert_eq!(
        harness.apply(Operation::Txn(txn)),
        Outcome::Txn {
            succeeded: false,
            results: vec![
                TxnOpOutcome::Delete { deleted: 1 },
                TxnOpOutcome::Get { value: None }
            ],
        }
    );
    assert_eq!(harness.machine.revision(), 3);
    assert_eq!(harness.get("k"), None);
}

#[test]
fn a_transaction_that_changes_nothing_keeps_the_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"v"));
    let reads_only = Txn {
        success: vec![
            TxnOp::Get { key: "k".into() },
            TxnOp::DeletePrefix {
                prefix: "none/".into(),
            },
        ],
        ..Txn::default()
    };
    harness.index += 1;
    let applied =
        harness
            .machine
            .apply_entry(harness.index, 1, &encode(None, Operation::Txn(reads_only)));
    assert_eq!((applied.revision, applied.changes), (2, None));
}

#[test]
fn delete_prefix_removes_every_key_under_it_at_one_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    for key in ["p/1", "p/2", "p/3", "q"] {
        harness.apply(put(key, b"v"));
    }
    let txn = Txn {
        success: vec![TxnOp::DeletePrefix {
            prefix: "p/".into(),
        }],
        ..Txn::default()
    };
    assert_eq!(
        harness.apply(Operation::Txn(txn)),
        Outcome::Txn {
            succeeded: true,
            results: vec![TxnOpOutcome::Delete { deleted: 3 }],
        }
    );
    assert_eq!(harness.machine.revision(), 6);
    assert_eq!(harness.machine.keys(), 1);
    let at_5 = harness
        .machine
        .scan_at("p/", 10, Some(5))
        .expect("readable");
    assert_eq!(
        at_5.0.len(),
        3,
        "the state before the transaction is still readable"
    );
}

#[test]
fn a_refused_transaction_changes_nothing_on_any_replica() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"v"));
    let twice = Txn {
        failure: vec![txn_put("k", b"1"), txn_put("k", b"2")],
        ..Txn::default()
    };
    assert_eq!(
        twice.validate(),
        Err(TxnError::KeyChangedTwice { key: "k".into() })
    );
    assert_eq!(
        harness.apply(Operation::Txn(twice)),
        Outcome::TxnRefused {
            error: TxnError::KeyChangedTwice { key: "k".into() }
        },
        "refused even though the branch with the conflict would not run"
    );
    let everything = Txn {
        success: vec![TxnOp::DeletePrefix {
            prefix: String::new(),
        }],
        ..Txn::default()
    };
    assert_eq!(
        harness.apply(Operation::Txn(everything)),
        Outcome::TxnRefused {
            error: TxnError::EmptyDeletePrefix
        }
    );
    assert_eq!(harness.machine.revision(), 2);
    assert_eq!(harness.get("k"), Some(&b"v"[..]));
}

#[test]
fn a_scan_in_a_transaction_returns_at_most_the_cap() {
    let mut harness = Harness::new(SESSIONS_MAX);
    for at in 0..=TXN_SCAN_LIMIT_MAX {
        harness.index += 1;
        let key = format!("k/{at:05}");
        harness.machine.apply(
            harness.index,
            &encode(
                None,
                Operation::Put {
                    key,
                    value: Bytes::new(),
                    lease: 0,
                },
            ),
        );
    }
    let txn = Txn {
        success: vec![TxnOp::Scan {
            prefix: "k/".into(),
            limit: usize::MAX,
        }],
        ..Txn::default()
    };
    let Outcome::Txn { results, .. } = harness.apply(Operation::Txn(txn)) else {
        panic!("a transaction outcome");
    };
    let [TxnOpOutcome::Scan { items, truncated }] = &results[..] else {
        panic!("one scan result: {results:?}");
    };
    assert_eq!((items.len(), *truncated), (TXN_SCAN_LIMIT_MAX, true));
}

#[test]
fn a_retried_transaction_gets_its_first_outcome_and_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    let txn = Operation::Txn(Txn {
        compare: vec![version_is("k", 0)],
        success: vec![txn_put("k", b"first")],
        failure: vec![TxnOp::Get { key: "k".into() }],
    });
    harness.index += 1;
    let first = harness
        .machine
        .apply_entry(harness.index, 1, &encode(Some((7, 1)), txn.clone()));
    harness.apply(put("k", b"other"));
    // Through a snapshot too: the cached outcome and revision round-trip.
    let snapshot = harness.machine.snapshot();
    harness.machine = StateMachine::restore(&snapshot, SESSIONS_MAX).expect("restores");
    harness.index += 1;
    let retry = harness
        .machine
        .apply_entry(harness.index, 2, &encode(Some((7, 1)), txn));
    assert_eq!(
        (&retry.outcome, retry.index, retry.revision, &retry.changes),
        (&first.outcome, first.index, first.revision, &None)
    );
    assert_eq!(first.revision, 2);
    assert_eq!(harness.get("k"), Some(&b"other"[..]), "not applied again");
}

#[test]
fn a_transaction_round_trips_through_the_log_and_unknown_parts_are_refused() {
    let txn = Txn {
        compare: vec![
            Compare {
                key: "a".into(),
                range_end: RangeEnd::Single,
                op: CompareOp::Greater,
                target: CompareTarget::Value(Bytes::from_static(b"\xff")),
            },
            Compare {
                key: "b".into(),
                range_end: RangeEnd::Single,
                op: CompareOp::NotEqual,
                target: CompareTarget::Exists(true),
            },
            Compare {
                key: "c".into(),
                range_end: RangeEnd::Single,
                op: CompareOp::Less,
                target: CompareTarget::ModRevision(9),
            },
            Compare {
                key: "d".into(),
                range_end: RangeEnd::Single,
                op: CompareOp::Equal,
                target: CompareTarget::CreateRevision(0),
            },
        ],
        success: vec![
            txn_put("a", b""),
            TxnOp::DeletePrefix { prefix: "p".into() },
            TxnOp::Scan {
                prefix: String::new(),
                limit: 3,
            },
        ],
        failure: vec![
            TxnOp::Delete { key: "a".into() },
            TxnOp::Get { key: "b".into() },
        ],
    };
    let command = Command {
        session: None,
        operation: Operation::Txn(txn),
        request_id: Some(4),
    };
    assert_eq!(Command::decode(&command.encode()), Ok(command));
    // 9 txn { 2 success: { (no operation) } }: an operation this build does not know.
    assert_eq!(
        Command::decode(&[0x4a, 0x02, 0x12, 0x00]),
        Err(CommandError::UnknownTxnPart { what: "operation" })
    );
    // 9 txn { 1 compare: { 1 key: "k", 4 version: 1 } }: no operator.
    assert_eq!(
        Command::decode(&[0x4a, 0x07, 0x0a, 0x05, 0x0a, 0x01, b'k', 0x20, 0x01]),
        Err(CommandError::UnknownTxnPart {
            what: "comparison operator"
        })
    );
}
