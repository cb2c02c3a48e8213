//! Crashes that lose durable writes: a disk that acknowledged syncs it had not done, then a
//! power loss. The peer comes back without the writes of its last few completed persist
//! batches — entries it acknowledged, a vote it gave, a term it entered — and is told so
//! (`possibly_lost_writes`), so that it recovers (raft-core's recovery.rs).
//!
//! ```text
//!  DiskDone ─► journal.record(request): each completed write's first entry, whether it held a
//!              snapshot, and the hard state before it (the last JOURNAL_WRITES_MAX kept)
//!  crash_losing_writes(p, n) ─► crash(p) ─► the newest k <= n writes after the last snapshot
//!     are undone: the log cut before the first entry any of them wrote, the hard state back
//!     to the one before the oldest (commit within the log) ─► written to the store through
//!     the LogStore contract: the kept last entry again (a conflicting suffix is replaced) and
//!     the older hard state
//!     ─► checkers told: the peer's durable-vote record goes back with it, and its lost entries
//!        still count toward the durable majority of commits while it recovers (they were on
//!        its disk when it acknowledged them; keeping that promise is the recovery's job)
//!     ─► its next boot reports possibly_lost_writes (unless DiskConfig::report_lost_writes
//!        is off: the same loss, unnoticed)
//! ```
//!
//! The model keeps to a state the peer once had, minus a suffix of its log: a write that held
//! a snapshot, and one whose entries start right after the snapshot, are never lost (the
//! store could not express the result). Nor is a write that held a configuration entry: a
//! peer that lost one asks the voters of an older configuration, and the recovery cannot
//! protect it (a known weakness, docs/design.md; the randomized runs found it within 3,000
//! seeds: a recovering peer that lost the entry adding a voter asked only the voter that
//! was behind, and was elected without entries the other held). Fault model of the
//! recovery: at most one peer's durable state is suspect at a time;
//! [`Cluster::suspect_peers`] tells whether one is.

use std::collections::VecDeque;

use raft_core::{Entry, EntryKind, HardState, Index, LogId, NodeId, PersistRequest, Storage};

use super::Cluster;
use crate::invariants::Violation;

/// How many completed writes per peer the journal remembers: the most a lossy crash undoes.
pub const LOST_WRITES_MAX: usize = 8;

/// What one completed write changed, enough to undo it.
#[derive(Clone, Copy, Debug)]
struct WriteRecord {
    first_entry: Option<Index>,
    snapshot: bool,
    /// It wrote a configuration entry.
    configuration: bool,
    hard_state_before: HardState,
}

/// A peer's latest completed writes.
#[derive(Debug, Default)]
pub(crate) struct WriteJournal {
    /// Oldest first. Invariant: at most [`LOST_WRITES_MAX`].
    records: VecDeque<WriteRecord>,
    /// The hard state the store holds after the last recorded write (a fresh store's is the
    /// default one).
    durable_hard_state: HardState,
}

impl WriteJournal {
    /// Notes a write the store is about to make durable.
    pub(super) fn record(&mut self, request: &PersistRequest) {
        if self.records.len() == LOST_WRITES_MAX {
            self.records.pop_front();
        }
        self.records.push_back(WriteRecord {
            first_entry: request.entries.first().map(Entry::index),
            snapshot: request.snapshot.is_some(),
            configuration: request
                .entries
                .iter()
                .any(|entry| entry.kind == EntryKind::Configuration),
            hard_state_before: self.durable_hard_state,
        });
        if let Some(hard_state) = request.hard_state {
            self.durable_hard_state = hard_state;
        }
        debug_assert!(self.records.len() <= LOST_WRITES_MAX);
    }
}

/// What a lossy crash undid.
struct Loss {
    writes: usize,
    /// The first index cut from the log, if any entry was.
    cut_from: Option<Index>,
    hard_state: HardState,
}

