//! The randomized long run: a seed picks a cluster configuration and a stream of faults and
//! client requests (the safety phase), then every fault stops and the cluster must converge
//! (the liveness phase), in the TigerBeetle VOPR style.
//!
//! ```text
//!  seed ─► chaos_config: peers 3/5/7 (some not in the initial configuration), timeouts,
//!          PreVote/CheckQuorum, windows, snapshots, loss/duplication rates, ready() batching,
//!          asynchronous apply, promotion lag
//!       ─► safety phase: every few ms one of
//!            propose · read (ReadIndex or lease) · partition · heal · disconnect · connect
//!            · crash (a quarter lose their last durable writes, one suspect peer at a time)
//!            · restart
//!            reliable on/off · long reordering on/off · slow peer or stalled disk
//!            one-way link cut · leader transfer
//!            membership churn: add a learner · promote · remove a learner or a voter (the
//!            leader too); the core refuses removing the last voter (not on seeds with
//!            neither PreVote nor CheckQuorum, see `inject`)
//!          (invariants checked after every event)
//!       ─► liveness phase: heal, restart all, reliable, no slow peers
//!            ─► every peer made a voter again, one change at a time (each within 10 s)
//!            ─► a leader within 5 s ─► a new command applied on every peer within 10 s
//!            ─► every acknowledged write applied on every peer
//! ```
//!
//! Membership churn leaves removed peers running: one that missed its removal still believes
//! it votes, which is what the invariants must survive (thesis §4.2.3). Restoring the full
//! membership before the final check keeps "every peer applies every acknowledged write"
//! meaningful, and proves a healed cluster completes membership changes.

use raft_core::{ConfChange, NodeId};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::{Cluster, ClusterBuilder, SimCounters};
use crate::config::{SimConfig, LOSSY_CRASH_PERCENT};
use crate::machine::MachineCounters;
use crate::network::NetworkStats;
use crate::SimRng;

/// Shape of a randomized run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChaosOptions {
    /// Cluster size; `None` lets the seed choose 3, 5 or 7.
    pub peers: Option<usize>,
    /// Virtual duration of the safety phase (faults and requests).
    pub safety_ms: u64,
    /// Whether the seed also varies the core and service configuration.
    pub vary_config: bool,
}

impl Default for ChaosOptions {
    fn default() -> ChaosOptions {
        ChaosOptions {
            peers: None,
            safety_ms: 5_000,
            vary_config: true,
        }
    }
}

/// What a randomized run did.
#[derive(Clone, Debug)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// The configuration the seed chose.
    pub config: SimConfig,
    /// Virtual time the run took, both phases.
    pub virtual_ms: u64,
    /// Virtual time from the end of faults to convergence.
    pub liveness_ms: u64,
    /// Counters of the run.
    pub counters: SimCounters,
    /// Network traffic of the run.
    pub network: NetworkStats,
    /// Writes acknowledged to clients.
    pub acknowledged_writes: usize,
    /// Terms that had a leader.
    pub terms_with_leader: usize,
    /// Digest of the whole event trace.
    pub digest: u64,
    /// What the state-machine checks did, when the peers ran a user's machine.
    pub machine: Option<MachineCounters>,
}

