//! Log replication (§5.3): the leader's sending side, the follower's consistency check and
//! append, commit by counting replicas of current-term entries (§5.4.2), heartbeats and
//! CheckQuorum.
//!
//! ```text
//!  leader                                   follower
//!  ready() ─► send_append(peer) ─ Append ─► handle_append: check prev, truncate, append
//!     ▲          (batched, windowed)                  │ (after its write is durable)
//!     └── handle_append_response ◄─ AppendResponse ───┘ success: match / reject: hint
//!           maybe_commit (majority match, current term only)
//!     └─ commit moved, no append due ─ Commit ─► commit_to (not answered)
//! ```
//!
//! New entries go at once only to the prompt followers that make a quorum with the leader;
//! spare followers get them at the next tick's flush (see `Config::spare_flush_ticks`), so a
//! write costs a majority's fdatasyncs rather than every peer's.

use crate::invariant::SafetyViolation;
use crate::message::{Message, MessageBody};
use crate::progress::ProgressState;
use crate::quorum::{is_majority, majority_value};
use crate::raft::{Raft, StepError};
use crate::storage::{Storage, StorageError};
use crate::types::{Entry, Index, LogId, NodeId, Role, Term};

/// A follower whose durable log has been more than a tick behind the leader's at this many
/// ticks in a row is not prompt: silent, or slowed (by its disk, or by writing a snapshot), it
/// is not counted on for the quorum, and a spare follower takes its place.
const PROMPT_LAG_TICKS: u32 = 2;

/// Leader ticks a follower stays out of the spares after it last forwarded a proposal or a
/// read (`Progress::client_ticks`): a follower answers the writes it forwarded once it has
/// applied them, and as a spare it learned of each entry and its commit only at the next
/// flush. Measured with clients spread over three nodes: the spare's clients were served
/// about ten times slower than the others (one write per flush interval each).
const SERVING_PROMPT_TICKS: u32 = 20;

impl<S: Storage> Raft<S> {
    /// Offers the log to every follower, filling each one's window, and tells followers about
    /// commit advances. Called once per `ready()`, so proposals made since the last one travel
    /// together.
    pub(crate) fn replicate_to_all(&mut self) -> Result<(), StorageError> {
        assert!(
            self.role == Role::Leader,
            "precondition only-leader-replicates: {:?}",
            self.role
        );
        self.replication_due = false;
        let peers: Vec<NodeId> = self
            .progress
            .keys()
            .copied()
            .filter(|&peer| peer != self.id)
            .collect();
        let spares = if std::mem::take(&mut self.spare_flush_due) {
            Vec::new()
        } else {
            self.spare_followers()
        };
        for peer in peers {
            if spares.contains(&peer) {
                // Until its next flush a spare gets only full messages, so one far behind
                // still catches up at full speed.
                while self.full_message_waits(peer) && self.send_append(peer)? {}
            } else {
                while self.send_append(peer)? {}
            }
            // An append in flight is answered, and the answer makes room for the next append,
            // which carries the commit index: a commit notice then would be one more message
            // per round for each follower, under load when it costs most.
            let commit_notice = self.progress.get_mut(&peer).and_then(|progress| {
                let commit = self.log.committed().min(progress.match_index);
                let due = commit > progress.commit_sent
                    && !progress.is_paused()
                    && progress.inflights.is_empty();
                due.then(|| {
                    progress.commit_sent = commit;
                    commit
                })
            });
            if let Some(commit) = commit_notice {
                self.send(peer, MessageBody::Commit { commit });
            }
        }
        if self.reads.heartbeat_due() {
            self.broadcast_heartbeat();
        }
        let committed = self.log.committed();
        debug_assert!(
            self.progress
                .values()
                .all(|progress| progress.commit_sent <= committed),
            "postcondition commit-told-committed: a follower was told a commit beyond {committed}"
        );
        Ok(())
    }

