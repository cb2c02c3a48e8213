//! Membership change scenarios: joint consensus with learners (thesis §4.3). Each scenario is
//! a function of the storage kind and the seed: `tests/membership.rs` runs them on memory
//! storage, `tests/wal_storage.rs` on the write-ahead log.
//!
//! Peers outside the initial configuration (`SimConfig::initial_voters`) run from the start
//! with empty storage and an empty configuration; `Cluster::change_membership` adds them as
//! learners, promotes them, or removes members, one change at a time, and waits for each to
//! complete (both steps of a joint change committed).

use raft_core::{ConfChange, ConfChangeError, Configuration, NodeId};
use raft_sim::{command, Cluster, SimConfig, StorageKind};
use rand::Rng;

fn cluster(peers: usize, voters: usize, seed: u64, storage: StorageKind) -> Cluster {
    Cluster::new(
        SimConfig::new(peers, seed)
            .with_initial_voters(voters)
            .with_storage(storage),
    )
}

/// The configuration of the connected leader.
fn leader_configuration(cluster: &mut Cluster) -> Configuration {
    let leader = cluster.check_one_leader();
    match cluster.configuration(leader) {
        Some(configuration) => configuration.clone(),
        None => cluster.fail_scenario("the leader has no configuration"),
    }
}

/// Every connected peer that is a member has `expected` in effect.
fn check_members_agree(cluster: &mut Cluster, expected: &Configuration) {
    let agreed = |cluster: &Cluster| {
        cluster
            .connected_peers()
            .into_iter()
            .filter(|&id| expected.is_member(id))
            .all(|id| cluster.configuration(id) == Some(expected))
    };
    if !cluster.run_until(agreed, 2_000) {
        cluster.fail_scenario(&format!(
            "members do not agree on {expected:?}: {}",
            cluster.describe_peers()
        ));
    }
}

pub fn removing_the_leader_hands_over_and_the_rest_carry_on(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, 5, seed, storage);
    let timeout_ms = cluster.config().election_timeout_ms();
    let leader = cluster.check_one_leader();
    cluster.one(command(1), 5, true);
    let successor = cluster.change_membership(ConfChange::Remove(leader));
    if successor == leader {
        cluster.fail_scenario("the removed leader still leads");
    }
    let removed_knows = cluster
        .configuration(leader)
        .is_some_and(|configuration| !configuration.is_member(leader));
    if !removed_knows {
        cluster.fail_scenario("the removed leader does not know it is out");
    }
    let remaining: Configuration =
        Configuration::new(cluster.ids().into_iter().filter(|&id| id != leader));
    check_members_agree(&mut cluster, &remaining);
    let index = cluster.one(command(2), 4, true);
    // The removed peer is no longer sent the log, does not campaign and never leads again.
    cluster.run_for(3 * timeout_ms);
    if cluster.any_leader() == Some(leader) {
        cluster.fail_scenario("the removed peer leads again");
    }
    if cluster.service(leader).applied() >= index {
        cluster.fail_scenario("the removed peer applied an entry made after its removal");
    }
    cluster.one(command(3), 4, true);
}

pub fn adding_to_a_cluster_with_a_partitioned_member(storage: StorageKind, seed: u64) {
    // Peers 4 and 5 start outside the configuration, with empty storage.
    let mut cluster = cluster(5, 3, seed, storage);
    let leader = cluster.check_one_leader();
    cluster.one(command(1), 3, true);
    let partitioned = (1..=3)
        .map(NodeId)
        .find(|&id| id != leader)
        .unwrap_or(NodeId(1));
    cluster.disconnect(partitioned);
    for new in [NodeId(4), NodeId(5)] {
        cluster.change_membership(ConfChange::AddLearner(new));
        cluster.change_membership(ConfChange::Promote(new));
    }
    let full = Configuration::new(cluster.ids());
    if leader_configuration(&mut cluster) != full {
        cluster.fail_scenario("the new peers are not both voters");
    }
    // Five voters with one cut off: the other four commit.
    cluster.one(command(2), 4, true);
    cluster.connect(partitioned);
    cluster.one(command(3), 5, true);
    check_members_agree(&mut cluster, &full);
}