/// The cluster configuration a seed chooses.
pub fn chaos_config(seed: u64, options: &ChaosOptions) -> SimConfig {
    // A generator of its own, so the configuration does not shift the run's random stream.
    let mut rng = SimRng::seed_from_u64(seed ^ 0x6a09_e667_f3bc_c908);
    let peers = options
        .peers
        .unwrap_or_else(|| *[3, 3, 5, 5, 7].choose(&mut rng).unwrap_or(&5));
    let mut config = SimConfig::new(peers, seed);
    config.disk.lossy_crash_percent = LOSSY_CRASH_PERCENT;
    if !options.vary_config {
        config.service.snapshot_interval = Some(10);
        return config;
    }
    let core = &mut config.core;
    core.election_ticks = rng.gen_range(10..=20);
    core.heartbeat_ticks = rng.gen_range(1..=4);
    core.pre_vote = rng.gen_bool(0.8);
    core.check_quorum = rng.gen_bool(0.8);
    core.inflight_messages_max = *[1, 4, 64].choose(&mut rng).unwrap_or(&64);
    core.message_bytes_max = *[1, 200, 1 << 20].choose(&mut rng).unwrap_or(&(1 << 20));
    core.snapshot_chunk_bytes = *[64, 1024, 1 << 20].choose(&mut rng).unwrap_or(&(1 << 20));
    config.service.snapshot_interval = *[None, Some(3), Some(10), Some(30)]
        .choose(&mut rng)
        .unwrap_or(&None);
    config.service.snapshot_padding_bytes = *[0, 100, 3_000].choose(&mut rng).unwrap_or(&0);
    // Flow-control limits small enough to be hit: refused proposals and reads, applies
    // handed out over several rounds.
    if rng.gen_bool(0.3) {
        config.core.uncommitted_bytes_max = rng.gen_range(200..=4_000);
        config.core.proposal_bytes_max = 100;
    }
    if rng.gen_bool(0.3) {
        config.core.apply_bytes_max = rng.gen_range(1..=300);
    }
    if rng.gen_bool(0.3) {
        config.core.pending_reads_max = rng.gen_range(1..=4);
    }
    config.scale_long_reordering();
    config.network.delay_max_us = rng.gen_range(1_000..=10_000);
    config.network.reliable = rng.gen_bool(0.7);
    config.network.drop_probability = rng.gen_range(0.0..0.3);
    config.network.duplicate_probability = rng.gen_range(0.0..0.2);
    config.network.long_reorder_requests = rng.gen_bool(0.5);
    config.disk.latency_max_us = rng.gen_range(0..=5_000);
    if rng.gen_bool(0.5) {
        config.ready_delay_max_us = rng.gen_range(0..=3_000);
    }
    if rng.gen_bool(0.5) {
        config.service.apply_delay_max_us = rng.gen_range(0..=5_000);
    }
    // Some peers start outside the configuration, as new servers waiting to be added.
    if rng.gen_bool(0.3) {
        config.initial_voters = peers - rng.gen_range(1..=2.min(peers - 1));
    }
    // Small lags make promotions wait for learners to catch up (and be refused meanwhile).
    config.core.promotion_lag_max = *[0, 10, 1_000].choose(&mut rng).unwrap_or(&1_000);
    // Drawn last, so the earlier settings of a seed stay what they were before it existed.
    config.core.partial_appends_in_flight_max = *[1, 2, 64].choose(&mut rng).unwrap_or(&2);
    config
}

/// Runs one randomized scenario: safety phase, then liveness phase. Panics on any violated
/// invariant or missed liveness deadline, naming the seed.
pub fn run_chaos(seed: u64, options: &ChaosOptions) -> ChaosReport {
    run_chaos_with(chaos_config(seed, options), options)
}

/// [`run_chaos`] on a configuration the caller adjusted, typically [`chaos_config`] with
/// another storage (`config.seed` drives the run).
pub fn run_chaos_with(config: SimConfig, options: &ChaosOptions) -> ChaosReport {
    run_chaos_on(Cluster::builder(config), options)
}

