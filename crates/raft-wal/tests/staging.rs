//! Staged snapshots (`LogStore::snapshot_stager`): a snapshot's file made durable ahead of the
//! write that records it is renamed into place by that write, not written again; until then it
//! is no part of the log, and whatever is staged and never recorded is deleted.
//!
//! ```text
//!  stage(s) ─► snapshot-<i>-<t>.staged.snap.tmp ─► write(request with s) ─► snapshot-<i>-<t>.snap
//!                                               ─► crash / reopen         ─► removed, log as before
//!                                               ─► newer snapshot recorded, discard ─► removed
//! ```

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::{entries, scratch_directory, snapshot, voters};
use raft_core::{Index, LogStore, PersistRequest, Snapshot, SnapshotStager, Storage};
use raft_wal::{Wal, WalOptions};

fn options() -> WalOptions {
    WalOptions {
        segment_bytes_max: 512,
        cache_bytes_max: 0,
        ..WalOptions::default()
    }
}

/// A log holding entries 1..=20 of term 1.
fn log_with_entries(dir: &Path) -> Wal {
    let mut wal = Wal::open(dir, voters(), options()).expect("a new log bootstraps");
    wal.persist(PersistRequest {
        id: 1,
        snapshot: None,
        entries: entries(1, 1..=20),
        hard_state: None,
    })
    .expect("appended");
    wal
}

/// A new log holding entries 1..=20, with a snapshot through 12 staged (not recorded).
fn log_with_a_staged_snapshot() -> (tempfile::TempDir, Wal, Snapshot) {
    let (dir, wal, stager) = log_and_stager();
    let staged = snapshot(1, 12);
    stager.stage(&staged).expect("staged");
    (dir, wal, staged)
}

/// A new log holding entries 1..=20, and its stager.
fn log_and_stager() -> (tempfile::TempDir, Wal, Arc<dyn SnapshotStager>) {
    let dir = scratch_directory();
    let wal = log_with_entries(dir.path());
    let stager = stager(&wal);
    (dir, wal, stager)
}

fn stager(wal: &Wal) -> Arc<dyn SnapshotStager> {
    LogStore::snapshot_stager(wal).expect("the log stages snapshots")
}

/// Records `snapshot` and waits until the files it made obsolete are deleted.
fn record(wal: &mut Wal, id: u64, snapshot: Snapshot) {
    wal.persist(PersistRequest {
        id,
        snapshot: Some(snapshot),
        entries: Vec::new(),
        hard_state: None,
    })
    .expect("the snapshot is recorded");
    wal.wait_for_cleanup();
}

fn staged_path(dir: &Path, snapshot: &Snapshot) -> PathBuf {
    let id = snapshot.meta.last_included;
    dir.join(format!(
        "snapshot-{:020}-{:020}.staged.snap.tmp",
        id.index.0, id.term.0
    ))
}

fn final_path(dir: &Path, snapshot: &Snapshot) -> PathBuf {
    let id = snapshot.meta.last_included;
    dir.join(format!(
        "snapshot-{:020}-{:020}.snap",
        id.index.0, id.term.0
    ))
}

fn reopen(wal: Wal) -> Wal {
    let dir = wal.dir().to_path_buf();
    drop(wal);
    Wal::open(&dir, voters(), options()).expect("reopens")
}

/// Reopens `wal` (a crash and a restart) and checks it recovers `snapshot` as its own.
fn reopen_holding(wal: Wal, snapshot: &Snapshot) -> Wal {
    let wal = reopen(wal);
    assert_eq!(&wal.storage().snapshot().expect("readable"), snapshot);
    wal
}

#[test]
fn a_staged_snapshot_is_recorded_by_renaming_its_file_not_writing_it_again() {
    let (dir, mut wal, staged) = log_with_a_staged_snapshot();
    let staged_file = staged_path(dir.path(), &staged);
    let inode = std::fs::metadata(&staged_file)
        .expect("the staged file is there")
        .ino();
    assert_eq!(
        wal.storage()
            .snapshot()
            .expect("readable")
            .meta
            .last_included,
        Default::default(),
        "staging alone records nothing"
    );

    record(&mut wal, 2, staged.clone());
    let recorded = std::fs::metadata(final_path(dir.path(), &staged)).expect("in place");
    assert_eq!(recorded.ino(), inode, "the staged file itself, renamed");
    assert!(!staged_file.exists());
    assert_eq!(wal.storage().snapshot().expect("readable"), staged);

    let wal = reopen_holding(wal, &staged);
    assert_eq!(wal.storage().first_index(), Ok(Index(13)));
    assert_eq!(wal.storage().last_index(), Ok(Index(20)));
    assert!(!wal.recovery_report().snapshot_marker_restored);
}

