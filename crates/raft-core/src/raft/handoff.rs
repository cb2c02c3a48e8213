//! The hand-off of outputs: [`Raft::ready`] gives the caller what to send, persist and apply;
//! [`Raft::on_persisted`] and [`Raft::on_applied`] report it done.
//!
//! ```text
//!  ready() ─► persist request #n ─► caller writes it ─► on_persisted(n) ─► held-back messages
//!         ─► messages (need no write first)                              released, own match
//!         ─► committed entries / snapshot ─► caller applies ─► on_applied(i)  and vote count
//! ```
//!
//! Persist requests are numbered in order; messages that must wait for a write (a vote, an
//! append acknowledgement) stay inside the core until the write is reported durable, so the
//! caller cannot send them too early.

use crate::ready::{PersistId, PersistRequest, Ready, SoftState};
use crate::storage::Storage;
use crate::types::{HardState, Index, LogId, Role};

use super::Raft;

/// A write handed out for persisting and not yet reported durable.
#[derive(Clone, Debug)]
pub(super) struct PendingPersist {
    id: PersistId,
    snapshot_index: Option<Index>,
    last_entry: Option<LogId>,
    /// The hard state the write carries, if it carries one.
    hard_state: Option<HardState>,
}

impl PendingPersist {
    pub(super) fn id(&self) -> PersistId {
        self.id
    }

    /// The write's id and what it carries, for [`Raft::hash_state`] (`raft/digest.rs`).
    pub(super) fn parts(&self) -> (PersistId, Option<Index>, Option<LogId>, Option<HardState>) {
        (
            self.id,
            self.snapshot_index,
            self.last_entry,
            self.hard_state,
        )
    }
}

impl<S: Storage> Raft<S> {
    /// Reports the end of the write handed out with `id` (and every earlier one): it is durable.
    /// Reporting an id again, or one older than the latest reported, changes nothing (a
    /// storage layer that makes many writes durable at once may report them in any grouping).
    ///
    /// # Panics
    /// When `id` was never handed out in a [`Ready::persist`]: the caller reports a write this
    /// peer never asked for (a request of another peer, or of this one before a restart), and
    /// believing it would acknowledge entries that may not be on disk.
    pub fn on_persisted(&mut self, id: PersistId) {
        assert!(
            id <= self.last_persist_id,
            "caller bug: on_persisted({id}) names a write never handed out (the last handed out is {})",
            self.last_persist_id
        );
        if id > self.persisted_id {
            self.on_persisted_inner(id);
        }
        self.debug_check_invariants();
    }

    fn on_persisted_inner(&mut self, id: PersistId) {
        assert!(
            id > self.persisted_id && self.pending_persists.front().is_some(),
            "invariant persist-ids-ordered: {id} after {} with nothing pending",
            self.persisted_id
        );
        while self
            .pending_persists
            .front()
            .is_some_and(|pending| pending.id <= id)
        {
            let Some(pending) = self.pending_persists.pop_front() else {
                break;
            };
            if let Some(index) = pending.snapshot_index {
                if let Some(snapshot) = self.log.stable_snapshot_to(index) {
                    self.snapshot_to_apply = Some(snapshot);
                }
            }
            if let Some(last) = pending.last_entry {
                self.log.stable_to(last);
            }
            if let Some(hard_state) = pending.hard_state {
                self.durable_vote = hard_state.vote.map(|vote| (hard_state.term, vote));
                self.durable_term = hard_state.term;
            }
        }
        self.persisted_id = id;
        while self
            .waiting_for_persist
            .front()
            .is_some_and(|(required, _)| *required <= id)
        {
            if let Some((_, messages)) = self.waiting_for_persist.pop_front() {
                self.messages.extend(messages);
            }
        }
        if self.role == Role::Leader {
            let durable = self.log.durable_index();
            let own = self.id;
            if let Some(progress) = self.progress.get_mut(&own) {
                progress.maybe_update(durable);
            }
            if let Err(error) = self.maybe_commit() {
                self.fail(error);
            }
        } else if let Err(error) = self.count_own_durable_vote() {
            self.fail(error);
        } else if let Err(error) = self.advance_recovery() {
            // The recovery ends on durable state only.
            self.fail(error);
        }
    }

    /// Reports that the service applied everything through `index`: every entry of
    /// [`Ready::committed_entries`] up to it, whatever its kind (a no-op or a configuration
    /// entry is applied by doing nothing), or a [`Ready::snapshot_to_apply`] whose last index
    /// it is.
    ///
    /// The core counts the entries and snapshots it handed out against
    /// [`crate::Config::apply_bytes_max`] until they are reported, and only what was reported
    /// may be compacted ([`Raft::compact`]) or shows in [`Status::applied`](crate::Status::applied). A snapshot from
    /// the leader must be reported as well, once the state machine was replaced by it: until
    /// it is (or a later entry is), the applied index stays where it was before the snapshot,
    /// although the entries after it are handed out meanwhile. The snapshot found in storage
    /// at start-up already counts as applied; reporting it again is harmless, as is reporting
    /// the applied index again.
    ///
    /// # Panics
    /// When `index` is beyond the last index handed out for applying (the service claims
    /// entries it never received), or below the applied index (its reports go backwards).
    pub fn on_applied(&mut self, index: Index) {
        self.log.applied_to(index);
        self.debug_check_invariants();
    }

