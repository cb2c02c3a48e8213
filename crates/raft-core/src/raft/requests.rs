//! What the caller asks of the peer beside stepping messages: proposals, leadership transfer,
//! compaction and unreachable-peer reports. (Membership changes are `membership/change.rs`,
//! reads `read_index.rs`.)

use bytes::Bytes;

use crate::error::{CompactError, ProposeError};
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::storage::{Storage, StorageError};
use crate::types::{Entry, EntryKind, Index, LogId, NodeId, Role, Snapshot, SnapshotMeta};

use super::Raft;

impl<S: Storage> Raft<S> {
    /// Proposes a command. Returns the id the entry has in the log: if it is committed, it
    /// comes out of [`Raft::ready`] in [`Ready::committed_entries`](crate::Ready::committed_entries) at this index, with this
    /// term (the same index with another term means it was lost to a new leader; propose it
    /// again). The indexes between two commands may be taken by entries that carry no
    /// command — the no-op a new leader appends first (§5.4.2), configuration changes — so a
    /// service that waits for "the index of my command" counts those as applied as well
    /// ([`Raft::on_applied`]) and never numbers commands by counting them.
    pub fn propose(&mut self, data: Bytes) -> Result<LogId, ProposeError> {
        let result = self.propose_entry(EntryKind::Normal, data);
        self.debug_check_invariants();
        result
    }

    pub(crate) fn propose_entry(
        &mut self,
        kind: EntryKind,
        data: Bytes,
    ) -> Result<LogId, ProposeError> {
        assert!(
            kind != EntryKind::Configuration,
            "invariant configuration-entries-via-propose-conf-change"
        );
        self.refuse_if_stopped()?;
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader.filter(|&leader| leader != self.id),
            });
        }
        if self.transfer_target.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        let size = data.len() as u64;
        if size > self.config.proposal_bytes_max {
            return Err(ProposeError::TooLarge {
                size,
                limit: self.config.proposal_bytes_max,
            });
        }
        let entry_bytes = size + 24;
        if kind == EntryKind::Normal
            && self.uncommitted_bytes + entry_bytes > self.config.uncommitted_bytes_max
        {
            return Err(ProposeError::Busy);
        }
        Ok(self.append_as_leader(kind, data))
    }

    /// Appends one entry of this leader's term, past every check of `propose_entry` (the
    /// no-op and configuration entries must go in even while proposals are refused).
    pub(crate) fn append_as_leader(&mut self, kind: EntryKind, data: Bytes) -> LogId {
        assert!(self.role == Role::Leader, "invariant only-leader-appends");
        let entry_bytes = data.len() as u64 + 24;
        let id = LogId::new(self.term, self.log.last_index().next());
        if let Err(error) = self.append_entries(vec![Entry { id, kind, data }]) {
            panic!("invariant leader-configuration-encodes: {error}");
        }
        self.uncommitted.push_back((id.index, entry_bytes));
        self.uncommitted_bytes += entry_bytes;
        self.replication_due = true;
        id
    }

    /// Asks the leader to hand leadership to `target` (thesis §3.10): the target is caught up,
    /// then told to campaign at once. Proposals are refused meanwhile.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), ProposeError> {
        let result = self.transfer_leader_inner(target);
        self.debug_check_invariants();
        result
    }

    fn transfer_leader_inner(&mut self, target: NodeId) -> Result<(), ProposeError> {
        self.refuse_if_stopped()?;
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if target == self.id {
            return Ok(());
        }
        // A peer in the outgoing set only is on its way out: it would lead just to step down.
        if !self.configuration.voters.contains(&target) {
            return Err(ProposeError::NotVoter(target));
        }
        // The target's campaign passes followers' lease check, and its vote requests may be
        // delayed past any deadline, so this leader can no longer vouch that nobody else is
        // elected: no lease reads for the rest of its term.
        self.reads.forbid_lease();
        self.transfer_target = Some((target, 0));
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if caught_up {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.replication_due = true;
        }
        Ok(())
    }

    /// The service has a snapshot of its state through `index` (which it has applied); the log
    /// up to there may be dropped. The snapshot is persisted through the next `ready()`.
    pub fn compact(&mut self, index: Index, data: Bytes) -> Result<(), CompactError> {
        let result = self.compact_inner(index, data);
        self.debug_check_invariants();
        result
    }

    fn compact_inner(&mut self, index: Index, data: Bytes) -> Result<(), CompactError> {
        let snapshot = self.snapshot_for_compaction(index, data)?;
        self.configuration_history.compact_to(index);
        self.pending_compaction = Some(snapshot);
        Ok(())
    }

    /// The snapshot [`Raft::compact`] would record for `index` and `data` now, or why it would
    /// refuse; nothing changes. A runtime uses it to have the snapshot made durable ahead of
    /// the compaction (see [`crate::SnapshotStager`]); `compact` checks again when it comes,
    /// since a snapshot installed meanwhile may have covered `index`.
    pub fn snapshot_for_compaction(
        &self,
        index: Index,
        data: Bytes,
    ) -> Result<Snapshot, CompactError> {
        let applied = self.log.applied();
        if index > applied {
            return Err(CompactError::NotApplied { index, applied });
        }
        // A snapshot restored from the leader but not yet durable also counts: it is newer than
        // anything the service could snapshot.
        let pending = self
            .pending_compaction
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index)
            .unwrap_or_default();
        let snapshot = pending.max(self.log.snapshot_index()?);
        if index <= snapshot {
            return Err(CompactError::AlreadyCompacted { index, snapshot });
        }
        let term = match self.log.term(index) {
            Ok(term) => term,
            Err(StorageError::Compacted(_)) => {
                return Err(CompactError::AlreadyCompacted { index, snapshot })
            }
            Err(error) => return Err(error.into()),
        };
        // The snapshot carries "the latest configuration as of the last included index" (Raft
        // paper §7), which may be older than the one in effect: configurations after `index`
        // are still entries of the log.
        let configuration = self.configuration_history.at(index).clone();
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_included: LogId::new(term, index),
                configuration,
            },
            data,
        })
    }

    /// The runtime could not deliver to `peer`: stop pipelining to it and probe again, so
    /// a lost message never leaves it stuck.
    pub fn report_unreachable(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.progress.get_mut(&peer) {
            if progress.state != ProgressState::Probe {
                progress.become_probe();
                self.replication_due = true;
            }
        }
        self.debug_check_invariants();
    }
}
