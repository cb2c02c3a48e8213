//! The writer's view of the log while it encodes a batch: the durable index plus what the
//! batch has added so far, without copying the index. It answers the two questions the writer
//! must settle before anything reaches the disk: does an entry leave a gap, and does a snapshot
//! agree with the log at its index.

use raft_core::{Index, LogId, Term};

use crate::index::LogIndex;

/// The log as it will be once the batch being encoded is durable.
#[derive(Debug)]
pub(crate) struct PendingView<'a> {
    durable: &'a LogIndex,
    base: LogId,
    /// Durable entries at or above this index are superseded by the batch.
    durable_cut: Index,
    /// Index of `pending[0]`.
    pending_first: Index,
    /// Terms of the entries the batch appended that are still live.
    pending: Vec<Term>,
}

impl<'a> PendingView<'a> {
    /// The view before the batch adds anything.
    pub(crate) fn new(durable: &'a LogIndex) -> PendingView<'a> {
        let base = durable.base();
        PendingView {
            durable,
            base,
            durable_cut: Index(u64::MAX),
            pending_first: Index(0),
            pending: Vec::new(),
        }
    }

    /// The last index of the log.
    pub(crate) fn last_index(&self) -> Index {
        if !self.pending.is_empty() {
            return self.pending_first.plus(self.pending.len() as u64 - 1);
        }
        let durable_last = self.durable.last_index().min(self.durable_cut.prev());
        durable_last.max(self.base.index)
    }

    /// The term of the entry at `index`, if the log has it (the base answers for its own).
    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        if index <= self.base.index || index > self.last_index() {
            return None;
        }
        if !self.pending.is_empty() && index >= self.pending_first {
            return Some(self.pending[(index.0 - self.pending_first.0) as usize]);
        }
        self.durable.term(index)
    }

    /// Adds an entry; returns whether it must be written (entries the snapshot covers need
    /// not be), or an error if it would leave a gap.
    pub(crate) fn append(&mut self, id: LogId) -> Result<bool, String> {
        let index = id.index;
        if index <= self.base.index {
            return Ok(false);
        }
        let last = self.last_index();
        if index > last.next() {
            return Err(format!(
                "entry {id} leaves a gap after the last entry {last}"
            ));
        }
        if !self.pending.is_empty() && index >= self.pending_first {
            self.pending
                .truncate((index.0 - self.pending_first.0) as usize);
        } else {
            self.pending.clear();
            self.pending_first = index;
            self.durable_cut = self.durable_cut.min(index);
        }
        self.pending.push(id.term);
        Ok(true)
    }

    /// Applies a snapshot covering through `id`. Returns `None` for a snapshot not newer than
    /// the base (neither written nor recorded), else whether the log disagreed with it at its
    /// index and is discarded (Raft paper §7).
    pub(crate) fn apply_snapshot(&mut self, id: LogId) -> Option<bool> {
        if id.index <= self.base.index {
            return None;
        }
        let discard = self.term(id.index) != Some(id.term);
        if discard {
            self.pending.clear();
            self.durable_cut = Index(0);
        } else if !self.pending.is_empty() && self.pending_first <= id.index {
            let covered = (id.index.0 + 1 - self.pending_first.0) as usize;
            self.pending.drain(..covered);
            self.pending_first = id.index.next();
        }
        self.base = id;
        Some(discard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Location;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(Term(term), Index(index))
    }

    fn durable(last: u64) -> LogIndex {
        let mut log = LogIndex::new(LogId::default());
        for index in 1..=last {
            let location = Location {
                segment: 1,
                offset: index as u32,
                payload_len: 1,
            };
            log.append(id(1, index), location).expect("contiguous");
        }
        log
    }

    #[test]
    fn pending_entries_replace_durable_suffix() {
        let log = durable(5);
        let mut view = PendingView::new(&log);
        assert_eq!(view.append(id(2, 4)), Ok(true));
        assert_eq!(view.last_index(), Index(4));
        assert_eq!(view.term(Index(3)), Some(Term(1)));
        assert_eq!(view.term(Index(4)), Some(Term(2)));
        assert_eq!(view.term(Index(5)), None);
        assert!(view.append(id(2, 6)).is_err());
        assert_eq!(view.append(id(2, 5)), Ok(true));
        assert_eq!(view.append(id(3, 2)), Ok(true));
        assert_eq!(view.last_index(), Index(2));
        assert_eq!(view.term(Index(1)), Some(Term(1)));
    }

    #[test]
    fn snapshot_keeps_or_discards_the_log() {
        let log = durable(5);
        let mut view = PendingView::new(&log);
        assert_eq!(view.apply_snapshot(id(1, 3)), Some(false));
        assert_eq!(
            view.last_index(),
            Index(5),
            "agreeing snapshot keeps the suffix"
        );
        assert_eq!(view.apply_snapshot(id(1, 2)), None, "stale");
        assert_eq!(view.append(id(1, 2)), Ok(false), "covered by the snapshot");
        assert_eq!(view.apply_snapshot(id(4, 8)), Some(true));
        assert_eq!(view.last_index(), Index(8));
        assert_eq!(
            view.term(Index(5)),
            None,
            "disagreeing snapshot discards the log"
        );
        assert!(view.append(id(4, 10)).is_err());
        assert_eq!(view.append(id(4, 9)), Ok(true));
    }
}
