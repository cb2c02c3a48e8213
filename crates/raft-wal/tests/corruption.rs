//! Corruption tests: damage every region of the files of a log and check that recovery refuses
//! to start naming the file and the offset of the damage, or, where the damage is
//! indistinguishable from a torn write (the last record of the last segment), cuts exactly that
//! record.
//!
//! ```text
//!  one record per call ─► segments 1 .. n ─► image in memory
//!     flip a bit in: segment header (magic, version, sequence, checksum)
//!                    frame header (length, payload checksum, header checksum), payload
//!                    snapshot file
//!     ─► open ─► Corrupt { path, offset }            damage in a middle segment, or before intact records
//!            ─► torn tail cut, log = model minus it   damage in the last record of the last segment
//!            ─► log = model up to the damage          truncate_corrupt_tail
//! ```
//!
//! Because every call writes exactly one record and each segment starts with a copy of the hard
//! state, the log recovered up to a frame is the model fed the calls whose records come before
//! that frame.

mod common;

use std::path::Path;

use common::*;
use raft_core::{MemStorage, PersistRequest};
use raft_wal::{Wal, WalError, WalOptions};

fn options() -> WalOptions {
    WalOptions {
        segment_bytes_max: 300,
        cache_bytes_max: 0,
        // The tests cut and damage files at byte offsets of an appended layout; the
        // preallocated one is covered in preallocation.rs.
        preallocate: false,
        ..WalOptions::default()
    }
}

fn override_options() -> WalOptions {
    WalOptions {
        truncate_corrupt_tail: true,
        ..options()
    }
}

/// A log built by one record per call, its files and what each frame holds.
struct Built {
    requests: Vec<PersistRequest>,
    image: Image,
    /// Segment names, oldest first.
    segments: Vec<String>,
}

impl Built {
    /// Runs `requests` (each of which writes one record) and checks that the frames on disk are
    /// those records in order, each segment starting with a hard state.
    fn new(dir: &Path, requests: Vec<PersistRequest>) -> Built {
        let mut wal = Wal::open(dir, voters(), options()).expect("a new log bootstraps");
        for request in &requests {
            wal.persist(request.clone()).expect("durable");
        }
        drop(wal);
        let image = capture(dir);
        let segments = segment_names(&image);
        let built = Built {
            requests,
            image,
            segments,
        };
        let mut call = 0;
        for name in &built.segments {
            let frames = built.frames(name);
            assert_eq!(
                frames[0].kind, RECORD_HARD_STATE,
                "{name} starts with the hard state"
            );
            for frame in &frames[1..] {
                let request = &built.requests[call];
                match request.entries.first() {
                    Some(entry) => assert_eq!(
                        frame.index,
                        Some(entry.index().0),
                        "{name} at {}",
                        frame.offset
                    ),
                    None => assert_eq!(frame.kind, RECORD_HARD_STATE, "{name} at {}", frame.offset),
                }
                call += 1;
            }
        }
        assert_eq!(call, built.requests.len(), "one frame per call");
        built
    }

    fn frames(&self, name: &str) -> Vec<Frame> {
        frames(&self.image[name])
    }

    /// A segment neither first nor last.
    fn middle_segment(&self) -> &str {
        assert!(
            self.segments.len() >= 5,
            "several segments: {:?}",
            self.segments
        );
        &self.segments[self.segments.len() / 2]
    }

    fn last_segment(&self) -> &str {
        self.segments.last().expect("a segment")
    }

    /// How many calls wrote their record before the frame at `offset` of segment `name`.
    fn calls_before(&self, name: &str, offset: u64) -> usize {
        let mut calls = 0;
        for segment in &self.segments {
            for frame in self.frames(segment).iter().skip(1) {
                if segment == name && frame.offset >= offset {
                    return calls;
                }
                calls += 1;
            }
            if segment == name {
                return calls;
            }
        }
        panic!("no segment {name}");
    }

    /// The log after the first `calls` calls.
    fn model_after(&self, calls: usize) -> (MemStorage, LogState) {
        let mut model = MemStorage::new(voters());
        for request in &self.requests[..calls] {
            model.persist(request.clone());
        }
        let state = model_state(&model);
        (model, state)
    }

    fn model(&self) -> (MemStorage, LogState) {
        self.model_after(self.requests.len())
    }
}

