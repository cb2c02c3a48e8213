//! A full disk, made real with `RLIMIT_FSIZE`: once a write would take a file past the limit
//! the kernel writes up to it and then fails with EFBIG (SIGXFSZ is ignored so the process
//! survives). The log must report the failure, acknowledge nothing it could not write, refuse
//! every later write, keep serving what it did acknowledge, and after a restart with space
//! again hold every acknowledged entry and accept writes.
//!
//! ```text
//!  phase                         limit                          expected
//!  segment append                mid-frame of entry 21          Io(write segment), Stopped; reopen: torn tail cut
//!  segment roll                  inside the new segment header  Io(write segment of the new one), Stopped
//!  snapshot                      below the snapshot's size      Io(write snapshot .tmp), Stopped; reopen: .tmp removed
//!  group commit                  mid-frame of entry 51          on_durable(Err), nothing later acknowledged
//!  segment roll, then compaction inside the new segment header  the hard state survives the compaction
//! ```
//!
//! The limit is per process, so this file holds a single test that runs the phases in turn
//! (cargo runs each test file as its own process).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, PersistRequest, Snapshot,
    SnapshotMeta, Storage, Term,
};
use raft_wal::{Wal, WalError, WalOptions};

use common::{newest_segment, stored};

/// Payload of every entry: with the 12-byte frame header and the 18-byte entry prefix, each
/// entry's frame is 130 bytes.
const DATA_BYTES: usize = 100;
const FRAME_BYTES: u64 = 130;
/// Where within a frame the limit falls, so that the failing write leaves a torn frame.
const LIMIT_INTO_FRAME_BYTES: u64 = 50;

/// Lowers the soft `RLIMIT_FSIZE` until dropped. The hard limit is left alone, so restoring
/// needs no privilege.
struct FileSizeLimit {
    original: libc::rlimit,
}

impl FileSizeLimit {
    fn set(bytes: u64) -> FileSizeLimit {
        let mut original = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit are given a valid rlimit to fill or read.
        unsafe {
            assert_eq!(
                libc::getrlimit(libc::RLIMIT_FSIZE, &mut original),
                0,
                "getrlimit"
            );
            let limited = libc::rlimit {
                rlim_cur: bytes.min(original.rlim_max),
                rlim_max: original.rlim_max,
            };
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_FSIZE, &limited),
                0,
                "setrlimit"
            );
        }
        FileSizeLimit { original }
    }
}

impl Drop for FileSizeLimit {
    fn drop(&mut self) {
        // SAFETY: restores the limit read in `set`.
        let result = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &self.original) };
        assert_eq!(result, 0, "restoring RLIMIT_FSIZE");
    }
}

fn voters() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn options() -> WalOptions {
    WalOptions {
        segment_bytes_max: 1 << 20,
        // Reads after the failure come from the files, not from memory.
        cache_bytes_max: 0,
        // The file-size limit is placed by the sizes of appended segments.
        preallocate: false,
        ..WalOptions::default()
    }
}

fn entry(index: u64) -> Entry {
    let mut data = format!("entry {index} ").into_bytes();
    data.resize(DATA_BYTES, b'.');
    Entry {
        id: LogId::new(Term(1), Index(index)),
        kind: EntryKind::Normal,
        data: Bytes::from(data),
    }
}

fn entries(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(entry).collect()
}

fn append(index: u64) -> PersistRequest {
    PersistRequest {
        id: index,
        snapshot: None,
        entries: vec![entry(index)],
        hard_state: None,
    }
}

fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.wal"))
}

fn file_size(path: &Path) -> u64 {
    fs::metadata(path).expect("file exists").len()
}

/// Asserts `result` is an EFBIG `Io` error naming `expected_path`.
fn assert_file_too_large(
    result: Result<(), WalError>,
    operation_expected: &str,
    expected_path: &Path,
) {
    match result {
        Err(WalError::Io {
            operation,
            path,
            source,
        }) => {
            assert_eq!(operation, operation_expected);
            assert_eq!(path, expected_path);
            assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}");
        }
        other => panic!("expected an EFBIG Io error naming {expected_path:?}, got {other:?}"),
    }
}

