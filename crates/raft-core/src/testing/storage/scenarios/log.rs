//! Scenarios of the log itself: a new store, appends, the two size-bounded reads, a conflicting
//! suffix, the hard state, and reads outside the stored range.

use std::fmt::Debug;

use crate::storage::{Storage, StorageError};
use crate::types::{Entry, HardState, Index, Term};

use super::super::fixtures::{
    append, append_with, bootstrap, configuration, empty_snapshot, hard_state as hard, install,
    install_with, noop, normal, normals, save, snapshot,
};
use super::super::session::{describe_entries, outcome, Image, Session};
use super::super::{ConformanceFailure, Rule, StoreHarness, Tally};

/// `bootstrap-state`: a new store, and the same store reopened before any write.
pub(in super::super) fn bootstrap_state<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    // Two bootstraps, the second joint and with learners, so that a store that keeps a
    // configuration of its own, or part of the given one, is caught.
    for bootstrap in [bootstrap(), configuration(0b1100_0111)] {
        let mut session = Session::create(harness, tally, Rule::BootstrapState, &bootstrap)?;
        let expected = Image::of(&empty_snapshot(&bootstrap), &[], HardState::default());
        session.expect("a new store", &expected)?;
        expect_outcome(
            &session,
            "term(0) of a new store (the empty prefix)",
            session.reader().term(Index(0)),
            Ok(Term(0)),
        )?;
        // Twice: a store reopened before any write, then reopened again.
        for _ in 0..2 {
            session.reopen_unchecked()?;
            session.expect("a new store, reopened", &expected)?;
        }
    }
    Ok(())
}

/// `append-read-back`: appends of one and of several entries, in one request and in several,
/// read back before and after a reopen.
pub(in super::super) fn append_read_back<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let base = empty_snapshot(&bootstrap);
    let mut session = Session::create(harness, tally, Rule::AppendReadBack, &bootstrap)?;
    let mut log = vec![normal(1, 1, 0), noop(1, 2), normal(1, 3, 3000)];
    session.write_one(append(log.clone()))?;
    session.expect(
        "after appending 1..=3",
        &Image::of(&base, &log, HardState::default()),
    )?;

    session.write_one(append(normals(1, 4..=4)))?;
    log.extend(normals(1, 4..=4));
    session.expect(
        "after appending 4",
        &Image::of(&base, &log, HardState::default()),
    )?;

    let mut next = vec![noop(2, 5)];
    next.extend(normals(2, 6..=12));
    session.write_one(append(next.clone()))?;
    log.extend(next);
    session.expect(
        "after appending 5..=12 of a new term",
        &Image::of(&base, &log, HardState::default()),
    )?;

    session.reopen()?;
    session.write_one(append(normals(2, 13..=14)))?;
    log.extend(normals(2, 13..=14));
    session.expect(
        "after a reopen and appending 13..=14",
        &Image::of(&base, &log, HardState::default()),
    )
}

/// Entries 1..=6 of term 1 with sizes 34, 124, 24, 74, 1024 and 29 bytes
/// ([`Entry::size_bytes`]: the data plus a fixed header).
fn sized_log() -> Vec<Entry> {
    [10, 100, 0, 50, 1000, 5]
        .into_iter()
        .zip(1..)
        .map(|(bytes, index)| normal(1, index, bytes))
        .collect()
}

/// Every `max_bytes` worth trying on `entries`: zero, each running total and its neighbours,
/// and no limit.
fn limits(entries: &[Entry]) -> Vec<u64> {
    let mut limits = vec![0, 1, u64::MAX];
    let mut total = 0;
    for entry in entries {
        total += entry.size_bytes();
        limits.extend([total - 1, total, total + 1]);
    }
    limits.sort_unstable();
    limits.dedup();
    limits
}

