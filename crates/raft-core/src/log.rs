//! The log as the core sees it: the durable part read through [`Storage`], and an in-memory
//! tail of entries not yet reported durable.
//!
//! ```text
//!   snapshot ─┐  storage (durable)             unstable (memory)
//!   ..........│[first ............ offset-1][offset ...... last]
//!                                     handed_out ─┘ (given to the caller, write in progress)
//!   applied ≤ applying ≤ committed ≤ last
//! ```
//!
//! Entries move from unstable to storage when the caller reports the write durable
//! ([`RaftLog::stable_to`]); an entry the caller wrote but that was overwritten meanwhile is
//! recognised by its term and stays unstable.

use std::collections::VecDeque;

use crate::invariant::Violations;
use crate::storage::{Storage, StorageError};
use crate::types::{Entry, Index, LogId, Snapshot, Term};

/// Entries (and possibly a snapshot received from a leader) that are not yet durable.
#[derive(Clone, Debug)]
struct Unstable {
    /// A snapshot received from the leader, replacing everything before `offset`.
    snapshot: Option<Snapshot>,
    /// `snapshot` was given to the caller to persist.
    snapshot_handed_out: bool,
    /// Invariant: `entries[k].index() == offset + k`.
    entries: VecDeque<Entry>,
    /// Index of the first unstable entry.
    offset: Index,
    /// Entries with index below this were given to the caller to persist.
    handed_out_below: Index,
}

/// The log window: storage plus the unstable tail, and the commit and apply cursors.
#[derive(Clone, Debug)]
pub struct RaftLog<S: Storage> {
    storage: S,
    unstable: Unstable,
    /// Highest index known committed. Invariant: `committed <= last_index()`.
    committed: Index,
    /// Highest index handed to the caller for applying. Invariant: `applying <= committed`.
    applying: Index,
    /// Highest index the caller reported applied. Invariant: `applied <= applying`.
    applied: Index,
    /// Batches handed out for applying and not yet reported applied: (last index, bytes).
    unapplied: VecDeque<(Index, u64)>,
    /// Invariant: the sum of the bytes in `unapplied`.
    unapplied_bytes: u64,
}

impl<S: Storage> RaftLog<S> {
    /// A log over `storage`, committed through `committed` (clamped to what storage holds).
    pub fn new(storage: S, committed: Index) -> Result<RaftLog<S>, StorageError> {
        let first = storage.first_index()?;
        let last = storage.last_index()?;
        let snapshot_index = first.prev();
        let committed = committed.clamp(snapshot_index, last);
        Ok(RaftLog {
            storage,
            unstable: Unstable {
                snapshot: None,
                snapshot_handed_out: false,
                entries: VecDeque::new(),
                offset: last.next(),
                handed_out_below: last.next(),
            },
            committed,
            applying: snapshot_index,
            applied: snapshot_index,
            unapplied: VecDeque::new(),
            unapplied_bytes: 0,
        })
    }

    /// The storage underneath.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Mutable access to the storage underneath (for callers that write through the core).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Highest committed index.
    pub fn committed(&self) -> Index {
        self.committed
    }

    /// Highest index reported applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// Index of the last entry replaced by a snapshot (durable or pending).
    pub fn snapshot_index(&self) -> Result<Index, StorageError> {
        match &self.unstable.snapshot {
            Some(snapshot) => Ok(snapshot.meta.last_included.index),
            None => Ok(self.storage.first_index()?.prev()),
        }
    }

    /// The first index still held as an entry.
    pub fn first_index(&self) -> Result<Index, StorageError> {
        Ok(self.snapshot_index()?.next())
    }

    /// The last index in the log.
    pub fn last_index(&self) -> Index {
        self.unstable
            .offset
            .plus(self.unstable.entries.len() as u64)
            .prev()
    }

    /// The id of the last entry.
    pub fn last_log_id(&self) -> Result<LogId, StorageError> {
        let index = self.last_index();
        Ok(LogId::new(self.term(index)?, index))
    }