    /// The voters whose new entries wait for the next flush (see
    /// [`crate::Config::spare_flush_ticks`]): of the followers streaming appends that are prompt
    /// (see [`PROMPT_LAG_TICKS`]), those after the first ones (in id order) that make a quorum
    /// with the leader. None while joint, while the leader is not a voter, or when too few
    /// followers answer promptly; never the target of a leadership transfer, nor a follower
    /// serving clients (one that forwarded a proposal or a read in the last
    /// [`SERVING_PROMPT_TICKS`]).
    fn spare_followers(&self) -> Vec<NodeId> {
        let voters = &self.configuration.voters;
        if self.config.spare_flush_ticks == 0
            || self.configuration.is_joint()
            || !voters.contains(&self.id)
        {
            return Vec::new();
        }
        let transfer_target = self.transfer_target.map(|(target, _)| target);
        let mut prompt_needed = voters.len() / 2;
        let mut spares = Vec::new();
        for &voter in voters {
            let prompt = self.progress.get(&voter).is_some_and(|progress| {
                progress.state == ProgressState::Replicate
                    && progress.lagging_ticks < PROMPT_LAG_TICKS
            });
            if voter == self.id || !prompt {
                continue;
            }
            let serving_clients = self
                .progress
                .get(&voter)
                .is_some_and(|progress| progress.client_ticks < SERVING_PROMPT_TICKS);
            if prompt_needed > 0 || transfer_target == Some(voter) || serving_clients {
                prompt_needed = prompt_needed.saturating_sub(1);
            } else {
                spares.push(voter);
            }
        }
        // The prompt followers left out of `spares` make a quorum with the leader, so a write
        // still commits at the pace of the fastest majority.
        debug_assert!(
            spares.is_empty() || prompt_needed == 0,
            "postcondition spares-leave-a-quorum: {spares:?} spare, {prompt_needed} prompt missing"
        );
        spares
    }

