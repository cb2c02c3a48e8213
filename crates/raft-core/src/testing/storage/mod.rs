//! The storage conformance suite: every rule the core relies on from a [`LogStore`], checked
//! against an implementation with one call.
//!
//! ```text
//!  run_storage_suite(harness)
//!    for each rule, in the order of Rule::ALL:
//!      harness.create(bootstrap) ─► a scripted scenario: write(batch), read everything back
//!                                   and compare with what the rule says, reopen, read again
//!    random-workload, once per seed: batches of random requests and reopens at random steps,
//!                                    every read compared with MemStorage after every step
//!    the first broken rule ─► Err(ConformanceFailure { rule, detail })
//! ```
//!
//! A reopen is a crash and a restart: [`StoreHarness::reopen`] gets the store by value, drops
//! it without any orderly close, and opens the same storage again. After any completed write
//! the reopened store must read back exactly what the old one did ("reads after a crash at any
//! point": a write that has returned is done, so any crash comes after one). A power failure
//! (lost page cache) is not simulated: a store on disk tests its syncs separately.
//!
//! The scripted scenarios check hand-written expectations, not a model, so they hold
//! [`MemStorage`] itself to the rules; the random workload then uses `MemStorage` as the model.
//! The suite never unwraps a store's result: an error from a write, a read, the harness, or a
//! panic in the store, is a failure of the rule being checked, like a wrong answer.
//!
//! # Usage
//!
//! Implement [`StoreHarness`] for your store and call [`check_storage`] (it panics with the
//! broken rule) or [`run_storage_suite`] (it returns it) from a test. Against
//! [`SharedMemStorage`]:
//!
//! ```
//! use raft_core::testing::storage::{check_storage, BoxError, StoreHarness};
//! use raft_core::{Configuration, SharedMemStorage};
//!
//! /// Opens stores for the suite. A store on disk would create a new directory in `create`,
//! /// and in `reopen` drop the store and open the same directory again. (This one is provided
//! /// as `MemHarness`.)
//! struct MyHarness;
//!
//! impl StoreHarness for MyHarness {
//!     type Store = SharedMemStorage;
//!
//!     fn create(&mut self, bootstrap: &Configuration) -> Result<SharedMemStorage, BoxError> {
//!         Ok(SharedMemStorage::new(bootstrap.clone()))
//!     }
//!
//!     fn reopen(&mut self, store: SharedMemStorage) -> Result<SharedMemStorage, BoxError> {
//!         // What memory keeps across a "crash": the state, on a new handle.
//!         Ok(SharedMemStorage::from_storage(store.to_storage()))
//!     }
//! }
//!
//! let report = check_storage(MyHarness);
//! assert_eq!(report.rules.len(), raft_core::testing::storage::Rule::ALL.len());
//! ```
//!
//! `raft-wal`'s tests run it against the write-ahead log (`tests/storage_conformance.rs`): a
//! temporary directory per store, `Wal::open` on the same directory to reopen.
//!
//! # The rules
//!
//! In the order they are checked ([`Rule::ALL`]); the name is what [`Rule`]'s `Display`
//! starts with.
//!
//! | rule | what it says |
//! |---|---|
//! | `bootstrap-state` | A new store holds an empty log, a zero hard state and an empty snapshot with the bootstrap configuration, also after a reopen. |
//! | `append-read-back` | Appended entries read back exactly: first and last index, every entry's bytes, every term. |
//! | `entries-max-bytes` | `entries(low, high, max_bytes)` returns the longest prefix within `max_bytes`, and at least one entry of a non-empty range. |
//! | `entries-size-bytes` | `entries_size_bytes` is the size of the range up to `max_bytes`, and more than `max_bytes` when the range is larger. |
//! | `conflicting-suffix` | An entry at an index already stored replaces that entry and every entry after it. |
//! | `hard-state` | The newest hard state written is the one read back, also after a reopen. |
//! | `compaction` | A snapshot of entries the log holds drops the entries it covers and keeps the ones after it. |
//! | `snapshot-discards-disagreeing-log` | A snapshot whose last entry the log does not hold (another term there, or beyond the log) discards the whole log. |
//! | `stale-snapshot-ignored` | A snapshot older than the stored one changes nothing. |
//! | `snapshot-commit` | The commit index read back is at least the snapshot's index, whatever the hard state written says. |
//! | `out-of-range-reads` | Reads below the first index fail with `Compacted`, beyond the last with `Unavailable`; the term at `first_index - 1` is the snapshot's. |
//! | `configuration-newest-entry` | `initial_state` reports the newest configuration entry's configuration, committed or not, and every configuration entry after the snapshot. |
//! | `configuration-fallback` | When the suffix holding the newest configuration entries is replaced, `initial_state` falls back to the newest one left, else the snapshot's. |
//! | `configuration-from-snapshot` | With no configuration entry after the snapshot, `initial_state` reports the snapshot's configuration; compacted configuration entries are no longer listed. |
//! | `configuration-across-reopen` | The configuration and configuration entries `initial_state` reports are the same after a reopen. |
//! | `request-order` | Within a request the snapshot is applied first, then the entries, then the hard state. |
//! | `batch-order` | The requests of one write are applied in the order given. |
//! | `reader-visibility` | A reader obtained before a write sees it once `write` returned, also on another thread. |
//! | `durable-across-crash` | After any completed write, a store dropped without a close and reopened reads back exactly what it held. |
//! | `random-workload` | Under seeded random batches of appends, overwrites, snapshots and hard states, with reopens, every read agrees with `MemStorage`. |
//!
//! A difference found right after a reopen names the rule of the part that changed:
//! `durable-across-crash` for the log and snapshot, `hard-state`, or
//! `configuration-across-reopen`.
//!
//! # Seeds
//!
//! The random workload runs [`DEFAULT_SEEDS`] unless [`SEEDS_VARIABLE`]
//! (`RAFT_STORAGE_SUITE_SEEDS`) names others: seeds separated by commas (`7,42`) or a
//! half-open range (`100..200`). A failure of the workload starts with its seed and the
//! setting that replays it.
//!
//! [`MemStorage`]: crate::MemStorage
//! [`SharedMemStorage`]: crate::SharedMemStorage

