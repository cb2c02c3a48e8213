//! The randomized long run: every fault at once, random requests, then a liveness phase
//! (see `raft_sim::run_chaos`). Also: a seed replays exactly, and the checkers catch a planted
//! bug.

#[path = "scenarios/lying_disk.rs"]
mod lying_disk;

use raft_sim::{for_each_seed_n, run_chaos, ChaosOptions, StorageKind};

/// Seeds of the randomized run by default; `RAFT_SIM_SEEDS` overrides.
const CHAOS_SEEDS: usize = 2_000;

/// Virtual milliseconds of faults per seed; `RAFT_SIM_CHAOS_MS` overrides (soak runs).
fn chaos_options() -> ChaosOptions {
    let mut options = ChaosOptions::default();
    if let Ok(value) = std::env::var("RAFT_SIM_CHAOS_MS") {
        options.safety_ms = value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RAFT_SIM_CHAOS_MS={value:?} is not a number"));
    }
    options
}

#[test]
fn randomized_faults_keep_safety_and_converge() {
    let options = chaos_options();
    for_each_seed_n(
        "randomized_faults_keep_safety_and_converge",
        CHAOS_SEEDS,
        |seed| {
            let report = run_chaos(seed, &options);
            assert!(report.counters.events > 0, "seed {seed} ran no events");
        },
    );
}

#[test]
fn same_seed_replays_exactly() {
    for_each_seed_n("same_seed_replays_exactly", 5, |seed| {
        let options = ChaosOptions::default();
        let first = run_chaos(seed, &options);
        let second = run_chaos(seed, &options);
        assert_eq!(
            first.digest, second.digest,
            "seed {seed} did not replay exactly"
        );
        assert_eq!(
            first.counters, second.counters,
            "seed {seed} counters differ"
        );
        assert_eq!(first.network, second.network, "seed {seed} traffic differs");
        let other = run_chaos(seed + 1_000_000, &options);
        assert_ne!(
            first.digest, other.digest,
            "different seeds gave one digest"
        );
    });
}

#[test]
fn checkers_catch_a_disk_that_lies_about_durability() {
    lying_disk::checkers_catch_it(StorageKind::Memory, 0..200);
}
