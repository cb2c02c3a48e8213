//! The write side of storage: what a runtime needs to run a peer on a storage engine of the
//! user's choice.
//!
//! ```text
//!  Raft::new(config, store.reader())          the core reads through a Storage view
//!  core.ready().persist ─► store.write(batch) ─► returns once durable ─► core.on_persisted(id)
//!                          (one sync for every request of the batch)
//! ```
//!
//! A store may also stage a snapshot: make its data durable from another thread ahead of the
//! write that records it ([`SnapshotStager`]), so that a large snapshot file does not hold up
//! the log's appends. Stores that do not leave [`LogStore::snapshot_stager`] at its default.
//!
//! `raft-wal`'s `Wal` is the durable implementation; [`SharedMemStorage`] keeps everything in
//! memory (tests, examples, simulations); a user's own engine implements [`LogStore`] and runs
//! under `raft-node` unchanged. The conformance suite (feature `testing`,
//! `raft_core::testing::storage`) checks an implementation against every rule below.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ready::PersistRequest;
use crate::storage::{InitialState, MemStorage, Storage, StorageError};
use crate::types::{Configuration, Entry, Index, LogId, Snapshot, Term};

/// Durable storage a peer runs on: it makes the core's [`PersistRequest`]s durable and gives the
/// core a read view ([`Storage`]) of what is.
///
/// The contract the core relies on (each rule is checked by the conformance suite):
/// - **Order.** Requests are made durable in the order given, and each in the order snapshot,
///   entries, hard state. A crash leaves a prefix of what was written: never a later request
///   without an earlier one.
/// - **Durability.** When [`LogStore::write`] returns `Ok`, everything it was given survives a
///   crash (process or power): a reopened store reads it back exactly.
/// - **Conflicting suffix.** An entry at an index already stored replaces that entry and every
///   entry after it.
/// - **Snapshots.** A snapshot replaces the entries it covers; if the stored entry at its last
///   index has another term, or there is none, the whole log is discarded. An older snapshot
///   than the stored one changes nothing. The commit index is at least the snapshot's index.
/// - **Hard state.** The newest hard state written is the one read back.
/// - **Configuration.** [`Storage::initial_state`] returns the configuration of the newest
///   configuration entry stored (committed or not), else the snapshot's, else the bootstrap
///   one, and every configuration entry after the snapshot.
/// - **Reads.** The reader sees a write once `write` returned, from any thread.
/// - **Failure.** An error is returned, never hidden: after a failed write the store may refuse
///   every later one (the node then stops), but it must not report as durable what is not.
pub trait LogStore: Send + 'static {
    /// The read view handed to `Raft::new`. It sees every write once [`LogStore::write`]
    /// returned.
    type Reader: Storage + Send + 'static;
    /// Why a write failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A read view of what has been made durable.
    fn reader(&self) -> Self::Reader;

    /// Makes every request durable, in order, and returns once all of it would survive a
    /// crash. Taking several at once lets an implementation cover them with one sync.
    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), Self::Error>;

    /// A handle that makes snapshots durable ahead of the write that records them, from any
    /// thread, while this store goes on writing; `None` (the default) if the store has none,
    /// and a snapshot's data is then made durable by the [`LogStore::write`] that records it.
    /// Taken once, before the store moves to the thread that writes.
    fn snapshot_stager(&self) -> Option<Arc<dyn SnapshotStager>> {
        None
    }
}

/// Why staging a snapshot failed, for the operator: a runtime logs it and lets the write that
/// records the snapshot make it durable instead (which fails the same way if the disk is at
/// fault, and stops the node).
pub type StageError = Box<dyn std::error::Error + Send + Sync>;

