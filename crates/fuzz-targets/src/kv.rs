//! raftkv's state machine input: commands as they come out of the log (written by any peer,
//! possibly a newer release) and snapshots as a leader sends them ([`raftkv::store::command`],
//! [`raftkv::store`]).

use bytes::Bytes;
use raftkv::store::{
    ChangeKind, ClientId, Command, Compare, CompareOp, CompareTarget, KeySelector, LeaseCheckpoint,
    Operation, Outcome, Session, StateMachine, Txn, TxnOp,
};

use crate::Seed;

/// Sessions the machines here keep: few, so that eviction is reached.
const SESSIONS_MAX: usize = 4;

fn put(key: &str, value: &'static [u8], session: Option<(u64, u64)>) -> Command {
    Command {
        session: session.map(|(client_id, sequence)| Session {
            client_id: ClientId::number(client_id),
            sequence,
        }),
        operation: Operation::Put {
            key: key.into(),
            value: Bytes::from_static(value),
            lease: 0,
        },
        request_id: None,
    }
}

/// A client id that is text, as HTTP clients send (a UUID).
fn text_id() -> ClientId {
    match ClientId::parse(b"3f2504e0-4f89-11d3-9a0c-0305e82c3301") {
        Ok(id) => id,
        Err(error) => panic!("a UUID is a valid client id: {error}"),
    }
}

/// A transaction over the sample machine's keys: compares, puts, deletes, reads.
fn sample_txn() -> Txn {
    Txn {
        compare: vec![Compare {
            key: "alpha".into(),
            op: CompareOp::Greater,
            target: CompareTarget::ModRevision(1),
        }],
        success: vec![
            TxnOp::Put {
                key: "delta".into(),
                value: Bytes::from_static(b"44"),
                lease: 0,
            },
            TxnOp::DeletePrefix {
                prefix: "alpha".into(),
            },
            TxnOp::Scan {
                prefix: String::new(),
                limit: 3,
            },
        ],
        failure: vec![TxnOp::Get { key: "beta".into() }],
    }
}

/// A command without a session.
fn bare(operation: Operation) -> Command {
    Command {
        session: None,
        operation,
        request_id: None,
    }
}

/// A machine with keys and their history (a compaction, a transaction), sessions (numeric
/// and text ids, some evicted), addresses, and leases 5 (holding "eta" and "theta", with a
/// checkpoint) and 6 (holding "iota"), its last entry skipped.
fn sample_machine() -> StateMachine {
    let commands = [
        put("alpha", b"1", Some((7, 1))),
        put("beta", b"\xff\xfe", None),
        put("gamma", b"", Some((8, 3))),
        put("alphabet", b"abc", Some((9, 1))),
        put("delta", b"4", Some((10, 1))),
        put("epsilon", b"5", Some((11, 1))),
        Command {
            session: Some(Session {
                client_id: text_id(),
                sequence: 2,
            }),
            operation: Operation::Append {
                key: "zeta".into(),
                suffix: Bytes::from_static(b"z"),
            },
            request_id: None,
        },
        Command {
            session: None,
            operation: Operation::Announce {
                node: 2,
                http_address: "127.0.0.1:8002".into(),
                grpc_address: None,
            },
            request_id: Some(5),
        },
        Command {
            session: None,
            operation: Operation::RaftAddress {
                node: 4,
                raft_address: "127.0.0.1:9004".into(),
            },
            request_id: None,
        },
        put("beta", b"b2", None),
        Command {
            session: None,
            operation: Operation::Compact { revision: 3 },
            request_id: None,
        },
        Command {
            session: Some(Session {
                client_id: ClientId::number(12),
                sequence: 1,
            }),
            operation: Operation::Txn(sample_txn()),
            request_id: None,
        },
        bare(Operation::LeaseGrant {
            id: 5,
            ttl_seconds: 30,
        }),
        bare(Operation::LeaseGrant {
            id: 6,
            ttl_seconds: 10,
        }),
        bare(Operation::Put {
            key: "theta".into(),
            value: Bytes::from_static(b"8"),
            lease: 5,
        }),
        bare(Operation::Put {
            key: "eta".into(),
            value: Bytes::from_static(b"7"),
            lease: 5,
        }),
        bare(Operation::Put {
            key: "iota".into(),
            value: Bytes::from_static(b"9"),
            lease: 6,
        }),
        bare(Operation::LeaseCheckpoint {
            checkpoints: vec![LeaseCheckpoint {
                id: 5,
                remaining_ms: 12_000,
            }],
        }),
    ];
    let mut machine = StateMachine::new(SESSIONS_MAX);
    machine.skip(1);
    for (index, command) in (2..).zip(commands) {
        machine.apply(index, &command.encode());
    }
    machine.skip(machine.applied_index() + 1);
    machine
}

