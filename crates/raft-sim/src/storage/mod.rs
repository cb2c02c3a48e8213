//! Where a simulated peer keeps its durable state: a store of any type implementing
//! `raft_core::LogStore`, opened through a [`StoreHarness`] — the trait the storage conformance
//! suite (`raft_core::testing::storage`) opens stores through, so one harness serves both.
//!
//! ```text
//!  StoreHarness ─► HarnessStores: one store per peer, behind the object-safe `Stores`
//!
//!  Cluster::new ─► harness.create(bootstrap)      per peer
//!  boot         ─► Raft::new(config, SimStorage(store.reader()))
//!  DiskDone     ─► store.write([request])         the disk model decides when (disk.rs)
//!  crash        ─► image of what the store holds ─► harness.reopen(store) ─► the reopened
//!                  store must hold exactly that image (storage-recovers-durable-state)
//!
//!  built in (SimConfig::storage):  Memory ─► MemHarness: SharedMemStorage
//!                                  Wal    ─► WalHarness: raft_wal::Wal in a temporary
//!                                            directory, unsafe_no_sync (wal.rs)
//! ```
//!
//! A simulated crash is a process crash, not a power failure: whatever a completed `write`
//! handed to the store survives it, and a reopen must give it back exactly — for any store, the
//! user's included. Writes still in flight at a crash never reached the store (the disk model
//! completes them at virtual times), so they are lost. The lying disk
//! ([`crate::DiskConfig::lie_about_durability`]) acknowledges writes before they reach the
//! store: the core then reads an in-memory overlay ([`copy_to_memory`] of the store at boot,
//! plus every acknowledged write), and a crash loses what the store never got.

mod image;
#[cfg(test)]
mod lying;
mod wal;

use std::path::{Path, PathBuf};

pub use raft_core::testing::storage::MemHarness;
use raft_core::testing::storage::StoreHarness;
use raft_core::{
    Configuration, Entry, Index, InitialState, LogStore, NodeId, PersistRequest, Snapshot, Storage,
    StorageError, Term,
};

pub(crate) use image::copy_to_memory;
use image::DurableImage;
pub use wal::{WalDisk, WalDiskError, WalHarness};

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

/// Which built-in storage every peer of a simulated cluster runs on (another store comes
/// through [`crate::ClusterBuilder::storage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// [`MemHarness`]: `raft_core::SharedMemStorage`, kept across crashes by the simulator.
    #[default]
    Memory,
    /// [`WalHarness`]: a `raft_wal` write-ahead log in a temporary directory per peer (removed
    /// when the cluster is dropped). A crash drops the log and opens it again, so recovery
    /// runs.
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

    /// The stores of a cluster on this kind of storage.
    pub(crate) fn stores(self) -> Box<dyn Stores> {
        match self {
            // A memory store's reopen is a copy of its state: comparing the copy with the
            // original after every crash would only test `MemStorage::clone` (and cost a tenth
            // of the randomized run's time). The storage conformance suite checks the harness.
            StorageKind::Memory => Box::new(HarnessStores::new(MemHarness).unverified()),
            StorageKind::Wal {
                segment_bytes_max,
                cache_bytes_max,
            } => Box::new(HarnessStores::new(WalHarness::new(
                segment_bytes_max,
                cache_bytes_max,
            ))),
        }
    }
}

/// A peer's storage as its core and the invariant checkers read it: a reader of the peer's
/// store (`LogStore::reader`), whatever the store's type.
pub struct SimStorage {
    reader: Box<dyn Storage + Send>,
    /// Reported as `InitialState::possibly_lost_writes`: the peer booting on it crashed
    /// losing writes, or crashed again before it finished recovering.
    possibly_lost_writes: bool,
}

impl SimStorage {
    /// A read view through `reader`.
    pub(crate) fn new(reader: impl Storage + Send + 'static) -> SimStorage {
        SimStorage {
            reader: Box::new(reader),
            possibly_lost_writes: false,
        }
    }

    /// The same view, reporting `possibly_lost_writes` at start-up (what a node layer reports
    /// when it finds no clean-shutdown marker).
    pub(crate) fn reporting_lost_writes(mut self, possibly_lost_writes: bool) -> SimStorage {
        self.possibly_lost_writes = possibly_lost_writes;
        self
    }

    /// Entries stored beyond the snapshot.
    pub fn stored_entry_count(&self) -> Result<u64, StorageError> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        Ok((last.0 + 1).saturating_sub(first.0))
    }
}

