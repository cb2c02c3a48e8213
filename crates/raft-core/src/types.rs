//! Plain value types shared by every part of the core: identifiers, log entries, hard state,
//! configurations and snapshots.

use std::fmt;

use bytes::Bytes;

pub use crate::membership::Configuration;

/// The identity of a Raft peer. `NodeId(0)` is never a valid peer: it is rejected at
/// construction so that it can never be confused with "no node".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// A Raft term (Raft paper §5.1). Terms only ever grow on a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// A position in the replicated log. The first entry has index 1; index 0 is the empty prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Index(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl Term {
    /// The term after this one (saturating: a term of `u64::MAX` is never reached honestly).
    pub fn next(self) -> Term {
        Term(self.0.saturating_add(1))
    }
}

impl Index {
    /// The index after this one (saturating, so hostile indexes cannot overflow).
    pub fn next(self) -> Index {
        Index(self.0.saturating_add(1))
    }

    /// The index before this one, or zero.
    pub fn prev(self) -> Index {
        Index(self.0.saturating_sub(1))
    }

    /// `self + count`, saturating.
    pub fn plus(self, count: u64) -> Index {
        Index(self.0.saturating_add(count))
    }
}

/// The identity of a log entry: an index and the term it was created in. By the log matching
/// property (§5.3), two logs that hold the same `LogId` are identical up to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogId {
    /// The term the entry was created in.
    pub term: Term,
    /// The entry's position.
    pub index: Index,
}

impl LogId {
    /// Builds a log id.
    pub fn new(term: Term, index: Index) -> LogId {
        LogId { term, index }
    }

    /// Whether a log ending at `self` is at least as up to date as one ending at `other` (§5.4.1):
    /// a later last term wins, and for equal terms the longer log wins.
    pub fn is_up_to_date_with(self, other: LogId) -> bool {
        (self.term, self.index) >= (other.term, other.index)
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.term.0, self.index.0)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A command proposed by the service.
    Normal,
    /// The empty entry a new leader appends so that it can commit entries of earlier terms
    /// (§5.4.2, and the ReadIndex precondition of thesis §6.4).
    Noop,
    /// A new cluster configuration, encoded by [`Configuration::encode`]. It takes effect on a
    /// peer as soon as it is in the peer's log, committed or not (thesis §4.1).
    Configuration,
}

/// One log entry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Identity (term and index) of the entry.
    pub id: LogId,
    /// Kind of payload.
    pub kind: EntryKind,
    /// The command bytes; empty for [`EntryKind::Noop`]; the encoded configuration for
    /// [`EntryKind::Configuration`].
    pub data: Bytes,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entry({} {:?} {}B)", self.id, self.kind, self.data.len())
    }
}

impl Entry {
    /// Bytes this entry counts for when batching messages and bounding memory: the payload plus
    /// a fixed header allowance.
    pub fn size_bytes(&self) -> u64 {
        const HEADER_BYTES: u64 = 24;
        HEADER_BYTES + self.data.len() as u64
    }

    /// The entry's index.
    pub fn index(&self) -> Index {
        self.id.index
    }

    /// The entry's term.
    pub fn term(&self) -> Term {
        self.id.term
    }
}

/// The state a peer must make durable before it acts on it (Raft paper Figure 2, "persistent
/// state on all servers"), plus the commit index, which is durable only as an optimisation for
/// restart (it can always be relearned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Latest term this peer has seen.
    pub term: Term,
    /// The candidate this peer voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest index known to be committed.
    pub commit: Index,
}

/// Describes what a snapshot covers: the last entry it replaces and the configuration in force
/// at that entry (joint and learner state included).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// The last log entry the snapshot includes.
    pub last_included: LogId,
    /// The configuration as of `last_included`.
    pub configuration: Configuration,
}

/// A snapshot of the service's state machine, with its metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The service's serialized state.
    pub data: Bytes,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Snapshot({} {:?} {}B)",
            self.meta.last_included,
            self.meta.configuration,
            self.data.len()
        )
    }
}

/// The role a peer plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader or waits for one.
    Follower,
    /// Probing whether an election could succeed, without raising its term (thesis §9.6).
    PreCandidate,
    /// Campaigning for votes in a new term.
    Candidate,
    /// Replicating its log to the others.
    Leader,
}
