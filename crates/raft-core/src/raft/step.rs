//! Message intake: addressing and term checks (§5.1), then the message's handler.
//!
//! ```text
//!  step(m) ─► addressed to us, from a member? ─► term check ─┬─ higher: adopt it, follow (§5.1)
//!             (refuses_stranger)                              ├─ lower:  drop, maybe answer
//!                                                             └─ equal ─► step_current_term
//!                                                                         ─► handler in the
//!                                                                            role modules
//! ```
//!
//! [`StepError`] says why a message was dropped; dropping is always safe.

use crate::invariant::SafetyViolation;
use crate::message::{Message, MessageBody};
use crate::storage::{Storage, StorageError};
use crate::types::{Index, LogId, NodeId, Role, Term};

use super::Raft;

/// Why a message was not acted on. Dropping is always safe: Raft tolerates lost messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is addressed to another peer, or claims to come from this one.
    #[error("message misaddressed: from {from} to {to}")]
    Misaddressed {
        /// Claimed sender.
        from: NodeId,
        /// Addressee.
        to: NodeId,
    },
    /// The sender is not a member of the configuration (a campaign or request from a peer
    /// outside it), or a response comes from a peer the leader does not replicate to.
    #[error("message from unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The message is from an older term and needs no answer.
    #[error("stale term {0}")]
    StaleTerm(Term),
    /// The message contradicts the protocol (impossible indexes, terms or snapshot metadata).
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// The message does not apply in this peer's current role or state.
    #[error("ignored: {0}")]
    Ignored(&'static str),
    /// Storage failed; the peer has stopped.
    #[error("storage failed: {0}")]
    Fatal(StorageError),
    /// A leader asked this peer to overwrite a committed entry; the peer has stopped, and
    /// every later message is refused with this error (see [`Raft::safety_violation`]).
    #[error(transparent)]
    SafetyViolation(#[from] SafetyViolation),
}

impl<S: Storage> Raft<S> {
    /// Handles a message from another peer. Errors say why a message was dropped; only
    /// [`StepError::Fatal`] and [`StepError::SafetyViolation`] mean the peer stopped. No
    /// message, however malformed or hostile, makes it panic.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        if let Some(error) = &self.fatal {
            return Err(StepError::Fatal(error.clone()));
        }
        if let Some(violation) = &self.safety_violation {
            return Err(StepError::SafetyViolation(violation.clone()));
        }
        let result = self.step_inner(message);
        match &result {
            Err(StepError::Fatal(error)) => self.fatal = Some(error.clone()),
            Err(StepError::StaleTerm(_)) => self.counters.dropped_stale_term += 1,
            Err(StepError::Misaddressed { .. } | StepError::UnknownPeer(_)) => {
                self.counters.dropped_unknown_peer += 1
            }
            Err(StepError::Invalid(_)) => self.counters.dropped_invalid += 1,
            Err(StepError::Ignored(_)) => self.counters.dropped_ignored += 1,
            // Counted where it is detected (`stop_on_safety_violation`).
            Err(StepError::SafetyViolation(_)) => {}
            Ok(()) => {}
        }
        self.debug_check_invariants();
        result
    }

    fn step_inner(&mut self, message: Message) -> Result<(), StepError> {
        if message.to != self.id || message.from == self.id {
            return Err(StepError::Misaddressed {
                from: message.from,
                to: message.to,
            });
        }
        if message.from == NodeId(0) || self.refuses_stranger(&message)? {
            return Err(StepError::UnknownPeer(message.from));
        }
        if !message.is_within_limits() {
            return Err(StepError::Invalid("term or index out of range"));
        }
        // The recovery exchange passes outside the term rules (§5.1): answering a probe
        // changes nothing, and the prober decides itself what its answers' terms mean.
        match message.body {
            MessageBody::RecoveryProbe => return self.handle_recovery_probe(message.from),
            MessageBody::RecoveryProbeResponse { last_log } => {
                return self.handle_recovery_probe_response(message.from, message.term, last_log)
            }
            _ => {}
        }
        if self.recovery_drops(&message.body) {
            return Err(StepError::Ignored(
                "recovering: acts as if down until a majority of the other voters answered",
            ));
        }
        let result = self.step_by_term(message);
        // An append may have brought a configuration or made the log catch up.
        self.advance_recovery().map_err(StepError::Fatal)?;
        result
    }

    fn step_by_term(&mut self, message: Message) -> Result<(), StepError> {
        if message.term > self.term {
            self.step_higher_term(&message)?;
        } else if message.term < self.term {
            return self.step_lower_term(message);
        }
        self.step_current_term(message)
    }

    /// Whether `message` comes from a peer outside the configuration and is one this peer
    /// does not take from a stranger. A leader's messages pass whoever sends them: this peer's
    /// configuration may be behind the leader's, and a new peer learns its first
    /// configuration from them (thesis §4.1); that includes the `TimeoutNow` of a leader that
    /// removed itself and hands over (its handler checks the sender is the leader). Forwarded
    /// reads come only from members.
    ///
    /// A stranger's campaign passes only if its log is at least as up to date as this peer's,
    /// that is, only if this peer could grant it. The thesis grants votes to candidates
    /// outside the voter's configuration, because one may be a member of a configuration the
    /// voter has not seen yet and be needed to keep the cluster available (thesis §4.1: a new
    /// voter whose empty log knows no configuration must be able to vote for the leader that
    /// promoted it). A removed peer that missed its removal lacks the entry that removed it,
    /// so its log is behind every peer that has that entry: their refusal costs nothing, and
    /// it keeps the removed peer's ever higher terms from deposing the leader whatever
    /// PreVote and CheckQuorum are set to (thesis §4.2.3).
    fn refuses_stranger(&self, message: &Message) -> Result<bool, StepError> {
        if self.configuration.is_member(message.from) {
            return Ok(false);
        }
        match message.body {
            MessageBody::VoteRequest { last_log, .. } => {
                let our_last = self.log.last_log_id().map_err(StepError::Fatal)?;
                Ok(!last_log.is_up_to_date_with(our_last))
            }
            MessageBody::ReadIndexRequest { .. } | MessageBody::ForwardProposal { .. } => Ok(true),
            _ => Ok(false),
        }
    }

    /// A message from a higher term (§5.1): usually adopt the term and follow; pre-votes and
    /// vote requests inside a leader lease are the exceptions.
    fn step_higher_term(&mut self, message: &Message) -> Result<(), StepError> {
        assert!(
            message.term > self.term,
            "precondition higher-term: {} at {}",
            message.term,
            self.term
        );
        match &message.body {
            MessageBody::VoteRequest {
                pre_vote,
                leadership_transfer,
                ..
            } => {
                // Leader lease (thesis §4.2.3): a follower that heard from a leader within the
                // minimum election timeout ignores campaigns, so a partitioned peer cannot
                // depose a healthy leader. A transfer ordered by the leader passes.
                // Lease reads rely on this check too (thesis §6.4.1); a recently restarted peer
                // honours the lease it may have acknowledged before it went down.
                let heard_from_leader =
                    self.leader.is_some() && self.election_elapsed < self.config.election_ticks;
                let restarted_recently = self.now_ticks < self.restart_lease_end_ticks;
                let in_lease =
                    self.config.check_quorum && (heard_from_leader || restarted_recently);
                if in_lease && !leadership_transfer {
                    return Err(StepError::Ignored("vote request inside leader lease"));
                }
                if !pre_vote {
                    self.become_follower(message.term, None);
                }
            }
            // A granted pre-vote carries the term the candidate will campaign in; it is not a
            // sign of a newer term.
            MessageBody::VoteResponse {
                pre_vote: true,
                granted: true,
            } => {}
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Commit { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, Some(message.from));
            }
            _ => self.become_follower(message.term, None),
        }
        // Only a (pre-)vote exchange leaves the term where it was (thesis §9.6).
        assert!(
            self.term == message.term
                || matches!(
                    message.body,
                    MessageBody::VoteRequest { pre_vote: true, .. }
                        | MessageBody::VoteResponse { pre_vote: true, .. }
                ),
            "postcondition higher-term-adopted: {} after {}",
            self.term,
            message.term
        );
        Ok(())
    }

    /// A message from a lower term is stale. A few deserve an answer so that a deposed leader
    /// or a pre-candidate learns the current term.
    fn step_lower_term(&mut self, message: Message) -> Result<(), StepError> {
        assert!(
            message.term < self.term,
            "precondition lower-term: {} at {}",
            message.term,
            self.term
        );
        match message.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Commit { .. }
                if self.config.check_quorum || self.config.pre_vote || !self.is_promotable() =>
            {
                // With CheckQuorum or PreVote a peer with a higher term may never get to
                // campaign, and a learner or removed peer never does: tell the stale leader to
                // step down, so that the next one's term reaches this peer's.
                self.send(
                    message.from,
                    MessageBody::AppendResponse {
                        index: Index(0),
                        success: false,
                        hint: LogId::default(),
                    },
                );
            }
            MessageBody::VoteRequest { pre_vote, .. } => {
                // The refusal carries our term (Figure 2: RequestVote answers with
                // currentTerm), so a candidate behind it moves up and its next campaign can
                // reach us: a peer whose term others keep raising (a removed peer campaigning
                // through it, say) would otherwise drop every campaign for good.
                self.send(
                    message.from,
                    MessageBody::VoteResponse {
                        granted: false,
                        pre_vote,
                    },
                );
            }
            _ => {}
        }
        Err(StepError::StaleTerm(message.term))
    }

    fn step_current_term(&mut self, message: Message) -> Result<(), StepError> {
        let from = message.from;
        let term = message.term;
        // Pre-votes are answered and counted in the term they ask about, without entering it.
        debug_assert!(
            term == self.term
                || (term > self.term
                    && matches!(
                        message.body,
                        MessageBody::VoteRequest { pre_vote: true, .. }
                            | MessageBody::VoteResponse { pre_vote: true, .. }
                    )),
            "precondition current-term: {term} at {}",
            self.term
        );
        match message.body {
            MessageBody::VoteRequest {
                last_log, pre_vote, ..
            } => self.handle_vote_request(from, term, last_log, pre_vote),
            MessageBody::VoteResponse { granted, pre_vote } => {
                self.handle_vote_response(from, granted, pre_vote)
            }
            MessageBody::Append {
                prev,
                entries,
                commit,
            } => {
                self.follow_leader_of_current_term(from)?;
                self.handle_append(from, prev, entries, commit)
            }
            MessageBody::Heartbeat { commit, read_round } => {
                self.follow_leader_of_current_term(from)?;
                self.handle_heartbeat(from, commit, read_round)
            }
            MessageBody::Commit { commit } => {
                self.follow_leader_of_current_term(from)?;
                self.adopt_leader_commit(from, commit)
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => {
                self.follow_leader_of_current_term(from)?;
                self.handle_install_snapshot(from, meta, offset, data, done)
            }
            MessageBody::AppendResponse {
                index,
                success,
                hint,
            } => self.handle_append_response(from, index, success, hint),
            MessageBody::HeartbeatResponse { read_round } => {
                self.handle_heartbeat_response(from, read_round)
            }
            MessageBody::InstallSnapshotResponse {
                last_included,
                next_offset,
                done,
            } => self.handle_install_snapshot_response(from, last_included, next_offset, done),
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::ReadIndexRequest { context } => {
                self.handle_read_index_request(from, context)
            }
            MessageBody::ReadIndexResponse { context, index } => {
                self.handle_read_index_response(from, context, index)
            }
            MessageBody::ForwardProposal {
                session,
                first_id,
                proposals,
            } => self.handle_forward_proposal(from, session, first_id, proposals),
            MessageBody::ForwardProposalResponse {
                session,
                first_id,
                outcomes,
            } => self.handle_forward_proposal_response(from, session, first_id, outcomes),
            // Handled before the term check (`step_inner`).
            MessageBody::RecoveryProbe | MessageBody::RecoveryProbeResponse { .. } => {
                Err(StepError::Ignored("recovery message past the term check"))
            }
        }
    }

    /// A leader's message in the current term: candidates give up (§5.2), everyone resets the
    /// election timer. Two leaders in one term is impossible; a message claiming so is bogus.
    fn follow_leader_of_current_term(&mut self, from: NodeId) -> Result<(), StepError> {
        match self.role {
            Role::Leader => return Err(StepError::Invalid("another leader in this term")),
            Role::Candidate | Role::PreCandidate => self.become_follower(self.term, Some(from)),
            Role::Follower => {
                if self.leader.is_some_and(|leader| leader != from) {
                    return Err(StepError::Invalid("second leader in this term"));
                }
                self.set_leader(Some(from));
            }
        }
        self.election_elapsed = 0;
        assert!(
            self.role == Role::Follower && self.leader == Some(from),
            "postcondition following-the-leader: {:?} following {:?}, not {from}",
            self.role,
            self.leader
        );
        Ok(())
    }
}