impl std::fmt::Debug for SimStorage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SimStorage")
    }
}

impl Storage for SimStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let mut initial = self.reader.initial_state()?;
        initial.possibly_lost_writes |= self.possibly_lost_writes;
        Ok(initial)
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.reader.entries(low, high, max_bytes)
    }

    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        self.reader.entries_size_bytes(low, high, max_bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        self.reader.term(index)
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        self.reader.first_index()
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        self.reader.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.reader.snapshot()
    }
}

/// The stores of every peer of a cluster, whatever their type (peers are numbered from 0).
/// Errors are messages for the failure report, naming the peer.
pub(crate) trait Stores {
    /// Creates the store of the next peer, `peer`, with `bootstrap` as its initial
    /// configuration.
    fn create(&mut self, peer: usize, bootstrap: &Configuration) -> Result<(), String>;

    /// A reader of `peer`'s store.
    fn reader(&self, peer: usize) -> SimStorage;

    /// Hands `requests` to `peer`'s store; they are durable when this returns.
    fn write(&mut self, peer: usize, requests: Vec<PersistRequest>) -> Result<(), String>;

    /// A crash and a restart of `peer`'s store: the harness drops it without a close and
    /// opens it again, and the reopened store must hold exactly what the old one did.
    fn reopen(&mut self, peer: usize) -> Result<(), String>;
}

/// The stores a [`StoreHarness`] opens.
pub(crate) struct HarnessStores<H: StoreHarness> {
    harness: H,
    /// Invariant: `Some` except during a reopen.
    stores: Vec<Option<H::Store>>,
    /// Whether a reopened store is compared with what the store held before.
    verify_reopen: bool,
}

impl<H: StoreHarness> HarnessStores<H> {
    pub(crate) fn new(harness: H) -> HarnessStores<H> {
        HarnessStores {
            harness,
            stores: Vec::new(),
            verify_reopen: true,
        }
    }

    /// Skips comparing a reopened store with what it held before.
    fn unverified(mut self) -> HarnessStores<H> {
        self.verify_reopen = false;
        self
    }

    fn store(&self, peer: usize) -> &H::Store {
        match self.stores.get(peer) {
            Some(Some(store)) => store,
            _ => panic!(
                "invariant violated: store-exists\n  n{} has no store",
                peer + 1
            ),
        }
    }
}

fn node(peer: usize) -> NodeId {
    NodeId(peer as u64 + 1)
}

impl<H: StoreHarness> Stores for HarnessStores<H> {
    fn create(&mut self, peer: usize, bootstrap: &Configuration) -> Result<(), String> {
        assert_eq!(peer, self.stores.len(), "stores are created in peer order");
        let store = self.harness.create(bootstrap).map_err(|error| {
            format!("{}: the harness cannot create a store: {error}", node(peer))
        })?;
        self.stores.push(Some(store));
        Ok(())
    }

    fn reader(&self, peer: usize) -> SimStorage {
        SimStorage::new(self.store(peer).reader())
    }

    fn write(&mut self, peer: usize, requests: Vec<PersistRequest>) -> Result<(), String> {
        let Some(Some(store)) = self.stores.get_mut(peer) else {
            panic!(
                "invariant violated: store-exists\n  n{} has no store",
                peer + 1
            );
        };
        store
            .write(requests)
            .map_err(|error| format!("{}: a write failed: {error}", node(peer)))
    }

    fn reopen(&mut self, peer: usize) -> Result<(), String> {
        let Some(store) = self.stores.get_mut(peer).and_then(Option::take) else {
            panic!(
                "invariant violated: store-exists\n  n{} has no store",
                peer + 1
            );
        };
        let id = node(peer);
        let before = if self.verify_reopen {
            let image = DurableImage::read(&store.reader())
                .map_err(|error| format!("{id}: read the store before the crash: {error}"))?;
            Some(image)
        } else {
            None
        };
        let store = self
            .harness
            .reopen(store)
            .map_err(|error| format!("{id}: the store does not reopen after a crash: {error}"))?;
        if let Some(before) = before {
            let after = DurableImage::read(&store.reader())
                .map_err(|error| format!("{id}: read the reopened store: {error}"))?;
            if let Some(difference) = before.difference(&after) {
                return Err(format!(
                    "{id}: the reopened store does not hold what was durable: {difference}"
                ));
            }
        }
        self.stores[peer] = Some(store);
        Ok(())
    }
}
