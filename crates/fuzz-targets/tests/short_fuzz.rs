//! A short fuzzing run of every target on stable Rust, as part of `cargo test`: its seeds, the
//! committed corpus (`fuzz/corpus/<target>/`), every crash input found so far
//! (`fuzz/regressions/<target>/`), then seeded random and mutated inputs (bit flips, byte
//! values, truncations, insertions, splices, length fields and varints set to edge values).
//! Each allocation a decoder makes is checked against the input's size, so a length taken on
//! trust fails here even when it is not large enough to fail the machine.
//!
//! `FUZZ_SEED=N` replays a run (every failure prints it), `FUZZ_ITERATIONS=N` runs longer
//! (default 5,000 generated inputs a target). Long runs use libFuzzer: `fuzz/run.sh`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fuzz_targets::{Target, PART_SEPARATOR};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Generated inputs per target unless `FUZZ_ITERATIONS` says otherwise.
const ITERATIONS_DEFAULT: u64 = 5_000;
/// Longest generated input.
const INPUT_BYTES_MAX: usize = 4096;
/// The largest single allocation a bounded target may make for an input of `length` bytes:
/// a constant for fixed buffers, and a multiple of the input for values decoded from it.
fn allocation_bytes_max(length: usize) -> usize {
    64 * 1024 + 64 * length
}

