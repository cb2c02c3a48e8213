//! What the peer tells operators and callers about itself: [`Status`], [`PeerStatus`],
//! [`Counters`] and the read-only queries.

use crate::invariant::SafetyViolation;
use crate::progress::ProgressState;
use crate::recovery::RecoveryStatus;
use crate::storage::{Storage, StorageError};
use crate::types::{Configuration, Entry, HardState, Index, NodeId, Role, Term};

use super::Raft;

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
    /// Appends that asked this peer to overwrite a committed entry; the first one stopped it
    /// (see [`Raft::safety_violation`]), so this is 0 or 1 per peer.
    pub safety_violations: u64,
    /// Times this peer started recovering from possibly lost writes (0 or 1 per start).
    pub recoveries_started: u64,
    /// Times this peer finished recovering and became a normal member again.
    pub recoveries_finished: u64,
    /// Proposals other peers forwarded to this one as leader of their term
    /// ([`Raft::propose_or_forward`]), admitted (not duplicates), appended or refused.
    pub forwarded_proposals_received: u64,
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
    /// The safety violation that stopped this peer, if one did (see
    /// [`Raft::safety_violation`]).
    pub safety_violation: Option<SafetyViolation>,
    /// Where the recovery from possibly lost writes stands, while the peer recovers (see
    /// [`Raft::is_recovering`]).
    pub recovery: Option<RecoveryStatus>,
}

impl<S: Storage> Raft<S> {
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

    /// Whether the peer has stopped: storage failed (see [`Raft::fatal_error`]) or a leader
    /// asked it to overwrite a committed entry (see [`Raft::safety_violation`]). A stopped
    /// peer hands out nothing more ([`Raft::has_ready`] is `false`, [`Raft::ready`] is
    /// empty), ignores ticks, refuses messages with [`StepError::Fatal`](crate::StepError::Fatal)
    /// (or [`StepError::SafetyViolation`](crate::StepError::SafetyViolation)) and proposals with
    /// [`ProposeError::NotLeader`](crate::ProposeError::NotLeader). What it handed out before
    /// stopping stays valid; the caller shuts it down and, after a storage fault is dealt with,
    /// restarts it from its storage.
    pub fn is_stopped(&self) -> bool {
        self.fatal.is_some() || self.safety_violation.is_some()
    }

    /// The safety violation that stopped this peer, if any: a leader asked it to overwrite an
    /// entry it knows is committed (see [`SafetyViolation`]). One of the two has lost durable
    /// state or is not a correct Raft peer; the runtime should log this and exit rather than
    /// restart the peer on the same storage unexamined.
    pub fn safety_violation(&self) -> Option<&SafetyViolation> {
        self.safety_violation.as_ref()
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
            safety_violation: self.safety_violation.clone(),
            recovery: self.recovery_status(),
        }
    }
}
