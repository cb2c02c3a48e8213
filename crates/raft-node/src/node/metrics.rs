//! The node's figures, each declared once (see [`crate::metrics`]): the event loop and the
//! apply task write them into [`Published`] as they work; [`RaftNode::metrics`] reads them
//! without a round trip to the loop, and an exporter walks [`NodeMetrics::for_each`].
//!
//! ```text
//!  event loop ─ publish() after each round ─┐
//!  apply task ─ after each hand-over ───────┼─► Published (atomics) ─► RaftNode::metrics()
//!  storage thread ─ each durable write ─────┘                          ─► NodeMetrics
//!                                                                          └─► for_each ─► /metrics
//! ```

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use raft_core::{Index, NodeId, Term};
use raft_wal::HistogramSnapshot;

#[cfg(doc)]
use super::RaftNode;
use super::StopReason;

crate::declare_metrics! {
    /// A node's figures for monitoring, read by [`RaftNode::metrics`]. Gauges are as of the
    /// event loop's last round of work (or the apply task's last hand-over); counters
    /// (`_total`) count from this node's start and never decrease. [`NodeMetrics::for_each`]
    /// visits the ones a monitoring system shows, under their exported names.
    #[derive(Clone, Debug, PartialEq)]
    pub struct NodeMetrics;
    /// Where the event loop, the apply task and the storage thread keep the figures of
    /// [`NodeMetrics`] between reads.
    pub(super) struct NodeMetricCells;

    /// The current term.
    term: Term => gauge("raft_term", "Current Raft term"),
    /// Whether this peer is the leader.
    is_leader: bool => gauge("raft_is_leader", "1 if this node leads"),
    /// The leader this peer knows of in its term, itself included.
    leader: Option<NodeId>,
    /// The highest index known committed.
    commit_index: Index => gauge("raft_commit_index", "Highest log index known committed"),
    /// The last index the apply task handed to the service (a command, a skipped no-op, or
    /// the end of a snapshot), as of this node's start: zero until the first hand-over.
    applied_index: Index
        => gauge("raft_applied_index", "Highest log index handed to the state machine"),
    /// The last index in the log, durable or not.
    last_log_index: Index => gauge("raft_last_log_index", "Last index in the log"),
    /// The last index covered by the newest snapshot (zero if the log was never compacted).
    snapshot_index: Index => gauge("raft_snapshot_index", "Last index covered by the snapshot"),
    /// Proposals the leader appended to its log.
    proposals_accepted_total: u64 => counter(
        "raft_proposals_accepted",
        "Commands accepted for proposal by this node as leader"
    ),
    /// Proposals refused: not the leader, busy (core limits or a full command queue), too
    /// large, or during a leadership transfer.
    proposals_refused_total: u64
        => counter("raft_proposals_refused", "Commands refused (not leader, busy, too large)"),
    /// Entries committed: the sum of every advance of the commit index, no-ops and entries a
    /// snapshot from the leader covers included.
    entries_committed_total: u64
        => counter("raft_entries_committed", "Log entries this node saw committed"),
    /// Log entries the apply task handed to the service (no-ops counted, though the service
    /// never sees them; entries covered by a snapshot are not).
    entries_applied_total: u64
        => counter("raft_entries_applied", "Log entries handed to the state machine"),
    /// Commands this peer, as a follower, forwarded to the leader
    /// ([`RaftNode::start_command_or_forward`]).
    forwarded_proposals_sent_total: u64 => counter(
        "raft_forwarded_proposals_sent",
        "Commands this node forwarded to the leader as a follower"
    ),
    /// Forwarded commands the leader answered with their place in the log.
    forwarded_proposals_placed_total: u64 => counter(
        "raft_forwarded_proposals_placed",
        "Forwarded commands the leader appended to its log"
    ),
    /// Forwarded commands the leader refused (or that were never sent: the leader changed
    /// first); they are not in the log.
    forwarded_proposals_refused_total: u64 => counter(
        "raft_forwarded_proposals_refused",
        "Forwarded commands refused by the leader (not in the log)"
    ),
    /// Forwarded commands whose answer could not come (the leader or term changed, or none
    /// came in time): they may or may not be in the log.
    forwarded_proposals_unanswered_total: u64 => counter(
        "raft_forwarded_proposals_unanswered",
        "Forwarded commands without an answer from the leader (outcome unknown)"
    ),
    /// Commands other peers forwarded to this one as leader, appended or refused
    /// (duplicates excluded).
    forwarded_proposals_received_total: u64 => counter(
        "raft_forwarded_proposals_received",
        "Commands forwarded to this node as leader by followers"
    ),
    /// Elections this peer started (real campaigns, not pre-votes).
    elections_started_total: u64
        => counter("raft_elections_started", "Elections this node started"),
    /// Whether this peer is recovering after a restart that may have lost durable writes
    /// (an unclean stop): it answers no vote until it is safe, and never campaigns.
    recovering: bool => gauge(
        "raft_recovering",
        "1 while this node recovers after an unclean restart (it cannot vote or campaign yet)"
    ),
    /// Recoveries this peer started (0 or 1: one at most, at start).
    recoveries_started_total: u64 => counter(
        "raft_recoveries_started",
        "Recoveries started after an unclean restart"
    ),
    /// Recoveries this peer finished: it became a normal member again.
    recoveries_finished_total: u64 => counter(
        "raft_recoveries_finished",
        "Recoveries finished: the node votes and campaigns again"
    ),
    /// Appends that asked this peer to overwrite an entry it knows is committed (0 or 1: the
    /// first stops the node, see [`StopReason::SafetyViolation`]).
    safety_violations_total: u64 => counter(
        "raft_safety_violations",
        "Appends that asked this node to overwrite a committed entry (the node stopped)"
    ),
    /// Times this peer learned of a leader it did not know: another peer, or the same peer
    /// elected in a new term. The first leader counts.
    leader_changes_total: u64
        => counter("raft_leader_changes", "Times the leader this node knows of changed"),
    /// Snapshots received from a leader and handed to the service (not the snapshot a
    /// restarted peer restores from its own log).
    snapshots_installed_total: u64
        => counter("raft_snapshots_installed", "Snapshots installed from a leader"),
    /// Snapshots the service handed to [`RaftNode::snapshot`] that compacted the log.
    snapshots_taken_total: u64 => counter(
        "raft_snapshots_taken",
        "Snapshots of the local state that compacted the log"
    ),
    /// Messages handed to the transport.
    messages_sent_total: u64 => counter("raft_messages_sent", "Raft messages sent"),
    /// Messages received from the transport (including those the core then dropped).
    messages_received_total: u64 => counter("raft_messages_received", "Raft messages received"),
    /// How long each durable write of the storage took (a batch of requests and its sync,
    /// on the storage thread or the event loop): the figure that bounds how fast a write can
    /// be acknowledged.
    storage_write_latency: HistogramSnapshot => histogram(
        "raft_storage_write_duration_seconds",
        "Time of each durable write of the Raft log: a batch of requests encoded, \
         written and synced"
    ),
}

