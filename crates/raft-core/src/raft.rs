//! The peer: its state, the inputs that drive it and the [`Ready`] it produces.
//!
//! ```text
//!  tick() ─┐
//!  step(m) ─┼─► term check ─► role handler ─► log / progress / outputs ─► ready()
//!  propose ─┘    (§5.1)       election.rs       log.rs  progress.rs         │
//!  propose_conf_change        replication.rs                             persist ─► on_persisted()
//!                             snapshot.rs                                apply   ─► on_applied()
//!                             read_index.rs
//!                             membership/change.rs (membership.rs, quorum.rs)
//! ```
//!
//! Protocol rules live in the role modules; this file holds the plumbing: state, timers, role
//! transitions and the hand-off of outputs.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{CompactError, InitError, ProposeError};
use crate::log::RaftLog;
use crate::membership::ConfigurationHistory;
use crate::message::{Message, MessageBody};
use crate::options::Config;
use crate::progress::{Progress, ProgressState};
use crate::read_index::ReadIndexState;
use crate::ready::{PersistId, PersistRequest, Ready, SoftState};
use crate::snapshot::IncomingSnapshot;
use crate::storage::{Storage, StorageError};
use crate::types::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, Role, Snapshot, SnapshotMeta,
    Term,
};

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
}

/// Counters of what the peer dropped or refused, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages dropped for a stale term.
    pub dropped_stale_term: u64,
    /// Messages dropped as misaddressed or from unknown peers.
    pub dropped_unknown_peer: u64,
    /// Messages dropped as invalid.
    pub dropped_invalid: u64,
    /// Messages ignored in the current role.
    pub dropped_ignored: u64,
    /// Elections started (real campaigns, not pre-votes).
    pub elections_started: u64,
    /// Times this peer became leader.
    pub became_leader: u64,
    /// Snapshots sent to followers (transfers begun).
    pub snapshots_sent: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Reads served on the leader's lease, without a confirmation round (thesis §6.4.1).
    pub lease_reads: u64,
    /// Configuration entries this peer appended as leader: accepted
    /// [`Raft::propose_conf_change`] calls and the second step of each joint change.
    pub configuration_changes_proposed: u64,
    /// Times the configuration in effect changed on this peer: a configuration entry appended
    /// or received, a truncated one fallen back from, a snapshot's installed.
    pub configurations_adopted: u64,
}

/// A follower's or learner's replication state as shown by [`Raft::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub id: NodeId,
    /// The peer is a learner: it receives the log but does not vote.
    pub learner: bool,
    /// Highest index known replicated.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// Replication mode.
    pub state: ProgressState,
}

/// A snapshot of the peer's state for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This peer.
    pub id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: Index,
    /// Applied index reported by the caller.
    pub applied: Index,
    /// Last log index.
    pub last_index: Index,
    /// Index covered by the newest snapshot.
    pub snapshot_index: Index,
    /// The configuration in effect (the latest in the log): voters, the outgoing voters while
    /// a change is joint, and learners.
    pub configuration: Configuration,
    /// A membership change is under way: `configuration` is joint or its entry is not
    /// committed yet (a leader refuses another change meanwhile).
    pub configuration_change_in_progress: bool,
    /// Per-peer progress (followers and learners), on a leader.
    pub peers: Vec<PeerStatus>,
}

/// A write handed out for persisting and not yet reported durable.
#[derive(Debug)]
struct PendingPersist {
    id: PersistId,
    snapshot_index: Option<Index>,
    last_entry: Option<LogId>,
    /// The hard state the write carries, if it carries one.
    hard_state: Option<HardState>,
}

/// One Raft peer. See the crate documentation for the driving loop.
pub struct Raft<S: Storage> {
    pub(crate) config: Config,
    pub(crate) id: NodeId,
    rng: Xoshiro256PlusPlus,

    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog<S>,
    /// The configuration in effect: the latest in the log, committed or not (thesis §4.1).
    /// Invariant: equal to `configuration_history.latest()`.
    pub(crate) configuration: Configuration,
    /// Every configuration of the log since the snapshot, to fall back on when a suffix is
    /// replaced and to describe a snapshot's configuration.
    pub(crate) configuration_history: ConfigurationHistory,

