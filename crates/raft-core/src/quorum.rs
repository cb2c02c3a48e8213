//! Quorum arithmetic over a [`Configuration`]. Pure functions: they take the configuration and
//! a view of each voter's state and return a decision.
//!
//! ```text
//!  stable:  decision(voters)
//!  joint:   decision(voters) AND decision(outgoing)      (thesis §4.3: both majorities)
//!  learners never count
//! ```
//!
//! Every quorum question — votes (election), match indexes (commit), activity (CheckQuorum),
//! echoed rounds (ReadIndex and leases) — goes through these, so a joint configuration needs
//! both majorities everywhere.

use std::collections::{BTreeMap, BTreeSet};

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
/// confirmation rounds. Joint: the smaller of the two sets' values, so both majorities have
/// reached it. An empty voter set has no majority and yields `T::default()`.
pub fn majority_value<T: Ord + Copy + Default>(
    configuration: &Configuration,
    value_of: impl Fn(NodeId) -> Option<T>,
) -> T {
    let incoming = majority_value_of(&configuration.voters, &value_of);
    if configuration.outgoing.is_empty() {
        return incoming;
    }
    incoming.min(majority_value_of(&configuration.outgoing, &value_of))
}

fn majority_value_of<T: Ord + Copy + Default>(
    voters: &BTreeSet<NodeId>,
    value_of: &impl Fn(NodeId) -> Option<T>,
) -> T {
    let mut values: Vec<T> = voters
        .iter()
        .map(|&voter| value_of(voter).unwrap_or_default())
        .collect();
    if values.is_empty() {
        return T::default();
    }
    // Sorted descending, the value at position n/2 is held by at least n/2 + 1 voters.
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[values.len() / 2]
}

/// Tallies votes: `votes[voter]` is `true` for a grant, `false` for a refusal. Votes of
/// non-voters (learners, strangers) are ignored. Joint: won only when both sets are won,
/// lost as soon as either is lost.
pub fn vote_result(configuration: &Configuration, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let incoming = vote_result_of(&configuration.voters, votes);
    if configuration.outgoing.is_empty() {
        return incoming;
    }
    match (incoming, vote_result_of(&configuration.outgoing, votes)) {
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        _ => VoteResult::Pending,
    }
}

