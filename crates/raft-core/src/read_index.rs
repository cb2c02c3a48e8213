//! Linearizable reads by ReadIndex (thesis §6.4).
//!
//! ```text
//!  read_index(ctx) ─► leader: committed in its term? ── no ──► wait for the first commit
//!                        │ yes: index = commit, round = r
//!                        ▼
//!                     heartbeat(r) to all ── majority echoes round >= r ──► ReadState(ctx, index)
//!  follower: forward ReadIndexRequest to the leader ─► ReadIndexResponse(ctx, index)
//! ```
//!
//! Reads registered before one heartbeat broadcast share it, so many reads cost one round.

use std::collections::{BTreeMap, VecDeque};

use crate::error::ProposeError;
use crate::message::{MessageBody, ReadContext};
use crate::quorum::majority_value;
use crate::raft::{Raft, StepError};
use crate::ready::ReadState;
use crate::storage::Storage;
use crate::types::{Index, NodeId, Role};

#[derive(Debug)]
struct PendingRead {
    origin: NodeId,
    context: ReadContext,
    index: Index,
    round: u64,
}

/// Bookkeeping for reads on both sides.
#[derive(Debug)]
pub(crate) struct ReadIndexState {
    capacity: usize,
    /// The latest confirmation round. Invariant: rounds of `pending` are non-decreasing and at
    /// most `round`.
    round: u64,
    /// A heartbeat broadcast for `round` is due.
    heartbeat_due: bool,
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
    pub(crate) fn new(capacity: usize) -> ReadIndexState {
        ReadIndexState {
            capacity,
            round: 0,
            heartbeat_due: false,
            pending: VecDeque::new(),
            waiting_for_commit: VecDeque::new(),
            acked_rounds: BTreeMap::new(),
            forwarded: VecDeque::new(),
            ready: Vec::new(),
            failed: Vec::new(),
        }
    }

    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    pub(crate) fn take_heartbeat_due(&mut self) -> bool {
        std::mem::take(&mut self.heartbeat_due)
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

impl<S: Storage> Raft<S> {
    /// Requests a linearizable read. When it is safe, a [`ReadState`] with `context` arrives in
    /// a later [`crate::Ready`]; the service serves the read once it has applied its index.
    /// On a follower the request is forwarded to the leader.
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ProposeError> {
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

    fn leader_read(&mut self, origin: NodeId, context: ReadContext) {
        let committed = self.log.committed();
        let committed_in_term = self.log.term(committed).is_ok_and(|term| term == self.term);
        if !committed_in_term {
            // Until the no-op of this term commits, the leader's commit index may be behind
            // what earlier leaders committed (thesis §6.4 step 1).
            self.reads.waiting_for_commit.push_back((origin, context));
            return;
        }
        if self.configuration.voters.len() == 1 && self.configuration.contains(self.id) {
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

    /// A heartbeat answer echoing `round`: reads of rounds a majority has echoed are safe.
    pub(crate) fn acknowledge_read_round(&mut self, from: NodeId, round: u64) {
        let acked = self.reads.acked_rounds.entry(from).or_insert(0);
        *acked = (*acked).max(round.min(self.reads.round));
        if self.reads.pending.is_empty() {
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
    }

    pub(crate) fn handle_read_index_request(
        &mut self,
        from: NodeId,
        context: ReadContext,
    ) -> Result<(), StepError> {
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
        self.reads.acked_rounds.clear();
        self.reads.heartbeat_due = false;
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
    }
}
