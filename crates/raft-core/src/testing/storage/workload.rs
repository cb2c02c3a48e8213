//! `random-workload`: per seed, a run of random batches a peer could write, with reopens at
//! random steps, every read compared with [`MemStorage`] as the model after every step.
//!
//! ```text
//!  seed ─► Xoshiro256++ ─► step: a batch of 1..=4 requests ─► model.persist (each) ─► store.write
//!                              or a reopen                 ─► harness.reopen
//!         after each step: the whole image, size-bounded windows and reads past both ends,
//!                          store against model
//! ```
//!
//! The requests are the ones a Raft peer makes: terms never go back, the commit index never
//! decreases nor passes the last entry, entries at or below it are never replaced, a snapshot
//! from a leader that disagrees with the log lies beyond the commit index, a compaction takes
//! a snapshot of entries the log holds, and a stale snapshot is strictly older than the stored
//! one.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::ready::PersistRequest;
use crate::storage::{MemStorage, Storage};
use crate::types::{Configuration, Entry, EntryKind, HardState, Index, NodeId, Term};

use super::fixtures::{configuration, configuration_entry, noop, normal, snapshot};
use super::session::{describe_entries, difference, outcome, read_image, Session};
use super::{ConformanceFailure, Rule, StoreHarness, SuiteOptions, Tally, SEEDS_VARIABLE};

/// A step is a reopen about once in this many.
const REOPEN_ONE_IN: u32 = 6;
/// Most requests in one batch.
const REQUESTS_PER_BATCH_MAX: usize = 4;
/// Most entries in one request.
const ENTRIES_PER_REQUEST_MAX: u64 = 6;
/// Size-bounded windows read after each step.
const WINDOWS_PER_CHECK: usize = 4;

/// Runs the workload once per seed of `options`.
pub(super) fn run<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
    options: &SuiteOptions,
) -> Result<(), ConformanceFailure> {
    for &seed in &options.seeds {
        run_seed(harness, tally, seed, options.steps_per_seed)?;
    }
    Ok(())
}

fn run_seed<H: StoreHarness>(
    harness: &mut H,
    tally: &mut Tally,
    seed: u64,
    steps: u32,
) -> Result<(), ConformanceFailure> {
    let mut generator = Generator::new(seed);
    // Reads draw from their own generator, so the requests of a seed stay the same whatever
    // the checks read.
    let mut probes = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x05EE_D0FC_4EC5);
    let bootstrap = generator.bootstrap.clone();
    let mut session = Session::create(harness, tally, Rule::RandomWorkload, &bootstrap)?;
    let replay = format!("seed {seed} (replay with {SEEDS_VARIABLE}={seed})");
    session.set_context(format!("{replay}, after the store was created"));
    compare(&session, &generator.model, &mut probes, false)?;
    for step in 1..=steps {
        let reopen = generator.rng.gen_ratio(1, REOPEN_ONE_IN);
        session.set_context(format!("{replay}, step {step} of {steps}"));
        if reopen {
            session.reopen_unchecked()?;
        } else {
            let count = if generator.rng.gen_ratio(1, 3) {
                generator.rng.gen_range(2..=REQUESTS_PER_BATCH_MAX)
            } else {
                1
            };
            let requests = (0..count).map(|_| generator.request()).collect();
            session.write(requests)?;
        }
        compare(&session, &generator.model, &mut probes, reopen)?;
    }
    session.set_context(format!("{replay}, the final reopen"));
    session.reopen_unchecked()?;
    compare(&session, &generator.model, &mut probes, true)
}