pub fn shrinking_five_to_three_to_one_and_growing_back_to_five(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, 5, seed, storage);
    cluster.check_one_leader();
    let mut value = 0;
    for target in [3, 1] {
        loop {
            let voters: Vec<NodeId> = leader_configuration(&mut cluster)
                .voters
                .into_iter()
                .collect();
            if voters.len() <= target {
                break;
            }
            // Any voter goes, the leader included.
            let victim = voters[cluster.rng().gen_range(0..voters.len())];
            cluster.change_membership(ConfChange::Remove(victim));
        }
        value += 1;
        cluster.one(command(value), target, true);
    }
    for id in cluster.ids() {
        let configuration = leader_configuration(&mut cluster);
        if configuration.voters.contains(&id) {
            continue;
        }
        cluster.change_membership(ConfChange::AddLearner(id));
        cluster.change_membership(ConfChange::Promote(id));
    }
    let full = Configuration::new(cluster.ids());
    check_members_agree(&mut cluster, &full);
    cluster.one(command(value + 1), 5, true);
}

pub fn a_removed_peer_that_missed_its_removal_never_disrupts(storage: StorageKind, seed: u64) {
    // Neither PreVote nor CheckQuorum: the removed peer's campaigns raise its term, and only
    // the refusal of campaigns from outside the configuration with a log behind keeps them
    // from deposing the leader (thesis §4.2.3).
    let mut config = SimConfig::new(3, seed).with_storage(storage);
    config.core.pre_vote = false;
    config.core.check_quorum = false;
    let mut cluster = Cluster::new(config);
    let timeout_ms = cluster.config().election_timeout_ms();
    let leader = cluster.check_one_leader();
    cluster.one(command(1), 3, true);
    let removed = cluster.peer_after(leader, 1);
    cluster.disconnect(removed);
    cluster.change_membership(ConfChange::Remove(removed));
    let leader = cluster.check_one_leader();
    let term = cluster.node(leader).map(|node| node.term());
    cluster.connect(removed);
    cluster.run_for(10 * timeout_ms);
    let after = cluster.check_one_leader();
    if after != leader || cluster.node(leader).map(|node| node.term()) != term {
        cluster.fail_scenario(&format!(
            "the removed peer disrupted the cluster: {}",
            cluster.describe_peers()
        ));
    }
    cluster.one(command(2), 2, true);
}

pub fn a_change_leaving_too_few_answering_voters_is_refused(storage: StorageKind, seed: u64) {
    // Peer 4 is added and promoted while cut off (never reached), peer 5 while crashed: the
    // five voters still have a majority that answers. Removing the leader would leave 2, 3,
    // 4, 5 with only 2 and 3 answering, which can elect no one: refused until 4 answers.
    let mut cluster = cluster(5, 3, seed, storage);
    let timeout_ms = cluster.config().election_timeout_ms();
    cluster.check_one_leader();
    cluster.one(command(1), 3, true);
    cluster.disconnect(NodeId(4));
    cluster.change_membership(ConfChange::AddLearner(NodeId(4)));
    cluster.change_membership(ConfChange::Promote(NodeId(4)));
    cluster.crash(NodeId(5));
    cluster.change_membership(ConfChange::AddLearner(NodeId(5)));
    cluster.change_membership(ConfChange::Promote(NodeId(5)));
    cluster.one(command(2), 3, true);
    let leader = cluster.check_one_leader();
    match cluster.propose_conf_change(leader, ConfChange::Remove(leader)) {
        Err(ConfChangeError::TooFewActiveVoters {
            active: 2,
            needed: 3,
        }) => {}
        other => cluster.fail_scenario(&format!(
            "removing the leader with only 2 of 4 new voters answering: {other:?}"
        )),
    }
    cluster.one(command(3), 3, true);
    cluster.connect(NodeId(4));
    let leader = cluster.check_one_leader();
    let successor = cluster.change_membership(ConfChange::Remove(leader));
    if successor == leader || successor == NodeId(5) {
        cluster.fail_scenario(&format!("{successor} leads after the removal of {leader}"));
    }
    cluster.run_for(timeout_ms);
    cluster.one(command(4), 3, true);
}
