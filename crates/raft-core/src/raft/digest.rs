//! A hash of the state that decides what a peer does next, for model checkers that visit every
//! reachable state of a small cluster once (raft-sim's explorer): two peers with equal hashes
//! answer every input alike, up to the clocks and the random generator left out below.

use std::fmt::{self, Debug, Write as _};
use std::hash::{Hash, Hasher};

use crate::storage::Storage;
use crate::types::Index;

use super::Raft;

impl<S: Storage + Debug> Raft<S> {
    /// Feeds `hasher` this peer's durable and volatile protocol state: term, vote, role,
    /// leader, the log (stored and unstable entries with their content, commit and apply
    /// cursors), configuration, votes received, each follower's progress, pending writes and
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

        // The log's shape (storage, unstable window, cursors) through its Debug form, and the
        // entries' content through their Hash (Debug prints a payload's length only).
        hash_debug(hasher, &self.log);
        let first = self.log.first_index().unwrap_or(Index(0));
        let high = self.log.last_index().next();
        if let Ok(entries) = self.log.entries(first, high, u64::MAX) {
            entries.hash(hasher);
        }
        self.configuration.hash(hasher);
        hash_debug(hasher, &self.configuration_history);

        self.votes.hash(hasher);
        for (id, progress) in &self.progress {
            id.hash(hasher);
            progress.match_index.hash(hasher);
            progress.next_index.hash(hasher);
            hash_debug(hasher, &progress.state);
            progress.probe_sent.hash(hasher);
            hash_debug(hasher, &progress.inflights);
            progress.recent_active.hash(hasher);
            progress.commit_sent.hash(hasher);
            hash_debug(hasher, &progress.outgoing_snapshot);
        }
        self.transfer_target.hash(hasher);
        self.uncommitted.hash(hasher);
        self.uncommitted_bytes.hash(hasher);
        self.replication_due.hash(hasher);
        self.spare_flush_due.hash(hasher);
        hash_debug(hasher, &self.incoming_snapshot);
        hash_debug(hasher, &self.pending_compaction);
        hash_debug(hasher, &self.snapshot_to_apply);

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
            hash_debug(hasher, &hard_state);
        }
        (self.last_persist_id - base).hash(hasher);
        hash_debug(hasher, &self.handed_out_hard_state);
        self.durable_vote.hash(hasher);
        self.handed_out_soft_state.role.hash(hasher);
        self.handed_out_soft_state.leader.hash(hasher);
    }
}

/// Hashes `value`'s Debug form without building the string.
fn hash_debug<H: Hasher>(hasher: &mut H, value: &impl Debug) {
    struct Feed<'a, H: Hasher>(&'a mut H);
    impl<H: Hasher> fmt::Write for Feed<'_, H> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.write(text.as_bytes());
            Ok(())
        }
    }
    // Writing into a hasher cannot fail; a Debug impl that errs only shortens the input.
    let _ = write!(Feed(hasher), "{value:?}");
}
