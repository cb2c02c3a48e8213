//! Damage in a middle segment (its header or its records), a segment missing, and the
//! operator's override that cuts the log at such damage: all refused as corrupt, naming the
//! file and offset, unless overridden.

use super::*;

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
    let (image, name, next) = built.without_middle_segment();
    let reason = expect_corrupt(&dir, &image, &format!("{name} missing"), next, 0);
    let position = built.segments.iter().position(|segment| segment == name);
    assert!(
        reason.contains(&format!(
            "segment {} is missing",
            position.expect("listed") + 1
        )),
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
