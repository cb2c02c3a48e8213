//! A user's state machine under the simulator with one call (`raft_sim::check_state_machine`):
//! a correct key-value machine passes the randomized run over the default seeds, on memory and
//! on the write-ahead log; machines with a planted bug fail, naming the seed and the check, and
//! the same seed reproduces the failure.
//!
//! ```text
//!  Kv<CORRECT>                  ─► passes: fingerprints, round trips and restores all checked
//!  Kv<AUDIT_IN_HASH_ORDER>      ─► machine-deterministic  (a hash map's iteration order)
//!  Kv<COUNTS_APPLIES_GLOBALLY>  ─► machine-deterministic  (state outside the log)
//!  Kv<SNAPSHOT_FORGETS_KEY_0>   ─► machine-replicas-agree (a restored replica diverges later)
//!  Kv<…, fingerprint of all>    ─► machine-snapshot-round-trip (caught when the snapshot is taken)
//!  a store that forgets its last write on reopen ─► storage-recovers-durable-state
//! ```

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};

use bytes::Bytes;
use raft_core::testing::storage::{BoxError, StoreHarness};
use raft_core::{Configuration, Index, SharedMemStorage, Storage};
use raft_sim::rand::Rng;
use raft_sim::{
    check_state_machine, run_state_machine, try_check_state_machine, CheckFailure, CheckOptions,
    SimRng, StateMachine, WalHarness, WAL_CACHE_BYTES_MAX, WAL_SEGMENT_BYTES_MAX,
};

const CORRECT: u8 = 0;
/// Keeps an audit value folded over the map in a `HashMap`'s iteration order.
const AUDIT_IN_HASH_ORDER: u8 = 1;
/// Mixes a count of the applies this thread made, by any machine, into the state.
const COUNTS_APPLIES_GLOBALLY: u8 = 2;
/// Leaves key 0 out of snapshots; the fingerprint is the default (a hash of the snapshot).
const SNAPSHOT_FORGETS_KEY_0: u8 = 3;
/// Leaves key 0 out of snapshots; the fingerprint covers the whole map.
const SNAPSHOT_FORGETS_KEY_0_FINGERPRINTED: u8 = 4;

thread_local! {
    static APPLIES: Cell<u64> = const { Cell::new(0) };
}

/// A map from small keys to numbers. Commands are 10 bytes: an operation (0 set, 1 add,
/// 2 delete), a key and a little-endian value. `BUG` plants one of the bugs above.
#[derive(Default)]
struct Kv<const BUG: u8> {
    values: BTreeMap<u8, u64>,
    /// A value derived from the whole map after every command (the planted bugs get it wrong).
    audit: u64,
}