/// [`run_chaos`] on a cluster of the caller's making: another storage harness, a state
/// machine of the user's (see [`crate::check_state_machine`] for the sweep over seeds).
pub fn run_chaos_on(builder: ClusterBuilder, options: &ChaosOptions) -> ChaosReport {
    let mut cluster = builder.build();
    let config = cluster.config().clone();
    let ids = cluster.ids();
    // Lossy crashes draw from a generator of their own, so that a seed's other faults and
    // requests stay what they were before lossy crashes existed (until the first one).
    let mut lossy_rng = SimRng::seed_from_u64(config.seed ^ 0xbb67_ae85_84ca_a73b);
    while cluster.now_ms() < options.safety_ms {
        let pause_ms = cluster.rng().gen_range(0..=20);
        cluster.run_for(pause_ms);
        inject(&mut cluster, &ids, &mut lossy_rng);
    }
    let healed_ms = cluster.now_ms();
    converge(&mut cluster, &ids);
    ChaosReport {
        seed: config.seed,
        config,
        virtual_ms: cluster.now_ms(),
        liveness_ms: cluster.now_ms() - healed_ms,
        counters: cluster.counters(),
        network: cluster.network_stats().clone(),
        acknowledged_writes: cluster.acknowledged_writes(),
        terms_with_leader: cluster.terms_with_leader(),
        digest: cluster.digest().value(),
        machine: cluster.machine_counters(),
    }
}

fn pick(cluster: &mut Cluster, candidates: &[NodeId]) -> Option<NodeId> {
    candidates.choose(cluster.rng()).copied()
}

/// One random action of the safety phase.
fn inject(cluster: &mut Cluster, ids: &[NodeId], lossy_rng: &mut SimRng) {
    let alive: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|&id| cluster.is_alive(id))
        .collect();
    let crashed: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|&id| !cluster.is_alive(id))
        .collect();
    let roll = cluster.rng().gen_range(0..100);
    match roll {
        0..=39 => {
            // Clients mostly find the leader; sometimes they knock on the wrong door.
            let target = match cluster.any_leader() {
                Some(leader) if cluster.rng().gen_bool(0.8) => Some(leader),
                _ => pick(cluster, &alive),
            };
            if let Some(target) = target {
                let burst = cluster.rng().gen_range(1..=5);
                for _ in 0..burst {
                    let command = cluster.random_command();
                    cluster.start(target, command);
                }
            }
        }
        40..=44 => {
            if let Some(target) = pick(cluster, &alive) {
                let _ = cluster.read_index(target);
            }
        }
        45..=49 => {
            // Lease reads go to the leader (a follower refuses them); a deposed leader that
            // still believes it leads is exactly what the read check is there to catch.
            let leaders: Vec<NodeId> = alive
                .iter()
                .copied()
                .filter(|&id| cluster.node(id).is_some_and(|node| node.state().1))
                .collect();
            let target = match pick(cluster, &leaders) {
                Some(leader) => Some(leader),
                None => pick(cluster, &alive),
            };
            if let Some(target) = target {
                let _ = cluster.lease_read(target);
            }
        }
        50..=53 => {
            let mut shuffled = ids.to_vec();
            shuffled.shuffle(cluster.rng());
            let split = cluster.rng().gen_range(1..shuffled.len().max(2));
            let (left, right) = shuffled.split_at(split.min(shuffled.len()));
            cluster.partition(&[left, right]);
        }
        54..=58 => cluster.heal(),
        59..=61 => {
            if let Some(target) = pick(cluster, ids) {
                cluster.disconnect(target);
            }
        }
        62..=65 => {
            if let Some(target) = pick(cluster, ids) {
                cluster.connect(target);
            }
        }
        66..=69 => {
            if let Some(target) = pick(cluster, &alive) {
                crash(cluster, target, lossy_rng);
            }
        }
        70..=76 => {
            if let Some(target) = pick(cluster, &crashed) {
                cluster.restart(target);
            }
        }
        77..=79 => {
            let reliable = !cluster.is_reliable();
            cluster.set_reliable(reliable);
        }
        80..=81 => {
            let long = cluster.rng().gen_bool(0.3);
            cluster.set_long_reordering(long);
        }
        82..=84 => {
            if let Some(target) = pick(cluster, ids) {
                let (network_ms, disk_ms) = match cluster.rng().gen_range(0..10) {
                    0..=4 => (0, 0),
                    // A disk that stalls for longer than an election timeout.
                    5 => (0, cluster.rng().gen_range(200..=1_000)),
                    _ => (
                        cluster.rng().gen_range(0..=20),
                        cluster.rng().gen_range(0..=20),
                    ),
                };
                cluster.set_slow(target, network_ms, disk_ms);
            }
        }
        87..=88 => {
            let (Some(from), Some(to)) = (pick(cluster, ids), pick(cluster, ids)) else {
                return;
            };
            if from != to {
                cluster.cut_link(from, to);
            }
        }
        85..=86 => {
            if let (Some(leader), Some(target)) = (cluster.any_leader(), pick(cluster, ids)) {
                let _ = cluster.transfer_leader(leader, target);
            }
        }
        // A peer removed while cut off never learns of its removal and campaigns for ever; only
        // PreVote or CheckQuorum keep that from disrupting the cluster for good (thesis
        // §4.2.3), so seeds with neither make no membership changes.
        89..=91 if cluster.config().core.pre_vote || cluster.config().core.check_quorum => {
            churn_membership(cluster, ids)
        }
        _ => {}
    }
}

