//! The vocabulary of the core's self-check: [`InvariantViolation`], the broken invariant a
//! check found, and [`SafetyViolation`], what stops a peer asked to break Raft's safety.
//!
//! ```text
//!  Raft::invariant_violations() ─► RaftLog, Progress, ReadIndexState, Raft each add what is
//!                                  broken to a Violations list ─► Vec<InvariantViolation>
//!  Raft::check_invariants()     ─► panics naming every broken invariant (debug builds: after
//!                                  every public entry point; the simulator: after every event)
//! ```
//!
//! The invariants themselves are listed in `raft/invariants.rs`, next to the checks.

use crate::types::{Index, NodeId, Term};

/// One broken invariant found by [`crate::Raft::invariant_violations`]: a bug in the core or in
/// its caller, never the fault of a peer or the network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant {invariant}: {detail}")]
pub struct InvariantViolation {
    /// The invariant's name, as in the `Invariant:` comments of the state it governs
    /// (`log-cursors-ordered`, `progress-match-below-next`, ...).
    pub invariant: &'static str,
    /// The values that break it.
    pub detail: String,
}

/// A leader asked this peer to replace an entry it knows is committed. Committed entries are
/// never replaced (Leader Completeness, Raft paper §5.4; thesis §3.6.3), so one of the two
/// peers has lost durable state or is not a correct Raft peer: this peer stops rather than
/// take part in a divergence (see [`crate::Raft::safety_violation`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "safety violation: {sender} (leader in term {term}) asked to overwrite committed entry {index} \
     (ours of term {ours}, theirs of term {theirs}; committed through {committed})"
)]
pub struct SafetyViolation {
    /// The term of the append that asked for it.
    pub term: Term,
    /// The index of the committed entry it would have replaced.
    pub index: Index,
    /// The peer that sent the append.
    pub sender: NodeId,
    /// The term of this peer's entry at `index`.
    pub ours: Term,
    /// The term the sender claims for the entry at `index`.
    pub theirs: Term,
    /// This peer's commit index when the append arrived.
    pub committed: Index,
}

/// Collects broken invariants; each component of the core adds its own.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<InvariantViolation>);

impl Violations {
    /// Records `invariant` as broken unless `holds`; `detail` (the values) is only formatted
    /// for a broken one, so a passing check costs a comparison.
    pub(crate) fn check(
        &mut self,
        holds: bool,
        invariant: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        if !holds {
            self.0.push(InvariantViolation {
                invariant,
                detail: detail(),
            });
        }
    }

    pub(crate) fn into_vec(self) -> Vec<InvariantViolation> {
        self.0
    }
}
