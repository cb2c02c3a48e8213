//! etcd's KV semantics in the store: range reads (count, limit, sort, filters, revisions),
//! puts keeping the value or lease, range deletes, comparisons over ranges, nested
//! transactions and the duplicate-key rule. The expected answers were checked against etcd
//! 3.4 where etcd has one (the report of issue 28 lists which).

use raftkv::store::{
    Compare, CompareOp, CompareTarget, KeyRange, LeaseError, RangeEnd, RangeQuery, RangeResult,
    RevisionError, SortOrder, SortTarget, Txn, TxnError, TxnOp, TxnOpOutcome,
};

use super::*;

fn txn_put(key: &str, value: &'static [u8]) -> TxnOp {
    TxnOp::Put {
        key: key.into(),
        value: Bytes::from_static(value),
        lease: 0,
    }
}

fn range(start: &str, end: &str) -> KeyRange {
    KeyRange::from_etcd(start.as_bytes(), end.as_bytes()).expect("utf-8")
}

fn keys(result: &RangeResult) -> Vec<&str> {
    result.kvs.iter().map(|(key, _)| key.as_str()).collect()
}

fn txn(compare: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp>) -> Txn {
    Txn {
        compare,
        success,
        failure,
    }
}

fn run(harness: &mut Harness, txn: Txn) -> Outcome {
    harness.apply(Operation::Txn(txn))
}

fn assert_succeeded(outcome: &Outcome) {
    assert!(
        matches!(
            outcome,
            Outcome::Txn {
                succeeded: true,
                ..
            }
        ),
        "{outcome:?}"
    );
}

/// a@2 b@3 c@4 d@5 e@6, then b changed at 7 and c at 8.
fn five_keys() -> Harness {
    let mut harness = Harness::new(SESSIONS_MAX);
    for key in ["a", "b", "c", "d", "e"] {
        harness.apply(put(key, b"1"));
    }
    harness.apply(put("b", b"2"));
    harness.apply(put("c", b"3"));
    assert_eq!(harness.machine.revision(), 8);
    harness
}

#[test]
fn a_range_counts_every_key_and_says_more_when_the_limit_cut_some() {
    let harness = five_keys();
    let mut query = RangeQuery::of(range("b", "e"));
    query.limit = 2;
    let result = harness.machine.range(&query).expect("readable");
    assert_eq!(keys(&result), ["b", "c"]);
    assert!(result.more);
    assert_eq!(result.count, 3, "the count ignores the limit");

    query.limit = 3;
    let result = harness.machine.range(&query).expect("readable");
    assert!(!result.more, "nothing was cut");

    // etcd answers an end at or before the start with nothing, not an error.
    let empty = harness
        .machine
        .range(&RangeQuery::of(range("d", "b")))
        .expect("readable");
    assert_eq!((empty.kvs.len(), empty.count, empty.more), (0, 0, false));

    let everything = harness
        .machine
        .range(&RangeQuery::of(range("\0", "\0")))
        .expect("readable");
    assert_eq!(keys(&everything), ["a", "b", "c", "d", "e"]);
}

#[test]
fn a_range_at_a_revision_sees_that_revision_and_refuses_compacted_or_future_ones() {
    let mut harness = five_keys();
    let mut query = RangeQuery::of(range("a", "z"));
    query.revision = 4;
    let result = harness.machine.range(&query).expect("readable");
    assert_eq!(keys(&result), ["a", "b", "c"]);
    assert_eq!(
        result.kvs[1].1.value,
        Bytes::from_static(b"1"),
        "b before 7"
    );
    assert_eq!(result.count, 3);

    query.revision = 9;
    assert!(matches!(
        harness.machine.range(&query),
        Err(RevisionError::Future { requested: 9, .. })
    ));
    harness.apply(Operation::Compact { revision: 6 });
    query.revision = 5;
    assert!(matches!(
        harness.machine.range(&query),
        Err(RevisionError::Compacted { requested: 5, .. })
    ));
    query.revision = 6;
    assert!(
        harness.machine.range(&query).is_ok(),
        "the compaction revision is readable"
    );
}

