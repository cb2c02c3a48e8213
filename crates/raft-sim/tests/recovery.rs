//! Crashes that lose durable writes (`Cluster::crash_losing_writes`: a disk that lied about its
//! syncs, then a power loss) and raft-core's protocol-aware recovery. With the recovery, every
//! checker holds after every event while one peer at a time is suspect; without it (the loss
//! unnoticed: `DiskConfig::report_lost_writes = false`), the checkers catch the damage; and a
//! cluster whose every peer restarts suspect still elects a leader and commits.

use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use raft_core::NodeId;
use raft_sim::{
    chaos_config, command, for_each_seed, for_each_seed_n, run_chaos_with, ChaosOptions, Cluster,
    SimConfig,
};

/// Randomized runs (every fault of `run_chaos`) in which every crash that may lose writes
/// does: each while no other peer is suspect.
#[test]
fn lossy_crashes_keep_every_invariant_with_recovery() {
    let options = ChaosOptions::default();
    let lossy_crashes = AtomicU64::new(0);
    for_each_seed_n(
        "lossy_crashes_keep_every_invariant_with_recovery",
        300,
        |seed| {
            let mut config = chaos_config(seed, &options);
            config.disk.lossy_crash_percent = 100;
            let report = run_chaos_with(config, &options);
            lossy_crashes.fetch_add(report.counters.lossy_crashes, Ordering::Relaxed);
        },
    );
    let lossy_crashes = lossy_crashes.into_inner();
    // A sweep in which no crash lost a write tested nothing (RAFT_SIM_SEED runs one seed,
    // which may have had none).
    if std::env::var_os("RAFT_SIM_SEED").is_none() {
        assert!(lossy_crashes > 0, "no crash lost a write");
    }
}

/// Steady proposals with a crash every few rounds; every crash loses the victim's last three
/// writes while no peer is suspect. With `report_lost_writes` off, nobody ever is: each lossy
/// peer comes back trusting what it lost. Returns the failure report, if a checker fired.
fn lossy_restarts(seed: u64, report_lost_writes: bool) -> Option<String> {
    let options = ChaosOptions::default();
    let mut config = chaos_config(seed, &options);
    config.disk.report_lost_writes = report_lost_writes;
    // Only the safety checkers judge: an unnoticed loss also shows as a leader's commit index
    // beyond a follower's log (`no-invalid-messages`), a symptom, not the damage.
    config.strict_invalid = false;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut cluster = Cluster::new(config);
        let ids = cluster.ids();
        for round in 0..400u64 {
            let command = cluster.random_command();
            if let Some(leader) = cluster.any_leader() {
                cluster.start(leader, command);
            }
            cluster.run_for(15);
            if round % 7 == 3 {
                let victim = ids[(round as usize / 7) % ids.len()];
                if cluster.suspect_peers().is_empty() {
                    cluster.crash_losing_writes(victim, 3);
                }
                cluster.restart(victim);
            }
        }
        cluster.counters().lossy_crashes
    }));
    match outcome {
        Ok(lossy_crashes) => {
            assert!(lossy_crashes > 0, "seed {seed}: no crash lost a write");
            None
        }
        Err(payload) => Some(
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic without a message".to_string()),
        ),
    }
}

/// The first seed of `seeds` on which the unnoticed loss breaks a checker, with its report.
fn first_caught(seeds: Range<u64>) -> Option<(u64, String)> {
    seeds
        .into_iter()
        .find_map(|seed| lossy_restarts(seed, false).map(|report| (seed, report)))
}

#[test]
fn the_same_loss_without_recovery_is_caught_and_with_it_is_not() {
    // Silence the expected panics' default printing; each report is read below.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let caught = first_caught(0..200);
    panic::set_hook(hook);
    let Some((seed, report)) = caught else {
        panic!("no seed of 0..200 broke an invariant with lost writes unnoticed: the checkers are too weak");
    };
    assert!(
        report.contains("invariant violated"),
        "seed {seed} failed otherwise: {report}"
    );
    eprintln!(
        "without recovery, seed {seed}: {}",
        report.lines().take(2).collect::<Vec<_>>().join(" / ")
    );
    // The same scenario on the same seeds, the loss reported: the recovery holds.
    for seed in 0..=seed {
        if let Some(report) = lossy_restarts(seed, true) {
            panic!("seed {seed} failed with recovery on: {report}");
        }
    }
}

/// Every peer crashes at once (a power cut of the whole cluster) and restarts suspect: none
/// can trust its term, vote or log. This breaks the one-suspect fault model, so only liveness
/// is asserted (the checkers run anyway): one peer really lost its last write or two, the
/// others lost nothing but cannot know it. Each answers the others' probes while recovering;
/// the peers with the best log finish first, one of them is elected, and a new command commits
/// on every peer.
fn every_peer_restarts_suspect(peers: usize, seed: u64) {
    let mut cluster = Cluster::new(SimConfig::new(peers, seed));
    for value in 0..5 {
        cluster.one(command(value), peers, true);
    }
    let ids = cluster.ids();
    let unlucky = ids[(seed % peers as u64) as usize];
    for &id in &ids {
        let writes = if id == unlucky { 2 } else { 0 };
        cluster.crash_losing_writes(id, writes);
    }
    assert_eq!(cluster.suspect_peers(), ids, "every peer suspect");
    for &id in &ids {
        cluster.restart(id);
        let recovering = cluster.node(id).is_some_and(|node| node.is_recovering());
        assert!(recovering, "seed {seed}: {id} restarted without recovering");
    }
    cluster.check_one_leader();
    cluster.one(command(99), peers, true);
    let recovered = cluster.run_until(|cluster| cluster.suspect_peers().is_empty(), 5_000);
    assert!(
        recovered,
        "seed {seed}: still recovering: {:?}",
        cluster.suspect_peers()
    );
    let finished: u64 = ids
        .iter()
        .filter_map(|&id| cluster.node(id))
        .map(|node| node.counters().recoveries_finished)
        .sum();
    assert_eq!(finished, peers as u64, "seed {seed}: one recovery per peer");
}

#[test]
fn every_peer_restarting_suspect_elects_a_leader_and_commits() {
    for_each_seed(
        "every_peer_restarting_suspect_elects_a_leader_and_commits",
        |seed| {
            every_peer_restarts_suspect(3, seed);
            every_peer_restarts_suspect(5, seed);
        },
    );
}

/// A recovering peer that lost nothing still waits for every other voter before it may vote:
/// with one of three down, the two others elect a leader without it, and it catches up.
#[test]
fn a_suspect_peer_rejoins_a_cluster_missing_a_voter() {
    for_each_seed("a_suspect_peer_rejoins_a_cluster_missing_a_voter", |seed| {
        let mut cluster = Cluster::new(SimConfig::new(3, seed));
        cluster.one(command(1), 3, true);
        let leader = cluster.check_one_leader();
        let follower = cluster.peer_after(leader, 1);
        let other: NodeId = cluster.peer_after(leader, 2);
        cluster.crash_losing_writes(follower, 2);
        cluster.restart(follower);
        cluster.crash(other);
        // Its probe to the crashed peer goes unanswered: it stays in phase 1 and the leader
        // cannot commit with it.
        cluster.run_for(cluster.config().election_timeout_ms());
        assert!(cluster
            .node(follower)
            .is_some_and(|node| node.is_recovering()));
        cluster.restart(other);
        cluster.one(command(2), 3, true);
        let done = cluster.run_until(|cluster| cluster.suspect_peers().is_empty(), 5_000);
        assert!(done, "seed {seed}: {follower} never finished recovering");
    });
}
