//! The clean-shutdown and suspect markers and what the log reports from them: a restart that
//! finds damage (a torn tail) reports that writes may have been lost, and so does every later
//! one until a clean close; with `distrust_unclean_shutdown`, so does every restart after a
//! crash (no clean-shutdown marker); a restart after a graceful close trusts its state.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, NodeId, PersistRequest, Storage, Term,
};
use raft_wal::{Wal, WalError, WalOptions};

/// The marker's file name, as the on-disk format documents it.
const MARKER: &str = "CLEAN_SHUTDOWN";
/// The suspect marker's file name, as the on-disk format documents it.
const SUSPECT: &str = "SUSPECT";

fn voters() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// Without preallocation, so that the last segment ends at its last record and bytes
/// appended to it are a torn record, not room after zeros.
fn options() -> WalOptions {
    WalOptions {
        preallocate: false,
        distrust_unclean_shutdown: true,
        ..WalOptions::default()
    }
}

/// As [`options`], trusting a crash that left no damage (the default).
fn trusting_options() -> WalOptions {
    WalOptions {
        distrust_unclean_shutdown: false,
        ..options()
    }
}

/// Appends bytes that do not make a whole frame to the first segment: what a disk that
/// reordered or half-wrote the last write leaves.
fn tear_tail(dir: &Path) {
    let segment = dir.join("00000000000000000001.wal");
    let mut file = OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("the segment opens");
    file.write_all(&[0xA5; 7]).expect("garbage appended");
}

fn append(wal: &mut Wal, index: u64) {
    let entry = Entry {
        id: LogId::new(Term(1), Index(index)),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("command {index}")),
    };
    wal.persist(PersistRequest {
        id: index,
        entries: vec![entry],
        ..Default::default()
    })
    .expect("append is durable");
}

fn open(dir: &Path) -> Wal {
    Wal::open(dir, voters(), options()).expect("opens")
}

/// What the log reports to the core, which must agree with its recovery report.
fn reports_lost_writes(wal: &Wal) -> bool {
    let reported = wal
        .storage()
        .initial_state()
        .expect("reads")
        .possibly_lost_writes;
    assert_eq!(
        reported,
        wal.recovery_report().possibly_lost_writes,
        "the initial state says what recovery judged"
    );
    reported
}

fn marker_exists(dir: &Path) -> bool {
    dir.join(MARKER).exists()
}

/// A log holding entries 1 to 3, closed cleanly.
fn cleanly_closed_log(dir: &Path) {
    let mut wal = open(dir);
    append(&mut wal, 1);
    append(&mut wal, 2);
    append(&mut wal, 3);
    wal.close_cleanly().expect("closes cleanly");
    assert!(marker_exists(dir), "close_cleanly leaves the marker");
}

#[test]
fn a_fresh_directory_has_lost_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = open(&dir.path().join("data"));
    let report = wal.recovery_report();
    assert!(report.bootstrapped);
    assert!(!report.clean_shutdown);
    assert!(!reports_lost_writes(&wal), "a new log has nothing to lose");
}

#[test]
fn a_restart_after_a_clean_close_has_lost_nothing_and_removes_the_marker() {
    let dir = tempfile::tempdir().expect("temporary directory");
    cleanly_closed_log(dir.path());
    let wal = open(dir.path());
    let report = wal.recovery_report();
    assert!(report.clean_shutdown, "{report:?}");
    assert_eq!(report.torn_tail_bytes, 0);
    assert!(!reports_lost_writes(&wal), "{report:?}");
    assert!(
        !marker_exists(dir.path()),
        "the marker is removed at open, before any write"
    );
    assert!(
        !report
            .removed_files
            .iter()
            .any(|path| path.ends_with(MARKER)),
        "the marker is reported as clean_shutdown, not among the removed files"
    );
}

#[test]
fn a_restart_without_the_marker_may_have_lost_writes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = open(dir.path());
    append(&mut wal, 1);
    // A crash: the log is dropped without close_cleanly.
    drop(wal);
    assert!(!marker_exists(dir.path()), "only close_cleanly writes it");
    let wal = open(dir.path());
    let report = wal.recovery_report();
    assert!(!report.bootstrapped && !report.clean_shutdown, "{report:?}");
    assert!(reports_lost_writes(&wal), "{report:?}");
}