/// Makes requests valid for the state the model is in, and applies each to the model.
struct Generator {
    rng: Xoshiro256PlusPlus,
    model: MemStorage,
    bootstrap: Configuration,
    /// The newest term used in any request.
    term: u64,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let bootstrap = configuration(rng.gen_range(0..256));
        Generator {
            rng,
            model: MemStorage::new(bootstrap.clone()),
            bootstrap,
            term: 1,
        }
    }

    fn snapshot_index(&self) -> u64 {
        self.model.snapshot_meta().last_included.index.0
    }

    fn last_index(&self) -> u64 {
        self.snapshot_index() + self.model.stored_entries().count() as u64
    }

    fn commit(&self) -> u64 {
        self.model.hard_state().commit.0
    }

    /// The term of the stored entry at `index` (or of the snapshot's last one).
    fn term_at(&self, index: u64) -> u64 {
        let base = self.model.snapshot_meta().last_included;
        if index == base.index.0 {
            return base.term.0;
        }
        self.model
            .stored_entries()
            .find(|entry| entry.index() == Index(index))
            .map(|entry| entry.term().0)
            .expect("Generator::term_at: the index is stored")
    }

    /// The configuration in effect at `index`: the newest configuration entry at or before
    /// it, else the snapshot's.
    fn configuration_at(&self, index: u64) -> Configuration {
        self.model
            .stored_entries()
            .filter(|entry| entry.kind == EntryKind::Configuration && entry.index().0 <= index)
            .last()
            .and_then(|entry| Configuration::decode(&entry.data).ok())
            .unwrap_or_else(|| self.model.snapshot_meta().configuration.clone())
    }

    fn entry(&mut self, term: u64, index: u64) -> Entry {
        match self.rng.gen_range(0..16) {
            0 => noop(term, index),
            1 | 2 => configuration_entry(term, index, &configuration(self.rng.gen_range(0..256))),
            3 => normal(term, index, self.rng.gen_range(1000..=4000)),
            _ => normal(term, index, self.rng.gen_range(0..=200)),
        }
    }

    fn entries(&mut self, term: u64, first: u64) -> Vec<Entry> {
        let count = self.rng.gen_range(1..=ENTRIES_PER_REQUEST_MAX);
        (first..first + count)
            .map(|index| self.entry(term, index))
            .collect()
    }

    fn hard_state(&mut self, commit: u64) -> HardState {
        let vote = self
            .rng
            .gen_ratio(1, 2)
            .then(|| NodeId(self.rng.gen_range(1..=5)));
        HardState {
            term: Term(self.term),
            vote,
            commit: Index(commit),
        }
    }

    /// A request valid in the model's current state, applied to the model.
    fn request(&mut self) -> PersistRequest {
        let (snapshot_index, last, commit) =
            (self.snapshot_index(), self.last_index(), self.commit());
        assert!(
            snapshot_index <= commit && commit <= last,
            "Generator: snapshot {snapshot_index} <= commit {commit} <= last {last}"
        );
        let mut request = PersistRequest::default();
        match self.rng.gen_range(0..19) {
            // Entries of the current term after the last, sometimes with a commit.
            0..=7 => {
                request.entries = self.entries(self.term, last + 1);
                if self.rng.gen_ratio(1, 2) {
                    let new_last = last + request.entries.len() as u64;
                    let commit = self.rng.gen_range(commit..=new_last);
                    request.hard_state = Some(self.hard_state(commit));
                }
            }
            // A new leader's entries over the uncommitted suffix.
            8..=10 => {
                self.term += 1;
                let start = self.rng.gen_range(commit + 1..=last + 1);
                request.entries = self.entries(self.term, start);
            }
            // A new term or vote, and a commit.
            11..=12 => {
                if self.rng.gen_ratio(1, 2) {
                    self.term += 1;
                }
                let commit = self.rng.gen_range(commit..=last);
                request.hard_state = Some(self.hard_state(commit));
            }
            // The service compacts its log (needs an entry to compact).
            13..=15 if last > snapshot_index => {
                let index = self.rng.gen_range(snapshot_index + 1..=last);
                let term = self.term_at(index);
                let configuration = self.configuration_at(index);
                request.snapshot = Some(snapshot(term, index, &configuration, self.rng.gen()));
            }
            // A leader's snapshot that the log disagrees with, sometimes with entries after it.
            16..=17 => {
                self.term += 1;
                let index = if commit == last || self.rng.gen_ratio(1, 2) {
                    self.rng.gen_range(last + 1..=last + 4)
                } else {
                    self.rng.gen_range(commit + 1..=last)
                };
                let configuration = configuration(self.rng.gen_range(0..256));
                request.snapshot = Some(snapshot(self.term, index, &configuration, self.rng.gen()));
                if self.rng.gen_ratio(1, 2) {
                    request.entries = self.entries(self.term, index + 1);
                }
                if self.rng.gen_ratio(1, 2) {
                    request.hard_state = Some(self.hard_state(index));
                }
            }
            // A snapshot older than the stored one (needs one to be older than).
            18 if snapshot_index > 0 => {
                let index = self.rng.gen_range(0..snapshot_index);
                let term = self.rng.gen_range(0..=self.term);
                let configuration = configuration(self.rng.gen_range(0..256));
                request.snapshot = Some(snapshot(term, index, &configuration, self.rng.gen()));
            }
            // A compaction or a stale snapshot with nothing to act on: a hard state instead.
            _ => request.hard_state = Some(self.hard_state(commit)),
        }
        self.model.persist(request.clone());
        request
    }
}

