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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::testing::storage::{
    check_storage, run_storage_suite, run_storage_suite_with, BoxError, ConformanceFailure,
    MemHarness, Rule, StoreHarness, SuiteOptions,
};
use raft_core::{
    Configuration, Entry, EntryKind, Index, InitialState, LogId, LogStore, MemStorage,
    PersistRequest, SharedMemStorage, Snapshot, Storage, StorageError, Term,
};

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

/// One planted bug per variant: one for each rule, named for what the store does wrong, and
/// two that make the store fail rather than answer wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    /// No bug: the control.
    None,
    /// The bootstrap configuration is kept in memory only: a reopened new store reports none.
    LosesBootstrapConfigurationOnReopen,
    /// Entry data past 2 KiB is cut short when read.
    CorruptsLargeEntries,
    /// `entries` returns the whole range whatever `max_bytes` says.
    IgnoresMaxBytes,
    /// `entries_size_bytes` counts the data and not the header allowance.
    SizeWithoutHeaders,
    /// Entries written over a stored suffix replace only the indexes they cover.
    KeepsConflictingSuffix,
    /// Term and vote are kept in memory only: a reopen loses them.
    ForgetsHardStateOnReopen,
    /// Every newer snapshot discards the log, even one of entries the log holds.
    DiscardsLogOnCompaction,
    /// A snapshot the log disagrees with is treated as a compaction: the entries after its
    /// index stay.
    KeepsLogUnderDisagreeingSnapshot,
    /// An older snapshot replaces the stored one.
    AppliesStaleSnapshots,
    /// The commit index read back is the one last written, even below the snapshot.
    KeepsCommitBelowSnapshot,
    /// `term` below the snapshot answers `Unavailable` instead of `Compacted`.
    CompactedReadsUnavailable,
    /// `initial_state` reports the oldest configuration entry instead of the newest.
    OldestConfigurationWins,
    /// Configuration entries are tracked as written and dropped only when they leave the
    /// log's range, not when a suffix replaces them.
    KeepsReplacedConfigurations,
    /// With no configuration entry, `initial_state` reports the bootstrap configuration,
    /// not the snapshot's.
    IgnoresSnapshotConfiguration,
    /// A request's entries are written before its snapshot (those that would leave a gap
    /// are dropped).
    EntriesBeforeSnapshot,
    /// A batch of several requests is written as all its entries, then its snapshots, then
    /// its hard states.
    MergesBatch,
    /// A reader is a copy of the state when it was obtained.
    ReaderIsACopy,
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

/// What [`Buggy`] tracks beside the state, shared with its readers and kept across reopens.
#[derive(Debug, Default)]
struct Notes {
    /// The commit index of the last hard state written.
    written_commit: Index,
    /// Configuration entries written, for [`Bug::KeepsReplacedConfigurations`].
    configurations: BTreeMap<Index, Configuration>,
}

/// `SharedMemStorage` with one planted bug.
struct Buggy {
    bug: Bug,
    inner: SharedMemStorage,
    bootstrap: Configuration,
    /// The state before the last write, which a reopen of [`Bug::LosesLastWriteOnReopen`]
    /// falls back to.
    before_last_write: MemStorage,
    /// Whether this store was reopened, for the bugs that show after recovery.
    reopened: bool,
    notes: Arc<Mutex<Notes>>,
}

/// The reader of [`Buggy`].
struct BuggyReader {
    bug: Bug,
    inner: SharedMemStorage,
    bootstrap: Configuration,
    reopened: bool,
    notes: Arc<Mutex<Notes>>,
}

#[derive(Debug, thiserror::Error)]
#[error("this store does not take snapshots")]
struct NoSnapshots;

