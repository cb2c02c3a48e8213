//! Crash-point tests: a scripted workload runs against a real log, the files after every
//! acknowledged call are kept in memory, and every directory a crash during the next call can
//! leave behind is rebuilt in a scratch directory and recovered.
//!
//! ```text
//!  state k ──── call k+1 (roll? snapshot file, one append, fdatasync, deletions) ────► state k+1
//!
//!  crash images of call k+1:
//!    state k + the snapshot's temporary file (crash before the rename), or its staged file
//!    state k + the new snapshot file + the growing segment cut at every length
//!    state k+1 with only the oldest of the compaction's deletions done
//!
//!  each image ─► open: equals model k extended by a prefix of call k+1's records
//!                      (snapshot marker, then entries one by one, then hard state),
//!                      torn bytes and removed files exactly as predicted
//!             ─► reopen: identical, nothing more to cut ─► append one entry ─► reopen: read back
//! ```
//!
//! A cut is never corruption: every image must open. The model is `MemStorage` fed the same
//! requests. Failures are collected so that one run names every image that fails.

mod common;

use std::path::Path;

use common::*;
use raft_core::{Entry, EntryKind, LogId, MemStorage, PersistRequest};
use raft_wal::{Wal, WalOptions};

/// Small segments so that most calls roll or compact one.
fn options() -> WalOptions {
    WalOptions {
        segment_bytes_max: 400,
        cache_bytes_max: 0,
        // Crash images here are cuts of appended files; preallocated segments, written in
        // place, are covered in preallocation.rs.
        preallocate: false,
        ..WalOptions::default()
    }
}

/// The files and the model after every acknowledged call; index 0 is the bootstrapped log.
struct Recording {
    states: Vec<Image>,
    models: Vec<MemStorage>,
}

fn record(dir: &Path, requests: &[PersistRequest]) -> Recording {
    let mut wal = Wal::open(dir, voters(), options()).expect("a new log bootstraps");
    let mut model = MemStorage::new(voters());
    let mut recording = Recording {
        states: vec![capture(dir)],
        models: vec![model.clone()],
    };
    for request in requests {
        let call = request.id;
        wal.persist(request.clone())
            .unwrap_or_else(|error| panic!("call {call} ({}): {error}", describe(request)));
        model.persist(request.clone());
        let live =
            read_state(&wal.storage()).unwrap_or_else(|error| panic!("call {call}: {error}"));
        assert_eq!(
            live,
            model_state(&model),
            "call {call}: the live log matches the model"
        );
        wal.wait_for_cleanup();
        recording.states.push(capture(dir));
        recording.models.push(model.clone());
    }
    recording
}

fn describe(request: &PersistRequest) -> String {
    let mut parts = Vec::new();
    if let Some(snapshot) = &request.snapshot {
        parts.push(format!("snapshot {}", snapshot.meta.last_included));
    }
    if let (Some(first), Some(last)) = (request.entries.first(), request.entries.last()) {
        parts.push(format!("entries {}..={}", first.id, last.id));
    }
    if let Some(hard_state) = request.hard_state {
        parts.push(format!(
            "hard state (term {}, vote {:?}, commit {})",
            hard_state.term.0,
            hard_state.vote.map(|node| node.0),
            hard_state.commit.0
        ));
    }
    parts.join(" + ")
}

/// What recovery of an image must yield.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    /// Nothing of the call.
    Before,
    /// Any prefix of the call's records.
    Prefix,
    /// All of the call.
    After,
}

/// Which crash an image stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Before the snapshot file was renamed into place.
    Temporary,
    /// During the append: the growing segment is cut short.
    Cut,
    /// After the fsync, during the compaction's deletions.
    PartialDeletion,
    /// After the call: every record written (deletions possibly not done).
    Complete,
}

/// A directory a crash can leave, with what recovery must make of it.
struct CrashImage {
    label: String,
    kind: Kind,
    files: Image,
    expected: Expected,
    /// The segment recovery must cut as a torn write and the length it keeps (0: removed).
    torn: Option<(String, u64)>,
}

