//! Every read the core can make, of the log and of the model, compared; and the files on
//! disk and the recovery report after a reopen.

use super::*;

pub(super) fn same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    wal: T,
    model: T,
) -> Result<(), String> {
    if wal == model {
        Ok(())
    } else {
        Err(format!("{what}: write-ahead log {wal:?}, model {model:?}"))
    }
}

/// Compares entry lists, naming the first entry that differs (the `Debug` of an entry shows
/// its size, not its bytes).
pub(super) fn same_entries(
    what: &str,
    wal: &Result<Vec<Entry>, StorageError>,
    model: &Result<Vec<Entry>, StorageError>,
) -> Result<(), String> {
    match (wal, model) {
        (Ok(wal), Ok(model)) if wal == model => Ok(()),
        (Ok(wal_entries), Ok(model_entries)) => {
            let position = wal_entries
                .iter()
                .zip(model_entries)
                .position(|(a, b)| a != b);
            Err(format!(
                "{what}: the write-ahead log returned {} entries, the model {}; first difference at \
                 position {position:?}: {:?} vs {:?}",
                wal_entries.len(),
                model_entries.len(),
                position.map(|position| &wal_entries[position]),
                position.map(|position| &model_entries[position]),
            ))
        }
        _ => same(what, wal, model),
    }
}

/// Every read the core makes agrees with the model.
pub(super) fn check(wal: &Wal, model: &MemStorage, options: &CaseOptions) -> Result<(), String> {
    let storage = wal.storage();
    let first = model.first_index().expect("model").0;
    let last = model.last_index().expect("model").0;
    same("first_index", storage.first_index(), Ok(Index(first)))?;
    same("last_index", storage.last_index(), Ok(Index(last)))?;
    same("hard_state", storage.hard_state(), Ok(model.hard_state()))?;
    same(
        "snapshot_meta",
        storage.snapshot_meta().as_ref(),
        Ok(model.snapshot_meta()),
    )?;
    same("snapshot", storage.snapshot(), model.snapshot())?;
    same(
        "initial_state",
        storage.initial_state(),
        model.initial_state(),
    )?;
    let cached_bytes = storage.cached_bytes().map_err(|error| error.to_string())?;
    if cached_bytes > options.cache_bytes_max {
        return Err(format!(
            "the cache holds {cached_bytes} bytes, more than {}",
            options.cache_bytes_max
        ));
    }

    // Each range is also measured, from the log's index, against the model's default, which
    // reads the entries: the same size up to max_bytes, and "more" past it.
    let everything = |low: u64, high: u64, max_bytes: u64| {
        let what = format!("entries({low}, {high}, {max_bytes})");
        same_entries(
            &what,
            &storage.entries(Index(low), Index(high), max_bytes),
            &model.entries(Index(low), Index(high), max_bytes),
        )?;
        let within = |bytes: Result<u64, StorageError>| {
            bytes.map(|bytes| (bytes <= max_bytes).then_some(bytes))
        };
        same(
            &format!("entries_size_bytes({low}, {high}, {max_bytes})"),
            within(storage.entries_size_bytes(Index(low), Index(high), max_bytes)),
            within(model.entries_size_bytes(Index(low), Index(high), max_bytes)),
        )
    };
    everything(first, last + 1, u64::MAX)?;
    let stored: Vec<Entry> = model.stored_entries().cloned().collect();
    same(
        "stored entries",
        storage.entries(Index(first), Index(last + 1), u64::MAX),
        Ok(stored),
    )?;
    // Out of range on either side, and empty ranges at both ends.
    everything(first - 1, last + 1, u64::MAX)?;
    everything(first, last + 2, u64::MAX)?;
    everything(first, first, u64::MAX)?;
    everything(last + 1, last + 1, u64::MAX)?;
    // Windows: at least one entry, and stop before the entry that passes max_bytes.
    let stride = ((last + 1 - first) / 6).max(1);
    for low in (first..=last).step_by(stride as usize) {
        for max_bytes in [0, 1, 24, 100, 330, 1000] {
            everything(low, last + 1, max_bytes)?;
        }
    }

    let mut indexes: Vec<u64> = (first.saturating_sub(3)..=last + 2).collect();
    indexes.extend([0, last + 100, u64::MAX / 2]);
    for index in indexes {
        same(
            &format!("term({index})"),
            storage.term(Index(index)),
            model.term(Index(index)),
        )?;
    }
    wal.wait_for_cleanup();
    check_files(wal.dir(), model)
}

/// Exactly one snapshot file, the model's, and no temporaries.
pub(super) fn check_files(dir: &Path, model: &MemStorage) -> Result<(), String> {
    let id = model.snapshot_meta().last_included;
    let expected = format!("snapshot-{:020}-{:020}.snap", id.index.0, id.term.0);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|error| format!("list {}: {error}", dir.display()))?
        .filter_map(|item| item.ok())
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".snap"))
        .collect();
    names.sort();
    same("snapshot files", names, vec![expected])
}

/// What the recovery report says after a clean shutdown.
pub(super) fn check_recovery(wal: &Wal, model: &MemStorage) -> Result<(), String> {
    let report = wal.recovery_report();
    let entries = model.stored_entries().count() as u64;
    same("report.bootstrapped", report.bootstrapped, false)?;
    same("report.torn_tail_bytes", report.torn_tail_bytes, 0)?;
    same(
        "report.corrupt_bytes_dropped",
        report.corrupt_bytes_dropped,
        0,
    )?;
    same("report.entries", report.entries, entries)?;
    same(
        "report.snapshot",
        report.snapshot,
        model.snapshot_meta().last_included,
    )?;
    same("report.removed_files", report.removed_files.len(), 0)
}