fn lock(notes: &Mutex<Notes>) -> MutexGuard<'_, Notes> {
    notes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Buggy {
    fn new(bug: Bug, bootstrap: Configuration) -> Buggy {
        let storage = MemStorage::new(bootstrap.clone());
        Buggy {
            bug,
            before_last_write: storage.clone(),
            inner: SharedMemStorage::from_storage(storage),
            bootstrap,
            reopened: false,
            notes: Arc::default(),
        }
    }

    /// The one place the state is written: tracks what the bugs need, then writes.
    fn persist(&mut self, request: PersistRequest) {
        {
            let mut notes = lock(&self.notes);
            if let Some(hard_state) = request.hard_state {
                notes.written_commit = hard_state.commit;
            }
            for entry in &request.entries {
                if entry.kind == EntryKind::Configuration {
                    if let Ok(configuration) = Configuration::decode(&entry.data) {
                        notes.configurations.insert(entry.index(), configuration);
                    }
                }
            }
        }
        let Ok(()) = self.inner.write(vec![request]);
        let stored = self.inner.to_storage();
        let (first, last) = (stored.first_index(), stored.last_index());
        if let (Ok(first), Ok(last)) = (first, last) {
            lock(&self.notes)
                .configurations
                .retain(|&index, _| first <= index && index <= last);
        }
    }

    /// Starts over from `snapshot` and the stored hard state, without the log.
    fn replace_with(&mut self, snapshot: Snapshot) {
        let hard_state = self.inner.to_storage().hard_state();
        let mut fresh = MemStorage::new(self.bootstrap.clone());
        fresh.persist(PersistRequest {
            id: 0,
            snapshot: Some(snapshot),
            entries: Vec::new(),
            hard_state: Some(hard_state),
        });
        self.inner = SharedMemStorage::from_storage(fresh);
    }

    /// Applies `request` the way the bug has it.
    fn apply(&mut self, mut request: PersistRequest) {
        let stored = self.inner.to_storage();
        let stored_snapshot = stored.snapshot_meta().last_included;
        let snapshot_at = request.snapshot.as_ref().map(|s| s.meta.last_included);
        let agrees = |at: LogId| stored.term(at.index) == Ok(at.term);
        match (self.bug, snapshot_at) {
            (Bug::KeepsConflictingSuffix, _) => {
                let new_last = request.entries.last().map(Entry::index);
                let kept_tail: Vec<Entry> = stored
                    .stored_entries()
                    .filter(|entry| new_last.is_some_and(|last| entry.index() > last))
                    .cloned()
                    .collect();
                self.persist(request);
                if !kept_tail.is_empty() {
                    self.persist(append(kept_tail));
                }
            }
            (Bug::KeepsLogUnderDisagreeingSnapshot, Some(at))
                if at.index > stored_snapshot.index
                    && stored.term(at.index).is_ok()
                    && !agrees(at) =>
            {
                let after: Vec<Entry> = stored
                    .stored_entries()
                    .filter(|entry| entry.index() > at.index)
                    .cloned()
                    .collect();
                self.persist(install(request.snapshot.take()));
                self.persist(append(after));
                self.persist(request);
            }
            (Bug::AppliesStaleSnapshots, Some(at)) if at.index < stored_snapshot.index => {
                self.replace_with(request.snapshot.take().expect("a snapshot"));
                self.persist(request);
            }
            (Bug::DiscardsLogOnCompaction, Some(at))
                if at.index > stored_snapshot.index && agrees(at) =>
            {
                self.replace_with(request.snapshot.take().expect("a snapshot"));
                self.persist(request);
            }
            (Bug::EntriesBeforeSnapshot, Some(_)) => {
                let entries = std::mem::take(&mut request.entries);
                let leaves_a_gap = entries.first().is_some_and(|entry| {
                    entry.index() > stored.last_index().unwrap_or_default().next()
                });
                if !leaves_a_gap {
                    self.persist(append(entries));
                }
                self.persist(request);
            }
            _ => self.persist(request),
        }
    }

    /// What a reopen finds.
    fn reopen(self) -> Buggy {
        let stored = match self.bug {
            Bug::LosesLastWriteOnReopen => self.before_last_write,
            Bug::ForgetsHardStateOnReopen => without_hard_state(&self.inner.to_storage()),
            _ => self.inner.to_storage(),
        };
        Buggy {
            bug: self.bug,
            before_last_write: stored.clone(),
            inner: SharedMemStorage::from_storage(stored),
            bootstrap: self.bootstrap,
            reopened: true,
            notes: self.notes,
        }
    }
}

