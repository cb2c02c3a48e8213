//! Leader election scenarios (6.824 lab 2A / 3A), plus PreVote, CheckQuorum and leadership
//! transfer. Each scenario is a function of the storage kind and the seed: `tests/election.rs`
//! runs them on memory storage, `tests/wal_storage.rs` on the write-ahead log.

use raft_sim::{Cluster, SimConfig, StorageKind};

fn cluster(peers: usize, seed: u64, storage: StorageKind) -> Cluster {
    Cluster::new(SimConfig::new(peers, seed).with_storage(storage))
}

pub fn initial_election_elects_one_leader_and_terms_stay_stable(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    cluster.check_one_leader();
    let elected_ms = cluster.now_ms();
    if elected_ms > 1_500 {
        cluster.fail_scenario(&format!("first leader took {elected_ms} ms"));
    }
    let rpcs = cluster.rpc_total();
    if rpcs > 30 {
        cluster.fail_scenario(&format!("{rpcs} requests to elect the first leader"));
    }
    cluster.run_for(50);
    let term1 = cluster.check_terms();
    if term1.0 < 1 {
        cluster.fail_scenario("term is 0 after an election");
    }
    let leader = cluster.check_one_leader();
    // No failures: the term and the leader must not change.
    cluster.run_for(2 * cluster.config().election_timeout_ms() + 2_000);
    let term2 = cluster.check_terms();
    if term1 != term2 {
        cluster.fail_scenario(&format!(
            "term changed from {term1} to {term2} without failures"
        ));
    }
    if cluster.check_one_leader() != leader {
        cluster.fail_scenario("leader changed without failures");
    }
}

pub fn re_election_after_leader_loss(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    let leader1 = cluster.check_one_leader();
    // The leader leaves: a new one must be elected.
    cluster.disconnect(leader1);
    cluster.check_one_leader();
    // The old leader rejoins: it must not disturb the new one.
    cluster.connect(leader1);
    let leader2 = cluster.check_one_leader();
    // No quorum: no leader.
    let other = cluster.peer_after(leader2, 1);
    cluster.disconnect(leader2);
    cluster.disconnect(other);
    cluster.run_for(2 * timeout);
    cluster.check_no_leader();
    // A quorum again: a leader.
    cluster.connect(other);
    cluster.check_one_leader();
    cluster.connect(leader2);
    cluster.check_one_leader();
}

pub fn many_elections_under_churn(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(7, seed, storage);
    cluster.check_one_leader();
    let ids = cluster.ids();
    for _ in 0..10 {
        // Disconnect three random peers: four remain, a majority of seven.
        let mut chosen = Vec::new();
        while chosen.len() < 3 {
            let pick = ids[rand::Rng::gen_range(cluster.rng(), 0..ids.len())];
            if !chosen.contains(&pick) {
                chosen.push(pick);
            }
        }
        for &id in &chosen {
            cluster.disconnect(id);
        }
        cluster.check_one_leader();
        for &id in &chosen {
            cluster.connect(id);
        }
    }
    cluster.check_one_leader();
}

pub fn rejoining_peer_does_not_disturb_healthy_leader(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let leader = cluster.wait_for_stable_leader(5_000);
    let term = cluster.check_terms();
    let isolated = cluster.peer_after(leader, 2);
    cluster.disconnect(isolated);
    // Many election timeouts alone: with PreVote its term must not grow.
    cluster.run_for(10 * cluster.config().election_timeout_ms());
    let isolated_term = cluster.node(isolated).map(|node| node.term());
    if isolated_term != Some(term) {
        cluster.fail_scenario(&format!(
            "an isolated peer raised its term to {isolated_term:?} (PreVote should prevent it)"
        ));
    }
    cluster.connect(isolated);
    cluster.run_for(3 * cluster.config().election_timeout_ms());
    let still = cluster.node(leader).map(|node| node.state());
    if still != Some((term, true)) {
        cluster.fail_scenario(&format!(
            "the rejoining peer disturbed the leader: {leader} is now {still:?}, was ({term}, true)"
        ));
    }
    let command = cluster.random_command();
    cluster.one(command, 5, false);
}

pub fn leader_in_minority_steps_down(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    let leader = cluster.wait_for_stable_leader(5_000);
    let (_, majority) = cluster.partition_with_one_follower(leader);
    let cut_ms = cluster.now_ms();
    // CheckQuorum: the old leader notices within about two election timeouts.
    let stepped_down = cluster.run_until(
        |cluster| cluster.node(leader).is_some_and(|node| !node.state().1),
        2 * timeout,
    );
    if !stepped_down {
        cluster.fail_scenario(&format!(
            "{leader} still leads a minority {} ms after the partition",
            cluster.now_ms() - cut_ms
        ));
    }
    // The majority elects a leader of its own.
    let elected = cluster.run_until(
        |cluster| {
            majority
                .iter()
                .any(|&id| cluster.node(id).is_some_and(|node| node.state().1))
        },
        5_000,
    );
    if !elected {
        cluster.fail_scenario("the majority side elected no leader within 5 s");
    }
    cluster.heal();
    let command = cluster.random_command();
    cluster.one(command, 5, true);
}

pub fn leadership_transfer_hands_over_quickly(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    let leader = cluster.wait_for_stable_leader(5_000);
    let target = cluster.peer_after(leader, 3);
    // Let the target fall behind, so the transfer must catch it up first.
    cluster.disconnect(target);
    for _ in 0..5 {
        let command = cluster.random_command();
        cluster.one(command, 4, false);
    }
    cluster.connect(target);
    let term = cluster.check_terms();
    if let Err(error) = cluster.transfer_leader(leader, target) {
        cluster.fail_scenario(&format!("transfer refused: {error}"));
    }
    let moved = cluster.run_until(
        |cluster| cluster.node(target).is_some_and(|node| node.state().1),
        timeout,
    );
    if !moved {
        cluster.fail_scenario(&format!("{target} did not take over within {timeout} ms"));
    }
    let new_term = cluster
        .node(target)
        .map(|node| node.term())
        .unwrap_or_default();
    if new_term.0 != term.0 + 1 {
        cluster.fail_scenario(&format!(
            "transfer went from {term} to {new_term}, expected one term"
        ));
    }
    let command = cluster.random_command();
    cluster.one(command, 5, true);
}
