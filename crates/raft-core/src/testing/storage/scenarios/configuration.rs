//! Scenarios of the configuration a peer starts with: a configuration takes effect as soon as
//! its entry is in the log, committed or not (thesis §4.1), so `initial_state` must report the
//! newest configuration entry stored, and fall back along the older ones when a leader replaces
//! the suffix holding it.

use crate::types::{Configuration, Entry, HardState, Index, Snapshot};

use super::super::fixtures::{
    append, append_with, bootstrap, configuration_entry, configurations, empty_snapshot,
    hard_state as hard, install, install_with, noop, normal, normals, snapshot,
};
use super::super::session::{Image, Session};
use super::super::{ConformanceFailure, Rule, StoreHarness, Tally};

/// What a store holding `snapshot`, then `entries`, and `hard_state` must hold, with the
/// configuration in effect and the configuration entries spelled out.
fn holding(
    snapshot: &Snapshot,
    entries: &[Entry],
    hard_state: HardState,
    in_effect: &Configuration,
    configuration_entries: &[(u64, &Configuration)],
) -> Image {
    let mut image = Image::of(snapshot, entries, hard_state);
    image.configuration = in_effect.clone();
    image.configuration_entries = configuration_entries
        .iter()
        .map(|&(index, configuration)| (Index(index), configuration.clone()))
        .collect();
    image
}

/// The log 1..=5 of term 1 with configuration entries at 2 and 4.
fn log_with_two(first: &Configuration, second: &Configuration) -> Vec<Entry> {
    vec![
        normal(1, 1, 10),
        configuration_entry(1, 2, first),
        normal(1, 3, 20),
        configuration_entry(1, 4, second),
        normal(1, 5, 30),
    ]
}

/// `configuration-newest-entry`: uncommitted configuration entries, one after another, and
/// two in one request.
pub(in super::super) fn configuration_newest_entry<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let base = empty_snapshot(&bootstrap);
    let [c1, c2, c3] = configurations();
    let committed = hard(1, None, 1);
    let mut session = Session::create(harness, tally, Rule::ConfigurationNewestEntry, &bootstrap)?;
    let mut log = log_with_two(&c1, &c2);
    session.write_one(append_with(log.clone(), committed))?;
    session.expect(
        "after entries 1..=5 with configurations at 2 and 4, only 1 committed",
        &holding(&base, &log, committed, &c2, &[(2, &c1), (4, &c2)]),
    )?;

    session.write_one(append(vec![configuration_entry(1, 6, &c3)]))?;
    log.push(configuration_entry(1, 6, &c3));
    session.expect(
        "after a configuration entry at 6",
        &holding(&base, &log, committed, &c3, &[(2, &c1), (4, &c2), (6, &c3)]),
    )?;

    session.write_one(append(normals(1, 7..=8)))?;
    log.extend(normals(1, 7..=8));
    session.expect(
        "after normal entries 7..=8",
        &holding(&base, &log, committed, &c3, &[(2, &c1), (4, &c2), (6, &c3)]),
    )?;

    let both = vec![
        configuration_entry(1, 9, &c1),
        configuration_entry(1, 10, &c2),
    ];
    session.write_one(append(both.clone()))?;
    log.extend(both);
    session.expect(
        "after configuration entries at 9 and 10 in one request",
        &holding(
            &base,
            &log,
            committed,
            &c2,
            &[(2, &c1), (4, &c2), (6, &c3), (9, &c1), (10, &c2)],
        ),
    )
}

/// `configuration-fallback`: the suffix holding the newest configuration entry replaced by
/// normal entries, step by step down to none, then by configuration entries.
pub(in super::super) fn configuration_fallback<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let base = empty_snapshot(&bootstrap);
    let [c1, c2, c3] = configurations();
    let committed = hard(1, None, 1);
    let mut session = Session::create(harness, tally, Rule::ConfigurationFallback, &bootstrap)?;
    let mut log = log_with_two(&c1, &c2);
    log.push(configuration_entry(1, 6, &c3));
    session.write_one(append_with(log.clone(), committed))?;

    session.write_one(append(normals(2, 6..=7)))?;
    let log = [&log[..5], &normals(2, 6..=7)].concat();
    session.expect(
        "after 6..=7 of term 2 replaced the configuration entry at 6",
        &holding(&base, &log, committed, &c2, &[(2, &c1), (4, &c2)]),
    )?;

    session.write_one(append(normals(3, 4..=4)))?;
    let log = [&log[..3], &normals(3, 4..=4)].concat();
    session.expect(
        "after 4 of term 3 replaced the configuration entry at 4",
        &holding(&base, &log, committed, &c1, &[(2, &c1)]),
    )?;

    session.write_one(append(vec![noop(4, 2)]))?;
    let log = vec![log[0].clone(), noop(4, 2)];
    session.expect(
        "after 2 of term 4 replaced the last configuration entry (the bootstrap one is back)",
        &holding(&base, &log, committed, &bootstrap, &[]),
    )?;

    session.write_one(append(vec![configuration_entry(4, 3, &c3)]))?;
    session.write_one(append(vec![configuration_entry(5, 3, &c2)]))?;
    let log = vec![log[0].clone(), noop(4, 2), configuration_entry(5, 3, &c2)];
    session.expect(
        "after a configuration entry at 3 replaced by another one",
        &holding(&base, &log, committed, &c2, &[(3, &c2)]),
    )
}

