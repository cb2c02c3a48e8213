//! Where a simulated peer keeps its durable state: `raft_core::MemStorage` (the default), or a
//! real `raft_wal` write-ahead log in a temporary directory of its own.
//!
//! ```text
//!  SimConfig::storage ─┬─ Memory ─► SimStorage::Memory(MemStorage)
//!                      └─ Wal    ─► SimStorage::Wal(WalDisk: temporary directory, Wal, WalStorage)
//!
//!  DiskDone ─► SimStorage::persist ─► MemStorage::persist | Wal::persist (unsafe_no_sync)
//!  crash    ─► SimStorage::crash   ─► the Wal is dropped: lock released, files stay
//!  restart  ─► SimStorage::recover ─► Wal::open on the same directory (real recovery), which
//!                                     must give back exactly what the old incarnation had
//!                                     made durable
//! ```
//!
//! A simulated crash is a process crash, not a power failure: the page cache survives it. So the
//! log runs with `unsafe_no_sync` (an fsync per write would make seed sweeps far too slow), and
//! a write the simulator completed is one recovery must find. Writes still in flight at a
//! crash never reached `Wal::persist`, so they are lost exactly as with memory storage.
//!
//! A log that fails a write or its recovery keeps its directory for inspection (the failure
//! report names it); otherwise the directory is removed with the cluster. The lying disk
//! ([`crate::DiskConfig::lie_about_durability`]) keeps a shadow copy of what really reached the
//! disk; it needs a cloneable storage and works with memory storage only.

use std::path::{Path, PathBuf};

use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, InitialState, MemStorage, NodeId,
    PersistRequest, Snapshot, Storage, StorageError, Term,
};
use raft_wal::{Wal, WalOptions, WalStorage};
use tempfile::TempDir;

/// Segment size of [`StorageKind::wal`]: small, so that a run rolls over to new segments and
/// compaction deletes whole ones.
pub const WAL_SEGMENT_BYTES_MAX: u64 = 4 * 1024;
/// Tail cache of [`StorageKind::wal`]: small, so that most reads go to the segment files.
pub const WAL_CACHE_BYTES_MAX: u64 = 1024;

/// Where the peers' temporary directories are created: `RAFT_SIM_WAL_DIR` if set, else
/// `/dev/shm` where it exists, else the system temporary directory. The logs skip every
/// fsync, so a disk would do too; a memory-backed file system just keeps thousands of short
/// runs from competing for the disk with whatever else the machine does.
pub fn wal_parent_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAFT_SIM_WAL_DIR") {
        return PathBuf::from(dir);
    }
    let shared_memory = Path::new("/dev/shm");
    if shared_memory.is_dir() {
        return shared_memory.to_path_buf();
    }
    std::env::temp_dir()
}

/// Which storage every peer of a simulated cluster runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// `raft_core::MemStorage`, kept across crashes by the simulator.
    #[default]
    Memory,
    /// A `raft_wal` write-ahead log in a temporary directory per peer (removed when the cluster
    /// is dropped). A crash drops the log and a restart opens it again, so recovery runs.
    /// Incompatible with [`crate::DiskConfig::lie_about_durability`].
    Wal {
        /// `WalOptions::segment_bytes_max`.
        segment_bytes_max: u64,
        /// `WalOptions::cache_bytes_max`.
        cache_bytes_max: u64,
    },
}

impl StorageKind {
    /// A write-ahead log with small segments and a small cache
    /// ([`WAL_SEGMENT_BYTES_MAX`], [`WAL_CACHE_BYTES_MAX`]).
    pub fn wal() -> StorageKind {
        StorageKind::Wal {
            segment_bytes_max: WAL_SEGMENT_BYTES_MAX,
            cache_bytes_max: WAL_CACHE_BYTES_MAX,
        }
    }
}

/// The durable state of one simulated peer. Implements [`raft_core::Storage`] for the core.
#[derive(Debug)]
pub enum SimStorage {
    /// In memory.
    Memory(MemStorage),
    /// A write-ahead log on disk.
    Wal(Box<WalDisk>),
}