thread_local! {
    /// The largest allocation since tracking started on this thread, or `None` when not
    /// tracking. A `const` Cell of a Copy type: the allocator can use it without allocating.
    static LARGEST_ALLOCATION: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The system allocator, noting the largest allocation of a tracking thread.
struct TrackingAllocator;

fn note_allocation(bytes: usize) {
    let _ = LARGEST_ALLOCATION.try_with(|largest| {
        if let Some(so_far) = largest.get() {
            largest.set(Some(so_far.max(bytes)));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(pointer, layout, new_size) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

/// The `fuzz/` directory of the repository.
fn fuzz_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file in `directory`, by name; none if it does not exist.
fn files_in(directory: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .filter(|entry| entry.path().is_file())
        .map(|entry| {
            let contents = std::fs::read(entry.path())
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", entry.path().display()));
            (entry.file_name().to_string_lossy().into_owned(), contents)
        })
        .collect();
    files.sort();
    files
}

fn environment_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(number) => Some(number),
        Err(_) => panic!("{name}={text} is not a number"),
    }
}

/// Edge values for a length or count field.
fn edge_value(rng: &mut Xoshiro256PlusPlus, length: usize) -> u64 {
    let length = length as u64;
    match rng.gen_range(0..12) {
        0 => 0,
        1 => 1,
        2 => length,
        3 => length.saturating_sub(1),
        4 => length + 1,
        5 => 0x7fff_ffff,
        6 => u64::from(u32::MAX),
        7 => 1 << 30,
        8 => u64::MAX,
        9 => 1 << 32,
        10 => u64::from(rng.gen::<u8>()),
        _ => rng.gen(),
    }
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
    bytes
}

/// Writes `bytes` over `input` at `at`, growing it if they run past its end.
fn overwrite(input: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let end = at + bytes.len();
    if end > input.len() {
        input.resize(end, 0);
    }
    input[at..end].copy_from_slice(bytes);
}

/// One random change to `input`; `pool` holds other inputs to splice from.
fn mutate_once(rng: &mut Xoshiro256PlusPlus, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let length = input.len();
    let at = if length == 0 {
        0
    } else {
        rng.gen_range(0..length)
    };
    match rng.gen_range(0..11) {
        0 if length > 0 => input[at] ^= 1 << rng.gen_range(0..8),
        1 if length > 0 => {
            const BYTES: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b'{', b'"', b'%', b'='];
            input[at] = BYTES[rng.gen_range(0..BYTES.len())];
        }
        2 if length > 0 => {
            input[at] = if rng.gen() {
                input[at].wrapping_add(1)
            } else {
                input[at].wrapping_sub(1)
            }
        }
        3 => input.truncate(at),
        4 if length > 0 => {
            let end = (at + rng.gen_range(1..=16)).min(length);
            input.drain(at..end);
        }
        5 => {
            let count = rng.gen_range(1..=16);
            let bytes: Vec<u8> = (0..count).map(|_| rng.gen()).collect();
            input.splice(at..at, bytes);
        }
        6 if length > 0 => {
            let end = (at + rng.gen_range(1..=32)).min(length);
            let copied = input[at..end].to_vec();
            let to = rng.gen_range(0..=length);
            input.splice(to..to, copied);
        }
        7 => {
            let value = edge_value(rng, length);
            let bytes = match rng.gen_range(0..4) {
                0 => (value as u32).to_le_bytes().to_vec(),
                1 => (value as u32).to_be_bytes().to_vec(),
                2 => value.to_le_bytes().to_vec(),
                _ => value.to_be_bytes().to_vec(),
            };
            overwrite(input, at, &bytes);
        }
        8 => {
            let value = varint(edge_value(rng, length));
            overwrite(input, at, &value);
        }
        9 if !pool.is_empty() => {
            let other = &pool[rng.gen_range(0..pool.len())];
            let from = rng.gen_range(0..=other.len());
            input.truncate(at);
            input.extend_from_slice(&other[from..]);
        }
        _ => {
            let separator_at = rng.gen_range(0..=length);
            input.splice(separator_at..separator_at, PART_SEPARATOR.iter().copied());
        }
    }
    input.truncate(INPUT_BYTES_MAX);
}

/// A generated input: random bytes, or one to four mutations of a pool input.
fn generate(rng: &mut Xoshiro256PlusPlus, pool: &[Vec<u8>]) -> Vec<u8> {
    if pool.is_empty() || rng.gen_ratio(1, 10) {
        let length = rng.gen_range(0..256);
        return (0..length).map(|_| rng.gen()).collect();
    }
    let mut input = pool[rng.gen_range(0..pool.len())].clone();
    for _ in 0..rng.gen_range(1..=4) {
        mutate_once(rng, &mut input, pool);
    }
    input
}

/// Runs one input; on failure saves it and fails the test, naming how to replay.
fn run_one(target: &Target, input: &[u8], origin: &str, seed: u64) {
    if target.allocations_bounded {
        LARGEST_ALLOCATION.with(|largest| largest.set(Some(0)));
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let largest = LARGEST_ALLOCATION.with(|largest| largest.replace(None));
    let failure = match outcome {
        Err(_) => Some("panicked (message above)".to_string()),
        Ok(()) => largest
            .filter(|&bytes| bytes > allocation_bytes_max(input.len()))
            .map(|bytes| {
                format!(
                    "allocated {bytes} bytes at once for a {}-byte input (at most {} allowed): \
                     a length taken on trust?",
                    input.len(),
                    allocation_bytes_max(input.len())
                )
            }),
    };
    let Some(failure) = failure else {
        return;
    };
    let saved = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("short_fuzz")
        .join(target.name);
    let path = saved.join(format!("failure-{seed}-{}", origin.replace('/', "_")));
    let written = std::fs::create_dir_all(&saved).and_then(|()| std::fs::write(&path, input));
    panic!(
        "{} on {origin} {failure}; input saved as {} ({written:?}); replay with \
         FUZZ_SEED={seed} cargo test -p fuzz-targets --test short_fuzz {}, and once fixed copy \
         the input to fuzz/regressions/{}/",
        target.name,
        path.display(),
        target.name,
        target.name
    );
}

/// Runs `name` over its seeds, corpus, regressions and generated inputs.
fn short_fuzz(name: &str) {
    let target = fuzz_targets::target(name).unwrap_or_else(|| panic!("no target {name}"));
    let seed = environment_number("FUZZ_SEED").unwrap_or_else(rand::random);
    let iterations = environment_number("FUZZ_ITERATIONS").unwrap_or(ITERATIONS_DEFAULT);
    eprintln!("short_fuzz {name}: FUZZ_SEED={seed} FUZZ_ITERATIONS={iterations}");
    let started = Instant::now();
    let mut pool = Vec::new();
    for (seed_name, input) in (target.seeds)() {
        run_one(target, &input, &format!("seed/{seed_name}"), seed);
        pool.push(input);
    }
    let fuzz = fuzz_directory();
    for directory in ["corpus", "regressions"] {
        for (file, input) in files_in(&fuzz.join(directory).join(name)) {
            run_one(target, &input, &format!("{directory}/{file}"), seed);
            pool.push(input);
        }
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for iteration in 0..iterations {
        let input = generate(&mut rng, &pool);
        run_one(target, &input, &format!("generated/{iteration}"), seed);
    }
    eprintln!(
        "short_fuzz {name}: {} inputs in {:?}",
        pool.len() as u64 + iterations,
        started.elapsed()
    );
}

macro_rules! short_fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                short_fuzz(stringify!($name));
            }
        )*

        /// Every target has its test here.
        #[test]
        fn every_target_is_fuzzed() {
            let tested = [$(stringify!($name)),*];
            for target in fuzz_targets::TARGETS {
                assert!(tested.contains(&target.name), "no short fuzz run of {}", target.name);
            }
        }
    };
}

short_fuzz_tests!(
    wire_message,
    wire_handshake,
    wire_frames,
    wal_record,
    wal_segment,
    wal_recovery,
    snapshot_file,
    kv_command,
    kv_snapshot,
    http_request,
    config_file,
    token_file,
);
