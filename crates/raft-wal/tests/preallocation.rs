//! Preallocated segments (the default): a segment is created at its full size and records are
//! written over the zeros, so a crash leaves new bytes up to some point and the old zeros after
//! it, not a shorter file. Recovery must treat the zeros after the last record as room for more,
//! cut a torn record back to zeros, and never let a segment other than the last end in zeros.

mod common;

use std::path::Path;

use common::*;
use raft_core::{MemStorage, PersistRequest};
use raft_wal::{Wal, WalOptions};

const SEGMENT_BYTES_MAX: u64 = 600;

fn options() -> WalOptions {
    WalOptions {
        segment_bytes_max: SEGMENT_BYTES_MAX,
        cache_bytes_max: 0,
        preallocate: true,
        ..WalOptions::default()
    }
}

/// Bytes of `contents` that hold frames (the header and every whole frame).
fn data_end(contents: &[u8]) -> usize {
    frames(contents)
        .last()
        .map_or(SEGMENT_HEADER_BYTES, Frame::end) as usize
}

#[test]
fn zeros_after_the_data_are_room_for_more_and_finished_segments_are_trimmed() {
    let scratch = scratch_directory();
    let dir = scratch.path().join("log");
    let mut wal = Wal::open(&dir, voters(), options()).expect("opens");
    let requests = mixed_workload();
    let mut model = MemStorage::new(voters());
    for (call, request) in requests.iter().enumerate() {
        wal.persist(request.clone()).expect("durable");
        model.persist(request.clone());
        if call % 7 == 6 {
            drop(wal);
            wal = Wal::open(&dir, voters(), options()).expect("reopens");
            let report = wal.recovery_report();
            assert_eq!(report.torn_tail_bytes, 0, "call {call}: zeros are not torn");
            assert!(report.removed_files.is_empty(), "call {call}: {report:?}");
        }
        assert_eq!(
            read_state(&wal.storage()),
            Ok(model_state(&model)),
            "call {call}"
        );
        wal.wait_for_cleanup();
        let image = capture(&dir);
        let segments = segment_names(&image);
        let (last, finished) = segments.split_last().expect("a segment");
        for name in finished {
            assert_eq!(
                data_end(&image[name]),
                image[name].len(),
                "call {call}: {name} is trimmed to its records"
            );
        }
        assert!(
            image[last].len() as u64 >= SEGMENT_BYTES_MAX,
            "call {call}: the active segment {last} is preallocated"
        );
    }
}

/// Every state a crash during the call that turned `before` into `after` can leave: the
/// segments written in place hold the new bytes up to some point and the old ones after it.
/// One crash state: a label, the files, and which run of images it belongs to (within a run,
/// more bytes written never recover less of the call).
struct CrashImage {
    label: String,
    files: Image,
    run: usize,
}

fn crash_images(before: &Image, after: &Image) -> Vec<CrashImage> {
    let mut base = before.clone();
    // Snapshot files are complete before the records that refer to them.
    for (name, contents) in after {
        if is_snapshot(name) && !before.contains_key(name) {
            base.insert(name.clone(), contents.clone());
        }
    }
    let mut changed: Vec<&String> = after
        .iter()
        .filter(|(name, contents)| is_segment(name) && before.get(*name) != Some(*contents))
        .map(|(name, _)| name)
        .collect();
    changed.sort();
    let mut images = Vec::new();
    for name in changed {
        let new = &after[name];
        let old = base.get(name).cloned().unwrap_or_default();
        if new.len() < old.len() && old.starts_with(new) {
            // A finished segment trimmed to its data: one step.
            base.insert(name.clone(), new.clone());
            images.push(CrashImage {
                label: format!("{name} trimmed"),
                files: base.clone(),
                run: 0,
            });
            continue;
        }
        let first_change = (0..new.len())
            .find(|&at| old.get(at) != Some(&new[at]))
            .unwrap_or(new.len());
        for written in first_change..=new.len() {
            let mut contents = new[..written].to_vec();
            if written < old.len() {
                contents.extend_from_slice(&old[written..]);
            }
            let mut variants = vec![(format!("{name} written up to byte {written}"), contents, 0)];
            if old.is_empty() && written < new.len() {
                // A new segment whose preallocated size reached the disk before its bytes did:
                // the bytes not yet written read as zeros, as do some of the record's own.
                let mut preallocated = new[..written].to_vec();
                preallocated.resize(new.len(), 0);
                variants.push((
                    format!("{name} preallocated, written up to byte {written}"),
                    preallocated,
                    1,
                ));
            }
            for (label, contents, run) in variants {
                let mut files = base.clone();
                files.insert(name.clone(), contents);
                images.push(CrashImage { label, files, run });
            }
        }
        base.insert(name.clone(), new.clone());
    }
    images
}

