//! What is committed stays committed: a committed index never changes term (§5.4.3), it was
//! on a majority of the voters' disks when first counted (§5.3), and every new leader holds it
//! (§5.4, Leader Completeness).

use std::collections::{BTreeMap, BTreeSet};

use raft_core::{Configuration, Index, LogId, NodeId, Raft, Storage, StorageError, Term};

use super::log::content_hash;
use super::{violated, Check};

/// What is known committed: the term at every index any peer has counted as committed. Once
/// committed, an index never holds another entry (State Machine Safety, §5.4.3).
#[derive(Default)]
pub(crate) struct CommittedEntries {
    terms: BTreeMap<Index, Term>,
    /// Per peer: (incarnation, commit index already scanned).
    scanned: BTreeMap<NodeId, (u64, Index)>,
    max: Index,
    /// Indexes learned committed since the last [`CommittedEntries::take_fresh`], with the
    /// configuration in effect on the peer that first counted each committed.
    fresh: Vec<(LogId, Configuration)>,
}

impl CommittedEntries {
    /// Scans the part of `node`'s log that became committed since the last call.
    pub(crate) fn observe<S: Storage>(&mut self, node: &Raft<S>, incarnation: u64) -> Check {
        let peer = node.id();
        let commit = node.commit_index();
        let scanned = self.scanned.entry(peer).or_insert((incarnation, Index(0)));
        if scanned.0 != incarnation {
            *scanned = (incarnation, Index(0));
        }
        if commit <= scanned.1 {
            return Ok(());
        }
        let from = scanned.1.next();
        scanned.1 = commit;
        for index in from.0..=commit.0 {
            // Compacted entries were checked when they were committed.
            if let Ok(term) = node.term_at(Index(index)) {
                self.record(peer, LogId::new(term, Index(index)), node.configuration())?;
            }
        }
        Ok(())
    }

    /// Records that `id` is committed, as `peer` knows, whose configuration in effect is
    /// `configuration`.
    pub(crate) fn record(
        &mut self,
        peer: NodeId,
        id: LogId,
        configuration: &Configuration,
    ) -> Check {
        if id.index == Index(0) {
            return Ok(());
        }
        let known = *self.terms.entry(id.index).or_insert_with(|| {
            self.fresh.push((id, configuration.clone()));
            id.term
        });
        if known != id.term {
            return violated(
                "committed-entry-stable",
                format!(
                    "{peer} has {id} committed, but t{} was committed at that index before",
                    known.0
                ),
            );
        }
        self.max = self.max.max(id.index);
        Ok(())
    }

    /// The highest index known committed.
    pub(crate) fn max(&self) -> Index {
        self.max
    }

    /// Entries that became known committed since the last call, with the configuration of
    /// the peer that first counted each.
    pub(crate) fn take_fresh(&mut self) -> Vec<(LogId, Configuration)> {
        std::mem::take(&mut self.fresh)
    }

    /// Committed entries of terms before `term` above `floor`.
    fn before_term(&self, term: Term, floor: Index) -> impl Iterator<Item = (Index, Term)> + '_ {
        self.terms
            .range(floor.next()..)
            .map(|(&index, &entry_term)| (index, entry_term))
            .filter(move |&(_, entry_term)| entry_term < term)
    }
}

/// An entry is committed only once a majority of voters hold it durably (§5.3: "replicated it
/// on a majority"), so no combination of crashes can lose it. Checked the moment any peer
/// first counts it committed — that peer is the leader that committed it, and `configuration`
/// its configuration in effect: a majority of its voters and, while it is joint, of its
/// outgoing voters too (thesis §4.3). Learners' and other peers' disks do not count. (When the
/// commit let the leader leave a joint configuration in the same step, `configuration` is
/// C_new, whose voters are the joint configuration's incoming ones: the check is weaker than
/// the rule the leader applied, never stronger.) A disk holding the entry must give back the
/// content first written at `id` (`content`, from [`LogMatching::content`]) through
/// [`Storage::entries`], which reads a write-ahead log's segment files.
///
/// A peer that lost `id` in a lossy crash and is still recovering counts as holding it
/// (`lost`, see [`LostWrites`]): its acknowledgement was true when the leader counted it, and
/// the recovery keeps the promise it made (it votes for no log without the entry).
pub(crate) fn check_durable_majority<'a>(
    id: LogId,
    content: Option<u64>,
    disks: impl Iterator<Item = (NodeId, &'a dyn Storage)>,
    configuration: &Configuration,
    lost: &LostWrites,
) -> Check {
    let mut holding = BTreeSet::new();
    for (peer, disk) in disks {
        if lost.lost(peer, id) {
            holding.insert(peer);
            continue;
        }
        match disk.term(id.index) {
            Ok(term) if term == id.term => {
                check_stored_content(peer, disk, id, content)?;
                holding.insert(peer);
            }
            Ok(_) | Err(StorageError::Unavailable(_)) => {}
            // A snapshot beyond the index covers it.
            Err(StorageError::Compacted(_)) => {
                holding.insert(peer);
            }
            Err(StorageError::Failed(reason)) => {
                return violated(
                    "storage-never-fails",
                    format!("{peer} cannot read the term at {}: {reason}", id.index),
                )
            }
        }
    }
    let held_by_majority = |voters: &BTreeSet<NodeId>| {
        let held = voters.intersection(&holding).count();
        (held * 2 > voters.len(), held)
    };
    let sets = [
        ("voters", &configuration.voters),
        ("outgoing voters", &configuration.outgoing),
    ];
    for (name, voters) in sets {
        if voters.is_empty() && name == "outgoing voters" {
            continue;
        }
        let (majority, held) = held_by_majority(voters);
        if !majority {
            return violated(
                "commit-durable-on-majority",
                format!(
                    "{id} counted committed while only {held} of the {} {name} {voters:?} hold it \
                     on disk (disks holding it: {holding:?}; configuration {configuration:?})",
                    voters.len()
                ),
            );
        }
    }
    Ok(())
}

