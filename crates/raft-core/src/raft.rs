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
//! Protocol rules live in the role modules; this file holds the peer's state, its creation,
//! the timers and the role transitions. Beside it: `raft/step.rs` (message intake and term
//! checks), `raft/requests.rs` (proposals, transfer, compaction), `raft/handoff.rs` (the
//! ready/persist/apply hand-off) and `raft/status.rs` (status types and queries).

mod digest;
mod handoff;
mod invariants;
#[cfg(test)]
pub(crate) use invariants::tests as invariants_tests;
mod requests;
mod status;
mod step;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{InitError, ProposeError};
use crate::forward::Forwards;
use crate::invariant::SafetyViolation;
use crate::log::RaftLog;
use crate::membership::ConfigurationHistory;
use crate::message::{Message, MessageBody};
use crate::options::Config;
use crate::progress::Progress;
use crate::read_index::ReadIndexState;
use crate::ready::{PersistId, SoftState};
use crate::recovery::Recovery;
use crate::snapshot::IncomingSnapshot;
use crate::storage::{Storage, StorageError};
use crate::types::{Configuration, EntryKind, HardState, Index, NodeId, Role, Snapshot, Term};

use handoff::PendingPersist;
pub use status::{Counters, PeerStatus, Status};
pub use step::StepError;

/// Mixed into the seed of the generator that draws the forwarding session (`forward.rs`).
const FORWARD_SESSION_SALT: u64 = 0x666f_7277_6172_6473;

/// One Raft peer. See the crate documentation for the driving loop.
///
/// A clone is an independent copy of the peer, its storage included: a model checker forks a
/// state this way to try every next step from it.
#[derive(Clone)]
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
    /// Proposals forwarded to the leader (follower) and the windows that admit them (leader).
    pub(crate) forwards: Forwards,
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
    /// The term of the newest hard state known durable.
    pub(crate) durable_term: Term,
    /// Set while the peer recovers from possibly lost writes (see `recovery.rs`).
    pub(crate) recovery: Option<Recovery>,
    /// The peer started on storage that may have lost writes (recovering or not: a learner
    /// does not recover), so a leader may believe it holds entries it lost.
    pub(crate) lost_writes_suspected: bool,
    handed_out_soft_state: SoftState,

    pub(crate) counters: Counters,
    fatal: Option<StorageError>,
    /// Set when a leader asked this peer to overwrite a committed entry: the peer stops (see
    /// [`Raft::safety_violation`]).
    pub(crate) safety_violation: Option<SafetyViolation>,
}

impl<S: Storage> Raft<S> {
    /// Creates a peer from what `storage` holds. A peer whose storage holds a snapshot hands
    /// it out first, as `snapshot_to_apply`, so the service can restore its state.
    pub fn new(config: Config, storage: S) -> Result<Raft<S>, InitError> {
        config.validate()?;
        let initial = storage.initial_state()?;
        let possibly_lost_writes = initial.possibly_lost_writes;
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
        // The forwarding session comes from a generator of its own, so that the election
        // timeouts drawn from `rng` stay what they were for a seed.
        let forward_session = Xoshiro256PlusPlus::seed_from_u64(
            config.seed ^ id.0.rotate_left(32) ^ FORWARD_SESSION_SALT,
        )
        .gen::<u64>();
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
        // A peer that may have lost writes may have lost the term too: it honours the lease
        // whatever its storage says.
        let restart_lease_end_ticks =
            if config.check_quorum && (hard_state.term > Term(0) || possibly_lost_writes) {
                u64::from(config.election_ticks)
            } else {
                0
            };
        let mut raft = Raft {
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
            forwards: Forwards::new(forward_session),
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
            durable_term: hard_state.term,
            recovery: None,
            lost_writes_suspected: possibly_lost_writes,
            handed_out_soft_state: SoftState {
                role: Role::Follower,
                leader: None,
            },
            counters: Counters::default(),
            fatal: None,
            safety_violation: None,
            config,
        };
        // A peer whose storage may have lost acknowledged writes trusts neither its term nor
        // its vote nor its log until the other voters answered (recovery.rs).
        if possibly_lost_writes && raft.needs_recovery() {
            raft.start_recovery();
        } else if possibly_lost_writes {
            raft.tell_voters_of_possible_loss();
        }
        Ok(raft)
    }

    // ----- Inputs -------------------------------------------------------------------------

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        if self.is_stopped() {
            return;
        }
        self.now_ticks += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
        self.debug_check_invariants();
    }

    fn tick_election(&mut self) {
        self.tick_forwarded_reads();
        self.tick_forwarded_proposals();
        self.tick_recovery();
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_ticks {
            self.election_elapsed = 0;
            // A recovering peer never campaigns: what it lost may be what makes it unfit to
            // lead (recovery.rs).
            if !self.is_promotable() || self.is_recovering() {
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
        self.forwards.start_term_as_leader(self.term);
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
        // Every caller has set the term first: forwards to another leader or term end here.
        self.forwards.follow(leader, self.term, self.id);
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
        if self.is_stopped() {
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

    /// Stops the peer on a safety violation: it takes no more input and hands nothing out, so
    /// it cannot spread a divergent log; its runtime logs the violation and exits.
    pub(crate) fn stop_on_safety_violation(&mut self, violation: SafetyViolation) -> StepError {
        tracing::error!(id = %self.id, term = %self.term, %violation, "peer stopped");
        self.counters.safety_violations += 1;
        self.safety_violation = Some(violation.clone());
        StepError::SafetyViolation(violation)
    }
}
