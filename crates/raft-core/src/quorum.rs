//! Quorum arithmetic over a [`Configuration`]. Pure functions: they take the configuration and
//! a view of each voter's state and return a decision, so a joint configuration can later
//! combine two of these results (thesis §4.3) without touching the callers.

use std::collections::BTreeMap;

use crate::types::{Configuration, NodeId};

/// The outcome of an election as far as the votes received tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority refused: the election cannot be won.
    Lost,
    /// Neither yet.
    Pending,
}

/// The largest value that a majority of voters has reached, given each voter's value (`None`
/// counts as the minimum). Used for the commit index (match indexes) and for ReadIndex
/// confirmation rounds. An empty configuration has no majority and yields `T::default()`.
pub fn majority_value<T: Ord + Copy + Default>(
    configuration: &Configuration,
    value_of: impl Fn(NodeId) -> Option<T>,
) -> T {
    let mut values: Vec<T> = configuration
        .members()
        .map(|voter| value_of(voter).unwrap_or_default())
        .collect();
    if values.is_empty() {
        return T::default();
    }
    // Sorted descending, the value at position n/2 is held by at least n/2 + 1 voters.
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[values.len() / 2]
}

/// Tallies votes: `votes[voter]` is `true` for a grant, `false` for a refusal. Votes of
/// non-voters are ignored.
pub fn vote_result(configuration: &Configuration, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let total = configuration.voters.len();
    let majority = total / 2 + 1;
    let (mut granted, mut refused) = (0, 0);
    for voter in configuration.members() {
        match votes.get(&voter) {
            Some(true) => granted += 1,
            Some(false) => refused += 1,
            None => {}
        }
    }
    if total > 0 && granted >= majority {
        VoteResult::Won
    } else if total == 0 || total - refused < majority {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Whether the voters for which `active` holds form a majority.
pub fn is_majority(configuration: &Configuration, active: impl Fn(NodeId) -> bool) -> bool {
    let count = configuration
        .members()
        .filter(|&voter| active(voter))
        .count();
    !configuration.voters.is_empty() && count > configuration.voters.len() / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn configuration(size: u64) -> Configuration {
        Configuration::new((1..=size).map(NodeId))
    }

    #[test]
    fn majority_value_picks_the_median_from_the_top() {
        let config = configuration(5);
        let values = [5u64, 1, 4, 2, 3];
        let value = majority_value(&config, |id| Some(values[(id.0 - 1) as usize]));
        assert_eq!(value, 3);
    }

    #[test]
    fn vote_result_decides_as_soon_as_possible() {
        let config = configuration(3);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        assert_eq!(vote_result(&config, &votes), VoteResult::Pending);
        votes.insert(NodeId(2), false);
        assert_eq!(vote_result(&config, &votes), VoteResult::Pending);
        votes.insert(NodeId(3), false);
        assert_eq!(vote_result(&config, &votes), VoteResult::Lost);
        votes.insert(NodeId(3), true);
        assert_eq!(vote_result(&config, &votes), VoteResult::Won);
        votes.insert(NodeId(9), true);
        assert_eq!(
            vote_result(&config, &votes),
            VoteResult::Won,
            "outsider ignored"
        );
    }

    proptest! {
        /// The majority value is the largest v such that more than half the voters have >= v.
        #[test]
        fn majority_value_matches_naive_model(values in proptest::collection::vec(0u64..20, 1..9)) {
            let config = configuration(values.len() as u64);
            let got = majority_value(&config, |id| Some(values[(id.0 - 1) as usize]));
            let naive = (0..=20u64)
                .filter(|&v| values.iter().filter(|&&x| x >= v).count() * 2 > values.len())
                .max()
                .unwrap_or(0);
            prop_assert_eq!(got, naive);
        }

        #[test]
        fn vote_result_matches_naive_model(votes in proptest::collection::vec(proptest::option::of(any::<bool>()), 1..8)) {
            let config = configuration(votes.len() as u64);
            let map: BTreeMap<NodeId, bool> = votes.iter().enumerate()
                .filter_map(|(i, v)| v.map(|v| (NodeId(i as u64 + 1), v))).collect();
            let granted = votes.iter().filter(|v| **v == Some(true)).count();
            let undecided = votes.iter().filter(|v| v.is_none()).count();
            let expected = if granted * 2 > votes.len() {
                VoteResult::Won
            } else if (granted + undecided) * 2 > votes.len() {
                VoteResult::Pending
            } else {
                VoteResult::Lost
            };
            prop_assert_eq!(vote_result(&config, &map), expected);
        }
    }
}