#[test]
fn sorting_by_a_target_other_than_the_key_without_an_order_sorts_ascending() {
    let harness = five_keys();
    let sorted = |order, target, limit| {
        let mut query = RangeQuery::of(range("a", "z"));
        query.sort_order = order;
        query.sort_target = target;
        query.limit = limit;
        harness.machine.range(&query).expect("readable")
    };
    // Mod revisions: a 2, d 5, e 6, b 7, c 8.
    assert_eq!(
        keys(&sorted(SortOrder::None, SortTarget::Mod, 0)),
        ["a", "d", "e", "b", "c"]
    );
    assert_eq!(
        keys(&sorted(SortOrder::Descend, SortTarget::Mod, 2)),
        ["c", "b"]
    );
    assert_eq!(
        keys(&sorted(SortOrder::Descend, SortTarget::Key, 0)),
        ["e", "d", "c", "b", "a"]
    );
    // Versions: b and c 2, the rest 1; ties keep key order.
    assert_eq!(
        keys(&sorted(SortOrder::Descend, SortTarget::Version, 0)),
        ["b", "c", "a", "d", "e"]
    );
    let limited = sorted(SortOrder::Ascend, SortTarget::Value, 1);
    assert_eq!(keys(&limited), ["a"]);
    assert!(limited.more);
    assert_eq!(limited.count, 5);
}

/// etcd's lock and election recipes find the waiter ahead of them with
/// `max_create_revision = mine - 1`, sorted by create revision descending, limit 1.
#[test]
fn the_lock_recipe_finds_the_key_created_last_before_a_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("lock/x", b"")); // 2
    harness.apply(put("other", b"")); // 3
    harness.apply(put("lock/y", b"")); // 4
    harness.apply(put("lock/z", b"")); // 5
    harness.apply(put("lock/x", b"again")); // 6: create revision stays 2
    let mut query = RangeQuery::of(KeyRange::prefix("lock/"));
    query.max_create_revision = 4;
    query.sort_order = SortOrder::Descend;
    query.sort_target = SortTarget::Create;
    query.limit = 1;
    let result = harness.machine.range(&query).expect("readable");
    assert_eq!(keys(&result), ["lock/y"]);
    assert_eq!(result.kvs[0].1.create_revision, 4);
    assert!(
        result.more,
        "lock/x passed the filter too, and the limit cut it"
    );
    assert_eq!(result.count, 3, "etcd counts the range before its filters");

    query.max_create_revision = 1;
    let none = harness.machine.range(&query).expect("readable");
    assert!(none.kvs.is_empty() && !none.more);
}

#[test]
fn revision_filters_keys_only_and_count_only() {
    let harness = five_keys();
    let mut query = RangeQuery::of(range("a", "z"));
    query.min_mod_revision = 5;
    query.max_mod_revision = 7;
    assert_eq!(
        keys(&harness.machine.range(&query).expect("ok")),
        ["b", "d", "e"]
    );
    let mut query = RangeQuery::of(range("a", "z"));
    query.min_create_revision = 3;
    query.max_create_revision = 4;
    query.keys_only = true;
    let result = harness.machine.range(&query).expect("ok");
    assert_eq!(keys(&result), ["b", "c"]);
    assert!(result
        .kvs
        .iter()
        .all(|(_, version)| version.value.is_empty()));
    assert_eq!(result.kvs[0].1.version, 2, "keys only keeps the revisions");
    let mut query = RangeQuery::of(range("b", "\0"));
    query.count_only = true;
    query.limit = 1;
    assert_eq!(
        harness.machine.range(&query).expect("ok"),
        RangeResult {
            kvs: Vec::new(),
            more: false,
            count: 4
        }
    );
}