/// What the event loop and the apply task publish for readers on other threads: the figures
/// of [`NodeMetrics`], each read and written on its own (Relaxed), as monitoring needs no
/// ordering between them, except term and leadership, which [`RaftNode::get_state`] reads
/// with Acquire what [`Published::set_role`] stored with Release.
#[derive(Debug, Default)]
pub(super) struct Published {
    pub(super) figures: NodeMetricCells,
    /// Why the event loop stopped, once it has.
    stop_reason: Mutex<Option<StopReason>>,
}

impl Published {
    /// Publishes the term and whether this peer leads in it.
    pub(super) fn set_role(&self, term: Term, is_leader: bool) {
        self.figures.term.store(term.0, Ordering::Release);
        self.figures
            .is_leader
            .store(u64::from(is_leader), Ordering::Release);
    }

    /// The term and whether this peer leads, as last published.
    pub(super) fn role(&self) -> (Term, bool) {
        (
            Term(self.figures.term.load(Ordering::Acquire)),
            self.figures.is_leader.load(Ordering::Acquire) != 0,
        )
    }

    /// Records why the event loop stopped.
    pub(super) fn set_stop_reason(&self, reason: StopReason) {
        *self
            .stop_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
    }

    /// Why the event loop stopped, if it recorded a reason.
    pub(super) fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_names_are_the_ones_dashboards_know() {
        let published = Published::default();
        let mut exported = Vec::new();
        published
            .figures
            .snapshot()
            .for_each(|descriptor, _| exported.push(descriptor.name));
        // Renaming one breaks every dashboard and alert built on it: change this list only
        // with a note in the changelog.
        assert_eq!(
            exported,
            [
                "raft_term",
                "raft_is_leader",
                "raft_commit_index",
                "raft_applied_index",
                "raft_last_log_index",
                "raft_snapshot_index",
                "raft_proposals_accepted",
                "raft_proposals_refused",
                "raft_entries_committed",
                "raft_entries_applied",
                "raft_forwarded_proposals_sent",
                "raft_forwarded_proposals_placed",
                "raft_forwarded_proposals_refused",
                "raft_forwarded_proposals_unanswered",
                "raft_forwarded_proposals_received",
                "raft_elections_started",
                "raft_recovering",
                "raft_recoveries_started",
                "raft_recoveries_finished",
                "raft_safety_violations",
                "raft_leader_changes",
                "raft_snapshots_installed",
                "raft_snapshots_taken",
                "raft_messages_sent",
                "raft_messages_received",
                "raft_storage_write_duration_seconds",
            ]
        );
    }

    #[test]
    fn the_role_is_published_and_read_as_a_pair_of_figures() {
        let published = Published::default();
        published.set_role(Term(3), true);
        assert_eq!(published.role(), (Term(3), true));
        let figures = published.figures.snapshot();
        assert_eq!((figures.term, figures.is_leader), (Term(3), true));
        published.set_stop_reason(StopReason::Shutdown);
        assert_eq!(published.stop_reason(), Some(StopReason::Shutdown));
    }
}