mod fixtures;
mod scenarios;
mod session;
mod workload;

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::log_store::LogStore;
use crate::types::Configuration;

/// The error a harness returns when it cannot create or reopen a store.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How the suite gets stores of the implementation under test.
pub trait StoreHarness {
    /// The store under test.
    type Store: LogStore;

    /// A new, empty store whose bootstrap configuration is `bootstrap` (its own storage: a new
    /// directory, say). Called once per scenario and once per seed.
    fn create(&mut self, bootstrap: &Configuration) -> Result<Self::Store, BoxError>;

    /// A crash and a restart: drop `store` without any orderly close (no flush, no sync beyond
    /// what its writes did) and open the same storage again.
    fn reopen(&mut self, store: Self::Store) -> Result<Self::Store, BoxError>;
}

/// The harness of [`SharedMemStorage`](crate::SharedMemStorage): a new store per `create`; a
/// reopen keeps the state on a new handle, so nothing the crashed incarnation held on to
/// reaches the new one (memory that never loses a completed write). The simulator runs its
/// peers' memory storage through it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemHarness;

impl StoreHarness for MemHarness {
    type Store = crate::SharedMemStorage;

    fn create(&mut self, bootstrap: &Configuration) -> Result<crate::SharedMemStorage, BoxError> {
        Ok(crate::SharedMemStorage::new(bootstrap.clone()))
    }

    fn reopen(
        &mut self,
        store: crate::SharedMemStorage,
    ) -> Result<crate::SharedMemStorage, BoxError> {
        Ok(crate::SharedMemStorage::from_storage(store.to_storage()))
    }
}

/// A harness lent to the suite, so that the caller can look at it afterwards.
impl<H: StoreHarness> StoreHarness for &mut H {
    type Store = H::Store;

    fn create(&mut self, bootstrap: &Configuration) -> Result<H::Store, BoxError> {
        (**self).create(bootstrap)
    }