/// Every image a crash during the call that turned `before` into `after` can leave.
fn crash_images(before: &Image, after: &Image) -> Vec<CrashImage> {
    let mut deleted: Vec<&String> = before
        .keys()
        .filter(|name| !after.contains_key(*name))
        .collect();
    // wal.rs removes compacted segments oldest first, then older snapshot files.
    deleted.sort_by_key(|name| (!is_segment(name), (*name).clone()));
    let created: Vec<&String> = after
        .keys()
        .filter(|name| !before.contains_key(*name))
        .collect();
    let mut growing: Vec<&String> = Vec::new();
    for (name, contents) in after {
        match before.get(name) {
            Some(old) if old != contents => {
                assert!(
                    is_segment(name) && contents.starts_with(old),
                    "{name} changed other than by an append"
                );
                growing.push(name);
            }
            Some(_) => {}
            None if is_segment(name) => growing.push(name),
            None => assert!(is_snapshot(name), "unexpected new file {name}"),
        }
    }
    assert!(
        growing.len() <= 1,
        "one segment grows per call: {growing:?}"
    );
    let new_snapshots: Vec<&String> = created
        .iter()
        .copied()
        .filter(|name| is_snapshot(name))
        .collect();
    assert!(
        new_snapshots.len() <= 1,
        "one snapshot file per call: {new_snapshots:?}"
    );

    let mut images = Vec::new();
    let mut base = before.clone();
    for &name in &new_snapshots {
        let contents = &after[name];
        for length in [0, contents.len() / 2, contents.len()] {
            let mut files = before.clone();
            files.insert(format!("{name}.tmp"), contents[..length].to_vec());
            images.push(CrashImage {
                label: format!("{name}.tmp of {length} bytes, not renamed yet"),
                kind: Kind::Temporary,
                files,
                expected: Expected::Before,
                torn: None,
            });
        }
        // Staged ahead of the call (staging.rs) and durable, but not renamed into place: no
        // marker names it, so recovery must not trust it.
        let mut files = before.clone();
        let staged = name.replace(".snap", ".staged.snap.tmp");
        files.insert(staged.clone(), contents.clone());
        images.push(CrashImage {
            label: format!("{staged}, staged whole, not renamed yet"),
            kind: Kind::Temporary,
            files,
            expected: Expected::Before,
            torn: None,
        });
        base.insert(name.clone(), contents.clone());
    }
    if let Some(&name) = growing.first() {
        let target = &after[name];
        let start = before.get(name).map_or(0, Vec::len);
        let mut boundaries: Vec<u64> = vec![0, SEGMENT_HEADER_BYTES];
        boundaries.extend(frames(target).iter().map(Frame::end));
        assert!(
            boundaries.contains(&(start as u64)),
            "{name} ends on a frame before the call"
        );
        if start == 0 {
            images.push(CrashImage {
                label: format!("{name} not created yet"),
                kind: Kind::Cut,
                files: base.clone(),
                expected: Expected::Prefix,
                torn: None,
            });
        }
        for length in start..=target.len() {
            let mut files = base.clone();
            files.insert(name.clone(), target[..length].to_vec());
            let kept = boundaries
                .iter()
                .copied()
                .filter(|&boundary| boundary <= length as u64)
                .max()
                .expect("0 is a boundary");
            let torn = (kept < length as u64 || kept == 0).then(|| (name.clone(), kept));
            let complete = length == target.len();
            images.push(CrashImage {
                label: format!("{name} cut at {length} (grows {start}..={})", target.len()),
                kind: if complete { Kind::Complete } else { Kind::Cut },
                files,
                expected: if complete {
                    Expected::After
                } else {
                    Expected::Prefix
                },
                torn,
            });
        }
    } else {
        images.push(CrashImage {
            label: "no segment grew".into(),
            kind: Kind::Complete,
            files: base,
            expected: Expected::After,
            torn: None,
        });
    }
    for done in 1..=deleted.len() {
        let mut files = after.clone();
        for &name in &deleted[done..] {
            files.insert(name.clone(), before[name].clone());
        }
        images.push(CrashImage {
            label: format!(
                "{done} of {} deletions done ({:?} first)",
                deleted.len(),
                deleted[0]
            ),
            kind: if done == deleted.len() {
                Kind::Complete
            } else {
                Kind::PartialDeletion
            },
            files,
            expected: Expected::After,
            torn: None,
        });
    }
    images
}

