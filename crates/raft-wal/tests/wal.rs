//! Behaviour of the write-ahead log through its public interface: what is written is read
//! back, survives reopening, and is replaced, compacted and locked as documented.

mod common;

use std::path::Path;

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, PersistRequest, Snapshot,
    SnapshotMeta, Storage, StorageError, Term,
};
use raft_wal::{Wal, WalError, WalOptions};

use common::stored;

fn voters() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes_max: 512,
        cache_bytes_max: 0,
        ..WalOptions::default()
    }
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("command {index} of term {term}")),
    }
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| entry(term, index)).collect()
}

fn append(wal: &mut Wal, id: u64, entries: Vec<Entry>) {
    wal.persist(PersistRequest {
        id,
        snapshot: None,
        entries,
        hard_state: None,
    })
    .expect("append is durable");
}

fn snapshot(term: u64, index: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(term), Index(index)),
            configuration: voters(),
        },
        data: Bytes::from(format!("state through {index}")),
    }
}

fn reopen(wal: Wal, options: WalOptions) -> Wal {
    let dir = wal.dir().to_path_buf();
    drop(wal);
    Wal::open(&dir, Configuration::default(), options).expect("reopens")
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("lists")
        .filter(|item| {
            item.as_ref()
                .is_ok_and(|item| item.file_name().to_string_lossy().ends_with(".wal"))
        })
        .count()
}

#[test]
fn new_directory_starts_from_the_bootstrap_configuration() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(dir.path().join("data"), voters(), WalOptions::default()).expect("opens");
    assert!(wal.recovery_report().bootstrapped);
    let state = wal.storage().initial_state().expect("initial state");
    assert_eq!(state.configuration, voters());
    assert_eq!(state.hard_state, HardState::default());
    assert_eq!(wal.storage().last_index(), Ok(Index(0)));
    let wal = reopen(wal, WalOptions::default());
    assert!(!wal.recovery_report().bootstrapped);
    assert_eq!(
        wal.storage().initial_state().expect("state").configuration,
        voters()
    );
}

fn configuration_entry(term: u64, index: u64, configuration: &Configuration) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Configuration,
        data: configuration.encode(),
    }
}

#[test]
fn the_configuration_in_effect_follows_the_log_through_truncation_compaction_and_reopening() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    let mut with_learner = voters();
    with_learner.learners.insert(NodeId(4));
    let joint = Configuration {
        voters: [1, 2, 3, 4].into_iter().map(NodeId).collect(),
        outgoing: [1, 2, 3].into_iter().map(NodeId).collect(),
        learners: Default::default(),
    };
    let mut log = entries(1, 1..=3);
    log.push(configuration_entry(1, 4, &with_learner));
    log.extend(entries(1, 5..=6));
    log.push(configuration_entry(1, 7, &joint));
    append(&mut wal, 1, log);
    let state = wal.storage().initial_state().expect("state");
    assert_eq!(state.configuration, joint, "the latest entry, uncommitted");
    assert_eq!(
        state.configuration_entries,
        vec![(Index(4), with_learner.clone()), (Index(7), joint.clone())]
    );
    // A new leader replaces the suffix from 6: the joint entry goes, the learner's stays.
    append(&mut wal, 2, entries(2, 6..=8));
    let wal = reopen(wal, small_segments());
    let state = wal.storage().initial_state().expect("state");
    assert_eq!(state.configuration, with_learner);
    assert_eq!(
        state.configuration_entries,
        vec![(Index(4), with_learner.clone())]
    );
    // Compacting past the entry leaves the snapshot to describe the configuration.
    let mut wal = wal;
    let mut compacted = snapshot(2, 7);
    compacted.meta.configuration = with_learner.clone();
    wal.persist(PersistRequest {
        id: 3,
        snapshot: Some(compacted),
        entries: Vec::new(),
        hard_state: None,
    })
    .expect("durable");
    let check = |wal: &Wal| {
        let state = wal.storage().initial_state().expect("state");
        assert_eq!(state.configuration, with_learner);
        assert!(state.configuration_entries.is_empty());
        let snapshot = wal.storage().snapshot().expect("snapshot");
        assert_eq!(
            snapshot.meta.configuration, with_learner,
            "learners are kept in the snapshot file"
        );
    };
    check(&wal);
    check(&reopen(wal, small_segments()));
}

#[test]
fn a_configuration_entry_that_does_not_decode_is_refused_before_it_is_written() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    let mut bad = entry(1, 1);
    bad.kind = EntryKind::Configuration;
    let result = wal.persist(PersistRequest {
        id: 1,
        snapshot: None,
        entries: vec![bad],
        hard_state: None,
    });
    assert!(
        matches!(result, Err(WalError::InvalidWrite(_))),
        "{result:?}"
    );
}

#[test]
fn entries_and_hard_state_survive_reopening_across_segments() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    for batch in 0..20 {
        let first = batch * 5 + 1;
        append(&mut wal, batch + 1, entries(1, first..=first + 4));
    }
    let hard_state = HardState {
        term: Term(1),
        vote: Some(NodeId(2)),
        commit: Index(60),
    };
    wal.persist(PersistRequest {
        id: 21,
        snapshot: None,
        entries: vec![],
        hard_state: Some(hard_state),
    })
    .expect("hard state is durable");
    assert!(segment_count(dir.path()) > 3, "small segments roll over");
    let written = stored(&wal);
    assert_eq!(written, entries(1, 1..=100));
    let wal = reopen(wal, small_segments());
    assert_eq!(stored(&wal), written);
    assert_eq!(wal.storage().hard_state(), Ok(hard_state));
    assert_eq!(wal.storage().term(Index(37)), Ok(Term(1)));
    assert_eq!(wal.recovery_report().torn_tail_bytes, 0);
}