#[test]
fn a_put_keeping_the_value_or_lease_needs_the_key_and_keeps_what_it_says() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(Operation::LeaseGrant {
        id: 7,
        ttl_seconds: 60,
    });
    harness.apply(Operation::Put {
        key: "k".into(),
        value: Bytes::from_static(b"v1"),
        lease: 7,
    }); // 2
    let keep_value = TxnOp::PutKeeping {
        key: "k".into(),
        value: None,
        lease: Some(0),
    };
    let outcome = run(&mut harness, txn(vec![], vec![keep_value], vec![]));
    assert_succeeded(&outcome);
    let now = harness.machine.get_versioned("k").expect("exists").clone();
    assert_eq!((&now.value[..], now.lease, now.version), (&b"v1"[..], 0, 2));

    let keep_lease = TxnOp::PutKeeping {
        key: "k".into(),
        value: Some(Bytes::from_static(b"v2")),
        lease: None,
    };
    run(&mut harness, txn(vec![], vec![keep_lease], vec![]));
    let now = harness.machine.get_versioned("k").expect("exists").clone();
    assert_eq!((&now.value[..], now.lease), (&b"v2"[..], 0));

    let revision = harness.machine.revision();
    let missing = TxnOp::PutKeeping {
        key: "missing".into(),
        value: None,
        lease: Some(0),
    };
    let outcome = run(
        &mut harness,
        txn(vec![], vec![txn_put("other", b"x"), missing], vec![]),
    );
    assert_eq!(
        outcome,
        Outcome::TxnRefused {
            error: TxnError::KeyNotFound {
                key: "missing".into()
            }
        }
    );
    assert_eq!(harness.machine.revision(), revision, "nothing ran");
    assert_eq!(harness.get("other"), None);
}

#[test]
fn a_range_delete_removes_its_keys_at_one_revision_with_their_previous_versions() {
    let mut harness = five_keys();
    let delete = TxnOp::DeleteRange {
        range: range("b", "d"),
        prev_kv: true,
    };
    let outcome = run(&mut harness, txn(vec![], vec![delete], vec![]));
    let Outcome::Txn { results, .. } = outcome else {
        panic!("{outcome:?}");
    };
    let [TxnOpOutcome::DeleteRange { deleted, prev }] = &results[..] else {
        panic!("{results:?}");
    };
    assert_eq!(*deleted, 2);
    let prev_keys: Vec<_> = prev.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(prev_keys, ["b", "c"]);
    assert_eq!(prev[1].1.value, Bytes::from_static(b"3"));
    assert_eq!(harness.machine.revision(), 9, "one revision for both");
    assert_eq!(harness.machine.keys(), 3);

    let quiet = TxnOp::DeleteRange {
        range: range("a", "\0"),
        prev_kv: false,
    };
    let outcome = run(&mut harness, txn(vec![], vec![quiet], vec![]));
    assert_eq!(
        outcome,
        Outcome::Txn {
            succeeded: true,
            results: vec![TxnOpOutcome::DeleteRange {
                deleted: 3,
                prev: Vec::new()
            }]
        }
    );
    let nothing = TxnOp::DeleteRange {
        range: range("a", "\0"),
        prev_kv: false,
    };
    run(&mut harness, txn(vec![], vec![nothing], vec![]));
    assert_eq!(
        harness.machine.revision(),
        10,
        "deleting nothing moves no revision"
    );
}

fn compare_range(start: &str, end: &str, op: CompareOp, target: CompareTarget) -> Compare {
    let range = range(start, end);
    Compare {
        key: range.start,
        range_end: range.end,
        op,
        target,
    }
}

#[test]
fn a_comparison_over_a_range_holds_for_every_key_and_an_empty_range_compares_as_a_missing_key() {
    let mut harness = five_keys();
    let holds = |harness: &mut Harness, compare: Compare| {
        matches!(
            run(harness, txn(vec![compare], vec![], vec![])),
            Outcome::Txn {
                succeeded: true,
                ..
            }
        )
    };
    let greater = |value: u64| CompareTarget::ModRevision(value);
    assert!(holds(
        &mut harness,
        compare_range("a", "z", CompareOp::Greater, greater(1))
    ));
    assert!(!holds(
        &mut harness,
        compare_range("a", "z", CompareOp::Greater, greater(2))
    ));
    assert!(holds(
        &mut harness,
        compare_range("b", "d", CompareOp::Equal, CompareTarget::Version(2))
    ));
    // No key in [x, z): as for a missing key, version 0, and every value comparison fails.
    assert!(holds(
        &mut harness,
        compare_range("x", "z", CompareOp::Equal, CompareTarget::Version(0))
    ));
    let value = CompareTarget::Value(Bytes::from_static(b"1"));
    assert!(!holds(
        &mut harness,
        compare_range("x", "z", CompareOp::NotEqual, value)
    ));
}