/// The files recovery must leave of `image`, the names it must report removed and the bytes
/// it must report torn.
fn predicted_recovery(image: &CrashImage) -> (Image, Vec<String>, u64) {
    let mut files = image.files.clone();
    let mut removed = Vec::new();
    let temporaries: Vec<String> = files
        .keys()
        .filter(|name| name.ends_with(".snap.tmp"))
        .cloned()
        .collect();
    // Snapshot names are zero-padded index then term: the last name is the newest snapshot.
    let snapshots: Vec<String> = files
        .keys()
        .filter(|name| is_snapshot(name))
        .cloned()
        .collect();
    let superseded = &snapshots[..snapshots.len().saturating_sub(1)];
    for name in temporaries.iter().chain(superseded) {
        files.remove(name);
        removed.push(name.clone());
    }
    let mut torn_bytes = 0;
    if let Some((name, kept)) = &image.torn {
        let contents = files
            .get_mut(name)
            .expect("the torn segment is in the image");
        torn_bytes = contents.len() as u64 - kept;
        contents.truncate(*kept as usize);
    }
    // A last segment cut before its first record ends (the hard state written with its
    // header) is removed whole.
    let last_segment = files.keys().rfind(|name| name.ends_with(".wal")).cloned();
    if let Some(name) = last_segment {
        if frames(&files[&name]).is_empty() {
            files.remove(&name);
            removed.push(name);
        }
    }
    removed.sort();
    (files, removed, torn_bytes)
}

/// Whether the newest snapshot file of `files` (other than the bootstrap one) has no marker
/// record in any segment: recovery must then write one.
fn newest_snapshot_marker_missing(files: &Image) -> bool {
    let Some(newest) = files.keys().rfind(|name| is_snapshot(name)) else {
        return false;
    };
    let index: u64 = newest["snapshot-".len().."snapshot-".len() + 20]
        .parse()
        .expect("snapshot names start with the index");
    index > 0
        && !files
            .iter()
            .filter(|(name, _)| name.ends_with(".wal"))
            .flat_map(|(_, contents)| frames(contents))
            .any(|frame| frame.kind == RECORD_SNAPSHOT && frame.index == Some(index))
}

/// Checks that the last segment of `on_disk` is the predicted one plus exactly one snapshot
/// record (the marker recovery restored), and removes that record.
fn strip_restored_marker(on_disk: &mut Image, predicted: &Image) -> Result<(), String> {
    let Some(name) = predicted.keys().rfind(|name| name.ends_with(".wal")) else {
        return Err("no segment to hold the restored marker".into());
    };
    let expected = &predicted[name];
    let actual = on_disk
        .get_mut(name)
        .ok_or_else(|| format!("{name} disappeared"))?;
    let extra = actual
        .strip_prefix(expected.as_slice())
        .ok_or_else(|| format!("{name} changed before its end"))?;
    let mut marker_segment = vec![0u8; 32];
    marker_segment.extend_from_slice(extra);
    let marker = frames(&marker_segment);
    if marker.len() != 1
        || marker[0].kind != RECORD_SNAPSHOT
        || marker[0].end() != marker_segment.len() as u64
    {
        return Err(format!(
            "{name} grew by {} bytes that are not one snapshot record",
            extra.len()
        ));
    }
    actual.truncate(expected.len());
    Ok(())
}

/// Every entry acknowledged before the crash is still there, unless a record of the crashed
/// call itself superseded it: its snapshot covers or discarded it, or its entries replaced it.
fn acknowledged_entries_survive(
    recovered: &LogState,
    acknowledged: &LogState,
    crashed: &PersistRequest,
) -> Result<(), String> {
    let recovered_snapshot = recovered.snapshot.meta.last_included;
    let acknowledged_snapshot = acknowledged.snapshot.meta.last_included;
    if recovered_snapshot.index < acknowledged_snapshot.index {
        return Err(format!(
            "snapshot went back from {acknowledged_snapshot} to {recovered_snapshot}"
        ));
    }
    let replaced_from = crashed
        .entries
        .first()
        .map_or(u64::MAX, |entry| entry.index().0);
    let agrees = |id: LogId| {
        let position = id.index.0.checked_sub(acknowledged.first_index.0 - 1);
        position.and_then(|position| acknowledged.terms.get(position as usize)) == Some(&id.term)
    };
    let discarded = crashed.snapshot.as_ref().is_some_and(|snapshot| {
        let id = snapshot.meta.last_included;
        id == recovered_snapshot && !agrees(id)
    });
    if discarded {
        return Ok(());
    }
    for entry in &acknowledged.entries {
        let index = entry.index().0;
        if index <= recovered_snapshot.index.0 || index >= replaced_from {
            continue;
        }
        let position = (index - recovered.first_index.0) as usize;
        if recovered.entries.get(position) != Some(entry) {
            return Err(format!("acknowledged entry {} was lost", entry.id));
        }
    }
    Ok(())
}

