//! Log agreement scenarios (6.824 lab 2B / 3B), plus ReadIndex. Each scenario is a function of
//! the storage kind and the seed: `tests/agreement.rs` runs them on memory storage,
//! `tests/wal_storage.rs` on the write-ahead log.

use bytes::Bytes;
use raft_core::{Index, NodeId};
use raft_sim::{command, Cluster, SimConfig, StorageKind};
use rand::Rng;

fn cluster(peers: usize, seed: u64, storage: StorageKind) -> Cluster {
    Cluster::new(SimConfig::new(peers, seed).with_storage(storage))
}

/// Heartbeats a leader sends to one follower in `ms` of idleness, plus slack for one more.
fn heartbeats_in(cluster: &Cluster, ms: u64) -> u64 {
    let config = cluster.config();
    let interval_ms = u64::from(config.core.heartbeat_ticks) * config.tick_us / 1_000;
    ms / interval_ms + 2
}

pub fn basic_agreement(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    let mut previous = cluster.one(command(1), 3, false);
    for value in 2..=4u64 {
        let (count, _) = cluster.n_committed(previous.next());
        if count > 0 {
            cluster.fail_scenario("an index committed before Start()");
        }
        let index = cluster.one(command(value * 100), 3, false);
        if index != previous.next() {
            cluster.fail_scenario(&format!("got index {index}, expected {}", previous.next()));
        }
        previous = index;
    }
}

pub fn rpc_bytes_not_inflated(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    let mut previous = cluster.one(command(99), 3, false);
    let bytes_before = cluster.bytes_total();
    let mut sent = 0u64;
    for _ in 0..10 {
        let payload: Vec<u8> = (0..5_000).map(|_| cluster.rng().gen()).collect();
        sent += payload.len() as u64;
        let index = cluster.one(Bytes::from(payload), 3, false);
        if index != previous.next() {
            cluster.fail_scenario(&format!("got index {index}, expected {}", previous.next()));
        }
        previous = index;
    }
    // Each command travels about once to each follower.
    let spent = cluster.bytes_total() - bytes_before;
    let expected = 2 * sent + 50_000;
    if spent > expected {
        cluster.fail_scenario(&format!(
            "{spent} request bytes for {sent} command bytes (limit {expected})"
        ));
    }
}

pub fn progressive_follower_failure(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    cluster.one(command(101), 3, false);
    let leader1 = cluster.check_one_leader();
    cluster.disconnect(cluster.peer_after(leader1, 1));
    cluster.one(command(102), 2, false);
    cluster.run_for(timeout);
    let last = cluster.one(command(103), 2, false);
    let leader2 = cluster.check_one_leader();
    cluster.disconnect(cluster.peer_after(leader2, 1));
    cluster.disconnect(cluster.peer_after(leader2, 2));
    let Some(id) = cluster.start(leader2, command(104)) else {
        cluster.fail_scenario("leader rejected Start()");
    };
    if id.index != last.next() {
        cluster.fail_scenario(&format!("expected index {}, got {}", last.next(), id.index));
    }
    cluster.run_for(2 * timeout);
    if cluster.n_committed(id.index).0 > 0 {
        cluster.fail_scenario(&format!("{} committed without a majority", id.index));
    }
}

pub fn progressive_leader_failure(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    cluster.one(command(101), 3, false);
    let leader1 = cluster.check_one_leader();
    cluster.disconnect(leader1);
    cluster.one(command(102), 2, false);
    cluster.run_for(timeout);
    let last = cluster.one(command(103), 2, false);
    let leader2 = cluster.check_one_leader();
    cluster.disconnect(leader2);
    for id in cluster.ids() {
        cluster.start(id, command(104));
    }
    cluster.run_for(2 * timeout);
    // The leaders' no-ops shift indexes; nothing after `last` may commit.
    for index in last.0 + 1..last.0 + 4 {
        if cluster.n_committed(Index(index)).0 > 0 {
            cluster.fail_scenario(&format!("{index} committed without a majority"));
        }
    }
}