    /// Whether [`Raft::ready`] has anything to hand out. Always `false` once the peer has
    /// stopped ([`Raft::is_stopped`]), so a loop `while raft.has_ready() { .. }` ends.
    pub fn has_ready(&self) -> bool {
        if self.is_stopped() {
            return false;
        }
        !self.messages.is_empty()
            || (self.replication_due && self.role == Role::Leader)
            || self.log.has_unpersisted()
            || self.log.has_committed_to_apply(self.config.apply_bytes_max)
            || self.snapshot_to_apply.is_some()
            || self.pending_compaction.is_some()
            || self.term_or_vote_changed()
            || self.soft_state() != self.handed_out_soft_state
            || self.reads.has_output()
            || self.forwards.has_output()
            || (!self.messages_after_persist.is_empty())
    }

    /// Takes everything the caller must do now. See [`Ready`] for what to do with each part,
    /// and [`Raft::on_applied`] for what to report once the committed entries and the
    /// snapshot it hands out are applied. Empty once the peer has stopped.
    pub fn ready(&mut self) -> Ready {
        let ready = self.ready_inner();
        self.debug_check_invariants();
        ready
    }

    fn ready_inner(&mut self) -> Ready {
        let mut ready = Ready::default();
        if self.is_stopped() {
            return ready;
        }
        if self.role == Role::Leader {
            if let Err(error) = self.replicate_to_all() {
                self.fail(error);
                return ready;
            }
        } else {
            self.replication_due = false;
            self.send_forwarded_proposals();
        }
        ready.persist = self.take_persist_request();
        let after_persist = std::mem::take(&mut self.messages_after_persist);
        if !after_persist.is_empty() {
            if self.last_persist_id <= self.persisted_id {
                self.messages.extend(after_persist);
            } else {
                match self.waiting_for_persist.back_mut() {
                    Some((required, waiting)) if *required == self.last_persist_id => {
                        waiting.extend(after_persist)
                    }
                    _ => self
                        .waiting_for_persist
                        .push_back((self.last_persist_id, after_persist)),
                }
            }
        }
        ready.messages = std::mem::take(&mut self.messages);
        crate::replication::coalesce_append_acks(&mut ready.messages);
        if let Some(snapshot) = self.snapshot_to_apply.take() {
            self.log
                .snapshot_applying(snapshot.meta.last_included.index);
            ready.snapshot_to_apply = Some(snapshot);
        } else {
            match self.log.take_committed(self.config.apply_bytes_max) {
                Ok(entries) => ready.committed_entries = entries,
                Err(error) => self.fail(error),
            }
        }
        (ready.read_states, ready.failed_reads) = self.reads.take_output();
        ready.forwarded = self.forwards.take_answers();
        let soft_state = self.soft_state();
        if soft_state != self.handed_out_soft_state {
            self.handed_out_soft_state = soft_state;
            ready.soft_state = Some(soft_state);
        }
        ready
    }

    fn take_persist_request(&mut self) -> Option<PersistRequest> {
        let (restored, entries) = self.log.take_unpersisted();
        // Only a restored snapshot moves the log; a compaction snapshot covers durable entries.
        let restored_index = restored
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index);
        let snapshot = match restored {
            Some(snapshot) => {
                // A snapshot from the leader is beyond the commit index, so beyond anything
                // the service could have snapshotted locally.
                self.pending_compaction = None;
                Some(snapshot)
            }
            None => self.pending_compaction.take(),
        };
        // A commit index that advanced alone is no reason to write: Raft needs none durable (a
        // restarted peer learns it again from a leader), and syncing it cost every write a
        // second fdatasync on every peer. It rides along with the next write instead.
        if snapshot.is_none() && entries.is_empty() && !self.term_or_vote_changed() {
            return None;
        }
        let hard_state = self.hard_state();
        let hard_state_changed = hard_state != self.handed_out_hard_state;
        self.handed_out_hard_state = hard_state;
        self.last_persist_id += 1;
        let id = self.last_persist_id;
        self.pending_persists.push_back(PendingPersist {
            id,
            snapshot_index: restored_index,
            last_entry: entries.last().map(|entry| entry.id),
            hard_state: hard_state_changed.then_some(hard_state),
        });
        Some(PersistRequest {
            id,
            snapshot,
            entries,
            hard_state: hard_state_changed.then_some(hard_state),
        })
    }

    /// Whether the term or the vote differ from what was last handed out to persist: those
    /// must be durable before this peer acts on them.
    fn term_or_vote_changed(&self) -> bool {
        self.term != self.handed_out_hard_state.term || self.vote != self.handed_out_hard_state.vote
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            leader: self.leader,
        }
    }
}