/// Entries one per call across several segments, with hard-state changes between them; the last
/// call is an entry.
fn one_record_per_call() -> Vec<PersistRequest> {
    let mut script = Script::default();
    script.hard_state(hard_state(1, Some(1), 0));
    for index in 1..=40 {
        script.append(vec![entry(1, index)]);
        if index % 6 == 0 {
            script.hard_state(hard_state(1, Some(1), index - 2));
        }
    }
    script.requests
}

fn flipped(image: &Image, name: &str, byte: u64, bit: u32) -> Image {
    let mut image = image.clone();
    let contents = image.get_mut(name).expect("the file is in the image");
    contents[byte as usize] ^= 1 << bit;
    image
}

/// The name of the region of a frame that `byte` (relative to the frame) is in.
fn frame_region(byte: u64) -> &'static str {
    match byte {
        0..4 => "length",
        4..8 => "payload checksum",
        8..12 => "header checksum",
        _ => "payload",
    }
}

/// The flips that damage a frame: every bit of its header, and one bit of every payload byte.
fn frame_flips(frame: &Frame) -> Vec<(u64, u32)> {
    let header =
        (0..FRAME_HEADER_BYTES).flat_map(|byte| (0..8).map(move |bit| (frame.offset + byte, bit)));
    let payload = (frame.payload_offset()..frame.end()).map(|byte| (byte, (byte % 8) as u32));
    header.chain(payload).collect()
}

/// Opens `image` in `dir` (emptied first).
fn open_image(dir: &Path, image: &Image, options: WalOptions) -> Result<Wal, WalError> {
    install(dir, image);
    Wal::open(dir, voters(), options)
}

/// Expects opening `image` to fail with `Corrupt` naming `name` at `offset`, and to leave every
/// file as it was; returns the reason.
fn expect_corrupt(dir: &Path, image: &Image, case: &str, name: &str, offset: u64) -> String {
    let result = open_image(dir, image, options()).map(|wal| wal.recovery_report().clone());
    let reason = match result {
        Err(WalError::Corrupt {
            path,
            offset: found,
            reason,
        }) => {
            assert_eq!(
                path,
                dir.join(name),
                "{case}: the damaged file is named ({reason})"
            );
            assert_eq!(
                found, offset,
                "{case}: the damaged offset is named ({reason})"
            );
            reason
        }
        other => panic!("{case}: expected Corrupt in {name} at {offset}, got {other:?}"),
    };
    assert!(
        capture(dir) == *image,
        "{case}: a refused open changes no file"
    );
    reason
}

/// Expects `image` to open as `expected`, reporting `torn_bytes` and `corrupt_bytes` cut and
/// the files in `removed` deleted, leaving `files`; then checks that a reopen with the default
/// options finds nothing more to repair and that an append survives a reopen.
#[allow(clippy::too_many_arguments)]
fn expect_recovered(
    dir: &Path,
    case: &str,
    image: &Image,
    recovery_options: WalOptions,
    expected: &(MemStorage, LogState),
    (torn_bytes, corrupt_bytes): (u64, u64),
    removed: &[String],
    files: &Image,
) {
    let wal = open_image(dir, image, recovery_options)
        .unwrap_or_else(|error| panic!("{case}: open refused: {error}"));
    let recovered = read_state(&wal.storage()).unwrap_or_else(|error| panic!("{case}: {error}"));
    assert_eq!(recovered, expected.1, "{case}: recovered log");
    let report = wal.recovery_report();
    assert_eq!(
        (report.torn_tail_bytes, report.corrupt_bytes_dropped),
        (torn_bytes, corrupt_bytes),
        "{case}: (torn_tail_bytes, corrupt_bytes_dropped)"
    );
    let reported = removed_names(report);
    let mut removed = removed.to_vec();
    removed.sort();
    assert_eq!(reported, removed, "{case}: removed files");
    assert!(capture(dir) == *files, "{case}: files after recovery");
    drop(wal);

    let mut wal = Wal::open(dir, voters(), options())
        .unwrap_or_else(|error| panic!("{case}: reopen refused: {error}"));
    let report = wal.recovery_report();
    assert_eq!(
        (
            report.torn_tail_bytes,
            report.corrupt_bytes_dropped,
            report.removed_files.len()
        ),
        (0, 0, 0),
        "{case}: the second open finds nothing to repair"
    );
    assert_eq!(
        read_state(&wal.storage()).as_ref(),
        Ok(&recovered),
        "{case}: second open"
    );
    let last_term = *recovered
        .terms
        .last()
        .expect("the snapshot's term at least");
    let request = PersistRequest {
        id: u64::MAX,
        snapshot: None,
        entries: vec![entry(last_term.0, recovered.last_index.0 + 1)],
        hard_state: None,
    };
    wal.persist(request.clone())
        .unwrap_or_else(|error| panic!("{case}: append after recovery: {error}"));
    drop(wal);
    let mut model = expected.0.clone();
    model.persist(request);
    let wal = Wal::open(dir, voters(), options())
        .unwrap_or_else(|error| panic!("{case}: reopen refused: {error}"));
    assert_eq!(
        read_state(&wal.storage()),
        Ok(model_state(&model)),
        "{case}: the entry appended after recovery survives a reopen"
    );
}

