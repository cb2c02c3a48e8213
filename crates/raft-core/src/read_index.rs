//! Linearizable reads by ReadIndex (thesis §6.4) and by leader lease (thesis §6.4.1).
//!
//! ```text
//!  read_index(ctx) ─► leader: committed in its term? ── no ──► wait for the first commit
//!                        │ yes: index = commit, round = r
//!                        ▼
//!                     heartbeat(r) to all ── majority echoes round >= r ──► ReadState(ctx, index)
//!  follower: forward ReadIndexRequest to the leader ─► ReadIndexResponse(ctx, index)
//!
//!  lease_read(ctx) ─► leader: lease holds and committed in its term? ── yes ──► ReadState(ctx, commit)
//!                        │ no: as read_index (its round renews the lease)
//!  follower: NotLeader (the service forwards to the leader)
//! ```
//!
//! Reads registered before one heartbeat broadcast share it, so many reads cost one round.
//!
//! Every heartbeat broadcast, periodic or asked for by reads, carries a round no earlier one
//! carried, and the leader notes the tick it went out at. When a majority (the leader
//! included) has echoed round `r` or later, each of those followers heard from the leader at
//! or after the tick `t` that `r` went out at, and ignores campaigns for `election_ticks` of
//! its own ticks after that (the check in `Raft::step_higher_term`): nobody else can become
//! leader before `t + election_ticks`. The leader's lease holds while its own tick counter is
//! below `t + election_ticks - lease_margin_ticks`, the margin covering tick phase and clock
//! drift. Periodic heartbeats renew it, so an idle leader keeps it without extra rounds.

use std::collections::{BTreeMap, VecDeque};

use crate::error::ProposeError;
use crate::invariant::Violations;
use crate::message::{MessageBody, ReadContext};
use crate::quorum::{is_majority, majority_value};
use crate::raft::{Raft, StepError};
use crate::ready::ReadState;
use crate::storage::Storage;
use crate::types::{Index, NodeId, Role};

#[derive(Clone, Debug)]
struct PendingRead {
    origin: NodeId,
    context: ReadContext,
    index: Index,
    round: u64,
}

/// Bookkeeping for reads on both sides.
#[derive(Clone, Debug)]
pub(crate) struct ReadIndexState {
    capacity: usize,
    /// The latest confirmation round. Invariant: rounds of `pending` are non-decreasing and at
    /// most `round`.
    round: u64,
    /// A heartbeat broadcast for `round` is due: reads registered since the last broadcast
    /// wait for it.
    heartbeat_due: bool,
    /// `election_ticks - lease_margin_ticks`: how long after a heartbeat goes out a majority's
    /// echo of it vouches for the leader. `None` without CheckQuorum: followers then do not
    /// honour leases, so there are none.
    lease_ticks: Option<u64>,
    /// Leader: heartbeat broadcasts no majority has echoed yet, as `(tick, first round sent at
    /// that tick)`, oldest first. Invariant: ticks strictly increase, rounds increase, and no
    /// entry is older than `lease_ticks` (so there are at most `lease_ticks + 1`).
    broadcasts: VecDeque<(u64, u64)>,
    /// Leader: the lease holds while the tick counter is below this.
    lease_end_ticks: Option<u64>,
    /// Leader: a leadership transfer began in this term, so no lease until the next one.
    lease_forbidden: bool,
    pending: VecDeque<PendingRead>,
    /// Leader: reads that arrived before the leader committed an entry of its term.
    waiting_for_commit: VecDeque<(NodeId, ReadContext)>,
    /// Leader: the highest round each peer echoed.
    acked_rounds: BTreeMap<NodeId, u64>,
    /// Follower: reads forwarded to `leader`, with their age in ticks.
    forwarded: VecDeque<(ReadContext, NodeId, u32)>,
    ready: Vec<ReadState>,
    failed: Vec<ReadContext>,
}