fn assert_stopped(wal: &mut Wal, request: PersistRequest) {
    let result = wal.persist(request);
    assert!(matches!(result, Err(WalError::Stopped(_))), "{result:?}");
}

#[test]
fn a_full_disk_stops_the_log_without_acknowledging_lost_writes() {
    // SAFETY: ignoring SIGXFSZ makes a write past the limit fail with EFBIG instead of
    // killing the process; no other code in this process handles that signal.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let hard_state = segment_append_hits_the_limit(dir.path());
    segment_roll_hits_the_limit(dir.path(), hard_state);
    snapshot_hits_the_limit(dir.path());
    let group_dir = tempfile::tempdir().expect("temporary directory");
    batches_report_the_failure(group_dir.path());
    let roll_dir = tempfile::tempdir().expect("temporary directory");
    compaction_after_a_cut_segment_roll_keeps_the_hard_state(roll_dir.path());
}

/// Entries 1..=20 fit under the limit, entry 21's frame straddles it. Returns the hard state
/// written.
fn segment_append_hits_the_limit(dir: &Path) -> HardState {
    let mut wal = Wal::open(dir, voters(), options()).expect("opens");
    let hard_state = HardState {
        term: Term(1),
        vote: Some(NodeId(2)),
        commit: Index(0),
    };
    wal.persist(PersistRequest {
        id: 0,
        snapshot: None,
        entries: vec![],
        hard_state: Some(hard_state),
    })
    .expect("hard state is durable");
    let segment = segment_path(dir, 1);
    let start = file_size(&segment);
    let limit = start + 20 * FRAME_BYTES + LIMIT_INTO_FRAME_BYTES;
    {
        let _limit = FileSizeLimit::set(limit);
        for index in 1..=20 {
            wal.persist(append(index)).expect("fits under the limit");
        }
        assert_eq!(
            file_size(&segment),
            start + 20 * FRAME_BYTES,
            "entry frames are {FRAME_BYTES} bytes"
        );
        assert_file_too_large(wal.persist(append(21)), "write segment", &segment);
        assert_eq!(
            file_size(&segment),
            limit,
            "the kernel wrote up to the limit"
        );
        assert!(
            wal.failure()
                .is_some_and(|failure| failure.contains("write segment")),
            "{:?}",
            wal.failure()
        );
        // Every later write is refused, whatever it holds.
        assert_stopped(&mut wal, append(21));
        assert_stopped(&mut wal, append(22));
        let refused = wal.write(std::iter::empty());
        assert!(matches!(refused, Err(WalError::Stopped(_))), "{refused:?}");
        assert_stopped(
            &mut wal,
            PersistRequest {
                id: 23,
                snapshot: None,
                entries: vec![],
                hard_state: Some(HardState {
                    commit: Index(20),
                    ..hard_state
                }),
            },
        );
        // What was acknowledged is still served, nothing else is.
        assert_eq!(stored(&wal), entries(1..=20));
        assert_eq!(wal.storage().hard_state(), Ok(hard_state));
        assert_eq!(
            wal.storage().term(Index(21)),
            Err(raft_core::StorageError::Unavailable(Index(21)))
        );
    }
    drop(wal);

    // Space again: the torn frame of entry 21 is cut, everything acknowledged is there.
    let mut wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(
        wal.recovery_report().torn_tail_bytes,
        LIMIT_INTO_FRAME_BYTES
    );
    assert_eq!(stored(&wal), entries(1..=20));
    assert_eq!(wal.storage().hard_state(), Ok(hard_state));
    for index in 21..=25 {
        wal.persist(append(index)).expect("writable again");
    }
    drop(wal);
    let wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(wal.recovery_report().torn_tail_bytes, 0);
    assert_eq!(stored(&wal), entries(1..=25));
    hard_state
}

