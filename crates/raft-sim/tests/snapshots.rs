//! Snapshot scenarios (6.824 lab 2D / 3D): the service snapshots every
//! [`SNAPSHOT_INTERVAL`] entries, lagging followers are brought up to date by InstallSnapshot,
//! and peers restart from snapshots. Every scenario runs over many seeds.

use raft_sim::{for_each_seed, Cluster, SimConfig};
use rand::Rng;

/// 6.824's `SnapShotInterval`.
const SNAPSHOT_INTERVAL: u64 = 10;
/// Entries a peer's storage may hold beyond its snapshot (6.824 bounds the state size).
const LOG_SIZE_MAX: usize = 4 * SNAPSHOT_INTERVAL as usize;

/// A cluster that snapshots every 10 entries; odd seeds use large snapshots sent in small
/// chunks.
fn snapshot_cluster(peers: usize, seed: u64, reliable: bool) -> Cluster {
    let mut config = SimConfig::new(peers, seed).with_snapshots(SNAPSHOT_INTERVAL);
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
fn snapshot_common(seed: u64, disconnect: bool, reliable: bool, crash: bool) -> Cluster {
    let mut cluster = snapshot_cluster(3, seed, reliable);
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

#[test]
fn snapshot_basic() {
    for_each_seed("snapshot_basic", |seed| {
        let cluster = snapshot_common(seed, false, true, false);
        if cluster.counters().snapshots_taken == 0 {
            cluster.fail_scenario("no snapshot taken");
        }
    });
}

#[test]
fn snapshot_install() {
    for_each_seed("snapshot_install", |seed| {
        let cluster = snapshot_common(seed, true, true, false);
        expect_installs(&cluster);
    });
}

#[test]
fn snapshot_install_unreliable() {
    for_each_seed("snapshot_install_unreliable", |seed| {
        let cluster = snapshot_common(seed, true, false, false);
        expect_installs(&cluster);
    });
}

#[test]
fn snapshot_install_crash() {
    for_each_seed("snapshot_install_crash", |seed| {
        snapshot_common(seed, false, true, true);
    });
}

#[test]
fn snapshot_install_unreliable_crash() {
    for_each_seed("snapshot_install_unreliable_crash", |seed| {
        snapshot_common(seed, false, false, true);
    });
}

#[test]
fn snapshot_all_crash() {
    for_each_seed("snapshot_all_crash", |seed| {
        let mut cluster = snapshot_cluster(3, seed, true);
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
    });
}

#[test]
fn snapshot_init_after_restarts() {
    for_each_seed("snapshot_init_after_restarts", |seed| {
        let mut cluster = snapshot_cluster(3, seed, true);
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
    });
}