impl SimStorage {
    /// New, empty storage for `peer` whose initial configuration is `voters`. Fails, with a
    /// message for the failure report, only when the write-ahead log cannot be created.
    pub fn new(
        kind: StorageKind,
        peer: NodeId,
        voters: Configuration,
    ) -> Result<SimStorage, String> {
        match kind {
            StorageKind::Memory => Ok(SimStorage::Memory(MemStorage::new(voters))),
            StorageKind::Wal {
                segment_bytes_max,
                cache_bytes_max,
            } => {
                let options = WalOptions {
                    segment_bytes_max,
                    cache_bytes_max,
                    unsafe_no_sync: true,
                    ..WalOptions::default()
                };
                WalDisk::create(peer, voters, options).map(|disk| SimStorage::Wal(Box::new(disk)))
            }
        }
    }

    /// Makes `request` durable (snapshot, then entries, then hard state). An error is a message
    /// for the failure report naming the peer and the directory.
    pub fn persist(&mut self, request: PersistRequest) -> Result<(), String> {
        match self {
            SimStorage::Memory(memory) => {
                memory.persist(request);
                Ok(())
            }
            SimStorage::Wal(disk) => disk.persist(request),
        }
    }

    /// Entries stored beyond the snapshot.
    pub fn stored_entry_count(&self) -> Result<u64, StorageError> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        Ok((last.0 + 1).saturating_sub(first.0))
    }

    /// The memory storage, if that is what this is.
    pub fn as_memory(&self) -> Option<&MemStorage> {
        match self {
            SimStorage::Memory(memory) => Some(memory),
            SimStorage::Wal(_) => None,
        }
    }

    /// The peer crashed: a write-ahead log is closed (its files stay). Reads keep answering
    /// what the crashed incarnation had made durable.
    pub fn crash(&mut self) {
        if let SimStorage::Wal(disk) = self {
            disk.wal = None;
        }
    }

    /// The peer restarts: a closed write-ahead log is opened again from its directory, and
    /// what recovery finds must be exactly what was durable at the crash. Does nothing to
    /// memory storage or a log that is open.
    pub fn recover(&mut self) -> Result<(), String> {
        match self {
            SimStorage::Memory(_) => Ok(()),
            SimStorage::Wal(disk) => disk.recover(),
        }
    }
}

impl Storage for SimStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.initial_state(),
            SimStorage::Wal(disk) => disk.storage.initial_state(),
        }
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.entries(low, high, max_bytes),
            SimStorage::Wal(disk) => disk.storage.entries(low, high, max_bytes),
        }
    }

    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.entries_size_bytes(low, high, max_bytes),
            SimStorage::Wal(disk) => disk.storage.entries_size_bytes(low, high, max_bytes),
        }
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.term(index),
            SimStorage::Wal(disk) => disk.storage.term(index),
        }
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.first_index(),
            SimStorage::Wal(disk) => disk.storage.first_index(),
        }
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.last_index(),
            SimStorage::Wal(disk) => disk.storage.last_index(),
        }
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        match self {
            SimStorage::Memory(memory) => memory.snapshot(),
            SimStorage::Wal(disk) => disk.storage.snapshot(),
        }
    }
}

/// A peer's write-ahead log and the temporary directory it lives in.
#[derive(Debug)]
pub struct WalDisk {
    peer: NodeId,
    /// The writer; `None` while the peer is down.
    wal: Option<Wal>,
    /// Reads of the running incarnation; while the peer is down, of the crashed one (what it
    /// had made durable).
    storage: WalStorage,
    bootstrap: Configuration,
    options: WalOptions,
    /// Declared last, so the log's files are closed before the directory is removed.
    dir: TempDir,
}