/// `entries-max-bytes`: every range of a six-entry log, under every telling limit, before and
/// after a reopen (a store may read the ones it cached and the ones on disk differently).
pub(in super::super) fn entries_max_bytes<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::EntriesMaxBytes, &bootstrap)?;
    let log = sized_log();
    session.write_one(append(log.clone()))?;
    session.expect(
        "after appending 1..=6",
        &Image::of(&empty_snapshot(&bootstrap), &log, HardState::default()),
    )?;
    for when in ["as written", "after a reopen"] {
        if when == "after a reopen" {
            session.reopen()?;
        }
        let reader = session.reader();
        for low in 1..=log.len() {
            for high in low + 1..=log.len() + 1 {
                let range = &log[low - 1..high - 1];
                for max_bytes in limits(range) {
                    // The longest prefix within the limit, and never nothing.
                    let mut total = 0;
                    let count = range
                        .iter()
                        .take_while(|entry| {
                            total += entry.size_bytes();
                            total <= max_bytes
                        })
                        .count()
                        .max(1);
                    let expected = &range[..count];
                    let read = reader.entries(Index(low as u64), Index(high as u64), max_bytes);
                    if read.as_deref() != Ok(expected) {
                        return Err(session.fail(format!(
                            "{when}: entries({low}, {high}, {max_bytes}) must return {}, returned {}",
                            describe_entries(expected),
                            describe_read(&read)
                        )));
                    }
                }
            }
        }
        for low in 1..=log.len() as u64 + 1 {
            expect_outcome(
                &session,
                &format!("{when}: the empty range entries({low}, {low}, unlimited)"),
                reader.entries(Index(low), Index(low), u64::MAX),
                Ok(Vec::new()),
            )?;
        }
    }
    Ok(())
}