/// Opens `image` in `dir` and checks everything about its recovery; returns which candidate
/// the recovered log equals.
fn check_image(
    dir: &Path,
    image: &CrashImage,
    candidates: &[MemStorage],
    candidate_states: &[LogState],
    lowest: usize,
    crashed: &PersistRequest,
) -> Result<usize, String> {
    install(dir, &image.files);
    let wal =
        Wal::open(dir, voters(), options()).map_err(|error| format!("open refused: {error}"))?;
    let recovered =
        read_state(&wal.storage()).map_err(|error| format!("read after recovery: {error}"))?;
    let last = candidate_states.len() - 1;
    let allowed = match image.expected {
        Expected::Before => 0..=0,
        Expected::Prefix => lowest..=last,
        Expected::After => last..=last,
    };
    let Some(matched) = allowed
        .clone()
        .find(|&candidate| candidate_states[candidate] == recovered)
    else {
        let earlier = (0..=last).find(|&candidate| candidate_states[candidate] == recovered);
        return Err(format!(
            "recovered {recovered:?}\n    expected one of candidates {allowed:?} (it equals candidate \
             {earlier:?})\n    candidate {}: {:?}\n    candidate {last}: {:?}",
            allowed.start(),
            candidate_states[*allowed.start()],
            candidate_states[last]
        ));
    };
    acknowledged_entries_survive(&recovered, &candidate_states[0], crashed)?;

    let (files, removed, torn_bytes) = predicted_recovery(image);
    let report = wal.recovery_report().clone();
    if report.torn_tail_bytes != torn_bytes || report.corrupt_bytes_dropped != 0 {
        return Err(format!(
            "torn_tail_bytes {} (expected {torn_bytes}), corrupt_bytes_dropped {} (expected 0)",
            report.torn_tail_bytes, report.corrupt_bytes_dropped
        ));
    }
    if removed_names(wal.recovery_report()) != removed {
        return Err(format!(
            "removed {:?}, expected {removed:?}",
            removed_names(wal.recovery_report())
        ));
    }
    if dir.join(SUSPECT_FILE).exists() != report.possibly_lost_writes {
        return Err(format!(
            "suspect marker present: {}, but possibly_lost_writes: {}",
            dir.join(SUSPECT_FILE).exists(),
            report.possibly_lost_writes
        ));
    }
    let mut on_disk = capture(dir);
    let marker_missing = newest_snapshot_marker_missing(&files);
    if report.snapshot_marker_restored != marker_missing {
        return Err(format!(
            "snapshot_marker_restored {} (expected {marker_missing})",
            report.snapshot_marker_restored
        ));
    }
    if marker_missing {
        strip_restored_marker(&mut on_disk, &files)?;
    }
    if on_disk != files {
        return Err(format!(
            "files after recovery {:?}, expected {:?}",
            sizes(&on_disk),
            sizes(&files)
        ));
    }
    drop(wal);

    let mut wal = Wal::open(dir, voters(), options())
        .map_err(|error| format!("second open refused: {error}"))?;
    let again =
        read_state(&wal.storage()).map_err(|error| format!("read after second open: {error}"))?;
    let report = wal.recovery_report();
    if again != recovered || report.torn_tail_bytes != 0 || !report.removed_files.is_empty() {
        return Err(format!("second open differs: {again:?}, {report:?}"));
    }
    let mut reopened = capture(dir);
    if marker_missing {
        strip_restored_marker(&mut reopened, &files)?;
    }
    if reopened != files || report.snapshot_marker_restored {
        return Err(format!(
            "second open changed the files: {:?}",
            sizes(&capture(dir))
        ));
    }

    let last_term = *recovered
        .terms
        .last()
        .expect("the snapshot's term at least");
    let appended = Entry {
        id: LogId::new(
            recovered.hard_state.term.max(last_term),
            recovered.last_index.next(),
        ),
        kind: EntryKind::Normal,
        data: bytes::Bytes::from_static(b"appended after recovery"),
    };
    let request = PersistRequest {
        id: u64::MAX,
        snapshot: None,
        entries: vec![appended],
        hard_state: None,
    };
    wal.persist(request.clone())
        .map_err(|error| format!("append after recovery: {error}"))?;
    drop(wal);
    let mut model = candidates[matched].clone();
    model.persist(request);
    let wal = Wal::open(dir, voters(), options())
        .map_err(|error| format!("open after the append: {error}"))?;
    let reread =
        read_state(&wal.storage()).map_err(|error| format!("read after the append: {error}"))?;
    if reread != model_state(&model) {
        return Err(format!(
            "after an append and a reopen: {reread:?}\n    expected {:?}",
            model_state(&model)
        ));
    }
    Ok(matched)
}

