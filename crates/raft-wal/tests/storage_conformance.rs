//! raft-core's storage conformance suite against the write-ahead log: once with the default
//! options (syncs, preallocated 64 MiB segments, a large cache), once with small segments and
//! a small cache, so that segments roll over, compaction deletes whole ones and most reads go
//! to the files.
//!
//! ```text
//!  WalHarness::create  ─► a new temporary directory ─► Wal::open(dir, bootstrap)
//!  WalHarness::reopen  ─► drop the Wal (no close) ─► Wal::open(same dir, no bootstrap)
//!                         ─► recovery must have had nothing to repair
//! ```
//!
//! `RAFT_STORAGE_SUITE_SEEDS` replaces the random workload's seeds (see
//! `raft_core::testing::storage`).

use std::fs;
use std::path::Path;

use raft_core::testing::storage::{check_storage_with, BoxError, Rule, StoreHarness, SuiteOptions};
use raft_core::Configuration;
use raft_wal::{Wal, WalOptions};
use tempfile::TempDir;

/// Stores in temporary directories, kept until the harness is dropped so that a test can look
/// at what the suite left on disk.
struct WalHarness {
    options: WalOptions,
    dirs: Vec<TempDir>,
}

impl WalHarness {
    fn new(options: WalOptions) -> WalHarness {
        WalHarness {
            options,
            dirs: Vec::new(),
        }
    }

    /// The sequence numbers of the segments in each directory.
    fn segments(&self) -> Vec<Vec<u64>> {
        self.dirs
            .iter()
            .map(|dir| segment_sequences(dir.path()))
            .collect()
    }
}

/// Segment files are named by their sequence number, 20 digits and `.wal`.
fn segment_sequences(dir: &Path) -> Vec<u64> {
    let Ok(listing) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sequences: Vec<u64> = listing
        .flatten()
        .filter_map(|item| {
            let name = item.file_name().into_string().ok()?;
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    sequences.sort_unstable();
    sequences
}

/// A directory on tmpfs when there is one: the suite checks what a process crash keeps, and
/// the syncs it makes need not wait for a disk.
fn scratch_dir() -> std::io::Result<TempDir> {
    let shared_memory = Path::new("/dev/shm");
    if shared_memory.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("raft-wal-conformance")
            .tempdir_in(shared_memory)
        {
            return Ok(dir);
        }
    }
    tempfile::tempdir()
}

impl StoreHarness for WalHarness {
    type Store = Wal;

    fn create(&mut self, bootstrap: &Configuration) -> Result<Wal, BoxError> {
        let dir = scratch_dir()?;
        let wal = Wal::open(dir.path(), bootstrap.clone(), self.options.clone())?;
        self.dirs.push(dir);
        Ok(wal)
    }

    fn reopen(&mut self, store: Wal) -> Result<Wal, BoxError> {
        let dir = store.dir().to_path_buf();
        drop(store);
        // An existing log keeps its own configuration: this one must be ignored.
        let wal = Wal::open(&dir, Configuration::default(), self.options.clone())?;
        // Every write the store returned from was whole: a process crash after it leaves
        // nothing for recovery to cut or restore.
        let report = wal.recovery_report();
        if report.bootstrapped
            || report.torn_tail_bytes > 0
            || report.corrupt_bytes_dropped > 0
            || report.snapshot_marker_restored
        {
            return Err(format!(
                "recovery of {} after a process crash repaired something: {report:?}",
                dir.display()
            )
            .into());
        }
        Ok(wal)
    }
}

/// The suite's options with `seeds` unless `RAFT_STORAGE_SUITE_SEEDS` names others.
fn options(seeds: &[u64], steps_per_seed: u32) -> SuiteOptions {
    SuiteOptions {
        seeds: seeds.to_vec(),
        steps_per_seed,
    }
    .with_env_seeds()
    .unwrap_or_else(|error| panic!("{error}"))
}

/// Two seeds, not eight: with the default options every reopen reads the whole preallocated
/// 64 MiB segment (about 0.2 s on tmpfs here), and the small-segment run below covers the
/// random workload at length.
#[test]
fn the_write_ahead_log_keeps_every_rule_with_default_options() {
    let mut harness = WalHarness::new(WalOptions::default());
    let report = check_storage_with(&mut harness, &options(&[1, 2], 160));
    assert_eq!(report.rules.len(), Rule::ALL.len());
    eprintln!("Wal, default options: {report}");
}

#[test]
fn the_write_ahead_log_keeps_every_rule_with_small_segments_and_cache() {
    let options_small = WalOptions {
        segment_bytes_max: 2048,
        cache_bytes_max: 512,
        ..WalOptions::default()
    };
    let mut harness = WalHarness::new(options_small);
    let report = check_storage_with(&mut harness, &options(&[1, 2, 3, 4, 5, 6, 7, 8], 600));
    eprintln!("Wal, 2 KiB segments, 512 B cache: {report}");

    // The suite tested nothing of segments unless some log rolled over to new segments and
    // some compaction deleted the first ones.
    let segments = harness.segments();
    let rolled_over = segments
        .iter()
        .filter(|sequences| sequences.last().is_some_and(|&last| last > 3))
        .count();
    let deleted = segments
        .iter()
        .filter(|sequences| sequences.first().is_some_and(|&first| first > 1))
        .count();
    assert!(
        rolled_over > 0 && deleted > 0,
        "no log rolled over past its third segment ({rolled_over}) or deleted its first \
         ({deleted}): {segments:?}"
    );
}
