//! The classic scenarios on a real write-ahead log (`raft_wal`, a temporary directory per peer)
//! instead of memory storage: every persist is a write to segment files, and a crash drops the
//! log and recovers it from its files, which must give back exactly what was durable.
//! Segments are small (4 KiB), so runs roll over to new segments and compaction deletes whole
//! ones; the tail cache alternates between none and 1 KiB by seed, so reads go to the files.
//!
//! The scenario bodies are the memory-storage tests' own (`scenarios/*.rs`), so every classic
//! scenario runs here too, over fewer seeds. Seeds follow the usual environment variables
//! (`RAFT_SIM_SEEDS`, `RAFT_SIM_SEED`, `RAFT_SIM_SEED_START`; see `raft_sim::seeds`), and
//! `RAFT_SIM_WAL_DIR` moves the logs (default `/dev/shm`, see `raft_sim::wal_parent_dir`).
//! A failure names the test to rerun, e.g.
//! `RAFT_SIM_SEED=7 cargo test -p raft-sim --test wal_storage snapshot_install_crash_on_wal`.

#[path = "scenarios/election.rs"]
mod election;

#[path = "scenarios/agreement.rs"]
mod agreement;

#[path = "scenarios/persistence.rs"]
mod persistence;

#[path = "scenarios/snapshots.rs"]
mod snapshots;

#[path = "scenarios/membership.rs"]
mod membership;

#[path = "scenarios/lying_disk.rs"]
mod lying_disk;

use raft_sim::{
    chaos_config, for_each_seed_n, run_chaos_with, ChaosOptions, StorageKind, WAL_CACHE_BYTES_MAX,
    WAL_SEGMENT_BYTES_MAX,
};

/// Seeds of each classic scenario by default (the memory tests run 200).
const WAL_SEEDS: usize = 100;
/// Seeds of the randomized run by default (the memory test runs 2,000).
const WAL_CHAOS_SEEDS: usize = 300;

/// The log a seed runs on: small segments, and no tail cache on every other pair of seeds
/// (`seed / 2`, so the choice does not follow the snapshot scenarios' `seed % 2`).
fn wal(seed: u64) -> StorageKind {
    let cache_bytes_max = if (seed / 2) % 2 == 1 {
        WAL_CACHE_BYTES_MAX
    } else {
        0
    };
    StorageKind::Wal {
        segment_bytes_max: WAL_SEGMENT_BYTES_MAX,
        cache_bytes_max,
    }
}

/// Runs `scenario` on the write-ahead log over [`WAL_SEEDS`] seeds.
fn on_wal(name: &str, scenario: fn(StorageKind, u64)) {
    for_each_seed_n(name, WAL_SEEDS, |seed| scenario(wal(seed), seed));
}

#[test]
fn randomized_faults_keep_safety_and_converge_on_wal() {
    let options = ChaosOptions::default();
    for_each_seed_n(
        "randomized_faults_keep_safety_and_converge_on_wal",
        WAL_CHAOS_SEEDS,
        |seed| {
            let config = chaos_config(seed, &options).with_storage(wal(seed));
            let report = run_chaos_with(config, &options);
            assert!(report.counters.events > 0, "seed {seed} ran no events");
        },
    );
}

#[test]
fn same_seed_replays_exactly_on_wal() {
    for_each_seed_n("same_seed_replays_exactly_on_wal", 3, |seed| {
        let options = ChaosOptions::default();
        let config = chaos_config(seed, &options).with_storage(wal(seed));
        let first = run_chaos_with(config.clone(), &options);
        let second = run_chaos_with(config, &options);
        assert_eq!(
            first.digest, second.digest,
            "seed {seed} did not replay exactly"
        );
        assert_eq!(
            first.counters, second.counters,
            "seed {seed} counters differ"
        );
    });
}

#[test]
fn checkers_catch_a_disk_that_lies_about_durability_on_wal() {
    lying_disk::checkers_catch_it(StorageKind::wal(), 0..100);
}