#[test]
fn nested_comparisons_see_the_state_before_any_operation_runs() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("k", b"1")); // 2
    let value_is = |value: &'static [u8]| {
        Compare::key(
            "k",
            CompareOp::Equal,
            CompareTarget::Value(Bytes::from_static(value)),
        )
    };
    let nested = txn(
        vec![value_is(b"1")],
        vec![
            txn_put("then", b"x"),
            TxnOp::Range(RangeQuery::of(KeyRange::single("k"))),
        ],
        vec![txn_put("else", b"x")],
    );
    let outcome = run(
        &mut harness,
        txn(vec![], vec![txn_put("k", b"2"), TxnOp::Txn(nested)], vec![]),
    );
    let Outcome::Txn {
        succeeded: true,
        results,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    let [TxnOpOutcome::Put { .. }, TxnOpOutcome::Txn { succeeded, results }] = &results[..] else {
        panic!("{results:?}");
    };
    assert!(succeeded, "k was 1 before the outer put ran");
    let [TxnOpOutcome::Put { prev: None }, TxnOpOutcome::Range(read)] = &results[..] else {
        panic!("{results:?}");
    };
    assert_eq!(
        read.kvs[0].1.value,
        Bytes::from_static(b"2"),
        "the read sees the put"
    );
    assert_eq!(harness.get("then"), Some(&b"x"[..]));
    assert_eq!(harness.get("else"), None);
    assert_eq!(
        harness.machine.revision(),
        3,
        "one revision for the nested writes too"
    );
}

#[test]
fn a_key_changed_twice_on_any_path_is_refused_but_the_two_branches_of_one_txn_may_share_it() {
    let refused = |success: Vec<TxnOp>| txn(vec![], success, vec![]).validate().err();
    let twice = |key: &str| Some(TxnError::KeyChangedTwice { key: key.into() });
    let nested =
        |success: Vec<TxnOp>, failure: Vec<TxnOp>| TxnOp::Txn(txn(vec![], success, failure));
    let delete_range = |start: &str, end: &str| TxnOp::DeleteRange {
        range: range(start, end),
        prev_kv: false,
    };
    assert_eq!(
        refused(vec![
            txn_put("a", b""),
            nested(vec![txn_put("a", b"")], vec![])
        ]),
        twice("a")
    );
    assert_eq!(
        refused(vec![nested(
            vec![txn_put("a", b"")],
            vec![txn_put("a", b"")]
        )]),
        None,
        "then and else never both run"
    );
    assert_eq!(
        refused(vec![
            nested(vec![txn_put("a", b"")], vec![]),
            nested(vec![], vec![txn_put("a", b"")]),
        ]),
        twice("a"),
        "two nested transactions may both run"
    );
    assert_eq!(
        refused(vec![delete_range("a", "c"), txn_put("b", b"")]),
        twice("b")
    );
    assert_eq!(
        refused(vec![txn_put("b", b""), delete_range("a", "\0")]),
        twice("b")
    );
    assert_eq!(
        refused(vec![
            nested(vec![txn_put("b", b"")], vec![]),
            nested(vec![delete_range("b", "")], vec![])
        ]),
        twice("b"),
        "a nested put before a sibling's delete (etcd lets this one through)"
    );
    assert_eq!(
        refused(vec![nested(
            vec![txn_put("b", b"")],
            vec![delete_range("a", "z")]
        )]),
        None,
        "a nested transaction's put and its other branch's delete never both run"
    );
    assert_eq!(
        refused(vec![
            delete_range("a", "c"),
            delete_range("b", "d"),
            txn_put("d", b"")
        ]),
        None,
        "deletes may overlap"
    );
}

#[test]
fn nested_transactions_count_against_the_parents_operations() {
    let ops = |count: usize| vec![TxnOp::Get { key: "k".into() }; count];
    let inner = txn(vec![], ops(60), vec![]);
    let mut outer_ops = ops(67);
    outer_ops.push(TxnOp::Txn(inner.clone()));
    assert_eq!(
        txn(vec![], outer_ops, vec![]).validate(),
        Ok(()),
        "68 + 60 = 128"
    );
    let mut outer_ops = ops(68);
    outer_ops.push(TxnOp::Txn(inner));
    assert_eq!(
        txn(vec![], outer_ops, vec![]).validate(),
        Err(TxnError::TooManyOperations { count: 60 })
    );
}

