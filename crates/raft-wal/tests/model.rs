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

/// Cases run by default: sized so that the test takes well under 20 s in the test profile on
/// two cores.
const CASES_DEFAULT: u32 = 1000;
/// Longest generated sequence of operations.
const OPERATIONS_MAX: usize = 80;
/// Shrinking stops after this many attempts (each runs a case, which gets faster as the case
/// shrinks).
const SHRINK_ITERATIONS_MAX: u32 = 20_000;
/// Largest payload of a generated entry, most of the time.
const DATA_BYTES_MAX: usize = 300;
/// Largest payload of the occasional large entry.
const LARGE_DATA_BYTES_MAX: usize = 6000;
/// Most entries one generated request appends.
const ENTRIES_PER_REQUEST_MAX: usize = 8;

/// One entry to append: the index and term come from the model's state.
#[derive(Clone)]
struct EntrySpec {
    noop: bool,
    /// A configuration entry (its configuration follows from its index and term), which the
    /// log tracks for `initial_state`.
    configuration: bool,
    data_bytes: usize,
}

impl std::fmt::Debug for EntrySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.noop {
            write!(f, "noop")
        } else if self.configuration {
            write!(f, "configuration")
        } else {
            write!(f, "{}B", self.data_bytes)
        }
    }
}

/// One request, described relative to whatever state the log is in when it is made. Every
/// `u64` field is a selector that [`Model::request`] maps into the valid range.
#[derive(Clone, Debug)]
enum Step {
    /// Entries at last + 1 in the current term, optionally with a commit advance.
    Append {
        entries: Vec<EntrySpec>,
        commit: Option<u64>,
    },
    /// Entries of a new term replacing the suffix from an uncommitted index.
    Overwrite { start: u64, entries: Vec<EntrySpec> },
    /// A new term, vote and (non-decreasing) commit.
    HardState {
        new_term: bool,
        vote: Option<u64>,
        commit: u64,
    },
    /// A snapshot the log agrees with (the service compacting its log). With no entries to
    /// compact, a snapshot at the current base, which changes nothing.
    Compact {
        at: u64,
        voters: u64,
        data_bytes: usize,
    },
    /// A snapshot from a leader of a new term that the log disagrees with, beyond the last
    /// entry or with another term at its index, optionally followed by entries (some of which
    /// it may already cover) and a hard state.
    Install {
        beyond: bool,
        at: u64,
        overlap: u64,
        entries: Vec<EntrySpec>,
        hard_state: bool,
        voters: u64,
        data_bytes: usize,
    },
    /// A snapshot at or below the current base: ignored.
    Stale { at: u64, term: u64 },
}

#[derive(Clone, Debug)]
enum Operation {
    /// One request through `Wal::persist`.
    Persist(Step),
    /// Several requests through one `Wal::write`.
    Write(Vec<Step>),
    /// Drop the log and open the directory again.
    Reopen,
}

/// The options of one case.
#[derive(Clone, Debug)]
struct CaseOptions {
    segment_bytes_max: u64,
    cache_bytes_max: u64,
}

impl CaseOptions {
    fn wal_options(&self) -> WalOptions {
        WalOptions {
            segment_bytes_max: self.segment_bytes_max,
            cache_bytes_max: self.cache_bytes_max,
            unsafe_no_sync: true,
            ..WalOptions::default()
        }
    }
}

fn entry_spec() -> impl Strategy<Value = EntrySpec> {
    prop_oneof![
        6 => (0..=DATA_BYTES_MAX).prop_map(|data_bytes| EntrySpec { noop: false, configuration: false, data_bytes }),
        1 => Just(EntrySpec { noop: true, configuration: false, data_bytes: 0 }),
        1 => Just(EntrySpec { noop: false, configuration: true, data_bytes: 0 }),
        // Payloads of 2 KiB and more are written from their own buffers, not copied.
        1 => (2000..=LARGE_DATA_BYTES_MAX).prop_map(|data_bytes| EntrySpec { noop: false, configuration: false, data_bytes }),
    ]
}

fn entry_specs(minimum: usize) -> impl Strategy<Value = Vec<EntrySpec>> {
    vec(entry_spec(), minimum..=ENTRIES_PER_REQUEST_MAX)
}

