//! The storage conformance suite against `SharedMemStorage`, and against stores with a planted
//! bug, each of which must fail it with the rule the bug breaks.
//!
//! ```text
//!  MemHarness ──────────────► run_storage_suite ─► every rule holds
//!  BuggyHarness(Bug::X) ────► run_storage_suite ─► Err(failure), failure.rule == X's rule
//!     Buggy: SharedMemStorage + one planted bug in write, reopen or a read
//! ```
//!
//! The feature `testing` is on for this test through raft-core's dev-dependency on itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use raft_core::testing::storage::{
    check_storage, run_storage_suite, run_storage_suite_with, BoxError, ConformanceFailure, Rule,
    StoreHarness, SuiteOptions,
};
use raft_core::{
    Configuration, Entry, Index, InitialState, LogStore, MemStorage, PersistRequest,
    SharedMemStorage, Snapshot, Storage, StorageError, Term,
};

/// Memory storage: a reopen keeps the state and drops the handle.
struct MemHarness;

impl StoreHarness for MemHarness {
    type Store = SharedMemStorage;

    fn create(&mut self, bootstrap: &Configuration) -> Result<SharedMemStorage, BoxError> {
        Ok(SharedMemStorage::new(bootstrap.clone()))
    }

    fn reopen(&mut self, store: SharedMemStorage) -> Result<SharedMemStorage, BoxError> {
        Ok(SharedMemStorage::from_storage(store.to_storage()))
    }
}

#[test]
fn shared_mem_storage_keeps_every_rule() {
    let report = check_storage(MemHarness);
    assert_eq!(
        report
            .rules
            .iter()
            .map(|rule| rule.rule)
            .collect::<Vec<_>>(),
        Rule::ALL.to_vec(),
        "every rule is checked, in order"
    );
    assert!(
        report.reopens() > 100,
        "the suite reopened stores: {report}"
    );
    eprintln!("SharedMemStorage: {report}");
}

