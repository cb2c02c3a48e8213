//! Proposals a follower forwards to its leader over the Raft transport
//! ([`Raft::propose_or_forward`]), as etcd's followers do, instead of refusing them with
//! `NotLeader`.
//!
//! ```text
//!  follower                                                   leader (of the message's term)
//!  propose_or_forward(data) ─► outbox ─ ready() ─► ForwardProposal{session, first_id, [data..]}
//!      = Forwarded(id)          (one message per round,        │ window: ids above the sender's
//!                                batch_max proposals)          │ high mark, else dropped
//!                                                              ▼
//!                                                  each: the checks of propose(), appended or
//!                                                  refused ─► ForwardProposalResponse{session,
//!  Ready::forwarded ◄─ (id, Ok(LogId) | Err(Refused(..))) ◄──   first_id, [outcome..]}
//!  Ready::forwarded ◄─ (id, Err(Unanswered)): leader or term changed, or no answer within
//!                      FORWARD_ANSWER_ELECTION_TIMEOUTS election timeouts
//! ```
//!
//! **Never appended twice.** The network may duplicate, delay and reorder a
//! `ForwardProposal`, and a follower may restart. Three rules keep every forwarded proposal
//! appended at most once, and an answer about it true:
//! 1. Term: a follower forwards only to the leader it heard from in its current term and stamps
//!    the message with that term. A peer of any later term drops the message as stale (§5.1),
//!    so no later leader appends it; and a peer leads a term at most once.
//! 2. Window: the leader of a term keeps, per sender and per sender *session*, the highest
//!    forward id it has handled in that term (ids of one session only grow; a batch carries
//!    consecutive ids). A batch whose first id is not above that mark is a duplicate or came
//!    late, and is dropped unanswered; otherwise the mark moves past the whole batch before any
//!    of it is appended. So each id is appended, or refused, at most once, and answered once.
//!    The windows are created when the peer becomes leader and are only valid in that term, in
//!    that incarnation: a peer that restarted, or never led the term, drops forwarded proposals
//!    without an answer (a dropped copy of a batch it appended before it restarted must not be
//!    answered "refused"). At most [`SESSIONS_PER_SENDER_MAX`] sessions per sender are tracked
//!    in a term; a sender that restarted more often than that in one term is not served (its
//!    batches are dropped) until the next term, rather than a session being forgotten.
//! 3. Session: a follower's forward ids restart at 1 when the peer is created, so they are
//!    qualified by a session number drawn from the peer's random generator at creation. This
//!    needs the seed ([`crate::Config::seed`]) to differ between incarnations of a peer, as
//!    raft-node's (one per process) and the simulator's (one per restart) do; two incarnations
//!    drawing the same 64-bit session is as likely as a collision of random numbers.
//!
//! **Unanswered.** An answer can fail to come: the message or its answer lost, the leader
//! deposed or crashed. A follower waits for the answers of the leader and term it forwarded to
//! only while both stay what they were, and for at most [`FORWARD_ANSWER_ELECTION_TIMEOUTS`]
//! election timeouts; then it reports [`ForwardError::Unanswered`]: the proposal may be in the
//! log or not, and if its entry commits it is applied as any other. A late answer after that
//! is ignored.
//!
//! **Bounds.** A follower holds at most `Config::forwards_pending_max` forwarded proposals
//! waiting to be sent or answered (`Busy` beyond); a message carries at most
//! `Config::forward_batch_max` proposals and `Config::message_bytes_max` bytes of them (at
//! least one), and a leader drops a message with more proposals as invalid.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use thiserror::Error;

use crate::error::ProposeError;
use crate::invariant::Violations;
use crate::message::MessageBody;
use crate::raft::{Raft, StepError};
use crate::storage::Storage;
use crate::types::{EntryKind, LogId, NodeId, Role, Term};

#[cfg(doc)]
use crate::ready::Ready;

/// The number a follower gives a proposal it forwards to the leader
/// ([`Proposal::Forwarded`]); the outcome comes back in [`Ready::forwarded`] under it. Unique
/// for the life of the peer (it counts from 1 when the peer is created).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ForwardId(pub u64);