#[test]
fn flipped_bit_in_a_record_of_a_middle_segment_is_corrupt_at_that_record() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    let frames = built.frames(name);
    let mut cases = 0;
    // The first frame is the segment's hard state; the last has no intact frame after it in
    // its segment, but later segments follow, so it is not a torn tail either.
    for frame in &frames {
        for (byte, bit) in frame_flips(frame) {
            let region = frame_region(byte - frame.offset);
            let case = format!(
                "{name}: frame at {} ({region}), byte {byte} bit {bit}",
                frame.offset
            );
            let damaged = flipped(&built.image, name, byte, bit);
            let reason = expect_corrupt(&dir, &damaged, &case, name, frame.offset);
            let expected_reason = if region == "payload" {
                "record checksum mismatch"
            } else {
                "frame header checksum mismatch"
            };
            assert!(reason.starts_with(expected_reason), "{case}: {reason}");
            cases += 1;
        }
    }
    println!("{cases} flipped bits in {} frames of {name}", frames.len());
}

#[test]
fn flipped_bit_in_the_header_of_a_middle_segment_is_corrupt_at_offset_zero() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    // magic 0..8, version 8..12, reserved 12..16, sequence 16..24, checksum 24..28.
    for byte in 0..28 {
        for bit in 0..8 {
            let case = format!("{name}: header byte {byte} bit {bit}");
            let reason = expect_corrupt(
                &dir,
                &flipped(&built.image, name, byte, bit),
                &case,
                name,
                0,
            );
            let expected_reason = if byte < 8 {
                "bad magic number"
            } else {
                "segment header checksum mismatch"
            };
            assert!(reason.starts_with(expected_reason), "{case}: {reason}");
        }
    }
}

#[test]
fn padding_after_the_segment_header_checksum_is_not_read() {
    // NB: the four bytes after the header checksum are not covered by it; nothing reads them.
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    for byte in 28..SEGMENT_HEADER_BYTES {
        let damaged = flipped(&built.image, name, byte, 0);
        let case = format!("{name}: padding byte {byte}");
        expect_recovered(
            &dir,
            &case,
            &damaged,
            options(),
            &built.model(),
            (0, 0),
            &[],
            &damaged,
        );
    }
}

/// `header` with its version or sequence rewritten and its checksum recomputed, as another
/// build or a misplaced file would have it.
fn rewritten_header(contents: &[u8], version: Option<u32>, sequence: Option<u64>) -> Vec<u8> {
    let mut contents = contents.to_vec();
    if let Some(version) = version {
        contents[8..12].copy_from_slice(&version.to_le_bytes());
    }
    if let Some(sequence) = sequence {
        contents[16..24].copy_from_slice(&sequence.to_le_bytes());
    }
    let crc = crc32c::crc32c(&contents[..24]);
    contents[24..28].copy_from_slice(&crc.to_le_bytes());
    contents
}