#[test]
fn a_missing_lease_or_an_unreadable_revision_on_the_chosen_path_refuses_the_whole_transaction() {
    let mut harness = five_keys();
    let leased = TxnOp::Put {
        key: "leased".into(),
        value: Bytes::new(),
        lease: 99,
    };
    // A put of "a", then a nested transaction that puts with the missing lease if `compare`.
    let nested_lease = |compare: Vec<Compare>| {
        txn(
            vec![],
            vec![
                txn_put("a", b"x"),
                TxnOp::Txn(txn(compare, vec![leased.clone()], vec![])),
            ],
            vec![],
        )
    };
    let revision = harness.machine.revision();
    let outcome = run(&mut harness, nested_lease(vec![]));
    assert_eq!(
        outcome,
        Outcome::LeaseRefused {
            error: LeaseError::NotFound { id: 99 }
        }
    );
    assert_eq!(harness.machine.revision(), revision);
    // Off the chosen path, the missing lease does not matter.
    let never = Compare::key("a", CompareOp::Equal, CompareTarget::Version(0));
    let outcome = run(&mut harness, nested_lease(vec![never]));
    assert_succeeded(&outcome);

    harness.apply(Operation::Compact { revision: 5 });
    let mut old = RangeQuery::of(range("a", "z"));
    old.revision = 4;
    let outcome = run(
        &mut harness,
        txn(vec![], vec![txn_put("b", b"y"), TxnOp::Range(old)], vec![]),
    );
    assert!(
        matches!(
            outcome,
            Outcome::TxnRefused {
                error: TxnError::Revision(RevisionError::Compacted { requested: 4, .. })
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(harness.get("b"), Some(&b"2"[..]), "nothing ran");
}

/// The new operations survive the log's encoding, nested ones included.
#[test]
fn etcd_operations_round_trip_through_the_log_encoding() {
    let mut query = RangeQuery::of(range("a", "\0"));
    query.revision = 3;
    query.limit = 2;
    query.sort_order = SortOrder::Descend;
    query.sort_target = SortTarget::Create;
    query.keys_only = true;
    query.max_create_revision = 9;
    query.min_mod_revision = 1;
    let whole = txn(
        vec![compare_range(
            "a",
            "b",
            CompareOp::Less,
            CompareTarget::Lease(3),
        )],
        vec![
            TxnOp::Range(query),
            TxnOp::DeleteRange {
                range: range("x", ""),
                prev_kv: true,
            },
            TxnOp::Txn(txn(
                vec![],
                vec![TxnOp::PutKeeping {
                    key: "k".into(),
                    value: None,
                    lease: Some(4),
                }],
                vec![TxnOp::PutKeeping {
                    key: "k".into(),
                    value: Some(Bytes::new()),
                    lease: None,
                }],
            )),
        ],
        vec![],
    );
    let command = Command {
        session: None,
        operation: Operation::Txn(whole),
        request_id: None,
    };
    assert_eq!(Command::decode(&command.encode()), Ok(command));
    // Ends etcd's form cannot say (it reads "" as the key alone, "\0" as no end) still
    // decode to themselves.
    for end in [&b""[..], &b"\0"[..]] {
        let odd = KeyRange {
            start: "ab".into(),
            end: RangeEnd::Before(Bytes::copy_from_slice(end)),
        };
        let command = Command {
            session: None,
            operation: Operation::Txn(txn(
                vec![Compare {
                    key: "k".into(),
                    range_end: odd.end.clone(),
                    op: CompareOp::Equal,
                    target: CompareTarget::Version(0),
                }],
                vec![
                    TxnOp::DeleteRange {
                        range: odd.clone(),
                        prev_kv: false,
                    },
                    TxnOp::Range(RangeQuery::of(odd)),
                ],
                vec![],
            )),
            request_id: None,
        };
        assert_eq!(Command::decode(&command.encode()), Ok(command));
    }
}
