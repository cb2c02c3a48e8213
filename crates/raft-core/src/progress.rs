//! What a leader knows about each follower's log, and how it decides what to send next.
//!
//! ```text
//!            reject / unreachable / stall
//!   ┌────────────────────────────────────────┐
//!   ▼                                        │
//!  Probe ──(append accepted)──► Replicate ───┘
//!   │  ▲
//!   │  └──(snapshot received / failed / stalled)──┐
//!   └──(next entry compacted)──► Snapshot ────────┘
//! ```
//!
//! In `Probe` one append is outstanding at a time, to find where the logs agree; in `Replicate`
//! appends are pipelined up to a bounded window; in `Snapshot` the follower receives a snapshot
//! and nothing else is sent.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::invariant::Violations;
use crate::types::{Index, NodeId, SnapshotMeta};

/// How the leader replicates to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// Searching for the point where the logs agree, one append at a time.
    Probe,
    /// Streaming appends, optimistically advancing `next_index`.
    Replicate,
    /// Sending the snapshot ending at the given index.
    Snapshot(Index),
}

/// A snapshot being sent, one chunk at a time.
#[derive(Clone, Debug, Hash)]
pub struct OutgoingSnapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The whole snapshot.
    pub data: Bytes,
    /// The offset of the next chunk to send.
    pub offset: u64,
}

/// Bounded window of append messages in flight, each remembered by its last index.
#[derive(Clone, Debug, Hash)]
pub struct Inflights {
    last_indexes: VecDeque<Index>,
    capacity: usize,
}

impl Inflights {
    /// An empty window of `capacity` messages.
    pub fn new(capacity: usize) -> Inflights {
        assert!(
            capacity > 0,
            "inflight window must hold at least one message"
        );
        Inflights {
            last_indexes: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records a message whose last entry is `last`.
    pub fn add(&mut self, last: Index) {
        assert!(!self.is_full(), "invariant inflight-bounded: window full");
        if let Some(&back) = self.last_indexes.back() {
            assert!(back < last, "invariant inflight-ordered: {back} >= {last}");
        }
        self.last_indexes.push_back(last);
    }

    /// Forgets messages whose entries are all at or below `index` (acknowledged).
    pub fn free_through(&mut self, index: Index) {
        while self.last_indexes.front().is_some_and(|&last| last <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Whether no more messages may be sent.
    pub fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        self.last_indexes.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.last_indexes.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.last_indexes.clear();
    }

    /// The last index of the oldest and of the newest message in flight.
    fn bounds(&self) -> Option<(Index, Index)> {
        Some((*self.last_indexes.front()?, *self.last_indexes.back()?))
    }
}

/// The leader's view of one peer.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to be durably replicated on the peer.
    /// Invariant: `match_index < next_index`.
    pub match_index: Index,
    /// The next index to send.
    pub next_index: Index,
    /// Replication mode.
    pub state: ProgressState,
    /// In `Probe`: an append is outstanding, wait for its answer (or a heartbeat answer).
    pub probe_sent: bool,
    /// Appends in flight in `Replicate`.
    pub inflights: Inflights,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// Leader ticks since the peer last answered anything (saturating; `u32::MAX` when it
    /// never did under this leader). Unlike `recent_active`, not reset by CheckQuorum rounds,
    /// so it can say at any moment whether the peer answered within an election timeout.
    pub silent_ticks: u32,
    /// Ticks since the peer last answered an append or snapshot chunk while something was
    /// outstanding; used to detect lost messages and stalled snapshot transfers.
    pub idle_ticks: u32,
    /// Leader ticks in a row at which the peer's match was below the leader's last index as of
    /// the tick before: how long it has been more than a tick behind.
    pub lagging_ticks: u32,
    /// Leader ticks since the peer last forwarded a proposal or a read here (saturating;
    /// `u32::MAX` when it never did). A follower serving clients answers them only once it has
    /// applied their entries, so for a while after it is never a spare (see
    /// `Raft::spare_followers`): its clients would wait for every flush.
    pub client_ticks: u32,
    /// The highest commit index sent to the peer, so commit advances are told promptly.
    pub commit_sent: Index,
    /// The snapshot being sent in `Snapshot` state.
    pub outgoing_snapshot: Option<OutgoingSnapshot>,
}

impl Progress {
    /// A fresh progress for a leader whose log ends at `last_index`.
    pub fn new(last_index: Index, inflight_messages_max: usize) -> Progress {
        Progress {
            match_index: Index(0),
            next_index: last_index.next(),
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(inflight_messages_max),
            recent_active: false,
            silent_ticks: u32::MAX,
            idle_ticks: 0,
            lagging_ticks: 0,
            client_ticks: u32::MAX,
            commit_sent: Index(0),
            outgoing_snapshot: None,
        }
    }

    /// Records an answer from the peer.
    pub fn heard_from(&mut self) {
        self.recent_active = true;
        self.silent_ticks = 0;
    }

    /// Whether nothing may be sent now.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot(_) => true,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.inflights.clear();
        self.idle_ticks = 0;
        self.outgoing_snapshot = None;
    }

    /// Back to probing from just after the match (or after the snapshot just sent).
    pub fn become_probe(&mut self) {
        let floor = match self.state {
            ProgressState::Snapshot(pending) => pending.max(self.match_index),
            _ => self.match_index,
        };
        self.reset_state(ProgressState::Probe);
        self.next_index = floor.next();
    }

    /// The peer restarted having possibly lost writes it acknowledged (it sent a recovery
    /// probe), so what it matched is no longer known: forget it and probe from the end of
    /// the log, as a new leader does, backtracking to wherever the peer really is. Without
    /// this the leader would never send again the entries the peer lost: rejections at or
    /// below the match look stale. The commit index does not move back: what the peer
    /// acknowledged before it lost it was true when counted.
    ///
    /// Asked again while already probing from nothing, it changes nothing, so that the
    /// backtracking under way goes on.
    pub fn forget_match(&mut self, last_index: Index) {
        if self.match_index == Index(0) && self.state == ProgressState::Probe {
            return;
        }
        self.reset_state(ProgressState::Probe);
        self.match_index = Index(0);
        self.commit_sent = Index(0);
        self.next_index = last_index.next();
    }

    /// Start streaming from just after the match.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_index = self.match_index.next();
    }

