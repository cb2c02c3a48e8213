//! The in-memory index of the live log: where each entry's record sits, the term of every
//! entry, and a bounded cache of the newest entries.
//!
//! ```text
//!  base (snapshot) │ first ............................................ last
//!                  │ locations: (offset, payload_len) per entry    (8 bytes an entry)
//!                  │ term_runs:    [(first index, term)]           (one per term change)
//!                  │ segment_runs: [(first index, segment)]        (one per segment)
//!                  │                               cache: the newest entries' bytes
//!                  │ configurations: {index: Configuration}   (configuration entries only)
//! ```
//!
//! Replaying the records of the segments in write order through [`LogIndex::append`] and
//! [`LogIndex::apply_snapshot`], starting from the newest snapshot, rebuilds exactly the log
//! that was written: an entry at an index that is already present replaces the suffix from
//! there (a follower overwriting a conflicting suffix), so truncation needs no record of its
//! own and files are only ever appended to.

use std::collections::{BTreeMap, VecDeque};

use raft_core::{Configuration, Entry, Index, LogId, Term};

/// Where an entry's record is: frame offset within its segment and payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// Sequence number of the segment.
    pub(crate) segment: u64,
    /// Offset of the frame header within the segment.
    pub(crate) offset: u32,
    /// Length of the frame's payload.
    pub(crate) payload_len: u32,
}

/// First index of a run of consecutive entries sharing a value.
type Runs<T> = VecDeque<(Index, T)>;

/// The live log's entries, as positions in segment files.
#[derive(Debug)]
pub(crate) struct LogIndex {
    /// The snapshot the log follows.
    base: LogId,
    /// Invariant: `locations[k]` describes the entry at `base.index + 1 + k`.
    locations: VecDeque<(u32, u32)>,
    /// Invariant: starts strictly increase, the first start is the first index when the log
    /// is non-empty, and every start is within the log.
    term_runs: Runs<Term>,
    /// Same invariant as `term_runs`; segments are non-decreasing along the log.
    segment_runs: Runs<u64>,
}

impl LogIndex {
    /// An empty log that follows the snapshot `base`.
    pub(crate) fn new(base: LogId) -> LogIndex {
        LogIndex {
            base,
            locations: VecDeque::new(),
            term_runs: VecDeque::new(),
            segment_runs: VecDeque::new(),
        }
    }

    /// The snapshot the log follows.
    pub(crate) fn base(&self) -> LogId {
        self.base
    }

    /// Index of the first live entry (base + 1, also when the log is empty).
    pub(crate) fn first_index(&self) -> Index {
        self.base.index.next()
    }

    /// Index of the last live entry, or the base index when there is none.
    pub(crate) fn last_index(&self) -> Index {
        self.base.index.plus(self.locations.len() as u64)
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> u64 {
        self.locations.len() as u64
    }

    /// The term of the entry at `index`, or of the base if `index` is the base's index.
    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        self.offset_of(index)?;
        Some(run_value(&self.term_runs, index))
    }

    /// The length of the record payload of the entry at `index`.
    pub(crate) fn payload_len(&self, index: Index) -> Option<u32> {
        let offset = self.offset_of(index)?;
        Some(self.locations[offset].1)
    }

    /// Where the entry at `index` is stored.
    pub(crate) fn location(&self, index: Index) -> Option<Location> {
        let offset = self.offset_of(index)?;
        let (frame_offset, payload_len) = self.locations[offset];
        Some(Location {
            segment: run_value(&self.segment_runs, index),
            offset: frame_offset,
            payload_len,
        })
    }

    /// The segment holding the first live entry, if there is one. Every older segment holds
    /// only records the snapshot or later records have superseded.
    pub(crate) fn first_segment(&self) -> Option<u64> {
        self.segment_runs.front().map(|&(_, segment)| segment)
    }

