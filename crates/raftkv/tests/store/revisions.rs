//! Revisions and history: the revision, create/mod revision and version rules of each
//! operation, reads at past revisions, compaction and its errors, and a watch's catch-up.

use raftkv::store::{Applied, ChangeKind, KeySelector, RevisionError, SnapshotError};

use super::*;

fn versioned(value: &'static [u8], create: u64, modified: u64, version: u64) -> VersionedValue {
    VersionedValue {
        value: Bytes::from_static(value),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

impl Harness {
    fn apply_entry(&mut self, operation: Operation) -> Applied {
        self.index += 1;
        let applied = self
            .machine
            .apply_entry(self.index, 1, &encode(None, operation));
        self.machine.check_invariants();
        applied
    }

    fn at(&self, key: &str, revision: u64) -> Option<VersionedValue> {
        self.machine
            .get_at(key, Some(revision))
            .expect("the revision is readable")
    }
}

#[test]
fn an_empty_store_is_at_revision_1_and_each_change_raises_it_by_one() {
    let mut harness = Harness::new(SESSIONS_MAX);
    assert_eq!(harness.machine.revision(), 1);
    assert_eq!(harness.machine.compact_revision(), 1);
    let applied = harness.apply_entry(put("a", b"1"));
    assert_eq!(applied.revision, 2);
    let changes = applied.changes.expect("a put changes its key");
    assert_eq!(changes.revision, 2);
    assert_eq!(changes.changes.len(), 1);
    assert_eq!(changes.changes[0].kind, ChangeKind::Put);
    assert_eq!(changes.changes[0].value, versioned(b"1", 2, 2, 1));
    assert_eq!(harness.apply_entry(put("a", b"2")).revision, 3);
    assert_eq!(harness.apply_entry(append("a", b"3")).revision, 4);
    assert_eq!(
        harness.machine.get_at("a", None),
        Ok(Some(versioned(b"23", 2, 4, 3)))
    );
}

#[test]
fn commands_that_change_nothing_keep_the_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("a", b"1"));
    let unchanged = [
        delete("missing"),
        cas("a", Some(b"other"), b"2"),
        Operation::Announce {
            node: 1,
            http_address: "h:1".into(),
            grpc_address: Some("g:1".into()),
        },
        Operation::RaftAddress {
            node: 1,
            raft_address: "r:1".into(),
        },
        Operation::Compact { revision: 1 },
    ];
    for operation in unchanged {
        let applied = harness.apply_entry(operation.clone());
        assert_eq!(applied.revision, 2, "{operation:?}");
        assert_eq!(applied.changes, None, "{operation:?}");
    }
    assert_eq!(harness.apply_entry(cas("a", Some(b"1"), b"2")).revision, 3);
}

#[test]
fn a_delete_resets_the_key_and_a_put_after_it_creates_it_again() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("a", b"1")); // 2
    harness.apply(put("a", b"2")); // 3
    let deleted = harness.apply_entry(delete("a")); // 4
    let change = &deleted
        .changes
        .expect("a delete of a key that exists")
        .changes[0];
    assert_eq!(change.kind, ChangeKind::Delete);
    assert_eq!(change.value, versioned(b"", 0, 4, 0));
    harness.apply(put("a", b"3")); // 5
    assert_eq!(harness.at("a", 1), None);
    assert_eq!(harness.at("a", 2), Some(versioned(b"1", 2, 2, 1)));
    assert_eq!(harness.at("a", 3), Some(versioned(b"2", 2, 3, 2)));
    assert_eq!(harness.at("a", 4), None);
    assert_eq!(harness.at("a", 5), Some(versioned(b"3", 5, 5, 1)));
    assert_eq!(harness.machine.keys(), 1);
    assert_eq!(
        harness.machine.history_versions(),
        3,
        "two values and a tombstone"
    );
    assert_eq!(harness.machine.history_bytes(), 2);
}