pub fn agreement_despite_follower_disconnection(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    cluster.one(command(101), 3, false);
    let leader = cluster.check_one_leader();
    let follower = cluster.peer_after(leader, 1);
    cluster.disconnect(follower);
    cluster.one(command(102), 2, false);
    cluster.one(command(103), 2, false);
    cluster.run_for(timeout);
    cluster.one(command(104), 2, false);
    cluster.one(command(105), 2, false);
    cluster.connect(follower);
    cluster.one(command(106), 3, true);
    cluster.run_for(timeout);
    cluster.one(command(107), 3, true);
}

pub fn no_agreement_without_majority(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    let first = cluster.one(command(10), 5, false);
    let leader = cluster.check_one_leader();
    for offset in 1..=3 {
        cluster.disconnect(cluster.peer_after(leader, offset));
    }
    let Some(id) = cluster.start(leader, command(20)) else {
        cluster.fail_scenario("leader rejected Start()");
    };
    if id.index != first.next() {
        cluster.fail_scenario(&format!(
            "expected index {}, got {}",
            first.next(),
            id.index
        ));
    }
    cluster.run_for(2 * timeout);
    if cluster.n_committed(id.index).0 > 0 {
        cluster.fail_scenario(&format!("{} committed without a majority", id.index));
    }
    for offset in 1..=3 {
        cluster.connect(cluster.peer_after(leader, offset));
    }
    // The disconnected majority may elect a leader of its own, or the old one returns.
    let leader2 = cluster.check_one_leader();
    let Some(id2) = cluster.start(leader2, command(30)) else {
        cluster.fail_scenario("new leader rejected Start()");
    };
    // At most the lost entry and a new leader's no-op come between.
    if id2.index < id.index || id2.index > id.index.plus(2) {
        cluster.fail_scenario(&format!(
            "unexpected index {} after {}",
            id2.index, id.index
        ));
    }
    cluster.one(command(1000), 5, true);
}

pub fn concurrent_starts_all_commit(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    for attempt in 0..5 {
        if attempt > 0 {
            cluster.run_for(3_000);
        }
        let leader = cluster.check_one_leader();
        let Some(first) = cluster.start(leader, command(1)) else {
            continue;
        };
        let term = first.term;
        let mut started = Vec::new();
        for value in 100..105u64 {
            match cluster.start(leader, command(value)) {
                Some(id) if id.term == term => started.push((id.index, value)),
                _ => break,
            }
        }
        if started.len() < 5 {
            continue;
        }
        let mut values = Vec::new();
        for &(index, _) in &started {
            match cluster.wait(index, 3, Some(term)) {
                Some(bytes) => values.push(bytes),
                None => break,
            }
        }
        if values.len() < started.len() {
            continue;
        }
        for (_, value) in started {
            if !values.contains(&command(value)) {
                cluster.fail_scenario(&format!("command {value} missing"));
            }
        }
        return;
    }
    cluster.fail_scenario("term changed too often");
}

pub fn partitioned_leader_rejoins(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    cluster.one(command(101), 3, true);
    let leader1 = cluster.check_one_leader();
    cluster.disconnect(leader1);
    // The old leader accepts entries it can never commit.
    for value in [102, 103, 104] {
        cluster.start(leader1, command(value));
    }
    cluster.one(command(103), 2, true);
    let leader2 = cluster.check_one_leader();
    cluster.disconnect(leader2);
    cluster.connect(leader1);
    cluster.one(command(104), 2, true);
    cluster.connect(leader2);
    cluster.one(command(105), 3, true);
}

