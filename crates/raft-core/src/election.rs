//! Leader election (§5.2, §5.4.1) with PreVote (thesis §9.6) and leadership transfer
//! (thesis §3.10).
//!
//! ```text
//!  Follower ──timeout──► PreCandidate ──majority would vote──► Candidate ──majority──► Leader
//!      ▲                      │ refused / leader heard             │ refused / leader heard
//!      └──────────────────────┴────────────────────────────────────┘
//!  TimeoutNow skips the pre-vote: the leader itself asked for the election.
//! ```

use crate::message::MessageBody;
use crate::quorum::{vote_result, VoteResult};
use crate::raft::{Raft, StepError};
use crate::storage::{Storage, StorageError};
use crate::types::{LogId, NodeId, Role, Term};

impl<S: Storage> Raft<S> {
    /// The voters of the configuration in effect other than this peer (both sets when joint,
    /// thesis §4.3; learners are never asked): whom a candidate asks for votes and a
    /// recovering peer probes.
    pub(crate) fn other_voters(&self) -> Vec<NodeId> {
        self.configuration
            .voting_members()
            .filter(|&voter| voter != self.id)
            .collect()
    }

    /// Starts campaigning: with a pre-vote round first when configured, unless the election
    /// was ordered by the leader (`transfer`).
    pub(crate) fn start_election(&mut self, transfer: bool) -> Result<(), StorageError> {
        assert!(
            self.role != Role::Leader,
            "precondition campaign-not-leader: {} leads in {}",
            self.id,
            self.term
        );
        // A recovering peer never campaigns (recovery.rs).
        if !self.is_promotable() || self.is_recovering() {
            return Ok(());
        }
        if self.config.pre_vote && !transfer {
            self.campaign(true, false)
        } else {
            self.campaign(false, transfer)
        }
    }

    fn campaign(&mut self, pre_vote: bool, transfer: bool) -> Result<(), StorageError> {
        let term_before = self.term;
        let campaign_term = if pre_vote {
            self.become_pre_candidate();
            // A pre-vote asks about the term the peer would campaign in, without entering it.
            self.term.next()
        } else {
            self.become_candidate();
            self.term
        };
        let last_log = self.log.last_log_id()?;
        // A pre-vote changes nothing durable, so this peer's own answer counts at once. Its
        // real vote counts only once written (`count_own_durable_vote`): a peer that is a
        // quorum by itself would otherwise lead before its term is durable, and a crash could
        // bring it back in the previous term, to be elected in this one again and hand out
        // other entries under the same ids (Figure 2: persist before acting).
        if pre_vote {
            self.votes.insert(self.id, true);
            if self.tally_votes(pre_vote)? {
                return Ok(());
            }
        }
        // Voters of both sets when joint (thesis §4.3); learners are not asked.
        for voter in self.other_voters() {
            let body = MessageBody::VoteRequest {
                last_log,
                pre_vote,
                leadership_transfer: transfer,
            };
            if pre_vote {
                // A pre-vote changes no durable state, so it needs no write first.
                self.messages.push(crate::message::Message {
                    from: self.id,
                    to: voter,
                    term: campaign_term,
                    body,
                });
            } else {
                // The candidate's own vote must be durable before it asks for others'.
                self.send_after_persist(voter, campaign_term, body);
            }
        }
        // A pre-vote enters no term (thesis §9.6); a campaign enters the next one, voting for
        // itself (§5.2).
        if pre_vote {
            assert!(
                self.term == term_before,
                "postcondition pre-vote-keeps-term: {term_before} became {}",
                self.term
            );
        } else {
            assert!(
                self.term == term_before.next()
                    && self.vote == Some(self.id)
                    && self.role == Role::Candidate,
                "postcondition campaign-votes-for-itself: term {term_before} -> {}, vote {:?}, {:?}",
                self.term,
                self.vote,
                self.role
            );
        }
        Ok(())
    }