#[test]
fn a_torn_tail_after_a_clean_close_may_have_lost_writes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    cleanly_closed_log(dir.path());
    tear_tail(dir.path());
    let wal = open(dir.path());
    let report = wal.recovery_report();
    assert_eq!(report.torn_tail_bytes, 7, "{report:?}");
    assert!(report.clean_shutdown, "{report:?}");
    assert!(
        reports_lost_writes(&wal),
        "a torn tail means the disk lost a write, marker or not: {report:?}"
    );
}

#[test]
fn a_crash_after_a_clean_restart_counts_as_unclean() {
    let dir = tempfile::tempdir().expect("temporary directory");
    cleanly_closed_log(dir.path());
    let wal = open(dir.path());
    assert!(!reports_lost_writes(&wal));
    // Crashes before writing anything: the marker is gone all the same.
    drop(wal);
    let wal = open(dir.path());
    let report = wal.recovery_report();
    assert!(!report.clean_shutdown, "{report:?}");
    assert!(reports_lost_writes(&wal), "{report:?}");
}

#[test]
fn a_stopped_log_cannot_close_cleanly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = open(dir.path());
    append(&mut wal, 1);
    // Entry 5 after entry 1 leaves a gap: refused, and the log stops.
    let gap = Entry {
        id: LogId::new(Term(1), Index(5)),
        kind: EntryKind::Normal,
        data: Bytes::new(),
    };
    let refused = wal.persist(PersistRequest {
        id: 2,
        entries: vec![gap],
        ..Default::default()
    });
    assert!(
        matches!(refused, Err(WalError::InvalidWrite(_))),
        "{refused:?}"
    );
    let closed = wal.close_cleanly();
    assert!(matches!(closed, Err(WalError::Stopped(_))), "{closed:?}");
    assert!(!marker_exists(dir.path()));
    let wal = open(dir.path());
    assert!(reports_lost_writes(&wal));
}

#[test]
fn a_caller_that_knows_better_overrides_the_judgement() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = open(dir.path());
    append(&mut wal, 1);
    drop(wal);
    let mut wal = open(dir.path());
    assert!(reports_lost_writes(&wal));
    wal.set_possibly_lost_writes(false);
    let state = wal.storage().initial_state().expect("reads");
    assert!(!state.possibly_lost_writes);
    assert!(
        wal.recovery_report().possibly_lost_writes,
        "the report keeps what recovery found"
    );
}

#[test]
fn by_default_a_crash_without_damage_has_lost_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), trusting_options()).expect("opens");
    append(&mut wal, 1);
    drop(wal);
    let wal = Wal::open(dir.path(), voters(), trusting_options()).expect("opens");
    let report = wal.recovery_report();
    assert!(!report.clean_shutdown, "{report:?}");
    assert!(
        !reports_lost_writes(&wal),
        "a disk that keeps what it synced loses nothing to a crash: {report:?}"
    );
}

#[test]
fn damage_keeps_the_log_suspect_across_crashes_until_a_clean_close() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let reopen = || Wal::open(dir.path(), voters(), trusting_options()).expect("opens");
    let mut wal = reopen();
    append(&mut wal, 1);
    drop(wal);
    tear_tail(dir.path());
    let wal = reopen();
    assert_eq!(wal.recovery_report().torn_tail_bytes, 7);
    assert!(reports_lost_writes(&wal));
    assert!(
        dir.path().join(SUSPECT).exists(),
        "the suspicion is durable"
    );
    // A crash in the middle of the recovery: no damage is left to see, yet the log is still
    // suspect.
    drop(wal);
    let wal = reopen();
    let report = wal.recovery_report();
    assert_eq!(report.torn_tail_bytes, 0, "{report:?}");
    assert!(report.still_suspect, "{report:?}");
    assert!(reports_lost_writes(&wal), "{report:?}");
    // A clean close (of a peer that recovered) ends it.
    wal.close_cleanly().expect("closes cleanly");
    assert!(!dir.path().join(SUSPECT).exists());
    let wal = reopen();
    assert!(!reports_lost_writes(&wal), "{:?}", wal.recovery_report());
}