impl ReadIndexState {
    pub(crate) fn new(capacity: usize, lease_ticks: Option<u64>) -> ReadIndexState {
        assert!(
            lease_ticks != Some(0),
            "invariant lease-positive: a lease must last at least one tick"
        );
        ReadIndexState {
            capacity,
            round: 0,
            heartbeat_due: false,
            lease_ticks,
            broadcasts: VecDeque::new(),
            lease_end_ticks: None,
            lease_forbidden: false,
            pending: VecDeque::new(),
            waiting_for_commit: VecDeque::new(),
            acked_rounds: BTreeMap::new(),
            forwarded: VecDeque::new(),
            ready: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Whether reads wait for a heartbeat broadcast.
    pub(crate) fn heartbeat_due(&self) -> bool {
        self.heartbeat_due
    }

    /// The round a heartbeat broadcast at tick `now_ticks` carries: the one reads registered
    /// since the last broadcast wait for, or else a new one. Either way no earlier broadcast
    /// carried it, so an echo of it dates from `now_ticks`, which the lease is measured from.
    pub(crate) fn begin_broadcast_round(&mut self, now_ticks: u64) -> u64 {
        if !std::mem::take(&mut self.heartbeat_due) {
            self.round += 1;
        }
        let Some(lease_ticks) = self.lease_ticks else {
            return self.round;
        };
        // An echo of a broadcast older than a lease would grant a lease already over.
        while self
            .broadcasts
            .front()
            .is_some_and(|&(tick, _)| tick + lease_ticks <= now_ticks)
        {
            self.broadcasts.pop_front();
        }
        match self.broadcasts.back() {
            Some(&(tick, _)) if tick == now_ticks => {}
            Some(&(tick, _)) => {
                assert!(tick < now_ticks, "invariant lease-broadcast-ticks-increase");
                self.broadcasts.push_back((now_ticks, self.round));
            }
            None => self.broadcasts.push_back((now_ticks, self.round)),
        }
        assert!(
            self.broadcasts.len() as u64 <= lease_ticks + 1,
            "invariant lease-broadcasts-bounded"
        );
        self.round
    }

    /// A majority has echoed `confirmed` or a later round: the newest broadcast of a round at
    /// most `confirmed` starts a lease, unless leases are forbidden.
    fn renew_lease(&mut self, confirmed: u64) {
        let Some(lease_ticks) = self.lease_ticks else {
            return;
        };
        let mut newest = None;
        while let Some(&(tick, round)) = self.broadcasts.front() {
            if round > confirmed {
                break;
            }
            newest = Some(tick);
            self.broadcasts.pop_front();
        }
        if let Some(tick) = newest.filter(|_| !self.lease_forbidden) {
            let end = tick + lease_ticks;
            self.lease_end_ticks = Some(self.lease_end_ticks.map_or(end, |old| old.max(end)));
        }
    }

    /// Whether the lease holds at `now_ticks`.
    pub(crate) fn lease_holds(&self, now_ticks: u64) -> bool {
        self.lease_end_ticks.is_some_and(|end| now_ticks < end)
    }

    /// A leadership transfer began: the lease ends now and is not renewed in this term.
    pub(crate) fn forbid_lease(&mut self) {
        self.lease_end_ticks = None;
        self.lease_forbidden = true;
    }

    /// This peer just became leader: it holds no lease until a majority echoes one of its
    /// heartbeats.
    pub(crate) fn start_term_as_leader(&mut self) {
        self.broadcasts.clear();
        self.lease_end_ticks = None;
        self.lease_forbidden = false;
    }

    pub(crate) fn has_output(&self) -> bool {
        self.heartbeat_due || !self.ready.is_empty() || !self.failed.is_empty()
    }

    pub(crate) fn take_output(&mut self) -> (Vec<ReadState>, Vec<ReadContext>) {
        (
            std::mem::take(&mut self.ready),
            std::mem::take(&mut self.failed),
        )
    }

    fn is_full(&self) -> bool {
        self.pending.len() + self.waiting_for_commit.len() + self.forwarded.len() >= self.capacity
    }

    /// The known leader changed: reads forwarded to the old one will not be answered.
    pub(crate) fn leader_changed(&mut self, _new_leader: Option<NodeId>, _own: NodeId) {
        for (context, _, _) in self.forwarded.drain(..) {
            self.failed.push(context);
        }
    }
}

impl ReadIndexState {
    /// Adds every broken invariant of the read bookkeeping to `out`, for a peer that `leads`
    /// (or not), is committed through `committed` and whose clock reads `now_ticks`.
    pub(crate) fn collect_violations(
        &self,
        leads: bool,
        committed: Index,
        now_ticks: u64,
        out: &mut Violations,
    ) {
        let held = self.pending.len() + self.waiting_for_commit.len() + self.forwarded.len();
        out.check(held <= self.capacity, "reads-bounded", || {
            format!("{held} reads held, capacity {}", self.capacity)
        });
        let round = self.round;
        let mut previous = 0;
        let unordered = self.pending.iter().find(|read| {
            let misplaced = read.round < previous || read.round > round || read.index > committed;
            previous = read.round;
            misplaced
        });
        out.check(unordered.is_none(), "reads-pending-ordered", || {
            format!(
                "pending read {unordered:?}: rounds must not decrease or pass {round}, indexes not pass commit {committed}"
            )
        });
        let echoed_ahead = self.acked_rounds.iter().find(|(_, &acked)| acked > round);
        out.check(echoed_ahead.is_none(), "reads-echo-not-ahead", || {
            format!("{echoed_ahead:?} echoed beyond the latest round {round}")
        });
        let mut broadcasts = self.broadcasts.iter().zip(self.broadcasts.iter().skip(1));
        let ordered = broadcasts.all(|(before, after)| before.0 < after.0 && before.1 < after.1)
            && self
                .broadcasts
                .back()
                .is_none_or(|&(tick, broadcast_round)| {
                    tick <= now_ticks && broadcast_round <= round
                });
        out.check(ordered, "lease-broadcasts-ordered", || {
            format!(
                "broadcasts {:?} at tick {now_ticks}, round {round}",
                self.broadcasts
            )
        });
        if let Some(lease_ticks) = self.lease_ticks {
            out.check(
                self.broadcasts.len() as u64 <= lease_ticks + 1,
                "lease-broadcasts-bounded",
                || {
                    format!(
                        "{} broadcasts, lease of {lease_ticks} ticks",
                        self.broadcasts.len()
                    )
                },
            );
        }
        let lease_end = self.lease_end_ticks;
        let lease_bounded = match (lease_end, self.lease_ticks) {
            (None, _) => true,
            (Some(end), Some(lease_ticks)) => {
                leads && !self.lease_forbidden && end <= now_ticks + lease_ticks
            }
            (Some(_), None) => false,
        };
        out.check(lease_bounded, "lease-only-on-leader", || {
            format!(
                "lease until tick {lease_end:?} at tick {now_ticks} (leader: {leads}, forbidden: {}, lease ticks {:?})",
                self.lease_forbidden, self.lease_ticks
            )
        });
        if leads {
            out.check(
                self.forwarded.is_empty(),
                "reads-forwarded-only-by-followers",
                || format!("a leader holds {} forwarded reads", self.forwarded.len()),
            );
        } else {
            let leader_state = self.pending.len()
                + self.waiting_for_commit.len()
                + self.acked_rounds.len()
                + self.broadcasts.len();
            out.check(
                leader_state == 0 && !self.heartbeat_due,
                "reads-leader-state-only-on-leader",
                || {
                    format!(
                        "not leading, yet {} pending, {} waiting for commit, {} echoes, {} broadcasts, heartbeat due {}",
                        self.pending.len(),
                        self.waiting_for_commit.len(),
                        self.acked_rounds.len(),
                        self.broadcasts.len(),
                        self.heartbeat_due
                    )
                },
            );
        }
    }

    /// Whether reads wait for this leader to commit an entry of its term.
    pub(crate) fn waiting_for_commit(&self) -> usize {
        self.waiting_for_commit.len()
    }
}

impl<S: Storage> Raft<S> {
    /// Requests a linearizable read. When it is safe, a [`ReadState`] with `context` arrives in
    /// a later [`crate::Ready`]; the service serves the read once it has applied its index.
    /// On a follower the request is forwarded to the leader.
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ProposeError> {
        let result = self.read_index_inner(context);
        self.debug_check_invariants();
        result
    }

    fn read_index_inner(&mut self, context: ReadContext) -> Result<(), ProposeError> {
        self.refuse_if_stopped()?;
        if self.reads.is_full() {
            return Err(ProposeError::Busy);
        }
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                self.leader_read(self.id, context);
                Ok(())
            }
            (Role::Follower, Some(leader)) => {
                self.reads.forwarded.push_back((context, leader, 0));
                self.send(leader, MessageBody::ReadIndexRequest { context });
                Ok(())
            }
            _ => Err(ProposeError::NotLeader { leader: None }),
        }
    }