/// Checks that `machine` survives its snapshot: restoring it gives a machine with the same
/// snapshot.
fn check_snapshot_roundtrip(machine: &StateMachine) {
    let snapshot = machine.snapshot();
    match StateMachine::restore(&snapshot, SESSIONS_MAX) {
        Ok(restored) => assert_eq!(restored.snapshot(), snapshot, "a snapshot round-trips"),
        Err(error) => panic!("a machine's own snapshot does not restore: {error}"),
    }
}

/// `data` as a log entry's data ([`Command::decode`]). A command that decodes round-trips;
/// applied to a machine with keys and sessions, whatever it is keeps the machine's invariants
/// and snapshot, is rejected when it does not decode, and, retried under its session, is
/// answered with the first outcome and not applied again.
pub fn kv_command(data: &[u8]) {
    let decoded = Command::decode(data);
    if let Ok(command) = &decoded {
        assert_eq!(
            Command::decode(&command.encode()).as_ref(),
            Ok(command),
            "a decoded command round-trips"
        );
    }
    let mut machine = sample_machine();
    let index = machine.applied_index() + 1;
    let revision_before = machine.revision();
    let applied = machine.apply_entry(index, 3, data);
    machine.check_invariants();
    if let Some(changes) = &applied.changes {
        assert_eq!(
            changes.revision,
            revision_before + 1,
            "a change raises the revision by one"
        );
        assert_eq!(
            machine.changes_since(changes.revision, &KeySelector::Prefix(String::new())),
            Ok(vec![changes.clone()]),
            "history holds what the command changed"
        );
    } else {
        assert_eq!(
            machine.revision(),
            revision_before,
            "no change, no new revision"
        );
    }
    assert_eq!(
        decoded.is_err(),
        matches!(applied.outcome, Outcome::Rejected { .. }),
        "rejected exactly when it does not decode"
    );
    check_lease_outcome(&machine, &applied.outcome, applied.changes.as_ref());
    check_snapshot_roundtrip(&machine);
    let Ok(Command {
        session: Some(_), ..
    }) = decoded
    else {
        return;
    };
    if matches!(applied.outcome, Outcome::StaleSequence { .. }) {
        return;
    }
    let before = all_pairs(&machine);
    let retried = machine.apply_entry(index + 1, 3, data);
    machine.check_invariants();
    assert_eq!(
        (
            &retried.outcome,
            retried.index,
            retried.term,
            retried.revision
        ),
        (
            &applied.outcome,
            applied.index,
            applied.term,
            applied.revision
        ),
        "a retry gets the first answer"
    );
    assert_eq!(retried.changes, None, "a retry changes nothing");
    assert_eq!(all_pairs(&machine), before, "a retry changes no data");
}

