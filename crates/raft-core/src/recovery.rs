//! Protocol-aware recovery: a peer whose storage may have lost writes it reported durable
//! ([`InitialState::possibly_lost_writes`](crate::InitialState::possibly_lost_writes)) asks
//! the other voters before it trusts its term, its vote or its log again.
//!
//! ```text
//!  new(possibly_lost_writes) ─► Probing ──majority of the OTHER voters answered──► CatchingUp
//!   (a voter with another voter)  │ drops appends, heartbeats,   adopt T1 = max(own, answers),
//!                                 │ snapshots, votes; never      vote = self ("abstain")
//!                                 │ campaigns; re-probes every            │
//!                                 │ heartbeat interval                    │ follows a leader; never
//!                                 ▼                                       │ campaigns; votes only
//!                         every peer answers a probe with its term        │ by the three rules
//!                         and last durable log, changing nothing          ▼
//!                         (a leader forgets the prober's match)
//!                                               all answered, term >= T_all with its vote
//!                                               taken, durable log >= L_all ─► a normal member
//! ```
//!
//! Three dangers, and why the rules meet them (fault model: at most one voter's durable
//! state is suspect at a time; see docs/design.md):
//! 1. Its log lost committed entries: a vote from it could elect a leader without them. It
//!    votes only for a candidate whose log is at least as up to date (§5.4.1) as the best
//!    durable log any other voter answered (`L_all`): an entry committed with its lost
//!    acknowledgement is durable on some other voter of that majority, every voter answered,
//!    and a log at least as up to date as one holding a committed entry holds that entry
//!    (Leader Completeness).
//! 2. It lost its vote in a term: voting again in it could elect two leaders. It votes only
//!    in terms above `T_all`, the highest term any other voter answered: a candidate makes
//!    its term durable before asking for votes, so every term this peer could have voted in
//!    before the crash is held by that candidate, which answered after the crash.
//! 3. Its term regressed: acknowledging a stale leader's appends could let that leader
//!    commit beside a newer one. It answers no leader until a majority of the others has
//!    answered, then adopts `T1`, the highest term among them: every term in which its lost
//!    vote or acknowledgement counted was adopted by a majority including it, which meets the
//!    answered majority (itself left out) in some other voter, so `T1` is at least that term
//!    and every older leader is refused by the usual term check (§5.1).
//!
//! A leader may still count on entries the peer acknowledged and then lost: it would never
//! send them again. So a probe makes a leader forget what it matched of the prober, and a
//! peer that may have lost writes probes its leader again whenever a commit index or an
//! append shows the leader counts on more than it holds.
//!
//! Whether the peer is recovering is not persisted: the node layer reports
//! `possibly_lost_writes` again after a crash unless it shut down cleanly while
//! [`Raft::is_recovering`] was false.

use std::collections::BTreeMap;

use crate::message::MessageBody;
use crate::quorum::is_majority_of_others;
use crate::raft::{Raft, StepError};
use crate::storage::{Storage, StorageError};
use crate::types::{Configuration, LogId, NodeId, Role, Term};

/// Where a recovering peer is (see [`RecoveryStatus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecoveryPhase {
    /// Waiting for a majority of the other voters to answer its probes: it acts as if down,
    /// answering no leader and no candidate.
    Probing,
    /// Its term is trustworthy: it follows a leader and its acknowledgements count, but it
    /// never campaigns, and it votes only for candidates that cannot be helped by what it
    /// lost.
    CatchingUp,
}

/// What [`Raft::status`] tells about a recovering peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryStatus {
    /// The phase.
    pub phase: RecoveryPhase,
    /// The other voters that answered a probe, in id order.
    pub answered: Vec<NodeId>,
    /// The other voters of the configuration in effect that have not answered yet, in id
    /// order: the peer keeps probing them.
    pub awaiting: Vec<NodeId>,
    /// `T_all`: the highest term among the answers. The peer grants no vote in a term up to
    /// it.
    pub term_floor: Term,
    /// `L_all`: the most up-to-date last durable log id among the answers of the voters of
    /// its configuration. The peer grants no vote to a candidate whose log is behind it, and
    /// recovers only once its own durable log reaches it.
    pub log_floor: LogId,
}