    fn offset_of(&self, index: Index) -> Option<usize> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        (offset < self.locations.len() as u64).then_some(offset as usize)
    }

    fn clear_entries(&mut self) {
        self.locations.clear();
        self.term_runs.clear();
        self.segment_runs.clear();
    }

    /// Records that the entry `id` is stored at `location`, replacing any entries from its
    /// index on. An entry at or below the base was written before the snapshot was taken
    /// (met only when replaying): the snapshot covers it, but writing it cut off every entry
    /// after it, so all entries go. An entry that would leave a gap is refused.
    pub(crate) fn append(&mut self, id: LogId, location: Location) -> Result<(), String> {
        let index = id.index;
        if index <= self.base.index {
            self.clear_entries();
            return Ok(());
        }
        let keep = index.0 - self.first_index().0;
        if keep > self.locations.len() as u64 {
            return Err(format!(
                "entry {id} leaves a gap after the last entry {}",
                self.last_index()
            ));
        }
        self.locations.truncate(keep as usize);
        truncate_runs(&mut self.term_runs, index);
        truncate_runs(&mut self.segment_runs, index);
        self.locations
            .push_back((location.offset, location.payload_len));
        push_run(&mut self.term_runs, index, id.term);
        push_run(&mut self.segment_runs, index, location.segment);
        Ok(())
    }

    /// Applies a durable snapshot covering through `id`. With `discard` every entry goes
    /// (the log disagreed with the snapshot, Raft paper §7); otherwise the entries it covers
    /// go and the rest follow it. A snapshot at or below the base (met only when replaying)
    /// changes nothing but the discarding.
    pub(crate) fn apply_snapshot(&mut self, id: LogId, discard: bool) {
        if discard {
            self.clear_entries();
        } else if id.index > self.base.index {
            assert_eq!(
                self.term(id.index),
                Some(id.term),
                "LogIndex::apply_snapshot: a snapshot that keeps the log agrees with it"
            );
            let covered = (id.index.0 - self.base.index.0) as usize;
            self.locations.drain(..covered);
            let first = id.index.next();
            drop_runs_before(&mut self.term_runs, first, self.locations.is_empty());
            drop_runs_before(&mut self.segment_runs, first, self.locations.is_empty());
        }
        if id.index > self.base.index {
            self.base = id;
        }
    }

    /// How many live entries each segment holds (segments without one are left out).
    pub(crate) fn live_entries_by_segment(&self) -> BTreeMap<u64, u64> {
        let end = self.last_index().next();
        let mut counts = BTreeMap::new();
        for (position, &(start, segment)) in self.segment_runs.iter().enumerate() {
            let run_end = self
                .segment_runs
                .get(position + 1)
                .map_or(end, |&(next, _)| next);
            *counts.entry(segment).or_insert(0) += run_end.0 - start.0;
        }
        assert_eq!(
            counts.values().sum::<u64>(),
            self.len(),
            "LogIndex: segment runs cover every live entry once"
        );
        counts
    }

    /// Approximate heap bytes used.
    pub(crate) fn heap_bytes(&self) -> u64 {
        (self.locations.capacity() * 8
            + (self.term_runs.capacity() + self.segment_runs.capacity()) * 16) as u64
    }
}

fn run_value<T: Copy>(runs: &Runs<T>, index: Index) -> T {
    let position = runs.partition_point(|&(start, _)| start <= index);
    assert!(position > 0, "LogIndex: runs cover every live index");
    runs[position - 1].1
}

fn truncate_runs<T>(runs: &mut Runs<T>, from: Index) {
    while runs.back().is_some_and(|&(start, _)| start >= from) {
        runs.pop_back();
    }
}

fn push_run<T: PartialEq + Copy>(runs: &mut Runs<T>, index: Index, value: T) {
    if runs.back().map(|&(_, last)| last) != Some(value) {
        runs.push_back((index, value));
    }
}

fn drop_runs_before<T>(runs: &mut Runs<T>, first: Index, log_empty: bool) {
    if log_empty {
        runs.clear();
        return;
    }
    while runs.len() >= 2 && runs[1].0 <= first {
        runs.pop_front();
    }
    if let Some(front) = runs.front_mut() {
        front.0 = front.0.max(first);
    }
}