    fn reopen(&mut self, store: H::Store) -> Result<H::Store, BoxError> {
        (**self).reopen(store)
    }
}

/// A rule of the [`LogStore`] contract that the suite checks, each with a scenario of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// `bootstrap-state`
    BootstrapState,
    /// `append-read-back`
    AppendReadBack,
    /// `entries-max-bytes`
    EntriesMaxBytes,
    /// `entries-size-bytes`
    EntriesSizeBytes,
    /// `conflicting-suffix`
    ConflictingSuffix,
    /// `hard-state`
    HardState,
    /// `compaction`
    Compaction,
    /// `snapshot-discards-disagreeing-log`
    SnapshotDiscardsDisagreeingLog,
    /// `stale-snapshot-ignored`
    StaleSnapshotIgnored,
    /// `snapshot-commit`
    SnapshotCommit,
    /// `out-of-range-reads`
    OutOfRangeReads,
    /// `configuration-newest-entry`
    ConfigurationNewestEntry,
    /// `configuration-fallback`
    ConfigurationFallback,
    /// `configuration-from-snapshot`
    ConfigurationFromSnapshot,
    /// `configuration-across-reopen`
    ConfigurationAcrossReopen,
    /// `request-order`
    RequestOrder,
    /// `batch-order`
    BatchOrder,
    /// `reader-visibility`
    ReaderVisibility,
    /// `durable-across-crash`
    DurableAcrossCrash,
    /// `random-workload`
    RandomWorkload,
}

impl Rule {
    /// Every rule, in the order the suite checks them: simple reads before what builds on them,
    /// so that the first failure names the rule closest to the bug.
    pub const ALL: [Rule; 20] = [
        Rule::BootstrapState,
        Rule::AppendReadBack,
        Rule::EntriesMaxBytes,
        Rule::EntriesSizeBytes,
        Rule::ConflictingSuffix,
        Rule::HardState,
        Rule::Compaction,
        Rule::SnapshotDiscardsDisagreeingLog,
        Rule::StaleSnapshotIgnored,
        Rule::SnapshotCommit,
        Rule::OutOfRangeReads,
        Rule::ConfigurationNewestEntry,
        Rule::ConfigurationFallback,
        Rule::ConfigurationFromSnapshot,
        Rule::ConfigurationAcrossReopen,
        Rule::RequestOrder,
        Rule::BatchOrder,
        Rule::ReaderVisibility,
        Rule::DurableAcrossCrash,
        Rule::RandomWorkload,
    ];