    /// Start sending `snapshot`.
    pub fn become_snapshot(&mut self, snapshot: OutgoingSnapshot) {
        let index = snapshot.meta.last_included.index;
        self.reset_state(ProgressState::Snapshot(index));
        self.outgoing_snapshot = Some(snapshot);
    }

    /// The peer acknowledged holding everything through `index`. Returns whether that is news.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index.next());
        updated
    }

    /// The peer rejected an append whose previous index was `rejected`; `probe_from` is the
    /// highest index at which the logs may agree. Returns whether `next_index` moved (a
    /// stale rejection changes nothing).
    pub fn maybe_decrease_to(&mut self, rejected: Index, probe_from: Index) -> bool {
        if self.state == ProgressState::Replicate {
            // Rejections of appends sent before the match are stale.
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index.next();
            return true;
        }
        // In Probe, only the answer to the outstanding probe counts.
        if rejected != self.next_index.prev() {
            return false;
        }
        self.next_index = rejected.min(probe_from.next()).max(self.match_index.next());
        self.probe_sent = false;
        true
    }

    /// Records that an append ending at `last` was sent.
    pub fn sent_entries(&mut self, last: Index) {
        match self.state {
            ProgressState::Replicate => {
                self.next_index = last.next();
                self.inflights.add(last);
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot(_) => {
                panic!("invariant no-append-while-snapshot: append sent in Snapshot state")
            }
        }
    }
}