/// A recovering peer's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Recovery {
    pub(crate) phase: RecoveryPhase,
    /// The latest answer of each other voter: its term and last log id.
    /// Invariant: never holds this peer's own id.
    pub(crate) answers: BTreeMap<NodeId, (Term, LogId)>,
    /// Ticks since the last round of probes.
    /// Invariant: below the heartbeat interval.
    pub(crate) probe_elapsed_ticks: u32,
    /// `T1`, the term adopted when phase 1 ended.
    /// Invariant: set exactly in phase 2; the peer's term is at least it, and its vote in it
    /// is taken.
    pub(crate) adopted_term: Option<Term>,
}

impl Recovery {
    pub(crate) fn new() -> Recovery {
        Recovery {
            phase: RecoveryPhase::Probing,
            answers: BTreeMap::new(),
            probe_elapsed_ticks: 0,
            adopted_term: None,
        }
    }

    /// `T_all`: the highest answered term.
    pub(crate) fn term_floor(&self) -> Term {
        self.answers
            .values()
            .map(|&(term, _)| term)
            .max()
            .unwrap_or_default()
    }

    /// `L_all`: the most up-to-date last log id (§5.4.1 order: term, then index) answered by
    /// a voter of `configuration`. A voter removed since no longer counts: a committed entry
    /// is held by the voters that remain (thesis §4.1), and the removed one's log may hold
    /// entries that never commit.
    pub(crate) fn log_floor(&self, configuration: &Configuration) -> LogId {
        self.answers
            .iter()
            .filter(|(&voter, _)| configuration.is_voter(voter))
            .map(|(_, &(_, last_log))| last_log)
            .max_by_key(|id| (id.term, id.index))
            .unwrap_or_default()
    }
}

impl<S: Storage> Raft<S> {
    /// Whether this peer is recovering from possibly lost writes: it does not campaign, and
    /// votes only under the recovery rules. A node layer must not record a clean shutdown
    /// while this holds, so that the next start recovers again.
    pub fn is_recovering(&self) -> bool {
        self.recovery.is_some()
    }

    /// The recovery state for [`Raft::status`].
    pub(crate) fn recovery_status(&self) -> Option<RecoveryStatus> {
        let recovery = self.recovery.as_ref()?;
        Some(RecoveryStatus {
            phase: recovery.phase,
            answered: recovery.answers.keys().copied().collect(),
            awaiting: self.recovery_awaiting(recovery),
            term_floor: recovery.term_floor(),
            log_floor: recovery.log_floor(&self.configuration),
        })
    }

    /// The other voters of the configuration in effect that have not answered.
    fn recovery_awaiting(&self, recovery: &Recovery) -> Vec<NodeId> {
        let mut awaiting = self.other_voters();
        awaiting.retain(|voter| !recovery.answers.contains_key(voter));
        awaiting
    }

    /// Whether a peer starting from storage that may have lost writes must recover: only a
    /// voter with another voter to ask. A learner's acknowledgements and votes never count,
    /// and a voter alone has nobody to ask (it cannot be protected; see docs/design.md).
    pub(crate) fn needs_recovery(&self) -> bool {
        self.configuration.is_voter(self.id) && !self.other_voters().is_empty()
    }

    /// Starts recovering (at creation): the first round of probes goes out at once.
    pub(crate) fn start_recovery(&mut self) {
        assert!(
            self.recovery.is_none() && self.role == Role::Follower,
            "precondition recovery-starts-once-as-follower: {:?}",
            self.role
        );
        self.recovery = Some(Recovery::new());
        self.counters.recoveries_started += 1;
        tracing::info!(id = %self.id, term = %self.term, "storage may have lost writes; recovering");
        self.send_recovery_probes();
    }

