//! Stable storage as the core sees it: a read-only view of what has been made durable.
//!
//! ```text
//!   core.ready() ──► PersistRequest ──► caller writes it (MemStorage::persist, a WAL, ...)
//!        ▲                                         │
//!        └──────── core.on_persisted(id) ◄─────────┘
//! ```
//!
//! The core never writes to storage itself; it hands out [`PersistRequest`]s and reads back
//! through [`Storage`] what the caller reported durable. Entries handed out but not yet reported
//! durable are kept in the core's memory, so storage is only ever read below that point.

use std::collections::VecDeque;

use thiserror::Error;

use crate::membership::ConfigurationError;
use crate::ready::PersistRequest;
use crate::types::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, Snapshot, SnapshotMeta, Term,
};

/// Why storage could not answer a read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index is at or below the snapshot: it was compacted away.
    #[error("index {0} is compacted")]
    Compacted(Index),
    /// The requested index is beyond the last stored entry.
    #[error("index {0} is beyond the stored log")]
    Unavailable(Index),
    /// The storage failed (I/O error, corruption). Fatal to the node.
    #[error("storage failure: {0}")]
    Failed(String),
}

/// Why [`MemStorage::restore`] refused its parts: together they are not a state a peer could
/// have made durable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// An entry is not where the log's next one belongs: the first right after the snapshot,
    /// each next one after the one before it.
    #[error("entry at {found} where {expected} belongs: the entries must follow the snapshot without a gap")]
    NotContiguous {
        /// The index the entry should have.
        expected: Index,
        /// The index it has.
        found: Index,
    },
    /// An entry's term is below the term of the entry before it (or of the snapshot's last
    /// entry): terms never decrease along a log (§5.3).
    #[error("entry {index} has term {term}, below the term {previous} before it")]
    TermDecreasing {
        /// The entry.
        index: Index,
        /// Its term.
        term: Term,
        /// The term before it.
        previous: Term,
    },
    /// The hard state's term is below the last entry's: a peer never holds an entry of a term
    /// it has not seen.
    #[error("hard state term {term} is below the last entry's term {last_entry_term}")]
    TermBehindLog {
        /// The hard state's term.
        term: Term,
        /// The last entry's (or the snapshot's) term.
        last_entry_term: Term,
    },
    /// The commit index is beyond the last index of the log.
    #[error("commit index {commit} is beyond the last index {last}")]
    CommitBeyondLastIndex {
        /// The hard state's commit index.
        commit: Index,
        /// The last index (of the entries, or the snapshot's when there are none).
        last: Index,
    },
    /// The snapshot's configuration, or the data of a configuration entry, is not a valid
    /// configuration.
    #[error("configuration at {index}: {error}")]
    Configuration {
        /// The snapshot's last index, or the configuration entry's index.
        index: Index,
        /// What is wrong with it.
        error: ConfigurationError,
    },
}

/// What a peer recovers from its storage at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The durable term, vote and commit.
    pub hard_state: HardState,
    /// The configuration in effect at start-up: the latest configuration entry in the stored
    /// log, committed or not (thesis §4.1), else the newest snapshot's (or the bootstrap's).
    pub configuration: Configuration,
    /// Every configuration entry of the stored log after the snapshot, decoded, oldest first:
    /// the ones a peer falls back along when a leader replaces its log's suffix. Its last
    /// element, when there is one, is `configuration`.
    pub configuration_entries: Vec<(Index, Configuration)>,
    /// The storage may have lost writes it reported durable: a disk that lied about a sync,
    /// a write-ahead log cut inside a synced record, or a previous run that did not finish
    /// recovering. The peer then trusts neither its term, nor its vote, nor its log until it
    /// has heard from the other voters ([`crate::Raft::is_recovering`]): it would otherwise
    /// vote twice in a term, elect a leader without a committed entry, or acknowledge a stale
    /// leader. A node layer reports this unless its last run shut down cleanly while not
    /// recovering.
    pub possibly_lost_writes: bool,
}

/// Read access to the durable log, hard state and newest snapshot.
///
/// Invariant: the stored log is contiguous from `first_index()` to `last_index()`, and the entry
/// at `first_index() - 1` is described by the newest snapshot (or is the empty prefix).
pub trait Storage {
    /// The state to start from.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// Entries in `[low, high)`, stopping early once more than `max_bytes` are collected; at
    /// least one entry is returned when the range is non-empty.
    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError>;