/// The configuration entries of the live log, decoded, so that
/// [`raft_core::Storage::initial_state`] can name the configuration in effect (the latest
/// one, thesis §4.1) and the ones before it without reading the log back. Updated alongside
/// [`LogIndex`], by the same records in the same order: a replaced suffix takes its
/// configurations with it, and a snapshot drops those it covers (its own metadata describes
/// the configuration as of its index). Membership changes are rare, so this stays small.
#[derive(Debug, Default)]
pub(crate) struct ConfigurationIndex {
    /// Invariant: every key is a live entry's index, above the log's base.
    entries: BTreeMap<Index, Configuration>,
}

impl ConfigurationIndex {
    /// The entry at `index` was appended to a log following `base` (after
    /// [`LogIndex::append`] accepted it); `configuration` is its decoded data when it is a
    /// configuration entry.
    pub(crate) fn append(
        &mut self,
        base: Index,
        index: Index,
        configuration: Option<Configuration>,
    ) {
        if index <= base {
            // As in `LogIndex::append`: every entry goes.
            self.entries.clear();
            return;
        }
        self.entries.split_off(&index);
        if let Some(configuration) = configuration {
            self.entries.insert(index, configuration);
        }
    }

    /// A snapshot through `id` was applied, as in [`LogIndex::apply_snapshot`].
    pub(crate) fn apply_snapshot(&mut self, id: LogId, discard: bool) {
        if discard {
            self.entries.clear();
        } else {
            self.entries = self.entries.split_off(&id.index.next());
        }
    }

    /// The latest configuration entry's configuration, if the live log holds one.
    pub(crate) fn latest(&self) -> Option<&Configuration> {
        self.entries.values().next_back()
    }

    /// Every configuration entry, oldest first.
    pub(crate) fn to_vec(&self) -> Vec<(Index, Configuration)> {
        self.entries
            .iter()
            .map(|(&index, configuration)| (index, configuration.clone()))
            .collect()
    }
}

/// The newest entries, kept in memory so replication to followers that are close behind
/// reads no file. Bounded by the bytes of the entries' payloads.
#[derive(Debug)]
pub(crate) struct TailCache {
    entries: VecDeque<Entry>,
    bytes: u64,
    bytes_max: u64,
}

impl TailCache {
    /// An empty cache holding at most `bytes_max` bytes of entries.
    pub(crate) fn new(bytes_max: u64) -> TailCache {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// The cached entry at `index`.
    pub(crate) fn get(&self, index: Index) -> Option<&Entry> {
        let first = self.entries.front()?.index();
        let offset = index.0.checked_sub(first.0)?;
        self.entries.get(offset as usize)
    }

    /// Adds the newest entry, replacing cached entries from its index on.
    pub(crate) fn push(&mut self, entry: Entry) {
        if self.bytes_max == 0 {
            return;
        }
        let index = entry.index();
        while self
            .entries
            .back()
            .is_some_and(|last| last.index() >= index)
        {
            self.pop_back();
        }
        if self
            .entries
            .back()
            .is_some_and(|last| last.index().next() != index)
        {
            self.clear();
        }
        self.bytes += entry.size_bytes();
        self.entries.push_back(entry);
        while self.bytes > self.bytes_max {
            self.pop_front();
        }
    }

    /// Forgets entries at or below `index`, returning them (for the caller to free where it
    /// costs no one).
    pub(crate) fn take_through(&mut self, index: Index) -> VecDeque<Entry> {
        let covered = self
            .entries
            .iter()
            .take_while(|entry| entry.index() <= index)
            .count();
        let kept = self.entries.split_off(covered);
        let taken = std::mem::replace(&mut self.entries, kept);
        self.bytes -= taken.iter().map(Entry::size_bytes).sum::<u64>();
        taken
    }

    /// Forgets every entry, returning them.
    pub(crate) fn take_all(&mut self) -> VecDeque<Entry> {
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Bytes of entries held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.size_bytes();
        }
    }

