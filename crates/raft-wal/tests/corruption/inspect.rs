//! The read-only inspection (`raft_wal::inspect`) of the same damaged images: it names the
//! damage recovery refuses at (same file, same offset), reports what recovery repairs as
//! repairable, rebuilds the state recovery rebuilds, goes on past damage, and changes no file.

use std::collections::BTreeSet;
use std::fs;

use raft_wal::inspect::{inspect_directory, Inspection, Problem, Severity};
use std::path::PathBuf;

use super::*;

/// Installs `image` in `dir` and inspects it; checks that the inspection changed no file and
/// created no lock file.
fn inspect_image(dir: &Path, image: &Image, case: &str) -> Inspection {
    install(dir, image);
    let inspection =
        inspect_directory(dir).unwrap_or_else(|error| panic!("{case}: inspection failed: {error}"));
    assert!(
        capture(dir) == *image,
        "{case}: the inspection changes no file"
    );
    assert!(
        !dir.join(LOCK_FILE).exists(),
        "{case}: the inspection creates no lock file"
    );
    inspection
}

/// Damage a segment scan reports at its offset (cut at that offset if it is a torn tail).
fn is_scan_damage(problem: Problem) -> bool {
    matches!(
        problem,
        Problem::BadSegmentHeader
            | Problem::BadFrameHeader
            | Problem::ChecksumMismatch
            | Problem::TruncatedRecord
    )
}

/// Whether the segment of `finding` holds no intact record (recovery removes such a segment
/// when its damage is a torn tail: its creation never completed).
fn holds_no_record(inspection: &Inspection, finding: &raft_wal::inspect::Finding) -> bool {
    inspection
        .segments
        .iter()
        .any(|segment| segment.path == finding.path && segment.records.total() == 0)
}

/// Inspects `image`, then opens it: where recovery refuses, the first damage found is at the
/// file and offset recovery names; where it opens, nothing is damage, the state inspected is
/// the state recovered, the torn bytes and removed files are those the inspection called
/// repairable. Returns the inspection.
fn expect_agreement(dir: &Path, image: &Image, case: &str) -> Inspection {
    let inspection = inspect_image(dir, image, case);
    match Wal::open(dir, voters(), options()) {
        Err(WalError::Corrupt {
            path,
            offset,
            reason,
        }) => {
            let first = inspection.damage().next().unwrap_or_else(|| {
                panic!("{case}: recovery refuses ({reason}), the inspection finds no damage")
            });
            assert_eq!(
                (&first.path, first.offset),
                (&path, Some(offset)),
                "{case}: the first damage is where recovery refuses ({reason}); found {first}"
            );
            assert_eq!(inspection.recovered, None, "{case}: no recovered state");
        }
        Err(WalError::UnsupportedVersion { path, .. }) => {
            let first = inspection.damage().next().expect("damage found");
            assert_eq!(first.path, path, "{case}");
            assert_eq!(first.problem, Problem::UnsupportedVersion, "{case}");
        }
        Err(other) => panic!("{case}: unexpected error {other}"),
        Ok(wal) => {
            let damage: Vec<String> = inspection.damage().map(ToString::to_string).collect();
            assert!(
                damage.is_empty(),
                "{case}: recovery opens, yet damage: {damage:?}"
            );
            let recovered = read_state(&wal.storage()).expect("the recovered log reads");
            let inspected = inspection.recovered.as_ref().unwrap_or_else(|| {
                panic!("{case}: recovery opens, the inspection rebuilds nothing")
            });
            assert_eq!(
                inspected.snapshot, recovered.snapshot.meta.last_included,
                "{case}: snapshot"
            );
            assert_eq!(
                inspected.hard_state, recovered.hard_state,
                "{case}: hard state"
            );
            assert_eq!(
                inspected.configuration, recovered.configuration,
                "{case}: configuration"
            );
            assert_eq!(
                (inspected.first_index, inspected.last_index),
                (recovered.first_index, recovered.last_index),
                "{case}: live log"
            );
            assert_eq!(
                Some(inspected.last_term),
                recovered.terms.last().copied(),
                "{case}: last term"
            );
            assert_eq!(
                inspected.entries,
                recovered.entries.len() as u64,
                "{case}: entries"
            );
            let live: u64 = inspection
                .segments
                .iter()
                .map(|segment| segment.live_entries)
                .sum();
            assert_eq!(live, inspected.entries, "{case}: live entries by segment");
            let report = wal.recovery_report();
            let torn: u64 = inspection
                .findings
                .iter()
                .filter(|finding| is_scan_damage(finding.problem))
                .map(|finding| {
                    assert_eq!(finding.severity, Severity::Repairable, "{case}: {finding}");
                    let segment = inspection
                        .segments
                        .iter()
                        .find(|segment| segment.path == finding.path)
                        .expect("a segment's finding");
                    segment.file_bytes - finding.offset.expect("at an offset")
                })
                .sum();
            assert_eq!(torn, report.torn_tail_bytes, "{case}: torn tail bytes");
            let repaired_files: BTreeSet<PathBuf> = inspection
                .findings
                .iter()
                .filter(|finding| {
                    matches!(
                        finding.problem,
                        Problem::TemporaryFile
                            | Problem::SupersededSnapshot
                            | Problem::EmptyLastSegment
                    ) || (is_scan_damage(finding.problem) && holds_no_record(&inspection, finding))
                })
                .map(|finding| finding.path.clone())
                .collect();
            let removed: BTreeSet<PathBuf> = report.removed_files.iter().cloned().collect();
            assert_eq!(repaired_files, removed, "{case}: files removed at open");
            assert_eq!(
                inspection
                    .findings
                    .iter()
                    .any(|finding| finding.problem == Problem::MissingSnapshotMarker),
                report.snapshot_marker_restored,
                "{case}: snapshot marker"
            );
        }
    }
    inspection
}