    /// The rule's stable kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::BootstrapState => "bootstrap-state",
            Rule::AppendReadBack => "append-read-back",
            Rule::EntriesMaxBytes => "entries-max-bytes",
            Rule::EntriesSizeBytes => "entries-size-bytes",
            Rule::ConflictingSuffix => "conflicting-suffix",
            Rule::HardState => "hard-state",
            Rule::Compaction => "compaction",
            Rule::OutOfRangeReads => "out-of-range-reads",
            Rule::SnapshotDiscardsDisagreeingLog => "snapshot-discards-disagreeing-log",
            Rule::StaleSnapshotIgnored => "stale-snapshot-ignored",
            Rule::SnapshotCommit => "snapshot-commit",
            Rule::ConfigurationNewestEntry => "configuration-newest-entry",
            Rule::ConfigurationFallback => "configuration-fallback",
            Rule::ConfigurationFromSnapshot => "configuration-from-snapshot",
            Rule::ConfigurationAcrossReopen => "configuration-across-reopen",
            Rule::RequestOrder => "request-order",
            Rule::BatchOrder => "batch-order",
            Rule::ReaderVisibility => "reader-visibility",
            Rule::DurableAcrossCrash => "durable-across-crash",
            Rule::RandomWorkload => "random-workload",
        }
    }

    /// The rule in one sentence.
    pub fn statement(self) -> &'static str {
        match self {
            Rule::BootstrapState => {
                "a new store holds an empty log, a zero hard state and an empty snapshot with \
                 the bootstrap configuration, also after a reopen"
            }
            Rule::AppendReadBack => {
                "appended entries read back exactly: first and last index, every entry's bytes, \
                 every term"
            }
            Rule::EntriesMaxBytes => {
                "entries(low, high, max_bytes) returns the longest prefix within max_bytes, and \
                 at least one entry of a non-empty range"
            }
            Rule::EntriesSizeBytes => {
                "entries_size_bytes is the size of the range up to max_bytes, and more than \
                 max_bytes when the range is larger"
            }
            Rule::ConflictingSuffix => {
                "an entry at an index already stored replaces that entry and every entry after it"
            }
            Rule::HardState => {
                "the newest hard state written is the one read back, also after a reopen"
            }
            Rule::Compaction => {
                "a snapshot of entries the log holds drops the entries it covers and keeps the \
                 ones after it"
            }
            Rule::OutOfRangeReads => {
                "reads below the first index fail with Compacted, beyond the last with \
                 Unavailable; the term at first_index - 1 is the snapshot's"
            }
            Rule::SnapshotDiscardsDisagreeingLog => {
                "a snapshot whose last entry the log does not hold (another term there, or \
                 beyond the log) discards the whole log"
            }
            Rule::StaleSnapshotIgnored => "a snapshot older than the stored one changes nothing",
            Rule::SnapshotCommit => {
                "the commit index read back is at least the snapshot's index, whatever the hard \
                 state written says"
            }
            Rule::ConfigurationNewestEntry => {
                "initial_state reports the newest configuration entry's configuration, committed \
                 or not, and every configuration entry after the snapshot"
            }
            Rule::ConfigurationFallback => {
                "when the suffix holding the newest configuration entries is replaced, \
                 initial_state falls back to the newest one left, else the snapshot's"
            }
            Rule::ConfigurationFromSnapshot => {
                "with no configuration entry after the snapshot, initial_state reports the \
                 snapshot's configuration; compacted configuration entries are no longer listed"
            }
            Rule::ConfigurationAcrossReopen => {
                "the configuration and configuration entries initial_state reports are the same \
                 after a reopen"
            }
            Rule::RequestOrder => {
                "within a request the snapshot is applied first, then the entries, then the hard \
                 state"
            }
            Rule::BatchOrder => "the requests of one write are applied in the order given",
            Rule::ReaderVisibility => {
                "a reader obtained before a write sees it once write returned, also on another \
                 thread"
            }
            Rule::DurableAcrossCrash => {
                "after any completed write, a store dropped without a close and reopened reads \
                 back exactly what it held"
            }
            Rule::RandomWorkload => {
                "under seeded random batches of appends, overwrites, snapshots and hard states, \
                 with reopens, every read agrees with MemStorage"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.statement())
    }
}

/// A store broke a rule: which, and what happened.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("storage conformance: rule {rule}\n  broken: {detail}")]
pub struct ConformanceFailure {
    /// The rule broken.
    pub rule: Rule,
    /// What the store did instead, and the writes and reopens that led there (with the seed,
    /// for the random workload).
    pub detail: String,
}

/// What one rule's check cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleReport {
    /// The rule.
    pub rule: Rule,
    /// Batches written.
    pub writes: u64,
    /// Reopens.
    pub reopens: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// What a passing run checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteReport {
    /// One report per rule, in the order checked.
    pub rules: Vec<RuleReport>,
    /// The seeds of the random workload.
    pub seeds: Vec<u64>,
    /// Time taken by the whole suite.
    pub elapsed: Duration,
}

impl SuiteReport {
    /// Batches written, over every rule.
    pub fn writes(&self) -> u64 {
        self.rules.iter().map(|rule| rule.writes).sum()
    }

    /// Reopens, over every rule.
    pub fn reopens(&self) -> u64 {
        self.rules.iter().map(|rule| rule.reopens).sum()
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "storage conformance: {} rules held in {:.1?} ({} writes, {} reopens; seeds {:?})",
            self.rules.len(),
            self.elapsed,
            self.writes(),
            self.reopens(),
            self.seeds
        )?;
        for rule in &self.rules {
            write!(
                f,
                "\n  {:<34} {:>9.1?}  {:>5} writes {:>4} reopens",
                rule.rule.name(),
                rule.elapsed,
                rule.writes,
                rule.reopens
            )?;
        }
        Ok(())
    }
}