fn step() -> impl Strategy<Value = Step> {
    let selector = || 0u64..1000;
    prop_oneof![
        8 => (entry_specs(1), proptest::option::of(selector()))
            .prop_map(|(entries, commit)| Step::Append { entries, commit }),
        3 => (selector(), entry_specs(1))
            .prop_map(|(start, entries)| Step::Overwrite { start, entries }),
        2 => (any::<bool>(), proptest::option::of(1u64..=3), selector())
            .prop_map(|(new_term, vote, commit)| Step::HardState { new_term, vote, commit }),
        3 => (selector(), selector(), 0..=DATA_BYTES_MAX)
            .prop_map(|(at, voters, data_bytes)| Step::Compact { at, voters, data_bytes }),
        2 => (any::<bool>(), selector(), selector(), entry_specs(0), any::<bool>(), selector(), 0..=DATA_BYTES_MAX)
            .prop_map(|(beyond, at, overlap, entries, hard_state, voters, data_bytes)| Step::Install {
                beyond, at, overlap, entries, hard_state, voters, data_bytes,
            }),
        1 => (selector(), selector()).prop_map(|(at, term)| Step::Stale { at, term }),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        12 => step().prop_map(Operation::Persist),
        3 => vec(step(), 2..=4).prop_map(Operation::Write),
        2 => Just(Operation::Reopen),
    ]
}

fn case_options() -> impl Strategy<Value = CaseOptions> {
    let cache = prop_oneof![Just(0u64), 64u64..2048, Just(1u64 << 20)];
    (128u64..=4096, cache).prop_map(|(segment_bytes_max, cache_bytes_max)| CaseOptions {
        segment_bytes_max,
        cache_bytes_max,
    })
}

fn case() -> impl Strategy<Value = (CaseOptions, Vec<Operation>)> {
    (case_options(), vec(operation(), 1..=OPERATIONS_MAX))
}

fn bootstrap() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// `lowest + selector` folded into `lowest..=highest`.
fn pick(selector: u64, lowest: u64, highest: u64) -> u64 {
    assert!(lowest <= highest, "pick: empty range {lowest}..={highest}");
    lowest + selector % (highest - lowest + 1)
}

/// Deterministic bytes for the entry or snapshot at `index` of `term`, so that a replaced entry
/// differs from its replacement in content and not only in term.
fn data(index: u64, term: u64, bytes: usize) -> Bytes {
    let mut state =
        index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut out = Vec::with_capacity(bytes);
    for _ in 0..bytes {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push((state >> 56) as u8);
    }
    Bytes::from(out)
}

/// A configuration chosen by `selector`: one to five voters, sometimes joint, sometimes with
/// learners.
fn configuration(selector: u64) -> Configuration {
    let voters = 1 + selector % 5;
    let mut configuration = Configuration::new((1..=voters).map(NodeId));
    if (selector / 5) % 3 == 1 {
        configuration.outgoing = (1..=voters + 1).map(NodeId).collect();
    }
    if (selector / 15) % 2 == 1 {
        configuration.learners = [NodeId(7), NodeId(8)].into_iter().collect();
    }
    configuration
}

fn entry(index: u64, term: u64, spec: &EntrySpec) -> Entry {
    let (kind, data) = if spec.noop {
        (EntryKind::Noop, Bytes::new())
    } else if spec.configuration {
        (
            EntryKind::Configuration,
            configuration(index.wrapping_mul(7) ^ term).encode(),
        )
    } else {
        (EntryKind::Normal, data(index, term, spec.data_bytes))
    };
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind,
        data,
    }
}

fn snapshot(index: u64, term: u64, voters: u64, data_bytes: usize) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(term), Index(index)),
            configuration: configuration(voters),
        },
        data: data(index, term ^ 0xFF, data_bytes),
    }
}