    /// `peer` forwarded a proposal or a read: it serves clients, so it stays prompt for
    /// [`SERVING_PROMPT_TICKS`].
    pub(crate) fn note_client_traffic(&mut self, peer: NodeId) {
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.client_ticks = 0;
        }
    }

    /// Whether `peer` lacks at least a full append message's worth of entries.
    fn full_message_waits(&self, peer: NodeId) -> bool {
        self.progress
            .get(&peer)
            .is_some_and(|progress| matches!(self.fills_a_message(progress.next_index), Ok(true)))
    }

    /// Whether the entries from `next` to the end of the log hold more than one append
    /// message may carry: known from their sizes, without copying them out of the log.
    fn fills_a_message(&self, next: Index) -> Result<bool, StorageError> {
        self.log.exceeds_bytes(
            next,
            self.log.last_index().next(),
            self.config.message_bytes_max,
        )
    }

    /// Sends one append to `peer` if its progress allows. Returns whether entries were sent
    /// (so the caller may try again to fill the window).
    fn send_append(&mut self, peer: NodeId) -> Result<bool, StorageError> {
        assert!(
            peer != self.id && self.role == Role::Leader,
            "precondition append-to-a-follower: {:?} {} sending to {peer}",
            self.role,
            self.id
        );
        let Some(progress) = self.progress.get(&peer) else {
            return Ok(false);
        };
        if progress.is_paused() {
            return Ok(false);
        }
        let next = progress.next_index;
        let probing = progress.state == ProgressState::Probe;
        let last = self.log.last_index();
        if !probing && next > last {
            return Ok(false);
        }
        let prev_index = next.prev();
        let prev_term = match self.log.term(prev_index) {
            Ok(term) => term,
            Err(StorageError::Compacted(_)) => return self.send_snapshot(peer),
            Err(StorageError::Unavailable(_)) => {
                // The follower claims more than we hold: start over from its match.
                if let Some(progress) = self.progress.get_mut(&peer) {
                    progress.become_probe();
                }
                return Ok(false);
            }
            Err(error) => return Err(error),
        };
        // A partial append that would wait (below) is known before its entries are read.
        let waits_for_room =
            !probing && progress.inflights.len() >= self.config.partial_appends_in_flight_max;
        if waits_for_room && matches!(self.fills_a_message(next), Ok(false)) {
            return Ok(false);
        }
        let entries = if next <= last {
            match self
                .log
                .entries(next, last.next(), self.config.message_bytes_max)
            {
                Ok(entries) => entries,
                Err(StorageError::Compacted(_)) => return self.send_snapshot(peer),
                Err(error) => return Err(error),
            }
        } else {
            Vec::new()
        };
        let commit = self.log.committed();
        let last_sent = entries.last().map(Entry::index).unwrap_or(prev_index);
        let sent_entries = !entries.is_empty();
        let Some(progress) = self.progress.get_mut(&peer) else {
            return Ok(false);
        };
        // A partial message waits for an answer to make room: the entries proposed until then
        // go with it.
        if sent_entries
            && !probing
            && last_sent == last
            && progress.inflights.len() >= self.config.partial_appends_in_flight_max
        {
            return Ok(false);
        }
        progress.commit_sent = progress.commit_sent.max(commit.min(last_sent));
        debug_assert!(
            prev_index.next() == next && last_sent <= last,
            "postcondition append-from-next: prev {prev_index}, next {next}, last sent {last_sent}, last {last}"
        );
        if sent_entries {
            progress.sent_entries(last_sent);
        } else if probing {
            progress.probe_sent = true;
        }
        self.send(
            peer,
            MessageBody::Append {
                prev: LogId::new(prev_term, prev_index),
                entries,
                commit,
            },
        );
        Ok(sent_entries && !probing)
    }

    /// AppendEntries receiver (Figure 2).
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev: LogId,
        mut entries: Vec<Entry>,
        leader_commit: Index,
    ) -> Result<(), StepError> {
        debug_assert!(
            self.role == Role::Follower && self.leader == Some(from),
            "precondition append-from-our-leader: {:?} following {:?}, append from {from}",
            self.role,
            self.leader
        );
        validate_entries(prev, &entries, self.term)?;
        let committed = self.log.committed();
        self.refuse_overwriting_committed(from, prev, &entries)?;
        let mut prev = prev;
        if prev.index < committed {
            // Everything through our commit index already matches the leader's log (Leader
            // Completeness, §5.4), so skip that prefix rather than re-checking it.
            let skip = (committed.0 - prev.index.0).min(entries.len() as u64) as usize;
            entries.drain(..skip);
            if entries.is_empty() {
                let term = self.term;
                self.send_after_persist(
                    from,
                    term,
                    MessageBody::AppendResponse {
                        index: committed,
                        success: true,
                        hint: LogId::default(),
                    },
                );
                return Ok(());
            }
            let term = self.log.term(committed).map_err(StepError::Fatal)?;
            prev = LogId::new(term, committed);
        }
        if !self.log.matches(prev) {
            // `prev` is at or above the commit index here; at it, a mismatch contradicts a
            // committed entry.
            self.refuse_overwriting_committed(from, prev, &[])?;
            let hint = match self.log.find_conflict_by_term(prev.index, prev.term) {
                Ok(hint) => hint,
                Err(StorageError::Failed(error)) => {
                    return Err(StepError::Fatal(StorageError::Failed(error)))
                }
                Err(_) => LogId::default(),
            };
            self.send(
                from,
                MessageBody::AppendResponse {
                    index: prev.index,
                    success: false,
                    hint,
                },
            );
            // The leader may believe this peer holds entries it lost: it would take this
            // refusal for a stale one and never send them again (recovery.rs).
            if self.lost_writes_suspected && prev.index > self.log.last_index() {
                self.ask_leader_to_forget_match(from);
            }
            return Ok(());
        }
        let last_new = prev.index.plus(entries.len() as u64);
        if let Some(conflict) = self.log.find_conflict(&entries) {
            // `refuse_overwriting_committed` refused any conflict at or below the commit
            // index, and the prefix through it was skipped above.
            assert!(
                conflict > committed,
                "invariant committed-entries-immutable: conflict at {conflict}, committed {committed}"
            );
            let from_conflict = (conflict.0 - prev.index.0 - 1) as usize;
            entries.drain(..from_conflict);
            // Configuration entries take effect as they arrive, and those of a replaced
            // suffix stop being in effect (thesis §4.1).
            if self.append_entries(entries).is_err() {
                return Err(StepError::Invalid(
                    "append carries a configuration entry that does not decode",
                ));
            }
        }
        // The log now matches the leader's through `last_new` (Log Matching, §5.3), and no
        // further: entries after it may be from another leader.
        debug_assert!(
            self.log.matches(prev) && last_new <= self.log.last_index(),
            "postcondition append-matches: prev {prev}, last new {last_new}, last {}",
            self.log.last_index()
        );
        self.log.commit_to(leader_commit.min(last_new));
        let term = self.term;
        self.send_after_persist(
            from,
            term,
            MessageBody::AppendResponse {
                index: last_new,
                success: true,
                hint: LogId::default(),
            },
        );
        Ok(())
    }

    /// Refuses an append that contradicts an entry this peer knows is committed: its `prev`
    /// or one of its entries at or below the commit index names another term than ours (a
    /// `prev` at the commit index is left to the consistency check, which calls this again
    /// when it fails, so a matching append costs no extra lookup). A
    /// committed entry is in the log of every later leader (Leader Completeness, §5.4), so a
    /// correct leader never sends one: either it or this peer has lost durable state, or the
    /// message is forged. The peer stops (see [`Raft::safety_violation`]) rather than take part
    /// in a divergence. Entries this peer no longer holds (compacted) cannot be compared and
    /// are skipped, as the append handler does.
    fn refuse_overwriting_committed(
        &mut self,
        from: NodeId,
        prev: LogId,
        entries: &[Entry],
    ) -> Result<(), StepError> {
        let committed = self.log.committed();
        debug_assert!(
            committed <= self.log.last_index(),
            "invariant log-cursors-ordered: committed {committed} beyond {}",
            self.log.last_index()
        );
        let prev_to_check = entries.is_empty() || prev.index < committed;
        let claimed = std::iter::once(prev)
            .filter(|_| prev_to_check)
            .chain(entries.iter().map(|entry| entry.id))
            .take_while(|id| id.index <= committed);
        for id in claimed {
            match self.log.term(id.index) {
                Ok(ours) if ours != id.term => {
                    let violation = SafetyViolation {
                        term: self.term,
                        index: id.index,
                        sender: from,
                        ours,
                        theirs: id.term,
                        committed,
                    };
                    return Err(self.stop_on_safety_violation(violation));
                }
                Err(StorageError::Failed(error)) => {
                    return Err(StepError::Fatal(StorageError::Failed(error)))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        commit: Index,
        read_round: u64,
    ) -> Result<(), StepError> {
        debug_assert!(
            self.role == Role::Follower && self.leader == Some(from),
            "precondition heartbeat-from-our-leader: {:?} following {:?}, heartbeat from {from}",
            self.role,
            self.leader
        );
        // The echo confirms this term's leader for its reads and lease whatever the commit
        // index says (thesis §6.4), so it goes out even when the commit is refused.
        self.send(from, MessageBody::HeartbeatResponse { read_round });
        let adopted = self.adopt_leader_commit(from, commit);
        assert!(
            self.log.committed() <= self.log.last_index(),
            "postcondition commit-within-log: {} beyond {}",
            self.log.committed(),
            self.log.last_index()
        );
        adopted
    }

    /// Adopts the commit index a leader's heartbeat or commit notice carries. The leader
    /// bounds it by the match this peer acknowledged in this term, once durable (Figure 2:
    /// persist before answering); within a term only that leader changes this log and never
    /// replaces an entry it matched, so every index up to it holds the leader's entry. One
    /// beyond the last index is therefore impossible from a correct leader: it is refused
    /// rather than clamped, and counted as invalid.
    ///
    /// Unless this peer started on storage that may have lost writes: then the leader may
    /// count on entries it acknowledged before it lost them, and it asks the leader to forget
    /// them (see `Raft::ask_leader_to_forget_match`).
    pub(crate) fn adopt_leader_commit(
        &mut self,
        from: NodeId,
        commit: Index,
    ) -> Result<(), StepError> {
        let last = self.log.last_index();
        if commit > last && self.lost_writes_suspected {
            self.ask_leader_to_forget_match(from);
            return Err(StepError::Ignored(
                "commit index beyond the log of a peer that may have lost writes",
            ));
        }
        if commit > last {
            return Err(StepError::Invalid(
                "commit index beyond this follower's log",
            ));
        }
        let before = self.log.committed();
        self.log.commit_to(commit);
        assert!(
            self.log.committed() == before.max(commit),
            "postcondition commit-adopted: {} after {before} and {commit}",
            self.log.committed()
        );
        Ok(())
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: NodeId,
        index: Index,
        success: bool,
        hint: LogId,
    ) -> Result<(), StepError> {
        if self.role != Role::Leader {
            return Err(StepError::Ignored("append response while not leader"));
        }
        assert!(
            from != self.id,
            "precondition response-from-another: {from}"
        );
        let last = self.log.last_index();
        if index > last {
            return Err(StepError::Invalid(
                "append response beyond the leader's log",
            ));
        }
        let probe_from = if success {
            Index(0)
        } else {
            // Fast backtracking: skip every entry whose term is above the follower's hint.
            match self.log.find_conflict_by_term(hint.index, hint.term) {
                Ok(found) => found.index,
                Err(StorageError::Failed(error)) => {
                    return Err(StepError::Fatal(StorageError::Failed(error)))
                }
                Err(_) => hint.index,
            }
        };
        let Some(progress) = self.progress.get_mut(&from) else {
            return Err(StepError::UnknownPeer(from));
        };
        progress.heard_from();
        progress.idle_ticks = 0;
        if !success {
            if progress.maybe_decrease_to(index, probe_from) {
                if progress.state == ProgressState::Replicate {
                    progress.become_probe();
                }
                self.replication_due = true;
            }
            return Ok(());
        }
        let updated = progress.maybe_update(index);
        // A probe answered at the match the leader already knew is news too: the logs agree
        // there, so streaming can start (after a snapshot install the match is already set, and
        // without this the follower would stay a paused probe until the next heartbeat).
        let probe_confirmed =
            progress.state == ProgressState::Probe && index == progress.match_index;
        if updated || probe_confirmed {
            match progress.state {
                ProgressState::Probe => progress.become_replicate(),
                ProgressState::Snapshot(pending) if progress.match_index >= pending => {
                    progress.become_probe();
                    progress.become_replicate();
                }
                ProgressState::Snapshot(_) => {}
                ProgressState::Replicate => progress.inflights.free_through(index),
            }
            let caught_up = progress.match_index == last;
            assert!(
                progress.match_index <= last && progress.match_index < progress.next_index,
                "postcondition progress-match-below-next: {from} match {}, next {}, last {last}",
                progress.match_index,
                progress.next_index
            );
            self.maybe_commit().map_err(StepError::Fatal)?;
            if caught_up
                && self
                    .transfer_target
                    .is_some_and(|(target, _)| target == from)
            {
                self.send(from, MessageBody::TimeoutNow);
            }
        } else if progress.state == ProgressState::Replicate {
            progress.inflights.free_through(index);
        }
        self.replication_due = true;
        Ok(())
    }

    pub(crate) fn handle_heartbeat_response(
        &mut self,
        from: NodeId,
        read_round: u64,
    ) -> Result<(), StepError> {
        if self.role != Role::Leader {
            return Err(StepError::Ignored("heartbeat response while not leader"));
        }
        assert!(
            from != self.id,
            "precondition response-from-another: {from}"
        );
        let last = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return Err(StepError::UnknownPeer(from));
        };
        progress.heard_from();
        // A probe may have been lost: the heartbeat answer shows the peer is reachable, so
        // probe again.
        progress.probe_sent = false;
        // The peer answers heartbeats but not the appends in flight: they were lost. Probe
        // rather than wait for the window to time out.
        let appends_lost = progress.state == ProgressState::Replicate
            && !progress.inflights.is_empty()
            && progress.idle_ticks >= 2 * self.config.heartbeat_ticks;
        if appends_lost {
            progress.become_probe();
        }
        assert!(
            progress.match_index <= last,
            "invariant progress-within-log: {from} match {} beyond {last}",
            progress.match_index
        );
        if progress.match_index < last {
            self.replication_due = true;
        }
        self.acknowledge_read_round(from, read_round);
        Ok(())
    }

    /// Commits the highest index a majority has durably replicated, then takes the steps a
    /// commit may allow in a membership change: leaving a committed joint configuration
    /// (which may let more commit, under C_new alone), and stepping down once a configuration
    /// without this leader is committed (thesis §4.3, §4.2.2).
    pub(crate) fn maybe_commit(&mut self) -> Result<(), StorageError> {
        let before = self.log.committed();
        self.advance_commit()?;
        if self.maybe_leave_joint() {
            self.advance_commit()?;
        }
        assert!(
            self.log.committed() >= before,
            "postcondition commit-monotonic: {} after {before}",
            self.log.committed()
        );
        if self.maybe_step_down_when_removed() {
            return Ok(());
        }
        if self.role == Role::Leader && self.log.committed() > before {
            self.on_commit_advanced(before);
        }
        Ok(())
    }

    /// Commits the highest index a majority (both majorities, while joint) has durably
    /// replicated, if it is from the current term: entries of earlier terms commit only
    /// indirectly (§5.4.2, Figure 8).
    fn advance_commit(&mut self) -> Result<(), StorageError> {
        if self.role != Role::Leader {
            return Ok(());
        }
        let quorum_match = majority_value(&self.configuration, |id| {
            self.progress.get(&id).map(|progress| progress.match_index)
        });
        if quorum_match <= self.log.committed() || self.log.term(quorum_match)? != self.term {
            return Ok(());
        }
        let first_commit_in_term = self.log.term(self.log.committed())? != self.term;
        // A majority holds `quorum_match` of this term durably: it is committed (§5.4.2), and
        // every entry before it with it (Log Matching, §5.3).
        assert!(
            quorum_match <= self.log.last_index(),
            "invariant commit-within-log: quorum match {quorum_match}, last {}",
            self.log.last_index()
        );
        self.log.commit_to(quorum_match);
        assert!(
            self.log.committed() == quorum_match,
            "postcondition commit-advanced: {} instead of {quorum_match}",
            self.log.committed()
        );
        while self
            .uncommitted
            .front()
            .is_some_and(|&(index, _)| index <= quorum_match)
        {
            if let Some((_, bytes)) = self.uncommitted.pop_front() {
                self.uncommitted_bytes -= bytes;
            }
        }
        self.replication_due = true;
        if first_commit_in_term {
            self.start_reads_waiting_for_commit();
        }
        Ok(())
    }

    /// Sends every follower a heartbeat carrying a fresh read round (see `read_index.rs`),
    /// which confirms waiting reads and renews the lease once a majority echoes it.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        assert!(
            self.role == Role::Leader,
            "precondition only-leader-heartbeats: {:?}",
            self.role
        );
        let round = self.reads.begin_broadcast_round(self.now_ticks);
        let committed = self.log.committed();
        let targets: Vec<(NodeId, Index)> = self
            .progress
            .iter()
            .filter(|(&peer, _)| peer != self.id)
            .map(|(&peer, progress)| (peer, committed.min(progress.match_index)))
            .collect();
        for (peer, commit) in targets {
            // A heartbeat's commit is bounded by what the follower acknowledged, so a correct
            // follower can always adopt it (see `adopt_leader_commit`).
            debug_assert!(commit <= committed, "invariant heartbeat-commit-committed");
            self.send(
                peer,
                MessageBody::Heartbeat {
                    commit,
                    read_round: round,
                },
            );
        }
    }

    /// CheckQuorum (thesis §6.2): whether a majority was heard from since the last check.
    /// Resets the activity marks for the next round.
    pub(crate) fn quorum_recently_active(&mut self) -> bool {
        assert!(
            self.role == Role::Leader,
            "precondition check-quorum-on-leader: {:?}",
            self.role
        );
        let own = self.id;
        let active = is_majority(&self.configuration, |id| {
            id == own || self.progress.get(&id).is_some_and(|p| p.recent_active)
        });
        for (&id, progress) in self.progress.iter_mut() {
            progress.recent_active = id == own;
        }
        active
    }

    /// Detects lost appends and stalled snapshot transfers: a follower silent for an election
    /// timeout while something is outstanding goes back to probing.
    pub(crate) fn tick_replication_timeouts(&mut self) {
        assert!(
            self.role == Role::Leader,
            "precondition replication-timeouts-on-leader: {:?}",
            self.role
        );
        let limit = self.config.election_ticks;
        let own = self.id;
        let last_a_tick_ago =
            std::mem::replace(&mut self.last_index_at_tick, self.log.last_index());
        for (&id, progress) in self.progress.iter_mut() {
            if id == own {
                continue;
            }
            progress.client_ticks = progress.client_ticks.saturating_add(1);
            progress.silent_ticks = progress.silent_ticks.saturating_add(1);
            if progress.match_index >= last_a_tick_ago {
                progress.lagging_ticks = 0;
            } else {
                progress.lagging_ticks += 1;
                if progress.lagging_ticks == PROMPT_LAG_TICKS {
                    // No longer prompt: a spare may take its place in the quorum now.
                    self.replication_due = true;
                }
            }
            let waiting = match progress.state {
                ProgressState::Probe => progress.probe_sent,
                ProgressState::Replicate => !progress.inflights.is_empty(),
                ProgressState::Snapshot(_) => true,
            };
            if !waiting {
                progress.idle_ticks = 0;
                continue;
            }
            progress.idle_ticks += 1;
            if progress.idle_ticks >= limit {
                progress.become_probe();
                self.replication_due = true;
            }
        }
        debug_assert!(
            self.progress.values().all(|progress| progress.idle_ticks < limit),
            "postcondition stalled-followers-probed: a follower idle for {limit} ticks kept waiting"
        );
    }
}