    /// Probes every other voter that has not answered yet. A probe changes nothing durable,
    /// so it needs no write first.
    fn send_recovery_probes(&mut self) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        for voter in self.recovery_awaiting(recovery) {
            self.send(voter, MessageBody::RecoveryProbe);
        }
    }

    /// A tick of a recovering peer: probes again every heartbeat interval. It never campaigns
    /// (the caller skips the election timer).
    pub(crate) fn tick_recovery(&mut self) {
        let heartbeat_ticks = self.config.heartbeat_ticks;
        let Some(recovery) = &mut self.recovery else {
            return;
        };
        recovery.probe_elapsed_ticks += 1;
        if recovery.probe_elapsed_ticks >= heartbeat_ticks {
            recovery.probe_elapsed_ticks = 0;
            self.send_recovery_probes();
        }
    }

    /// Any peer, recovering or not, answers a probe with its current term and last log id,
    /// and changes nothing: not its term, vote, role or timers (like a pre-vote, thesis
    /// §9.6). An honest answer is all the prober needs; a term it has not adopted is no reason
    /// for this peer to move.
    ///
    /// A leader also forgets what it knew of the prober's log (`Progress::forget_match`):
    /// the prober may have lost entries it acknowledged, which the leader would otherwise
    /// never send again.
    ///
    /// The answer's last log id is the last durable one: an entry committed with the prober's
    /// lost acknowledgement is durable on some voter, which is all the prober needs, and an
    /// entry that a crash of the answerer may still lose must not become a floor nobody
    /// reaches.
    pub(crate) fn handle_recovery_probe(&mut self, from: NodeId) -> Result<(), StepError> {
        let durable_index = self.log.durable_index();
        let durable_term = match self.log.term(durable_index) {
            Ok(term) => term,
            Err(StorageError::Failed(error)) => {
                return Err(StepError::Fatal(StorageError::Failed(error)))
            }
            // A snapshot being installed: answer at the next probe.
            Err(_) => {
                return Err(StepError::Ignored(
                    "recovery probe while installing a snapshot",
                ))
            }
        };
        let last_log = LogId::new(durable_term, durable_index);
        if self.role == Role::Leader {
            if let Some(progress) = self.progress.get_mut(&from) {
                progress.forget_match(last_log.index);
                self.replication_due = true;
            }
        }
        self.send(from, MessageBody::RecoveryProbeResponse { last_log });
        Ok(())
    }

    /// A probe's answer: recorded whatever its term (it never moves this peer's term by the
    /// usual rule, §5.1: the recovery decides what term to adopt).
    pub(crate) fn handle_recovery_probe_response(
        &mut self,
        from: NodeId,
        term: Term,
        last_log: LogId,
    ) -> Result<(), StepError> {
        if !self.configuration.is_voter(from) {
            return Err(StepError::Ignored("recovery answer from a non-voter"));
        }
        let Some(recovery) = &mut self.recovery else {
            return Err(StepError::Ignored("recovery answer while not recovering"));
        };
        let answer = recovery.answers.entry(from).or_insert((term, last_log));
        // A voter's term only grows, and so does the log of any answer we could trust; keep
        // the larger of two answers in case they arrive out of order.
        answer.0 = answer.0.max(term);
        if last_log.is_up_to_date_with(answer.1) {
            answer.1 = last_log;
        }
        self.advance_recovery().map_err(StepError::Fatal)
    }

    /// Moves the recovery on as far as what is known allows: to phase 2 once a majority of
    /// the other voters answered, to a normal member once every condition holds. Called when
    /// an answer arrives, when a write becomes durable and when the configuration changes.
    pub(crate) fn advance_recovery(&mut self) -> Result<(), StorageError> {
        let Some(recovery) = &self.recovery else {
            return Ok(());
        };
        let me = self.id;
        if recovery.phase == RecoveryPhase::Probing {
            let answers = &recovery.answers;
            if !is_majority_of_others(&self.configuration, me, |voter| {
                answers.contains_key(&voter)
            }) {
                return Ok(());
            }
            // Danger 3: every term in which a lost vote or acknowledgement of ours counted is
            // at most this one (see the module documentation).
            let adopted = recovery.term_floor().max(self.term);
            self.adopt_term_abstaining(adopted);
            if let Some(recovery) = &mut self.recovery {
                recovery.phase = RecoveryPhase::CatchingUp;
                recovery.adopted_term = Some(adopted);
            }
            tracing::info!(id = %self.id, term = %self.term, "recovery: term adopted, catching up");
        }
        self.maybe_finish_recovery()
    }

    /// Enters `term` (when above the current one) with the vote taken by this peer itself, or
    /// takes an empty vote in the current term: it may have voted in `term` before the crash,
    /// so it must not vote in it now ("abstain"). Goes out with the next hard state.
    fn adopt_term_abstaining(&mut self, term: Term) {
        if term > self.term {
            self.become_follower(term, None);
        }
        if self.vote.is_none() {
            self.vote = Some(self.id);
        }
        assert!(
            self.term >= term && self.vote.is_some(),
            "postcondition recovery-abstains: term {} vote {:?} after adopting {term}",
            self.term,
            self.vote
        );
    }

    /// Ends the recovery once every other voter answered, the durable term is at least
    /// `T_all` with its vote taken, and the durable log is at least as up to date as `L_all`:
    /// from then on, whatever this peer votes for or acknowledges rests on state it really
    /// holds. Takes the vote in `T_all` when every answer is in (it may have voted in it).
    fn maybe_finish_recovery(&mut self) -> Result<(), StorageError> {
        let Some(recovery) = &self.recovery else {
            return Ok(());
        };
        if recovery.phase != RecoveryPhase::CatchingUp
            || !self.recovery_awaiting(recovery).is_empty()
        {
            return Ok(());
        }
        let term_floor = recovery.term_floor();
        let log_floor = recovery.log_floor(&self.configuration);
        if self.term <= term_floor {
            self.adopt_term_abstaining(term_floor);
        }
        let durable_term_ok = self.durable_term > term_floor
            || self
                .durable_vote
                .is_some_and(|(term, _)| term >= term_floor);
        let durable_index = self.log.durable_index();
        let durable_term = match self.log.term(durable_index) {
            Ok(term) => term,
            Err(StorageError::Failed(error)) => return Err(StorageError::Failed(error)),
            // A snapshot being installed moves the log under us: try again at the next write.
            Err(_) => return Ok(()),
        };
        let durable_last = LogId::new(durable_term, durable_index);
        if durable_term_ok && durable_last.is_up_to_date_with(log_floor) {
            self.recovery = None;
            self.counters.recoveries_finished += 1;
            tracing::info!(id = %self.id, term = %self.term, "recovery finished");
        }
        Ok(())
    }

    /// Whether the recovery rules let this peer grant a vote (or pre-vote) in `term` to a
    /// candidate whose log ends at `candidate_last`. Always true once recovered.
    pub(crate) fn recovery_permits_vote(&self, term: Term, candidate_last: LogId) -> bool {
        let Some(recovery) = &self.recovery else {
            return true;
        };
        recovery.phase == RecoveryPhase::CatchingUp
            // Every term it could have voted in before the crash is known only when all
            // answered (danger 2) ...
            && self.recovery_awaiting(recovery).is_empty()
            && term > recovery.term_floor()
            // ... and any entry committed with its lost acknowledgement is on some answerer
            // (danger 1).
            && candidate_last.is_up_to_date_with(recovery.log_floor(&self.configuration))
    }

    /// A peer that lost writes but does not recover (a learner) still probes the voters
    /// once, ignoring their answers: whichever leads forgets what it knew of this peer's
    /// log, and sends again what it lost.
    pub(crate) fn tell_voters_of_possible_loss(&mut self) {
        for voter in self.other_voters() {
            self.send(voter, MessageBody::RecoveryProbe);
        }
    }

    /// A leader counts on more of this peer's log than it holds (a commit index beyond its
    /// last entry is bounded by what the leader believes it matched; an append after its
    /// last entry may come from one too): an acknowledgement lost with the writes can explain
    /// it, or a message that left before the leader heard this peer's probe, and the leader,
    /// which may be no voter this peer probes (a removed leader leads until its removal
    /// commits), would never send again what was lost. A probe makes the leader forget it (see
    /// `handle_recovery_probe`); a recovering peer records the answer as any other.
    pub(crate) fn ask_leader_to_forget_match(&mut self, leader: NodeId) {
        debug_assert!(
            self.lost_writes_suspected,
            "precondition only-after-lost-writes: {leader}"
        );
        self.send(leader, MessageBody::RecoveryProbe);
    }

    /// Whether a message is one a peer in phase 1 drops, acting as if down: anything but the
    /// recovery exchange. Its acknowledgements must not count while its term may be stale
    /// (danger 3), and it grants no vote (dangers 1 and 2).
    pub(crate) fn recovery_drops(&self, body: &MessageBody) -> bool {
        self.recovery
            .as_ref()
            .is_some_and(|recovery| recovery.phase == RecoveryPhase::Probing)
            && !matches!(
                body,
                MessageBody::RecoveryProbe | MessageBody::RecoveryProbeResponse { .. }
            )
    }
}