/// The reference: [`MemStorage`] plus what a Raft peer remembers to make valid requests.
struct Model {
    storage: MemStorage,
    /// The newest term used anywhere.
    term: u64,
    next_id: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            storage: MemStorage::new(bootstrap()),
            term: 1,
            next_id: 1,
        }
    }

    fn snapshot_index(&self) -> u64 {
        self.storage.snapshot_meta().last_included.index.0
    }

    fn last_index(&self) -> u64 {
        self.storage
            .last_index()
            .expect("MemStorage reads do not fail")
            .0
    }

    fn commit(&self) -> u64 {
        self.storage.hard_state().commit.0
    }

    fn hard_state(&self, term: u64, vote: Option<u64>, commit: u64) -> HardState {
        HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: Index(commit),
        }
    }

    /// The concrete request `step` stands for in the current state. The caller applies it to
    /// `storage` before asking for the next one.
    fn request(&mut self, step: &Step) -> PersistRequest {
        let snapshot_index = self.snapshot_index();
        let last = self.last_index();
        let commit = self.commit();
        assert!(
            snapshot_index <= commit && commit <= last,
            "Model: snapshot <= commit <= last"
        );
        let mut request = PersistRequest {
            id: self.next_id,
            ..PersistRequest::default()
        };
        self.next_id += 1;
        match step {
            Step::Append {
                entries,
                commit: advance,
            } => {
                let term = self.term;
                request.entries = (last + 1..)
                    .zip(entries)
                    .map(|(index, spec)| entry(index, term, spec))
                    .collect();
                if let Some(selector) = advance {
                    let new_last = last + entries.len() as u64;
                    let vote = self.storage.hard_state().vote.map(|vote| vote.0);
                    request.hard_state =
                        Some(self.hard_state(term, vote, pick(*selector, commit, new_last)));
                }
            }
            Step::Overwrite { start, entries } => {
                self.term += 1;
                let term = self.term;
                let start = pick(*start, commit + 1, last + 1);
                request.entries = (start..)
                    .zip(entries)
                    .map(|(index, spec)| entry(index, term, spec))
                    .collect();
            }
            Step::HardState {
                new_term,
                vote,
                commit: selector,
            } => {
                if *new_term {
                    self.term += 1;
                }
                request.hard_state =
                    Some(self.hard_state(self.term, *vote, pick(*selector, commit, last)));
            }
            Step::Compact {
                at,
                voters,
                data_bytes,
            } => {
                let (index, term) = if snapshot_index == last {
                    let base = self.storage.snapshot_meta().last_included;
                    (base.index.0, base.term.0)
                } else {
                    let index = pick(*at, snapshot_index + 1, last);
                    let term = self
                        .storage
                        .term(Index(index))
                        .expect("compacted entry is stored");
                    (index, term.0)
                };
                request.snapshot = Some(snapshot(index, term, *voters, *data_bytes));
            }
            Step::Install {
                beyond,
                at,
                overlap,
                entries,
                hard_state,
                voters,
                data_bytes,
            } => {
                self.term += 1;
                let term = self.term;
                let index = if *beyond || commit == last {
                    pick(*at, last + 1, last + 4)
                } else {
                    pick(*at, commit + 1, last)
                };
                request.snapshot = Some(snapshot(index, term, *voters, *data_bytes));
                let start = index + 1 - pick(*overlap, 0, 2).min(index);
                request.entries = (start..)
                    .zip(entries)
                    .map(|(index, spec)| entry(index, term, spec))
                    .collect();
                if *hard_state {
                    request.hard_state = Some(self.hard_state(term, None, index));
                }
            }
            Step::Stale { at, term } => {
                let index = pick(*at, 0, snapshot_index);
                request.snapshot = Some(snapshot(index, pick(*term, 0, self.term), 0, 7));
            }
        }
        request
    }
}

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

fn same<T: PartialEq + std::fmt::Debug>(what: &str, wal: T, model: T) -> Result<(), String> {
    if wal == model {
        Ok(())
    } else {
        Err(format!("{what}: write-ahead log {wal:?}, model {model:?}"))
    }
}

/// Compares entry lists, naming the first entry that differs (the `Debug` of an entry shows
/// its size, not its bytes).
fn same_entries(
    what: &str,
    wal: &Result<Vec<Entry>, StorageError>,
    model: &Result<Vec<Entry>, StorageError>,
) -> Result<(), String> {
    match (wal, model) {
        (Ok(wal), Ok(model)) if wal == model => Ok(()),
        (Ok(wal_entries), Ok(model_entries)) => {
            let position = wal_entries
                .iter()
                .zip(model_entries)
                .position(|(a, b)| a != b);
            Err(format!(
                "{what}: the write-ahead log returned {} entries, the model {}; first difference at \
                 position {position:?}: {:?} vs {:?}",
                wal_entries.len(),
                model_entries.len(),
                position.map(|position| &wal_entries[position]),
                position.map(|position| &model_entries[position]),
            ))
        }
        _ => same(what, wal, model),
    }
}