#[test]
fn conflicting_suffix_is_replaced_durably() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    append(&mut wal, 1, entries(1, 1..=30));
    append(&mut wal, 2, entries(2, 11..=15));
    let mut expected = entries(1, 1..=10);
    expected.extend(entries(2, 11..=15));
    assert_eq!(stored(&wal), expected);
    let mut wal = reopen(wal, small_segments());
    assert_eq!(stored(&wal), expected);
    append(&mut wal, 3, entries(3, 16..=18));
    expected.extend(entries(3, 16..=18));
    let wal = reopen(wal, small_segments());
    assert_eq!(stored(&wal), expected);
}

#[test]
fn a_gap_is_refused_and_stops_the_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    append(&mut wal, 1, entries(1, 1..=3));
    let gap = wal.persist(PersistRequest {
        id: 2,
        snapshot: None,
        entries: entries(1, 5..=6),
        hard_state: None,
    });
    assert!(matches!(gap, Err(WalError::InvalidWrite(_))), "{gap:?}");
    let after = wal.persist(PersistRequest {
        id: 3,
        snapshot: None,
        entries: entries(1, 4..=4),
        hard_state: None,
    });
    assert!(matches!(after, Err(WalError::Stopped(_))), "{after:?}");
    assert_eq!(
        stored(&wal),
        entries(1, 1..=3),
        "nothing of the refused batch is visible"
    );
    let wal = reopen(wal, small_segments());
    assert_eq!(
        stored(&wal),
        entries(1, 1..=3),
        "nothing of it reached the disk"
    );
}

#[test]
fn compaction_deletes_covered_segments_and_old_snapshots() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    for batch in 0..20 {
        let first = batch * 5 + 1;
        append(&mut wal, batch + 1, entries(1, first..=first + 4));
    }
    let before = segment_count(dir.path());
    wal.persist(PersistRequest {
        id: 21,
        snapshot: Some(snapshot(1, 90)),
        entries: vec![],
        hard_state: None,
    })
    .expect("snapshot is durable");
    wal.wait_for_cleanup();
    assert!(
        segment_count(dir.path()) < before / 2,
        "covered segments deleted"
    );
    let storage = wal.storage();
    assert_eq!(storage.first_index(), Ok(Index(91)));
    assert_eq!(
        storage.entries(Index(50), Index(51), u64::MAX),
        Err(StorageError::Compacted(Index(50)))
    );
    assert_eq!(storage.term(Index(90)), Ok(Term(1)));
    assert_eq!(
        storage.hard_state().map(|state| state.commit),
        Ok(Index(90))
    );
    wal.persist(PersistRequest {
        id: 22,
        snapshot: Some(snapshot(1, 95)),
        entries: vec![],
        hard_state: None,
    })
    .expect("second snapshot is durable");
    wal.wait_for_cleanup();
    let snapshots: Vec<_> = std::fs::read_dir(dir.path())
        .expect("lists")
        .filter_map(|item| item.ok())
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".snap"))
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "only the newest snapshot is kept: {snapshots:?}"
    );
    let wal = reopen(wal, small_segments());
    assert_eq!(stored(&wal), entries(1, 96..=100));
    assert_eq!(wal.storage().snapshot(), Ok(snapshot(1, 95)));
}

#[test]
fn installed_snapshot_that_disagrees_discards_the_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), small_segments()).expect("opens");
    append(&mut wal, 1, entries(1, 1..=40));
    wal.persist(PersistRequest {
        id: 2,
        snapshot: Some(snapshot(3, 30)),
        entries: entries(3, 31..=32),
        hard_state: Some(HardState {
            term: Term(3),
            vote: None,
            commit: Index(30),
        }),
    })
    .expect("install is durable");
    assert_eq!(stored(&wal), entries(3, 31..=32));
    let wal = reopen(wal, small_segments());
    assert_eq!(stored(&wal), entries(3, 31..=32));
    assert_eq!(wal.storage().term(Index(30)), Ok(Term(3)));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(dir.path(), voters(), WalOptions::default()).expect("opens");
    let second = Wal::open(dir.path(), voters(), WalOptions::default());
    assert!(matches!(second, Err(WalError::Locked { .. })), "{second:?}");
    drop(wal);
    Wal::open(dir.path(), voters(), WalOptions::default()).expect("free again once closed");
}

#[test]
fn reopening_reads_the_newest_entries_back_into_the_cache() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = WalOptions {
        segment_bytes_max: 512,
        cache_bytes_max: 1000,
        ..WalOptions::default()
    };
    let mut wal = Wal::open(dir.path(), voters(), options.clone()).expect("opens");
    append(&mut wal, 1, entries(1, 1..=100));
    let wal = reopen(wal, options);
    let cached = wal.storage().cached_bytes().expect("cache size");
    assert!(
        cached > 800 && cached <= 1000,
        "cache warmed to its bound: {cached}"
    );
    assert_eq!(stored(&wal), entries(1, 1..=100));
}