#[test]
fn a_lent_harness_runs_the_suite_and_more_seeds_run_more_steps() {
    let mut harness = MemHarness;
    let few = run_storage_suite_with(
        &mut harness,
        &SuiteOptions {
            seeds: vec![11],
            steps_per_seed: 20,
        },
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    let more = run_storage_suite_with(
        &mut harness,
        &SuiteOptions {
            seeds: vec![11, 12, 13],
            steps_per_seed: 20,
        },
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    let workload = |report: &raft_core::testing::storage::SuiteReport| {
        report
            .rules
            .iter()
            .find(|rule| rule.rule == Rule::RandomWorkload)
            .map(|rule| rule.writes + rule.reopens)
    };
    assert_eq!(
        workload(&few),
        Some(20 + 1),
        "20 steps and the final reopen"
    );
    assert_eq!(workload(&more), Some(3 * (20 + 1)));
    assert_eq!(more.seeds, vec![11, 12, 13]);
}

/// One planted bug per variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    /// No bug: the control.
    None,
    /// Term and vote are kept in memory only: a reopen loses them.
    ForgetsHardStateOnReopen,
    /// Entries written over a stored suffix replace only the indexes they cover.
    KeepsConflictingSuffix,
    /// A snapshot the log disagrees with is treated as a compaction: the entries after its
    /// index stay.
    KeepsLogUnderDisagreeingSnapshot,
    /// `write` returns before the batch is durable: a reopen loses the last batch.
    LosesLastWriteOnReopen,
    /// Recovery replays configuration entries but the newest one: off by one.
    DropsNewestConfigurationOnReopen,
    /// `term` of an index past 40 answers the term of the entry before it: only a long log
    /// shows it, which the random workload builds and the scripted scenarios do not.
    WrongTermPastForty,
    /// A write holding a snapshot fails.
    RefusesSnapshots,
    /// Reading entries with a zero `max_bytes` panics.
    PanicsOnZeroMaxBytes,
}

/// `SharedMemStorage` with one planted bug.
struct Buggy {
    bug: Bug,
    inner: SharedMemStorage,
    /// The state before the last write, which a reopen of [`Bug::LosesLastWriteOnReopen`]
    /// falls back to.
    before_last_write: MemStorage,
    /// Set once the store was reopened, for the readers' bugs that show after recovery.
    reopened: Arc<AtomicBool>,
}

/// The reader of [`Buggy`].
struct BuggyReader {
    bug: Bug,
    inner: SharedMemStorage,
    reopened: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("this store does not take snapshots")]
struct NoSnapshots;

impl Buggy {
    fn new(bug: Bug, storage: MemStorage) -> Buggy {
        Buggy {
            bug,
            before_last_write: storage.clone(),
            inner: SharedMemStorage::from_storage(storage),
            reopened: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Applies `request` the way the bug has it.
    fn apply(&mut self, request: PersistRequest) {
        let stored = self.inner.to_storage();
        let mut kept_tail: Vec<Entry> = Vec::new();
        match self.bug {
            Bug::KeepsConflictingSuffix => {
                if let Some(new_last) = request.entries.last().map(Entry::index) {
                    kept_tail = stored
                        .stored_entries()
                        .filter(|entry| entry.index() > new_last)
                        .cloned()
                        .collect();
                }
            }
            Bug::KeepsLogUnderDisagreeingSnapshot => {
                if let Some(snapshot) = &request.snapshot {
                    let at = snapshot.meta.last_included;
                    let disagrees = stored.term(at.index).is_ok_and(|term| term != at.term);
                    if disagrees && at.index > stored.snapshot_meta().last_included.index {
                        let after: Vec<Entry> = stored
                            .stored_entries()
                            .filter(|entry| entry.index() > at.index)
                            .cloned()
                            .collect();
                        let Ok(()) = self.inner.write(vec![PersistRequest {
                            snapshot: request.snapshot.clone(),
                            ..PersistRequest::default()
                        }]);
                        let Ok(()) = self.inner.write(vec![PersistRequest {
                            entries: after,
                            ..PersistRequest::default()
                        }]);
                        let Ok(()) = self.inner.write(vec![PersistRequest {
                            snapshot: None,
                            ..request
                        }]);
                        return;
                    }
                }
            }
            _ => {}
        }
        let Ok(()) = self.inner.write(vec![request]);
        if !kept_tail.is_empty() {
            let Ok(()) = self.inner.write(vec![PersistRequest {
                entries: kept_tail,
                ..PersistRequest::default()
            }]);
        }
    }

    /// What a reopen finds.
    fn reopen(self) -> Buggy {
        let stored = match self.bug {
            Bug::LosesLastWriteOnReopen => self.before_last_write,
            Bug::ForgetsHardStateOnReopen => without_hard_state(&self.inner.to_storage()),
            _ => self.inner.to_storage(),
        };
        let reopened = Buggy::new(self.bug, stored);
        reopened.reopened.store(true, Ordering::SeqCst);
        reopened
    }
}

/// The same log and snapshot, with the hard state a new store has (the commit index then
/// follows from the snapshot).
fn without_hard_state(storage: &MemStorage) -> MemStorage {
    let snapshot = storage.snapshot().expect("MemStorage reads do not fail");
    let mut fresh = MemStorage::new(snapshot.meta.configuration.clone());
    fresh.persist(PersistRequest {
        id: 0,
        snapshot: (snapshot.meta.last_included.index > Index(0)).then_some(snapshot),
        entries: storage.stored_entries().cloned().collect(),
        hard_state: None,
    });
    fresh
}

impl LogStore for Buggy {
    type Reader = BuggyReader;
    type Error = NoSnapshots;

    fn reader(&self) -> BuggyReader {
        BuggyReader {
            bug: self.bug,
            inner: self.inner.clone(),
            reopened: Arc::clone(&self.reopened),
        }
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), NoSnapshots> {
        if self.bug == Bug::RefusesSnapshots
            && requests.iter().any(|request| request.snapshot.is_some())
        {
            return Err(NoSnapshots);
        }
        self.before_last_write = self.inner.to_storage();
        for request in requests {
            self.apply(request);
        }
        Ok(())
    }
}

impl Storage for BuggyReader {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let mut state = self.inner.initial_state()?;
        if self.bug == Bug::DropsNewestConfigurationOnReopen && self.reopened.load(Ordering::SeqCst)
        {
            state.configuration_entries.pop();
            state.configuration = match state.configuration_entries.last() {
                Some((_, configuration)) => configuration.clone(),
                None => self.inner.snapshot()?.meta.configuration,
            };
        }
        Ok(state)
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if self.bug == Bug::PanicsOnZeroMaxBytes && max_bytes == 0 {
            panic!("BuggyReader: entries with a zero max_bytes");
        }
        self.inner.entries(low, high, max_bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        if self.bug == Bug::WrongTermPastForty && index > Index(40) {
            return self.inner.term(index.prev());
        }
        self.inner.term(index)
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        self.inner.first_index()
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        self.inner.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.inner.snapshot()
    }
}

struct BuggyHarness(Bug);

impl StoreHarness for BuggyHarness {
    type Store = Buggy;

    fn create(&mut self, bootstrap: &Configuration) -> Result<Buggy, BoxError> {
        Ok(Buggy::new(self.0, MemStorage::new(bootstrap.clone())))
    }

    fn reopen(&mut self, store: Buggy) -> Result<Buggy, BoxError> {
        Ok(store.reopen())
    }
}

/// Runs the suite on a store with `bug`; returns how it failed.
fn failure_of(bug: Bug) -> ConformanceFailure {
    match run_storage_suite(BuggyHarness(bug)) {
        Ok(report) => panic!("a store that {bug:?} passed the suite: {report}"),
        Err(failure) => {
            eprintln!("{bug:?}: {failure}");
            failure
        }
    }
}

#[test]
fn forgetting_the_hard_state_on_reopen_breaks_hard_state() {
    let failure = failure_of(Bug::ForgetsHardStateOnReopen);
    assert_eq!(failure.rule, Rule::HardState, "{failure}");
    assert!(failure.detail.contains("after a reopen"), "{failure}");
}

#[test]
fn keeping_a_conflicting_suffix_breaks_conflicting_suffix() {
    let failure = failure_of(Bug::KeepsConflictingSuffix);
    assert_eq!(failure.rule, Rule::ConflictingSuffix, "{failure}");
    assert!(failure.detail.contains("6 must go"), "{failure}");
}

#[test]
fn keeping_the_log_under_a_disagreeing_snapshot_breaks_snapshot_discards_disagreeing_log() {
    let failure = failure_of(Bug::KeepsLogUnderDisagreeingSnapshot);
    assert_eq!(
        failure.rule,
        Rule::SnapshotDiscardsDisagreeingLog,
        "{failure}"
    );
}

#[test]
fn losing_the_last_write_on_reopen_breaks_durable_across_crash() {
    let failure = failure_of(Bug::LosesLastWriteOnReopen);
    assert_eq!(failure.rule, Rule::DurableAcrossCrash, "{failure}");
}

#[test]
fn a_wrong_configuration_after_reopen_breaks_configuration_across_reopen() {
    let failure = failure_of(Bug::DropsNewestConfigurationOnReopen);
    assert_eq!(failure.rule, Rule::ConfigurationAcrossReopen, "{failure}");
}

#[test]
fn a_bug_only_a_long_log_shows_is_found_by_the_random_workload_with_its_seed() {
    let failure = failure_of(Bug::WrongTermPastForty);
    assert_eq!(failure.rule, Rule::RandomWorkload, "{failure}");
    assert!(
        failure.detail.starts_with("seed ")
            && failure
                .detail
                .contains("(replay with RAFT_STORAGE_SUITE_SEEDS="),
        "the failure names its seed and how to replay it: {failure}"
    );
}

#[test]
fn a_write_error_is_a_failure_of_the_rule_being_checked() {
    let failure = failure_of(Bug::RefusesSnapshots);
    assert_eq!(failure.rule, Rule::Compaction, "{failure}");
    assert!(
        failure
            .detail
            .contains("this store does not take snapshots"),
        "the store's error is in the failure: {failure}"
    );
}

#[test]
fn a_panic_in_the_store_is_a_failure_of_the_rule_being_checked() {
    let failure = failure_of(Bug::PanicsOnZeroMaxBytes);
    assert_eq!(failure.rule, Rule::EntriesMaxBytes, "{failure}");
    assert!(failure.detail.contains("zero max_bytes"), "{failure}");
}

#[test]
#[should_panic(expected = "rule conflicting-suffix: an entry at an index already stored")]
fn check_storage_panics_naming_the_rule() {
    check_storage(BuggyHarness(Bug::KeepsConflictingSuffix));
}

/// The control: the wrapper with no bug planted passes, so each failure above is its bug's.
#[test]
fn the_wrapper_without_a_bug_passes() {
    if let Err(failure) = run_storage_suite(BuggyHarness(Bug::None)) {
        panic!("{failure}");
    }
}