#[test]
fn initial_election_elects_one_leader_and_terms_stay_stable_on_wal() {
    on_wal(
        "initial_election_elects_one_leader_and_terms_stay_stable_on_wal",
        election::initial_election_elects_one_leader_and_terms_stay_stable,
    );
}

#[test]
fn re_election_after_leader_loss_on_wal() {
    on_wal(
        "re_election_after_leader_loss_on_wal",
        election::re_election_after_leader_loss,
    );
}

#[test]
fn many_elections_under_churn_on_wal() {
    on_wal(
        "many_elections_under_churn_on_wal",
        election::many_elections_under_churn,
    );
}

#[test]
fn rejoining_peer_does_not_disturb_healthy_leader_on_wal() {
    on_wal(
        "rejoining_peer_does_not_disturb_healthy_leader_on_wal",
        election::rejoining_peer_does_not_disturb_healthy_leader,
    );
}

#[test]
fn leader_in_minority_steps_down_on_wal() {
    on_wal(
        "leader_in_minority_steps_down_on_wal",
        election::leader_in_minority_steps_down,
    );
}

#[test]
fn leadership_transfer_hands_over_quickly_on_wal() {
    on_wal(
        "leadership_transfer_hands_over_quickly_on_wal",
        election::leadership_transfer_hands_over_quickly,
    );
}

#[test]
fn basic_agreement_on_wal() {
    on_wal("basic_agreement_on_wal", agreement::basic_agreement);
}

#[test]
fn rpc_bytes_not_inflated_on_wal() {
    on_wal(
        "rpc_bytes_not_inflated_on_wal",
        agreement::rpc_bytes_not_inflated,
    );
}

#[test]
fn progressive_follower_failure_on_wal() {
    on_wal(
        "progressive_follower_failure_on_wal",
        agreement::progressive_follower_failure,
    );
}

#[test]
fn progressive_leader_failure_on_wal() {
    on_wal(
        "progressive_leader_failure_on_wal",
        agreement::progressive_leader_failure,
    );
}

#[test]
fn agreement_despite_follower_disconnection_on_wal() {
    on_wal(
        "agreement_despite_follower_disconnection_on_wal",
        agreement::agreement_despite_follower_disconnection,
    );
}

#[test]
fn no_agreement_without_majority_on_wal() {
    on_wal(
        "no_agreement_without_majority_on_wal",
        agreement::no_agreement_without_majority,
    );
}

#[test]
fn concurrent_starts_all_commit_on_wal() {
    on_wal(
        "concurrent_starts_all_commit_on_wal",
        agreement::concurrent_starts_all_commit,
    );
}

#[test]
fn partitioned_leader_rejoins_on_wal() {
    on_wal(
        "partitioned_leader_rejoins_on_wal",
        agreement::partitioned_leader_rejoins,
    );
}

#[test]
fn leader_backs_up_over_long_divergent_logs_quickly_on_wal() {
    on_wal(
        "leader_backs_up_over_long_divergent_logs_quickly_on_wal",
        agreement::leader_backs_up_over_long_divergent_logs_quickly,
    );
}

#[test]
fn rpc_counts_are_bounded_on_wal() {
    on_wal(
        "rpc_counts_are_bounded_on_wal",
        agreement::rpc_counts_are_bounded,
    );
}

#[test]
fn read_index_sees_every_acknowledged_write_on_wal() {
    on_wal(
        "read_index_sees_every_acknowledged_write_on_wal",
        agreement::read_index_sees_every_acknowledged_write,
    );
}

#[test]
fn lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits_on_wal() {
    on_wal(
        "lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits_on_wal",
        agreement::lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits,
    );
}

#[test]
fn persist_survives_full_restarts_on_wal() {
    on_wal(
        "persist_survives_full_restarts_on_wal",
        persistence::persist_survives_full_restarts,
    );
}

#[test]
fn persist_survives_partitioned_restarts_on_wal() {
    on_wal(
        "persist_survives_partitioned_restarts_on_wal",
        persistence::persist_survives_partitioned_restarts,
    );
}