    /// The term of the entry at `index` (the snapshot's term at the snapshot index; term 0 at
    /// index 0).
    pub fn term(&self, index: Index) -> Result<Term, StorageError> {
        if index >= self.unstable.offset {
            let offset = (index.0 - self.unstable.offset.0) as usize;
            return self
                .unstable
                .entries
                .get(offset)
                .map(Entry::term)
                .ok_or(StorageError::Unavailable(index));
        }
        if let Some(snapshot) = &self.unstable.snapshot {
            let last = snapshot.meta.last_included;
            return match index.cmp(&last.index) {
                std::cmp::Ordering::Equal => Ok(last.term),
                _ => Err(StorageError::Compacted(index)),
            };
        }
        if index == Index(0) {
            return Ok(Term(0));
        }
        self.storage.term(index)
    }

    /// Whether the log holds `id`. Compacted or missing entries do not match.
    pub fn matches(&self, id: LogId) -> bool {
        self.term(id.index).is_ok_and(|term| term == id.term)
    }

    /// Whether [`RaftLog::entries`] with `max_bytes` would stop short of `high`: the entries in
    /// `low..high` hold more than `max_bytes`. Nothing is copied out: entries in memory are
    /// measured, stored ones by [`Storage::entries_size_bytes`].
    pub fn exceeds_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<bool, StorageError> {
        if low >= high {
            return Ok(false);
        }
        let mut bytes = 0u64;
        if low < self.unstable.offset {
            let stable_high = high.min(self.unstable.offset);
            bytes = self
                .storage
                .entries_size_bytes(low, stable_high, max_bytes)?;
            if bytes > max_bytes {
                return Ok(true);
            }
        }
        let unstable_low = low.max(self.unstable.offset);
        for index in unstable_low.0..high.0 {
            let entry = self
                .unstable
                .entries
                .get((index - self.unstable.offset.0) as usize)
                .ok_or(StorageError::Unavailable(Index(index)))?;
            bytes += entry.size_bytes();
            if bytes > max_bytes {
                return Ok(true);
            }
        }
        Ok(bytes > max_bytes)
    }

    /// Entries in `[low, high)`, up to `max_bytes` (at least one when the range is non-empty).
    pub fn entries(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low >= high {
            return Ok(Vec::new());
        }
        if high > self.last_index().next() {
            return Err(StorageError::Unavailable(high.prev()));
        }
        if low < self.first_index()? {
            return Err(StorageError::Compacted(low));
        }
        let mut out = Vec::new();
        let mut bytes = 0u64;
        if low < self.unstable.offset {
            let stable_high = high.min(self.unstable.offset);
            out = self.storage.entries(low, stable_high, max_bytes)?;
            bytes = out.iter().map(Entry::size_bytes).sum();
            let complete = out
                .last()
                .is_some_and(|entry| entry.index().next() == stable_high);
            if !complete {
                return Ok(out);
            }
        }
        let unstable_low = low.max(self.unstable.offset);
        for index in unstable_low.0..high.0 {
            let entry = &self.unstable.entries[(index - self.unstable.offset.0) as usize];
            bytes += entry.size_bytes();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    /// Appends `entries` (contiguous, starting at most one past the last index), replacing any
    /// suffix from the first entry's index on. Returns the new last index.
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) -> Index {
        let mut entries = entries.into_iter().peekable();
        let Some(first) = entries.peek() else {
            return self.last_index();
        };
        let first_index = first.index();
        assert!(
            first_index > self.committed,
            "invariant committed-entries-immutable: overwriting {first_index} below commit {}",
            self.committed
        );
        assert!(
            first_index <= self.last_index().next(),
            "invariant log-contiguous: append at {first_index} after last {}",
            self.last_index()
        );
        let unstable = &mut self.unstable;
        if first_index >= unstable.offset {
            unstable
                .entries
                .truncate((first_index.0 - unstable.offset.0) as usize);
        } else {
            // The stored suffix from `first_index` is replaced: the write that persists these
            // entries truncates it.
            unstable.entries.clear();
            unstable.offset = first_index;
        }
        unstable.handed_out_below = unstable.handed_out_below.min(first_index);
        unstable.entries.extend(entries);
        self.last_index()
    }

    /// The index of the first entry in `entries` that the log does not hold (a conflict or an
    /// entry beyond the end), or `None` when the log holds all of them.
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<Index> {
        entries
            .iter()
            .find(|entry| !self.matches(entry.id))
            .map(Entry::index)
    }

    /// For fast backtracking (thesis §5.3 optimisation): the last entry at or below `index`
    /// whose term is at most `term`. Compacted entries answer with the snapshot's id.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> Result<LogId, StorageError> {
        let mut index = index.min(self.last_index());
        let snapshot_index = self.snapshot_index()?;
        loop {
            let entry_term = self.term(index)?;
            if entry_term <= term || index <= snapshot_index {
                return Ok(LogId::new(entry_term, index));
            }
            index = index.prev();
        }
    }