/// The mixed workload of the crash-point tests: compactions, a follower's rewritten suffix,
/// snapshots that discard the log, an entry larger than a segment.
fn mixed(dir: &Path) -> Image {
    let mut wal = Wal::open(dir, voters(), options()).expect("a new log bootstraps");
    for request in mixed_workload() {
        wal.persist(request).expect("durable");
    }
    drop(wal);
    capture(dir)
}

#[test]
fn inspecting_an_intact_log_finds_every_record_and_the_state_recovery_rebuilds() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let inspection = expect_agreement(&dir, &built.image, "intact");
    assert_eq!(inspection.findings, [], "nothing to report");
    assert!(inspection.holds_log());
    assert_eq!(inspection.segments.len(), built.segments.len());
    for (summary, name) in inspection.segments.iter().zip(&built.segments) {
        assert_eq!(summary.path, dir.join(name));
        let frames = built.frames(name);
        assert_eq!(
            summary.records.total(),
            frames.len() as u64,
            "{name}: every record"
        );
        assert_eq!(summary.data_bytes, built.image[name].len() as u64, "{name}");
        let indexes: Vec<u64> = frames
            .iter()
            .filter(|f| f.kind == RECORD_ENTRY)
            .filter_map(|f| f.index)
            .collect();
        assert_eq!(
            summary.records.entries(),
            indexes.len() as u64,
            "{name}: entries"
        );
        assert_eq!(
            summary.index_range.map(|(low, high)| (low.0, high.0)),
            indexes
                .first()
                .zip(indexes.last())
                .map(|(&low, &high)| (low, high)),
            "{name}: index range"
        );
    }
    let (_, model) = built.model();
    let recovered = inspection.recovered.expect("recovery opens");
    assert_eq!(recovered.entries, model.entries.len() as u64);
    assert_eq!(recovered.hard_state, model.hard_state);
    assert_eq!(recovered.configuration, voters());
    assert_eq!(
        recovered.configuration_index, None,
        "the bootstrap snapshot's"
    );
    let [snapshot] = &inspection.snapshots[..] else {
        panic!("one snapshot file: {:?}", inspection.snapshots)
    };
    assert!(snapshot.newest && snapshot.meta.is_some(), "{snapshot:?}");
    assert!(!inspection.clean_shutdown, "dropped, not closed cleanly");

    // A log with compactions and rewritten suffixes: the same state as recovery, too.
    let inspection = expect_agreement(
        &dir,
        &mixed(&scratch.path().join("mixed")),
        "mixed workload",
    );
    assert_eq!(inspection.findings, [], "nothing to report");
    let recovered = inspection.recovered.expect("recovery opens");
    assert!(recovered.snapshot.index.0 > 0, "compacted: {recovered:?}");
}