/// The environment variable that replaces the random workload's seeds.
pub const SEEDS_VARIABLE: &str = "RAFT_STORAGE_SUITE_SEEDS";

/// The random workload's seeds when [`SEEDS_VARIABLE`] is not set.
pub const DEFAULT_SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Steps (a batch written or a reopen) per seed, by default.
pub const STEPS_PER_SEED_DEFAULT: u32 = 160;

/// How much of the random workload to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteOptions {
    /// One run of the workload per seed.
    pub seeds: Vec<u64>,
    /// Steps of each run.
    pub steps_per_seed: u32,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            seeds: DEFAULT_SEEDS.to_vec(),
            steps_per_seed: STEPS_PER_SEED_DEFAULT,
        }
    }
}

/// [`SEEDS_VARIABLE`] is set to something that is not a list or a range of seeds.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "{SEEDS_VARIABLE}={value:?} is not seeds separated by commas (7,42) nor a half-open range \
     (100..200)"
)]
pub struct InvalidSeeds {
    /// The variable's value (lossily decoded if it is not Unicode).
    pub value: String,
}

impl SuiteOptions {
    /// The default options, with the seeds of [`SEEDS_VARIABLE`] if it is set.
    pub fn from_env() -> Result<SuiteOptions, InvalidSeeds> {
        SuiteOptions::default().with_env_seeds()
    }

    /// These options, with the seeds of [`SEEDS_VARIABLE`] instead of their own if it is set
    /// (so that a replay runs the seed asked for whatever a test chose by default).
    pub fn with_env_seeds(mut self) -> Result<SuiteOptions, InvalidSeeds> {
        if let Some(value) = std::env::var_os(SEEDS_VARIABLE) {
            let value = value.to_string_lossy();
            self.seeds = parse_seeds(&value).ok_or_else(|| InvalidSeeds {
                value: value.into_owned(),
            })?;
        }
        Ok(self)
    }
}

/// `a,b,c` or `low..high`, not empty.
fn parse_seeds(value: &str) -> Option<Vec<u64>> {
    let value = value.trim();
    let seeds: Vec<u64> = if let Some((low, high)) = value.split_once("..") {
        let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
        (low..high).collect()
    } else {
        value
            .split(',')
            .map(|seed| seed.trim().parse().ok())
            .collect::<Option<_>>()?
    };
    (!seeds.is_empty()).then_some(seeds)
}

/// Counts of what a rule's check did.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    writes: u64,
    reopens: u64,
}

/// Runs every rule against stores from `harness`, with the seeds of [`SuiteOptions::from_env`];
/// returns the first rule broken.
///
/// # Panics
///
/// If [`SEEDS_VARIABLE`] is set to something that is not seeds: a mistyped replay should stop
/// the test, not quietly run other seeds. [`run_storage_suite_with`] never panics.
pub fn run_storage_suite<H: StoreHarness>(harness: H) -> Result<SuiteReport, ConformanceFailure> {
    let options = match SuiteOptions::from_env() {
        Ok(options) => options,
        Err(error) => panic!("{error}"),
    };
    run_storage_suite_with(harness, &options)
}

/// Runs every rule against stores from `harness`, with the random workload of `options`;
/// returns the first rule broken. A panic in the store (or the harness) is caught and reported
/// as a failure of the rule being checked.
pub fn run_storage_suite_with<H: StoreHarness>(
    mut harness: H,
    options: &SuiteOptions,
) -> Result<SuiteReport, ConformanceFailure> {
    let started = Instant::now();
    let mut rules = Vec::with_capacity(Rule::ALL.len());
    for rule in Rule::ALL {
        let rule_started = Instant::now();
        let mut tally = Tally::default();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            check_rule(rule, &mut harness, options, &mut tally)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => return Err(failure),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string());
                return Err(ConformanceFailure {
                    rule,
                    detail: format!("the store or its harness panicked: {message}"),
                });
            }
        }
        rules.push(RuleReport {
            rule,
            writes: tally.writes,
            reopens: tally.reopens,
            elapsed: rule_started.elapsed(),
        });
    }
    Ok(SuiteReport {
        rules,
        seeds: options.seeds.clone(),
        elapsed: started.elapsed(),
    })
}