impl<const BUG: u8> Kv<BUG> {
    fn encode(&self, skip_key_0: bool) -> Bytes {
        let mut out = self.audit.to_le_bytes().to_vec();
        for (&key, value) in &self.values {
            if !(skip_key_0 && key == 0) {
                out.push(key);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        Bytes::from(out)
    }

    fn audit_of(&self) -> u64 {
        match BUG {
            AUDIT_IN_HASH_ORDER => {
                let copy: HashMap<u8, u64> = self.values.clone().into_iter().collect();
                copy.iter().fold(0u64, |audit, (&key, &value)| {
                    audit.wrapping_mul(31).wrapping_add(u64::from(key) ^ value)
                })
            }
            _ => self.values.iter().fold(0u64, |audit, (&key, &value)| {
                audit.wrapping_mul(31).wrapping_add(u64::from(key) ^ value)
            }),
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

impl<const BUG: u8> StateMachine for Kv<BUG> {
    fn apply(&mut self, _index: Index, command: &[u8]) {
        let [operation, key, value @ ..] = command else {
            panic!("a command of {} bytes", command.len());
        };
        let value = u64::from_le_bytes(value.try_into().expect("an 8-byte value"));
        match operation {
            0 => {
                self.values.insert(*key, value);
            }
            1 => {
                let current = self.values.entry(*key).or_default();
                *current = current.wrapping_add(value);
            }
            _ => {
                self.values.remove(key);
            }
        }
        self.audit = self.audit_of();
        if BUG == COUNTS_APPLIES_GLOBALLY {
            self.audit ^= APPLIES.with(|applies| {
                applies.set(applies.get() + 1);
                applies.get()
            });
        }
    }

    fn snapshot(&self) -> Bytes {
        let forgets = matches!(
            BUG,
            SNAPSHOT_FORGETS_KEY_0 | SNAPSHOT_FORGETS_KEY_0_FINGERPRINTED
        );
        self.encode(forgets)
    }

    fn restore(&mut self, _index: Index, snapshot: &[u8]) -> Result<(), String> {
        let (audit, pairs) = snapshot
            .split_first_chunk::<8>()
            .ok_or("a snapshot shorter than its audit value")?;
        if pairs.len() % 9 != 0 {
            return Err(format!("{} bytes of pairs", pairs.len()));
        }
        self.audit = u64::from_le_bytes(*audit);
        self.values = pairs
            .chunks(9)
            .map(|pair| {
                let value = u64::from_le_bytes(pair[1..].try_into().expect("8 bytes"));
                (pair[0], value)
            })
            .collect();
        Ok(())
    }

    fn fingerprint(&self) -> u64 {
        match BUG {
            SNAPSHOT_FORGETS_KEY_0 => hash(&self.snapshot()),
            _ => hash(&self.encode(false)),
        }
    }

    fn random_command(rng: &mut SimRng) -> Bytes {
        let operation = match rng.gen_range(0..10) {
            0..=4 => 0,
            5..=8 => 1,
            _ => 2,
        };
        let mut command = vec![operation, rng.gen_range(0..8)];
        command.extend_from_slice(&rng.gen_range(0..1_000u64).to_le_bytes());
        Bytes::from(command)
    }
}

#[test]
fn a_correct_machine_passes_the_randomized_run_over_the_default_seeds() {
    let report = check_state_machine::<Kv<CORRECT>>(&CheckOptions::new(
        "a_correct_machine_passes_the_randomized_run_over_the_default_seeds",
    ));
    eprintln!("{report}");
    let machine = report.machine;
    assert!(
        report.counters.crashes > 0 && report.counters.partitions > 0,
        "{report}"
    );
    assert!(machine.commands_applied > 1_000, "{report}");
    assert!(
        machine.fingerprints_compared >= machine.commands_applied,
        "{report}"
    );
    assert!(machine.snapshots_round_tripped > 100, "{report}");
    assert!(machine.snapshots_restored > 100, "{report}");
}

#[test]
fn a_correct_machine_passes_on_the_write_ahead_log() {
    let options = CheckOptions::new("a_correct_machine_passes_on_the_write_ahead_log")
        .with_seeds(20)
        .with_storage(|| WalHarness::new(WAL_SEGMENT_BYTES_MAX, WAL_CACHE_BYTES_MAX));
    let report = check_state_machine::<Kv<CORRECT>>(&options);
    assert!(report.machine.snapshots_restored > 0, "{report}");
    assert!(report.counters.crashes > 0, "{report}");
}

/// Runs `M` over seeds 0 to 49, which must fail with `invariant`, naming the seed and how to
/// replay it; then runs the failing seed alone, which must fail again. Returns the failure and
/// the replay's report.
fn failure_and_replay<M: StateMachine + Default>(
    name: &str,
    invariant: &str,
) -> (CheckFailure, String) {
    // Not the environment's seeds: the check is that one of these fails.
    let options = CheckOptions::new(name).with_exact_seeds(0..50);
    let failure = match try_check_state_machine::<M>(&options) {
        Ok(report) => panic!("a machine with a planted bug passed: {report}"),
        Err(failure) => failure,
    };
    eprintln!("{failure}");
    assert_names_seed_and_replay(&failure, invariant);
    let seed = failure.seed;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_state_machine::<M>(seed, &options)));
    let replayed = match outcome {
        Ok(report) => panic!("seed {seed} passed on its replay: {report:?}"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    (failure, replayed)
}

fn assert_names_seed_and_replay(failure: &CheckFailure, invariant: &str) {
    assert_eq!(failure.invariant, invariant, "{failure}");
    let text = failure.to_string();
    assert!(
        text.contains(&format!("seed {}", failure.seed))
            && text.contains(&format!("RAFT_SIM_SEED={}", failure.seed)),
        "the failure names its seed and how to replay it: {text}"
    );
}

#[test]
fn an_audit_in_hash_map_order_fails_machine_deterministic() {
    let (_, replayed) = failure_and_replay::<Kv<AUDIT_IN_HASH_ORDER>>(
        "an_audit_in_hash_map_order_fails_machine_deterministic",
        "machine-deterministic",
    );
    // The bug itself is random (each map hashes with keys of its own), so the replay fails
    // the same check, not necessarily at the same event.
    assert!(
        replayed.starts_with("invariant violated: machine-deterministic"),
        "{replayed}"
    );
}

#[test]
fn state_outside_the_log_fails_machine_deterministic_and_the_seed_reproduces_it() {
    let (failure, replayed) = failure_and_replay::<Kv<COUNTS_APPLIES_GLOBALLY>>(
        "state_outside_the_log_fails_machine_deterministic_and_the_seed_reproduces_it",
        "machine-deterministic",
    );
    assert_eq!(failure.seed, 0, "every seed fails at its first command");
    // The counts differ between runs, the place does not.
    let place = |report: &str| report.lines().nth(2).map(str::to_string);
    assert_eq!(place(&replayed), place(&failure.report), "{replayed}");
}

#[test]
fn a_snapshot_that_forgets_a_key_fails_machine_replicas_agree_and_the_seed_reproduces_it() {
    let (failure, replayed) = failure_and_replay::<Kv<SNAPSHOT_FORGETS_KEY_0>>(
        "a_snapshot_that_forgets_a_key_fails_machine_replicas_agree_and_the_seed_reproduces_it",
        "machine-replicas-agree",
    );
    assert_eq!(replayed, failure.report, "the seed replays exactly");
}

#[test]
fn a_snapshot_that_forgets_a_key_the_fingerprint_covers_fails_the_round_trip() {
    let (failure, replayed) = failure_and_replay::<Kv<SNAPSHOT_FORGETS_KEY_0_FINGERPRINTED>>(
        "a_snapshot_that_forgets_a_key_the_fingerprint_covers_fails_the_round_trip",
        "machine-snapshot-round-trip",
    );
    assert_eq!(replayed, failure.report, "the seed replays exactly");
}

/// Memory stores that lose their newest entry on every reopen.
struct ForgetsNewestEntryOnReopen;

impl StoreHarness for ForgetsNewestEntryOnReopen {
    type Store = SharedMemStorage;

    fn create(&mut self, bootstrap: &Configuration) -> Result<SharedMemStorage, BoxError> {
        Ok(SharedMemStorage::new(bootstrap.clone()))
    }

    fn reopen(&mut self, store: SharedMemStorage) -> Result<SharedMemStorage, BoxError> {
        let mut kept = raft_core::MemStorage::new(store.snapshot()?.meta.configuration);
        let (first, last) = (store.first_index()?, store.last_index()?);
        let entries = if last > first {
            store.entries(first, last, u64::MAX)?
        } else {
            Vec::new()
        };
        let snapshot = store.snapshot()?;
        kept.persist(raft_core::PersistRequest {
            id: 0,
            snapshot: (snapshot.meta.last_included.index > Index(0)).then_some(snapshot),
            entries,
            hard_state: Some(store.initial_state()?.hard_state),
        });
        Ok(SharedMemStorage::from_storage(kept))
    }
}

#[test]
fn a_store_that_loses_a_write_on_reopen_fails_storage_recovers_durable_state() {
    let options = CheckOptions::new(
        "a_store_that_loses_a_write_on_reopen_fails_storage_recovers_durable_state",
    )
    .with_exact_seeds(0..50)
    .with_storage(|| ForgetsNewestEntryOnReopen);
    let failure = try_check_state_machine::<Kv<CORRECT>>(&options)
        .expect_err("a store that loses a write must fail");
    assert_names_seed_and_replay(&failure, "storage-recovers-durable-state");
}

#[test]
#[should_panic(expected = "replay it by running it again with RAFT_SIM_SEED=0 in the environment")]
fn check_state_machine_panics_with_the_replay() {
    check_state_machine::<Kv<COUNTS_APPLIES_GLOBALLY>>(
        &CheckOptions::new("check_state_machine_panics_with_the_replay").with_exact_seeds(0..3),
    );
}
