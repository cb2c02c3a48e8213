//! Log agreement scenarios (6.824 lab 2B / 3B), plus ReadIndex, on memory storage. Every
//! scenario runs over many seeds; see `raft_sim::seeds`. The scenario bodies are in
//! `scenarios/agreement.rs`, shared with `wal_storage.rs`.

#[path = "scenarios/agreement.rs"]
mod scenarios;

use raft_sim::{for_each_seed, StorageKind};

#[test]
fn basic_agreement() {
    for_each_seed("basic_agreement", |seed| {
        scenarios::basic_agreement(StorageKind::Memory, seed);
    });
}

#[test]
fn rpc_bytes_not_inflated() {
    for_each_seed("rpc_bytes_not_inflated", |seed| {
        scenarios::rpc_bytes_not_inflated(StorageKind::Memory, seed);
    });
}

#[test]
fn progressive_follower_failure() {
    for_each_seed("progressive_follower_failure", |seed| {
        scenarios::progressive_follower_failure(StorageKind::Memory, seed);
    });
}

#[test]
fn progressive_leader_failure() {
    for_each_seed("progressive_leader_failure", |seed| {
        scenarios::progressive_leader_failure(StorageKind::Memory, seed);
    });
}

#[test]
fn agreement_despite_follower_disconnection() {
    for_each_seed("agreement_despite_follower_disconnection", |seed| {
        scenarios::agreement_despite_follower_disconnection(StorageKind::Memory, seed);
    });
}

#[test]
fn no_agreement_without_majority() {
    for_each_seed("no_agreement_without_majority", |seed| {
        scenarios::no_agreement_without_majority(StorageKind::Memory, seed);
    });
}

#[test]
fn concurrent_starts_all_commit() {
    for_each_seed("concurrent_starts_all_commit", |seed| {
        scenarios::concurrent_starts_all_commit(StorageKind::Memory, seed);
    });
}

#[test]
fn partitioned_leader_rejoins() {
    for_each_seed("partitioned_leader_rejoins", |seed| {
        scenarios::partitioned_leader_rejoins(StorageKind::Memory, seed);
    });
}

#[test]
fn leader_backs_up_over_long_divergent_logs_quickly() {
    for_each_seed("leader_backs_up_over_long_divergent_logs_quickly", |seed| {
        scenarios::leader_backs_up_over_long_divergent_logs_quickly(StorageKind::Memory, seed);
    });
}

#[test]
fn rpc_counts_are_bounded() {
    for_each_seed("rpc_counts_are_bounded", |seed| {
        scenarios::rpc_counts_are_bounded(StorageKind::Memory, seed);
    });
}

#[test]
fn read_index_sees_every_acknowledged_write() {
    for_each_seed("read_index_sees_every_acknowledged_write", |seed| {
        scenarios::read_index_sees_every_acknowledged_write(StorageKind::Memory, seed);
    });
}

#[test]
fn lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits() {
    for_each_seed(
        "lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits",
        |seed| {
            scenarios::lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits(
                StorageKind::Memory,
                seed,
            );
        },
    );
}