    /// Advances the commit index to `index`, returning whether it moved; an index at or below
    /// the commit index changes nothing (commit never goes backwards).
    ///
    /// # Panics
    /// When `index` is past the last index: nothing commits that the log does not hold, so the
    /// caller computed it wrong. Input from the network is bounded before it gets here.
    pub fn commit_to(&mut self, index: Index) -> bool {
        let last = self.last_index();
        assert!(
            index <= last,
            "caller bug: commit_to({index}) past the last index {last}"
        );
        if index > self.committed {
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Records that the caller applied through `index`. Reporting the applied index again
    /// changes nothing.
    ///
    /// # Panics
    /// When `index` is beyond what was handed out for applying (the caller claims to have
    /// applied entries it never received), or below the applied index (its reports go
    /// backwards).
    pub fn applied_to(&mut self, index: Index) {
        assert!(
            index <= self.applying,
            "caller bug: on_applied({index}) beyond the last index handed out for applying ({})",
            self.applying
        );
        assert!(
            index >= self.applied,
            "caller bug: on_applied({index}) below the applied index {}: reports went backwards",
            self.applied
        );
        self.applied = index;
        while let Some(&(last, bytes)) = self.unapplied.front() {
            if last > self.applied {
                break;
            }
            self.unapplied.pop_front();
            self.unapplied_bytes -= bytes;
        }
    }

    /// Replaces the log by a snapshot received from the leader. The snapshot must be made
    /// durable before entries after it can be.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let last = snapshot.meta.last_included;
        assert!(
            last.index > self.committed,
            "invariant snapshot-restore-beyond-commit: {} <= {}",
            last.index,
            self.committed
        );
        self.unstable.entries.clear();
        self.unstable.offset = last.index.next();
        self.unstable.handed_out_below = last.index.next();
        self.unstable.snapshot = Some(snapshot);
        self.unstable.snapshot_handed_out = false;
        self.committed = last.index;
    }

    /// What still has to be given to the caller for persisting: a restored snapshot and
    /// entries not yet handed out. Marks them handed out.
    pub fn take_unpersisted(&mut self) -> (Option<Snapshot>, Vec<Entry>) {
        let unstable = &mut self.unstable;
        let snapshot = match (&unstable.snapshot, unstable.snapshot_handed_out) {
            (Some(snapshot), false) => {
                unstable.snapshot_handed_out = true;
                Some(snapshot.clone())
            }
            _ => None,
        };
        let from = (unstable.handed_out_below.0 - unstable.offset.0) as usize;
        let entries: Vec<Entry> = unstable.entries.range(from..).cloned().collect();
        unstable.handed_out_below = unstable.offset.plus(unstable.entries.len() as u64);
        (snapshot, entries)
    }

    /// Whether [`RaftLog::take_unpersisted`] would return something.
    pub fn has_unpersisted(&self) -> bool {
        let unstable = &self.unstable;
        (unstable.snapshot.is_some() && !unstable.snapshot_handed_out)
            || unstable.handed_out_below < unstable.offset.plus(unstable.entries.len() as u64)
    }

    /// The caller made entries through `id` durable. Ignored when the log no longer holds `id`
    /// in memory (it was overwritten after the write was handed out).
    pub fn stable_to(&mut self, id: LogId) {
        let unstable = &mut self.unstable;
        if id.index < unstable.offset {
            return;
        }
        let position = (id.index.0 - unstable.offset.0) as usize;
        let Some(entry) = unstable.entries.get(position) else {
            return;
        };
        if entry.term() != id.term || id.index >= unstable.handed_out_below {
            return;
        }
        unstable.entries.drain(..=position);
        unstable.offset = id.index.next();
    }

    /// The caller made the snapshot at `index` durable. Returns it, so it can be applied.
    pub fn stable_snapshot_to(&mut self, index: Index) -> Option<Snapshot> {
        let matches = self
            .unstable
            .snapshot
            .as_ref()
            .is_some_and(|snapshot| snapshot.meta.last_included.index == index);
        if matches && self.unstable.snapshot_handed_out {
            return self.unstable.snapshot.take();
        }
        None
    }

    /// The last index that is durable and part of this log.
    pub fn durable_index(&self) -> Index {
        if self.unstable.snapshot.is_some() {
            return self.applying.min(self.committed);
        }
        self.unstable.offset.prev()
    }

    /// Marks a restored snapshot as handed to the caller for applying.
    pub fn snapshot_applying(&mut self, index: Index) {
        assert!(
            index >= self.applying,
            "invariant apply-monotonic: snapshot {index} below applying {}",
            self.applying
        );
        self.applying = index;
    }

    /// Adds every broken invariant of the log window to `out` (see `Raft::invariant_violations`).
    /// Storage that cannot answer is not an invariant's fault: those checks are skipped.
    pub(crate) fn collect_violations(&self, out: &mut Violations) {
        let (applied, applying, committed) = (self.applied, self.applying, self.committed);
        let last = self.last_index();
        out.check(
            applied <= applying && applying <= committed && committed <= last,
            "log-cursors-ordered",
            || format!("applied {applied} <= applying {applying} <= committed {committed} <= last {last} fails"),
        );
        let unstable = &self.unstable;
        // Storage is asked once per question: the simulator runs this after every event.
        let stored_first = match &unstable.snapshot {
            Some(_) => None,
            None => self.storage.first_index().ok(),
        };
        let snapshot = match &unstable.snapshot {
            Some(snapshot) => Some(snapshot.meta.last_included.index),
            None => stored_first.map(Index::prev),
        };
        if let Some(snapshot) = snapshot {
            out.check(snapshot <= committed, "log-snapshot-committed", || {
                format!("snapshot index {snapshot} above committed {committed}")
            });
        }
        let end = unstable.offset.plus(unstable.entries.len() as u64);
        let misplaced = unstable
            .entries
            .iter()
            .zip(unstable.offset.0..)
            .find(|(entry, index)| entry.index().0 != *index);
        out.check(misplaced.is_none(), "log-unstable-contiguous", || {
            let (entry, index) = misplaced.expect("found");
            format!("unstable entry {} where index {index} belongs", entry.id)
        });
        let backwards = unstable
            .entries
            .iter()
            .zip(unstable.entries.iter().skip(1))
            .find(|(before, after)| after.term() < before.term());
        out.check(backwards.is_none(), "log-terms-ordered", || {
            let (before, after) = backwards.expect("found");
            format!("entry {} follows {}", after.id, before.id)
        });
        out.check(
            unstable.offset <= unstable.handed_out_below && unstable.handed_out_below <= end,
            "log-handed-out-within-unstable",
            || {
                format!(
                    "handed out below {} outside the unstable entries {}..{end}",
                    unstable.handed_out_below, unstable.offset
                )
            },
        );
        match &unstable.snapshot {
            Some(snapshot) => {
                let index = snapshot.meta.last_included.index;
                out.check(
                    index < unstable.offset,
                    "log-snapshot-before-unstable",
                    || {
                        format!(
                            "pending snapshot at {index}, unstable entries from {}",
                            unstable.offset
                        )
                    },
                );
            }
            None => {
                if let (Some(first), Ok(stored_last)) = (stored_first, self.storage.last_index()) {
                    out.check(
                        first <= unstable.offset && unstable.offset <= stored_last.next(),
                        "log-unstable-joins-storage",
                        || {
                            format!(
                                "unstable entries from {}, storage holds {first}..={stored_last}",
                                unstable.offset
                            )
                        },
                    );
                }
            }
        }
        let bytes: u64 = self.unapplied.iter().map(|&(_, bytes)| bytes).sum();
        out.check(
            bytes == self.unapplied_bytes,
            "log-unapplied-bytes-sum",
            || {
                format!(
                    "unapplied bytes {} but the batches hold {bytes}",
                    self.unapplied_bytes
                )
            },
        );
        let mut floor = applied;
        let out_of_place = self.unapplied.iter().find(|&&(batch_last, _)| {
            let misplaced = batch_last <= floor || batch_last > applying;
            floor = batch_last;
            misplaced
        });
        out.check(
            out_of_place.is_none(),
            "log-unapplied-batches-ordered",
            || {
                format!(
                    "unapplied batches {:?} not increasing within ({applied}, {applying}]",
                    self.unapplied
                )
            },
        );
    }

    /// The term of the newest entry held in memory (not yet durable), or of a snapshot
    /// received from the leader and not yet durable.
    pub(crate) fn newest_unstable_term(&self) -> Option<Term> {
        self.unstable
            .entries
            .back()
            .map(Entry::term)
            .or_else(|| Some(self.unstable.snapshot.as_ref()?.meta.last_included.term))
    }

    /// Committed, durable entries not yet handed out for applying, so that at most
    /// `unapplied_bytes_max` are handed out and not reported applied (one larger entry goes
    /// out alone); marks them handed out.
    pub fn take_committed(&mut self, unapplied_bytes_max: u64) -> Result<Vec<Entry>, StorageError> {
        if !self.has_committed_to_apply(unapplied_bytes_max) {
            return Ok(Vec::new());
        }
        let high = self.committed.min(self.durable_index()).next();
        let low = self.applying.next();
        let entries = self.entries(low, high, unapplied_bytes_max - self.unapplied_bytes)?;
        if let Some(last) = entries.last() {
            self.applying = last.index();
            let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
            self.unapplied.push_back((last.index(), bytes));
            self.unapplied_bytes += bytes;
        }
        Ok(entries)
    }

    /// Whether [`RaftLog::take_committed`] would return something.
    pub fn has_committed_to_apply(&self, unapplied_bytes_max: u64) -> bool {
        self.unstable.snapshot.is_none()
            && self.unapplied_bytes < unapplied_bytes_max
            && self.committed.min(self.durable_index()) > self.applying
    }
}

impl<S: Storage> RaftLog<S> {
    /// Feeds `hasher` the unstable tail and the cursors (for [`crate::Raft::hash_state`]);
    /// the stored entries are the caller's to hash, from its storage.
    pub fn hash_state<H: std::hash::Hasher>(&self, hasher: &mut H) {
        use std::hash::Hash;
        let unstable = &self.unstable;
        unstable
            .snapshot
            .as_ref()
            .map(|snapshot| (&snapshot.meta, &snapshot.data))
            .hash(hasher);
        unstable.snapshot_handed_out.hash(hasher);
        unstable.entries.hash(hasher);
        unstable.offset.hash(hasher);
        unstable.handed_out_below.hash(hasher);
        self.committed.hash(hasher);
        self.applying.hash(hasher);
        self.applied.hash(hasher);
        self.unapplied.hash(hasher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ready::PersistRequest;
    use crate::storage::MemStorage;
    use crate::types::{Configuration, EntryKind, NodeId};
    use bytes::Bytes;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            id: LogId::new(Term(term), Index(index)),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![index as u8; 10]),
        }
    }