    fn pop_back(&mut self) {
        if let Some(entry) = self.entries.pop_back() {
            self.bytes -= entry.size_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft_core::EntryKind;

    fn at(segment: u64, offset: u32) -> Location {
        Location {
            segment,
            offset,
            payload_len: 10,
        }
    }

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(Term(term), Index(index))
    }

    #[test]
    fn append_override_and_compact() {
        let mut log = LogIndex::new(LogId::default());
        for index in 1..=5 {
            log.append(id(1, index), at(1, index as u32 * 100))
                .expect("contiguous");
        }
        log.append(id(2, 4), at(2, 40)).expect("overrides 4 and 5");
        assert_eq!(log.last_index(), Index(4));
        assert_eq!(log.term(Index(3)), Some(Term(1)));
        assert_eq!(log.term(Index(4)), Some(Term(2)));
        assert_eq!(log.location(Index(4)), Some(at(2, 40)));
        assert_eq!(log.location(Index(3)), Some(at(1, 300)));
        assert!(log.append(id(2, 6), at(2, 50)).is_err(), "gap refused");
        log.apply_snapshot(id(1, 3), false);
        assert_eq!(log.first_index(), Index(4));
        assert_eq!(log.first_segment(), Some(2));
        assert_eq!(
            log.term(Index(3)),
            Some(Term(1)),
            "base answers its own term"
        );
        assert_eq!(log.term(Index(2)), None);
        log.apply_snapshot(id(1, 2), false);
        assert_eq!(
            (log.base(), log.len()),
            (id(1, 3), 1),
            "older snapshot changes nothing"
        );
        log.apply_snapshot(id(5, 9), true);
        assert_eq!((log.first_index(), log.last_index()), (Index(10), Index(9)));
        assert!(
            log.append(id(5, 11), at(3, 0)).is_err(),
            "gap after the snapshot refused"
        );
        log.append(id(5, 10), at(3, 0))
            .expect("follows the snapshot");
        assert_eq!(log.first_segment(), Some(3));
    }

    #[test]
    fn replay_below_the_base_cuts_or_discards_what_followed() {
        let mut log = LogIndex::new(id(2, 10));
        for index in 11..=14 {
            log.append(id(1, index), at(1, index as u32))
                .expect("contiguous");
        }
        log.append(id(2, 9), at(2, 0))
            .expect("covered by the snapshot");
        assert_eq!(
            log.len(),
            0,
            "an entry written below the base cut what followed it"
        );
        log.append(id(2, 11), at(2, 20)).expect("follows the base");
        log.apply_snapshot(id(2, 5), false);
        assert_eq!(log.len(), 1, "an older compaction keeps the log");
        log.apply_snapshot(id(2, 5), true);
        assert_eq!(
            (log.base(), log.len()),
            (id(2, 10), 0),
            "an older install discards it"
        );
    }

    #[test]
    fn cache_follows_overrides_and_bounds() {
        let entry = |term: u64, index: u64| Entry {
            id: id(term, index),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0u8; 76]),
        };
        let mut cache = TailCache::new(300);
        for index in 1..=3 {
            cache.push(entry(1, index));
        }
        assert_eq!(cache.bytes(), 300);
        cache.push(entry(2, 3));
        assert_eq!(cache.get(Index(3)).map(Entry::term), Some(Term(2)));
        cache.push(entry(2, 4));
        assert_eq!(cache.get(Index(1)), None, "evicted by the bound");
        assert_eq!(cache.bytes(), 300);
        cache.push(entry(3, 9));
        assert_eq!(cache.get(Index(4)), None, "a jump forgets the old run");
        cache.push(entry(3, 10));
        let taken = cache.take_through(Index(9));
        assert_eq!(
            taken.iter().map(Entry::index).collect::<Vec<_>>(),
            [Index(9)]
        );
        assert_eq!(cache.bytes(), 100, "the entry after the cut is kept");
        assert_eq!(cache.get(Index(10)).map(Entry::term), Some(Term(3)));
        assert_eq!(cache.take_all().len(), 1);
        assert_eq!(cache.bytes(), 0);
    }
}
