//! `MemStorage` saved and restored: what `into_parts` gives out, `restore` takes back, and
//! every state no peer could have written is refused.

mod common;

use bytes::Bytes;
use common::{config, Net};
use raft_core::{
    Configuration, ConfigurationError, Entry, EntryKind, HardState, Index, LogId, MemStorage,
    NodeId, Raft, RestoreError, Snapshot, SnapshotMeta, Storage, Term,
};

fn id(term: u64, index: u64) -> LogId {
    LogId::new(Term(term), Index(index))
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        id: id(term, index),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("command {index}")),
    }
}

/// A snapshot through `last` of a three-voter cluster.
fn snapshot(last: LogId) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: last,
            configuration: Configuration::new([NodeId(1), NodeId(2), NodeId(3)]),
        },
        data: Bytes::from_static(b"state"),
    }
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: Some(NodeId(1)),
        commit: Index(commit),
    }
}

/// A peer that ran (elected, wrote, compacted, changed its membership, wrote again) is saved
/// and restored; the restored storage reads back the same, and a peer restarted on it carries
/// on where the first stopped.
#[test]
fn a_saved_storage_restores_to_the_same_state_and_a_peer_carries_on_from_it() {
    let mut net = Net::new(1);
    net.elect(1);
    for value in 0..4u8 {
        net.peer(1)
            .propose(Bytes::from(vec![value]))
            .expect("leader");
    }
    net.settle();
    net.peer(1)
        .compact(Index(3), Bytes::from_static(b"through 3"))
        .expect("compact");
    net.peer(1)
        .propose_conf_change(raft_core::ConfChange::AddLearner(NodeId(2)))
        .expect("leader");
    net.peer(1)
        .propose(Bytes::from_static(b"last"))
        .expect("leader");
    net.settle();
    let before = net.peer(1).storage().clone();
    let last_index = net.peer(1).last_index();
    assert!(
        before.stored_snapshot().meta.last_included.index == Index(3)
            && before.stored_entries().count() == 4,
        "a snapshot and entries after it, one a configuration: {before:?}"
    );

    let (hard_state, snapshot, entries) = before.clone().into_parts();
    let restored = MemStorage::restore(hard_state, snapshot, entries).expect("a state it wrote");
    assert_eq!(restored, before);
    assert_eq!(restored.initial_state(), before.initial_state());

    let mut raft = Raft::new(config(1), restored).expect("restarts");
    assert_eq!(raft.last_index(), last_index);
    assert_eq!(raft.configuration(), net.peer(1).configuration());
    let ready = raft.ready();
    assert_eq!(
        ready.snapshot_to_apply.map(|snapshot| snapshot.data),
        Some(Bytes::from_static(b"through 3"))
    );
}

#[test]
fn a_fresh_storage_round_trips() {
    let fresh = MemStorage::new(Configuration::new([NodeId(1), NodeId(2)]));
    let (hard_state, snapshot, entries) = fresh.clone().into_parts();
    let restored = MemStorage::restore(hard_state, snapshot, entries).expect("fresh is valid");
    assert_eq!(restored, fresh);
}

#[test]
fn a_commit_index_below_the_snapshot_is_raised_to_it() {
    let restored = MemStorage::restore(hard_state(2, 0), snapshot(id(2, 5)), vec![entry(2, 6)])
        .expect("valid");
    assert_eq!(restored.hard_state().commit, Index(5));
}

#[test]
fn entries_that_do_not_follow_the_snapshot_are_refused() {
    assert_eq!(
        MemStorage::restore(hard_state(2, 5), snapshot(id(2, 5)), vec![entry(2, 7)]),
        Err(RestoreError::NotContiguous {
            expected: Index(6),
            found: Index(7)
        }),
        "a gap after the snapshot"
    );
    assert_eq!(
        MemStorage::restore(
            hard_state(2, 5),
            snapshot(id(2, 5)),
            vec![entry(2, 6), entry(2, 8)]
        ),
        Err(RestoreError::NotContiguous {
            expected: Index(7),
            found: Index(8)
        }),
        "a gap between entries"
    );
    assert_eq!(
        MemStorage::restore(hard_state(2, 5), snapshot(id(2, 5)), vec![entry(2, 5)]),
        Err(RestoreError::NotContiguous {
            expected: Index(6),
            found: Index(5)
        }),
        "an entry the snapshot covers"
    );
}

#[test]
fn terms_that_decrease_are_refused() {
    assert_eq!(
        MemStorage::restore(hard_state(3, 5), snapshot(id(3, 5)), vec![entry(2, 6)]),
        Err(RestoreError::TermDecreasing {
            index: Index(6),
            term: Term(2),
            previous: Term(3)
        }),
        "below the snapshot's term"
    );
    assert_eq!(
        MemStorage::restore(
            hard_state(3, 5),
            snapshot(id(1, 5)),
            vec![entry(3, 6), entry(2, 7)]
        ),
        Err(RestoreError::TermDecreasing {
            index: Index(7),
            term: Term(2),
            previous: Term(3)
        }),
        "below the entry before"
    );
}

#[test]
fn a_hard_state_behind_the_log_is_refused() {
    assert_eq!(
        MemStorage::restore(hard_state(2, 5), snapshot(id(2, 5)), vec![entry(3, 6)]),
        Err(RestoreError::TermBehindLog {
            term: Term(2),
            last_entry_term: Term(3)
        })
    );
}

#[test]
fn a_commit_index_beyond_the_log_is_refused() {
    assert_eq!(
        MemStorage::restore(hard_state(2, 7), snapshot(id(2, 5)), vec![entry(2, 6)]),
        Err(RestoreError::CommitBeyondLastIndex {
            commit: Index(7),
            last: Index(6)
        })
    );
}

#[test]
fn invalid_configurations_are_refused() {
    let mut bad_snapshot = snapshot(id(2, 5));
    bad_snapshot.meta.configuration.learners.insert(NodeId(1));
    assert_eq!(
        MemStorage::restore(hard_state(2, 5), bad_snapshot, Vec::new()),
        Err(RestoreError::Configuration {
            index: Index(5),
            error: ConfigurationError::LearnerVotes(NodeId(1))
        }),
        "the snapshot's"
    );
    let undecodable = Entry {
        id: id(2, 6),
        kind: EntryKind::Configuration,
        data: Bytes::from_static(b"not a configuration"),
    };
    assert!(
        matches!(
            MemStorage::restore(hard_state(2, 5), snapshot(id(2, 5)), vec![undecodable]),
            Err(RestoreError::Configuration {
                index: Index(6),
                ..
            })
        ),
        "a configuration entry's"
    );
}
