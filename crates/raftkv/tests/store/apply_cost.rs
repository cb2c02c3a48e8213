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

use std::time::Instant;

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
