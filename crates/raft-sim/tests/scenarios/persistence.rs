//! Persistence scenarios (6.824 lab 2C / 3C): crashes and restarts, Figure 8, unreliable
//! networks and churn. Each scenario is a function of the storage kind and the seed:
//! `tests/persistence.rs` runs them on memory storage, `tests/wal_storage.rs` on the
//! write-ahead log.

use bytes::Bytes;
use raft_core::{Index, NodeId, Term};
use raft_sim::{command, Cluster, SimConfig, StorageKind};
use rand::Rng;

fn cluster(peers: usize, seed: u64, storage: StorageKind) -> Cluster {
    Cluster::new(SimConfig::new(peers, seed).with_storage(storage))
}

/// 6.824's `crash1`: the peer stops and is detached from the network.
fn crash1(cluster: &mut Cluster, peer: NodeId) {
    cluster.crash(peer);
    cluster.disconnect(peer);
}

pub fn persist_survives_full_restarts(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    cluster.one(command(11), 3, true);
    for id in cluster.ids() {
        cluster.restart(id);
    }
    for id in cluster.ids() {
        cluster.disconnect(id);
        cluster.connect(id);
    }
    cluster.one(command(12), 3, true);
    let leader1 = cluster.check_one_leader();
    cluster.disconnect(leader1);
    cluster.restart(leader1);
    cluster.connect(leader1);
    cluster.one(command(13), 3, true);
    let leader2 = cluster.check_one_leader();
    cluster.disconnect(leader2);
    let index = cluster.one(command(14), 2, true);
    cluster.restart(leader2);
    cluster.connect(leader2);
    // Wait for the restarted leader to catch up before the next victim.
    cluster.wait(index, 3, None);
    let leader3 = cluster.check_one_leader();
    let victim = cluster.peer_after(leader3, 1);
    cluster.disconnect(victim);
    cluster.one(command(15), 2, true);
    cluster.restart(victim);
    cluster.connect(victim);
    cluster.one(command(16), 3, true);
}

pub fn persist_survives_partitioned_restarts(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    let timeout = cluster.config().election_timeout_ms();
    let mut value = 10;
    for _ in 0..5 {
        value += 1;
        cluster.one(command(value), 5, true);
        let leader = cluster.check_one_leader();
        let peer = |offset| cluster.peer_after(leader, offset);
        let (p1, p2, p3, p4) = (peer(1), peer(2), peer(3), peer(4));
        cluster.disconnect(p1);
        cluster.disconnect(p2);
        value += 1;
        cluster.one(command(value), 3, true);
        cluster.disconnect(leader);
        cluster.disconnect(p3);
        cluster.disconnect(p4);
        cluster.restart(p1);
        cluster.restart(p2);
        cluster.connect(p1);
        cluster.connect(p2);
        cluster.run_for(timeout);
        cluster.restart(p3);
        cluster.connect(p3);
        value += 1;
        cluster.one(command(value), 3, true);
        cluster.connect(p4);
        cluster.connect(leader);
    }
    cluster.one(command(1000), 5, true);
}

pub fn persist_survives_leader_and_follower_crash(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(3, seed, storage);
    cluster.one(command(101), 3, true);
    let leader = cluster.check_one_leader();
    let (p1, p2) = (cluster.peer_after(leader, 1), cluster.peer_after(leader, 2));
    cluster.disconnect(p2);
    cluster.one(command(102), 2, true);
    crash1(&mut cluster, leader);
    crash1(&mut cluster, p1);
    cluster.connect(p2);
    cluster.restart(leader);
    cluster.connect(leader);
    cluster.one(command(103), 2, true);
    cluster.restart(p1);
    cluster.connect(p1);
    cluster.one(command(104), 3, true);
}

/// Sleeps as 6.824's Figure 8 tests do: mostly under 13 ms, sometimes up to half an election
/// timeout.
fn figure8_pause(cluster: &mut Cluster) -> u64 {
    let half_timeout = cluster.config().election_timeout_ms() / 2;
    if cluster.rng().gen_range(0..1000) < 100 {
        cluster.rng().gen_range(0..half_timeout)
    } else {
        cluster.rng().gen_range(0..13)
    }
}