    /// Requests a read served on the leader's lease (thesis §6.4.1). While the lease holds
    /// and the leader has committed an entry of its term, the [`ReadState`] (at the commit
    /// index) arrives at the next [`crate::Ready`] with no message exchanged; otherwise this is
    /// [`Raft::read_index`], whose confirmation round also renews the lease. Only the leader
    /// serves lease reads: a follower refuses with `NotLeader`, naming the leader to forward
    /// to. Safe as long as no peer's clock runs faster than `Config::lease_margin_ticks`
    /// allows; without `Config::check_quorum` every lease read takes a round.
    pub fn lease_read(&mut self, context: ReadContext) -> Result<(), ProposeError> {
        let result = self.lease_read_inner(context);
        self.debug_check_invariants();
        result
    }

    fn lease_read_inner(&mut self, context: ReadContext) -> Result<(), ProposeError> {
        self.refuse_if_stopped()?;
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.reads.is_full() {
            return Err(ProposeError::Busy);
        }
        let lease_holds = self.lease_holds();
        if lease_holds {
            assert!(
                self.transfer_target.is_none(),
                "invariant lease-ends-on-transfer"
            );
        }
        if lease_holds && self.committed_in_term() {
            let index = self.log.committed();
            self.reads.ready.push(ReadState { context, index });
            self.counters.lease_reads += 1;
            return Ok(());
        }
        self.leader_read(self.id, context);
        Ok(())
    }