#[test]
fn flipped_byte_is_named_with_its_file_and_offset_and_the_inspection_goes_on() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    let later = &built.segments[built.segments.len() - 2];
    assert_ne!(name, later);
    let frames = built.frames(name);
    let second = frames[1];
    let later_frame = built.frames(later)[1];
    // One payload byte in a middle segment, one frame header byte in a later one.
    let damaged = flipped(
        &flipped(&built.image, name, second.payload_offset() + 2, 3),
        later,
        later_frame.offset + 1,
        0,
    );
    let inspection = expect_agreement(&dir, &damaged, "two flips");
    let damage: Vec<_> = inspection.damage().collect();
    assert_eq!(damage.len(), 2, "both flips: {damage:?}");
    assert_eq!(
        (damage[0].problem, &damage[0].path, damage[0].offset),
        (
            Problem::ChecksumMismatch,
            &dir.join(name),
            Some(second.offset)
        )
    );
    assert_eq!(
        (damage[1].problem, &damage[1].path, damage[1].offset),
        (
            Problem::BadFrameHeader,
            &dir.join(later),
            Some(later_frame.offset)
        )
    );
    let summary = inspection
        .segments
        .iter()
        .find(|segment| segment.path == dir.join(name))
        .expect("inspected");
    assert_eq!(
        summary.records.total(),
        frames.len() as u64 - 1,
        "every record but the damaged one, those after it too"
    );
    assert_eq!(summary.damage, 1);
    assert_eq!(inspection.recovered, None, "recovery would refuse");
}

#[test]
fn truncated_tail_is_repairable_and_named_at_the_cut_record() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.last_segment();
    let last = *built.frames(name).last().expect("a frame");
    let mut image = built.image.clone();
    image
        .get_mut(name)
        .expect("last segment")
        .truncate((last.offset + last.bytes / 2) as usize);
    let inspection = expect_agreement(&dir, &image, "cut last record");
    let [finding] = &inspection.findings[..] else {
        panic!("one finding: {:?}", inspection.findings)
    };
    assert_eq!(
        (
            finding.severity,
            finding.problem,
            &finding.path,
            finding.offset
        ),
        (
            Severity::Repairable,
            Problem::TruncatedRecord,
            &dir.join(name),
            Some(last.offset)
        ),
        "{finding}"
    );
    assert!(!inspection.is_damaged());
    let (_, before_last) = built.model_after(built.requests.len() - 1);
    let recovered = inspection.recovered.expect("recovery opens");
    assert_eq!(recovered.last_index, before_last.last_index);
}

#[test]
fn missing_segment_is_a_gap_named_where_recovery_names_it() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let (image, _, next) = built.without_middle_segment();
    let inspection = expect_agreement(&dir, &image, "middle segment missing");
    let first = inspection.damage().next().expect("damage");
    assert_eq!(first.problem, Problem::MissingSegment, "{first}");
    assert_eq!(first.path, dir.join(next));

    // The first segment gone: the entries that follow no longer connect to the snapshot.
    let mut image = built.image.clone();
    image.remove(&built.segments[0]);
    let inspection = expect_agreement(&dir, &image, "first segment missing");
    let first = inspection.damage().next().expect("damage");
    assert_eq!(first.problem, Problem::IndexGap, "{first}");
}

#[test]
fn damaged_snapshot_file_is_named_with_its_offset() {
    let scratch = scratch_directory();
    let image = mixed(&scratch.path().join("mixed"));
    let dir = scratch.path().join("image");
    let snapshots: Vec<&String> = image.keys().filter(|name| is_snapshot(name)).collect();
    let [name] = &snapshots[..] else {
        panic!("one snapshot file: {snapshots:?}")
    };
    let total = image[*name].len() as u64;
    for byte in 0..total {
        let case = format!("{name}: byte {byte}");
        let inspection = expect_agreement(&dir, &flipped(&image, name, byte, 1), &case);
        let first = inspection.damage().next().expect("damage");
        assert!(
            matches!(
                first.problem,
                Problem::DamagedSnapshot | Problem::UnsupportedVersion
            ),
            "{case}: {first}"
        );
        let summary = &inspection.snapshots[0];
        assert!(
            summary.meta.is_none() && summary.newest,
            "{case}: {summary:?}"
        );
    }
}