/// Where [`Raft::propose_or_forward`] put a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proposal {
    /// This peer leads: the entry is in its log with this id, exactly as from
    /// [`Raft::propose`].
    Placed(LogId),
    /// This peer forwarded it to the leader; the outcome comes in [`Ready::forwarded`].
    Forwarded(ForwardId),
}

/// Why a forwarded proposal has no place in the log that the follower knows of.
#[derive(Debug, Error, Clone, PartialEq, Eq, Hash)]
pub enum ForwardError {
    /// The leader refused it (or it was never sent: the leader changed first): it is
    /// definitely not in the log, and never will be from this forward.
    #[error("refused by the leader: {0}")]
    Refused(ProposeError),
    /// No answer can come any more (the leader or term changed, or none came in time): the
    /// proposal may or may not be in the log. If its entry is committed, it is applied as
    /// usual.
    #[error("the leader's answer did not come: the proposal may or may not be in the log")]
    Unanswered,
}

/// What a leader says of one forwarded proposal: the id of its entry, or why it refused it.
pub type ForwardOutcome = Result<LogId, ProposeError>;

/// A follower gives up waiting for an answer after this many election timeouts
/// (`Config::election_ticks` each): long enough for a healthy leader's answer to come through
/// a slow network, short enough that a lost answer does not hold a client for long.
pub const FORWARD_ANSWER_ELECTION_TIMEOUTS: u32 = 2;

/// Sessions (incarnations) of one sender whose windows a leader keeps in a term.
pub const SESSIONS_PER_SENDER_MAX: usize = 4;

/// A batch the follower has sent and waits for the answers of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct InFlight {
    first: u64,
    count: u64,
    sent_tick: u64,
}

/// Both sides' bookkeeping of forwarded proposals.
#[derive(Clone, Debug)]
pub(crate) struct Forwards {
    /// This incarnation's session number (see the module comment, rule 3).
    session: u64,
    /// The id the next forwarded proposal gets. Invariant: above every id held below.
    next_id: u64,
    /// Follower: the leader and term every proposal in `outbox` and `in_flight` was forwarded
    /// to. Invariant: when either holds any, equal to the peer's leader and term.
    target: Option<(NodeId, Term)>,
    /// Follower: proposals to send at the next `ready()`, ids ascending and consecutive.
    outbox: VecDeque<(ForwardId, Bytes)>,
    /// Follower: batches sent, oldest first, ids ascending and all below `outbox`'s.
    in_flight: VecDeque<InFlight>,
    /// Follower: proposals in `in_flight`. Invariant: the sum of their counts.
    in_flight_count: u64,
    /// Outcomes to hand out at the next `ready()`.
    answers: Vec<(ForwardId, Result<LogId, ForwardError>)>,
    /// Leader: the term `windows` are for; `None` until this incarnation leads.
    windows_term: Option<Term>,
    /// Leader: per sender, the highest forward id handled per session, in `windows_term`.
    /// Invariant: at most `SESSIONS_PER_SENDER_MAX` sessions per sender.
    windows: BTreeMap<NodeId, Vec<(u64, u64)>>,
}

impl Forwards {
    pub(crate) fn new(session: u64) -> Forwards {
        Forwards {
            session,
            next_id: 1,
            target: None,
            outbox: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_count: 0,
            answers: Vec::new(),
            windows_term: None,
            windows: BTreeMap::new(),
        }
    }

    fn held(&self) -> usize {
        self.outbox.len() + self.in_flight_count as usize
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.outbox.is_empty() || !self.answers.is_empty()
    }

    pub(crate) fn take_answers(&mut self) -> Vec<(ForwardId, Result<LogId, ForwardError>)> {
        std::mem::take(&mut self.answers)
    }

    /// The peer's leader or term is now `leader` in `term`: what was forwarded elsewhere gets
    /// no answer. Proposals never sent are refused as the peer would refuse them now (they are
    /// certainly not in any log); those sent are unanswered.
    pub(crate) fn follow(&mut self, leader: Option<NodeId>, term: Term, own: NodeId) {
        let Some(target) = self.target else {
            return;
        };
        if leader.map(|leader| (leader, term)) == Some(target) {
            return;
        }
        let hint = leader.filter(|&leader| leader != own);
        for (id, _) in self.outbox.drain(..) {
            self.answers.push((
                id,
                Err(ForwardError::Refused(ProposeError::NotLeader {
                    leader: hint,
                })),
            ));
        }
        for batch in self.in_flight.drain(..) {
            for id in batch.first..batch.first + batch.count {
                self.answers
                    .push((ForwardId(id), Err(ForwardError::Unanswered)));
            }
        }
        self.in_flight_count = 0;
        self.target = None;
    }

