//! At most one leader per term, and at most one durable vote per term on each peer
//! (Raft paper §5.2).

use std::collections::BTreeMap;

use raft_core::{HardState, NodeId, Term};

use super::{violated, Check};

/// At most one leader per term, ever (Raft paper §5.2, Election Safety).
#[derive(Default)]
pub(crate) struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    pub(crate) fn observe(&mut self, peer: NodeId, term: Term, is_leader: bool) -> Check {
        if !is_leader {
            return Ok(());
        }
        let leader = *self.leaders.entry(term).or_insert(peer);
        if leader != peer {
            return violated(
                "election-safety",
                format!("{peer} and {leader} were both leader in {term}"),
            );
        }
        Ok(())
    }

    /// Terms that had a leader.
    pub(crate) fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }
}

/// What a peer made durable: its term never decreases, and it never records two votes in one
/// term, across crashes (§5.2: "each server will vote for at most one candidate in a term").
#[derive(Default)]
pub(crate) struct DurableVote {
    durable: BTreeMap<NodeId, HardState>,
}

impl DurableVote {
    /// `peer`'s disk lost writes and holds `hard_state` again: the fault itself, not a
    /// breach of the rule (a checker of the peer's recovery would judge what it does next).
    pub(crate) fn revert(&mut self, peer: NodeId, hard_state: HardState) {
        self.durable.insert(peer, hard_state);
    }

    pub(crate) fn on_persisted(&mut self, peer: NodeId, hard_state: HardState) -> Check {
        let Some(previous) = self.durable.insert(peer, hard_state) else {
            return Ok(());
        };
        if hard_state.term < previous.term {
            return violated(
                "durable-term-monotonic",
                format!(
                    "{peer} persisted {} after {}",
                    hard_state.term, previous.term
                ),
            );
        }
        if hard_state.term == previous.term
            && previous.vote.is_some()
            && hard_state.vote != previous.vote
        {
            return violated(
                "durable-vote-once",
                format!(
                    "{peer} persisted vote {:?} in {} after voting {:?}",
                    hard_state.vote, hard_state.term, previous.vote
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use raft_core::{HardState, Index, NodeId, Term};

    use super::*;

    #[test]
    fn election_safety_catches_two_leaders_in_a_term() {
        let mut checker = ElectionSafety::default();
        assert!(checker.observe(NodeId(1), Term(2), true).is_ok());
        assert!(checker.observe(NodeId(1), Term(2), true).is_ok());
        assert!(checker.observe(NodeId(2), Term(3), true).is_ok());
        let error = checker
            .observe(NodeId(3), Term(2), true)
            .expect_err("two leaders");
        assert_eq!(error.invariant, "election-safety");
    }

    #[test]
    fn durable_votes_are_once_per_term() {
        let mut checker = DurableVote::default();
        let state = |term: u64, vote: Option<u64>| HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: Index(0),
        };
        assert!(checker.on_persisted(NodeId(1), state(1, None)).is_ok());
        assert!(checker.on_persisted(NodeId(1), state(1, Some(2))).is_ok());
        assert!(checker.on_persisted(NodeId(1), state(1, Some(3))).is_err());
        assert!(checker.on_persisted(NodeId(1), state(0, None)).is_err());
    }
}