/// Keeps, of the successful append answers in `messages` to one peer in one term, only the one
/// with the highest index (the last of equals); the other messages stay as they are. Within
/// a term a follower answers one leader, whose log only grows, so its highest durable match
/// says all the lower ones did; a follower that made many appends durable with one write
/// then sends one answer instead of one per append.
pub(crate) fn coalesce_append_acks(messages: &mut Vec<Message>) {
    let acks = |message: &Message| match message.body {
        MessageBody::AppendResponse {
            index,
            success: true,
            ..
        } => Some(index),
        _ => None,
    };
    if messages
        .iter()
        .filter(|message| acks(message).is_some())
        .count()
        < 2
    {
        return;
    }
    // (peer, term, highest index, position of the answer kept): a handful of peers at most.
    let mut kept: Vec<(NodeId, Term, Index, usize)> = Vec::new();
    for (position, message) in messages.iter().enumerate() {
        let Some(index) = acks(message) else {
            continue;
        };
        match kept
            .iter_mut()
            .find(|(peer, term, ..)| *peer == message.to && *term == message.term)
        {
            Some(best) if index >= best.2 => (best.2, best.3) = (index, position),
            Some(_) => {}
            None => kept.push((message.to, message.term, index, position)),
        }
    }
    #[cfg(debug_assertions)]
    let others = messages
        .iter()
        .filter(|message| acks(message).is_none())
        .count();
    let mut position = 0;
    messages.retain(|message| {
        let keep = acks(message).is_none() || kept.iter().any(|&(.., kept_at)| kept_at == position);
        position += 1;
        keep
    });
    // One answer per (peer, term) is kept; every other message stays.
    #[cfg(debug_assertions)]
    debug_assert!(
        messages.len() == others + kept.len(),
        "postcondition one-ack-per-peer-and-term: {} messages, {} acks kept",
        messages.len(),
        kept.len()
    );
}

/// Rejects appends no correct leader could send: entries not contiguous after `prev`, terms
/// going backwards, or terms beyond the leader's.
fn validate_entries(prev: LogId, entries: &[Entry], leader_term: Term) -> Result<(), StepError> {
    if prev.index == Index(0) && prev.term.0 != 0 {
        return Err(StepError::Invalid("prev entry at index 0 must have term 0"));
    }
    let mut expected = prev.index.next();
    let mut term = prev.term;
    for entry in entries {
        if entry.index() != expected {
            return Err(StepError::Invalid("append entries are not contiguous"));
        }
        if entry.term() < term || entry.term() > leader_term {
            return Err(StepError::Invalid("append entry terms out of order"));
        }
        expected = expected.next();
        term = entry.term();
    }
    Ok(())
}