    /// The size ([`Entry::size_bytes`]) of the entries in `[low, high)`, counted until it
    /// passes `max_bytes`: a result above `max_bytes` says only "more than that". The leader
    /// asks it of a follower's backlog at every round, so a store that knows its entries'
    /// sizes should answer without reading them; this default reads them with
    /// [`Storage::entries`].
    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        if low >= high {
            return Ok(0);
        }
        let entries = self.entries(low, high, max_bytes)?;
        if entries.len() as u64 != high.0 - low.0 {
            return Ok(max_bytes.saturating_add(1));
        }
        Ok(entries.iter().map(Entry::size_bytes).sum())
    }

    /// The term of the entry at `index`. `index = first_index() - 1` answers from the snapshot.
    fn term(&self, index: Index) -> Result<Term, StorageError>;

    /// The first index still stored as an entry (snapshot index + 1).
    fn first_index(&self) -> Result<Index, StorageError>;

    /// The last stored index (the snapshot index if no entries follow it).
    fn last_index(&self) -> Result<Index, StorageError>;

    /// The newest durable snapshot, for sending to a follower.
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
}

/// Storage in memory, for tests and simulation. It stands for what a disk holds: the simulator
/// keeps it across a crash and drops everything else. To save it and load it again, see
/// [`MemStorage::into_parts`] and [`MemStorage::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Invariant: `entries[k].index() == snapshot.meta.last_included.index + 1 + k`.
    entries: VecDeque<Entry>,
    /// Reported as [`InitialState::possibly_lost_writes`].
    possibly_lost_writes: bool,
}

