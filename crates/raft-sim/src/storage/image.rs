//! Everything a store holds, read back through `Storage`: to compare a store before a crash
//! with its reopened self, and to copy a store into memory (the lying disk's overlay).

use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, InitialState, MemStorage, PersistRequest,
    Snapshot, Storage, StorageError,
};

/// Everything a store holds, for comparing a store before a crash with its reopened self.
pub(super) struct DurableImage {
    /// The hard state and the configurations as `Storage::initial_state` reports them.
    initial: InitialState,
    hard_state: HardState,
    snapshot: Snapshot,
    first_index: Index,
    last_index: Index,
    entries: Vec<Entry>,
}

impl DurableImage {
    pub(super) fn read<S: Storage + ?Sized>(storage: &S) -> Result<DurableImage, StorageError> {
        let (first_index, last_index) = (storage.first_index()?, storage.last_index()?);
        let entries = storage.entries(first_index, last_index.next(), u64::MAX)?;
        let initial = storage.initial_state()?;
        // A store may track its configuration entries as it writes and replays (the
        // write-ahead log does) instead of reading them back: they must be exactly those of
        // the entries it holds, and the one in effect the latest of them or the snapshot's.
        let mut configuration_entries = Vec::new();
        for entry in entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::Configuration)
        {
            let configuration = Configuration::decode(&entry.data).map_err(|error| {
                StorageError::Failed(format!("configuration entry {}: {error}", entry.id))
            })?;
            configuration_entries.push((entry.index(), configuration));
        }
        let snapshot = storage.snapshot()?;
        let in_effect = configuration_entries
            .last()
            .map_or(&snapshot.meta.configuration, |(_, configuration)| {
                configuration
            });
        if initial.configuration_entries != configuration_entries
            || initial.configuration != *in_effect
        {
            return Err(StorageError::Failed(format!(
                "initial_state reports configurations {:?} (in effect {:?}), but the log holds \
                 {configuration_entries:?} after a snapshot of {:?}",
                initial.configuration_entries, initial.configuration, snapshot.meta.configuration
            )));
        }
        Ok(DurableImage {
            hard_state: initial.hard_state,
            initial,
            snapshot,
            first_index,
            last_index,
            entries,
        })
    }

    /// How `other` differs from this image, if it does.
    pub(super) fn difference(&self, other: &DurableImage) -> Option<String> {
        if self.initial.configuration_entries != other.initial.configuration_entries {
            return Some(format!(
                "configuration entries {:?} became {:?}",
                self.initial.configuration_entries, other.initial.configuration_entries
            ));
        }
        if self.hard_state != other.hard_state {
            return Some(format!(
                "hard state {:?} became {:?}",
                self.hard_state, other.hard_state
            ));
        }
        if self.snapshot != other.snapshot {
            return Some(format!(
                "snapshot {:?} became {:?}",
                self.snapshot.meta, other.snapshot.meta
            ));
        }
        if (self.first_index, self.last_index) != (other.first_index, other.last_index) {
            return Some(format!(
                "log {}..={} became {}..={}",
                self.first_index, self.last_index, other.first_index, other.last_index
            ));
        }
        let changed = self
            .entries
            .iter()
            .zip(&other.entries)
            .find(|(before, after)| before != after);
        if let Some((before, after)) = changed {
            return Some(format!("entry {} became {}", before.id, after.id));
        }
        if self.entries.len() != other.entries.len() {
            return Some(format!(
                "{} entries became {}",
                self.entries.len(),
                other.entries.len()
            ));
        }
        None
    }
}

/// A [`MemStorage`] holding exactly what `storage` holds: its snapshot, its entries and its
/// hard state, with the snapshot's configuration (the bootstrap one before any snapshot) as the
/// initial one. The copy is read back and compared with the original, so a store whose state
/// memory cannot represent is reported rather than silently changed.
pub(crate) fn copy_to_memory(storage: &dyn Storage) -> Result<MemStorage, String> {
    let original = DurableImage::read(storage).map_err(|error| error.to_string())?;
    let installed = original.snapshot.meta.last_included.index > Index(0);
    let mut copy = MemStorage::new(original.snapshot.meta.configuration.clone());
    copy.persist(PersistRequest {
        id: 0,
        snapshot: installed.then(|| original.snapshot.clone()),
        entries: original.entries.clone(),
        hard_state: Some(original.hard_state),
    });
    let copied = DurableImage::read(&copy).map_err(|error| error.to_string())?;
    match original.difference(&copied) {
        None => Ok(copy),
        Some(difference) => Err(format!("a copy in memory differs: {difference}")),
    }
}