    /// Whether this leader's lease holds now.
    pub(crate) fn lease_holds(&self) -> bool {
        if self.reads.lease_holds(self.now_ticks) {
            assert!(self.role == Role::Leader, "invariant lease-only-on-leader");
            return true;
        }
        false
    }

    /// Whether the commit index is of this term: before that, it may be behind what earlier
    /// leaders committed (thesis §6.4 step 1).
    fn committed_in_term(&self) -> bool {
        let committed = self.log.committed();
        self.log.term(committed).is_ok_and(|term| term == self.term)
    }

    fn leader_read(&mut self, origin: NodeId, context: ReadContext) {
        assert!(
            self.role == Role::Leader,
            "precondition reads-confirmed-by-leader: {:?}",
            self.role
        );
        let committed = self.log.committed();
        if !self.committed_in_term() {
            // Until the no-op of this term commits, the leader's commit index may be behind
            // what earlier leaders committed (thesis §6.4 step 1).
            self.reads.waiting_for_commit.push_back((origin, context));
            return;
        }
        let own = self.id;
        if is_majority(&self.configuration, |id| id == own) {
            // This leader alone is a quorum: there is nobody to confirm with.
            self.complete_read(origin, context, committed);
            return;
        }
        if !self.reads.heartbeat_due {
            self.reads.round += 1;
            self.reads.heartbeat_due = true;
        }
        let round = self.reads.round;
        self.reads.pending.push_back(PendingRead {
            origin,
            context,
            index: committed,
            round,
        });
    }