/// Crashes `target`; some crashes also lose durable writes
/// ([`crate::DiskConfig::lossy_crash_percent`]), but only while no peer is suspect (the
/// recovery protects a cluster with one suspect peer at a time) and only of a voter with
/// another voter to ask: a lone voter cannot be protected, a learner does not recover, and a
/// leader may count its stale match once it is promoted (docs/design.md, known weaknesses).
fn crash(cluster: &mut Cluster, target: NodeId, lossy_rng: &mut SimRng) {
    let percent = cluster.config().disk.lossy_crash_percent;
    let voter_with_others = cluster.configuration(target).is_some_and(|configuration| {
        configuration.is_voter(target)
            && configuration.voting_members().any(|voter| voter != target)
    });
    if percent > 0
        && lossy_rng.gen_range(0..100) < percent
        && voter_with_others
        && cluster.suspect_peers().is_empty()
    {
        let writes = lossy_rng.gen_range(1..=3);
        cluster.crash_losing_writes(target, writes);
    } else {
        cluster.crash(target);
    }
}

/// One random membership change on the leader: a peer outside the configuration is added as
/// a learner; a learner is mostly promoted, sometimes removed; a voter (the leader included)
/// is removed. Refusals (a change in progress, a learner behind, the last voter) are part of
/// the test.
fn churn_membership(cluster: &mut Cluster, ids: &[NodeId]) {
    let Some(leader) = cluster.any_leader() else {
        return;
    };
    let Some(configuration) = cluster.configuration(leader).cloned() else {
        return;
    };
    let Some(target) = pick(cluster, ids) else {
        return;
    };
    let change = if configuration.is_voter(target) {
        ConfChange::Remove(target)
    } else if configuration.is_learner(target) {
        if cluster.rng().gen_bool(0.8) {
            ConfChange::Promote(target)
        } else {
            ConfChange::Remove(target)
        }
    } else {
        ConfChange::AddLearner(target)
    };
    let _ = cluster.propose_conf_change(leader, change);
}

/// The liveness phase: stop every fault and require convergence within bounds.
fn converge(cluster: &mut Cluster, ids: &[NodeId]) {
    cluster.heal();
    cluster.set_reliable(true);
    cluster.set_long_reordering(false);
    for &id in ids {
        cluster.set_slow(id, 0, 0);
        if !cluster.is_alive(id) {
            cluster.restart(id);
        }
    }
    cluster.note("liveness phase".to_string());
    cluster.restore_full_membership();
    cluster.check_one_leader();
    let leader_ms = cluster.now_ms();
    let command = cluster.random_command();
    cluster.one(command, ids.len(), true);
    if cluster.now_ms() - leader_ms > 10_000 {
        cluster.fail_scenario("the healed cluster took over 10 s to commit a command");
    }
    cluster.check_acknowledged_applied();
}
