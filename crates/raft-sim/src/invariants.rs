//! Safety invariants, one checker per concern, consulted after every simulated event.
//!
//! ```text
//!  event ─► cluster updates peer p ─┬─ ElectionSafety      at most one leader per term
//!                                    ├─ LeaderAppendOnly    a leader only appends in its term
//!                                    ├─ LogMatching         one content per LogId, one predecessor
//!                                    ├─ membership steps    configuration entries decode, are
//!                                    │                      valid and change one peer at a time
//!                                    ├─ CommittedEntries    a committed index never changes term
//!                                    ├─ durable majority    committed ⇒ on a majority of the
//!                                    │                      voters' disks (of both sets while
//!                                    │                      joint), read back intact from each
//!                                    │                      (a recovering peer's lost entries
//!                                    │                      count: LostWrites)
//!                                    ├─ durable before answer  votes and acks only once on disk
//!                                    ├─ LeaderCompleteness  a new leader holds every committed entry
//!                                    ├─ StateMachineSafety  one command and one state per index
//!                                    ├─ IndexMonotonic      commit and applied never go back
//!                                    ├─ DurableVote         one durable vote per term, terms grow
//!                                    ├─ ReadLinearizability ReadIndex ≥ everything committed before
//!                                    └─ Acknowledged        acked writes reach every peer (liveness)
//! ```
//!
//! One module per concern: `election`, `log`, `membership`, `commitment`, `durability`,
//! `state_machine`, `reads`, `liveness`. A checker returns a [`Violation`]; the cluster turns
//! it into a panic that names the invariant, the seed and the recent trace. Checkers see the whole history of the run, across
//! crashes, so "two peers applied different commands at one index" is caught even when the two
//! never ran at the same time.

mod commitment;
mod durability;
mod election;
mod liveness;
mod log;
mod membership;
mod reads;
mod state_machine;

pub(crate) use commitment::{
    check_durable_majority, CommittedEntries, LeaderCompleteness, LostWrites,
};
pub(crate) use durability::check_durable_before_answer;
pub(crate) use election::{DurableVote, ElectionSafety};
pub(crate) use liveness::Acknowledged;
pub(crate) use log::{LeaderAppendOnly, LogMatching};
pub(crate) use membership::check_membership_steps;
pub(crate) use reads::ReadLinearizability;
pub(crate) use state_machine::{IndexMonotonic, StateMachineSafety};

/// A normal entry at `(term, index)` holding `data`, for the checkers' unit tests.
#[cfg(test)]
fn test_entry(term: u64, index: u64, data: &'static [u8]) -> raft_core::Entry {
    raft_core::Entry {
        id: raft_core::LogId::new(raft_core::Term(term), raft_core::Index(index)),
        kind: raft_core::EntryKind::Normal,
        data: bytes::Bytes::from_static(data),
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
}

/// The result of one check.
pub type Check = Result<(), Violation>;

pub(crate) fn violated(invariant: &'static str, detail: String) -> Check {
    Err(Violation { invariant, detail })
}

/// All checkers of a run.
#[derive(Default)]
pub(crate) struct Invariants {
    pub(crate) election: ElectionSafety,
    pub(crate) append_only: LeaderAppendOnly,
    pub(crate) log_matching: LogMatching,
    pub(crate) committed: CommittedEntries,
    pub(crate) completeness: LeaderCompleteness,
    pub(crate) state_machine: StateMachineSafety,
    pub(crate) monotonic: IndexMonotonic,
    pub(crate) durable: DurableVote,
    pub(crate) reads: ReadLinearizability,
    pub(crate) acknowledged: Acknowledged,
    pub(crate) lost_writes: LostWrites,
}
