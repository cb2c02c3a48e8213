//! The shape of the logs: a leader only appends in its term (§5.3, Leader Append-Only), and
//! every `LogId` has one content and one predecessor on every peer (§5.3, Log Matching).

use std::collections::BTreeMap;

use raft_core::{Entry, EntryKind, Index, LogId, NodeId, Term};

use super::{violated, Check};
use crate::trace::hash_bytes;

#[derive(Clone, Copy, PartialEq, Eq)]
struct EntryFacts {
    content: u64,
    previous_term: Option<Term>,
    first_seen_on: NodeId,
}

/// A leader never overwrites or deletes entries in its log during its term (§5.3,
/// Leader Append-Only): its writes only ever append after what it wrote before.
#[derive(Default)]
pub(crate) struct LeaderAppendOnly {
    /// Per peer: (incarnation, term, last index written while leader).
    written: BTreeMap<NodeId, (u64, Term, Index)>,
}

impl LeaderAppendOnly {
    pub(crate) fn on_write(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        (term, is_leader): (Term, bool),
        entries: &[Entry],
    ) -> Check {
        if !is_leader {
            self.written.remove(&peer);
            return Ok(());
        }
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if let Some(&(seen_incarnation, seen_term, seen_last)) = self.written.get(&peer) {
            if (seen_incarnation, seen_term) == (incarnation, term) && first.index() <= seen_last {
                return violated(
                    "leader-append-only",
                    format!(
                        "leader {peer} of {term} rewrites {} after writing through {seen_last}",
                        first.id
                    ),
                );
            }
        }
        self.written.insert(peer, (incarnation, term, last.index()));
        Ok(())
    }
}

/// Every entry that reaches any peer's log has one content and one predecessor per `LogId`
/// (§5.3, Log Matching; the predecessor check makes it hold for whole prefixes by induction).
#[derive(Default)]
pub(crate) struct LogMatching {
    entries: BTreeMap<(Index, Term), EntryFacts>,
}

impl LogMatching {
    /// Records entries a peer is about to make durable; `previous` is the id of the entry
    /// before the first one in that peer's log, when it is known (not compacted).
    pub(crate) fn record(
        &mut self,
        peer: NodeId,
        previous: Option<LogId>,
        entries: &[Entry],
    ) -> Check {
        let mut previous = previous;
        for entry in entries {
            if let Some(previous) = previous {
                if previous.index.next() != entry.index() {
                    return violated(
                        "log-contiguous",
                        format!("{peer} persists {} right after {previous}", entry.id),
                    );
                }
            }
            let content = content_hash(entry);
            let facts = EntryFacts {
                content,
                previous_term: previous.map(|previous| previous.term),
                first_seen_on: peer,
            };
            let known = *self
                .entries
                .entry((entry.index(), entry.term()))
                .or_insert(facts);
            if known.content != content {
                return violated(
                    "log-matching",
                    format!(
                        "{peer} holds {} with other content than {} had",
                        entry.id, known.first_seen_on
                    ),
                );
            }
            if let (Some(known_term), Some(term)) = (known.previous_term, facts.previous_term) {
                if known_term != term {
                    return violated(
                        "log-matching",
                        format!(
                            "{peer} holds {} after an entry of t{}, {} had it after t{}",
                            entry.id, term.0, known.first_seen_on, known_term.0
                        ),
                    );
                }
            }
            previous = Some(entry.id);
        }
        Ok(())
    }

    /// The content hash of the entry first recorded at `id`.
    pub(crate) fn content(&self, id: LogId) -> Option<u64> {
        self.entries
            .get(&(id.index, id.term))
            .map(|facts| facts.content)
    }

    /// Distinct entries seen.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

pub(super) fn content_hash(entry: &Entry) -> u64 {
    let kind = match entry.kind {
        EntryKind::Normal => 1,
        EntryKind::Noop => 2,
        EntryKind::Configuration => 3,
    };
    hash_bytes(&entry.data) ^ kind
}

#[cfg(test)]
mod tests {
    use raft_core::{Index, LogId, NodeId, Term};

    use super::super::test_entry as entry;
    use super::*;

    #[test]
    fn log_matching_catches_content_and_predecessor_conflicts() {
        let mut checker = LogMatching::default();
        let start = Some(LogId::default());
        assert!(checker
            .record(NodeId(1), start, &[entry(1, 1, b"a"), entry(1, 2, b"b")])
            .is_ok());
        assert!(checker
            .record(
                NodeId(2),
                Some(LogId::new(Term(1), Index(1))),
                &[entry(1, 2, b"b")]
            )
            .is_ok());
        assert!(checker
            .record(NodeId(3), None, &[entry(1, 2, b"X")])
            .is_err());
        assert!(checker
            .record(
                NodeId(3),
                Some(LogId::new(Term(0), Index(1))),
                &[entry(1, 2, b"b")]
            )
            .is_err());
    }
}