fn sizes(image: &Image) -> Vec<(String, usize)> {
    image
        .iter()
        .map(|(name, contents)| (name.clone(), contents.len()))
        .collect()
}

/// Image counts of one workload.
#[derive(Debug, Default)]
struct Tally {
    images: usize,
    cuts: usize,
    temporaries: usize,
    partial_deletions: usize,
    complete: usize,
}

/// Runs `requests`, then recovers every crash image of every call; panics listing the images
/// whose recovery was wrong.
fn check_crash_points(workload: &str, requests: &[PersistRequest]) {
    let scratch = scratch_directory();
    let recording = record(&scratch.path().join("workload"), requests);
    let image_dir = scratch.path().join("image");
    let mut tally = Tally::default();
    let mut failed_images = 0;
    // One line per call with failures: how many of its images failed and the first of them.
    let mut failures = Vec::new();
    for (call, request) in requests.iter().enumerate() {
        let (before, after) = (&recording.states[call], &recording.states[call + 1]);
        let candidates = candidates(&recording.models[call], request);
        let candidate_states: Vec<LogState> = candidates.iter().map(model_state).collect();
        assert_eq!(
            candidate_states.last(),
            Some(&model_state(&recording.models[call + 1])),
            "call {}: the last candidate is the log after the call",
            request.id
        );
        let images = crash_images(before, after);
        // The first failure of each kind of image.
        let mut first_failures: Vec<(Kind, String)> = Vec::new();
        let mut call_failures = 0;
        let mut lowest = 0;
        for image in &images {
            match image.kind {
                Kind::Temporary => tally.temporaries += 1,
                Kind::Cut => tally.cuts += 1,
                Kind::PartialDeletion => tally.partial_deletions += 1,
                Kind::Complete => tally.complete += 1,
            }
            match check_image(
                &image_dir,
                image,
                &candidates,
                &candidate_states,
                lowest,
                request,
            ) {
                // A longer cut never recovers less.
                Ok(matched) if image.kind == Kind::Cut => lowest = matched,
                Ok(_) => {}
                Err(message) => {
                    call_failures += 1;
                    if first_failures.iter().all(|(kind, _)| *kind != image.kind) {
                        first_failures
                            .push((image.kind, format!("image {}: {message}", image.label)));
                    }
                }
            }
        }
        tally.images += images.len();
        failed_images += call_failures;
        if call_failures > 0 {
            let firsts: Vec<String> = first_failures.into_iter().map(|(_, first)| first).collect();
            failures.push(format!(
                "call {} ({}): {call_failures} of {} images failed; the first of each kind:\n  {}",
                request.id,
                describe(request),
                images.len(),
                firsts.join("\n  ")
            ));
        }
    }
    println!(
        "{workload}: {} calls, {} crash images checked ({} cuts, {} complete, {} partial deletions, \
         {} temporary snapshot files), {failed_images} failed",
        requests.len(),
        tally.images,
        tally.cuts,
        tally.complete,
        tally.partial_deletions,
        tally.temporaries,
    );
    assert!(
        failures.is_empty(),
        "{workload}: {failed_images} of {} crash images recovered wrongly:\n{}",
        tally.images,
        failures.join("\n")
    );
}