    /// The core's clock: ticks since this peer was created. Only leases read it.
    pub(crate) now_ticks: u64,
    /// Ticks since the last election-timer reset (followers, candidates) or since the last
    /// CheckQuorum round (leaders).
    pub(crate) election_elapsed: u32,
    /// A peer that restarts with a term may have acknowledged a leader's heartbeat just before
    /// it went down, and that leader may be serving lease reads on the strength of it. Until
    /// `now_ticks` reaches this the peer honours that lease as if it had just heard from the
    /// leader, ignoring campaigns, or a quick restart would let a rival win inside the lease
    /// (thesis §6.4.1). Zero without CheckQuorum or on a fresh peer.
    restart_lease_end_ticks: u64,
    heartbeat_elapsed: u32,
    /// Invariant: `config.election_ticks <= randomized_election_ticks < 2 * config.election_ticks`.
    randomized_election_ticks: u32,

    /// Votes received in the current (pre-)campaign.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Leader only: every member's progress, including this peer's own.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Leader only: the peer leadership is being handed to, and ticks since it began.
    pub(crate) transfer_target: Option<(NodeId, u32)>,
    /// Leader only: (index, size) of uncommitted entries proposed in this term, oldest first.
    pub(crate) uncommitted: VecDeque<(Index, u64)>,
    pub(crate) uncommitted_bytes: u64,
    /// Leader only: the log should be offered to followers at the next `ready()`.
    pub(crate) replication_due: bool,
    /// Leader only: the next `ready()` sends spare followers everything they lack (see
    /// [`Config::spare_flush_ticks`]).
    pub(crate) spare_flush_due: bool,
    /// Leader only: the last index at the latest tick, against which followers' lag is
    /// measured at the next one.
    pub(crate) last_index_at_tick: Index,
    pub(crate) reads: ReadIndexState,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    /// A snapshot taken by the service, to persist at the next `ready()`.
    pending_compaction: Option<Snapshot>,
    /// A snapshot restored from the leader (or found at start-up) that the service must load.
    snapshot_to_apply: Option<Snapshot>,

    /// Messages to send at the next `ready()`.
    pub(crate) messages: Vec<Message>,
    /// Messages that must wait until everything handed out so far is durable.
    pub(crate) messages_after_persist: Vec<Message>,
    /// Messages waiting for the given persist to complete, in persist order.
    waiting_for_persist: VecDeque<(PersistId, Vec<Message>)>,
    pending_persists: VecDeque<PendingPersist>,
    last_persist_id: PersistId,
    persisted_id: PersistId,
    /// The hard state last handed out for persisting.
    handed_out_hard_state: HardState,
    /// The term and vote of the newest hard state known durable, when it holds a vote: a
    /// candidate counts its own vote only once it is here.
    pub(crate) durable_vote: Option<(Term, NodeId)>,
    handed_out_soft_state: SoftState,

    pub(crate) counters: Counters,
    fatal: Option<StorageError>,
}