pub fn figure_8_leaders_crash_repeatedly(storage: StorageKind, seed: u64) {
    figure_8(storage, seed, false);
}

/// Figure 8 where a leader's crash also loses its last one to three completed writes while
/// no other peer is suspect (a lying fsync and a power loss): the restarted peer recovers
/// (raft-core's recovery.rs) and every checker holds.
pub fn figure_8_leaders_lose_writes(storage: StorageKind, seed: u64) {
    figure_8(storage, seed, true);
}

fn figure_8(storage: StorageKind, seed: u64, lossy: bool) {
    let mut cluster = cluster(5, seed, storage);
    let ids = cluster.ids();
    let first = cluster.random_command();
    cluster.one(first, 1, true);
    let mut up = ids.len();
    for _ in 0..1000 {
        let mut leader = None;
        for &id in &ids {
            let command = cluster.random_command();
            if cluster.start(id, command).is_some() {
                leader = Some(id);
            }
        }
        let pause = figure8_pause(&mut cluster);
        cluster.run_for(pause);
        if let Some(leader) = leader {
            if lossy && cluster.suspect_peers().is_empty() {
                let writes = cluster.rng().gen_range(1..=3);
                cluster.crash_losing_writes(leader, writes);
            }
            crash1(&mut cluster, leader);
            up -= 1;
        }
        if up < 3 {
            let candidate = ids[cluster.rng().gen_range(0..ids.len())];
            if !cluster.is_alive(candidate) {
                cluster.restart(candidate);
                cluster.connect(candidate);
                up += 1;
            }
        }
    }
    for &id in &ids {
        if !cluster.is_alive(id) {
            cluster.restart(id);
            cluster.connect(id);
        }
    }
    let last = cluster.random_command();
    cluster.one(last, 5, true);
    if lossy && cluster.counters().lossy_crashes == 0 {
        cluster.fail_scenario("no crash lost a write: the scenario tested nothing");
    }
}

pub fn unreliable_agreement(storage: StorageKind, seed: u64) {
    let mut cluster = Cluster::new(SimConfig::new(5, seed).unreliable().with_storage(storage));
    for iteration in 1..50u64 {
        let mut requests: Vec<(Bytes, usize, bool)> = (0..4)
            .map(|j| (command(100 * iteration + j), 1, true))
            .collect();
        requests.push((command(iteration), 1, true));
        cluster.one_concurrently(requests);
    }
    cluster.set_reliable(true);
    cluster.one(command(100), 5, true);
}

pub fn figure_8_unreliable(storage: StorageKind, seed: u64) {
    let mut cluster = Cluster::new(SimConfig::new(5, seed).unreliable().with_storage(storage));
    let ids = cluster.ids();
    let first = cluster.rng().gen_range(0..10_000);
    cluster.one(command(first), 1, true);
    let mut up = ids.len();
    let half_timeout = cluster.config().election_timeout_ms() / 2;
    for iteration in 0..1000 {
        if iteration == 200 {
            cluster.set_long_reordering(true);
        }
        let mut leader = None;
        for &id in &ids {
            let value = cluster.rng().gen_range(0..10_000);
            if cluster.start(id, command(value)).is_some() && cluster.is_connected(id) {
                leader = Some(id);
            }
        }
        let pause = figure8_pause(&mut cluster);
        cluster.run_for(pause);
        if let Some(leader) = leader {
            if cluster.rng().gen_range(0..1000) < half_timeout {
                cluster.disconnect(leader);
                up -= 1;
            }
        }
        if up < 3 {
            let candidate = ids[cluster.rng().gen_range(0..ids.len())];
            if !cluster.is_connected(candidate) {
                cluster.connect(candidate);
                up += 1;
            }
        }
    }
    for &id in &ids {
        cluster.connect(id);
    }
    let last = cluster.rng().gen_range(0..10_000);
    cluster.one(command(last), 5, true);
}

/// A client of the churn tests: proposes to every peer, then watches its index for a while.
struct ChurnClient {
    me: u64,
    /// (index, value, checks done, next check time)
    waiting: Option<(Index, u64, usize, u64)>,
    idle_until_ms: u64,
    committed: Vec<u64>,
}