/// `configuration-from-snapshot`: compactions covering configuration entries, a snapshot
/// beyond the log, and normal entries after it.
pub(in super::super) fn configuration_from_snapshot<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let [c1, c2, c3] = configurations();
    let mut session = Session::create(harness, tally, Rule::ConfigurationFromSnapshot, &bootstrap)?;
    let log = log_with_two(&c1, &c2);
    let committed = hard(1, None, 5);
    session.write_one(append_with(log.clone(), committed))?;

    // A snapshot carries the configuration in effect at its last entry.
    let through_3 = snapshot(1, 3, &c1, 1);
    session.write_one(install(through_3.clone()))?;
    session.expect(
        "after a snapshot through 3 (the entry at 2 compacted, the one at 4 left)",
        &holding(&through_3, &log[3..], committed, &c2, &[(4, &c2)]),
    )?;

    let through_5 = snapshot(1, 5, &c2, 2);
    session.write_one(install(through_5.clone()))?;
    session.expect(
        "after a snapshot through 5 (every configuration entry compacted)",
        &holding(&through_5, &[], committed, &c2, &[]),
    )?;

    let beyond = snapshot(2, 9, &c3, 3);
    session.write_one(install_with(beyond.clone(), hard(2, None, 9)))?;
    session.write_one(append(normals(2, 10..=11)))?;
    session.expect(
        "after a snapshot through 9 from a leader and normal entries 10..=11",
        &holding(&beyond, &normals(2, 10..=11), hard(2, None, 9), &c3, &[]),
    )?;

    session.write_one(append(vec![configuration_entry(2, 12, &c1)]))?;
    let log = [normals(2, 10..=11), vec![configuration_entry(2, 12, &c1)]].concat();
    session.expect(
        "after a configuration entry at 12",
        &holding(&beyond, &log, hard(2, None, 9), &c1, &[(12, &c1)]),
    )
}

/// `configuration-across-reopen`: a reopen after configuration entries, after a fallback,
/// after a compaction covering them, and after a snapshot beyond the log.
pub(in super::super) fn configuration_across_reopen<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let base = empty_snapshot(&bootstrap);
    let [c1, c2, c3] = configurations();
    let committed = hard(1, None, 1);
    let mut session = Session::create(harness, tally, Rule::ConfigurationAcrossReopen, &bootstrap)?;
    let log = log_with_two(&c1, &c2);
    session.write_one(append_with(log.clone(), committed))?;
    let expected = holding(&base, &log, committed, &c2, &[(2, &c1), (4, &c2)]);
    session.reopen()?;
    session.expect(
        "after configuration entries at 2 and 4, reopened",
        &expected,
    )?;

    session.write_one(append(normals(2, 4..=5)))?;
    let log = [&log[..3], &normals(2, 4..=5)].concat();
    let expected = holding(&base, &log, committed, &c1, &[(2, &c1)]);
    session.reopen()?;
    session.expect(
        "after the entry at 4 was replaced (falling back to 2), reopened",
        &expected,
    )?;

    let through_3 = snapshot(1, 3, &c1, 1);
    session.write_one(install_with(through_3.clone(), hard(2, None, 3)))?;
    let expected = holding(&through_3, &log[3..], hard(2, None, 3), &c1, &[]);
    session.reopen()?;
    session.expect(
        "after a snapshot through 3 covered the last configuration entry, reopened",
        &expected,
    )?;

    session.write_one(append(vec![configuration_entry(2, 6, &c3)]))?;
    let log = [&log[3..], &[configuration_entry(2, 6, &c3)]].concat();
    let expected = holding(&through_3, &log, hard(2, None, 3), &c3, &[(6, &c3)]);
    session.reopen()?;
    session.expect("after a configuration entry at 6, reopened", &expected)?;

    let beyond = snapshot(3, 10, &c2, 2);
    session.write_one(install_with(beyond.clone(), hard(3, None, 10)))?;
    session.reopen()?;
    session.expect(
        "after a snapshot through 10 from a leader, reopened",
        &holding(&beyond, &[], hard(3, None, 10), &c2, &[]),
    )
}