/// The entry `peer`'s disk gives back at `id` has the content first written there.
fn check_stored_content(
    peer: NodeId,
    disk: &dyn Storage,
    id: LogId,
    content: Option<u64>,
) -> Check {
    let Some(content) = content else {
        return Ok(());
    };
    match disk.entries(id.index, id.index.next(), u64::MAX) {
        Ok(entries) => match entries.first() {
            Some(entry) if entry.id == id && content_hash(entry) == content => Ok(()),
            Some(entry) => violated(
                "durable-entry-intact",
                format!(
                    "{peer}'s disk gives back {} with other content where {id} was written",
                    entry.id
                ),
            ),
            None => violated(
                "durable-entry-intact",
                format!("{peer}'s disk has the term of {id} but returns no entry"),
            ),
        },
        // The term came from the metadata of a snapshot through exactly this index.
        Err(StorageError::Compacted(_)) => Ok(()),
        Err(error) => violated(
            "storage-never-fails",
            format!("{peer} cannot read {id} back: {error}"),
        ),
    }
}

/// A peer that becomes leader holds every entry committed in earlier terms (§5.4, Leader
/// Completeness), except those its snapshot covers.
#[derive(Default)]
pub(crate) struct LeaderCompleteness {
    checked: BTreeSet<(Term, NodeId)>,
}

impl LeaderCompleteness {
    pub(crate) fn observe<S: Storage>(
        &mut self,
        node: &Raft<S>,
        committed: &CommittedEntries,
    ) -> Check {
        let (term, is_leader) = node.state();
        if !is_leader || !self.checked.insert((term, node.id())) {
            return Ok(());
        }
        let floor = node.status().snapshot_index;
        for (index, entry_term) in committed.before_term(term, floor) {
            match node.term_at(index) {
                Ok(held) if held == entry_term => {}
                Ok(held) => {
                    return violated(
                        "leader-completeness",
                        format!(
                        "{} became leader in {term} holding t{} at {index}, where t{} is committed",
                        node.id(),
                        held.0,
                        entry_term.0
                    ),
                    )
                }
                Err(error) => {
                    return violated(
                        "leader-completeness",
                        format!(
                            "{} became leader in {term} without committed entry {} ({error})",
                            node.id(),
                            LogId::new(entry_term, index)
                        ),
                    )
                }
            }
        }
        Ok(())
    }
}

/// Entries recovering peers lost in lossy crashes (`Cluster::crash_losing_writes`), until
/// they finish recovering: the durable-majority check counts them as held.
#[derive(Default)]
pub(crate) struct LostWrites {
    /// Per peer: the index and term of each entry it lost.
    lost: BTreeMap<NodeId, BTreeMap<Index, Term>>,
}

impl LostWrites {
    /// `peer` lost `ids` (added to what it lost before, should it not have recovered yet).
    pub(crate) fn record(&mut self, peer: NodeId, ids: Vec<LogId>) {
        let lost = self.lost.entry(peer).or_default();
        lost.extend(ids.into_iter().map(|id| (id.index, id.term)));
    }

    /// `peer` is not recovering (any more): what it holds is what it has.
    pub(crate) fn forget(&mut self, peer: NodeId) {
        if !self.lost.is_empty() {
            self.lost.remove(&peer);
        }
    }

    /// Whether `peer` lost `id` and is still recovering.
    pub(crate) fn lost(&self, peer: NodeId, id: LogId) -> bool {
        self.lost
            .get(&peer)
            .is_some_and(|ids| ids.get(&id.index) == Some(&id.term))
    }
}