#[test]
fn segment_of_another_format_version_is_unsupported() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    // The last segment too: a version from another build is never a torn write.
    for name in [built.middle_segment(), built.last_segment()] {
        let mut image = built.image.clone();
        image.insert(
            name.to_string(),
            rewritten_header(&built.image[name], Some(2), None),
        );
        match open_image(&dir, &image, options()).map(|wal| wal.recovery_report().clone()) {
            Err(WalError::UnsupportedVersion {
                path,
                found,
                supported,
            }) => {
                assert_eq!(path, dir.join(name));
                assert_eq!((found, supported), (2, 1), "{name}");
            }
            other => panic!("{name}: expected UnsupportedVersion, got {other:?}"),
        }
        assert!(
            capture(&dir) == image,
            "{name}: a refused open changes no file"
        );
    }
}

#[test]
fn segment_whose_header_names_another_sequence_is_corrupt() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    for name in [built.middle_segment(), built.last_segment()] {
        let mut image = built.image.clone();
        image.insert(
            name.to_string(),
            rewritten_header(&built.image[name], None, Some(999)),
        );
        let reason = expect_corrupt(&dir, &image, &format!("{name} says sequence 999"), name, 0);
        assert!(reason.contains("sequence 999"), "{reason}");
    }
}

#[test]
fn flipped_bit_in_the_last_record_is_cut_as_a_torn_tail() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.last_segment();
    let last = *built.frames(name).last().expect("a frame");
    assert!(
        built
            .requests
            .last()
            .is_some_and(|request| request.entries.len() == 1),
        "the last record is an entry"
    );
    let mut files = built.image.clone();
    files
        .get_mut(name)
        .expect("last segment")
        .truncate(last.offset as usize);
    let model_before_last = built.model_after(built.requests.len() - 1);
    let mut cases = 0;
    for (byte, bit) in frame_flips(&last) {
        let case = format!(
            "{name}: last frame at {} ({}), byte {byte} bit {bit}",
            last.offset,
            frame_region(byte - last.offset)
        );
        let damaged = flipped(&built.image, name, byte, bit);
        expect_recovered(
            &dir,
            &case,
            &damaged,
            options(),
            &model_before_last,
            (last.bytes, 0),
            &[],
            &files,
        );
        cases += 1;
    }
    println!(
        "{cases} flipped bits in the last record ({} bytes)",
        last.bytes
    );
}

#[test]
fn flipped_bit_before_intact_records_of_the_last_segment_is_corrupt() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.last_segment();
    let frames = built.frames(name);
    assert!(
        frames.len() >= 3,
        "the last segment holds records after its hard state: {frames:?}"
    );
    for frame in &frames[..frames.len() - 1] {
        for (byte, bit) in frame_flips(frame) {
            let case = format!(
                "{name}: frame at {} ({}), byte {byte} bit {bit}",
                frame.offset,
                frame_region(byte - frame.offset)
            );
            let reason = expect_corrupt(
                &dir,
                &flipped(&built.image, name, byte, bit),
                &case,
                name,
                frame.offset,
            );
            assert!(
                reason.contains("an intact record follows"),
                "{case}: {reason}"
            );
        }
    }
    for byte in 0..28 {
        let case = format!("{name}: header byte {byte}");
        let reason = expect_corrupt(&dir, &flipped(&built.image, name, byte, 3), &case, name, 0);
        assert!(
            reason.contains("an intact record follows"),
            "{case}: {reason}"
        );
    }
}

#[test]
fn operator_override_cuts_the_log_at_damage_in_a_middle_segment() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    let position = built
        .segments
        .iter()
        .position(|segment| segment == name)
        .expect("listed");
    let later = &built.segments[position + 1..];
    let later_bytes: u64 = later
        .iter()
        .map(|segment| built.image[segment].len() as u64)
        .sum();
    let segment_bytes = built.image[name].len() as u64;
    let mut cases = 0;
    // Damage in every frame, and in the segment header.
    let mut flips: Vec<(u64, u64, u32)> = Vec::new();
    for frame in built.frames(name) {
        flips.extend(
            frame_flips(&frame)
                .into_iter()
                .map(|(byte, bit)| (frame.offset, byte, bit)),
        );
    }
    flips.extend((0..28).map(|byte| (0, byte, 5)));
    for (offset, byte, bit) in flips {
        let case =
            format!("{name}: damage at {offset}, byte {byte} bit {bit}, truncate_corrupt_tail");
        let damaged = flipped(&built.image, name, byte, bit);
        let mut files = damaged.clone();
        let mut removed: Vec<String> = later.to_vec();
        for segment in later {
            files.remove(segment);
        }
        // Damage in the header or the first frame leaves the segment without its opening
        // hard state record, and it goes whole.
        if offset <= SEGMENT_HEADER_BYTES {
            files.remove(name);
            removed.push(name.to_string());
        } else {
            files
                .get_mut(name)
                .expect("damaged segment")
                .truncate(offset as usize);
        }
        let expected = built.model_after(built.calls_before(name, offset));
        let dropped = segment_bytes - offset + later_bytes;
        expect_recovered(
            &dir,
            &case,
            &damaged,
            override_options(),
            &expected,
            (0, dropped),
            &removed,
            &files,
        );
        cases += 1;
    }
    println!("{cases} damaged bits cut with truncate_corrupt_tail");
}