/// Compares every read of the store with the model. Right after a reopen, a difference in
/// the whole image breaks the rule of the part that changed; any other difference breaks
/// `random-workload`.
fn compare<H: StoreHarness>(
    session: &Session<'_, H>,
    model: &MemStorage,
    probes: &mut Xoshiro256PlusPlus,
    after_reopen: bool,
) -> Result<(), ConformanceFailure> {
    let expected = read_image(model).map_err(|detail| {
        session.fail(format!("the model (MemStorage) failed a read: {detail}"))
    })?;
    let actual = session.image()?;
    if let Some((part, text)) = difference(&expected, &actual) {
        let (rule, when) = if after_reopen {
            (part.rule_across_reopen(), "after a reopen")
        } else {
            (Rule::RandomWorkload, "after a write")
        };
        return Err(session.fail_as(rule, format!("{when}, compared with MemStorage: {text}")));
    }
    let reader = session.reader();
    let (first, last) = (expected.first_index.0, expected.last_index.0);
    let mismatch = |what: String, read: String, model: String| {
        session.fail(format!(
            "{what}: the store read {read}, MemStorage (the model) {model}"
        ))
    };

    // Size-bounded windows of the log.
    for _ in 0..WINDOWS_PER_CHECK {
        if last < first {
            break;
        }
        let low = probes.gen_range(first..=last);
        let high = probes.gen_range(low + 1..=last + 1);
        let range = &expected.entries[(low - first) as usize..(high - first) as usize];
        let total: u64 = range.iter().map(Entry::size_bytes).sum();
        let max_bytes = match probes.gen_range(0..4) {
            0 => 0,
            1 => u64::MAX,
            _ => probes.gen_range(0..=total + total / 4),
        };
        let (low, high) = (Index(low), Index(high));
        let read = reader.entries(low, high, max_bytes);
        let wanted = model.entries(low, high, max_bytes);
        if read != wanted {
            let show = |result: &Result<Vec<Entry>, _>| match result {
                Ok(entries) => describe_entries(entries),
                Err(error) => format!("{error:?}"),
            };
            return Err(mismatch(
                format!("entries({low}, {high}, {max_bytes})"),
                show(&read),
                show(&wanted),
            ));
        }
        let size = reader.entries_size_bytes(low, high, max_bytes);
        let right = match size {
            Ok(bytes) if total <= max_bytes => bytes == total,
            Ok(bytes) => bytes > max_bytes,
            Err(_) => false,
        };
        if !right {
            return Err(mismatch(
                format!("entries_size_bytes({low}, {high}, {max_bytes})"),
                format!("{size:?}"),
                format!("a range of {total} bytes"),
            ));
        }
    }

    // Reads at and past both ends: the same outcome as the model's (errors by variant).
    let base = Index(first - 1);
    let mut terms = vec![base, Index(last + 1), Index(last + 3)];
    terms.extend(base.0.checked_sub(1).map(Index));
    for index in terms {
        let (read, wanted) = (reader.term(index), model.term(index));
        let same = match (&read, &wanted) {
            (Ok(read), Ok(wanted)) => read == wanted,
            _ => outcome(&read) == outcome(&wanted),
        };
        if !same {
            return Err(mismatch(
                format!("term({index})"),
                format!("{read:?}"),
                format!("{wanted:?}"),
            ));
        }
    }
    let mut ranges = vec![
        (Index(last + 1), Index(last + 2)),
        (Index(first), Index(last + 2)),
    ];
    ranges.push((base, base.next()));
    ranges.extend(
        base.0
            .checked_sub(1)
            .map(|low| (Index(low), Index(low + 1))),
    );
    for (low, high) in ranges {
        let (read, wanted) = (
            reader.entries(low, high, u64::MAX),
            model.entries(low, high, u64::MAX),
        );
        if outcome(&read) != outcome(&wanted) || (wanted.is_ok() && read != wanted) {
            return Err(mismatch(
                format!("entries({low}, {high}, unlimited)"),
                format!("{read:?}"),
                format!("{wanted:?}"),
            ));
        }
    }
    Ok(())
}