    /// A candidate's own vote became durable: count it (see `campaign`).
    pub(crate) fn count_own_durable_vote(&mut self) -> Result<(), StorageError> {
        assert!(
            self.durable_vote.is_none_or(|(term, _)| term <= self.term),
            "invariant term-bounds-durable-state: durable vote {:?} in {}",
            self.durable_vote,
            self.term
        );
        let own_vote_durable = self.role == Role::Candidate
            && self.vote == Some(self.id)
            && self.durable_vote == Some((self.term, self.id));
        if own_vote_durable && !self.votes.contains_key(&self.id) {
            self.votes.insert(self.id, true);
            self.tally_votes(false)?;
        }
        Ok(())
    }

    /// Counts the votes so far; acts and returns `true` when the campaign is decided.
    fn tally_votes(&mut self, pre_vote: bool) -> Result<bool, StorageError> {
        let campaigning = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        assert!(
            self.role == campaigning && !self.votes.is_empty(),
            "precondition tally-while-campaigning: {:?} counting {} votes (pre-vote: {pre_vote})",
            self.role,
            self.votes.len()
        );
        match vote_result(&self.configuration, &self.votes) {
            VoteResult::Won if pre_vote => {
                self.campaign(false, false)?;
                Ok(true)
            }
            VoteResult::Won => {
                self.become_leader()?;
                Ok(true)
            }
            VoteResult::Lost => {
                self.become_follower(self.term, None);
                Ok(true)
            }
            VoteResult::Pending => Ok(false),
        }
    }

    /// RequestVote receiver (Figure 2): grant at most one vote per term, and only to a
    /// candidate whose log is at least as up to date as ours (§5.4.1).
    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        request_term: Term,
        candidate_last: LogId,
        pre_vote: bool,
    ) -> Result<(), StepError> {
        debug_assert!(
            request_term == self.term || (pre_vote && request_term > self.term),
            "precondition vote-request-of-current-term: {request_term} at {}",
            self.term
        );
        let vote_before = self.vote;
        let our_last = self.log.last_log_id().map_err(StepError::Fatal)?;
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && request_term > self.term);
        // A recovering peer may have lost a vote or entries this candidate lacks: it adds the
        // recovery rules (recovery.rs, dangers 1 and 2).
        let granted = can_vote
            && candidate_last.is_up_to_date_with(our_last)
            && self.recovery_permits_vote(request_term, candidate_last);
        if pre_vote {
            // A granted pre-vote answers in the candidate's prospective term, so the candidate
            // can match it with its campaign; a refusal tells our term.
            let term = if granted { request_term } else { self.term };
            self.messages.push(crate::message::Message {
                from: self.id,
                to: from,
                term,
                body: MessageBody::VoteResponse {
                    granted,
                    pre_vote: true,
                },
            });
            return Ok(());
        }
        if granted {
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        // Election Safety rests on this: at most one vote per term (Figure 2, §5.2).
        assert!(
            vote_before.is_none() || self.vote == vote_before,
            "postcondition one-vote-per-term: voted {vote_before:?}, now {:?} in {}",
            self.vote,
            self.term
        );
        let term = self.term;
        self.send_after_persist(
            from,
            term,
            MessageBody::VoteResponse {
                granted,
                pre_vote: false,
            },
        );
        Ok(())
    }

    pub(crate) fn handle_vote_response(
        &mut self,
        from: NodeId,
        granted: bool,
        pre_vote: bool,
    ) -> Result<(), StepError> {
        let expected = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        if self.role != expected {
            return Err(StepError::Ignored("vote response outside a campaign"));
        }
        assert!(from != self.id, "precondition vote-from-another: {from}");
        self.votes.insert(from, granted);
        self.tally_votes(pre_vote).map_err(StepError::Fatal)?;
        Ok(())
    }

    /// The leader asks this peer to campaign now (leadership transfer).
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) -> Result<(), StepError> {
        if self.role != Role::Follower || self.leader != Some(from) {
            return Err(StepError::Ignored(
                "TimeoutNow from a peer that is not our leader",
            ));
        }
        if self.is_recovering() {
            return Err(StepError::Ignored("TimeoutNow while recovering"));
        }
        let term_before = self.term;
        self.start_election(true).map_err(StepError::Fatal)?;
        // A transfer skips the pre-vote (thesis §3.10): the peer campaigns at once, unless it
        // may not campaign at all.
        assert!(
            self.term == term_before.next() || !self.is_promotable(),
            "postcondition timeout-now-campaigns: term {term_before} -> {}",
            self.term
        );
        Ok(())
    }
}