    /// Batches sent at or before `now_ticks - wait_ticks` are given up as unanswered.
    pub(crate) fn expire(&mut self, now_ticks: u64, wait_ticks: u64) {
        while let Some(batch) = self
            .in_flight
            .front()
            .filter(|batch| batch.sent_tick + wait_ticks <= now_ticks)
        {
            let (first, count) = (batch.first, batch.count);
            for id in first..first + count {
                self.answers
                    .push((ForwardId(id), Err(ForwardError::Unanswered)));
            }
            self.in_flight_count -= count;
            self.in_flight.pop_front();
        }
    }

    /// Cuts the outbox into messages of at most `batch_max` proposals and `bytes_max` bytes
    /// (one proposal at least), remembering each as in flight since `now_ticks`.
    fn take_batches(
        &mut self,
        batch_max: usize,
        bytes_max: u64,
        now_ticks: u64,
    ) -> Vec<MessageBody> {
        let mut bodies = Vec::new();
        while let Some(&(ForwardId(first), _)) = self.outbox.front() {
            let mut proposals = Vec::new();
            let mut bytes = 0u64;
            while let Some((_, data)) = self.outbox.front() {
                let size = data.len() as u64;
                if proposals.len() == batch_max
                    || (!proposals.is_empty() && bytes + size > bytes_max)
                {
                    break;
                }
                bytes += size;
                if let Some((_, data)) = self.outbox.pop_front() {
                    proposals.push(data);
                }
            }
            let count = proposals.len() as u64;
            assert!(count > 0, "invariant forward-batch-not-empty");
            self.in_flight.push_back(InFlight {
                first,
                count,
                sent_tick: now_ticks,
            });
            self.in_flight_count += count;
            bodies.push(MessageBody::ForwardProposal {
                session: self.session,
                first_id: first,
                proposals,
            });
        }
        bodies
    }

    /// The answers of a leader to the batch that began at `first_id`: those still awaited are
    /// handed out; the rest (given up already, or never sent by this incarnation) ignored.
    fn answer(&mut self, first_id: u64, outcomes: Vec<ForwardOutcome>) {
        let Some(position) = self
            .in_flight
            .iter()
            .position(|batch| batch.first == first_id)
        else {
            return;
        };
        // The leader answers a whole batch; a different count is no answer to it.
        if self.in_flight[position].count != outcomes.len() as u64 {
            return;
        }
        self.in_flight.remove(position);
        self.in_flight_count -= outcomes.len() as u64;
        for (offset, outcome) in (0u64..).zip(outcomes) {
            let id = ForwardId(first_id + offset);
            self.answers
                .push((id, outcome.map_err(ForwardError::Refused)));
        }
    }

    /// The peer became leader of `term`: its windows start empty for it.
    pub(crate) fn start_term_as_leader(&mut self, term: Term) {
        self.windows_term = Some(term);
        self.windows.clear();
    }

    /// Moves the window of `sender`'s `session` past the batch `first_id .. first_id + count`
    /// if the batch lies wholly above it; `Err` names why it does not.
    fn admit(
        &mut self,
        sender: NodeId,
        session: u64,
        first_id: u64,
        count: u64,
    ) -> Result<(), StepError> {
        let sessions = self.windows.entry(sender).or_default();
        let slot = match sessions.iter().position(|&(known, _)| known == session) {
            Some(slot) => slot,
            None if sessions.len() < SESSIONS_PER_SENDER_MAX => {
                sessions.push((session, 0));
                sessions.len() - 1
            }
            None => {
                return Err(StepError::Ignored(
                    "forwarded proposals: too many sessions of this sender in this term",
                ))
            }
        };
        let high = &mut sessions[slot].1;
        if first_id <= *high {
            return Err(StepError::Ignored(
                "forwarded proposals: duplicate or late batch",
            ));
        }
        *high = first_id + count - 1;
        Ok(())
    }