fn vote_result_of(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let total = voters.len();
    let majority = total / 2 + 1;
    let (mut granted, mut refused) = (0, 0);
    for voter in voters {
        match votes.get(voter) {
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

/// Whether the voters for which `active` holds form a majority (of both sets, when joint).
pub fn is_majority(configuration: &Configuration, active: impl Fn(NodeId) -> bool) -> bool {
    let incoming = is_majority_of(&configuration.voters, &active);
    incoming
        && (configuration.outgoing.is_empty() || is_majority_of(&configuration.outgoing, &active))
}

fn is_majority_of(voters: &BTreeSet<NodeId>, active: &impl Fn(NodeId) -> bool) -> bool {
    let count = voters.iter().filter(|&&voter| active(voter)).count();
    !voters.is_empty() && count > voters.len() / 2
}

/// Whether the voters other than `me` for which `answered` holds are a majority of the voters
/// other than `me` (of both sets, when joint); a set in which `me` is the only voter asks
/// nothing. Protocol-aware recovery asks this: a majority of the others meets, in some voter
/// other than `me`, every majority that `me` was part of (3 voters: both others; 5: three of
/// the other four).
pub fn is_majority_of_others(
    configuration: &Configuration,
    me: NodeId,
    answered: impl Fn(NodeId) -> bool,
) -> bool {
    let of_set = |voters: &BTreeSet<NodeId>| {
        let others = voters.iter().filter(|&&voter| voter != me);
        let total = others.clone().count();
        let count = others.filter(|&&voter| answered(voter)).count();
        total == 0 || count > total / 2
    };
    of_set(&configuration.voters)
        && (configuration.outgoing.is_empty() || of_set(&configuration.outgoing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn configuration(size: u64) -> Configuration {
        Configuration::new((1..=size).map(NodeId))
    }

    #[test]
    fn a_majority_of_others_leaves_the_asker_out() {
        let me = NodeId(1);
        let three = configuration(3);
        assert!(!is_majority_of_others(&three, me, |id| id == NodeId(2)));
        assert!(is_majority_of_others(&three, me, |id| id != me));
        let five = configuration(5);
        assert!(!is_majority_of_others(&five, me, |id| id.0 <= 3));
        assert!(is_majority_of_others(&five, me, |id| id.0 <= 4));
        // Its own answer never counts.
        assert!(!is_majority_of_others(&five, me, |id| id.0 <= 3 || id == me));
        // Joint: both sets; a set of `me` alone asks nothing.
        let mut joint = configuration(3);
        joint.outgoing = [me].into_iter().collect();
        assert!(is_majority_of_others(&joint, me, |id| id != me));
        joint.outgoing = [me, NodeId(4), NodeId(5)].into_iter().collect();
        assert!(!is_majority_of_others(&joint, me, |id| id.0 <= 3));
        assert!(is_majority_of_others(&joint, me, |id| id != me));
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

    fn joint(incoming: &[u64], outgoing: &[u64]) -> Configuration {
        Configuration {
            voters: incoming.iter().copied().map(NodeId).collect(),
            outgoing: outgoing.iter().copied().map(NodeId).collect(),
            learners: BTreeSet::new(),
        }
    }

    #[test]
    fn joint_commit_needs_both_majorities() {
        // C_old = {1, 2, 3}, C_new = {1, 4, 5}: 1, 2, 3 hold index 9 but 4 and 5 do not.
        let config = joint(&[1, 4, 5], &[1, 2, 3]);
        let matches = |id: NodeId| Some([0, 9, 9, 9, 2, 1][id.0 as usize]);
        assert_eq!(
            majority_value(&config, matches),
            2,
            "C_new's majority is at 2"
        );
        let stable_old = joint(&[1, 2, 3], &[]);
        assert_eq!(majority_value(&stable_old, matches), 9);
    }

    #[test]
    fn learners_never_count() {
        let mut config = configuration(3);
        config.learners = [NodeId(4), NodeId(5)].into_iter().collect();
        let matches = |id: NodeId| Some(if id.0 >= 4 { 100u64 } else { id.0 });
        assert_eq!(majority_value(&config, matches), 2);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        votes.insert(NodeId(4), true);
        votes.insert(NodeId(5), true);
        assert_eq!(vote_result(&config, &votes), VoteResult::Pending);
        assert!(!is_majority(&config, |id| id.0 != 2 && id.0 != 3));
    }

    #[test]
    fn joint_votes_and_activity_need_both_majorities() {
        let config = joint(&[1, 4, 5], &[1, 2, 3]);
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(1), true);
        votes.insert(NodeId(2), true);
        votes.insert(NodeId(3), true);
        assert_eq!(
            vote_result(&config, &votes),
            VoteResult::Pending,
            "old won, new not yet"
        );
        votes.insert(NodeId(4), false);
        votes.insert(NodeId(5), false);
        assert_eq!(vote_result(&config, &votes), VoteResult::Lost, "new lost");
        votes.insert(NodeId(4), true);
        assert_eq!(vote_result(&config, &votes), VoteResult::Won);
        assert!(!is_majority(&config, |id| id.0 <= 3));
        assert!(is_majority(&config, |id| id.0 <= 2 || id.0 == 4));
    }

    fn naive_joint_value(incoming: &[u64], outgoing: &[u64]) -> u64 {
        let majority_at =
            |set: &[u64], v: u64| set.iter().filter(|&&x| x >= v).count() * 2 > set.len();
        (0..=20u64)
            .filter(|&v| {
                majority_at(incoming, v) && (outgoing.is_empty() || majority_at(outgoing, v))
            })
            .max()
            .unwrap_or(0)
    }

    proptest! {
        /// Joint: the largest value a majority of each set has reached, against a naive model.
        #[test]
        fn joint_majority_value_matches_naive_model(
            values in proptest::collection::vec(0u64..20, 1..9),
            incoming_mask in 1u16..512,
            outgoing_mask in 0u16..512,
        ) {
            let ids = |mask: u16| (0..values.len()).filter(|&i| mask & (1 << i) != 0).collect::<Vec<_>>();
            let (incoming, outgoing) = (ids(incoming_mask), ids(outgoing_mask));
            prop_assume!(!incoming.is_empty());
            let config = Configuration {
                voters: incoming.iter().map(|&i| NodeId(i as u64 + 1)).collect(),
                outgoing: outgoing.iter().map(|&i| NodeId(i as u64 + 1)).collect(),
                learners: BTreeSet::new(),
            };
            let got = majority_value(&config, |id| Some(values[(id.0 - 1) as usize]));
            let pick = |set: &[usize]| set.iter().map(|&i| values[i]).collect::<Vec<_>>();
            prop_assert_eq!(got, naive_joint_value(&pick(&incoming), &pick(&outgoing)));
        }

        /// Joint votes: won when both sets are won, lost when either is, against a naive
        /// model of each set.
        #[test]
        fn joint_vote_result_matches_naive_model(
            votes in proptest::collection::vec(proptest::option::of(any::<bool>()), 1..8),
            incoming_mask in 1u16..256,
            outgoing_mask in 1u16..256,
        ) {
            let ids = |mask: u16| (0..votes.len()).filter(|&i| mask & (1 << i) != 0).collect::<Vec<_>>();
            let (incoming, outgoing) = (ids(incoming_mask), ids(outgoing_mask));
            prop_assume!(!incoming.is_empty() && !outgoing.is_empty());
            let config = Configuration {
                voters: incoming.iter().map(|&i| NodeId(i as u64 + 1)).collect(),
                outgoing: outgoing.iter().map(|&i| NodeId(i as u64 + 1)).collect(),
                learners: BTreeSet::new(),
            };
            let map: BTreeMap<NodeId, bool> = votes.iter().enumerate()
                .filter_map(|(i, v)| v.map(|v| (NodeId(i as u64 + 1), v))).collect();
            let naive = |set: &[usize]| {
                let granted = set.iter().filter(|&&i| votes[i] == Some(true)).count();
                let undecided = set.iter().filter(|&&i| votes[i].is_none()).count();
                if granted * 2 > set.len() {
                    VoteResult::Won
                } else if (granted + undecided) * 2 > set.len() {
                    VoteResult::Pending
                } else {
                    VoteResult::Lost
                }
            };
            let expected = match (naive(&incoming), naive(&outgoing)) {
                (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
                (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
                _ => VoteResult::Pending,
            };
            prop_assert_eq!(vote_result(&config, &map), expected);
        }

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