    fn complete_read(&mut self, origin: NodeId, context: ReadContext, index: Index) {
        // A read index is a commit index of this leader's term (thesis §6.4 step 1).
        assert!(
            index <= self.log.committed(),
            "precondition read-index-committed: {index} beyond commit {}",
            self.log.committed()
        );
        if origin == self.id {
            self.reads.ready.push(ReadState { context, index });
        } else {
            self.send(
                origin,
                MessageBody::ReadIndexResponse {
                    context,
                    index: Some(index),
                },
            );
        }
    }

    pub(crate) fn start_reads_waiting_for_commit(&mut self) {
        let waiting = std::mem::take(&mut self.reads.waiting_for_commit);
        for (origin, context) in waiting {
            self.leader_read(origin, context);
        }
    }

    /// A heartbeat answer echoing `round`: reads of rounds a majority has echoed are safe, and
    /// the lease is renewed from the broadcast of that round.
    pub(crate) fn acknowledge_read_round(&mut self, from: NodeId, round: u64) {
        assert!(
            self.role == Role::Leader && from != self.id,
            "precondition echo-to-leader: {:?} hearing {from}",
            self.role
        );
        let acked = self.reads.acked_rounds.entry(from).or_insert(0);
        *acked = (*acked).max(round.min(self.reads.round));
        if self.reads.pending.is_empty() && self.reads.broadcasts.is_empty() {
            return;
        }
        let own = self.id;
        let own_round = self.reads.round;
        let confirmed = majority_value(&self.configuration, |id| {
            if id == own {
                Some(own_round)
            } else {
                self.reads.acked_rounds.get(&id).copied()
            }
        });
        self.reads.renew_lease(confirmed);
        while self
            .reads
            .pending
            .front()
            .is_some_and(|read| read.round <= confirmed)
        {
            if let Some(read) = self.reads.pending.pop_front() {
                self.complete_read(read.origin, read.context, read.index);
            }
        }
        debug_assert!(
            self.reads.pending.iter().all(|read| read.round > confirmed),
            "postcondition confirmed-reads-released: round {confirmed} confirmed"
        );
    }

    pub(crate) fn handle_read_index_request(
        &mut self,
        from: NodeId,
        context: ReadContext,
    ) -> Result<(), StepError> {
        assert!(from != self.id, "precondition read-from-another: {from}");
        if self.role != Role::Leader || self.reads.is_full() {
            self.send(
                from,
                MessageBody::ReadIndexResponse {
                    context,
                    index: None,
                },
            );
            return Ok(());
        }
        // The follower serves the read once it has applied through the read's index: a spare
        // must not wait for its next flush for that.
        self.spare_flush_due = true;
        self.replication_due = true;
        self.note_client_traffic(from);
        self.leader_read(from, context);
        Ok(())
    }

    pub(crate) fn handle_read_index_response(
        &mut self,
        from: NodeId,
        context: ReadContext,
        index: Option<Index>,
    ) -> Result<(), StepError> {
        let position = self
            .reads
            .forwarded
            .iter()
            .position(|&(pending, leader, _)| pending == context && leader == from);
        let Some(position) = position else {
            return Err(StepError::Ignored("read response for an unknown request"));
        };
        assert!(
            self.role != Role::Leader,
            "invariant reads-forwarded-only-by-followers: a leader forwarded {context}"
        );
        self.reads.forwarded.remove(position);
        match index {
            Some(index) => self.reads.ready.push(ReadState { context, index }),
            None => self.reads.failed.push(context),
        }
        Ok(())
    }