#[test]
fn reads_outside_the_held_history_fail_naming_the_oldest_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    for value in [b"1", b"2", b"3"] {
        harness.apply(put("a", value));
    }
    assert_eq!(
        harness.apply(Operation::Compact { revision: 3 }),
        Outcome::Compacted {
            compact_revision: 3
        }
    );
    let compacted = RevisionError::Compacted {
        requested: 2,
        compact_revision: 3,
        current: 4,
    };
    assert_eq!(harness.machine.get_at("a", Some(2)), Err(compacted.clone()));
    assert_eq!(
        harness.machine.scan_at("", 10, Some(2)),
        Err(compacted.clone())
    );
    assert_eq!(
        harness
            .machine
            .changes_since(2, &KeySelector::Prefix(String::new())),
        Err(compacted.clone())
    );
    assert!(compacted
        .to_string()
        .contains("oldest revision still available is 3"));
    assert_eq!(harness.at("a", 3), Some(versioned(b"2", 2, 3, 2)));
    let future = RevisionError::Future {
        requested: 5,
        current: 4,
        compact_revision: 3,
    };
    assert_eq!(harness.machine.get_at("a", Some(5)), Err(future.clone()));
    assert_eq!(
        harness.apply(Operation::Compact { revision: 5 }),
        Outcome::CompactRefused { error: future }
    );
    assert_eq!(
        harness.apply(Operation::Compact { revision: 2 }),
        Outcome::Compacted {
            compact_revision: 3
        },
        "at or below the compaction revision: a no-op answering the one in force"
    );
    assert_eq!(
        harness
            .machine
            .changes_since(9, &KeySelector::Key("a".into())),
        Ok(Vec::new()),
        "nothing yet after the current revision"
    );
}

#[test]
fn compaction_drops_what_no_read_can_see_and_keeps_a_delete_made_at_it() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("a", b"1")); // 2
    harness.apply(put("b", b"1")); // 3
    harness.apply(delete("b")); // 4
    harness.apply(put("a", b"22")); // 5
    harness.apply(delete("a")); // 6
    harness.apply(Operation::Compact { revision: 4 });
    assert_eq!(harness.machine.history_versions(), 4);
    assert_eq!(
        harness
            .machine
            .changes_since(4, &KeySelector::Prefix(String::new()))
            .expect("readable")
            .iter()
            .map(|changes| changes.revision)
            .collect::<Vec<_>>(),
        vec![4, 5, 6],
        "the delete at the compaction revision is still told"
    );
    harness.apply(Operation::Compact { revision: 6 });
    assert_eq!(harness.machine.history_versions(), 1, "a's tombstone at 6");
    assert_eq!(harness.machine.history_bytes(), 0);
    harness.apply(put("c", b"1")); // 7
    harness.apply(Operation::Compact { revision: 7 });
    assert_eq!(harness.machine.history_versions(), 0);
    assert_eq!(
        harness
            .machine
            .scan_at("", 10, None)
            .expect("readable")
            .0
            .len(),
        1
    );
}

#[test]
fn a_history_snapshot_restores_reads_at_every_revision_and_the_same_bytes() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("a", b"1"));
    harness.apply(put("b", b"1"));
    harness.apply(delete("a"));
    harness.apply(put("a", b"2"));
    harness.apply(put("b", b"2"));
    harness.apply(Operation::Compact { revision: 3 });
    let snapshot = harness.machine.snapshot();
    let restored = StateMachine::restore(&snapshot, SESSIONS_MAX).expect("restores");
    restored.check_invariants();
    assert_eq!(restored.snapshot(), snapshot);
    for revision in 3..=harness.machine.revision() {
        assert_eq!(
            restored.scan_at("", 10, Some(revision)),
            harness.machine.scan_at("", 10, Some(revision)),
            "revision {revision}"
        );
    }
    let all = KeySelector::Prefix(String::new());
    assert_eq!(
        restored.changes_since(3, &all),
        harness.machine.changes_since(3, &all)
    );
}

#[test]
fn a_snapshot_whose_history_contradicts_itself_is_refused() {
    let mut harness = Harness::new(SESSIONS_MAX);
    harness.apply(put("a", b"1"));
    harness.apply(put("a", b"2"));
    let mut bytes = harness.machine.snapshot().to_vec();
    // Field 7 (revision) appended with value 9: later than the changes held reach.
    bytes.extend_from_slice(&[0x38, 0x09]);
    assert!(matches!(
        StateMachine::restore(&bytes, SESSIONS_MAX),
        Err(SnapshotError::Malformed {
            what: "history",
            ..
        })
    ));
}