impl Cluster {
    /// Crashes `peer` as a power loss under a disk that lied about its syncs: besides what a
    /// crash loses, the writes of its last `writes` completed persist batches (at most
    /// [`LOST_WRITES_MAX`], none before its latest snapshot) are gone. Returns how many were
    /// (0 is a crash that only might have lost some). Its next boot reports
    /// `possibly_lost_writes` when [`crate::DiskConfig::report_lost_writes`] says so. Loses
    /// nothing more than [`Cluster::crash`] with the lying disk (it loses writes its own way).
    ///
    /// The recovery protects the cluster only while one peer at a time is suspect: callers
    /// that want safety check [`Cluster::suspect_peers`] first.
    pub fn crash_losing_writes(&mut self, peer: NodeId, writes: usize) -> usize {
        let index = self.peer_index(peer);
        self.crash(peer);
        if self.config.disk.lie_about_durability {
            return 0;
        }
        // Told whether or not anything was lost: a node that finds no clean-shutdown marker on
        // a disk it cannot trust does not know either.
        self.peers[index].possibly_lost_writes = self.config.disk.report_lost_writes;
        let loss = match self.lose_writes(index, writes) {
            Ok(loss) => loss,
            Err(error) => self.fail(Violation {
                invariant: "storage-never-fails",
                detail: format!("{peer} cannot lose writes: {error}"),
            }),
        };
        let Some(loss) = loss else {
            self.note(format!(
                "{peer} crashed, told it may have lost writes (it lost none)"
            ));
            return 0;
        };
        self.invariants.durable.revert(peer, loss.hard_state);
        self.counters.lossy_crashes += 1;
        self.note(format!(
            "{peer} lost its last {} writes: log cut from {}, hard state back to term {} vote {:?} commit {}",
            loss.writes,
            loss.cut_from.map_or("nowhere".to_string(), |index| index.to_string()),
            loss.hard_state.term,
            loss.hard_state.vote,
            loss.hard_state.commit
        ));
        loss.writes
    }

    /// Undoes the newest writes of `peer`'s store (see the module documentation).
    fn lose_writes(&mut self, peer: usize, writes: usize) -> Result<Option<Loss>, String> {
        let disk = &self.peers[peer].disk;
        let error = |error: raft_core::StorageError| error.to_string();
        let snapshot_index = disk.first_index().map_err(error)?.prev();
        let last_before = disk.last_index().map_err(error)?;
        let journal = &self.peers[peer].journal;
        let mut lost = 0;
        let mut cut_from: Option<Index> = None;
        for record in journal.records.iter().rev().take(writes) {
            // See the module documentation: the recovery cannot survive a lost configuration
            // entry, and the store cannot express a lost snapshot.
            if record.snapshot || record.configuration {
                break;
            }
            if let Some(first) = record.first_entry {
                if first <= snapshot_index.next() {
                    break;
                }
                cut_from = Some(cut_from.map_or(first, |cut| cut.min(first)));
            }
            lost += 1;
        }
        if lost == 0 {
            return Ok(None);
        }
        let oldest_lost = journal.records[journal.records.len() - lost];
        // Entries of lost writes may have been cut since by later writes: keep to the log.
        let cut_from = cut_from.filter(|&first| first <= last_before);
        let (kept_last, lost_ids) = match cut_from {
            Some(first) => {
                let kept = first.prev();
                let kept_entry = disk.entries(kept, first, u64::MAX).map_err(error)?;
                let lost = disk
                    .entries(first, last_before.next(), u64::MAX)
                    .map_err(error)?;
                let lost_ids: Vec<LogId> = lost.iter().map(|entry| entry.id).collect();
                (Some(kept_entry), lost_ids)
            }
            None => (None, Vec::new()),
        };
        let last_after = cut_from.map_or(last_before, Index::prev);
        let hard_state = HardState {
            commit: oldest_lost
                .hard_state_before
                .commit
                .min(last_after)
                .max(snapshot_index),
            ..oldest_lost.hard_state_before
        };
        let last_term = disk.term(last_after).map_err(error)?;
        if hard_state.term < last_term {
            return Err(format!(
                "the lossy-crash model would leave term {} behind its last entry's {last_term}",
                hard_state.term
            ));
        }
        let request = PersistRequest {
            id: 0,
            snapshot: None,
            entries: kept_last.unwrap_or_default(),
            hard_state: Some(hard_state),
        };
        self.stores.write(peer, vec![request])?;
        let id = self.peers[peer].id;
        self.invariants.lost_writes.record(id, lost_ids);
        let journal = &mut self.peers[peer].journal;
        let remaining = journal.records.len() - lost;
        journal.records.truncate(remaining);
        journal.durable_hard_state = hard_state;
        Ok(Some(Loss {
            writes: lost,
            cut_from,
            hard_state,
        }))
    }

    /// The peers whose durable state is suspect: running and recovering, or down and due to
    /// recover at their next boot. The recovery's fault model allows at most one.
    pub fn suspect_peers(&self) -> Vec<NodeId> {
        self.peers
            .iter()
            .filter(|peer| match &peer.node {
                Some(node) => node.is_recovering(),
                None => peer.possibly_lost_writes,
            })
            .map(|peer| peer.id)
            .collect()
    }
}
