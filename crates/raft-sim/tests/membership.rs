//! Membership changes (thesis §4.3): removing the leader, adding to a cluster with a member
//! cut off, shrinking to one voter and growing back, a removed peer that never heard of its
//! removal, and a change refused because too few of the new voters answer. On memory storage; the scenario bodies are in `scenarios/membership.rs`,
//! shared with `wal_storage.rs`. The randomized run (`randomized.rs`) adds membership churn to
//! every other fault.

#[path = "scenarios/membership.rs"]
mod scenarios;

use raft_sim::{for_each_seed, StorageKind};

#[test]
fn removing_the_leader_hands_over_and_the_rest_carry_on() {
    for_each_seed(
        "removing_the_leader_hands_over_and_the_rest_carry_on",
        |seed| {
            scenarios::removing_the_leader_hands_over_and_the_rest_carry_on(
                StorageKind::Memory,
                seed,
            );
        },
    );
}

#[test]
fn adding_to_a_cluster_with_a_partitioned_member() {
    for_each_seed("adding_to_a_cluster_with_a_partitioned_member", |seed| {
        scenarios::adding_to_a_cluster_with_a_partitioned_member(StorageKind::Memory, seed);
    });
}

#[test]
fn shrinking_five_to_three_to_one_and_growing_back_to_five() {
    for_each_seed(
        "shrinking_five_to_three_to_one_and_growing_back_to_five",
        |seed| {
            scenarios::shrinking_five_to_three_to_one_and_growing_back_to_five(
                StorageKind::Memory,
                seed,
            );
        },
    );
}

#[test]
fn a_removed_peer_that_missed_its_removal_never_disrupts() {
    for_each_seed(
        "a_removed_peer_that_missed_its_removal_never_disrupts",
        |seed| {
            scenarios::a_removed_peer_that_missed_its_removal_never_disrupts(
                StorageKind::Memory,
                seed,
            );
        },
    );
}

#[test]
fn a_change_leaving_too_few_answering_voters_is_refused() {
    for_each_seed(
        "a_change_leaving_too_few_answering_voters_is_refused",
        |seed| {
            scenarios::a_change_leaving_too_few_answering_voters_is_refused(
                StorageKind::Memory,
                seed,
            );
        },
    );
}