    pub(crate) fn collect_violations(
        &self,
        leads: bool,
        leader_and_term: (Option<NodeId>, Term),
        capacity: usize,
        out: &mut Violations,
    ) {
        let held = self.held();
        out.check(held <= capacity, "forwards-bounded", || {
            format!("{held} forwarded proposals held, capacity {capacity}")
        });
        let counted: u64 = self.in_flight.iter().map(|batch| batch.count).sum();
        out.check(
            counted == self.in_flight_count,
            "forwards-count-sum",
            || format!("{counted} in flight, counted {}", self.in_flight_count),
        );
        let mut expected = None;
        let mut ordered = true;
        let ids = self
            .in_flight
            .iter()
            .map(|batch| (batch.first, batch.first + batch.count))
            .chain(self.outbox.iter().map(|&(ForwardId(id), _)| (id, id + 1)));
        for (start, end) in ids {
            ordered &= expected.is_none_or(|expected| start >= expected) && end > start;
            expected = Some(end);
        }
        ordered &= expected.is_none_or(|end| end <= self.next_id);
        out.check(ordered, "forwards-ids-ascending", || {
            format!(
                "in flight {:?}, outbox from {:?}, next id {}",
                self.in_flight,
                self.outbox.front().map(|(id, _)| id),
                self.next_id
            )
        });
        if held > 0 {
            let (leader, term) = leader_and_term;
            let current = leader.map(|leader| (leader, term));
            out.check(
                !leads && self.target.is_some() && self.target == current,
                "forwards-to-current-leader",
                || {
                    format!(
                        "{held} forwarded to {:?}, but the peer follows {current:?} (leads: {leads})",
                        self.target
                    )
                },
            );
        }
        let crowded = self
            .windows
            .iter()
            .find(|(_, sessions)| sessions.len() > SESSIONS_PER_SENDER_MAX);
        out.check(crowded.is_none(), "forward-windows-bounded", || {
            format!("{crowded:?}")
        });
    }

    /// The state that decides what the peer does next, for `Raft::hash_state`.
    pub(crate) fn hash_state<H: std::hash::Hasher>(&self, hasher: &mut H) {
        use std::hash::Hash;
        self.next_id.hash(hasher);
        self.target.hash(hasher);
        self.outbox.hash(hasher);
        for batch in &self.in_flight {
            (batch.first, batch.count).hash(hasher);
        }
        self.answers.len().hash(hasher);
        self.windows_term.hash(hasher);
        self.windows.hash(hasher);
    }
}

impl<S: Storage> Raft<S> {
    /// Proposes a command wherever this peer stands: on the leader, exactly
    /// [`Raft::propose`] ([`Proposal::Placed`]); on a follower or learner that knows the
    /// leader of its term, the command is forwarded to it in a
    /// [`MessageBody::ForwardProposal`] at the next [`Raft::ready`] (with the others of the
    /// round) and its outcome comes in [`Ready::forwarded`] under the returned
    /// [`Proposal::Forwarded`] id: the entry's id, a refusal (definitely not in the log), or
    /// [`ForwardError::Unanswered`]. See the module `forward.rs` for why a forwarded proposal
    /// is never appended twice.
    ///
    /// Refuses as `propose` does when no leader is known (or the peer stopped):
    /// `NotLeader { leader: None }`; with `TooLarge` a proposal no leader of the same
    /// configuration would take; with `Busy` when `Config::forwards_pending_max` proposals wait
    /// to be sent or answered already.
    pub fn propose_or_forward(&mut self, data: Bytes) -> Result<Proposal, ProposeError> {
        let result = self.propose_or_forward_inner(data);
        self.debug_check_invariants();
        result
    }