    fn new_log() -> RaftLog<MemStorage> {
        let storage = MemStorage::new(Configuration::new([NodeId(1)]));
        RaftLog::new(storage, Index(0)).expect("memory storage")
    }

    /// Appends entries `1..=last` of term 1 to an empty `log` and makes them durable.
    fn append_durably(log: &mut RaftLog<MemStorage>, last: u64) {
        log.append((1..=last).map(|index| entry(1, index)));
        let (_, entries) = log.take_unpersisted();
        log.storage_mut().persist(PersistRequest {
            id: 0,
            snapshot: None,
            entries,
            hard_state: None,
        });
        log.stable_to(LogId::new(Term(1), Index(last)));
    }

    /// The names of the log's broken invariants.
    fn broken(log: &RaftLog<MemStorage>) -> Vec<&'static str> {
        let mut out = Violations::default();
        log.collect_violations(&mut out);
        out.into_vec().iter().map(|v| v.invariant).collect()
    }

    /// A log of 6 entries, 4 durable, committed through 4, applying through 3, applied through 2.
    fn busy_log() -> RaftLog<MemStorage> {
        let mut log = new_log();
        append_durably(&mut log, 4);
        log.append((5..=6).map(|index| entry(1, index)));
        log.commit_to(Index(4));
        let _ = log
            .take_committed(3 * entry(1, 1).size_bytes())
            .expect("readable");
        log.applied_to(Index(2));
        assert!(broken(&log).is_empty(), "a healthy log: {:?}", broken(&log));
        log
    }

    #[test]
    fn every_log_invariant_is_checked() {
        /// A way to break the log, named by the invariant it breaks.
        type Corruption = (&'static str, fn(&mut RaftLog<MemStorage>));
        let cases: [Corruption; 10] = [
            ("log-cursors-ordered", |log| log.applied = Index(4)),
            ("log-cursors-ordered", |log| log.committed = Index(7)),
            ("log-snapshot-committed", |log| {
                log.unstable.snapshot = Some(Snapshot {
                    meta: crate::types::SnapshotMeta {
                        last_included: LogId::new(Term(1), Index(5)),
                        configuration: Configuration::new([NodeId(1)]),
                    },
                    data: Bytes::new(),
                })
            }),
            ("log-unstable-contiguous", |log| {
                log.unstable.entries[1] = entry(1, 9)
            }),
            ("log-terms-ordered", |log| {
                log.unstable.entries[0] = entry(2, 5);
            }),
            ("log-handed-out-within-unstable", |log| {
                log.unstable.handed_out_below = Index(9)
            }),
            ("log-unstable-joins-storage", |log| {
                log.unstable.offset = Index(7);
                log.unstable.handed_out_below = Index(7);
                log.unstable.entries.clear();
            }),
            ("log-unapplied-bytes-sum", |log| log.unapplied_bytes += 1),
            ("log-unapplied-batches-ordered", |log| {
                log.unapplied.push_front((Index(1), 0))
            }),
            ("log-snapshot-before-unstable", |log| {
                log.committed = Index(6);
                log.unstable.snapshot = Some(Snapshot {
                    meta: crate::types::SnapshotMeta {
                        last_included: LogId::new(Term(1), Index(6)),
                        configuration: Configuration::new([NodeId(1)]),
                    },
                    data: Bytes::new(),
                })
            }),
        ];
        for (invariant, corrupt) in cases {
            let mut log = busy_log();
            corrupt(&mut log);
            let broken = broken(&log);
            assert!(broken.contains(&invariant), "{invariant}: broke {broken:?}");
        }
    }

    #[test]
    #[should_panic(expected = "caller bug: commit_to(i7) past the last index i6")]
    fn committing_past_the_last_index_is_a_caller_bug() {
        busy_log().commit_to(Index(7));
    }

    #[test]
    #[should_panic(
        expected = "caller bug: on_applied(i4) beyond the last index handed out for applying (i3)"
    )]
    fn applying_beyond_what_was_handed_out_is_a_caller_bug() {
        busy_log().applied_to(Index(4));
    }

    #[test]
    #[should_panic(
        expected = "caller bug: on_applied(i1) below the applied index i2: reports went backwards"
    )]
    fn applied_reports_going_backwards_are_a_caller_bug() {
        busy_log().applied_to(Index(1));
    }

    #[test]
    fn committing_at_or_below_the_commit_index_changes_nothing() {
        let mut log = busy_log();
        assert!(!log.commit_to(Index(3)));
        assert!(!log.commit_to(Index(4)));
        assert_eq!(log.committed(), Index(4));
        log.applied_to(Index(2));
        assert_eq!(
            log.applied(),
            Index(2),
            "reporting the applied index again is harmless"
        );
    }

    #[test]
    fn unstable_entries_become_stable_only_when_reported() {
        let mut log = new_log();
        log.append([entry(1, 1), entry(1, 2)]);
        assert_eq!(log.durable_index(), Index(0));
        let (_, handed) = log.take_unpersisted();
        assert_eq!(handed.len(), 2);
        assert!(!log.has_unpersisted());
        log.stable_to(LogId::new(Term(1), Index(1)));
        assert_eq!(log.durable_index(), Index(1));
        log.stable_to(LogId::new(Term(1), Index(2)));
        assert_eq!(log.durable_index(), Index(2));
    }

    #[test]
    fn exceeds_bytes_says_whether_entries_would_stop_short_across_stable_and_unstable() {
        let mut log = new_log();
        append_durably(&mut log, 4);
        log.append((5..=8).map(|index| entry(1, index)));
        let entry_bytes = entry(1, 1).size_bytes();
        for low in 1..=8 {
            for high in low..=9 {
                for max_bytes in [
                    0,
                    entry_bytes,
                    3 * entry_bytes,
                    3 * entry_bytes + 1,
                    100 * entry_bytes,
                ] {
                    let (low, high) = (Index(low), Index(high));
                    let fetched = log.entries(low, high, max_bytes).expect("held");
                    let stops_short = fetched.len() as u64 != high.0 - low.0;
                    let exceeds = log.exceeds_bytes(low, high, max_bytes).expect("held");
                    // `entries` always returns one entry, however large; past that they agree.
                    if fetched.len() > 1 || high.0 - low.0 > 1 {
                        assert_eq!(exceeds, stops_short, "{low:?}..{high:?} within {max_bytes}");
                    } else {
                        let bytes = fetched.first().map_or(0, Entry::size_bytes);
                        assert_eq!(exceeds, bytes > max_bytes, "{low:?}..{high:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn entries_handed_out_for_applying_are_bounded_until_reported_applied() {
        let mut log = new_log();
        append_durably(&mut log, 10);
        log.commit_to(Index(10));
        let entry_bytes = entry(1, 1).size_bytes();
        let budget = 3 * entry_bytes;
        let first = log.take_committed(budget).expect("readable");
        assert_eq!(first.len(), 3);
        assert!(!log.has_committed_to_apply(budget), "the budget is spent");
        assert!(log.take_committed(budget).expect("readable").is_empty());
        // Applying part of the batch frees nothing: budgets are returned per batch.
        log.applied_to(Index(2));
        assert!(!log.has_committed_to_apply(budget));
        log.applied_to(Index(3));
        let second = log.take_committed(budget).expect("readable");
        assert_eq!(second.first().map(Entry::index), Some(Index(4)));
        assert_eq!(second.len(), 3);
        // An entry larger than the whole budget still goes out, alone.
        log.applied_to(Index(6));
        let alone = log.take_committed(entry_bytes / 2).expect("readable");
        assert_eq!(alone.len(), 1);
        assert!(!log.has_committed_to_apply(entry_bytes / 2));
    }

    #[test]
    fn overwritten_entries_are_not_marked_stable() {
        let mut log = new_log();
        log.append([entry(1, 1), entry(1, 2)]);
        let _ = log.take_unpersisted();
        log.append([entry(2, 2)]);
        log.stable_to(LogId::new(Term(1), Index(2)));
        assert_eq!(log.durable_index(), Index(0));
        let (_, handed) = log.take_unpersisted();
        assert_eq!(handed, vec![entry(2, 2)]);
        log.stable_to(LogId::new(Term(2), Index(2)));
        assert_eq!(log.durable_index(), Index(2));
    }

    #[test]
    fn find_conflict_by_term_skips_higher_terms() {
        let mut log = new_log();
        log.append([
            entry(1, 1),
            entry(2, 2),
            entry(2, 3),
            entry(5, 4),
            entry(5, 5),
        ]);
        let hint = log
            .find_conflict_by_term(Index(5), Term(3))
            .expect("in memory");
        assert_eq!(hint, LogId::new(Term(2), Index(3)));
        let hint = log
            .find_conflict_by_term(Index(9), Term(9))
            .expect("in memory");
        assert_eq!(hint, LogId::new(Term(5), Index(5)));
        let hint = log
            .find_conflict_by_term(Index(5), Term(0))
            .expect("in memory");
        assert_eq!(hint, LogId::new(Term(0), Index(0)));
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            /// Append `count` entries of `term` replacing the suffix from `back` entries before
            /// the end (clamped so committed entries are never replaced).
            Append {
                back: u64,
                count: u64,
                term_bump: bool,
            },
            /// Hand out what is unpersisted as one write.
            HandOut,
            /// Complete the oldest outstanding write.
            Complete,
            /// Commit up to `fraction` of the durable log.
            Commit { fraction: u8 },
            /// Compact through the applied index.
            Compact,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u64..4, 1u64..4, any::<bool>()).prop_map(|(back, count, term_bump)| Op::Append {
                    back,
                    count,
                    term_bump
                }),
                Just(Op::HandOut),
                Just(Op::Complete),
                (0u8..=100).prop_map(|fraction| Op::Commit { fraction }),
                Just(Op::Compact),
            ]
        }

        proptest! {
            /// The log view (storage + unstable tail) always equals a plain vector of entries,
            /// whatever the interleaving of appends, overwrites, writes and compactions.
            #[test]
            fn log_matches_vector_model(ops in proptest::collection::vec(op(), 1..80)) {
                let mut log = new_log();
                let mut model: Vec<Entry> = Vec::new();
                let mut term = 1u64;
                let mut outstanding: VecDeque<PersistRequest> = VecDeque::new();
                for op in ops {
                    match op {
                        Op::Append { back, count, term_bump } => {
                            // Log matching (§5.3): one (term, index) has one prefix, so an
                            // overwrite always comes from a leader of a newer term.
                            if term_bump || back > 0 { term += 1; }
                            let last = model.len() as u64;
                            let floor = log.committed().0;
                            let first = last.saturating_sub(back).max(floor) + 1;
                            let entries: Vec<Entry> = (first..first + count).map(|i| entry(term, i)).collect();
                            log.append(entries.iter().cloned());
                            model.truncate((first - 1) as usize);
                            model.extend(entries);
                        }
                        Op::HandOut => {
                            let (snapshot, entries) = log.take_unpersisted();
                            prop_assert!(snapshot.is_none());
                            if !entries.is_empty() {
                                outstanding.push_back(PersistRequest { id: 0, snapshot: None, entries, hard_state: None });
                            }
                        }
                        Op::Complete => {
                            if let Some(request) = outstanding.pop_front() {
                                log.storage_mut().persist(request.clone());
                                if let Some(last) = request.entries.last() {
                                    log.stable_to(last.id);
                                }
                            }
                        }
                        Op::Commit { fraction } => {
                            let durable = log.durable_index().0;
                            log.commit_to(Index(durable * fraction as u64 / 100));
                            let entries = log.take_committed(u64::MAX).expect("readable");
                            if let Some(last) = entries.last() {
                                log.applied_to(last.index());
                            }
                        }
                        Op::Compact => {
                            let applied = log.applied();
                            if applied > log.snapshot_index().expect("memory") {
                                let term = log.term(applied).expect("applied entries readable");
                                let snapshot = Snapshot {
                                    meta: crate::types::SnapshotMeta {
                                        last_included: LogId::new(term, applied),
                                        configuration: Configuration::new([NodeId(1)]),
                                    },
                                    data: Bytes::new(),
                                };
                                log.storage_mut().persist(PersistRequest { id: 0, snapshot: Some(snapshot), entries: vec![], hard_state: None });
                            }
                        }
                    }
                    // Invariants after every operation: the log's own self-check, then the model.
                    let mut violations = crate::invariant::Violations::default();
                    log.collect_violations(&mut violations);
                    let violations = violations.into_vec();
                    prop_assert!(violations.is_empty(), "{:?}", violations);
                    prop_assert_eq!(log.last_index().0, model.len() as u64);
                    prop_assert!(log.committed() <= log.last_index());
                    prop_assert!(log.applied() <= log.committed());
                    prop_assert!(log.durable_index() <= log.last_index());
                    let first = log.first_index().expect("memory");
                    let view = log.entries(first, log.last_index().next(), u64::MAX).expect("readable");
                    prop_assert_eq!(&view[..], &model[(first.0 - 1) as usize..]);
                    for e in &model[(first.0 - 1) as usize..] {
                        prop_assert_eq!(log.term(e.index()).expect("readable"), e.term());
                    }
                }
            }
        }
    }
}
