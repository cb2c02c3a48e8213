//! Leader election scenarios (6.824 lab 2A / 3A), plus PreVote, CheckQuorum and leadership
//! transfer, on memory storage. Every scenario runs over many seeds; see `raft_sim::seeds`.
//! The scenario bodies are in `scenarios/election.rs`, shared with `wal_storage.rs`.

#[path = "scenarios/election.rs"]
mod scenarios;

use raft_sim::{for_each_seed, StorageKind};

#[test]
fn initial_election_elects_one_leader_and_terms_stay_stable() {
    for_each_seed(
        "initial_election_elects_one_leader_and_terms_stay_stable",
        |seed| {
            scenarios::initial_election_elects_one_leader_and_terms_stay_stable(
                StorageKind::Memory,
                seed,
            );
        },
    );
}

#[test]
fn re_election_after_leader_loss() {
    for_each_seed("re_election_after_leader_loss", |seed| {
        scenarios::re_election_after_leader_loss(StorageKind::Memory, seed);
    });
}

#[test]
fn many_elections_under_churn() {
    for_each_seed("many_elections_under_churn", |seed| {
        scenarios::many_elections_under_churn(StorageKind::Memory, seed);
    });
}

#[test]
fn rejoining_peer_does_not_disturb_healthy_leader() {
    for_each_seed("rejoining_peer_does_not_disturb_healthy_leader", |seed| {
        scenarios::rejoining_peer_does_not_disturb_healthy_leader(StorageKind::Memory, seed);
    });
}

#[test]
fn leader_in_minority_steps_down() {
    for_each_seed("leader_in_minority_steps_down", |seed| {
        scenarios::leader_in_minority_steps_down(StorageKind::Memory, seed);
    });
}

#[test]
fn leadership_transfer_hands_over_quickly() {
    for_each_seed("leadership_transfer_hands_over_quickly", |seed| {
        scenarios::leadership_transfer_hands_over_quickly(StorageKind::Memory, seed);
    });
}