impl WalDisk {
    fn create(
        peer: NodeId,
        bootstrap: Configuration,
        options: WalOptions,
    ) -> Result<WalDisk, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("raft-sim-n{}-", peer.0))
            .tempdir_in(wal_parent_dir())
            .map_err(|error| format!("{peer}: cannot create a temporary directory: {error}"))?;
        let wal = Wal::open(dir.path(), bootstrap.clone(), options.clone()).map_err(|error| {
            format!(
                "{peer}: cannot create a write-ahead log in {}: {error}",
                dir.path().display()
            )
        })?;
        assert!(
            wal.recovery_report().bootstrapped,
            "{peer}: a new temporary directory already held a log"
        );
        let storage = wal.storage();
        Ok(WalDisk {
            peer,
            wal: Some(wal),
            storage,
            bootstrap,
            options,
            dir,
        })
    }

    fn persist(&mut self, request: PersistRequest) -> Result<(), String> {
        let id = request.id;
        let Some(wal) = self.wal.as_mut() else {
            return Err(format!(
                "{}: persist {id} while the log is closed (peer down)",
                self.peer
            ));
        };
        let Err(error) = wal.persist(request) else {
            return Ok(());
        };
        // Kept for inspection: the failure report names the directory.
        self.dir.disable_cleanup(true);
        Err(format!(
            "{}: persist {id} in {} (kept): {error}",
            self.peer,
            self.dir.path().display()
        ))
    }

    /// Opens the log again after a crash (see [`SimStorage::recover`]).
    fn recover(&mut self) -> Result<(), String> {
        if self.wal.is_some() {
            return Ok(());
        }
        let recovered = self.reopen();
        if recovered.is_err() {
            // Kept for inspection: the failure report names the directory.
            self.dir.disable_cleanup(true);
        }
        recovered
    }

    /// Runs recovery and checks it against the crashed incarnation's view of the log.
    fn reopen(&mut self) -> Result<(), String> {
        assert!(
            self.wal.is_none(),
            "WalDisk::reopen: the log is closed (one writer per directory)"
        );
        let at = self.dir.path().display();
        let before = DurableImage::read(&self.storage)
            .map_err(|error| format!("{}: read the log before the restart: {error}", self.peer))?;
        let wal = Wal::open(
            self.dir.path(),
            self.bootstrap.clone(),
            self.options.clone(),
        )
        .map_err(|error| format!("{}: recovery of {at} (kept) failed: {error}", self.peer))?;
        let report = wal.recovery_report();
        // A simulated crash never interrupts a write: every completed persist was whole, so
        // there is no torn tail to cut and no snapshot marker to restore.
        let repaired = report.torn_tail_bytes > 0
            || report.corrupt_bytes_dropped > 0
            || report.snapshot_marker_restored;
        if report.bootstrapped || repaired {
            return Err(format!(
                "{}: recovery of {at} (kept) after a process crash reported {report:?}",
                self.peer
            ));
        }
        let storage = wal.storage();
        let after = DurableImage::read(&storage)
            .map_err(|error| format!("{}: read the recovered log: {error}", self.peer))?;
        if let Some(difference) = before.difference(&after) {
            return Err(format!(
                "{}: recovery of {at} (kept) does not give back what was durable: {difference}",
                self.peer
            ));
        }
        self.wal = Some(wal);
        self.storage = storage;
        Ok(())
    }
}

/// Everything a peer's storage holds, for comparing a log before a crash with its recovery.
struct DurableImage {
    /// The hard state and the configurations as `Storage::initial_state` reports them.
    initial: InitialState,
    hard_state: HardState,
    snapshot: Snapshot,
    first_index: Index,
    last_index: Index,
    entries: Vec<Entry>,
}

impl DurableImage {
    fn read(storage: &impl Storage) -> Result<DurableImage, StorageError> {
        let (first_index, last_index) = (storage.first_index()?, storage.last_index()?);
        let entries = storage.entries(first_index, last_index.next(), u64::MAX)?;
        let initial = storage.initial_state()?;
        // The log tracks its configuration entries as it writes and replays instead of
        // reading them back: they must be exactly those of the entries it holds, and the
        // one in effect the latest of them or the snapshot's.
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
    fn difference(&self, other: &DurableImage) -> Option<String> {
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
