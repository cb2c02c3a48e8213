//! Scenarios of order and visibility: the parts of a request, the requests of a batch, what a
//! reader sees, and what a reopen after any write gives back.

use crate::ready::PersistRequest;

use super::super::fixtures::{
    append, append_with, bootstrap, configuration_entry, configurations, empty_snapshot,
    hard_state as hard, install, install_with, normal, normals, save, snapshot,
};
use super::super::session::{difference, read_image, Image, Session};
use super::super::{ConformanceFailure, Rule, StoreHarness, Tally};

/// `request-order`: requests holding a snapshot and the entries that follow it (which the
/// snapshot would discard, were it applied after them), and a hard state committing the
/// entries of its own request.
pub(in super::super) fn request_order<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let mut session = Session::create(harness, tally, Rule::RequestOrder, &bootstrap)?;
    session.write_one(append_with(normals(1, 1..=5), hard(1, None, 2)))?;

    let beyond = snapshot(2, 7, &bootstrap, 1);
    session.write_one(PersistRequest {
        snapshot: Some(beyond.clone()),
        entries: normals(2, 8..=9),
        hard_state: Some(hard(2, None, 9)),
        ..Default::default()
    })?;
    session.expect(
        "after one request of a snapshot through 7 (beyond the log), entries 8..=9 and a \
         commit of 9",
        &Image::of(&beyond, &normals(2, 8..=9), hard(2, None, 9)),
    )?;

    let matching = snapshot(2, 8, &bootstrap, 2);
    session.write_one(PersistRequest {
        snapshot: Some(matching.clone()),
        entries: normals(3, 9..=10),
        hard_state: Some(hard(3, None, 10)),
        ..Default::default()
    })?;
    session.expect(
        "after one request of a snapshot through 8 (agreeing), entries 9..=10 of term 3 and a \
         commit of 10",
        &Image::of(&matching, &normals(3, 9..=10), hard(3, None, 10)),
    )?;

    let disagreeing = snapshot(4, 10, &bootstrap, 3);
    session.write_one(PersistRequest {
        snapshot: Some(disagreeing.clone()),
        entries: normals(4, 11..=12),
        hard_state: Some(hard(4, Some(1), 12)),
        ..Default::default()
    })?;
    let log = normals(4, 11..=12);
    session.expect(
        "after one request of a snapshot through 10 of term 4 (disagreeing), entries 11..=12 \
         and a commit of 12",
        &Image::of(&disagreeing, &log, hard(4, Some(1), 12)),
    )?;

    session.write_one(append_with(normals(4, 13..=14), hard(4, Some(1), 14)))?;
    let expected = Image::of(&disagreeing, &normals(4, 11..=14), hard(4, Some(1), 14));
    session.expect("after entries 13..=14 with a commit of 14", &expected)?;
    session.reopen()?;
    session.expect("after a reopen", &expected)
}

/// `batch-order`: batches whose requests overwrite, compact, discard and configure what the
/// requests before them wrote.
pub(in super::super) fn batch_order<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let [c1, _, _] = configurations();
    let mut session = Session::create(harness, tally, Rule::BatchOrder, &bootstrap)?;
    session.write(vec![
        append(normals(1, 1..=5)),
        append(normals(2, 3..=4)),
        save(hard(2, Some(2), 2)),
        save(hard(2, Some(2), 3)),
    ])?;
    session.expect(
        "after one batch: 1..=5, then 3..=4 of term 2, then two hard states",
        &Image::of(
            &empty_snapshot(&bootstrap),
            &[normals(1, 1..=2), normals(2, 3..=4)].concat(),
            hard(2, Some(2), 3),
        ),
    )?;

    let discarding = snapshot(3, 6, &bootstrap, 2);
    session.write(vec![
        install(snapshot(2, 3, &bootstrap, 1)),
        append(normals(2, 5..=6)),
        install(discarding.clone()),
        append(normals(3, 7..=7)),
        save(hard(3, None, 7)),
    ])?;
    session.expect(
        "after one batch: a snapshot through 3, entries 5..=6, a snapshot through 6 of term 3 \
         (disagreeing), entry 7",
        &Image::of(&discarding, &normals(3, 7..=7), hard(3, None, 7)),
    )?;

    session.write(vec![
        append(vec![configuration_entry(3, 8, &c1)]),
        append(normals(4, 8..=9)),
    ])?;
    let log = [normals(3, 7..=7), normals(4, 8..=9)].concat();
    session.expect(
        "after one batch: a configuration entry at 8, then 8..=9 of term 4 over it",
        &Image::of(&discarding, &log, hard(3, None, 7)),
    )?;

    let through_9 = snapshot(4, 9, &bootstrap, 3);
    session.write(vec![
        append(normals(4, 10..=10)),
        install(through_9.clone()),
        save(hard(4, None, 10)),
    ])?;
    let expected = Image::of(&through_9, &normals(4, 10..=10), hard(4, None, 10));
    session.expect(
        "after one batch: entry 10, a snapshot through 9, a commit of 10",
        &expected,
    )?;
    session.reopen()?;
    session.expect("after a reopen", &expected)
}

