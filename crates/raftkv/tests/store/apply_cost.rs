//! The cost of revisions and history on the apply path, measured (ignored: run it in release
//! mode, alone, so that the figures mean something):
//!
//! ```text
//! cargo test --release -p raftkv --test store apply_cost -- --ignored --nocapture --test-threads 1
//! ```
//!
//! It prints the applies per second of a plain put overwriting existing keys (1M puts over
//! 10,000 keys, 100-byte values, commands encoded beforehand), the gets per second of the
//! current values, and the memory each history version costs: the growth of the resident set
//! over those 1M puts, which keep 1M versions of 100 bytes, divided by 1M. The same file
//! without the compaction figure runs against a build before revisions for the comparison.
//!
//! `server_workload_*` apply what a server's store applies under the write benchmark: puts of
//! 256-byte values to keys picked at random among 100,000 or 1,000,000 that exist (named as
//! raftkv-bench names them), with the `Compact` the leader's retention proposes (to 100,000
//! revisions back) every 12,000 puts, and print the nanoseconds per apply: puts and
//! compactions together, and each alone.
//!
//! ```text
//! cargo test --release -p raftkv --test store apply_cost::server -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `state_hash_cost` prints what a consistency check costs each replica on a state of 100,000
//! keys of 256 bytes with history: the image taken on the apply path, and the hash taken off
//! it, beside a snapshot's encoding of the same state.
//!
//! ```text
//! cargo test --release -p raftkv --test store apply_cost::state_hash_cost -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use super::*;

const KEYS: usize = 10_000;
const PUTS: usize = 1_000_000;
const VALUE_BYTES: usize = 100;

fn key(at: usize) -> String {
    format!("bench/key/{:08}", at % KEYS)
}

/// Resident set size in bytes, from /proc (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("a resident page count");
    pages * 4096
}

fn put_commands(value_seed: u8) -> Vec<Bytes> {
    (0..PUTS)
        .map(|at| {
            let mut value = vec![value_seed; VALUE_BYTES];
            value[..8].copy_from_slice(&(at as u64).to_le_bytes());
            encode(
                None,
                Operation::Put {
                    key: key(at),
                    value: Bytes::from(value),
                    lease: 0,
                },
            )
        })
        .collect()
}

/// A machine holding every key once, at index `KEYS`.
fn populated() -> StateMachine {
    let mut machine = StateMachine::new(SESSIONS_MAX);
    for at in 0..KEYS {
        let put = encode(None, put_owned(key(at), vec![0; VALUE_BYTES]));
        machine.apply(at as u64 + 1, &put);
    }
    machine
}

fn put_owned(key: String, value: Vec<u8>) -> Operation {
    Operation::Put {
        key,
        value: Bytes::from(value),
        lease: 0,
    }
}

#[test]
#[ignore = "a measurement: run in release mode (see the module documentation)"]
fn put_throughput_and_history_memory() {
    let commands = put_commands(7);
    let mut machine = populated();
    let resident_before = resident_bytes();
    let started = Instant::now();
    let mut index = KEYS as u64;
    for command in &commands {
        index += 1;
        machine.apply(index, command);
    }
    let elapsed = started.elapsed();
    let resident_after = resident_bytes();
    let per_second = PUTS as f64 / elapsed.as_secs_f64();
    println!(
        "put (overwrite, {VALUE_BYTES}-byte values, {KEYS} keys): {PUTS} applies in {:.3} s = \
         {per_second:.0} applies/s",
        elapsed.as_secs_f64()
    );
    let grown = resident_after.saturating_sub(resident_before);
    println!(
        "resident set grew {grown} bytes over {PUTS} puts = {:.1} bytes per put (per history \
         version of a {VALUE_BYTES}-byte value)",
        grown as f64 / PUTS as f64
    );
    let started = Instant::now();
    let mut found = 0usize;
    for at in 0..PUTS {
        found += usize::from(machine.get(&key(at)).is_some());
    }
    let elapsed = started.elapsed();
    assert_eq!(found, PUTS);
    println!(
        "get (current value, key formatted per get): {:.0} gets/s",
        PUTS as f64 / elapsed.as_secs_f64()
    );
}