/// Every read the core makes agrees with the model.
fn check(wal: &Wal, model: &MemStorage, options: &CaseOptions) -> Result<(), String> {
    let storage = wal.storage();
    let first = model.first_index().expect("model").0;
    let last = model.last_index().expect("model").0;
    same("first_index", storage.first_index(), Ok(Index(first)))?;
    same("last_index", storage.last_index(), Ok(Index(last)))?;
    same("hard_state", storage.hard_state(), Ok(model.hard_state()))?;
    same(
        "snapshot_meta",
        storage.snapshot_meta().as_ref(),
        Ok(model.snapshot_meta()),
    )?;
    same("snapshot", storage.snapshot(), model.snapshot())?;
    same(
        "initial_state",
        storage.initial_state(),
        model.initial_state(),
    )?;
    let cached_bytes = storage.cached_bytes().map_err(|error| error.to_string())?;
    if cached_bytes > options.cache_bytes_max {
        return Err(format!(
            "the cache holds {cached_bytes} bytes, more than {}",
            options.cache_bytes_max
        ));
    }

    // Each range is also measured, from the log's index, against the model's default, which
    // reads the entries: the same size up to max_bytes, and "more" past it.
    let everything = |low: u64, high: u64, max_bytes: u64| {
        let what = format!("entries({low}, {high}, {max_bytes})");
        same_entries(
            &what,
            &storage.entries(Index(low), Index(high), max_bytes),
            &model.entries(Index(low), Index(high), max_bytes),
        )?;
        let within = |bytes: Result<u64, StorageError>| {
            bytes.map(|bytes| (bytes <= max_bytes).then_some(bytes))
        };
        same(
            &format!("entries_size_bytes({low}, {high}, {max_bytes})"),
            within(storage.entries_size_bytes(Index(low), Index(high), max_bytes)),
            within(model.entries_size_bytes(Index(low), Index(high), max_bytes)),
        )
    };
    everything(first, last + 1, u64::MAX)?;
    let stored: Vec<Entry> = model.stored_entries().cloned().collect();
    same(
        "stored entries",
        storage.entries(Index(first), Index(last + 1), u64::MAX),
        Ok(stored),
    )?;
    // Out of range on either side, and empty ranges at both ends.
    everything(first - 1, last + 1, u64::MAX)?;
    everything(first, last + 2, u64::MAX)?;
    everything(first, first, u64::MAX)?;
    everything(last + 1, last + 1, u64::MAX)?;
    // Windows: at least one entry, and stop before the entry that passes max_bytes.
    let stride = ((last + 1 - first) / 6).max(1);
    for low in (first..=last).step_by(stride as usize) {
        for max_bytes in [0, 1, 24, 100, 330, 1000] {
            everything(low, last + 1, max_bytes)?;
        }
    }

    let mut indexes: Vec<u64> = (first.saturating_sub(3)..=last + 2).collect();
    indexes.extend([0, last + 100, u64::MAX / 2]);
    for index in indexes {
        same(
            &format!("term({index})"),
            storage.term(Index(index)),
            model.term(Index(index)),
        )?;
    }
    check_files(wal.dir(), model)
}

/// Exactly one snapshot file, the model's, and no temporaries.
fn check_files(dir: &Path, model: &MemStorage) -> Result<(), String> {
    let id = model.snapshot_meta().last_included;
    let expected = format!("snapshot-{:020}-{:020}.snap", id.index.0, id.term.0);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|error| format!("list {}: {error}", dir.display()))?
        .filter_map(|item| item.ok())
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".snap"))
        .collect();
    names.sort();
    same("snapshot files", names, vec![expected])
}