/// `reader-visibility`: readers obtained before the first write, read on this thread and on
/// another, after every kind of write.
pub(in super::super) fn reader_visibility<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let [c1, _, _] = configurations();
    let mut session = Session::create(harness, tally, Rule::ReaderVisibility, &bootstrap)?;
    let early = session.reader();
    let mut early_elsewhere = Some(session.reader());
    let base = empty_snapshot(&bootstrap);
    let compacted = snapshot(2, 4, &bootstrap, 1);
    let beyond = snapshot(3, 9, &bootstrap, 2);
    let steps: Vec<(&str, Vec<PersistRequest>, Image)> = vec![
        (
            "entries 1..=4 with a commit of 2",
            vec![append_with(normals(1, 1..=4), hard(1, None, 2))],
            Image::of(&base, &normals(1, 1..=4), hard(1, None, 2)),
        ),
        (
            "entries 3..=5 of term 2 over 3..=4",
            vec![append(normals(2, 3..=5))],
            Image::of(
                &base,
                &[normals(1, 1..=2), normals(2, 3..=5)].concat(),
                hard(1, None, 2),
            ),
        ),
        (
            "a snapshot through 4 and a commit of 5",
            vec![install(compacted.clone()), save(hard(2, Some(1), 5))],
            Image::of(&compacted, &normals(2, 5..=5), hard(2, Some(1), 5)),
        ),
        (
            "a snapshot through 9 from a leader of term 3",
            vec![install_with(beyond.clone(), hard(3, None, 9))],
            Image::of(&beyond, &[], hard(3, None, 9)),
        ),
        (
            "a configuration entry at 10",
            vec![append(vec![configuration_entry(3, 10, &c1)])],
            Image::of(
                &beyond,
                &[configuration_entry(3, 10, &c1)],
                hard(3, None, 9),
            ),
        ),
    ];
    for (what, requests, expected) in steps {
        session.write(requests)?;
        session.expect(&format!("after {what}, a new reader"), &expected)?;
        let image = read_image(&early).map_err(|detail| {
            session.fail(format!(
                "after {what}, the reader obtained before: {detail}"
            ))
        })?;
        if let Some((_, text)) = difference(&expected, &image) {
            return Err(session.fail(format!(
                "after {what}, the reader obtained before the first write: {text}"
            )));
        }
        let reader = early_elsewhere
            .take()
            .expect("reader_visibility: the thread gave the reader back");
        let elsewhere = std::thread::spawn(move || {
            let image = read_image(&reader);
            (reader, image)
        })
        .join();
        let Ok((reader, image)) = elsewhere else {
            return Err(session.fail(format!(
                "after {what}, the reader obtained before panicked on another thread"
            )));
        };
        early_elsewhere = Some(reader);
        let image = image.map_err(|detail| {
            session.fail(format!(
                "after {what}, the reader obtained before, on another thread: {detail}"
            ))
        })?;
        if let Some((_, text)) = difference(&expected, &image) {
            return Err(session.fail(format!(
                "after {what}, the reader obtained before the first write, on another thread: \
                 {text}"
            )));
        }
    }
    Ok(())
}

/// `durable-across-crash`: a reopen (with a comparison of everything read before and after)
/// after every write of a history that touches every part of a store, twice in a row at the
/// end, and once before anything was written.
pub(in super::super) fn durable_across_crash<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    let bootstrap = bootstrap();
    let [c1, c2, c3] = configurations();
    let mut session = Session::create(harness, tally, Rule::DurableAcrossCrash, &bootstrap)?;
    session.reopen()?;
    let history: Vec<Vec<PersistRequest>> = vec![
        vec![append(normals(1, 1..=3))],
        vec![save(hard(1, Some(1), 0))],
        vec![append(vec![
            configuration_entry(1, 4, &c1),
            normal(1, 5, 3000),
            normal(1, 6, 0),
        ])],
        vec![append_with(normals(1, 7..=8), hard(1, None, 5))],
        vec![append(normals(2, 7..=9))],
        vec![append(normals(2, 10..=11)), save(hard(2, None, 9))],
        vec![install(snapshot(1, 6, &c1, 1))],
        vec![append(vec![configuration_entry(3, 10, &c2)])],
        vec![install_with(snapshot(4, 15, &c3, 2), hard(4, None, 15))],
        vec![append_with(normals(4, 16..=20), hard(4, None, 18))],
        vec![
            install(snapshot(4, 17, &c3, 3)),
            append(normals(5, 19..=21)),
            save(hard(5, Some(3), 18)),
        ],
    ];
    for batch in history {
        session.write(batch)?;
        session.reopen()?;
    }
    session.reopen()
}