#[test]
#[ignore = "a measurement: run in release mode (see the module documentation)"]
fn put_throughput_with_compaction() {
    const RETAINED_REVISIONS: u64 = 10_000;
    let commands = put_commands(9);
    let mut machine = populated();
    let started = Instant::now();
    let mut index = KEYS as u64;
    for (at, command) in commands.iter().enumerate() {
        index += 1;
        machine.apply(index, command);
        if at % 1_000 == 999 {
            index += 1;
            let revision = machine.revision().saturating_sub(RETAINED_REVISIONS).max(1);
            machine.apply(index, &encode(None, Operation::Compact { revision }));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "put (overwrite, {VALUE_BYTES}-byte values, {KEYS} keys), compacting every 1,000 to \
         keep {RETAINED_REVISIONS} revisions: {:.0} applies/s, {} history versions held",
        PUTS as f64 / elapsed.as_secs_f64(),
        machine.history_versions()
    );
}

/// The server's default retention: the revisions a `Compact` keeps.
const SERVER_RETAINED_REVISIONS: u64 = 100_000;
/// Puts between two `Compact` entries: about what 500 ms of the write benchmark commits.
const SERVER_PUTS_PER_COMPACTION: usize = 12_000;
/// The write benchmark's value size.
const SERVER_VALUE_BYTES: usize = 256;

/// A machine applying the server's write workload over `keys` keys, fed consecutive indexes.
struct ServerWorkload {
    machine: StateMachine,
    index: u64,
    keys: usize,
    /// xorshift64 state: the same keys in the same order on every run and every build.
    random: u64,
}

impl ServerWorkload {
    /// Every key created (in key order, untimed).
    fn populated(keys: usize) -> ServerWorkload {
        let mut workload = ServerWorkload {
            machine: StateMachine::new(SESSIONS_MAX),
            index: 0,
            keys,
            random: 0x9E37_79B9_7F4A_7C15,
        };
        for at in 0..keys {
            let put = encode(
                None,
                put_owned(server_key(at, keys), vec![0; SERVER_VALUE_BYTES]),
            );
            workload.apply(&put);
        }
        workload
    }

    fn apply(&mut self, command: &[u8]) -> Outcome {
        self.index += 1;
        self.machine.apply(self.index, command)
    }

    fn random_key(&mut self) -> usize {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random % self.keys as u64) as usize
    }

    /// One compaction period: its puts encoded (untimed), applied, then the `Compact`; the
    /// time the puts took and the time the compaction took.
    fn period(&mut self) -> (Duration, Duration) {
        let puts: Vec<Bytes> = (0..SERVER_PUTS_PER_COMPACTION)
            .map(|at| {
                let mut value = vec![5; SERVER_VALUE_BYTES];
                value[..8].copy_from_slice(&(at as u64).to_le_bytes());
                let key = server_key(self.random_key(), self.keys);
                encode(None, put_owned(key, value))
            })
            .collect();
        let started = Instant::now();
        for put in &puts {
            assert_eq!(self.apply(put), Outcome::Put);
        }
        let puts_took = started.elapsed();
        let revision = self
            .machine
            .revision()
            .saturating_sub(SERVER_RETAINED_REVISIONS)
            .max(1);
        let compact = encode(None, Operation::Compact { revision });
        let started = Instant::now();
        let outcome = self.apply(&compact);
        let compaction_took = started.elapsed();
        assert!(matches!(outcome, Outcome::Compacted { .. }));
        (puts_took, compaction_took)
    }
}

/// Key `at` as the write benchmark names it among `keys`: `bench-` and the number, padded to
/// the width of the largest.
fn server_key(at: usize, keys: usize) -> String {
    let width = (keys - 1).to_string().len();
    format!("bench-{at:0width$}")
}

/// Runs the workload over `keys` keys: enough periods first for the retention to fill
/// (untimed), then `periods` measured ones.
fn measure_server_workload(keys: usize, periods: usize) {
    let mut workload = ServerWorkload::populated(keys);
    let warm_up = SERVER_RETAINED_REVISIONS as usize / SERVER_PUTS_PER_COMPACTION + 1;
    for _ in 0..warm_up {
        workload.period();
    }
    let (mut puts_took, mut compactions_took) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..periods {
        let (puts, compaction) = workload.period();
        puts_took += puts;
        compactions_took += compaction;
    }
    let puts = (periods * SERVER_PUTS_PER_COMPACTION) as f64;
    let nanos = |took: Duration| took.as_nanos() as f64;
    println!(
        "server workload, {keys} keys, {SERVER_VALUE_BYTES}-byte values, compacting every \
         {SERVER_PUTS_PER_COMPACTION} puts to keep {SERVER_RETAINED_REVISIONS} revisions: \
         {:.0} ns per put applied with its share of compaction (puts {:.0} ns each, \
         compactions {:.0} ns per put, {:.2} ms each); {} history versions held",
        nanos(puts_took + compactions_took) / puts,
        nanos(puts_took) / puts,
        nanos(compactions_took) / puts,
        nanos(compactions_took) / periods as f64 / 1e6,
        workload.machine.history_versions()
    );
    workload.machine.check_invariants();
}

#[test]
#[ignore = "a measurement: run in release mode (see the module documentation)"]
fn server_workload_100k_keys() {
    measure_server_workload(100_000, 50);
}

#[test]
#[ignore = "a measurement: run in release mode (see the module documentation)"]
fn server_workload_1m_keys() {
    measure_server_workload(1_000_000, 50);
}

#[test]
#[ignore = "a measurement: run in release mode (see the module documentation)"]
fn state_hash_cost() {
    let mut workload = ServerWorkload::populated(100_000);
    for _ in 0..4 {
        workload.period();
    }
    let machine = &workload.machine;
    let median = |mut took: Vec<Duration>| {
        took.sort();
        took[took.len() / 2]
    };
    let timed = |run: &dyn Fn()| {
        median(
            (0..5)
                .map(|_| {
                    let started = Instant::now();
                    run();
                    started.elapsed()
                })
                .collect(),
        )
    };
    let image = timed(&|| drop(std::hint::black_box(machine.snapshot_image())));
    let digest = timed(&|| {
        std::hint::black_box(machine.snapshot_image().digest());
    });
    let encode = timed(&|| drop(std::hint::black_box(machine.snapshot_image().encode())));
    let bytes = machine.snapshot().len();
    println!(
        "state of {} keys, {} history versions, {bytes} bytes encoded: image (apply path) \
         {image:?}, image + SHA-256 digest {digest:?}, image + encode {encode:?}",
        machine.keys(),
        machine.history_versions()
    );
}
