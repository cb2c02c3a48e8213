//! What the core asks its caller to do: [`Ready`] and the pieces it carries.

use crate::forward::{ForwardError, ForwardId};
use crate::message::{Message, ReadContext};
use crate::types::{Entry, HardState, Index, LogId, NodeId, Role, Snapshot};

/// Identifies one [`PersistRequest`]; requests are numbered in the order they are handed out
/// and must be made durable in that order.
pub type PersistId = u64;

/// State to make durable. Apply in this order: `snapshot`, then `entries` (the first entry may
/// be at or below the stored last index: the stored suffix from there on is replaced), then
/// `hard_state`. When durable, report it with [`crate::Raft::on_persisted`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistRequest {
    /// Sequence number to report back.
    pub id: PersistId,
    /// A snapshot to store (received from the leader or taken by the service through
    /// [`crate::Raft::compact`]); entries it covers are dropped, a log that disagrees with it is
    /// discarded.
    pub snapshot: Option<Snapshot>,
    /// Entries to append, contiguous and in index order.
    pub entries: Vec<Entry>,
    /// The term, vote and commit index, when they changed. A commit index that advanced while
    /// the term and vote did not is only written along with entries, a snapshot or a new term
    /// or vote: a restarted peer may recover an older commit index and learn the newer one
    /// again from a leader.
    pub hard_state: Option<HardState>,
}

impl PersistRequest {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state.is_none()
    }
}

/// Volatile state worth telling the caller about when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// This peer's role.
    pub role: Role,
    /// The leader this peer knows of in its current term.
    pub leader: Option<NodeId>,
}

/// A linearizable read that may now be served: once the service has applied `index`, a read
/// of its state reflects every write committed before the read was requested (thesis §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's token, as given to [`crate::Raft::read_index`].
    pub context: ReadContext,
    /// The index the service must have applied before serving the read.
    pub index: Index,
}

/// Everything the caller must do now. Take it with [`crate::Raft::ready`]; the parts are
/// independent:
/// - send every message in `messages` at once (the core itself holds back messages that must
///   wait for a write until that write is reported durable);
/// - make `persist` durable and report it with [`crate::Raft::on_persisted`];
/// - restore the state machine from `snapshot_to_apply`, then apply `committed_entries` in order,
///   reporting progress with [`crate::Raft::on_applied`] (entries stop coming while
///   `Config::apply_bytes_max` of them are unreported). Report a snapshot too, with its last
///   index, once the state machine holds it: the core counts it as handed out, not as
///   applied (see [`crate::Raft::on_applied`]). Every entry counts, the leader's
///   [`EntryKind::Noop`](crate::EntryKind::Noop) and configuration entries included: they carry
///   no command but occupy an index, and the index of each command is the one
///   [`crate::Raft::propose`] returned;
/// - serve the reads in `read_states` once applied through their index, and fail those in
///   `failed_reads`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Role or leader changed to this.
    pub soft_state: Option<SoftState>,
    /// State to make durable.
    pub persist: Option<PersistRequest>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// A snapshot the peer installed (from the leader, or found in storage at start-up); the
    /// state machine must be replaced by it, and its last index then reported with
    /// [`crate::Raft::on_applied`]. Entries that follow it come in later `Ready`s.
    pub snapshot_to_apply: Option<Snapshot>,
    /// Committed, locally durable entries to apply, in log order, each handed out once:
    /// commands ([`EntryKind::Normal`](crate::EntryKind::Normal)) for the state machine, and
    /// entries that carry none (a new leader's no-op, configuration changes) but must be
    /// counted as applied all the same.
    pub committed_entries: Vec<Entry>,
    /// Reads that became safe to serve.
    pub read_states: Vec<ReadState>,
    /// Reads that cannot be served by this leader (it lost leadership, or the leader it
    /// forwarded to refused); the caller should retry them.
    pub failed_reads: Vec<ReadContext>,
    /// The outcomes of proposals this follower forwarded with
    /// [`crate::Raft::propose_or_forward`], each handed out once, under the id that call
    /// returned: `Ok` with the entry's id as the leader placed it (it is committed and applied
    /// like any other, or lost to a new leader like any proposal: the same index with another
    /// term); [`ForwardError::Refused`] when the leader refused it (it is not in the log); or
    /// [`ForwardError::Unanswered`] when no answer can come any more (the leader or the term
    /// changed, or none came within [`crate::FORWARD_ANSWER_ELECTION_TIMEOUTS`] election timeouts): it
    /// may or may not be in the log, and if committed it is applied as usual.
    pub forwarded: Vec<(ForwardId, Result<LogId, ForwardError>)>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.soft_state.is_none()
            && self.persist.is_none()
            && self.messages.is_empty()
            && self.snapshot_to_apply.is_none()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
            && self.failed_reads.is_empty()
            && self.forwarded.is_empty()
    }
}
