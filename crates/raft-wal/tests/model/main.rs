//! Model test: random sequences of appends, suffix overwrites, hard-state changes, compactions,
//! snapshot installs, multi-request batches and reopenings are applied both to the write-ahead
//! log and to [`MemStorage`], the in-memory reference implementation of the same `persist`
//! semantics. After every step every read the core can make must agree.
//!
//! ```text
//!  proptest ─► (options, [Operation])          abstract: indexes are selectors, not positions
//!                 │ for each operation
//!                 ▼
//!  Model::request(step) ─► PersistRequest      valid for the model's current state
//!       ├─► MemStorage::persist                the reference
//!       └─► Wal::write / drop + Wal::open      the system under test
//!                 ▼
//!  compare: first/last index, entries (whole and max_bytes windows), term of every index and
//!           of out-of-range ones, hard state, snapshot, initial state, files on disk
//! ```
//!
//! The generated requests are the ones a Raft peer can make: the commit index never decreases
//! and never passes the last entry, entries at or below it are never replaced, and a snapshot
//! that disagrees with the log lies beyond the commit index. One liberty: a compaction may
//! cover entries not yet committed (the log then counts them committed, as both
//! implementations do).
//!
//! `RAFT_WAL_PROPTEST_CASES` sets the number of cases and `RAFT_WAL_PROPTEST_SEED` fixes the
//! seed; a failure prints the seed, the minimal failing sequence and the concrete requests it
//! made.
//!
//! The parts: `generate` (the operations proptest draws and the values they make), `reference`
//! (the model: a [`MemStorage`] and the valid requests it turns operations into), `compare`
//! (every read of both, side by side) and `regressions` (cases the model test found, kept as
//! scenarios). This file runs the cases.

mod compare;
mod generate;
mod reference;
mod regressions;

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, MemStorage, NodeId, PersistRequest,
    Snapshot, SnapshotMeta, Storage, StorageError, Term,
};
use raft_wal::{Wal, WalOptions};

use compare::{check, check_recovery};
use generate::{bootstrap, case, CaseOptions, Operation};
use reference::Model;

/// Cases run by default: sized so that the test takes well under 20 s in the test profile on
/// two cores.
const CASES_DEFAULT: u32 = 1000;
/// Longest generated sequence of operations.
const OPERATIONS_MAX: usize = 80;
/// Shrinking stops after this many attempts (each runs a case, which gets faster as the case
/// shrinks).
const SHRINK_ITERATIONS_MAX: u32 = 20_000;

/// A one-line account of a request, for the failure trace.
fn describe(request: &PersistRequest) -> String {
    let mut out = format!("request {}:", request.id);
    if let Some(snapshot) = &request.snapshot {
        let _ = write!(
            out,
            " snapshot {} voters {} data {}B;",
            snapshot.meta.last_included,
            snapshot.meta.configuration.voters.len(),
            snapshot.data.len()
        );
    }
    if let (Some(first), Some(last)) = (request.entries.first(), request.entries.last()) {
        let sizes: Vec<usize> = request
            .entries
            .iter()
            .map(|entry| entry.data.len())
            .collect();
        let _ = write!(out, " entries {}..={} sizes {sizes:?};", first.id, last.id);
    }
    if let Some(hard_state) = request.hard_state {
        let _ = write!(out, " hard state {hard_state:?};");
    }
    out
}

fn fail(trace: &[String], message: String) -> TestCaseError {
    TestCaseError::fail(format!(
        "{message}\nrequests so far:\n  {}",
        trace.join("\n  ")
    ))
}

fn open(dir: &Path, options: &CaseOptions, bootstrap: Configuration) -> Result<Wal, String> {
    Wal::open(dir, bootstrap, options.wal_options())
        .map_err(|error| format!("open failed: {error}"))
}

/// Runs one case; the error describes the first disagreement.
fn run_case(options: &CaseOptions, operations: &[Operation]) -> Result<(), TestCaseError> {
    let dir = scratch_dir();
    let mut trace = Vec::new();
    let mut wal =
        open(dir.path(), options, bootstrap()).map_err(|message| fail(&trace, message))?;
    let mut model = Model::new();
    check(&wal, &model.storage, options)
        .map_err(|message| fail(&trace, format!("after bootstrap: {message}")))?;
    for (position, operation) in operations.iter().enumerate() {
        match operation {
            Operation::Reopen => {
                trace.push("reopen".to_string());
                drop(wal);
                // Dropped without `close_cleanly`, as by a crash: the reopened log reports
                // that writes may have been lost.
                model.storage.set_possibly_lost_writes(true);
                // An existing log keeps its own configuration: the bootstrap one is ignored.
                wal = open(dir.path(), options, Configuration::default())
                    .map_err(|message| fail(&trace, message))?;
                check_recovery(&wal, &model.storage).map_err(|message| fail(&trace, message))?;
            }
            Operation::Persist(step) => {
                let request = model.request(step);
                trace.push(format!("persist {}", describe(&request)));
                model.storage.persist(request.clone());
                wal.persist(request)
                    .map_err(|error| fail(&trace, format!("persist failed: {error}")))?;
            }
            Operation::Write(steps) => {
                let mut requests = Vec::with_capacity(steps.len());
                for step in steps {
                    let request = model.request(step);
                    trace.push(format!("write {}", describe(&request)));
                    model.storage.persist(request.clone());
                    requests.push(request);
                }
                let last_id = requests.last().map(|request| request.id);
                let written = wal
                    .write(requests)
                    .map_err(|error| fail(&trace, format!("write failed: {error}")))?;
                if written != last_id {
                    return Err(fail(
                        &trace,
                        format!("write returned {written:?}, expected {last_id:?}"),
                    ));
                }
            }
        }
        check(&wal, &model.storage, options)
            .map_err(|message| fail(&trace, format!("after operation {position}: {message}")))?;
    }
    // A final restart: everything acknowledged survives it.
    drop(wal);
    trace.push("reopen".to_string());
    model.storage.set_possibly_lost_writes(true);
    let wal = open(dir.path(), options, Configuration::default())
        .map_err(|message| fail(&trace, message))?;
    check_recovery(&wal, &model.storage).map_err(|message| fail(&trace, message))?;
    check(&wal, &model.storage, options)
        .map_err(|message| fail(&trace, format!("after the final reopen: {message}")))
}

/// A directory on tmpfs when there is one: segment creation and snapshot files fsync even with
/// `unsafe_no_sync`, and a model test has no use for durable fsyncs.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("raft-wal-model")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().expect("temporary directory")
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

#[test]
fn random_sequences_agree_with_the_model() {
    let cases = env_number("RAFT_WAL_PROPTEST_CASES").unwrap_or(CASES_DEFAULT);
    let seed = env_number("RAFT_WAL_PROPTEST_SEED")
        .unwrap_or_else(|| RandomState::new().build_hasher().finish());
    let config = Config {
        cases,
        max_shrink_iters: SHRINK_ITERATIONS_MAX,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |(options, operations)| {
        run_case(&options, &operations)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (options, operations))) => {
            let operations: Vec<String> = operations
                .iter()
                .map(|operation| format!("{operation:?}"))
                .collect();
            panic!(
                "model test failed (RAFT_WAL_PROPTEST_SEED={seed} RAFT_WAL_PROPTEST_CASES={cases} \
                 reproduces it)\nminimal failing case: {options:?}\n  {}\n{reason}",
                operations.join("\n  ")
            )
        }
        Err(TestError::Abort(reason)) => {
            panic!("model test aborted (RAFT_WAL_PROPTEST_SEED={seed}): {reason}")
        }
    }
}