    fn propose_or_forward_inner(&mut self, data: Bytes) -> Result<Proposal, ProposeError> {
        self.refuse_if_stopped()?;
        let leader = match (self.role, self.leader) {
            (Role::Leader, _) => {
                return self
                    .propose_entry(EntryKind::Normal, data)
                    .map(Proposal::Placed)
            }
            (Role::Follower, Some(leader)) if leader != self.id => leader,
            _ => return Err(ProposeError::NotLeader { leader: None }),
        };
        let size = data.len() as u64;
        if size > self.config.proposal_bytes_max {
            return Err(ProposeError::TooLarge {
                size,
                limit: self.config.proposal_bytes_max,
            });
        }
        if self.forwards.held() >= self.config.forwards_pending_max {
            return Err(ProposeError::Busy);
        }
        let target = (leader, self.term);
        assert!(
            self.forwards.target.is_none_or(|known| known == target),
            "invariant forwards-to-current-leader: {:?} while following {target:?}",
            self.forwards.target
        );
        self.forwards.target = Some(target);
        let id = ForwardId(self.forwards.next_id);
        self.forwards.next_id += 1;
        self.forwards.outbox.push_back((id, data));
        Ok(Proposal::Forwarded(id))
    }

    /// Sends what was forwarded since the last round, batched (called by `ready()`).
    pub(crate) fn send_forwarded_proposals(&mut self) {
        let Some((leader, term)) = self.forwards.target else {
            return;
        };
        assert!(
            term == self.term && self.leader == Some(leader),
            "invariant forwards-to-current-leader: {leader} in {term}"
        );
        let bodies = self.forwards.take_batches(
            self.config.forward_batch_max,
            self.config.message_bytes_max,
            self.now_ticks,
        );
        for body in bodies {
            self.send(leader, body);
        }
    }

    /// A follower gives up on answers that did not come in time (called on every tick).
    pub(crate) fn tick_forwarded_proposals(&mut self) {
        let wait_ticks =
            u64::from(self.config.election_ticks) * u64::from(FORWARD_ANSWER_ELECTION_TIMEOUTS);
        self.forwards.expire(self.now_ticks, wait_ticks);
    }

    /// A follower's batch (module comment: rules 1 and 2). The term check has passed: the
    /// message is of this peer's term.
    pub(crate) fn handle_forward_proposal(
        &mut self,
        from: NodeId,
        session: u64,
        first_id: u64,
        proposals: Vec<Bytes>,
    ) -> Result<(), StepError> {
        let count = proposals.len() as u64;
        if count == 0 || proposals.len() > self.config.forward_batch_max {
            return Err(StepError::Invalid(
                "forwarded proposals: empty batch, or more than forward_batch_max",
            ));
        }
        if first_id == 0 || first_id.checked_add(count).is_none() {
            return Err(StepError::Invalid("forwarded proposals: ids out of range"));
        }
        if self.forwards.windows_term != Some(self.term) {
            // Not this incarnation's term as leader: whether an earlier copy was appended is
            // unknown here, so no answer may claim it was not.
            return Err(StepError::Ignored(
                "forwarded proposals to a peer that did not lead this term",
            ));
        }
        self.forwards.admit(from, session, first_id, count)?;
        self.counters.forwarded_proposals_received += count;
        self.note_client_traffic(from);
        let outcomes = proposals
            .into_iter()
            .map(|data| self.propose_entry(EntryKind::Normal, data))
            .collect();
        self.send(
            from,
            MessageBody::ForwardProposalResponse {
                session,
                first_id,
                outcomes,
            },
        );
        Ok(())
    }

    /// The leader's answers to one of this follower's batches.
    pub(crate) fn handle_forward_proposal_response(
        &mut self,
        from: NodeId,
        session: u64,
        first_id: u64,
        outcomes: Vec<ForwardOutcome>,
    ) -> Result<(), StepError> {
        if session != self.forwards.session {
            return Err(StepError::Ignored(
                "forwarded proposals: answer to another incarnation",
            ));
        }
        if self.forwards.target != Some((from, self.term)) {
            return Err(StepError::Ignored(
                "forwarded proposals: answer from a leader this peer no longer forwards to",
            ));
        }
        if outcomes
            .iter()
            .any(|outcome| outcome.as_ref().is_ok_and(|id| id.term != self.term))
        {
            return Err(StepError::Invalid(
                "forwarded proposals: placed in another term than the answer's",
            ));
        }
        self.forwards.answer(first_id, outcomes);
        Ok(())
    }
}
