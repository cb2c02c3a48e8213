//! The planted bug the checkers must catch: a disk that acknowledges writes before they are
//! durable (`DiskConfig::lie_about_durability`). Shared by `tests/randomized.rs` (memory
//! storage) and `tests/wal_storage.rs` (the write-ahead log).

use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};

use raft_sim::{chaos_config, ChaosOptions, Cluster, StorageKind};

/// Fails unless a lying disk on `storage` breaks an invariant on one of `seeds` (see
/// [`first_violation`]).
pub fn checkers_catch_it(storage: StorageKind, seeds: Range<u64>) {
    let Some((seed, message)) = first_violation(storage, seeds) else {
        panic!(
            "no seed of a lying disk on {storage:?} broke an invariant: the checkers are too weak"
        );
    };
    assert!(
        message.contains("invariant violated"),
        "unexpected panic with seed {seed}: {message}"
    );
    eprintln!(
        "seed {seed}: {}",
        message.lines().next().unwrap_or_default()
    );
}

/// Runs a lying disk with long write latencies, steady proposals and a restart every few
/// rounds over `seeds` on `storage`; returns the first seed that broke an invariant, with the
/// failure report. With writes acknowledged before they are durable, crashes lose votes and
/// entries that others counted on, so some seed must trip a checker.
fn first_violation(storage: StorageKind, seeds: Range<u64>) -> Option<(u64, String)> {
    let options = ChaosOptions::default();
    seeds.into_iter().find_map(|seed| {
        let mut config = chaos_config(seed, &options).with_storage(storage);
        config.disk.lie_about_durability = true;
        config.disk.latency_min_us = 20_000;
        config.disk.latency_max_us = 200_000;
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
                    cluster.restart(victim);
                }
            }
        }));
        outcome.err().map(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            (seed, message)
        })
    })
}