#[test]
fn every_crash_point_of_a_mixed_workload_recovers_an_acknowledged_prefix() {
    check_crash_points("mixed workload", &mixed_workload());
}

/// A follower's overwrite lands in a segment whose first entry is above the overwritten index;
/// a compaction then makes that segment the oldest one kept, so recovery replays it without the
/// segments before it.
#[test]
fn crash_points_around_an_overwrite_below_the_first_entry_of_the_oldest_kept_segment() {
    let mut script = Script::default();
    script.hard_state(hard_state(1, Some(1), 0));
    script.append(entries(1, 1..=6));
    // Fills the segment, so the next call starts a new one.
    script.persist(
        None,
        vec![big_entry(1, 7, 400)],
        Some(hard_state(1, Some(1), 5)),
    );
    script.append(entries(1, 8..=9));
    script.hard_state(hard_state(2, Some(2), 6));
    // The new segment starts at entry 8; the leader of term 2 replaces 7..=9.
    script.append(entries(2, 7..=8));
    // Entry 7 (term 2) is the first one kept and lives in the new segment: the older ones go.
    script.snapshot(snapshot(1, 6));
    script.append(entries(2, 9..=10));
    check_crash_points("overwrite below the oldest kept segment", &script.requests);
}

/// An installed snapshot disagrees with the log at an index below entries that the segments
/// kept after the compaction still hold, so recovery replays those entries before the marker.
#[test]
fn crash_points_around_an_installed_snapshot_below_entries_of_kept_segments() {
    let mut script = Script::default();
    script.hard_state(hard_state(3, Some(1), 0));
    for first in (1..=44).step_by(4) {
        script.append(entries(3, first..=first + 3));
    }
    script.hard_state(hard_state(5, None, 20));
    // This log has term 3 at 30: the snapshot of term 5 discards all of it. The segment it is
    // written to starts with entries 41..=44 of term 3.
    script.persist(
        Some(snapshot(5, 30)),
        entries(5, 31..=32),
        Some(hard_state(5, None, 30)),
    );
    script.append(entries(5, 33..=34));
    check_crash_points("installed snapshot below kept entries", &script.requests);
}

/// A compaction is the first call of a new segment, so that segment starts with the marker of
/// a snapshot older than its entries; a later compaction makes it the oldest segment kept.
#[test]
fn crash_points_around_a_marker_at_the_start_of_the_oldest_kept_segment() {
    let mut script = Script::default();
    script.hard_state(hard_state(1, Some(1), 0));
    script.append(entries(1, 1..=6));
    // Fills the segment, so the next call starts a new one.
    script.persist(
        None,
        vec![big_entry(1, 7, 400)],
        Some(hard_state(1, Some(1), 7)),
    );
    // Entry 6 is in the first segment: nothing is deleted yet.
    script.snapshot(snapshot(1, 5));
    script.append(entries(1, 8..=9));
    // Entry 8 is in the second segment, which starts with the marker of snapshot 5.
    script.snapshot(snapshot(1, 7));
    script.append(entries(1, 10..=11));
    check_crash_points(
        "marker at the start of the oldest kept segment",
        &script.requests,
    );
}

/// An installed snapshot disagrees with the log, which all sits in one segment (no compaction
/// question). A crash after the snapshot file is renamed into place but before its marker is
/// written leaves the file without the marker; recovery installs it, and what is appended
/// next must survive the following reopen.
#[test]
fn crash_points_around_an_installed_snapshot_whose_marker_is_torn() {
    let mut script = Script::default();
    script.hard_state(hard_state(1, Some(1), 0));
    script.append(entries(1, 1..=4));
    script.persist(None, entries(1, 5..=6), Some(hard_state(1, Some(1), 3)));
    script.hard_state(hard_state(2, None, 3));
    // This log has term 1 at 5: the snapshot of term 2 through 5 discards all of it.
    script.persist(
        Some(snapshot(2, 5)),
        Vec::new(),
        Some(hard_state(2, None, 5)),
    );
    script.append(entries(2, 6..=7));
    check_crash_points("installed snapshot with a torn marker", &script.requests);
}
