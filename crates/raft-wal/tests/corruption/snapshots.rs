//! Damaged and leftover snapshot files.

use super::*;

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