fn append(entries: Vec<Entry>) -> PersistRequest {
    PersistRequest {
        entries,
        ..PersistRequest::default()
    }
}

fn install(snapshot: Option<Snapshot>) -> PersistRequest {
    PersistRequest {
        snapshot,
        ..PersistRequest::default()
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
        let inner = if self.bug == Bug::ReaderIsACopy {
            SharedMemStorage::from_storage(self.inner.to_storage())
        } else {
            self.inner.clone()
        };
        BuggyReader {
            bug: self.bug,
            inner,
            bootstrap: self.bootstrap.clone(),
            reopened: self.reopened,
            notes: Arc::clone(&self.notes),
        }
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), NoSnapshots> {
        if self.bug == Bug::RefusesSnapshots
            && requests.iter().any(|request| request.snapshot.is_some())
        {
            return Err(NoSnapshots);
        }
        self.before_last_write = self.inner.to_storage();
        if self.bug == Bug::MergesBatch && requests.len() > 1 {
            let (mut snapshots, mut hard_states) = (Vec::new(), Vec::new());
            for request in requests {
                self.persist(append(request.entries));
                snapshots.extend(request.snapshot);
                hard_states.extend(request.hard_state);
            }
            for snapshot in snapshots {
                self.persist(install(Some(snapshot)));
            }
            for hard_state in hard_states {
                self.persist(PersistRequest {
                    hard_state: Some(hard_state),
                    ..PersistRequest::default()
                });
            }
            return Ok(());
        }
        for request in requests {
            self.apply(request);
        }
        Ok(())
    }
}

impl Storage for BuggyReader {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let mut state = self.inner.initial_state()?;
        let snapshot_configuration = self.inner.snapshot()?.meta.configuration;
        let in_effect = |entries: &[(Index, Configuration)]| match entries.last() {
            Some((_, configuration)) => configuration.clone(),
            None => snapshot_configuration.clone(),
        };
        match self.bug {
            Bug::DropsNewestConfigurationOnReopen if self.reopened => {
                state.configuration_entries.pop();
                state.configuration = in_effect(&state.configuration_entries);
            }
            Bug::LosesBootstrapConfigurationOnReopen
                if self.reopened && state.configuration_entries.is_empty() =>
            {
                state.configuration = Configuration::default();
            }
            Bug::OldestConfigurationWins => {
                if let Some((_, oldest)) = state.configuration_entries.first() {
                    state.configuration = oldest.clone();
                }
            }
            Bug::KeepsReplacedConfigurations => {
                let notes = lock(&self.notes);
                state.configuration_entries = notes
                    .configurations
                    .iter()
                    .map(|(&index, configuration)| (index, configuration.clone()))
                    .collect();
                state.configuration = in_effect(&state.configuration_entries);
            }
            Bug::IgnoresSnapshotConfiguration if state.configuration_entries.is_empty() => {
                state.configuration = self.bootstrap.clone();
            }
            Bug::KeepsCommitBelowSnapshot => {
                state.hard_state.commit = lock(&self.notes).written_commit;
            }
            _ => {}
        }
        Ok(state)
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        match self.bug {
            Bug::PanicsOnZeroMaxBytes if max_bytes == 0 => {
                panic!("BuggyReader: entries with a zero max_bytes")
            }
            Bug::IgnoresMaxBytes => self.inner.entries(low, high, u64::MAX),
            Bug::CorruptsLargeEntries => {
                let mut entries = self.inner.entries(low, high, max_bytes)?;
                for entry in &mut entries {
                    entry.data.truncate(2048);
                }
                Ok(entries)
            }
            _ => self.inner.entries(low, high, max_bytes),
        }
    }

    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        if self.bug == Bug::SizeWithoutHeaders {
            let entries = self.inner.entries(low, high, u64::MAX)?;
            return Ok(entries.iter().map(|entry| entry.data.len() as u64).sum());
        }
        self.inner.entries_size_bytes(low, high, max_bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        match self.bug {
            Bug::WrongTermPastForty if index > Index(40) => self.inner.term(index.prev()),
            Bug::CompactedReadsUnavailable if index.next() < self.inner.first_index()? => {
                Err(StorageError::Unavailable(index))
            }
            _ => self.inner.term(index),
        }
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        self.inner.first_index()
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        self.inner.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let mut snapshot = self.inner.snapshot()?;
        if self.bug == Bug::LosesBootstrapConfigurationOnReopen
            && self.reopened
            && snapshot.meta.last_included.index == Index(0)
        {
            snapshot.meta.configuration = Configuration::default();
        }
        Ok(snapshot)
    }
}