/// Makes a snapshot's data durable ahead of the [`LogStore::write`] that records it, so that
/// writing a large snapshot file runs on a thread of its own while the log's appends go on.
///
/// The contract:
/// - **Invisible until recorded.** A staged snapshot is not part of the store: a crash before
///   the write whose request carries it leaves the store as if it had never been staged, and
///   the reader never returns it.
/// - **Same outcome.** A write whose request carries a snapshot staged with the same contents
///   makes it durable exactly as if it had not been staged (only faster); one that differs in
///   anything is written whole.
/// - **No leaks.** What a staged snapshot holds (files, memory) is freed once it is recorded,
///   once a newer snapshot is recorded, on [`SnapshotStager::discard`], or at the store's next
///   open.
pub trait SnapshotStager: Send + Sync {
    /// Makes `snapshot` durable without recording it, and returns once it is. Blocks for the
    /// whole write: call it on a thread that has nothing else to do.
    fn stage(&self, snapshot: &Snapshot) -> Result<(), StageError>;

    /// Forgets the staged snapshot through `id`, which will not be recorded (the core refused
    /// the compaction), and frees what it held. Nothing happens if none is staged.
    fn discard(&self, id: LogId);
}

/// [`MemStorage`] behind a shared handle: a [`LogStore`] whose reader is another handle on the
/// same state, so a runtime can write on one thread while the core reads on another. Clones
/// share the state, which is how a test "restarts" a peer with what it had made durable: keep a
/// clone, drop the node, start a new one on the clone.
///
/// Nothing is written anywhere: a process crash loses it all. For tests, examples and
/// simulations.
#[derive(Clone, Debug)]
pub struct SharedMemStorage {
    state: Arc<Mutex<MemStorage>>,
}

impl SharedMemStorage {
    /// An empty log whose initial configuration is `configuration`.
    pub fn new(configuration: Configuration) -> SharedMemStorage {
        SharedMemStorage::from_storage(MemStorage::new(configuration))
    }

    /// A shared handle on `storage`.
    pub fn from_storage(storage: MemStorage) -> SharedMemStorage {
        SharedMemStorage {
            state: Arc::new(Mutex::new(storage)),
        }
    }

    /// A copy of the state as it is now (to save it, or to compare it).
    pub fn to_storage(&self) -> MemStorage {
        self.lock().clone()
    }

    /// The state, locked. A panic while it was held (in a test) poisons nothing worth refusing:
    /// every write leaves `MemStorage` consistent.
    fn lock(&self) -> MutexGuard<'_, MemStorage> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LogStore for SharedMemStorage {
    type Reader = SharedMemStorage;
    type Error = Infallible;

    fn reader(&self) -> SharedMemStorage {
        self.clone()
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), Infallible> {
        let mut storage = self.lock();
        for request in requests {
            storage.persist(request);
        }
        Ok(())
    }
}

impl Storage for SharedMemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        self.lock().initial_state()
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.lock().entries(low, high, max_bytes)
    }

    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        self.lock().entries_size_bytes(low, high, max_bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        self.lock().term(index)
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        self.lock().first_index()
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        self.lock().last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.lock().snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EntryKind, HardState, LogId, NodeId};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            id: LogId::new(Term(term), Index(index)),
            kind: EntryKind::Normal,
            data: bytes::Bytes::from(format!("{term}/{index}")),
        }
    }

    #[test]
    fn the_reader_sees_a_write_once_it_returned_and_clones_share_it() {
        let mut store = SharedMemStorage::new(Configuration::new([NodeId(1)]));
        let reader = store.reader();
        let restarted = store.clone();
        let hard_state = HardState {
            term: Term(2),
            vote: Some(NodeId(1)),
            commit: Index(1),
        };
        let Ok(()) = store.write(vec![PersistRequest {
            id: 1,
            snapshot: None,
            entries: vec![entry(1, 1), entry(2, 2)],
            hard_state: Some(hard_state),
        }]);
        for view in [&reader, &restarted] {
            assert_eq!(view.last_index(), Ok(Index(2)));
            assert_eq!(view.term(Index(2)), Ok(Term(2)));
            assert_eq!(
                view.initial_state().map(|state| state.hard_state),
                Ok(hard_state)
            );
        }
        assert_eq!(restarted.to_storage().hard_state(), hard_state);
    }
}