#[test]
fn a_staged_snapshot_no_marker_names_is_not_recovered_and_is_removed() {
    let (dir, wal, staged) = log_with_a_staged_snapshot();
    // A crash between staging and the write that would have recorded it.
    let wal = reopen(wal);
    let storage = wal.storage();
    assert_eq!(
        storage.snapshot().expect("readable").meta.last_included,
        Default::default()
    );
    assert_eq!(storage.first_index(), Ok(Index(1)));
    assert_eq!(storage.last_index(), Ok(Index(20)));
    let staged_file = staged_path(dir.path(), &staged);
    assert!(!staged_file.exists());
    assert!(wal.recovery_report().removed_files.contains(&staged_file));
    assert!(!wal.recovery_report().snapshot_marker_restored);
}

#[test]
fn a_staged_snapshot_that_differs_from_the_recorded_one_is_not_used() {
    let dir = scratch_directory();
    let mut wal = log_with_entries(dir.path());
    let mut staged = snapshot(1, 12);
    staged.data = Bytes::from_static(b"what was staged");
    stager(&wal).stage(&staged).expect("staged");
    let recorded = snapshot(1, 12);
    assert_ne!(recorded, staged);
    record(&mut wal, 2, recorded.clone());
    assert!(!staged_path(dir.path(), &staged).exists(), "deleted");
    reopen_holding(wal, &recorded);
}

#[test]
fn staged_snapshots_a_newer_recorded_one_covers_are_deleted() {
    let (dir, mut wal, stager) = log_and_stager();
    let older = snapshot(1, 8);
    let newer = snapshot(1, 15);
    stager.stage(&older).expect("staged");
    // Recorded without staging, as a snapshot installed from the leader is.
    record(&mut wal, 2, newer.clone());
    assert!(!staged_path(dir.path(), &older).exists());
    // The older one, handed to the log after all, changes nothing.
    record(&mut wal, 3, older.clone());
    assert!(!final_path(dir.path(), &older).exists());
    assert_eq!(wal.storage().snapshot().expect("readable"), newer);
}

#[test]
fn a_discarded_staged_snapshot_is_deleted_and_written_whole_if_recorded_after_all() {
    let (dir, mut wal, stager) = log_and_stager();
    let staged = snapshot(1, 12);
    stager.stage(&staged).expect("staged");
    stager.discard(staged.meta.last_included);
    assert!(!staged_path(dir.path(), &staged).exists());
    record(&mut wal, 2, staged.clone());
    reopen_holding(wal, &staged);
}

#[test]
fn a_staged_file_deleted_behind_the_logs_back_is_written_whole() {
    let (dir, mut wal, staged) = log_with_a_staged_snapshot();
    std::fs::remove_file(staged_path(dir.path(), &staged)).expect("deleted");
    record(&mut wal, 2, staged.clone());
    reopen_holding(wal, &staged);
}

#[test]
fn staging_goes_on_from_another_thread_while_the_log_appends() {
    let (_dir, mut wal, stager) = log_and_stager();
    let staged = snapshot(1, 12);
    let staging = {
        let staged = staged.clone();
        std::thread::spawn(move || stager.stage(&staged).map_err(|error| error.to_string()))
    };
    for id in 2..=40 {
        wal.persist(PersistRequest {
            id,
            snapshot: None,
            entries: entries(1, 19 + id..=19 + id),
            hard_state: None,
        })
        .expect("appended");
    }
    staging.join().expect("no panic").expect("staged");
    record(&mut wal, 41, staged.clone());
    let wal = reopen_holding(wal, &staged);
    assert_eq!(wal.storage().last_index(), Ok(Index(59)));
}

#[test]
fn staging_a_snapshot_the_recorded_one_covers_writes_nothing() {
    let dir = scratch_directory();
    let mut wal = log_with_entries(dir.path());
    record(&mut wal, 2, snapshot(1, 15));
    let covered = snapshot(1, 10);
    stager(&wal).stage(&covered).expect("nothing to do");
    assert!(!staged_path(dir.path(), &covered).exists());
}

#[test]
fn the_same_snapshot_is_not_staged_twice() {
    let dir = scratch_directory();
    let wal = log_with_entries(dir.path());
    let stager = stager(&wal);
    let staged = snapshot(1, 12);
    stager.stage(&staged).expect("staged");
    assert!(stager.stage(&staged).is_err());
    assert!(staged_path(dir.path(), &staged).exists(), "the first stays");
}
