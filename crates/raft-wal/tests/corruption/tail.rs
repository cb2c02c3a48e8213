//! Damage in the last segment: a torn last record or garbage after it is cut; damage before
//! intact records, or garbage in a middle segment, is corrupt; zeros are room for more.

use super::*;

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