fn check_image(
    dir: &Path,
    files: &Image,
    candidates: &[LogState],
    lowest: usize,
) -> Result<usize, String> {
    install(dir, files);
    let wal = Wal::open(dir, voters(), options()).map_err(|error| format!("open: {error}"))?;
    let recovered = read_state(&wal.storage())?;
    let matched = (lowest..candidates.len())
        .find(|&candidate| candidates[candidate] == recovered)
        .ok_or_else(|| {
            format!(
                "recovered {recovered:?}, not one of candidates {lowest}..{}",
                candidates.len()
            )
        })?;
    // The log goes on from what recovery left, and that survives another restart.
    let mut wal = wal;
    let next = recovered.last_index.0 + 1;
    let term = *recovered
        .terms
        .last()
        .expect("the snapshot's term at least");
    let appended = entry(term.0, next);
    wal.persist(PersistRequest {
        id: 1,
        snapshot: None,
        entries: vec![appended.clone()],
        hard_state: None,
    })
    .map_err(|error| format!("append after recovery: {error}"))?;
    drop(wal);
    let wal = Wal::open(dir, voters(), options()).map_err(|error| format!("reopen: {error}"))?;
    let again = read_state(&wal.storage())?;
    if again.entries.last() != Some(&appended)
        || again.entries[..again.entries.len() - 1] != recovered.entries[..]
    {
        return Err(format!("after an append and a reopen: {again:?}"));
    }
    Ok(matched)
}

#[test]
fn every_crash_point_of_preallocated_segments_recovers_an_acknowledged_prefix() {
    let scratch = scratch_directory();
    let dir = scratch.path().join("log");
    let image_dir = scratch.path().join("image");
    let requests = mixed_workload();
    let mut wal = Wal::open(&dir, voters(), options()).expect("opens");
    let mut model = MemStorage::new(voters());
    let mut before = capture(&dir);
    let (mut checked, mut failures) = (0, Vec::new());
    for (call, request) in requests.iter().enumerate() {
        wal.persist(request.clone()).expect("durable");
        wal.wait_for_cleanup();
        let after = capture(&dir);
        let candidates: Vec<LogState> = candidates(&model, request)
            .iter()
            .map(model_state)
            .collect();
        let mut lowest = [0, 0];
        let images = crash_images(&before, &after);
        let image_count = images.len();
        for (position, CrashImage { label, files, run }) in images.into_iter().enumerate() {
            checked += 1;
            let lowest = &mut lowest[run];
            match check_image(&image_dir, &files, &candidates, 0) {
                // Writing more of the call never recovers less of it.
                Ok(matched) if matched >= *lowest => *lowest = matched,
                Ok(matched) => failures.push(format!(
                    "call {call}, {label}: recovered candidate {matched} after {lowest}"
                )),
                Err(error) => failures.push(format!("call {call}, {label}: {error}")),
            }
            // (Two pieces of a call can leave the same state, so compare states, not numbers.)
            let whole_call = candidates
                .last()
                .expect("the state before the call at least");
            if position + 1 == image_count && candidates[*lowest] != *whole_call {
                failures.push(format!(
                    "call {call}: the complete image recovers candidate {} of {}",
                    *lowest,
                    candidates.len()
                ));
            }
        }
        model.persist(request.clone());
        before = after;
    }
    println!("{checked} crash images of preallocated segments checked");
    assert!(checked > 1000, "only {checked} images");
    assert!(
        failures.is_empty(),
        "{} of {checked} images failed; the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

fn append(id: u64, entries: Vec<raft_core::Entry>) -> PersistRequest {
    PersistRequest {
        id,
        snapshot: None,
        entries,
        hard_state: None,
    }
}

/// Where the bytes of `path` other than zeros end.
fn written_end(path: &Path) -> u64 {
    let contents = std::fs::read(path).expect("segment reads");
    contents
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |at| at as u64 + 1)
}

/// Bytes of `path` the file system has given blocks to (a hole has none).
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("segment stats").blocks() * 512
}

#[test]
fn the_space_just_ahead_of_the_appends_is_written_not_left_a_hole() {
    // A hole turns every fdatasync that writes into it into a journal commit too; the log
    // writes zeros a mebibyte ahead so that only one sync per mebibyte pays for that.
    let scratch = scratch_directory();
    let dir = scratch.path().join("log");
    let options = WalOptions {
        segment_bytes_max: 8 << 20,
        ..options()
    };
    let mut wal = Wal::open(&dir, voters(), options.clone()).expect("opens");
    let segment = dir.join(segment_name(newest_segment(&dir)));
    for index in 1..=3 {
        wal.persist(append(index, entries(1, index..=index)))
            .expect("durable");
    }
    let data = written_end(&segment);
    assert!(data < 4096, "three small entries: {data} bytes");
    let allocated = allocated_bytes(&segment);
    assert!(
        allocated >= 1 << 20,
        "the mebibyte after the data is written: {allocated} bytes allocated"
    );
    assert!(
        allocated < 8 << 20,
        "the rest is still a hole: {allocated} bytes allocated"
    );
    assert_eq!(std::fs::metadata(&segment).expect("stats").len(), 8 << 20);

    // Reopened, the log writes ahead again from its data, and the segment does not grow.
    drop(wal);
    let mut wal = Wal::open(&dir, voters(), options).expect("reopens");
    let big = (4..=40)
        .map(|index| big_entry(1, index, 64 << 10))
        .collect();
    wal.persist(append(4, big)).expect("durable");
    let data = written_end(&segment);
    assert!(
        data > 37 * (64 << 10),
        "{data} bytes hold 37 entries of 64 KiB"
    );
    let allocated = allocated_bytes(&segment);
    assert!(
        allocated >= data + (1 << 20),
        "{allocated} bytes allocated for {data} of data"
    );
    assert_eq!(std::fs::metadata(&segment).expect("stats").len(), 8 << 20);
    assert_eq!(stored(&wal).len(), 40);
}
