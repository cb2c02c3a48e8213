//! Seed sweeps: every scenario runs over many seeds, and a failure names the seed to replay.
//!
//! ```text
//!  RAFT_SIM_SEED=S    ─► run seed S only
//!  RAFT_SIM_SEEDS=N   ─► run seeds START..START+N (default: the scenario's count)
//!  RAFT_SIM_SEED_START=K (default 0), RAFT_SIM_THREADS=T (default: available cores)
//!
//!  workers pull seeds ─► catch_unwind(run(seed)) ─► on panic: print the rerun command,
//!                                                    stop the sweep, re-raise the panic
//! ```
//!
//! Each run is a pure function of its seed, so running seeds on several threads changes
//! nothing but the wall-clock time.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Seeds a scenario runs over when the environment does not say otherwise.
pub const DEFAULT_SEEDS: usize = 200;

/// The numeric value of an environment variable, if set. A value that is not a number is a
/// mistake worth stopping for (a typo would otherwise silently run the default seeds).
pub(crate) fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(number) => Some(number),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

/// The seeds to run: `RAFT_SIM_SEED` alone if set, otherwise `RAFT_SIM_SEEDS` (or
/// `default_count`) consecutive seeds from `RAFT_SIM_SEED_START` (or 0).
pub fn seeds(default_count: usize) -> Vec<u64> {
    if let Some(seed) = env_number("RAFT_SIM_SEED") {
        return vec![seed];
    }
    let count = env_number("RAFT_SIM_SEEDS").unwrap_or(default_count as u64);
    let start = env_number("RAFT_SIM_SEED_START").unwrap_or(0);
    (start..start.saturating_add(count)).collect()
}

/// Runs `run` over the default number of seeds ([`DEFAULT_SEEDS`]).
pub fn for_each_seed(name: &str, run: impl Fn(u64) + Sync) {
    for_each_seed_n(name, DEFAULT_SEEDS, run);
}

/// Runs `run` over `default_count` seeds (see [`seeds`]). When a seed panics, prints
/// `scenario NAME failed with seed S; rerun with RAFT_SIM_SEED=S cargo test -p raft-sim NAME`
/// and re-raises the panic; with several failures, the smallest failing seed is reported.
pub fn for_each_seed_n(name: &str, default_count: usize, run: impl Fn(u64) + Sync) {
    if let Some((seed, payload)) = sweep(&seeds(default_count), run) {
        eprintln!(
            "scenario {name} failed with seed {seed}; rerun with RAFT_SIM_SEED={seed} cargo test -p raft-sim {name}"
        );
        panic::resume_unwind(payload);
    }
}

/// A seed's panic.
pub(crate) type SeedFailure = (u64, Box<dyn std::any::Any + Send>);

/// Runs `run` over `seeds` on `RAFT_SIM_THREADS` threads (default: the available cores) until
/// one panics; returns the failing seed and its panic (the smallest seed when several threads
/// failed at once).
pub(crate) fn sweep(seeds: &[u64], run: impl Fn(u64) + Sync) -> Option<SeedFailure> {
    let threads = env_number("RAFT_SIM_THREADS")
        .map(|threads| threads as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<SeedFailure>> = Mutex::new(None);
    let worker = || {
        while !stop.load(Ordering::Relaxed) {
            let position = next.fetch_add(1, Ordering::Relaxed);
            let Some(&seed) = seeds.get(position) else {
                return;
            };
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| run(seed))) {
                stop.store(true, Ordering::Relaxed);
                let mut failure = failure.lock().unwrap_or_else(|poison| poison.into_inner());
                let smallest = match failure.as_ref() {
                    Some((failed, _)) => seed < *failed,
                    None => true,
                };
                if smallest {
                    *failure = Some((seed, payload));
                }
            }
        }
    };
    if threads == 1 {
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(worker);
            }
        });
    }
    failure
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner())
}
