//! Client requests on a peer: proposals, linearizable reads and leadership transfers.
//!
//! ```text
//!  start(p, cmd) ─► propose ─► Flush event ─► the driving loop sends the entries
//!  start_or_forward(p, cmd) ─► a leader: as start; a follower: forwarded at its next ready,
//!                              the outcome recorded in forward_outcomes
//!  read_index(p) ─► read check begins (floor: everything committed now) ─► Flush
//!  lease_read(p) ─► the same check; a leader whose lease holds answers at the next ready()
//!  propose_conf_change(p, change) ─► the configuration entry, in effect at once ─► Flush
//! ```

use bytes::Bytes;
use raft_core::{ConfChange, ConfChangeError, LogId, NodeId, Proposal, ProposeError};

use super::Cluster;
use crate::trace::{hash_bytes, TraceEvent};

impl Cluster {
    /// Proposes `command` on `peer` (6.824's `Start`). Returns the id the entry will have if it
    /// commits, or `None` when the peer is down or not the leader.
    pub fn start(&mut self, peer: NodeId, command: Bytes) -> Option<LogId> {
        let index = self.peer_index(peer);
        let hash = hash_bytes(&command);
        let node = self.peers[index].node.as_mut()?;
        let id = node.propose(command).ok()?;
        self.peers[index].proposals.insert(id.index, (id, hash));
        self.counters.proposals += 1;
        self.trace
            .record(self.now_us, TraceEvent::Propose { peer: peer.0, id });
        self.schedule_flush(index);
        Some(id)
    }

    /// Proposes `command` on `peer` wherever it stands ([`raft_core::Raft::propose_or_forward`]):
    /// a leader places it as [`Cluster::start`] does; a follower forwards it to its leader,
    /// and the outcome appears in [`Cluster::forward_outcomes`] (none if the peer crashes
    /// first). A down peer refuses with `NotLeader`.
    pub fn start_or_forward(
        &mut self,
        peer: NodeId,
        command: Bytes,
    ) -> Result<Proposal, ProposeError> {
        let index = self.peer_index(peer);
        let hash = hash_bytes(&command);
        let Some(node) = self.peers[index].node.as_mut() else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        let proposal = node.propose_or_forward(command.clone())?;
        match proposal {
            Proposal::Placed(id) => {
                self.peers[index].proposals.insert(id.index, (id, hash));
                self.counters.proposals += 1;
                self.trace
                    .record(self.now_us, TraceEvent::Propose { peer: peer.0, id });
            }
            Proposal::Forwarded(forward) => {
                self.peers[index].forwards.insert(forward, command);
                self.trace.record(
                    self.now_us,
                    TraceEvent::Note(format!("n{} forwards {forward:?}", peer.0)),
                );
            }
        }
        self.schedule_flush(index);
        Ok(proposal)
    }

    /// Requests a linearizable read on `peer`. Returns the read's context; its answer appears
    /// in [`Cluster::reads`] (or [`Cluster::failed_reads`]).
    pub fn read_index(&mut self, peer: NodeId) -> Result<u64, ProposeError> {
        self.begin_read(peer, false)
    }

    /// Requests a lease read on `peer` (only a leader takes it); checked like
    /// [`Cluster::read_index`]: the answer must cover every write committed before it began.
    pub fn lease_read(&mut self, peer: NodeId) -> Result<u64, ProposeError> {
        self.begin_read(peer, true)
    }

    fn begin_read(&mut self, peer: NodeId, lease: bool) -> Result<u64, ProposeError> {
        let index = self.peer_index(peer);
        let context = self.next_read_context;
        let committed = self.invariants.committed.max();
        let Some(node) = self.peers[index].node.as_mut() else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        if lease {
            let served_before = node.counters().lease_reads;
            node.lease_read(context)?;
            self.counters.lease_reads += node.counters().lease_reads - served_before;
        } else {
            node.read_index(context)?;
        }
        self.next_read_context += 1;
        self.invariants.reads.begin(context, peer, committed);
        let kind = if lease { "lease_read" } else { "read_index" };
        self.trace.record(
            self.now_us,
            TraceEvent::Note(format!("n{} {kind} ctx={context}", peer.0)),
        );
        self.schedule_flush(index);
        Ok(context)
    }

    /// Proposes a membership change on `leader` (see `raft_core::ConfChange`). The change is
    /// in effect on the leader at once; a voter change completes by itself once its joint
    /// configuration commits.
    pub fn propose_conf_change(
        &mut self,
        leader: NodeId,
        change: ConfChange,
    ) -> Result<LogId, ConfChangeError> {
        let index = self.peer_index(leader);
        let Some(node) = self.peers[index].node.as_mut() else {
            return Err(ConfChangeError::NotLeader { leader: None });
        };
        let id = node.propose_conf_change(change)?;
        self.trace.record(
            self.now_us,
            TraceEvent::Note(format!("n{} proposes {change:?} at {id}", leader.0)),
        );
        self.schedule_flush(index);
        Ok(id)
    }

    /// Asks `leader` to hand leadership to `target`.
    pub fn transfer_leader(&mut self, leader: NodeId, target: NodeId) -> Result<(), ProposeError> {
        let index = self.peer_index(leader);
        let Some(node) = self.peers[index].node.as_mut() else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        node.transfer_leader(target)?;
        self.trace.record(
            self.now_us,
            TraceEvent::Note(format!("n{} transfer leadership to {target}", leader.0)),
        );
        self.schedule_flush(index);
        Ok(())
    }
}
