//! Persistence scenarios (6.824 lab 2C / 3C): crashes and restarts, Figure 8, unreliable
//! networks and churn, on memory storage. Every scenario runs over many seeds; see
//! `raft_sim::seeds`. The scenario bodies are in `scenarios/persistence.rs`, shared with
//! `wal_storage.rs`.

#[path = "scenarios/persistence.rs"]
mod scenarios;

use raft_sim::{for_each_seed, StorageKind};

#[test]
fn persist_survives_full_restarts() {
    for_each_seed("persist_survives_full_restarts", |seed| {
        scenarios::persist_survives_full_restarts(StorageKind::Memory, seed);
    });
}

#[test]
fn persist_survives_partitioned_restarts() {
    for_each_seed("persist_survives_partitioned_restarts", |seed| {
        scenarios::persist_survives_partitioned_restarts(StorageKind::Memory, seed);
    });
}

#[test]
fn persist_survives_leader_and_follower_crash() {
    for_each_seed("persist_survives_leader_and_follower_crash", |seed| {
        scenarios::persist_survives_leader_and_follower_crash(StorageKind::Memory, seed);
    });
}

#[test]
fn figure_8_leaders_crash_repeatedly() {
    for_each_seed("figure_8_leaders_crash_repeatedly", |seed| {
        scenarios::figure_8_leaders_crash_repeatedly(StorageKind::Memory, seed);
    });
}

#[test]
fn figure_8_leaders_lose_writes() {
    for_each_seed("figure_8_leaders_lose_writes", |seed| {
        scenarios::figure_8_leaders_lose_writes(StorageKind::Memory, seed);
    });
}

#[test]
fn unreliable_agreement() {
    for_each_seed("unreliable_agreement", |seed| {
        scenarios::unreliable_agreement(StorageKind::Memory, seed);
    });
}

#[test]
fn figure_8_unreliable() {
    for_each_seed("figure_8_unreliable", |seed| {
        scenarios::figure_8_unreliable(StorageKind::Memory, seed);
    });
}

#[test]
fn reliable_churn() {
    for_each_seed("reliable_churn", |seed| {
        scenarios::reliable_churn(StorageKind::Memory, seed);
    });
}

#[test]
fn unreliable_churn() {
    for_each_seed("unreliable_churn", |seed| {
        scenarios::unreliable_churn(StorageKind::Memory, seed);
    });
}