pub fn leader_backs_up_over_long_divergent_logs_quickly(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    let started_ms = cluster.now_ms();
    let first = cluster.random_command();
    cluster.one(first, 5, true);
    // Put the leader and one follower in a partition, with 50 entries that cannot commit.
    let leader1 = cluster.check_one_leader();
    for offset in 2..=4 {
        cluster.disconnect(cluster.peer_after(leader1, offset));
    }
    for _ in 0..50 {
        let command = cluster.random_command();
        cluster.start(leader1, command);
    }
    cluster.run_for(timeout / 2);
    cluster.disconnect(leader1);
    cluster.disconnect(cluster.peer_after(leader1, 1));
    // The other three commit 50 entries of their own.
    for offset in 2..=4 {
        cluster.connect(cluster.peer_after(leader1, offset));
    }
    for _ in 0..50 {
        let command = cluster.random_command();
        cluster.one(command, 3, true);
    }
    // Their leader and one follower are cut off with 50 more uncommittable entries.
    let leader2 = cluster.check_one_leader();
    let mut other = cluster.peer_after(leader1, 2);
    if other == leader2 {
        other = cluster.peer_after(leader2, 1);
    }
    cluster.disconnect(other);
    for _ in 0..50 {
        let command = cluster.random_command();
        cluster.start(leader2, command);
    }
    cluster.run_for(timeout / 2);
    // The first partition comes back with the one peer of the second: three peers whose
    // logs diverge by 50 entries must agree.
    for id in cluster.ids() {
        cluster.disconnect(id);
    }
    cluster.connect(leader1);
    cluster.connect(cluster.peer_after(leader1, 1));
    cluster.connect(other);
    // Fast backtracking: the first agreement costs a few appends per follower, not one per
    // divergent entry (over 50 here).
    let appends_before = cluster.network_stats().kind("Append").sent;
    let command = cluster.random_command();
    cluster.one(command, 3, true);
    let appends = cluster.network_stats().kind("Append").sent - appends_before;
    if appends > 40 {
        cluster.fail_scenario(&format!("{appends} appends to reconcile divergent logs"));
    }
    for _ in 0..49 {
        let command = cluster.random_command();
        cluster.one(command, 3, true);
    }
    for id in cluster.ids() {
        cluster.connect(id);
    }
    let last = cluster.random_command();
    cluster.one(last, 5, true);
    let took_ms = cluster.now_ms() - started_ms;
    if took_ms > 5_000 {
        cluster.fail_scenario(&format!("backing up took {took_ms} ms of virtual time"));
    }
}

pub fn rpc_counts_are_bounded(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    cluster.check_one_leader();
    let election = cluster.rpc_total();
    if !(1..=30).contains(&election) {
        cluster.fail_scenario(&format!("{election} requests to elect the first leader"));
    }
    let iterations = 10u64;
    let mut after_agreement = None;
    for attempt in 0..5 {
        if attempt > 0 {
            cluster.run_for(3_000);
        }
        let leader = cluster.check_one_leader();
        let before = cluster.rpc_total();
        let Some(first) = cluster.start(leader, command(1)) else {
            continue;
        };
        let term = first.term;
        let mut started = Vec::new();
        for _ in 0..=iterations {
            let value: u64 = cluster.rng().gen();
            match cluster.start(leader, command(value)) {
                Some(id) if id.term == term => started.push((id.index, value)),
                _ => break,
            }
        }
        if started.len() as u64 != iterations + 1 {
            continue;
        }
        for (offset, &(index, _)) in started.iter().enumerate() {
            if index.0 != first.index.0 + 1 + offset as u64 {
                cluster.fail_scenario("Start() returned non-consecutive indexes");
            }
        }
        let mut complete = true;
        for &(index, value) in started.iter().take(iterations as usize) {
            match cluster.wait(index, 3, Some(term)) {
                Some(bytes) if bytes == command(value) => {}
                Some(_) => cluster.fail_scenario("wrong value committed"),
                None => {
                    complete = false;
                    break;
                }
            }
        }
        let term_changed = cluster
            .ids()
            .into_iter()
            .filter_map(|id| cluster.node(id))
            .any(|node| node.term() != term);
        if !complete || term_changed {
            continue;
        }
        // Per agreement: an append and a commit notice per follower; plus heartbeats while
        // waiting. The classic bound is (iterations + 1 + 3) * 3.
        let spent = cluster.rpc_total() - before;
        let limit = (iterations + 1 + 3) * 3;
        if spent > limit {
            cluster.fail_scenario(&format!(
                "{spent} requests for {iterations} agreements (limit {limit})"
            ));
        }
        after_agreement = Some(cluster.rpc_total());
        break;
    }
    let Some(after_agreement) = after_agreement else {
        cluster.fail_scenario("term changed too often");
    };
    cluster.run_for(1_000);
    let idle = cluster.rpc_total() - after_agreement;
    let limit = 2 * heartbeats_in(&cluster, 1_000);
    if idle > limit {
        cluster.fail_scenario(&format!(
            "{idle} requests in one idle second (limit {limit})"
        ));
    }
}