/// What a lease outcome promises: a revoked lease is gone and its keys were deleted together,
/// in key order; a refusal changed nothing.
fn check_lease_outcome(
    machine: &StateMachine,
    outcome: &Outcome,
    changes: Option<&raftkv::store::RevisionChanges>,
) {
    match outcome {
        Outcome::LeaseRevoked {
            id, keys_deleted, ..
        } => {
            assert!(machine.lease(*id).is_none(), "a revoked lease is gone");
            let deleted = changes.map_or(0, |changes| changes.changes.len());
            assert_eq!(deleted as u64, *keys_deleted, "one change per key deleted");
            if let Some(changes) = changes {
                assert!(
                    changes
                        .changes
                        .iter()
                        .all(|change| change.kind == ChangeKind::Delete),
                    "a revoke only deletes"
                );
                assert!(
                    changes
                        .changes
                        .windows(2)
                        .all(|pair| pair[0].key < pair[1].key),
                    "a revoke deletes in key order"
                );
            }
        }
        Outcome::LeaseRefused { .. }
        | Outcome::LeaseGranted { .. }
        | Outcome::LeaseCheckpointed => {
            assert_eq!(changes, None, "this lease outcome changes no key");
        }
        _ => {}
    }
}

/// Every key of `machine` with its value, in key order.
fn all_pairs(machine: &StateMachine) -> Vec<(String, Bytes)> {
    machine.scan("", usize::MAX).0
}

/// `data` as a snapshot a leader sent ([`StateMachine::restore`]). A snapshot that restores
/// gives a machine whose invariants hold, whose own snapshot restores to the same, which holds
/// at most its session limit, and which applies the next entry.
pub fn kv_snapshot(data: &[u8]) {
    let Ok(mut machine) = StateMachine::restore(data, SESSIONS_MAX) else {
        return;
    };
    machine.check_invariants();
    assert!(
        machine.sessions() <= SESSIONS_MAX,
        "sessions within the limit"
    );
    check_snapshot_roundtrip(&machine);
    let Some(next) = machine.applied_index().checked_add(1) else {
        return;
    };
    // Without a session: the snapshot's sessions may have moved past any given sequence.
    let command = put("alpha", b"after restore", None);
    machine.apply(next, &command.encode());
    machine.check_invariants();
    assert_eq!(
        machine.get("alpha").map(|value| &value[..]),
        Some(&b"after restore"[..]),
        "the next entry applies"
    )
}