impl Progress {
    /// Adds every broken invariant of `peer`'s progress to `out`, on a leader whose log ends at
    /// `last_index` and is committed through `committed`.
    pub(crate) fn collect_violations(
        &self,
        peer: NodeId,
        last_index: Index,
        committed: Index,
        out: &mut Violations,
    ) {
        let (match_index, next_index) = (self.match_index, self.next_index);
        out.check(
            match_index < next_index,
            "progress-match-below-next",
            || format!("{peer}: match {match_index} >= next {next_index}"),
        );
        out.check(
            match_index <= last_index && next_index <= last_index.next(),
            "progress-within-log",
            || {
                format!(
                    "{peer}: match {match_index}, next {next_index}, leader's last {last_index}"
                )
            },
        );
        out.check(
            self.commit_sent <= committed,
            "progress-commit-sent-committed",
            || {
                format!(
                    "{peer}: told commit {}, committed {committed}",
                    self.commit_sent
                )
            },
        );
        let snapshot_index = self
            .outgoing_snapshot
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index);
        let consistent = match self.state {
            ProgressState::Snapshot(index) => snapshot_index == Some(index),
            _ => snapshot_index.is_none(),
        };
        out.check(consistent, "progress-snapshot-state", || {
            format!(
                "{peer}: state {:?}, outgoing snapshot at {snapshot_index:?}",
                self.state
            )
        });
        let inflights = self.inflights.bounds();
        let inflights_fit = match (self.state, inflights) {
            (_, None) => true,
            (ProgressState::Replicate, Some((oldest, newest))) => {
                match_index < oldest && newest < next_index
            }
            _ => false,
        };
        out.check(inflights_fit, "progress-inflights-replicating", || {
            format!(
                "{peer}: {:?} with appends in flight through {inflights:?}, match {match_index}, next {next_index}",
                self.state
            )
        });
        out.check(
            self.inflights.len() <= self.inflights.capacity,
            "inflight-bounded",
            || {
                format!(
                    "{peer}: {} in flight, window {}",
                    self.inflights.len(),
                    self.inflights.capacity
                )
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overfull_window_is_reported() {
        let mut progress = Progress::new(Index(10), 1);
        progress.become_replicate();
        progress.inflights.last_indexes.extend([Index(3), Index(4)]);
        progress.next_index = Index(5);
        let mut out = Violations::default();
        progress.collect_violations(NodeId(2), Index(10), Index(10), &mut out);
        let broken: Vec<&str> = out.into_vec().iter().map(|v| v.invariant).collect();
        assert_eq!(broken, ["inflight-bounded"]);
    }

    #[test]
    fn probe_ignores_stale_rejections_and_uses_hint() {
        let mut progress = Progress::new(Index(10), 4);
        progress.sent_entries(Index(10));
        assert!(progress.is_paused());
        assert!(
            !progress.maybe_decrease_to(Index(5), Index(0)),
            "not the outstanding probe"
        );
        assert!(progress.maybe_decrease_to(Index(10), Index(3)));
        assert_eq!(progress.next_index, Index(4));
        assert!(!progress.is_paused());
    }

    #[test]
    fn replicate_window_is_bounded_and_freed_by_acks() {
        let mut progress = Progress::new(Index(0), 2);
        progress.maybe_update(Index(0));
        progress.become_replicate();
        progress.sent_entries(Index(3));
        progress.sent_entries(Index(6));
        assert!(progress.is_paused());
        progress.maybe_update(Index(3));
        progress.inflights.free_through(Index(3));
        assert!(!progress.is_paused());
        assert_eq!(progress.next_index, Index(7));
    }

    #[test]
    fn snapshot_then_probe_resumes_after_snapshot() {
        let mut progress = Progress::new(Index(100), 4);
        progress.become_snapshot(OutgoingSnapshot {
            meta: SnapshotMeta::default(),
            data: Bytes::new(),
            offset: 0,
        });
        progress.state = ProgressState::Snapshot(Index(50));
        progress.become_probe();
        assert_eq!(progress.next_index, Index(51));
    }
}