/// Every flipped byte of every segment of two logs (one record per call; the mixed workload
/// with compactions and rewritten suffixes) and every cut of a last segment: the inspection
/// and recovery agree on each (see `expect_agreement`).
#[test]
fn inspection_agrees_with_recovery_on_every_cut_and_flipped_byte() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let mixed = mixed(&scratch.path().join("mixed"));
    let dir = scratch.path().join("image");
    let (mut opened, mut refused) = (0, 0);
    let mut tally = |inspection: Inspection| match inspection.recovered {
        Some(_) => opened += 1,
        None => refused += 1,
    };
    for image in [&built.image, &mixed] {
        for name in segment_names(image) {
            for byte in 0..image[&name].len() as u64 {
                let case = format!("{name}: byte {byte}");
                let damaged = flipped(image, &name, byte, (byte % 8) as u32);
                tally(expect_agreement(&dir, &damaged, &case));
            }
        }
    }
    let last = built.last_segment();
    for length in 0..built.image[last].len() {
        let mut image = built.image.clone();
        image.get_mut(last).expect("last segment").truncate(length);
        let case = format!("{last} cut to {length} bytes");
        tally(expect_agreement(&dir, &image, &case));
    }
    println!("{opened} images recovery opens, {refused} it refuses");
    assert!(
        opened > 100 && refused > 1000,
        "both outcomes: {opened} opened, {refused} refused"
    );
}

#[test]
fn leftover_files_are_repairable_and_listed() {
    let scratch = scratch_directory();
    let image = mixed(&scratch.path().join("mixed"));
    let bootstrapped = {
        let dir = scratch.path().join("bootstrapped");
        drop(Wal::open(&dir, voters(), options()).expect("bootstraps"));
        capture(&dir)
    };
    let dir = scratch.path().join("image");
    let newest = image
        .keys()
        .find(|name| is_snapshot(name))
        .expect("a snapshot")
        .clone();
    let older = bootstrapped
        .keys()
        .find(|name| is_snapshot(name))
        .expect("a snapshot")
        .clone();
    let mut with_leftovers = image.clone();
    with_leftovers.insert(older.clone(), bootstrapped[&older].clone());
    // A staged copy of the newest snapshot, and a temporary cut short by a crash.
    let staged = newest.replace(".snap", ".staged.snap.tmp");
    with_leftovers.insert(staged.clone(), image[&newest].clone());
    let temporary = format!("{newest}.tmp");
    with_leftovers.insert(temporary.clone(), image[&newest][..10].to_vec());
    with_leftovers.insert("notes.txt".into(), b"an operator's file".to_vec());
    let inspection = expect_agreement(&dir, &with_leftovers, "leftovers");
    assert!(!inspection.is_damaged());
    let problems: Vec<(Problem, PathBuf)> = inspection
        .findings
        .iter()
        .map(|finding| (finding.problem, finding.path.clone()))
        .collect();
    assert_eq!(
        problems,
        [
            (Problem::SupersededSnapshot, dir.join(&older)),
            // By name: `.snap.tmp` sorts before `.staged.snap.tmp`.
            (Problem::TemporaryFile, dir.join(&temporary)),
            (Problem::TemporaryFile, dir.join(&staged)),
        ]
    );
    let temporaries: Vec<(bool, bool)> = inspection
        .temporary_files
        .iter()
        .map(|file| (file.staged.is_some(), file.complete))
        .collect();
    assert_eq!(temporaries, [(false, false), (true, true)]);
    assert_eq!(inspection.other_files, [dir.join("notes.txt")]);
}

#[test]
fn a_log_held_open_is_not_inspected() {
    let scratch = scratch_directory();
    let dir = scratch.path().join("log");
    let wal = Wal::open(&dir, voters(), options()).expect("a new log bootstraps");
    let refused = inspect_directory(&dir);
    assert!(
        matches!(&refused, Err(raft_wal::inspect::InspectError::Locked { path }) if *path == dir.join(LOCK_FILE)),
        "{refused:?}"
    );
    wal.close_cleanly().expect("closed");
    let inspection = inspect_directory(&dir).expect("inspected once closed");
    assert!(inspection.clean_shutdown);
    assert!(
        fs::metadata(dir.join(LOCK_FILE)).is_ok(),
        "the lock file stays"
    );
}