/// Runs every rule against stores from `harness` ([`run_storage_suite`]) and returns what was
/// checked.
///
/// # Panics
///
/// With the broken rule and what happened, if the store breaks one; or if [`SEEDS_VARIABLE`]
/// is malformed.
pub fn check_storage<H: StoreHarness>(harness: H) -> SuiteReport {
    match run_storage_suite(harness) {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    }
}

/// Runs every rule against stores from `harness` with the random workload of `options`
/// ([`run_storage_suite_with`]) and returns what was checked.
///
/// # Panics
///
/// With the broken rule and what happened, if the store breaks one.
pub fn check_storage_with<H: StoreHarness>(harness: H, options: &SuiteOptions) -> SuiteReport {
    match run_storage_suite_with(harness, options) {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    }
}

/// Runs the scenario of one rule.
fn check_rule<H: StoreHarness>(
    rule: Rule,
    harness: &mut H,
    options: &SuiteOptions,
    tally: &mut Tally,
) -> Result<(), ConformanceFailure> {
    match rule {
        Rule::BootstrapState => scenarios::bootstrap_state(harness, tally),
        Rule::AppendReadBack => scenarios::append_read_back(harness, tally),
        Rule::EntriesMaxBytes => scenarios::entries_max_bytes(harness, tally),
        Rule::EntriesSizeBytes => scenarios::entries_size_bytes(harness, tally),
        Rule::ConflictingSuffix => scenarios::conflicting_suffix(harness, tally),
        Rule::HardState => scenarios::hard_state(harness, tally),
        Rule::Compaction => scenarios::compaction(harness, tally),
        Rule::OutOfRangeReads => scenarios::out_of_range_reads(harness, tally),
        Rule::SnapshotDiscardsDisagreeingLog => {
            scenarios::snapshot_discards_disagreeing_log(harness, tally)
        }
        Rule::StaleSnapshotIgnored => scenarios::stale_snapshot_ignored(harness, tally),
        Rule::SnapshotCommit => scenarios::snapshot_commit(harness, tally),
        Rule::ConfigurationNewestEntry => scenarios::configuration_newest_entry(harness, tally),
        Rule::ConfigurationFallback => scenarios::configuration_fallback(harness, tally),
        Rule::ConfigurationFromSnapshot => scenarios::configuration_from_snapshot(harness, tally),
        Rule::ConfigurationAcrossReopen => scenarios::configuration_across_reopen(harness, tally),
        Rule::RequestOrder => scenarios::request_order(harness, tally),
        Rule::BatchOrder => scenarios::batch_order(harness, tally),
        Rule::ReaderVisibility => scenarios::reader_visibility(harness, tally),
        Rule::DurableAcrossCrash => scenarios::durable_across_crash(harness, tally),
        Rule::RandomWorkload => workload::run(harness, tally, options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_a_list_or_a_range_and_nothing_else() {
        assert_eq!(parse_seeds("7"), Some(vec![7]));
        assert_eq!(parse_seeds(" 7, 42 "), Some(vec![7, 42]));
        assert_eq!(parse_seeds("3..6"), Some(vec![3, 4, 5]));
        assert_eq!(parse_seeds("6..6"), None, "an empty range runs nothing");
        assert_eq!(parse_seeds(""), None);
        assert_eq!(parse_seeds("7,x"), None);
        assert_eq!(parse_seeds("1..two"), None);
    }

    #[test]
    fn rule_names_are_unique_kebab_case() {
        let mut names: Vec<&str> = Rule::ALL.iter().map(|rule| rule.name()).collect();
        for name in &names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name} is kebab-case"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Rule::ALL.len(), "every rule has its own name");
        assert!(Rule::HardState
            .to_string()
            .starts_with("hard-state: the newest hard state"));
    }
}
