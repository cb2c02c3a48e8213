//! Snapshot scenarios (6.824 lab 2D / 3D): the service snapshots every
//! [`SNAPSHOT_INTERVAL`] entries, lagging followers are brought up to date by InstallSnapshot,
//! and peers restart from snapshots. Each scenario is a function of the storage kind and the
//! seed: `tests/snapshots.rs` runs them on memory storage, `tests/wal_storage.rs` on the
//! write-ahead log.

use raft_sim::{Cluster, SimConfig, StorageKind};
use rand::Rng;

/// 6.824's `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;
/// Entries a peer's storage may hold beyond its snapshot (6.824 bounds the state size).
const LOG_SIZE_MAX: usize = 4 * SNAPSHOT_INTERVAL as usize;

/// A cluster that snapshots every 10 entries; odd seeds use large snapshots sent in small
/// chunks.
fn snapshot_cluster(peers: usize, seed: u64, reliable: bool, storage: StorageKind) -> Cluster {
    let mut config = SimConfig::new(peers, seed)
        .with_snapshots(SNAPSHOT_INTERVAL)
        .with_storage(storage);
    if seed % 2 == 1 {
        config.service.snapshot_padding_bytes = 3_000;
        config.core.snapshot_chunk_bytes = 1_024;
    }
    config.network.reliable = reliable;
    Cluster::new(config)
}

fn check_log_size(cluster: &Cluster) {
    let size = cluster.max_log_size();
    if size > LOG_SIZE_MAX {
        cluster.fail_scenario(&format!("a log holds {size} entries despite snapshots"));
    }
}

/// 6.824's `snapcommon`.
fn snapshot_common(
    storage: StorageKind,
    seed: u64,
    disconnect: bool,
    reliable: bool,
    crash: bool,
) -> Cluster {
    let mut cluster = snapshot_cluster(3, seed, reliable, storage);
    let first = cluster.random_command();
    cluster.one(first, 3, true);
    let mut leader = cluster.check_one_leader();
    for iteration in 0..30 {
        let (mut victim, mut sender) = (cluster.peer_after(leader, 1), leader);
        if iteration % 3 == 1 {
            sender = cluster.peer_after(leader, 1);
            victim = leader;
        }
        if disconnect {
            cluster.disconnect(victim);
            let command = cluster.random_command();
            cluster.one(command, 2, true);
        }
        if crash {
            cluster.crash(victim);
            cluster.disconnect(victim);
            let command = cluster.random_command();
            cluster.one(command, 2, true);
        }
        // Perhaps enough to get a snapshot.
        let count = SNAPSHOT_INTERVAL / 2 + cluster.rng().gen_range(0..SNAPSHOT_INTERVAL);
        for _ in 0..count {
            let command = cluster.random_command();
            cluster.start(sender, command);
        }
        let command = cluster.random_command();
        if !disconnect && !crash {
            // Everyone catches up, so no InstallSnapshot is needed in the basic case.
            cluster.one(command, 3, true);
        } else {
            cluster.one(command, 2, true);
        }
        check_log_size(&cluster);
        if disconnect {
            // The victim may be far behind and need a snapshot to catch up.
            cluster.connect(victim);
            let command = cluster.random_command();
            cluster.one(command, 3, true);
            leader = cluster.check_one_leader();
        }
        if crash {
            cluster.restart(victim);
            cluster.connect(victim);
            let command = cluster.random_command();
            cluster.one(command, 3, true);
            leader = cluster.check_one_leader();
        }
    }
    cluster
}

fn expect_installs(cluster: &Cluster) {
    if cluster.network_stats().kind("InstallSnapshot").sent == 0 {
        cluster.fail_scenario("no snapshot was ever installed on a lagging peer");
    }
}

pub fn snapshot_basic(storage: StorageKind, seed: u64) {
    let cluster = snapshot_common(storage, seed, false, true, false);
    if cluster.counters().snapshots_taken == 0 {
        cluster.fail_scenario("no snapshot taken");
    }
}

pub fn snapshot_install(storage: StorageKind, seed: u64) {
    let cluster = snapshot_common(storage, seed, true, true, false);
    expect_installs(&cluster);
}

pub fn snapshot_install_unreliable(storage: StorageKind, seed: u64) {
    let cluster = snapshot_common(storage, seed, true, false, false);
    expect_installs(&cluster);
}

pub fn snapshot_install_crash(storage: StorageKind, seed: u64) {
    snapshot_common(storage, seed, false, true, true);
}

pub fn snapshot_install_unreliable_crash(storage: StorageKind, seed: u64) {
    snapshot_common(storage, seed, false, false, true);
}

pub fn snapshot_all_crash(storage: StorageKind, seed: u64) {
    let mut cluster = snapshot_cluster(3, seed, true, storage);
    let first = cluster.random_command();
    cluster.one(first, 3, true);
    for _ in 0..5 {
        let count = SNAPSHOT_INTERVAL / 2 + cluster.rng().gen_range(0..SNAPSHOT_INTERVAL);
        for _ in 0..count {
            let command = cluster.random_command();
            cluster.one(command, 3, true);
        }
        let command = cluster.random_command();
        let index1 = cluster.one(command, 3, true);
        for id in cluster.ids() {
            cluster.crash(id);
        }
        for id in cluster.ids() {
            cluster.restart(id);
        }
        let command = cluster.random_command();
        let index2 = cluster.one(command, 3, true);
        if index2 <= index1 {
            cluster.fail_scenario(&format!(
                "index went from {index1} to {index2} across a restart"
            ));
        }
    }
}

pub fn snapshot_init_after_restarts(storage: StorageKind, seed: u64) {
    let mut cluster = snapshot_cluster(3, seed, true, storage);
    let first = cluster.random_command();
    cluster.one(first, 3, true);
    for _ in 0..=SNAPSHOT_INTERVAL {
        let command = cluster.random_command();
        cluster.one(command, 3, true);
    }
    for _ in 0..2 {
        for id in cluster.ids() {
            cluster.crash(id);
        }
        for id in cluster.ids() {
            cluster.restart(id);
        }
        // One operation, so something is written back to storage after the restart.
        let command = cluster.random_command();
        cluster.one(command, 3, true);
    }
    if cluster.counters().snapshots_restored == 0 {
        cluster.fail_scenario("no peer restored from its snapshot");
    }
}