/// Seeds of [`kv_command`]: every operation, with and without a session.
pub(crate) fn command_seeds() -> Vec<Seed> {
    let session = Some(Session {
        client_id: ClientId::number(7),
        sequence: 2,
    });
    let text_session = Some(Session {
        client_id: text_id(),
        sequence: 3,
    });
    let command = |session, operation| Command {
        session,
        operation,
        request_id: Some(42),
    };
    let commands = [
        (
            "put",
            command(
                session.clone(),
                Operation::Put {
                    key: "alpha".into(),
                    value: Bytes::from_static(b"new"),
                    lease: 0,
                },
            ),
        ),
        (
            "delete",
            command(None, Operation::Delete { key: "beta".into() }),
        ),
        (
            "append",
            command(
                session.clone(),
                Operation::Append {
                    key: "gamma".into(),
                    suffix: Bytes::from_static(b"+"),
                },
            ),
        ),
        (
            "cas_absent",
            command(
                None,
                Operation::Cas {
                    key: "zeta".into(),
                    expect: None,
                    value: Bytes::from_static(b"z"),
                },
            ),
        ),
        (
            "cas_value",
            command(
                session.clone(),
                Operation::Cas {
                    key: "alpha".into(),
                    expect: Some(Bytes::from_static(b"1")),
                    value: Bytes::from_static(b"2"),
                },
            ),
        ),
        (
            "announce",
            command(
                None,
                Operation::Announce {
                    node: 3,
                    http_address: "127.0.0.1:8003".into(),
                    grpc_address: None,
                },
            ),
        ),
        (
            "raft_address",
            command(
                None,
                Operation::RaftAddress {
                    node: 5,
                    raft_address: "127.0.0.1:9005".into(),
                },
            ),
        ),
        ("stale_session", put("alpha", b"old", Some((8, 1)))),
        (
            "stale_text_session",
            command(
                Some(Session {
                    client_id: text_id(),
                    sequence: 1,
                }),
                Operation::Delete { key: "zeta".into() },
            ),
        ),
        (
            "text_session",
            command(
                text_session,
                Operation::Put {
                    key: "alpha".into(),
                    value: Bytes::from_static(b"text"),
                    lease: 0,
                },
            ),
        ),
        (
            "compact",
            command(session.clone(), Operation::Compact { revision: 5 }),
        ),
        (
            "compact_future",
            command(None, Operation::Compact { revision: 99 }),
        ),
        (
            "txn",
            command(session.clone(), Operation::Txn(sample_txn())),
        ),
        (
            "txn_refused",
            command(
                None,
                Operation::Txn(Txn {
                    success: vec![TxnOp::DeletePrefix {
                        prefix: String::new(),
                    }],
                    ..Txn::default()
                }),
            ),
        ),
        (
            "lease_grant",
            command(
                session.clone(),
                Operation::LeaseGrant {
                    id: 7,
                    ttl_seconds: 60,
                },
            ),
        ),
        (
            "lease_grant_in_use",
            command(
                None,
                Operation::LeaseGrant {
                    id: 5,
                    ttl_seconds: 60,
                },
            ),
        ),
        (
            "lease_revoke",
            command(
                session.clone(),
                Operation::LeaseRevoke {
                    id: 5,
                    expired: false,
                },
            ),
        ),
        (
            "lease_revoke_expired",
            command(
                None,
                Operation::LeaseRevoke {
                    id: 6,
                    expired: true,
                },
            ),
        ),
        (
            "lease_revoke_missing",
            command(
                None,
                Operation::LeaseRevoke {
                    id: 99,
                    expired: false,
                },
            ),
        ),
        (
            "lease_checkpoint",
            command(
                None,
                Operation::LeaseCheckpoint {
                    checkpoints: vec![
                        LeaseCheckpoint {
                            id: 5,
                            remaining_ms: 0,
                        },
                        LeaseCheckpoint {
                            id: 6,
                            remaining_ms: 4000,
                        },
                        LeaseCheckpoint {
                            id: 99,
                            remaining_ms: 1,
                        },
                    ],
                },
            ),
        ),
        (
            "put_with_lease",
            command(
                session.clone(),
                Operation::Put {
                    key: "iota".into(),
                    value: Bytes::from_static(b"moved"),
                    lease: 5,
                },
            ),
        ),
        (
            "put_with_missing_lease",
            command(
                None,
                Operation::Put {
                    key: "eta".into(),
                    value: Bytes::from_static(b"x"),
                    lease: 99,
                },
            ),
        ),
        (
            "txn_with_lease",
            command(
                session.clone(),
                Operation::Txn(Txn {
                    compare: vec![Compare {
                        key: "eta".into(),
                        op: CompareOp::Equal,
                        target: CompareTarget::Lease(5),
                    }],
                    success: vec![
                        TxnOp::Put {
                            key: "kappa".into(),
                            value: Bytes::from_static(b"k"),
                            lease: 6,
                        },
                        TxnOp::DeletePrefix {
                            prefix: "thet".into(),
                        },
                    ],
                    failure: vec![TxnOp::Put {
                        key: "kappa".into(),
                        value: Bytes::from_static(b"k"),
                        lease: 99,
                    }],
                }),
            ),
        ),
        (
            "txn_retry",
            command(
                Some(Session {
                    client_id: ClientId::number(12),
                    sequence: 1,
                }),
                Operation::Txn(sample_txn()),
            ),
        ),
    ];
    commands
        .into_iter()
        .map(|(name, command)| (name, command.encode().to_vec()))
        .collect()
}

/// Seeds of [`kv_snapshot`]: an empty machine and one with keys, sessions, addresses and
/// leases.
pub(crate) fn snapshot_seeds() -> Vec<Seed> {
    vec![
        ("empty", StateMachine::new(SESSIONS_MAX).snapshot().to_vec()),
        ("sample", sample_machine().snapshot().to_vec()),
    ]
}
