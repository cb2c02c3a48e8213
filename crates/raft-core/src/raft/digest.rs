//! A hash of the state that decides what a peer does next, for model checkers that visit every
//! reachable state of a small cluster once (raft-sim's explorer): two peers with equal hashes
//! answer every input alike, up to the clocks and the random generator left out below.

use std::hash::{Hash, Hasher};

use crate::storage::Storage;
use crate::types::Index;

use super::Raft;

impl<S: Storage> Raft<S> {
    /// Feeds `hasher` this peer's durable and volatile protocol state: term, vote, role,
    /// leader, the log (its entries with their content, the unstable tail, commit and apply
    /// cursors; what storage holds beyond that, such as its hard state, is the caller's to
    /// hash), configuration, votes received, each follower's progress, pending writes and
    /// the messages held back for them, the hard state handed out and the one known durable.
    ///
    /// Left out, so that states differing only in time collapse into one: the clocks (ticks
    /// elapsed, the drawn election timeout, the restart lease, followers' idle and lagging
    /// ticks), the random generator, counters, and ReadIndex bookkeeping (an explorer that
    /// issues no reads has none). Write ids are hashed relative to the last one reported
    /// durable, since only their order matters. A caller that drives a peer by whole timeouts
    /// (tick until the timer fires) sees the same behaviour from two peers with equal hashes.
    pub fn hash_state<H: Hasher>(&self, hasher: &mut H) {
        self.id.hash(hasher);
        self.term.hash(hasher);
        self.vote.hash(hasher);
        self.role.hash(hasher);
        self.leader.hash(hasher);
        self.fatal.is_some().hash(hasher);

        // The stored entries (read through storage, content included) and the unstable tail
        // and cursors. What storage holds apart from the log (its hard state, a stored
        // suffix a newer unstable one replaces) is the caller's to hash, from its storage.
        self.log.hash_state(hasher);
        let first = self.log.first_index().unwrap_or(Index(0));
        let high = self.log.last_index().next();
        if let Ok(entries) = self.log.entries(first, high, u64::MAX) {
            entries.hash(hasher);
        }
        self.configuration.hash(hasher);
        self.configuration_history.hash(hasher);

        self.votes.hash(hasher);
        for (id, progress) in &self.progress {
            id.hash(hasher);
            progress.match_index.hash(hasher);
            progress.next_index.hash(hasher);
            progress.state.hash(hasher);
            progress.probe_sent.hash(hasher);
            progress.inflights.hash(hasher);
            progress.recent_active.hash(hasher);
            progress.commit_sent.hash(hasher);
            progress.outgoing_snapshot.hash(hasher);
        }
        self.transfer_target.hash(hasher);
        self.uncommitted.hash(hasher);
        self.uncommitted_bytes.hash(hasher);
        self.replication_due.hash(hasher);
        self.spare_flush_due.hash(hasher);
        self.incoming_snapshot.hash(hasher);
        self.forwards.hash_state(hasher);
        for snapshot in [&self.pending_compaction, &self.snapshot_to_apply] {
            snapshot
                .as_ref()
                .map(|snapshot| (&snapshot.meta, &snapshot.data))
                .hash(hasher);
        }

        self.messages.hash(hasher);
        self.messages_after_persist.hash(hasher);
        let base = self.persisted_id;
        for (id, messages) in &self.waiting_for_persist {
            (id - base).hash(hasher);
            messages.hash(hasher);
        }
        for pending in &self.pending_persists {
            let (id, snapshot_index, last_entry, hard_state) = pending.parts();
            (id - base).hash(hasher);
            snapshot_index.hash(hasher);
            last_entry.hash(hasher);
            hard_state
                .map(|state| (state.term, state.vote, state.commit))
                .hash(hasher);
        }
        (self.last_persist_id - base).hash(hasher);
        let handed_out = self.handed_out_hard_state;
        (handed_out.term, handed_out.vote, handed_out.commit).hash(hasher);
        self.durable_vote.hash(hasher);
        self.durable_term.hash(hasher);
        self.recovery.hash(hasher);
        self.lost_writes_suspected.hash(hasher);
        self.handed_out_soft_state.role.hash(hasher);
        self.handed_out_soft_state.leader.hash(hasher);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::Hasher;

    use crate::options::Config;
    use crate::storage::MemStorage;
    use crate::types::{Configuration, NodeId, Role};

    use super::Raft;

    fn digest(raft: &Raft<MemStorage>) -> u64 {
        let mut hasher = DefaultHasher::new();
        raft.hash_state(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn clocks_are_left_out_and_a_campaign_is_not() {
        let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
        let mut config = Config::new(NodeId(1), 7);
        config.pre_vote = false;
        let fresh = Raft::new(config, storage).expect("starts");
        let mut ticked = fresh.clone();
        ticked.tick();
        assert_eq!(
            ticked.role(),
            Role::Follower,
            "one tick is below any timeout"
        );
        assert_eq!(
            digest(&fresh),
            digest(&ticked),
            "a tick changes only clocks"
        );

        let mut campaigning = fresh.clone();
        while campaigning.role() == Role::Follower {
            campaigning.tick();
        }
        assert_ne!(digest(&fresh), digest(&campaigning));
    }
}