/// The active segment is full, so the next write starts a segment, and the limit falls inside
/// the new segment's header frames.
fn segment_roll_hits_the_limit(dir: &Path, hard_state: HardState) {
    let full = WalOptions {
        segment_bytes_max: file_size(&segment_path(dir, newest_segment(dir))),
        ..options()
    };
    let mut wal = Wal::open(dir, voters(), full.clone()).expect("opens");
    let next = segment_path(dir, newest_segment(dir) + 1);
    // The segment header is 32 bytes; the hard state frame after it is cut.
    let limit = 40;
    {
        let _limit = FileSizeLimit::set(limit);
        assert_file_too_large(wal.persist(append(26)), "write segment", &next);
        assert_eq!(file_size(&next), limit);
        assert_stopped(&mut wal, append(26));
        assert_eq!(stored(&wal), entries(1..=25));
    }
    drop(wal);
    let mut wal = Wal::open(dir, voters(), full).expect("reopens");
    assert_eq!(
        wal.recovery_report().torn_tail_bytes,
        limit - 32,
        "the cut frame is dropped"
    );
    assert_eq!(stored(&wal), entries(1..=25));
    assert_eq!(wal.storage().hard_state(), Ok(hard_state));
    wal.persist(append(26)).expect("writable again");
    drop(wal);
    let wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(stored(&wal), entries(1..=26));
}

/// A snapshot file larger than the limit: its write fails, the request (snapshot and entries)
/// is not acknowledged, and the temporary file is removed on the next open.
fn snapshot_hits_the_limit(dir: &Path) {
    let mut wal = Wal::open(dir, voters(), options()).expect("opens");
    let limit = 8 << 10;
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(1), Index(20)),
            configuration: voters(),
        },
        data: Bytes::from(vec![7u8; 4 * limit as usize]),
    };
    let request = PersistRequest {
        id: 27,
        snapshot: Some(snapshot.clone()),
        entries: vec![entry(27)],
        hard_state: None,
    };
    let temporary = dir.join(format!("snapshot-{:020}-{:020}.snap.tmp", 20, 1));
    {
        let _limit = FileSizeLimit::set(limit);
        assert_file_too_large(wal.persist(request.clone()), "write snapshot", &temporary);
        assert_stopped(&mut wal, append(27));
        let storage = wal.storage();
        assert_eq!(
            storage.snapshot_meta().map(|meta| meta.last_included),
            Ok(LogId::default())
        );
        assert_eq!(storage.first_index(), Ok(Index(1)));
        assert_eq!(storage.hard_state().map(|state| state.commit), Ok(Index(0)));
        assert_eq!(stored(&wal), entries(1..=26));
    }
    drop(wal);
    let mut wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(wal.recovery_report().removed_files, vec![temporary.clone()]);
    assert!(!temporary.exists());
    assert_eq!(
        wal.storage().snapshot_meta().map(|meta| meta.last_included),
        Ok(LogId::default())
    );
    assert_eq!(stored(&wal), entries(1..=26));
    wal.persist(request)
        .expect("with space the snapshot is durable");
    drop(wal);
    let wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(wal.storage().snapshot(), Ok(snapshot));
    assert_eq!(stored(&wal), entries(21..=27));
}