/// What the recovery report says after a clean shutdown.
fn check_recovery(wal: &Wal, model: &MemStorage) -> Result<(), String> {
    let report = wal.recovery_report();
    let entries = model.stored_entries().count() as u64;
    same("report.bootstrapped", report.bootstrapped, false)?;
    same("report.torn_tail_bytes", report.torn_tail_bytes, 0)?;
    same(
        "report.corrupt_bytes_dropped",
        report.corrupt_bytes_dropped,
        0,
    )?;
    same("report.entries", report.entries, entries)?;
    same(
        "report.snapshot",
        report.snapshot,
        model.snapshot_meta().last_included,
    )?;
    same("report.removed_files", report.removed_files.len(), 0)
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

// Scenarios the model test found, reduced by hand to the segment layouts that trigger them.
// Each runs its requests against the log and the model, then reopens and compares. Segments
// are 150 bytes: a 32-byte header and a 37-byte hard state frame start each one, and an entry
// with no data is a 30-byte frame, so a segment takes up to three writes of such entries.

fn empty_entry(term: u64, index: u64) -> Entry {
    entry(
        index,
        term,
        &EntrySpec {
            noop: false,
            configuration: false,
            data_bytes: 0,
        },
    )
}

fn empty_entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| empty_entry(term, index)).collect()
}

fn entries_request(id: u64, entries: Vec<Entry>) -> PersistRequest {
    PersistRequest {
        id,
        entries,
        ..PersistRequest::default()
    }
}

fn snapshot_request(id: u64, term: u64, index: u64) -> PersistRequest {
    PersistRequest {
        id,
        snapshot: Some(snapshot(index, term, 2, 10)),
        ..PersistRequest::default()
    }
}

/// Persists each request to the log and the model, comparing after each, then reopens the log
/// and compares again.
fn scenario(requests: Vec<PersistRequest>) {
    let options = CaseOptions {
        segment_bytes_max: 150,
        cache_bytes_max: 0,
    };
    let dir = scratch_dir();
    let mut wal = open(dir.path(), &options, bootstrap()).expect("opens");
    let mut model = MemStorage::new(bootstrap());
    let mut trace = Vec::new();
    for request in requests {
        trace.push(describe(&request));
        model.persist(request.clone());
        wal.persist(request).expect("durable");
        if let Err(message) = check(&wal, &model, &options) {
            panic!("{message}\n  {}", trace.join("\n  "));
        }
    }
    drop(wal);
    let wal = open(dir.path(), &options, Configuration::default())
        .unwrap_or_else(|message| panic!("{message}\n  {}", trace.join("\n  ")));
    if let Err(message) = check_recovery(&wal, &model).and_then(|()| check(&wal, &model, &options))
    {
        panic!("after reopening: {message}\n  {}", trace.join("\n  "));
    }
}

/// Segment 2 holds the marker of an older compaction (through 1) and then entry 4; the
/// compaction through 3 deletes segment 1. Replaying segment 2 alone, the old marker must
/// not anchor the log at 1, or entry 4 looks like a gap.
#[test]
fn compaction_marker_before_the_retained_entries_survives_reopening() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=3)),
        snapshot_request(2, 1, 1),
        entries_request(3, empty_entries(1, 4..=4)),
        snapshot_request(4, 1, 3),
    ]);
}

/// Segment 2 holds entries 5 and 6 and then entry 3 of term 2, which replaced them; the
/// compaction through 2 deletes segment 1. Replaying segment 2 alone, entry 3 replaces the
/// log from below its first entry.
#[test]
fn suffix_replaced_below_the_retained_entries_survives_reopening() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=4)),
        entries_request(2, empty_entries(1, 5..=6)),
        entries_request(3, empty_entries(2, 3..=3)),
        snapshot_request(4, 1, 2),
    ]);
}

/// Segment 2 holds entries 5 and 6 of term 1 and then a snapshot through 4 of term 2, which
/// disagrees with entry 4 (term 1, in segment 1) and so discards the whole log; segment 1 is
/// deleted. Replaying segment 2 alone, the marker seems to follow entries 5 and 6 and they
/// come back.
#[test]
fn disagreeing_snapshot_just_below_the_retained_entries_stays_discarded() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=4)),
        entries_request(2, empty_entries(1, 5..=6)),
        snapshot_request(3, 2, 4),
    ]);
}

/// As above with the snapshot further below the retained entries (10 and 11): the replay
/// takes the marker for a stale one, and the snapshot file does not reach the log.
#[test]
fn disagreeing_snapshot_far_below_the_retained_entries_stays_discarded() {
    scenario(vec![
        entries_request(1, empty_entries(1, 1..=9)),
        entries_request(2, empty_entries(1, 10..=11)),
        snapshot_request(3, 2, 5),
    ]);
}