#[test]
fn persist_survives_leader_and_follower_crash_on_wal() {
    on_wal(
        "persist_survives_leader_and_follower_crash_on_wal",
        persistence::persist_survives_leader_and_follower_crash,
    );
}

#[test]
fn figure_8_leaders_crash_repeatedly_on_wal() {
    on_wal(
        "figure_8_leaders_crash_repeatedly_on_wal",
        persistence::figure_8_leaders_crash_repeatedly,
    );
}

#[test]
fn figure_8_leaders_lose_writes_on_wal() {
    on_wal(
        "figure_8_leaders_lose_writes_on_wal",
        persistence::figure_8_leaders_lose_writes,
    );
}

#[test]
fn unreliable_agreement_on_wal() {
    on_wal(
        "unreliable_agreement_on_wal",
        persistence::unreliable_agreement,
    );
}

#[test]
fn figure_8_unreliable_on_wal() {
    on_wal(
        "figure_8_unreliable_on_wal",
        persistence::figure_8_unreliable,
    );
}

#[test]
fn reliable_churn_on_wal() {
    on_wal("reliable_churn_on_wal", persistence::reliable_churn);
}

#[test]
fn unreliable_churn_on_wal() {
    on_wal("unreliable_churn_on_wal", persistence::unreliable_churn);
}

#[test]
fn snapshot_basic_on_wal() {
    on_wal("snapshot_basic_on_wal", snapshots::snapshot_basic);
}

#[test]
fn snapshot_install_on_wal() {
    on_wal("snapshot_install_on_wal", snapshots::snapshot_install);
}

#[test]
fn snapshot_install_unreliable_on_wal() {
    on_wal(
        "snapshot_install_unreliable_on_wal",
        snapshots::snapshot_install_unreliable,
    );
}

#[test]
fn snapshot_install_crash_on_wal() {
    on_wal(
        "snapshot_install_crash_on_wal",
        snapshots::snapshot_install_crash,
    );
}

#[test]
fn snapshot_install_unreliable_crash_on_wal() {
    on_wal(
        "snapshot_install_unreliable_crash_on_wal",
        snapshots::snapshot_install_unreliable_crash,
    );
}

#[test]
fn snapshot_all_crash_on_wal() {
    on_wal("snapshot_all_crash_on_wal", snapshots::snapshot_all_crash);
}

#[test]
fn snapshot_init_after_restarts_on_wal() {
    on_wal(
        "snapshot_init_after_restarts_on_wal",
        snapshots::snapshot_init_after_restarts,
    );
}

#[test]
fn removing_the_leader_hands_over_and_the_rest_carry_on_on_wal() {
    on_wal(
        "removing_the_leader_hands_over_and_the_rest_carry_on_on_wal",
        membership::removing_the_leader_hands_over_and_the_rest_carry_on,
    );
}

#[test]
fn a_change_leaving_too_few_answering_voters_is_refused_on_wal() {
    on_wal(
        "a_change_leaving_too_few_answering_voters_is_refused_on_wal",
        membership::a_change_leaving_too_few_answering_voters_is_refused,
    );
}

#[test]
fn adding_to_a_cluster_with_a_partitioned_member_on_wal() {
    on_wal(
        "adding_to_a_cluster_with_a_partitioned_member_on_wal",
        membership::adding_to_a_cluster_with_a_partitioned_member,
    );
}

#[test]
fn shrinking_five_to_three_to_one_and_growing_back_to_five_on_wal() {
    on_wal(
        "shrinking_five_to_three_to_one_and_growing_back_to_five_on_wal",
        membership::shrinking_five_to_three_to_one_and_growing_back_to_five,
    );
}

#[test]
fn a_removed_peer_that_missed_its_removal_never_disrupts_on_wal() {
    on_wal(
        "a_removed_peer_that_missed_its_removal_never_disrupts_on_wal",
        membership::a_removed_peer_that_missed_its_removal_never_disrupts,
    );
}