impl ChurnClient {
    fn poll(&mut self, cluster: &mut Cluster) {
        let now = cluster.now_ms();
        if let Some((index, value, checks, next_ms)) = self.waiting {
            if now < next_ms {
                return;
            }
            let (count, applied) = cluster.n_committed(index);
            if count > 0 {
                if applied == Some(command(value)) {
                    self.committed.push(value);
                }
                self.waiting = None;
            } else if checks == 5 {
                self.waiting = None;
            } else {
                let backoff = [10, 20, 50, 100, 200][checks];
                self.waiting = Some((index, value, checks + 1, now + backoff));
            }
            return;
        }
        if now < self.idle_until_ms {
            return;
        }
        let value: u64 = cluster.rng().gen();
        let mut proposed = None;
        for id in cluster.ids() {
            if let Some(log_id) = cluster.start(id, command(value)) {
                proposed = Some(log_id.index);
            }
        }
        match proposed {
            Some(index) => self.waiting = Some((index, value, 0, now)),
            None => self.idle_until_ms = now + 79 + self.me * 17,
        }
    }
}

fn churn(cluster: &mut Cluster) {
    let ids = cluster.ids();
    let timeout = cluster.config().election_timeout_ms();
    let mut clients: Vec<ChurnClient> = (0..3)
        .map(|me| ChurnClient {
            me,
            waiting: None,
            idle_until_ms: 0,
            committed: Vec::new(),
        })
        .collect();
    let run_clients = |cluster: &mut Cluster, clients: &mut Vec<ChurnClient>, ms: u64| {
        let end = cluster.now_ms() + ms;
        while cluster.now_ms() < end {
            for client in clients.iter_mut() {
                client.poll(cluster);
            }
            cluster.run_for(1);
        }
    };
    for _ in 0..20 {
        if cluster.rng().gen_range(0..1000) < 200 {
            let victim = ids[cluster.rng().gen_range(0..ids.len())];
            cluster.disconnect(victim);
        }
        if cluster.rng().gen_range(0..1000) < 500 {
            let target = ids[cluster.rng().gen_range(0..ids.len())];
            if !cluster.is_alive(target) {
                cluster.restart(target);
            }
            cluster.connect(target);
        }
        if cluster.rng().gen_range(0..1000) < 200 {
            let victim = ids[cluster.rng().gen_range(0..ids.len())];
            if cluster.is_alive(victim) {
                cluster.crash(victim);
            }
        }
        // Changes come faster than an election timeout, but not hugely faster.
        run_clients(cluster, &mut clients, timeout * 7 / 10);
    }
    run_clients(cluster, &mut clients, timeout);
    cluster.set_reliable(true);
    for &id in &ids {
        if !cluster.is_alive(id) {
            cluster.restart(id);
        }
        cluster.connect(id);
    }
    // Clients stop; let their last requests finish.
    for _ in 0..500 {
        if clients.iter().all(|client| client.waiting.is_none()) {
            break;
        }
        for client in clients.iter_mut().filter(|client| client.waiting.is_some()) {
            client.poll(cluster);
        }
        cluster.run_for(1);
    }
    cluster.run_for(timeout);
    let last_command = cluster.random_command();
    let last = cluster.one(last_command, ids.len(), true);
    let mut really = Vec::new();
    for index in 1..=last.0 {
        if let Some(bytes) = cluster.wait(Index(index), ids.len(), None::<Term>) {
            really.push(bytes);
        }
    }
    for value in clients.iter().flat_map(|client| client.committed.iter()) {
        if !really.contains(&command(*value)) {
            cluster.fail_scenario(&format!(
                "committed value {value} missing from the final log"
            ));
        }
    }
}

pub fn reliable_churn(storage: StorageKind, seed: u64) {
    let mut cluster = cluster(5, seed, storage);
    churn(&mut cluster);
}

pub fn unreliable_churn(storage: StorageKind, seed: u64) {
    let mut cluster = Cluster::new(SimConfig::new(5, seed).unreliable().with_storage(storage));
    churn(&mut cluster);
}