#[test]
fn missing_segment_is_corrupt() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    let position = built
        .segments
        .iter()
        .position(|segment| segment == name)
        .expect("listed");
    let mut image = built.image.clone();
    image.remove(name);
    let next = &built.segments[position + 1];
    let reason = expect_corrupt(&dir, &image, &format!("{name} missing"), next, 0);
    assert!(
        reason.contains(&format!("segment {} is missing", position + 1)),
        "{reason}"
    );

    // Without the first segment the log no longer reaches the (bootstrap) snapshot: the
    // first entry of the next segment is named.
    let mut image = built.image.clone();
    image.remove(&built.segments[0]);
    let second = &built.segments[1];
    let first_entry = built
        .frames(second)
        .into_iter()
        .find(|frame| frame.kind == RECORD_ENTRY)
        .expect("the second segment holds entries");
    let reason = expect_corrupt(
        &dir,
        &image,
        "first segment missing",
        second,
        first_entry.offset,
    );
    assert!(
        reason.contains("a segment before it is missing"),
        "{reason}"
    );
}

/// A small deterministic generator for garbage bytes (xorshift64).
fn garbage(length: usize, mut seed: u64) -> Vec<u8> {
    (0..length)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn garbage_after_the_last_record_is_cut_as_a_torn_tail() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.last_segment();
    for length in [1, 12, 37, 4096] {
        let mut image = built.image.clone();
        image
            .get_mut(name)
            .expect("last segment")
            .extend_from_slice(&garbage(length, 0x5eed + length as u64));
        let case = format!("{name} followed by {length} random bytes");
        expect_recovered(
            &dir,
            &case,
            &image,
            options(),
            &built.model(),
            (length as u64, 0),
            &[],
            &built.image,
        );
    }
}

#[test]
fn zeros_after_the_last_record_are_space_for_more_records() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.last_segment();
    for length in [1, 11, 12, 13, 64, 4096] {
        let mut image = built.image.clone();
        image
            .get_mut(name)
            .expect("last segment")
            .extend_from_slice(&vec![0u8; length]);
        let case = format!("{name} followed by {length} zero bytes");
        // Nothing is torn and nothing changes: the zeros are where the next records go.
        expect_recovered(
            &dir,
            &case,
            &image,
            options(),
            &built.model(),
            (0, 0),
            &[],
            &image,
        );
    }
}

#[test]
fn garbage_after_the_records_of_a_middle_segment_is_corrupt() {
    let scratch = scratch_directory();
    let built = Built::new(&scratch.path().join("log"), one_record_per_call());
    let dir = scratch.path().join("image");
    let name = built.middle_segment();
    let end = built.image[name].len() as u64;
    for (tail, bytes) in [("zeros", vec![0u8; 64]), ("random bytes", garbage(64, 7))] {
        let mut image = built.image.clone();
        image
            .get_mut(name)
            .expect("middle segment")
            .extend_from_slice(&bytes);
        expect_corrupt(
            &dir,
            &image,
            &format!("{name} followed by 64 {tail}"),
            name,
            end,
        );
    }
}

/// A log compacted by a snapshot with data, followed by entries.
fn compacted() -> Vec<PersistRequest> {
    let mut script = Script::default();
    script.hard_state(hard_state(1, Some(1), 0));
    for first in (1..=20).step_by(4) {
        script.append(entries(1, first..=first + 3));
    }
    script.hard_state(hard_state(1, Some(1), 15));
    script.snapshot(snapshot(1, 12));
    script.append(entries(1, 21..=24));
    script.requests
}

