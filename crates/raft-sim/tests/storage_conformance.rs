//! raft-core's storage conformance suite against the stores the simulator runs its peers on:
//! the harnesses it opens them through are the suite's own trait, so the same harness value
//! serves both.
//!
//! ```text
//!  MemHarness ─► check_storage ─► every rule holds  (SimConfig::storage = Memory)
//!  WalHarness    ─► check_storage ─► every rule holds  (SimConfig::storage = Wal, and the
//!                                                       small segments and cache it uses)
//! ```
//!
//! The lying disk (`DiskConfig::lie_about_durability`) as a store fails the suite with
//! `durable-across-crash`: see the unit tests of `src/storage/lying.rs`.
//! `RAFT_STORAGE_SUITE_SEEDS` replaces the random workload's seeds (see
//! `raft_core::testing::storage`).

use raft_core::testing::storage::{check_storage, Rule, StoreHarness};
use raft_sim::{MemHarness, WalHarness, WAL_CACHE_BYTES_MAX, WAL_SEGMENT_BYTES_MAX};

/// Runs the suite on `harness`; fails unless every rule was checked and held.
fn keeps_every_rule<H: StoreHarness>(name: &str, harness: H) {
    let report = check_storage(harness);
    assert_eq!(report.rules.len(), Rule::ALL.len());
    assert!(
        report.reopens() > 100,
        "the suite reopened stores: {report}"
    );
    eprintln!("{name}: {report}");
}

#[test]
fn the_simulators_memory_storage_keeps_every_rule() {
    keeps_every_rule("MemHarness", MemHarness);
}

#[test]
fn the_simulators_write_ahead_log_keeps_every_rule() {
    let harness = WalHarness::new(WAL_SEGMENT_BYTES_MAX, WAL_CACHE_BYTES_MAX);
    keeps_every_rule("WalHarness", harness);
}

#[test]
fn the_simulators_write_ahead_log_without_a_cache_keeps_every_rule() {
    // The WAL scenarios alternate between a 1 KiB tail cache and none (every read from the
    // segment files).
    keeps_every_rule(
        "WalHarness without a cache",
        WalHarness::new(WAL_SEGMENT_BYTES_MAX, 0),
    );
}