impl<S: Storage> Raft<S> {
    /// Creates a peer from what `storage` holds. A peer whose storage holds a snapshot hands
    /// it out first, as `snapshot_to_apply`, so the service can restore its state.
    pub fn new(config: Config, storage: S) -> Result<Raft<S>, InitError> {
        config.validate()?;
        let initial = storage.initial_state()?;
        let stored_snapshot = storage.snapshot()?;
        let configuration_history = ConfigurationHistory::new(
            stored_snapshot.meta.last_included.index,
            stored_snapshot.meta.configuration.clone(),
            initial.configuration_entries,
        );
        if *configuration_history.latest() != initial.configuration {
            return Err(InitError::Storage(StorageError::Failed(format!(
                "storage reports {:?} in effect, but its log and snapshot say {:?}",
                initial.configuration,
                configuration_history.latest()
            ))));
        }
        let log = RaftLog::new(storage, initial.hard_state.commit)?;
        let id = config.id;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ id.0.rotate_left(32));
        let randomized_election_ticks =
            rng.gen_range(config.election_ticks..2 * config.election_ticks);
        let snapshot_to_apply =
            (stored_snapshot.meta.last_included.index > Index(0)).then_some(stored_snapshot);
        let hard_state = HardState {
            commit: log.committed(),
            ..initial.hard_state
        };
        // Leases rely on followers ignoring campaigns while they hear from a leader, which
        // they do only with CheckQuorum (thesis §6.4.1, §4.2.3).
        let lease_ticks = config
            .check_quorum
            .then(|| u64::from(config.election_ticks - config.lease_margin_ticks));
        let reads = ReadIndexState::new(config.pending_reads_max, lease_ticks);
        let restart_lease_end_ticks = if config.check_quorum && hard_state.term > Term(0) {
            u64::from(config.election_ticks)
        } else {
            0
        };
        Ok(Raft {
            id,
            rng,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            configuration: initial.configuration,
            configuration_history,
            now_ticks: 0,
            election_elapsed: 0,
            restart_lease_end_ticks,
            heartbeat_elapsed: 0,
            randomized_election_ticks,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            transfer_target: None,
            uncommitted: VecDeque::new(),
            uncommitted_bytes: 0,
            replication_due: false,
            spare_flush_due: false,
            last_index_at_tick: Index(0),
            reads,
            incoming_snapshot: None,
            pending_compaction: None,
            snapshot_to_apply,
            messages: Vec::new(),
            messages_after_persist: Vec::new(),
            waiting_for_persist: VecDeque::new(),
            pending_persists: VecDeque::new(),
            last_persist_id: 0,
            persisted_id: 0,
            handed_out_hard_state: hard_state,
            durable_vote: hard_state.vote.map(|vote| (hard_state.term, vote)),
            handed_out_soft_state: SoftState {
                role: Role::Follower,
                leader: None,
            },
            counters: Counters::default(),
            fatal: None,
            config,
        })
    }

    // ----- Inputs -------------------------------------------------------------------------

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        self.now_ticks += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.tick_forwarded_reads();
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_ticks {
            self.election_elapsed = 0;
            if !self.is_promotable() {
                // A learner or a removed peer does not campaign, but it has not heard from a
                // leader for an election timeout either: it forgets it, as a campaign would,
                // so that the leader-lease check stops ignoring the campaigns of others —
                // which may need its vote (a new voter that has not seen the configuration
                // that made it one).
                self.set_leader(None);
                return;
            }
            if let Err(error) = self.start_election(false) {
                self.fail(error);
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if let Some((target, elapsed)) = self.transfer_target {
            // A transfer that has not completed within an election timeout is abandoned
            // (thesis §3.10), so proposals are not refused forever.
            if elapsed + 1 >= self.config.election_ticks {
                self.transfer_target = None;
            } else {
                self.transfer_target = Some((target, elapsed + 1));
            }
        }
        self.tick_replication_timeouts();
        let spare_flush_ticks = u64::from(self.config.spare_flush_ticks);
        if spare_flush_ticks > 0 && self.now_ticks.is_multiple_of(spare_flush_ticks) {
            self.spare_flush_due = true;
            self.replication_due = true;
        }
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                tracing::debug!(id = %self.id, term = %self.term, "lost contact with quorum; stepping down");
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Handles a message from another peer. Errors say why a message was dropped; only
    /// [`StepError::Fatal`] means the peer stopped.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        if let Some(error) = &self.fatal {
            return Err(StepError::Fatal(error.clone()));
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
            Ok(()) => {}
        }
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
            MessageBody::ReadIndexRequest { .. } => Ok(true),
            _ => Ok(false),
        }
    }

    /// A message from a higher term (§5.1): usually adopt the term and follow; pre-votes and
    /// vote requests inside a leader lease are the exceptions.
    fn step_higher_term(&mut self, message: &Message) -> Result<(), StepError> {
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
        Ok(())
    }

    /// A message from a lower term is stale. A few deserve an answer so that a deposed leader
    /// or a pre-candidate learns the current term.
    fn step_lower_term(&mut self, message: Message) -> Result<(), StepError> {
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
                // The leader bounds `commit` by our acknowledged match, so it is safe to adopt.
                self.log.commit_to(commit);
                Ok(())
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
        Ok(())
    }

    /// Proposes a command. Returns the id the entry has in the log: if it is committed, it
    /// comes out of [`Raft::ready`] in [`Ready::committed_entries`] at this index, with this
    /// term (the same index with another term means it was lost to a new leader; propose it
    /// again). The indexes between two commands may be taken by entries that carry no
    /// command — the no-op a new leader appends first (§5.4.2), configuration changes — so a
    /// service that waits for "the index of my command" counts those as applied as well
    /// ([`Raft::on_applied`]) and never numbers commands by counting them.
    pub fn propose(&mut self, data: Bytes) -> Result<LogId, ProposeError> {
        self.propose_entry(EntryKind::Normal, data)
    }

    pub(crate) fn propose_entry(
        &mut self,
        kind: EntryKind,
        data: Bytes,
    ) -> Result<LogId, ProposeError> {
        assert!(
            kind != EntryKind::Configuration,
            "invariant configuration-entries-via-propose-conf-change"
        );
        self.refuse_if_stopped()?;
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader.filter(|&leader| leader != self.id),
            });
        }
        if self.transfer_target.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        let size = data.len() as u64;
        if size > self.config.proposal_bytes_max {
            return Err(ProposeError::TooLarge {
                size,
                limit: self.config.proposal_bytes_max,
            });
        }
        let entry_bytes = size + 24;
        if kind == EntryKind::Normal
            && self.uncommitted_bytes + entry_bytes > self.config.uncommitted_bytes_max
        {
            return Err(ProposeError::Busy);
        }
        Ok(self.append_as_leader(kind, data))
    }

    /// Appends one entry of this leader's term, past every check of `propose_entry` (the
    /// no-op and configuration entries must go in even while proposals are refused).
    pub(crate) fn append_as_leader(&mut self, kind: EntryKind, data: Bytes) -> LogId {
        assert!(self.role == Role::Leader, "invariant only-leader-appends");
        let entry_bytes = data.len() as u64 + 24;
        let id = LogId::new(self.term, self.log.last_index().next());
        if let Err(error) = self.append_entries(vec![Entry { id, kind, data }]) {
            panic!("invariant leader-configuration-encodes: {error}");
        }
        self.uncommitted.push_back((id.index, entry_bytes));
        self.uncommitted_bytes += entry_bytes;
        self.replication_due = true;
        id
    }

    /// Asks the leader to hand leadership to `target` (thesis §3.10): the target is caught up,
    /// then told to campaign at once. Proposals are refused meanwhile.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), ProposeError> {
        self.refuse_if_stopped()?;
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if target == self.id {
            return Ok(());
        }
        // A peer in the outgoing set only is on its way out: it would lead just to step down.
        if !self.configuration.voters.contains(&target) {
            return Err(ProposeError::NotVoter(target));
        }
        // The target's campaign passes followers' lease check, and its vote requests may be
        // delayed past any deadline, so this leader can no longer vouch that nobody else is
        // elected: no lease reads for the rest of its term.
        self.reads.forbid_lease();
        self.transfer_target = Some((target, 0));
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if caught_up {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.replication_due = true;
        }
        Ok(())
    }

    /// The service has a snapshot of its state through `index` (which it has applied); the log
    /// up to there may be dropped. The snapshot is persisted through the next `ready()`.
    pub fn compact(&mut self, index: Index, data: Bytes) -> Result<(), CompactError> {
        let applied = self.log.applied();
        if index > applied {
            return Err(CompactError::NotApplied { index, applied });
        }
        // A snapshot restored from the leader but not yet durable also counts: it is newer than
        // anything the service could snapshot.
        let pending = self
            .pending_compaction
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index)
            .unwrap_or_default();
        let snapshot = pending.max(self.log.snapshot_index()?);
        if index <= snapshot {
            return Err(CompactError::AlreadyCompacted { index, snapshot });
        }
        let term = match self.log.term(index) {
            Ok(term) => term,
            Err(StorageError::Compacted(_)) => {
                return Err(CompactError::AlreadyCompacted { index, snapshot })
            }
            Err(error) => return Err(error.into()),
        };
        // The snapshot carries "the latest configuration as of the last included index" (Raft
        // paper §7), which may be older than the one in effect: configurations after `index`
        // are still entries of the log.
        let configuration = self.configuration_history.at(index).clone();
        self.configuration_history.compact_to(index);
        self.pending_compaction = Some(Snapshot {
            meta: SnapshotMeta {
                last_included: LogId::new(term, index),
                configuration,
            },
            data,
        });
        Ok(())
    }

    /// The runtime could not deliver to `peer`: stop pipelining to it and probe again, so
    /// a lost message never leaves it stuck.
    pub fn report_unreachable(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.progress.get_mut(&peer) {
            if progress.state != ProgressState::Probe {
                progress.become_probe();
                self.replication_due = true;
            }
        }
    }

    /// Reports the end of the write handed out with `id` (and every earlier one): it is durable.
    pub fn on_persisted(&mut self, id: PersistId) {
        if id > self.last_persist_id || id <= self.persisted_id {
            tracing::warn!(id = %self.id, persist = id, "on_persisted with an unknown id; ignored");
            return;
        }
        while self
            .pending_persists
            .front()
            .is_some_and(|pending| pending.id <= id)
        {
            let Some(pending) = self.pending_persists.pop_front() else {
                break;
            };
            if let Some(index) = pending.snapshot_index {
                if let Some(snapshot) = self.log.stable_snapshot_to(index) {
                    self.snapshot_to_apply = Some(snapshot);
                }
            }
            if let Some(last) = pending.last_entry {
                self.log.stable_to(last);
            }
            if let Some(hard_state) = pending.hard_state {
                self.durable_vote = hard_state.vote.map(|vote| (hard_state.term, vote));
            }
        }
        self.persisted_id = id;
        while self
            .waiting_for_persist
            .front()
            .is_some_and(|(required, _)| *required <= id)
        {
            if let Some((_, messages)) = self.waiting_for_persist.pop_front() {
                self.messages.extend(messages);
            }
        }
        if self.role == Role::Leader {
            let durable = self.log.durable_index();
            let own = self.id;
            if let Some(progress) = self.progress.get_mut(&own) {
                progress.maybe_update(durable);
            }
            if let Err(error) = self.maybe_commit() {
                self.fail(error);
            }
        } else if let Err(error) = self.count_own_durable_vote() {
            self.fail(error);
        }
    }

    /// Reports that the service applied everything through `index`: every entry of
    /// [`Ready::committed_entries`] up to it, whatever its kind (a no-op or a configuration
    /// entry is applied by doing nothing), or a [`Ready::snapshot_to_apply`] whose last index
    /// it is.
    ///
    /// The core counts the entries and snapshots it handed out against
    /// [`crate::Config::apply_bytes_max`] until they are reported, and only what was reported
    /// may be compacted ([`Raft::compact`]) or shows in [`Status::applied`]. A snapshot from
    /// the leader must be reported as well, once the state machine was replaced by it: until
    /// it is (or a later entry is), the applied index stays where it was before the snapshot,
    /// although the entries after it are handed out meanwhile. The snapshot found in storage
    /// at start-up already counts as applied; reporting it again is harmless. An index beyond
    /// what was handed out is taken as the last index handed out, and one below the applied
    /// index changes nothing.
    pub fn on_applied(&mut self, index: Index) {
        self.log.applied_to(index);
    }

    // ----- Outputs ------------------------------------------------------------------------

    /// Whether [`Raft::ready`] has anything to hand out. Always `false` once the peer has
    /// stopped ([`Raft::is_stopped`]), so a loop `while raft.has_ready() { .. }` ends.
    pub fn has_ready(&self) -> bool {
        if self.fatal.is_some() {
            return false;
        }
        !self.messages.is_empty()
            || (self.replication_due && self.role == Role::Leader)
            || self.log.has_unpersisted()
            || self.log.has_committed_to_apply(self.config.apply_bytes_max)
            || self.snapshot_to_apply.is_some()
            || self.pending_compaction.is_some()
            || self.term_or_vote_changed()
            || self.soft_state() != self.handed_out_soft_state
            || self.reads.has_output()
            || (!self.messages_after_persist.is_empty())
    }

    /// Takes everything the caller must do now. See [`Ready`] for what to do with each part,
    /// and [`Raft::on_applied`] for what to report once the committed entries and the
    /// snapshot it hands out are applied. Empty once the peer has stopped.
    pub fn ready(&mut self) -> Ready {
        let mut ready = Ready::default();
        if self.fatal.is_some() {
            return ready;
        }
        if self.role == Role::Leader {
            if let Err(error) = self.replicate_to_all() {
                self.fail(error);
                return ready;
            }
        } else {
            self.replication_due = false;
        }
        ready.persist = self.take_persist_request();
        let after_persist = std::mem::take(&mut self.messages_after_persist);
        if !after_persist.is_empty() {
            if self.last_persist_id <= self.persisted_id {
                self.messages.extend(after_persist);
            } else {
                match self.waiting_for_persist.back_mut() {
                    Some((required, waiting)) if *required == self.last_persist_id => {
                        waiting.extend(after_persist)
                    }
                    _ => self
                        .waiting_for_persist
                        .push_back((self.last_persist_id, after_persist)),
                }
            }
        }
        ready.messages = std::mem::take(&mut self.messages);
        crate::replication::coalesce_append_acks(&mut ready.messages);
        if let Some(snapshot) = self.snapshot_to_apply.take() {
            self.log
                .snapshot_applying(snapshot.meta.last_included.index);
            ready.snapshot_to_apply = Some(snapshot);
        } else {
            match self.log.take_committed(self.config.apply_bytes_max) {
                Ok(entries) => ready.committed_entries = entries,
                Err(error) => self.fail(error),
            }
        }
        (ready.read_states, ready.failed_reads) = self.reads.take_output();
        let soft_state = self.soft_state();
        if soft_state != self.handed_out_soft_state {
            self.handed_out_soft_state = soft_state;
            ready.soft_state = Some(soft_state);
        }
        ready
    }

    fn take_persist_request(&mut self) -> Option<PersistRequest> {
        let (restored, entries) = self.log.take_unpersisted();
        // Only a restored snapshot moves the log; a compaction snapshot covers durable entries.
        let restored_index = restored
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index);
        let snapshot = match restored {
            Some(snapshot) => {
                // A snapshot from the leader is beyond the commit index, so beyond anything
                // the service could have snapshotted locally.
                self.pending_compaction = None;
                Some(snapshot)
            }
            None => self.pending_compaction.take(),
        };
        // A commit index that advanced alone is no reason to write: Raft needs none durable (a
        // restarted peer learns it again from a leader), and syncing it cost every write a
        // second fdatasync on every peer. It rides along with the next write instead.
        if snapshot.is_none() && entries.is_empty() && !self.term_or_vote_changed() {
            return None;
        }
        let hard_state = self.hard_state();
        let hard_state_changed = hard_state != self.handed_out_hard_state;
        self.handed_out_hard_state = hard_state;
        self.last_persist_id += 1;
        let id = self.last_persist_id;
        self.pending_persists.push_back(PendingPersist {
            id,
            snapshot_index: restored_index,
            last_entry: entries.last().map(|entry| entry.id),
            hard_state: hard_state_changed.then_some(hard_state),
        });
        Some(PersistRequest {
            id,
            snapshot,
            entries,
            hard_state: hard_state_changed.then_some(hard_state),
        })
    }

    // ----- Queries ------------------------------------------------------------------------

    /// `(term, is_leader)`, the classic interface.
    pub fn state(&self) -> (Term, bool) {
        (self.term, self.role == Role::Leader)
    }

    /// This peer's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader known in the current term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The current hard state (which may not be durable yet).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    /// Whether the term or the vote differ from what was last handed out to persist: those
    /// must be durable before this peer acts on them.
    fn term_or_vote_changed(&self) -> bool {
        self.term != self.handed_out_hard_state.term || self.vote != self.handed_out_hard_state.vote
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            leader: self.leader,
        }
    }

    /// The commit index.
    pub fn commit_index(&self) -> Index {
        self.log.committed()
    }

    /// The last log index.
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// The index covered by the newest snapshot (zero when the log was never compacted).
    pub fn snapshot_index(&self) -> Index {
        self.log.snapshot_index().unwrap_or_default()
    }

    /// The configuration in effect: the latest in the log, committed or not (thesis §4.1).
    pub fn configuration(&self) -> &Configuration {
        &self.configuration
    }

    /// Counters of dropped messages and notable events.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether the peer has stopped: storage failed (see [`Raft::fatal_error`]). A stopped
    /// peer hands out nothing more ([`Raft::has_ready`] is `false`, [`Raft::ready`] is
    /// empty), ignores ticks, refuses messages with [`StepError::Fatal`] and proposals with
    /// [`ProposeError::NotLeader`]. What it handed out before stopping stays valid; the caller
    /// shuts it down and restarts it from its storage once the fault is dealt with.
    pub fn is_stopped(&self) -> bool {
        self.fatal.is_some()
    }

    /// The storage failure that stopped this peer, if any.
    pub fn fatal_error(&self) -> Option<&StorageError> {
        self.fatal.as_ref()
    }

    /// Entries in `[low, high)` (for tests and tools that inspect the log).
    pub fn entries(&self, low: Index, high: Index) -> Result<Vec<Entry>, StorageError> {
        self.log.entries(low, high, u64::MAX)
    }

    /// The term of the entry at `index`.
    pub fn term_at(&self, index: Index) -> Result<Term, StorageError> {
        self.log.term(index)
    }

    /// The storage underneath.
    pub fn storage(&self) -> &S {
        self.log.storage()
    }

    /// Mutable access to the storage, for callers that persist through it.
    pub fn storage_mut(&mut self) -> &mut S {
        self.log.storage_mut()
    }

    /// Consumes the peer, returning its storage (a crash in a simulator).
    pub fn into_storage(self) -> S {
        self.log.into_storage()
    }

    /// State for operators.
    pub fn status(&self) -> Status {
        let peers = if self.role == Role::Leader {
            self.progress
                .iter()
                .filter(|(&id, _)| id != self.id)
                .map(|(&id, progress)| PeerStatus {
                    id,
                    learner: self.configuration.is_learner(id),
                    match_index: progress.match_index,
                    next_index: progress.next_index,
                    state: progress.state,
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_index().unwrap_or_default(),
            configuration: self.configuration.clone(),
            configuration_change_in_progress: self.configuration_change_in_progress(),
            peers,
        }
    }

    // ----- Role transitions ---------------------------------------------------------------

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(
            term >= self.term,
            "invariant term-monotonic: {term} < {}",
            self.term
        );
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.role == Role::Leader {
            self.fail_reads_held_as_leader();
        }
        self.role = Role::Follower;
        self.set_leader(leader);
        self.reset_role_state();
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        assert!(
            self.role != Role::Leader,
            "invariant no-leader-pre-campaign"
        );
        self.role = Role::PreCandidate;
        self.set_leader(None);
        self.reset_role_state();
    }

    pub(crate) fn become_candidate(&mut self) {
        assert!(self.role != Role::Leader, "invariant no-leader-campaign");
        self.term = self.term.next();
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.set_leader(None);
        self.reset_role_state();
        self.counters.elections_started += 1;
    }

    pub(crate) fn become_leader(&mut self) -> Result<(), StorageError> {
        assert!(
            self.role == Role::Candidate,
            "invariant leader-from-candidate"
        );
        assert!(
            self.durable_vote == Some((self.term, self.id)),
            "invariant leader-vote-durable: {:?} in {}",
            self.durable_vote,
            self.term
        );
        self.role = Role::Leader;
        self.reset_role_state();
        self.set_leader(Some(self.id));
        self.reads.start_term_as_leader();
        self.counters.became_leader += 1;
        let last = self.log.last_index();
        self.sync_progress_with_configuration();
        let durable = self.log.durable_index();
        let own = self
            .progress
            .entry(self.id)
            .or_insert_with(|| Progress::new(last, self.config.inflight_messages_max));
        own.maybe_update(durable);
        own.become_replicate();
        // The no-op lets the leader commit entries from earlier terms (§5.4.2) and learn the
        // commit index needed for ReadIndex (thesis §6.4).
        self.append_as_leader(EntryKind::Noop, Bytes::new());
        tracing::debug!(id = %self.id, term = %self.term, last = %last, "became leader");
        self.maybe_commit()
    }

    fn reset_role_state(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_ticks = self
            .rng
            .gen_range(self.config.election_ticks..2 * self.config.election_ticks);
        self.votes.clear();
        self.progress.clear();
        self.transfer_target = None;
        self.uncommitted.clear();
        self.uncommitted_bytes = 0;
        self.replication_due = false;
    }

    fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            self.reads.leader_changed(leader, self.id);
        }
        self.leader = leader;
    }

    // ----- Helpers shared by the role modules ---------------------------------------------

    /// Queues a message to send at once.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.messages.push(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    /// Queues a message to send once everything handed out for persisting is durable.
    pub(crate) fn send_after_persist(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.messages_after_persist.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }

    /// Whether this peer may campaign: it is a voter (of either set, while joint) of the
    /// configuration in effect — or of one that is in effect only until a later entry
    /// commits. A peer that is not part of its own latest configuration "should still start
    /// new elections, as it might still be needed until the C_new entry is committed"; it
    /// does not count its own vote then (thesis §4.2.2): without that, a leader that removed
    /// itself and crashed could leave the rest unable to elect anyone. Learners, and peers
    /// that know their removal committed, never campaign.
    pub(crate) fn is_promotable(&self) -> bool {
        if self.configuration.is_voter(self.id) {
            return true;
        }
        let committed = self.log.committed();
        let own = self.id;
        self.configuration_history.latest_index() > committed
            && self
                .configuration_history
                .any_since(committed, |configuration| configuration.is_voter(own))
    }

    /// Refuses a request to a stopped peer, as a peer that is not the leader does (naming the
    /// leader it knew of, if another): it will never serve it, and another peer may.
    pub(crate) fn refuse_if_stopped(&self) -> Result<(), ProposeError> {
        if self.fatal.is_some() {
            return Err(ProposeError::NotLeader {
                leader: self.leader.filter(|&leader| leader != self.id),
            });
        }
        Ok(())
    }

    pub(crate) fn fail(&mut self, error: StorageError) {
        tracing::error!(id = %self.id, %error, "storage failed; peer stopped");
        self.fatal = Some(error);
    }
}