/// `entries-size-bytes`: every range of a six-entry log, under every telling limit, before and
/// after a reopen.
pub(in super::super) fn entries_size_bytes<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::EntriesSizeBytes, &bootstrap)?;
    let log = sized_log();
    session.write_one(append(log.clone()))?;
    for when in ["as written", "after a reopen"] {
        if when == "after a reopen" {
            session.reopen()?;
        }
        let reader = session.reader();
        for low in 1..=log.len() {
            for high in low..=log.len() + 1 {
                let range = &log[low - 1..high - 1];
                let total: u64 = range.iter().map(Entry::size_bytes).sum();
                for max_bytes in limits(range) {
                    let read =
                        reader.entries_size_bytes(Index(low as u64), Index(high as u64), max_bytes);
                    // Up to the limit the size is exact; past it, any answer above the limit
                    // says "more than that".
                    let right = match read {
                        Ok(bytes) if total <= max_bytes => bytes == total,
                        Ok(bytes) => bytes > max_bytes,
                        Err(_) => false,
                    };
                    if !right {
                        let must = if total <= max_bytes {
                            format!("{total}")
                        } else {
                            format!("more than {max_bytes} (the range holds {total})")
                        };
                        return Err(session.fail(format!(
                            "{when}: entries_size_bytes({low}, {high}, {max_bytes}) must be \
                             {must}, was {read:?}"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `conflicting-suffix`: suffixes replaced by shorter ones, by longer ones, from the middle
/// and from the first index.
pub(in super::super) fn conflicting_suffix<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let base = empty_snapshot(&bootstrap);
    let none = HardState::default();
    let mut session = Session::create(harness, tally, Rule::ConflictingSuffix, &bootstrap)?;
    session.write_one(append(normals(1, 1..=3)))?;
    session.write_one(append(normals(1, 4..=6)))?;

    session.write_one(append(normals(2, 4..=5)))?;
    let log = [normals(1, 1..=3), normals(2, 4..=5)].concat();
    session.expect(
        "entries 4..=5 of term 2 written over 1..=6 of term 1 (6 must go)",
        &Image::of(&base, &log, none),
    )?;

    session.write_one(append(vec![noop(3, 2)]))?;
    let log = [normals(1, 1..=1), vec![noop(3, 2)]].concat();
    session.expect(
        "a single entry of term 3 written at 2 over 1..=5",
        &Image::of(&base, &log, none),
    )?;

    session.write_one(append(normals(3, 3..=7)))?;
    session.write_one(append(normals(4, 5..=9)))?;
    let log = [log, normals(3, 3..=4), normals(4, 5..=9)].concat();
    session.expect(
        "entries 5..=9 of term 4 written over 3..=7 of term 3 (a longer suffix)",
        &Image::of(&base, &log, none),
    )?;

    session.write_one(append(normals(5, 1..=2)))?;
    let log = normals(5, 1..=2);
    session.expect(
        "entries 1..=2 of term 5 written over the whole log",
        &Image::of(&base, &log, none),
    )?;

    session.reopen()?;
    session.write_one(append(normals(6, 2..=4)))?;
    let log = [normals(5, 1..=1), normals(6, 2..=4)].concat();
    session.expect(
        "after a reopen, entries 2..=4 of term 6 written over 2",
        &Image::of(&base, &log, none),
    )
}

/// `hard-state`: hard states alone, several in one batch, left out of a request, written with
/// entries, and across reopens.
pub(in super::super) fn hard_state<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let base = empty_snapshot(&bootstrap);
    let mut session = Session::create(harness, tally, Rule::HardState, &bootstrap)?;
    session.write_one(save(hard(1, Some(1), 0)))?;
    session.expect(
        "after a vote in term 1",
        &Image::of(&base, &[], hard(1, Some(1), 0)),
    )?;

    session.write(vec![save(hard(2, None, 0)), save(hard(2, Some(3), 0))])?;
    session.expect(
        "after two hard states in one batch (the later wins)",
        &Image::of(&base, &[], hard(2, Some(3), 0)),
    )?;

    session.write_one(append(normals(2, 1..=3)))?;
    let mut log = normals(2, 1..=3);
    session.expect(
        "after a request without a hard state (it stays)",
        &Image::of(&base, &log, hard(2, Some(3), 0)),
    )?;

    session.write_one(append_with(normals(2, 4..=5), hard(2, Some(3), 4)))?;
    log.extend(normals(2, 4..=5));
    let expected = Image::of(&base, &log, hard(2, Some(3), 4));
    session.expect("after entries with a commit", &expected)?;
    session.reopen()?;
    session.expect("after a reopen", &expected)?;

    // A lower term than before never comes from the core; a vote withdrawn in a new term does.
    session.write_one(save(hard(3, None, 4)))?;
    let expected = Image::of(&base, &log, hard(3, None, 4));
    session.expect("after a new term without a vote", &expected)?;
    session.reopen()?;
    session.expect("after a second reopen", &expected)?;
    session.write_one(save(hard(3, Some(2), 5)))?;
    session.reopen()?;
    session.expect(
        "after a vote and a commit, and a third reopen",
        &Image::of(&base, &log, hard(3, Some(2), 5)),
    )
}

/// `out-of-range-reads`: reads around the ends of an empty log, a compacted one, and one
/// discarded by a snapshot beyond it, before and after a reopen.
pub(in super::super) fn out_of_range_reads<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::OutOfRangeReads, &bootstrap)?;
    probe_ends(&session, "a new store", Index(0), Term(0), Index(0))?;

    let log = [normals(1, 1..=4), normals(2, 5..=8)].concat();
    session.write_one(append_with(log.clone(), hard(2, None, 8)))?;
    probe_ends(&session, "entries 1..=8", Index(0), Term(0), Index(8))?;
    session.write_one(install(snapshot(1, 4, &bootstrap, 1)))?;
    probe_ends(
        &session,
        "1..=8 compacted through 4",
        Index(4),
        Term(1),
        Index(8),
    )?;
    session.reopen()?;
    probe_ends(
        &session,
        "1..=8 compacted through 4, reopened",
        Index(4),
        Term(1),
        Index(8),
    )?;

    session.write_one(install_with(
        snapshot(3, 12, &bootstrap, 2),
        hard(3, None, 12),
    ))?;
    probe_ends(
        &session,
        "a snapshot through 12",
        Index(12),
        Term(3),
        Index(12),
    )?;
    session.reopen()?;
    probe_ends(
        &session,
        "a snapshot through 12, reopened",
        Index(12),
        Term(3),
        Index(12),
    )
}

/// Reads just inside and just outside a log whose snapshot is `(snapshot_term,
/// snapshot_index)` and whose last index is `last`.
fn probe_ends<H: StoreHarness>(
    session: &Session<'_, H>,
    state: &str,
    snapshot_index: Index,
    snapshot_term: Term,
    last: Index,
) -> Result<(), ConformanceFailure> {
    let reader = session.reader();
    let first = snapshot_index.next();
    let at = |what: String| format!("{state}: {what}");
    expect_outcome(
        session,
        &at(format!(
            "term({snapshot_index}), first_index - 1, from the snapshot"
        )),
        reader.term(snapshot_index),
        Ok(snapshot_term),
    )?;
    for index in [snapshot_index.0.checked_sub(1), Some(0)]
        .into_iter()
        .flatten()
        .filter(|&index| index < snapshot_index.0)
    {
        expect_error(
            session,
            &at(format!("term({index})")),
            reader.term(Index(index)),
            "Compacted",
        )?;
    }
    for index in [last.next(), last.plus(7)] {
        expect_error(
            session,
            &at(format!("term({index})")),
            reader.term(index),
            "Unavailable",
        )?;
    }
    // A range that starts at or below the snapshot and ends within the log.
    for low in [
        Some(snapshot_index),
        snapshot_index.0.checked_sub(1).map(Index),
    ]
    .into_iter()
    .flatten()
    {
        let high = low.next();
        expect_error(
            session,
            &at(format!("entries({low}, {high}, unlimited)")),
            reader.entries(low, high, u64::MAX),
            "Compacted",
        )?;
        expect_error(
            session,
            &at(format!("entries_size_bytes({low}, {high}, unlimited)")),
            reader.entries_size_bytes(low, high, u64::MAX),
            "Compacted",
        )?;
    }
    // A range that starts within the log (or just after it), and ends beyond it.
    for (low, high) in [(first, last.plus(2)), (last.next(), last.plus(2))] {
        expect_error(
            session,
            &at(format!("entries({low}, {high}, unlimited)")),
            reader.entries(low, high, u64::MAX),
            "Unavailable",
        )?;
        expect_error(
            session,
            &at(format!("entries_size_bytes({low}, {high}, unlimited)")),
            reader.entries_size_bytes(low, high, u64::MAX),
            "Unavailable",
        )?;
    }
    if last >= first {
        let read = reader.entries(first, last.next(), u64::MAX);
        if read.as_ref().map(Vec::len) != Ok((last.0 + 1 - first.0) as usize) {
            return Err(session.fail(at(format!(
                "entries({first}, {}, unlimited), the whole log, returned {}",
                last.next(),
                describe_read(&read)
            ))));
        }
    }
    Ok(())
}

/// Fails unless `read` is exactly `expected`.
pub(super) fn expect_outcome<H: StoreHarness, T: PartialEq + Debug>(
    session: &Session<'_, H>,
    what: &str,
    read: Result<T, StorageError>,
    expected: Result<T, StorageError>,
) -> Result<(), ConformanceFailure> {
    if read == expected {
        return Ok(());
    }
    Err(session.fail(format!("{what}: expected {expected:?}, read {read:?}")))
}

/// Fails unless `read` is the error `variant` (whatever index it names).
fn expect_error<H: StoreHarness, T: Debug>(
    session: &Session<'_, H>,
    what: &str,
    read: Result<T, StorageError>,
    variant: &str,
) -> Result<(), ConformanceFailure> {
    if outcome(&read) == variant {
        return Ok(());
    }
    Err(session.fail(format!("{what}: expected a {variant} error, read {read:?}")))
}

/// A read of entries in a few words.
fn describe_read(read: &Result<Vec<Entry>, StorageError>) -> String {
    match read {
        Ok(entries) => describe_entries(entries),
        Err(error) => format!("the error {error:?}"),
    }
}
