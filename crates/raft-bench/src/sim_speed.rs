//! Simulator speed: simulated seconds per real second for a 5-peer cluster under the full
//! randomized fault mix (partitions, crashes, loss, duplication, reordering, snapshots), with
//! every invariant checked after every event.

use std::time::Instant;

use raft_sim::{run_chaos, ChaosOptions};

/// Prints simulated seconds per real second, and events per second.
pub fn run() {
    const SEEDS: u64 = 20;
    let options = ChaosOptions {
        peers: Some(5),
        safety_ms: 30_000,
        vary_config: true,
    };
    println!("== simulator speed: 5 peers, every fault, invariants after every event ==");
    let start = Instant::now();
    let (mut virtual_ms, mut events, mut messages) = (0u64, 0u64, 0u64);
    for seed in 0..SEEDS {
        let report = run_chaos(seed, &options);
        virtual_ms += report.virtual_ms;
        events += report.counters.events;
        messages += report.network.messages();
    }
    let real = start.elapsed().as_secs_f64();
    let simulated = virtual_ms as f64 / 1000.0;
    println!(
        "{SEEDS} seeds: {simulated:.0} simulated s in {real:.2} real s = {:.0} simulated s per real s; {:.0} events/s; {:.0} messages/s",
        simulated / real,
        events as f64 / real,
        messages as f64 / real,
    );
}
