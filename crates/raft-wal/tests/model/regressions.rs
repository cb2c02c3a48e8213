//! Cases the model test found, kept as scenarios.

use super::generate::{entry, snapshot, EntrySpec};
use super::*;

// Scenarios the model test found, reduced by hand to the segment layouts that trigger them.
// Each runs its requests against the log and the model, then reopens and compares. Segments
// are 150 bytes: a 32-byte header and a 37-byte hard state frame start each one, and an entry
// with no data is a 30-byte frame, so a segment takes up to three writes of such entries.

fn empty_entry(term: u64, index: u64) -> Entry {
    entry(
        index,
        term,
        &EntrySpec {
            noop: false,
            configuration: false,
            data_bytes: 0,
        },
    )
}

fn empty_entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| empty_entry(term, index)).collect()
}

fn entries_request(id: u64, entries: Vec<Entry>) -> PersistRequest {
    PersistRequest {
        id,
        entries,
        ..PersistRequest::default()
    }
}

fn snapshot_request(id: u64, term: u64, index: u64) -> PersistRequest {
    PersistRequest {
        id,
        snapshot: Some(snapshot(index, term, 2, 10)),
        ..PersistRequest::default()
    }
}

/// Persists each request to the log and the model, comparing after each, then reopens the log
/// and compares again.
fn scenario(requests: Vec<PersistRequest>) {
    let options = CaseOptions {
        segment_bytes_max: 150,
        cache_bytes_max: 0,
    };
    let dir = scratch_dir();
    let mut wal = open(dir.path(), &options, bootstrap()).expect("opens");
    let mut model = MemStorage::new(bootstrap());
    let mut trace = Vec::new();
    for request in requests {
        trace.push(describe(&request));
        model.persist(request.clone());
        wal.persist(request).expect("durable");
        if let Err(message) = check(&wal, &model, &options) {
            panic!("{message}\n  {}", trace.join("\n  "));
        }
    }
    drop(wal);
    // Dropped without `close_cleanly`, as by a crash.
    model.set_possibly_lost_writes(true);
    let wal = open(dir.path(), &options, Configuration::default())
        .unwrap_or_else(|message| panic!("{message}\n  {}", trace.join("\n  ")));
    if let Err(message) = check_recovery(&wal, &model).and_then(|()| check(&wal, &model, &options))
    {
        panic!("after reopening: {message}\n  {}", trace.join("\n  "));
    }
}

/// Segment 2 holds the marker of an older compaction (through 1) and then entry 4; the
/// compaction through 3 deletes segment 1. Replaying segment 2 alone, the old marker must
/// not anchor the log at 1, or entry 4 looks like a gap.
#[test]
fn compaction_marker_before_the_retained_entries_survives_reopening() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=3)),
        snapshot_request(2, 1, 1),
        entries_request(3, empty_entries(1, 4..=4)),
        snapshot_request(4, 1, 3),
    ]);
}

/// Segment 2 holds entries 5 and 6 and then entry 3 of term 2, which replaced them; the
/// compaction through 2 deletes segment 1. Replaying segment 2 alone, entry 3 replaces the
/// log from below its first entry.
#[test]
fn suffix_replaced_below_the_retained_entries_survives_reopening() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=4)),
        entries_request(2, empty_entries(1, 5..=6)),
        entries_request(3, empty_entries(2, 3..=3)),
        snapshot_request(4, 1, 2),
    ]);
}

/// Segment 2 holds entries 5 and 6 of term 1 and then a snapshot through 4 of term 2, which
/// disagrees with entry 4 (term 1, in segment 1) and so discards the whole log; segment 1 is
/// deleted. Replaying segment 2 alone, the marker seems to follow entries 5 and 6 and they
/// come back.
#[test]
fn disagreeing_snapshot_just_below_the_retained_entries_stays_discarded() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=4)),
        entries_request(2, empty_entries(1, 5..=6)),
        snapshot_request(3, 2, 4),
    ]);
}

/// As above with the snapshot further below the retained entries (10 and 11): the replay
/// takes the marker for a stale one, and the snapshot file does not reach the log.
#[test]
fn disagreeing_snapshot_far_below_the_retained_entries_stays_discarded() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=9)),
        entries_request(2, empty_entries(1, 10..=11)),
        snapshot_request(3, 2, 5),
    ]);
}
