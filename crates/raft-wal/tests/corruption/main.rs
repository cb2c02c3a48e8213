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
//!
//! One module per place the damage is: `segments` (a middle segment's header and records, a
//! missing segment, the operator's override), `tail` (the last segment's records and what
//! follows them), `snapshots` (snapshot files). This file holds the log they damage and the
//! expectations they share.

#[path = "../common/mod.rs"]
mod common;
mod inspect;
mod segments;
mod snapshots;
mod tail;

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

    /// The image without its middle segment, with that segment's name and its successor's.
    fn without_middle_segment(&self) -> (Image, &str, &str) {
        let name = self.middle_segment();
        let position = self
            .segments
            .iter()
            .position(|segment| segment == name)
            .expect("listed");
        let mut image = self.image.clone();
        image.remove(name);
        (image, name, &self.segments[position + 1])
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
    assert_suspect_marker_matches(dir, report, case);
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