/// Runs `requests` against a new log in `dir` and returns its files.
fn run(dir: &Path, requests: &[PersistRequest]) -> Image {
    let mut wal = Wal::open(dir, voters(), options()).expect("a new log bootstraps");
    for request in requests {
        wal.persist(request.clone()).expect("durable");
    }
    drop(wal);
    capture(dir)
}

fn snapshot_names(image: &Image) -> Vec<String> {
    image
        .keys()
        .filter(|name| is_snapshot(name))
        .cloned()
        .collect()
}

#[test]
fn damaged_newest_snapshot_file_is_corrupt_even_next_to_an_older_one() {
    let scratch = scratch_directory();
    let requests = compacted();
    let bootstrapped = run(&scratch.path().join("bootstrapped"), &[]);
    let image = run(&scratch.path().join("log"), &requests);
    let dir = scratch.path().join("image");
    let [name] = &snapshot_names(&image)[..] else {
        panic!(
            "one snapshot file after compaction: {:?}",
            snapshot_names(&image)
        );
    };
    let [older] = &snapshot_names(&bootstrapped)[..] else {
        panic!("one bootstrap snapshot file");
    };
    assert_ne!(name, older);
    let contents = &image[name];
    let total = contents.len() as u64;
    let mut with_older = image.clone();
    with_older.insert(older.clone(), bootstrapped[older].clone());
    for byte in 0..total {
        let bit = (byte % 8) as u32;
        // The magic is checked first, then the checksum of everything (stored at the end).
        let offset = if byte < 8 { 0 } else { total - 4 };
        let case = format!("{name}: byte {byte} bit {bit}");
        expect_corrupt(&dir, &flipped(&image, name, byte, bit), &case, name, offset);
        let case = format!("{case}, with {older} present");
        expect_corrupt(
            &dir,
            &flipped(&with_older, name, byte, bit),
            &case,
            name,
            offset,
        );
    }
    for length in 0..total {
        let mut cut = image.clone();
        cut.get_mut(name)
            .expect("snapshot")
            .truncate(length as usize);
        let case = format!("{name} cut to {length} bytes");
        let result = open_image(&dir, &cut, options()).map(|wal| wal.recovery_report().clone());
        match result {
            Err(WalError::Corrupt { path, .. }) => assert_eq!(path, dir.join(name), "{case}"),
            other => panic!("{case}: expected Corrupt, got {other:?}"),
        }
    }
    // A valid checksum over another version is a file from another build (versions 1 and 2
    // are this build's: voters only, and with outgoing voters and learners).
    let mut other_version = contents.clone();
    other_version[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c::crc32c(&other_version[..total as usize - 4]);
    other_version[total as usize - 4..].copy_from_slice(&crc.to_le_bytes());
    let mut versioned = image.clone();
    versioned.insert(name.clone(), other_version);
    match open_image(&dir, &versioned, options()).map(|wal| wal.recovery_report().clone()) {
        Err(WalError::UnsupportedVersion { path, found, .. }) => {
            assert_eq!((path, found), (dir.join(name), 3));
        }
        other => panic!("{name} of version 3: expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn leftover_temporary_snapshot_file_is_removed() {
    let scratch = scratch_directory();
    let requests = compacted();
    let image = run(&scratch.path().join("log"), &requests);
    let dir = scratch.path().join("image");
    let [name] = &snapshot_names(&image)[..] else {
        panic!("one snapshot file after compaction");
    };
    let mut model = MemStorage::new(voters());
    for request in &requests {
        model.persist(request.clone());
    }
    let expected = (model.clone(), model_state(&model));
    let newer = "snapshot-00000000000000000020-00000000000000000001.snap.tmp".to_string();
    for (case, temporary, contents) in [
        (
            "a half-written newer snapshot",
            newer.clone(),
            image[name][..40].to_vec(),
        ),
        ("an empty newer snapshot", newer, Vec::new()),
        (
            "a complete copy of the current one",
            format!("{name}.tmp"),
            image[name].clone(),
        ),
    ] {
        let mut with_temporary = image.clone();
        with_temporary.insert(temporary.clone(), contents);
        expect_recovered(
            &dir,
            case,
            &with_temporary,
            options(),
            &expected,
            (0, 0),
            &[temporary],
            &image,
        );
    }
}
