//! Proposals entering at any peer (`Raft::propose_or_forward`): followers forward them to the
//! leader over a network that drops, duplicates, reorders and delays, through partitions,
//! crashes and restarts, with every invariant checked after every event. Then, per seed:
//! - every forwarded command is applied at most once (commands are unique);
//! - a command the leader answered as placed at a log id, if applied, is applied there;
//! - a command the leader refused is in no log, applied or not.
//!
//! `RAFT_SIM_SEEDS=N` runs more seeds, `RAFT_SIM_SEED=S` one (see `raft_sim::seeds`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use raft_core::{ForwardError, Index, NodeId, Proposal};
use raft_sim::rand::Rng;
use raft_sim::{chaos_config, for_each_seed_n, ChaosOptions, Cluster};

/// Seeds by default: a few seconds in `cargo test`.
const FORWARDING_SEEDS: usize = 60;

/// Virtual milliseconds of faults and requests per seed.
const SAFETY_MS: u64 = 3_000;

/// One seed's run; panics (with the seed, through `for_each_seed_n`) on a broken property.
/// Returns how many commands were forwarded and how many of those the leader placed.
fn run(seed: u64) -> (u64, u64) {
    let options = ChaosOptions {
        peers: Some(3 + 2 * (seed as usize % 2)),
        ..ChaosOptions::default()
    };
    let mut config = chaos_config(seed, &options);
    // Every peer a voter from the start: this run changes no membership, and a peer outside
    // the configuration hears from no leader, so it would have nothing to forward to.
    config.initial_voters = config.peers;
    let mut cluster = Cluster::new(config);
    let ids = cluster.ids();
    let mut next_command = 0u64;
    let mut forwarded = 0u64;
    while cluster.now_ms() < SAFETY_MS {
        cluster.run_for(5);
        let peer = ids[cluster.rng().gen_range(0..ids.len())];
        match cluster.rng().gen_range(0..200) {
            0..=189 => {
                next_command += 1;
                let command = Bytes::from(format!("fwd-{seed}-{next_command}"));
                if let Ok(Proposal::Forwarded(_)) = cluster.start_or_forward(peer, command) {
                    forwarded += 1;
                }
            }
            190 => cluster.crash(peer),
            191..=192 => cluster.restart(peer),
            193..=194 => {
                let others: Vec<NodeId> = ids.iter().copied().filter(|&id| id != peer).collect();
                cluster.partition(&[&[peer], &others]);
            }
            195..=197 => cluster.heal(),
            _ => {
                let reliable = cluster.rng().gen_bool(0.5);
                cluster.set_reliable(reliable);
            }
        }
    }
    // Faults end; the outstanding forwards are answered or given up on.
    cluster.heal();
    cluster.set_reliable(true);
    for &id in &ids {
        if !cluster.is_alive(id) {
            cluster.restart(id);
        }
    }
    cluster.run_for(3_000);
    let placed = check(&cluster, seed);
    (forwarded, placed)
}

/// The properties of the module comment, over what the run applied and what the logs hold.
/// Returns how many forwards the leader placed.
fn check(cluster: &Cluster, seed: u64) -> u64 {
    let mut applied_at: BTreeMap<&Bytes, Vec<Index>> = BTreeMap::new();
    let mut index = Index(1);
    while index <= cluster.max_applied() {
        if let Some(command) = cluster.command_at(index) {
            applied_at.entry(command).or_default().push(index);
        }
        index = index.next();
    }
    for (command, indexes) in &applied_at {
        assert!(
            indexes.len() == 1,
            "seed {seed}: {command:?} applied at {indexes:?}"
        );
    }
    let in_some_log = |command: &Bytes| {
        cluster.ids().into_iter().any(|id| {
            cluster.node(id).is_some_and(|node| {
                let first = Index(node.snapshot_index().0 + 1);
                node.entries(first, node.last_index().next())
                    .is_ok_and(|entries| entries.iter().any(|entry| entry.data == *command))
            })
        })
    };
    let (mut placed, mut refused, mut unanswered) = (0, 0, 0);
    for record in cluster.forward_outcomes() {
        let applied = applied_at.get(&record.command);
        match &record.outcome {
            Ok(id) => {
                placed += 1;
                if let Some(indexes) = applied {
                    assert_eq!(
                        indexes,
                        &vec![id.index],
                        "seed {seed}: {:?} placed at {id} by the leader of {}",
                        record.command,
                        record.peer
                    );
                }
            }
            Err(ForwardError::Refused(error)) => {
                refused += 1;
                assert!(
                    applied.is_none() && !in_some_log(&record.command),
                    "seed {seed}: {:?} refused ({error}) yet in a log (applied at {applied:?})",
                    record.command
                );
            }
            Err(ForwardError::Unanswered) => unanswered += 1,
        }
    }
    eprintln!("seed {seed}: {placed} placed, {refused} refused, {unanswered} unanswered");
    placed
}

#[test]
fn forwarded_proposals_are_applied_at_most_once_and_where_the_leader_said() {
    let forwarded = AtomicU64::new(0);
    let placed = AtomicU64::new(0);
    for_each_seed_n(
        "forwarded_proposals_are_applied_at_most_once_and_where_the_leader_said",
        FORWARDING_SEEDS,
        |seed| {
            let (seed_forwarded, seed_placed) = run(seed);
            forwarded.fetch_add(seed_forwarded, Ordering::Relaxed);
            placed.fetch_add(seed_placed, Ordering::Relaxed);
        },
    );
    // A sweep that forwarded nothing, or never heard an answer, tested nothing. (A single
    // seed may: its faults can keep every follower without a leader for the whole run.)
    let (forwarded, placed) = (forwarded.into_inner(), placed.into_inner());
    assert!(
        forwarded > 0 && placed > 0,
        "{forwarded} forwarded, {placed} placed over the sweep"
    );
}