#[test]
fn compaction_of_keys_changed_many_times_out_of_key_order_keeps_every_read_from_its_revision() {
    let mut harness = Harness::new(SESSIONS_MAX);
    // Keys changed in an order unlike key order, each many times between two compactions:
    // overwritten, deleted, created again; one written once.
    let keys = ["m", "b", "z", "a", "q", "b/1", "c"];
    for round in 0..6u8 {
        for (at, key) in keys.iter().enumerate() {
            if (usize::from(round) + at) % 4 == 3 {
                harness.apply(delete(key));
            } else {
                harness.apply(Operation::Put {
                    key: (*key).into(),
                    value: Bytes::from(vec![round; at + 1]),
                    lease: 0,
                });
            }
        }
        if round == 2 {
            harness.apply(put("once", b"1"));
        }
    }
    harness.apply(put("a", b"last"));
    let everything = KeySelector::Prefix(String::new());
    let last = harness.machine.revision();
    assert!(last > 32, "the compaction revisions below increase");
    for compact_revision in [3, 4, 12, 13, 20, 31, last - 1, last] {
        let reads_from = |machine: &StateMachine| {
            (compact_revision..=last)
                .map(|revision| machine.scan_at("", 100, Some(revision)))
                .collect::<Vec<_>>()
        };
        let reads_before = reads_from(&harness.machine);
        let changes_before = harness.machine.changes_since(compact_revision, &everything);
        let image = harness.machine.snapshot_image();
        let snapshot_before = harness.machine.snapshot();
        // Harness::apply checks the invariants, among them that compaction dropped exactly
        // the versions no read at or after it can see, and counted them.
        harness.apply(Operation::Compact {
            revision: compact_revision,
        });
        assert_eq!(
            reads_from(&harness.machine),
            reads_before,
            "reads from {compact_revision} on"
        );
        assert_eq!(
            harness.machine.changes_since(compact_revision, &everything),
            changes_before,
            "changes from {compact_revision} on"
        );
        assert_eq!(
            image.encode(),
            snapshot_before,
            "an image taken before a compaction keeps what it dropped"
        );
        assert!(
            matches!(
                harness.machine.get_at("a", Some(compact_revision - 1)),
                Err(RevisionError::Compacted { .. })
            ),
            "compacted at {compact_revision}"
        );
    }
    harness.machine.finish_compaction();
    harness.machine.check_invariants();
    assert_eq!(
        harness.machine.history_versions(),
        0,
        "compacted at the current revision, nothing but current versions is held"
    );
}

#[test]
fn a_compaction_drops_what_it_made_unreadable_a_few_keys_per_command_applied_after_it() {
    // Two replicas apply the same commands; one drops what each compaction made unreadable
    // at once.
    let mut replicas = [Harness::new(SESSIONS_MAX), Harness::new(SESSIONS_MAX)];
    let keys: Vec<String> = (0..100)
        .map(|n| format!("key-{:03}", (n * 37) % 100))
        .collect();
    for round in 0..3u8 {
        for key in &keys {
            for replica in &mut replicas {
                replica.apply(Operation::Put {
                    key: key.clone(),
                    value: Bytes::from(vec![round; 8]),
                    lease: 0,
                });
            }
        }
    }
    let compact_revision = replicas[0].machine.revision();
    let before_compaction = replicas[0].machine.snapshot();
    for replica in &mut replicas {
        replica.apply(Operation::Compact {
            revision: compact_revision,
        });
    }
    let [lazy, eager] = &mut replicas;
    eager.machine.finish_compaction();
    eager.machine.check_invariants();
    // The compaction's own command dropped the two older versions of two keys only, like
    // any command: not those of all 100.
    assert_eq!(lazy.machine.compaction_waiting(), 98);
    assert_eq!(lazy.machine.history_versions(), 196);
    assert_eq!(eager.machine.history_versions(), 0);
    let mut commands = 0;
    while lazy.machine.compaction_waiting() > 0 {
        assert_eq!(lazy.machine.snapshot(), eager.machine.snapshot());
        assert_ne!(lazy.machine.snapshot(), before_compaction);
        let waiting = lazy.machine.compaction_waiting();
        for replica in [&mut *lazy, &mut *eager] {
            replica.apply(put("other", b"v"));
        }
        commands += 1;
        assert_eq!(
            lazy.machine.compaction_waiting(),
            waiting.saturating_sub(2),
            "each one-key command compacts two waiting keys"
        );
        assert!(
            matches!(
                lazy.machine.get_at("key-001", Some(compact_revision - 1)),
                Err(RevisionError::Compacted { .. })
            ),
            "unreadable from the compaction on, dropped or not"
        );
        assert_eq!(
            lazy.machine.scan_at("key-", 1000, Some(compact_revision)),
            eager.machine.scan_at("key-", 1000, Some(compact_revision))
        );
    }
    assert_eq!(commands, 49);
    // Left: "other"'s history, one version per put after its first.
    assert_eq!(lazy.machine.history_versions(), commands - 1);
    assert_eq!(
        lazy.machine.history_versions(),
        eager.machine.history_versions()
    );
    assert_eq!(lazy.machine.snapshot(), eager.machine.snapshot());
}