struct BuggyHarness(Bug);

impl StoreHarness for BuggyHarness {
    type Store = Buggy;

    fn create(&mut self, bootstrap: &Configuration) -> Result<Buggy, BoxError> {
        Ok(Buggy::new(self.0, bootstrap.clone()))
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

/// Every rule is live: a bug of its own breaks it, and no rule checked earlier catches that
/// bug first.
#[test]
fn every_rule_is_broken_by_a_bug_of_its_own() {
    let planted = [
        (
            Bug::LosesBootstrapConfigurationOnReopen,
            Rule::BootstrapState,
        ),
        (Bug::CorruptsLargeEntries, Rule::AppendReadBack),
        (Bug::IgnoresMaxBytes, Rule::EntriesMaxBytes),
        (Bug::SizeWithoutHeaders, Rule::EntriesSizeBytes),
        (Bug::KeepsConflictingSuffix, Rule::ConflictingSuffix),
        (Bug::ForgetsHardStateOnReopen, Rule::HardState),
        (Bug::DiscardsLogOnCompaction, Rule::Compaction),
        (
            Bug::KeepsLogUnderDisagreeingSnapshot,
            Rule::SnapshotDiscardsDisagreeingLog,
        ),
        (Bug::AppliesStaleSnapshots, Rule::StaleSnapshotIgnored),
        (Bug::KeepsCommitBelowSnapshot, Rule::SnapshotCommit),
        (Bug::CompactedReadsUnavailable, Rule::OutOfRangeReads),
        (Bug::OldestConfigurationWins, Rule::ConfigurationNewestEntry),
        (
            Bug::KeepsReplacedConfigurations,
            Rule::ConfigurationFallback,
        ),
        (
            Bug::IgnoresSnapshotConfiguration,
            Rule::ConfigurationFromSnapshot,
        ),
        (
            Bug::DropsNewestConfigurationOnReopen,
            Rule::ConfigurationAcrossReopen,
        ),
        (Bug::EntriesBeforeSnapshot, Rule::RequestOrder),
        (Bug::MergesBatch, Rule::BatchOrder),
        (Bug::ReaderIsACopy, Rule::ReaderVisibility),
        (Bug::LosesLastWriteOnReopen, Rule::DurableAcrossCrash),
        (Bug::WrongTermPastForty, Rule::RandomWorkload),
    ];
    assert_eq!(
        planted.iter().map(|&(_, rule)| rule).collect::<Vec<_>>(),
        Rule::ALL.to_vec(),
        "one bug per rule, in the order the rules are checked"
    );
    let wrong: Vec<String> = planted
        .into_iter()
        .filter_map(|(bug, rule)| {
            let failure = failure_of(bug);
            (failure.rule != rule)
                .then(|| format!("{bug:?} broke {} not {}", failure.rule.name(), rule.name()))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
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