    /// A leader stepping down fails every read it holds: it can no longer confirm them.
    pub(crate) fn fail_reads_held_as_leader(&mut self) {
        let pending: Vec<(NodeId, ReadContext)> = self
            .reads
            .pending
            .drain(..)
            .map(|read| (read.origin, read.context))
            .chain(self.reads.waiting_for_commit.drain(..))
            .collect();
        for (origin, context) in pending {
            if origin == self.id {
                self.reads.failed.push(context);
            } else {
                self.send(
                    origin,
                    MessageBody::ReadIndexResponse {
                        context,
                        index: None,
                    },
                );
            }
        }
        assert!(
            self.reads.pending.is_empty() && self.reads.waiting_for_commit.is_empty(),
            "postcondition leader-reads-failed"
        );
        self.reads.acked_rounds.clear();
        self.reads.heartbeat_due = false;
        // Stepping down ends the lease: a later term may already have a leader.
        self.reads.broadcasts.clear();
        self.reads.lease_end_ticks = None;
    }

    /// Fails forwarded reads the leader has not answered within two election timeouts (the
    /// request or its answer was lost).
    pub(crate) fn tick_forwarded_reads(&mut self) {
        let limit = 2 * self.config.election_ticks;
        for entry in self.reads.forwarded.iter_mut() {
            entry.2 += 1;
        }
        while self
            .reads
            .forwarded
            .front()
            .is_some_and(|&(_, _, age)| age >= limit)
        {
            if let Some((context, _, _)) = self.reads.forwarded.pop_front() {
                self.reads.failed.push(context);
            }
        }
        // Ages grow together, oldest first: the front is the only one that can expire.
        debug_assert!(
            self.reads.forwarded.iter().all(|&(_, _, age)| age < limit),
            "postcondition forwarded-reads-expire: older than {limit} ticks kept"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::invariants_tests::{assert_breaks, follower, leader_with_learner};

    #[test]
    fn read_bookkeeping_is_checked() {
        let pending = |round: u64, index: u64| PendingRead {
            origin: NodeId(1),
            context: 7,
            index: Index(index),
            round,
        };
        assert_breaks(leader_with_learner(), "reads-bounded", |raft| {
            let capacity = raft.reads.capacity;
            for _ in 0..=capacity {
                raft.reads.pending.push_back(pending(raft.reads.round, 1));
            }
        });
        assert_breaks(leader_with_learner(), "reads-pending-ordered", |raft| {
            raft.reads
                .pending
                .push_back(pending(raft.reads.round + 1, 1))
        });
        assert_breaks(leader_with_learner(), "reads-pending-ordered", |raft| {
            raft.reads.pending.push_back(pending(raft.reads.round, 60))
        });
        assert_breaks(leader_with_learner(), "reads-echo-not-ahead", |raft| {
            raft.reads
                .acked_rounds
                .insert(NodeId(2), raft.reads.round + 1);
        });
        assert_breaks(leader_with_learner(), "lease-broadcasts-ordered", |raft| {
            raft.reads
                .broadcasts
                .push_back((raft.now_ticks + 1, raft.reads.round))
        });
        assert_breaks(leader_with_learner(), "lease-broadcasts-bounded", |raft| {
            let lease_ticks = raft.reads.lease_ticks.expect("CheckQuorum is on");
            raft.reads.broadcasts.clear();
            for step in 0..=lease_ticks + 1 {
                raft.reads.broadcasts.push_back((step, step));
            }
            raft.now_ticks = raft.now_ticks.max(lease_ticks + 1);
            raft.reads.round = raft.reads.round.max(lease_ticks + 1);
        });
        assert_breaks(follower(), "lease-only-on-leader", |raft| {
            raft.reads.lease_end_ticks = Some(raft.now_ticks + 1)
        });
        assert_breaks(leader_with_learner(), "lease-only-on-leader", |raft| {
            raft.reads.lease_end_ticks = Some(raft.now_ticks + 1000)
        });
        assert_breaks(
            leader_with_learner(),
            "reads-forwarded-only-by-followers",
            |raft| raft.reads.forwarded.push_back((7, NodeId(2), 0)),
        );
        assert_breaks(follower(), "reads-leader-state-only-on-leader", |raft| {
            raft.reads.heartbeat_due = true
        });
        assert_breaks(
            leader_with_learner(),
            "reads-wait-only-before-first-commit",
            |raft| raft.reads.waiting_for_commit.push_back((NodeId(1), 7)),
        );
    }
}