/// Batch by batch, as a group-commit thread writes: the failing batch reports the error,
/// nothing is acknowledged after it, and the log holds on restart every acknowledged entry.
fn batches_report_the_failure(dir: &Path) {
    let wal = Wal::open(dir, voters(), options()).expect("opens");
    let segment = segment_path(dir, 1);
    let start = file_size(&segment);
    let fitting = 50;
    let limit = start + fitting * FRAME_BYTES + LIMIT_INTO_FRAME_BYTES;
    let submitted = 200;
    let (acknowledged, failure, mut wal) = {
        let _limit = FileSizeLimit::set(limit);
        let mut wal = wal;
        let mut acknowledged = Vec::new();
        let mut failure = None;
        // Batches of seven, as a group-commit thread hands them over: each acknowledged whole
        // (the id of its last request) until the one that fails, 50..=56, whose entry 50 fits
        // and entry 51 does not.
        for first in (1..=submitted).step_by(7) {
            let batch = (first..first + 7).map(append);
            match wal.write(batch) {
                Ok(Some(id)) => acknowledged.push(id),
                Ok(None) => panic!("a batch of seven wrote nothing"),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        // The log has stopped: a late request is refused, never acknowledged.
        let late = wal.write([append(submitted + 1)]);
        assert!(matches!(late, Err(WalError::Stopped(_))), "{late:?}");
        (acknowledged, failure, wal)
    };
    assert!(
        acknowledged.windows(2).all(|pair| pair[0] < pair[1]),
        "{acknowledged:?}"
    );
    let last_acknowledged = acknowledged.last().copied().unwrap_or(0);
    assert!(
        last_acknowledged <= fitting,
        "entry {} did not fit",
        fitting + 1
    );
    match failure {
        Some(WalError::Io {
            operation,
            path,
            source,
        }) => {
            assert_eq!((operation, path), ("write segment", segment.clone()));
            assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{source}");
        }
        other => panic!("expected the writer to report an EFBIG Io error, got {other:?}"),
    }
    assert!(wal.failure().is_some());
    assert_eq!(
        stored(&wal),
        entries(1..=last_acknowledged),
        "only acknowledged entries are served"
    );
    assert_stopped(&mut wal, append(submitted + 2));
    drop(wal);

    // The failing batch's entry 50 was written whole but never acknowledged;
    // they survive like any write whose acknowledgement was lost. Entry 51 is torn and cut.
    let mut wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(
        wal.recovery_report().torn_tail_bytes,
        LIMIT_INTO_FRAME_BYTES
    );
    assert_eq!(stored(&wal), entries(1..=fitting));
    wal.persist(append(fitting + 1)).expect("writable again");
    assert_eq!(stored(&wal), entries(1..=fitting + 1));
}

/// A segment roll cut inside the new segment's first frame leaves, after recovery, an active
/// segment with no hard state record: the hard state then lives only in older segments.
/// Compacting those away must not lose it (the vote is what keeps a peer from voting twice
/// in a term, Raft paper §5.2).
fn compaction_after_a_cut_segment_roll_keeps_the_hard_state(dir: &Path) {
    let rolling = WalOptions {
        segment_bytes_max: 1,
        ..options()
    };
    let hard_state = HardState {
        term: Term(2),
        vote: Some(NodeId(3)),
        commit: Index(0),
    };
    let mut wal = Wal::open(dir, voters(), rolling.clone()).expect("opens");
    wal.persist(PersistRequest {
        id: 1,
        snapshot: None,
        entries: entries(1..=3),
        hard_state: Some(hard_state),
    })
    .expect("durable");
    let next = segment_path(dir, newest_segment(dir) + 1);
    {
        let _limit = FileSizeLimit::set(40);
        assert_file_too_large(wal.persist(append(4)), "write segment", &next);
    }
    drop(wal);
    // Large segments from here on, so the segment whose roll was cut stays the active one.
    let mut wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(wal.recovery_report().torn_tail_bytes, 40 - 32);
    assert_eq!(wal.storage().hard_state(), Ok(hard_state));
    wal.persist(append(4)).expect("durable");
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(1), Index(3)),
            configuration: voters(),
        },
        data: Bytes::from_static(b"state through 3"),
    };
    wal.persist(PersistRequest {
        id: 5,
        snapshot: Some(snapshot),
        entries: vec![],
        hard_state: None,
    })
    .expect("compaction is durable");
    let compacted = HardState {
        commit: Index(3),
        ..hard_state
    };
    assert_eq!(wal.storage().hard_state(), Ok(compacted));
    drop(wal);
    let wal = Wal::open(dir, voters(), options()).expect("reopens");
    assert_eq!(stored(&wal), entries(4..=4));
    assert_eq!(
        wal.storage().hard_state(),
        Ok(compacted),
        "the term and vote survive the compaction of the segments that held them"
    );
}