pub fn read_index_sees_every_acknowledged_write(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let ids = cluster.ids();
    for round in 0..10u64 {
        let written = cluster.one(command(round), 5, true);
        let mut pending = Vec::new();
        for &id in &ids {
            if let Ok(context) = cluster.read_index(id) {
                pending.push((id, context));
            }
        }
        if pending.len() < ids.len() {
            cluster.fail_scenario("a healthy peer refused a read");
        }
        let answered = |cluster: &Cluster, id: NodeId, context: u64| {
            cluster
                .reads(id)
                .iter()
                .find(|read| read.context == context)
                .map(|read| read.index)
        };
        let done = cluster.run_until(
            |cluster| {
                pending
                    .iter()
                    .all(|&(id, context)| answered(cluster, id, context).is_some())
            },
            1_000,
        );
        if !done {
            cluster.fail_scenario("reads were not answered within 1 s on a healthy cluster");
        }
        for &(id, context) in &pending {
            let index = answered(&cluster, id, context).unwrap_or_default();
            if index < written {
                cluster.fail_scenario(&format!(
                    "read on {id} returned {index}, before the acknowledged write at {written}"
                ));
            }
        }
    }
    // A leader cut off in a minority must not answer reads.
    let leader = cluster.check_one_leader();
    cluster.partition_with_one_follower(leader);
    let served_before = cluster.reads(leader).len();
    let context = match cluster.read_index(leader) {
        Ok(context) => context,
        Err(error) => cluster.fail_scenario(&format!("the leader refused a read: {error}")),
    };
    cluster.run_for(4 * cluster.config().election_timeout_ms());
    if cluster.reads(leader).len() != served_before {
        cluster.fail_scenario("a leader in a minority served a read");
    }
    if !cluster.failed_reads(leader).contains(&context) {
        cluster.fail_scenario("the read of a deposed leader was not failed");
    }
    cluster.heal();
    let command = cluster.random_command();
    cluster.one(command, 5, true);
}

/// A leader cut off in a minority keeps serving lease reads only while its lease holds, which
/// ends before the majority can elect a leader and commit past it: the read checker (every
/// read covers every write committed before it began) fails the seed otherwise.
pub fn lease_reads_of_a_cut_off_leader_end_before_a_new_leader_commits(
    storage: StorageKind,
    seed: u64,
) {
    let mut cluster = cluster(5, seed, storage);
    cluster.one(command(1), 5, true);
    // Periodic heartbeats alone give an idle leader its lease.
    cluster.run_for(cluster.config().election_timeout_ms());
    let leader = cluster.check_one_leader();
    let served_before = cluster.counters().lease_reads;
    if let Err(error) = cluster.lease_read(leader) {
        cluster.fail_scenario(&format!("the leader refused a lease read: {error}"));
    }
    if cluster.counters().lease_reads != served_before + 1 {
        cluster.fail_scenario("an idle healthy leader took a round for a lease read");
    }
    let (_, majority) = cluster.partition_with_one_follower(leader);
    let served_at_partition = cluster.counters().lease_reads;
    let mut written: Option<(Index, Bytes)> = None;
    let started_ms = cluster.now_ms();
    while cluster.now_ms() - started_ms < 4 * cluster.config().election_timeout_ms() {
        if cluster.node(leader).is_some_and(|node| node.state().1) {
            let _ = cluster.lease_read(leader);
        }
        if written.is_none() {
            let new_leader = majority
                .iter()
                .copied()
                .find(|&id| cluster.node(id).is_some_and(|node| node.state().1));
            if let Some(new_leader) = new_leader {
                let command = cluster.random_command();
                if let Some(id) = cluster.start(new_leader, command.clone()) {
                    written = Some((id.index, command));
                }
            }
        }
        cluster.run_for(5);
    }
    if cluster.counters().lease_reads == served_at_partition {
        cluster.fail_scenario("the cut-off leader served no lease read while its lease held");
    }
    let Some((index, command)) = written else {
        cluster.fail_scenario("the majority elected no leader");
    };
    let (count, applied) = cluster.n_committed(index);
    if count < 3 || applied != Some(command) {
        cluster.fail_scenario("the majority's leader did not commit its write");
    }
    cluster.heal();
    let command = cluster.random_command();
    cluster.one(command, 5, true);
}