impl MemStorage {
    /// An empty log whose initial configuration is `configuration` (every peer of a new cluster
    /// starts from the same one).
    pub fn new(configuration: Configuration) -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            snapshot: Snapshot {
                meta: SnapshotMeta {
                    last_included: LogId::default(),
                    configuration,
                },
                data: bytes::Bytes::new(),
            },
            entries: VecDeque::new(),
            possibly_lost_writes: false,
        }
    }

    /// Sets what [`Storage::initial_state`] reports as
    /// [`InitialState::possibly_lost_writes`]: a simulator or test that cut this storage back
    /// behind what it once reported durable says so here, and the peer built on it recovers.
    pub fn set_possibly_lost_writes(&mut self, possibly_lost_writes: bool) {
        self.possibly_lost_writes = possibly_lost_writes;
    }

    /// Makes a [`PersistRequest`] durable, in the documented order: snapshot, then entries
    /// (replacing any conflicting suffix), then hard state.
    pub fn persist(&mut self, request: PersistRequest) {
        if let Some(snapshot) = request.snapshot {
            self.apply_snapshot(snapshot);
        }
        if let Some(first) = request.entries.first() {
            let first = first.index();
            self.append(request.entries, first);
        }
        if let Some(hard_state) = request.hard_state {
            // Everything the snapshot covers is committed, whatever the request says.
            let commit = hard_state.commit.max(self.snapshot_index());
            self.hard_state = HardState {
                commit,
                ..hard_state
            };
        }
    }

    /// Storage holding `hard_state`, `snapshot` and the `entries` after it: what
    /// [`MemStorage::into_parts`] (or [`MemStorage::hard_state`],
    /// [`MemStorage::stored_snapshot`] and [`MemStorage::stored_entries`]) gave out, saved and
    /// loaded again by the caller. A fresh log is a default hard state, a snapshot with index 0
    /// and the initial configuration, and no entries (what [`MemStorage::new`] makes).
    ///
    /// The parts are checked to be a state a peer could have made durable: the entries follow
    /// the snapshot without a gap, their terms never decrease from the snapshot's on, the hard
    /// state's term is at least the last one's, the commit index is not beyond the last index,
    /// and every configuration (the snapshot's, each configuration entry's) is valid. A commit
    /// index below the snapshot is raised to it, as [`MemStorage::persist`] does: a snapshot
    /// holds only committed entries.
    ///
    /// ```
    /// use raft_core::{Configuration, MemStorage, NodeId, RestoreError};
    ///
    /// let storage = MemStorage::new(Configuration::new([NodeId(1)]));
    /// // ... the peer runs; then the caller saves the parts ...
    /// let (hard_state, snapshot, entries) = storage.clone().into_parts();
    /// let restored = MemStorage::restore(hard_state, snapshot.clone(), entries)?;
    /// assert_eq!(restored.hard_state(), storage.hard_state());
    ///
    /// let mut ahead = hard_state;
    /// ahead.commit = raft_core::Index(1);
    /// assert!(matches!(
    ///     MemStorage::restore(ahead, snapshot, Vec::new()),
    ///     Err(RestoreError::CommitBeyondLastIndex { .. })
    /// ));
    /// # Ok::<(), RestoreError>(())
    /// ```
    pub fn restore(
        hard_state: HardState,
        snapshot: Snapshot,
        entries: Vec<Entry>,
    ) -> Result<MemStorage, RestoreError> {
        let snapshot_id = snapshot.meta.last_included;
        snapshot
            .meta
            .configuration
            .validate()
            .map_err(|error| RestoreError::Configuration {
                index: snapshot_id.index,
                error,
            })?;
        let mut previous = snapshot_id;
        for entry in &entries {
            let expected = previous.index.next();
            if entry.index() != expected {
                return Err(RestoreError::NotContiguous {
                    expected,
                    found: entry.index(),
                });
            }
            if entry.term() < previous.term {
                return Err(RestoreError::TermDecreasing {
                    index: entry.index(),
                    term: entry.term(),
                    previous: previous.term,
                });
            }
            if entry.kind == EntryKind::Configuration {
                Configuration::decode(&entry.data).map_err(|error| {
                    RestoreError::Configuration {
                        index: entry.index(),
                        error,
                    }
                })?;
            }
            previous = entry.id;
        }
        let last = previous;
        if hard_state.term < last.term {
            return Err(RestoreError::TermBehindLog {
                term: hard_state.term,
                last_entry_term: last.term,
            });
        }
        if hard_state.commit > last.index {
            return Err(RestoreError::CommitBeyondLastIndex {
                commit: hard_state.commit,
                last: last.index,
            });
        }
        let storage = MemStorage {
            hard_state: HardState {
                commit: hard_state.commit.max(snapshot_id.index),
                ..hard_state
            },
            snapshot,
            entries: entries.into(),
            possibly_lost_writes: false,
        };
        debug_assert!(
            storage.initial_state().is_ok(),
            "invariant restored-storage-reads: every configuration was checked"
        );
        Ok(storage)
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The newest snapshot's metadata.
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot.meta
    }

    /// The newest snapshot (its index is 0 and its data empty when the log was never
    /// compacted), without the copy [`Storage::snapshot`] makes.
    pub fn stored_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Every stored entry, in order: those after the snapshot.
    pub fn stored_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The hard state, the snapshot and the entries after it, to save; see
    /// [`MemStorage::restore`].
    pub fn into_parts(self) -> (HardState, Snapshot, Vec<Entry>) {
        (self.hard_state, self.snapshot, self.entries.into())
    }

    fn snapshot_index(&self) -> Index {
        self.snapshot.meta.last_included.index
    }

    fn append(&mut self, mut entries: Vec<Entry>, first: Index) {
        let snapshot_index = self.snapshot_index();
        // Entries at or below the snapshot are already covered by it.
        let skip = snapshot_index.0.saturating_sub(first.0 - 1) as usize;
        if skip >= entries.len() {
            return;
        }
        entries.drain(..skip);
        let first = entries[0].index();
        assert!(
            first.0 <= snapshot_index.0 + 1 + self.entries.len() as u64,
            "MemStorage::append leaves a gap: first {first}, snapshot {snapshot_index}, len {}",
            self.entries.len()
        );
        let keep = (first.0 - snapshot_index.0 - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend(entries);
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let last = snapshot.meta.last_included;
        if last.index <= self.snapshot_index() {
            return;
        }
        let matches = self
            .entry_at(last.index)
            .is_some_and(|entry| entry.term() == last.term);
        if matches {
            let drop = (last.index.0 - self.snapshot_index().0) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        if self.hard_state.commit < last.index {
            self.hard_state.commit = last.index;
        }
        self.snapshot = snapshot;
    }

    fn entry_at(&self, index: Index) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.snapshot_index().0 + 1)?;
        self.entries.get(offset as usize)
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        // Memory is cheap to scan; a durable log tracks these as it writes instead.
        let mut configuration_entries = Vec::new();
        for entry in &self.entries {
            if entry.kind == EntryKind::Configuration {
                let configuration = Configuration::decode(&entry.data).map_err(|error| {
                    StorageError::Failed(format!(
                        "configuration entry {} does not decode: {error}",
                        entry.id
                    ))
                })?;
                configuration_entries.push((entry.index(), configuration));
            }
        }
        let configuration = configuration_entries
            .last()
            .map_or(&self.snapshot.meta.configuration, |(_, configuration)| {
                configuration
            })
            .clone();
        Ok(InitialState {
            hard_state: self.hard_state,
            configuration,
            configuration_entries,
            possibly_lost_writes: self.possibly_lost_writes,
        })
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if low <= self.snapshot_index() {
            return Err(StorageError::Compacted(low));
        }
        let last = self.snapshot_index().plus(self.entries.len() as u64);
        if high.0 > last.0 + 1 {
            return Err(StorageError::Unavailable(high.prev()));
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in low.0..high.0 {
            let Some(entry) = self.entry_at(Index(index)) else {
                return Err(StorageError::Unavailable(Index(index)));
            };
            bytes += entry.size_bytes();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        let snapshot = self.snapshot.meta.last_included;
        if index == snapshot.index {
            return Ok(snapshot.term);
        }
        if index < snapshot.index {
            return Err(StorageError::Compacted(index));
        }
        self.entry_at(index)
            .map(Entry::term)
            .ok_or(StorageError::Unavailable(index))
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        Ok(self.snapshot_index().next())
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        Ok(self.snapshot_index().plus(self.entries.len() as u64))
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}
