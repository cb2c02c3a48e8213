//! Scenarios of snapshots: the service compacting its log, a leader's snapshot the log
//! disagrees with, stale snapshots, and the commit index a snapshot implies (Raft paper §7).

use crate::ready::PersistRequest;

use super::super::fixtures::{
    append, append_with, bootstrap, hard_state as hard, install, install_with, normals, save,
    snapshot,
};
use super::super::session::{Image, Session};
use super::super::{ConformanceFailure, Rule, StoreHarness, Tally};

/// `compaction`: snapshots at indexes the log holds, in its middle and at its end, then
/// appends after them, across a reopen.
pub(in super::super) fn compaction<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::Compaction, &bootstrap)?;
    let log = [normals(1, 1..=6), normals(2, 7..=8)].concat();
    session.write_one(append(log[..6].to_vec()))?;
    session.write_one(append_with(log[6..].to_vec(), hard(2, None, 8)))?;

    let through_3 = snapshot(1, 3, &bootstrap, 1);
    session.write_one(install(through_3.clone()))?;
    session.expect(
        "after a snapshot through 3 of 1..=8 (4..=8 stay)",
        &Image::of(&through_3, &log[3..], hard(2, None, 8)),
    )?;

    let through_8 = snapshot(2, 8, &bootstrap, 2);
    session.write_one(install(through_8.clone()))?;
    session.expect(
        "after a snapshot through 8, the last entry",
        &Image::of(&through_8, &[], hard(2, None, 8)),
    )?;

    session.write_one(append_with(normals(2, 9..=10), hard(2, None, 10)))?;
    session.expect(
        "after appending 9..=10 to the compacted log",
        &Image::of(&through_8, &normals(2, 9..=10), hard(2, None, 10)),
    )?;
    session.reopen()?;

    let through_9 = snapshot(2, 9, &bootstrap, 3);
    session.write_one(install(through_9.clone()))?;
    let expected = Image::of(&through_9, &normals(2, 10..=10), hard(2, None, 10));
    session.expect("after a reopen and a snapshot through 9", &expected)?;
    session.reopen()?;
    session.expect("after a second reopen", &expected)
}

/// `snapshot-discards-disagreeing-log`: snapshots with another term at an index of the log,
/// at its last index, and beyond it; on a new store too.
pub(in super::super) fn snapshot_discards_disagreeing_log<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(
        harness,
        tally,
        Rule::SnapshotDiscardsDisagreeingLog,
        &bootstrap,
    )?;
    session.write_one(append_with(normals(1, 1..=5), hard(1, None, 3)))?;

    // The hard state written along raises the commit itself: this rule is not the commit's.
    let other_term_at_4 = snapshot(2, 4, &bootstrap, 1);
    session.write_one(install_with(other_term_at_4.clone(), hard(2, None, 4)))?;
    session.expect(
        "after a snapshot through 4 of term 2 over 1..=5 of term 1 (5 must go)",
        &Image::of(&other_term_at_4, &[], hard(2, None, 4)),
    )?;
    session.write_one(append(normals(2, 5..=6)))?;
    session.expect(
        "after appending 5..=6 after that snapshot",
        &Image::of(&other_term_at_4, &normals(2, 5..=6), hard(2, None, 4)),
    )?;

    let other_term_at_last = snapshot(3, 6, &bootstrap, 2);
    session.write_one(install_with(other_term_at_last.clone(), hard(3, None, 6)))?;
    session.expect(
        "after a snapshot through 6 of term 3 over 5..=6 of term 2",
        &Image::of(&other_term_at_last, &[], hard(3, None, 6)),
    )?;
    session.write_one(append(normals(3, 7..=9)))?;

    let beyond = snapshot(4, 12, &bootstrap, 3);
    session.write_one(install_with(beyond.clone(), hard(4, None, 12)))?;
    let expected = Image::of(&beyond, &[], hard(4, None, 12));
    session.expect(
        "after a snapshot through 12 over a log ending at 9",
        &expected,
    )?;
    session.reopen()?;
    session.expect("after a reopen", &expected)?;
    drop(session);

    let mut session = Session::create(
        harness,
        tally,
        Rule::SnapshotDiscardsDisagreeingLog,
        &bootstrap,
    )?;
    let first = snapshot(2, 5, &bootstrap, 4);
    session.write_one(install_with(first.clone(), hard(2, None, 5)))?;
    session.write_one(append(normals(2, 6..=7)))?;
    session.expect(
        "a new store: after a snapshot through 5 and appending 6..=7",
        &Image::of(&first, &normals(2, 6..=7), hard(2, None, 5)),
    )
}

/// `stale-snapshot-ignored`: snapshots older than the stored one, of its term and of another,
/// alone and with entries.
pub(in super::super) fn stale_snapshot_ignored<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::StaleSnapshotIgnored, &bootstrap)?;
    let log = normals(1, 1..=8);
    session.write_one(append_with(log.clone(), hard(1, None, 8)))?;
    let stored = snapshot(1, 5, &bootstrap, 1);
    session.write_one(install(stored.clone()))?;
    let mut expected = Image::of(&stored, &log[5..], hard(1, None, 8));
    session.expect("after a snapshot through 5", &expected)?;

    for (older, what) in [
        (snapshot(1, 3, &bootstrap, 2), "a snapshot through 3"),
        (
            snapshot(3, 4, &bootstrap, 3),
            "a snapshot through 4 of another term",
        ),
        (snapshot(0, 0, &bootstrap, 4), "a snapshot through 0"),
    ] {
        session.write_one(install(older))?;
        session.expect(&format!("after {what}: nothing changes"), &expected)?;
    }

    session.write_one(PersistRequest {
        snapshot: Some(snapshot(1, 4, &bootstrap, 5)),
        entries: normals(1, 9..=9),
        hard_state: Some(hard(1, None, 9)),
        ..Default::default()
    })?;
    expected = Image::of(&stored, &normals(1, 6..=9), hard(1, None, 9));
    session.expect(
        "after a snapshot through 4 with entry 9: only the entry is stored",
        &expected,
    )?;
    session.reopen()?;
    session.expect("after a reopen", &expected)
}

/// `snapshot-commit`: a compaction past the commit index, and a snapshot written with a
/// lower commit index, before and after a later hard state and a reopen.
pub(in super::super) fn snapshot_commit<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::SnapshotCommit, &bootstrap)?;
    let log = normals(1, 1..=6);
    session.write_one(append_with(log.clone(), hard(1, Some(1), 2)))?;

    let through_4 = snapshot(1, 4, &bootstrap, 1);
    session.write_one(install(through_4.clone()))?;
    session.expect(
        "after a snapshot through 4 with the commit at 2",
        &Image::of(&through_4, &log[4..], hard(1, Some(1), 4)),
    )?;

    let beyond = snapshot(2, 10, &bootstrap, 2);
    session.write_one(install_with(beyond.clone(), hard(2, Some(2), 3)))?;
    let expected = Image::of(&beyond, &[], hard(2, Some(2), 10));
    session.expect(
        "after a snapshot through 10 written with a commit of 3",
        &expected,
    )?;

    session.write_one(save(hard(2, Some(2), 5)))?;
    session.expect("after a later hard state with a commit of 5", &expected)?;
    session.reopen()?;
    session.expect("after a reopen", &expected)
}
