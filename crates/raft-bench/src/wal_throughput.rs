//! Write-ahead log figures: synced appends against the disk's own limit, group commit under
//! concurrent producers, and recovery of a 1 GiB log.
//!
//! ```text
//!  appends    limit: File::write_all + sync_data of the same bytes per sync ─┐ interleaved,
//!             WAL:   Wal::write of one request holding `batch` entries      ─┘ median of 3
//!             ratio = WAL syncs/s ÷ limit syncs/s, taken per interleaved pair
//!  group      N producers ─► Mutex(assign index, submit) ─► GroupCommit ─► on_durable wakes
//!             every producer whose entry is at or below the durable id
//!  recovery   write ~1 GiB ─► drop the Wal ─► child process `wal-recover <dir>`: Wal::open,
//!             RecoveryReport, index size, peak resident memory of the child
//! ```
//!
//! Every throughput measurement runs for a fixed time rather than a fixed count, so a slow disk
//! makes the benchmark less precise, not longer; recovery writes a fixed size (~1 GiB per log,
//! two logs) and checks for 5 GiB of free space first. Environment variables:
//!
//! - `RAFT_BENCH_DIR`: the directory (and so the disk) to measure; default `$TMPDIR` or `/tmp`.
//! - `RAFT_BENCH_SECONDS`: length of one timed measurement; default 1.
//! - `RAFT_BENCH_WAL_RECOVERY_GIB`: payload of each recovery log in GiB; default 1.
//! - `RAFT_BENCH_WAL_RECOVERY_SMALL`: `0` skips the recovery log of 100-byte entries.

mod group_commit;
mod recovery;

use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, NodeId, PersistRequest, Storage, Term,
};
use raft_wal::{Wal, WalOptions};

pub use recovery::recover_child;

/// Timed runs of each measurement; the median is printed.
const RUNS: usize = 3;
/// Entry payload sizes of the append measurement.
const ENTRY_BYTES: [usize; 2] = [100, 4096];
/// Entries per fdatasync of the append measurement.
const BATCH_ENTRIES: [u64; 4] = [1, 16, 256, 1024];
/// Size of the preallocated file the overwrite reference writes into, wrapping around.
const OVERWRITE_FILE_BYTES: u64 = 64 << 20;
/// Byte every payload and baseline block is filled with.
const FILL_BYTE: u8 = 0x5a;
/// Bytes in a megabyte, as the tables print them.
const MEGABYTE: f64 = 1e6;

/// What the benchmark measures, from the environment.
#[derive(Debug)]
struct Settings {
    /// Length of one timed measurement.
    measure: Duration,
    /// Payload bytes of each log the recovery measurement writes.
    recovery_payload_bytes: u64,
    /// Whether recovery is also measured for a log of 100-byte entries (~10M entries per GiB).
    recovery_small_entries: bool,
}

impl Settings {
    fn from_environment() -> Settings {
        let number = |name: &str, default: f64| -> f64 {
            match std::env::var(name) {
                Ok(text) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite() && *value > 0.0)
                    .unwrap_or_else(|| panic!("{name}={text:?} is not a positive number")),
                Err(_) => default,
            }
        };
        Settings {
            measure: Duration::from_secs_f64(number("RAFT_BENCH_SECONDS", 1.0)),
            recovery_payload_bytes: (number("RAFT_BENCH_WAL_RECOVERY_GIB", 1.0)
                * (1u64 << 30) as f64) as u64,
            recovery_small_entries: std::env::var("RAFT_BENCH_WAL_RECOVERY_SMALL").as_deref()
                != Ok("0"),
        }
    }
}

/// A directory for the benchmark's files, removed with everything in it when dropped (also
/// when a measurement panics).
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `raft-bench-wal-<pid>` under `RAFT_BENCH_DIR`, or under the temporary directory.
    fn create() -> ScratchDir {
        let parent =
            std::env::var_os("RAFT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let path = parent.join(format!("raft-bench-wal-{}", std::process::id()));
        ok_or_panic(fs::create_dir_all(&path), || {
            format!("create {}", path.display())
        });
        let path = ok_or_panic(fs::canonicalize(&path), || {
            format!("resolve {}", path.display())
        });
        ScratchDir { path }
    }

    /// The scratch directory itself.
    fn path(&self) -> &Path {
        &self.path
    }

    /// The path `name` inside the scratch directory, with whatever was there removed.
    fn fresh(&self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        remove_path(&path);
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {error}", self.path.display());
        }
    }
}

/// Removes the file or directory at `path` if there is one.
fn remove_path(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    ok_or_panic(result, || format!("remove {}", path.display()));
}

/// Unwraps a result the benchmark cannot go on without, panicking with what failed and why.
/// The message is built only on failure, so this is free on hot paths.
fn ok_or_panic<T, E: Display>(result: Result<T, E>, what: impl FnOnce() -> String) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{}: {error}", what()),
    }
}

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`), or `None` off Linux.
fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let value = line.strip_prefix(field)?.trim_start_matches(':').trim();
    value.strip_suffix("kB")?.trim().parse().ok()
}

/// Opens (or creates) the log in `dir` with the default options and a 3-voter bootstrap.
fn open_wal(dir: &Path) -> Wal {
    open_wal_with(dir, WalOptions::default())
}

fn open_wal_with(dir: &Path, options: WalOptions) -> Wal {
    let configuration = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
    ok_or_panic(Wal::open(dir, configuration, options), || {
        format!("open the write-ahead log in {}", dir.display())
    })
}

/// Appends batches of equal entries to a log, one request and so one fdatasync per batch.
struct Appender {
    wal: Wal,
    /// Index of the next entry.
    next_index: u64,
    /// Id of the next request.
    next_id: u64,
    payload: Bytes,
    batch_entries: u64,
}

impl Appender {
    /// An appender continuing the log `wal` with entries of `entry_bytes` bytes, `batch_entries`
    /// per write.
    fn new(wal: Wal, entry_bytes: usize, batch_entries: u64) -> Appender {
        assert!(
            batch_entries > 0,
            "Appender: a batch holds at least one entry"
        );
        let last = ok_or_panic(wal.storage().last_index(), || "read the last index".into());
        Appender {
            wal,
            next_index: last.0 + 1,
            next_id: 1,
            payload: Bytes::from(vec![FILL_BYTE; entry_bytes]),
            batch_entries,
        }
    }

    /// Writes one batch and waits for its fdatasync.
    fn append_batch(&mut self) {
        let first = self.next_index;
        let entries = (first..first + self.batch_entries)
            .map(|index| Entry {
                id: LogId::new(Term(1), Index(index)),
                kind: EntryKind::Normal,
                data: self.payload.clone(),
            })
            .collect();
        let request = PersistRequest {
            id: self.next_id,
            snapshot: None,
            entries,
            hard_state: None,
        };
        let durable = ok_or_panic(self.wal.write([request]), || {
            format!("write entries {first}.. to {}", self.wal.dir().display())
        });
        assert_eq!(
            durable,
            Some(self.next_id),
            "Wal::write reports the id of the last request"
        );
        self.next_index += self.batch_entries;
        self.next_id += 1;
    }

    /// Entries appended so far.
    fn entries_appended(&self) -> u64 {
        (self.next_id - 1) * self.batch_entries
    }

    /// The log, for its storage handle or to drop it.
    fn into_wal(self) -> Wal {
        self.wal
    }
}

/// Total bytes of the segment files in `dir`.
fn segment_bytes(dir: &Path) -> u64 {
    let listing = ok_or_panic(fs::read_dir(dir), || format!("list {}", dir.display()));
    let mut total = 0;
    for item in listing {
        let item = ok_or_panic(item, || format!("list {}", dir.display()));
        if item.file_name().to_string_lossy().ends_with(".wal") {
            total += ok_or_panic(item.metadata(), || {
                format!("stat {}", item.path().display())
            })
            .len();
        }
    }
    total
}

/// Syncs done in some time.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    syncs: u64,
    elapsed: Duration,
}

impl Rate {
    fn syncs_per_second(self) -> f64 {
        self.syncs as f64 / self.elapsed.as_secs_f64()
    }
}

impl std::ops::AddAssign for Rate {
    fn add_assign(&mut self, other: Rate) {
        self.syncs += other.syncs;
        self.elapsed += other.elapsed;
    }
}

/// Calls `step` (one synced write) until `duration` has passed, at least once.
fn timed(duration: Duration, mut step: impl FnMut()) -> Rate {
    let start = Instant::now();
    let mut syncs = 0;
    loop {
        step();
        syncs += 1;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Rate { syncs, elapsed };
        }
    }
}

/// The physical limit: appends a block to a new file and fdatasyncs, repeatedly. Like the
/// log, every sync also makes the file's new size durable.
struct LimitFile {
    path: PathBuf,
    file: File,
    block: Vec<u8>,
}

impl LimitFile {
    fn create(path: PathBuf, bytes_per_sync: usize) -> LimitFile {
        let file = ok_or_panic(File::create(&path), || format!("create {}", path.display()));
        LimitFile {
            path,
            file,
            block: vec![FILL_BYTE; bytes_per_sync],
        }
    }

    fn append_block(&mut self) {
        let path = &self.path;
        ok_or_panic(self.file.write_all(&self.block), || {
            format!("write {}", path.display())
        });
        ok_or_panic(self.file.sync_data(), || {
            format!("fdatasync {}", path.display())
        });
    }
}

impl Drop for LimitFile {
    fn drop(&mut self) {
        remove_path(&self.path);
    }
}

/// A reference beyond the append limit: overwrites a preallocated, already durable file in
/// place, wrapping around, so an fdatasync has no file size to make durable. What a log that
/// preallocates or recycles its segments could reach.
struct OverwriteFile {
    path: PathBuf,
    file: File,
    block: Vec<u8>,
    /// Where the next block goes. Invariant: a block fits before `OVERWRITE_FILE_BYTES`.
    offset: u64,
}

impl OverwriteFile {
    fn create(path: PathBuf, bytes_per_sync: usize) -> OverwriteFile {
        assert!(
            bytes_per_sync as u64 <= OVERWRITE_FILE_BYTES,
            "OverwriteFile: a block fits the file"
        );
        let file = ok_or_panic(
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path),
            || format!("create {}", path.display()),
        );
        let chunk = vec![0u8; 1 << 20];
        for offset in (0..OVERWRITE_FILE_BYTES).step_by(chunk.len()) {
            ok_or_panic(file.write_all_at(&chunk, offset), || {
                format!("preallocate {}", path.display())
            });
        }
        ok_or_panic(file.sync_all(), || format!("fsync {}", path.display()));
        OverwriteFile {
            path,
            file,
            block: vec![FILL_BYTE; bytes_per_sync],
            offset: 0,
        }
    }

    fn overwrite_block(&mut self) {
        let path = &self.path;
        ok_or_panic(self.file.write_all_at(&self.block, self.offset), || {
            format!("write {}", path.display())
        });
        ok_or_panic(self.file.sync_data(), || {
            format!("fdatasync {}", path.display())
        });
        self.offset += self.block.len() as u64;
        if self.offset + self.block.len() as u64 > OVERWRITE_FILE_BYTES {
            self.offset = 0;
        }
    }
}

impl Drop for OverwriteFile {
    fn drop(&mut self) {
        remove_path(&self.path);
    }
}

/// Time slices each side of a paired run is split into, alternating, so that both sides see
/// the same moments of a shared disk.
const SLICES: u32 = 10;

/// What one paired run measured.
struct PairedRun {
    limit: Rate,
    /// Measured only for batches of one entry.
    overwrite: Option<Rate>,
    wal: Rate,
}

/// One run of the limit, the overwrite reference (for batches of one) and a new log, each for
/// `duration` in total, in alternating slices.
fn paired_run(
    scratch: &ScratchDir,
    entry_bytes: usize,
    batch_entries: u64,
    bytes_per_sync: usize,
    duration: Duration,
) -> PairedRun {
    let mut limit_file = LimitFile::create(scratch.fresh("append-limit.dat"), bytes_per_sync);
    let mut overwrite_file = (batch_entries == 1)
        .then(|| OverwriteFile::create(scratch.fresh("append-overwrite.dat"), bytes_per_sync));
    let wal_dir = scratch.fresh("append-wal");
    let mut appender = Appender::new(open_wal(&wal_dir), entry_bytes, batch_entries);
    let slice = duration / SLICES;
    let mut run = PairedRun {
        limit: Rate::default(),
        overwrite: overwrite_file.as_ref().map(|_| Rate::default()),
        wal: Rate::default(),
    };
    for _ in 0..SLICES {
        run.limit += timed(slice, || limit_file.append_block());
        if let (Some(file), Some(rate)) = (overwrite_file.as_mut(), run.overwrite.as_mut()) {
            *rate += timed(slice, || file.overwrite_block());
        }
        run.wal += timed(slice, || appender.append_batch());
    }
    drop(appender);
    remove_path(&wal_dir);
    run
}

/// Bytes the log writes per batch of this shape, measured on a fresh log (so the limit run
/// writes exactly what the log writes, whatever its format). Measured by file growth, so with
/// preallocation off; the bytes written are the same either way.
fn wal_bytes_per_sync(dir: &Path, entry_bytes: usize, batch_entries: u64) -> u64 {
    let unallocated = WalOptions {
        preallocate: false,
        ..WalOptions::default()
    };
    let mut appender = Appender::new(open_wal_with(dir, unallocated), entry_bytes, batch_entries);
    // The first batch warms the code paths; the second is measured.
    appender.append_batch();
    let before = segment_bytes(dir);
    appender.append_batch();
    let after = segment_bytes(dir);
    drop(appender);
    remove_path(dir);
    assert!(after > before, "a batch of entries grows the segment files");
    after - before
}

/// The median of `values`: the figures of a few repeated runs (rates, not a latency
/// distribution, whose percentiles go through [`crate::floor::Latencies`]); the upper middle
/// one when there is an even number.
fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of no values");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The smallest and largest of `values`, as `min–max`.
fn spread(values: &[f64], precision: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.precision$}–{max:.precision$}")
}

/// Batch-1 figures of one entry size, for the overwrite table.
struct SingleEntryFigures {
    entry_bytes: usize,
    limit_syncs_per_second: Vec<f64>,
    overwrite_syncs_per_second: Vec<f64>,
    wal_syncs_per_second: Vec<f64>,
}

/// Measures and prints synced appends for every entry size and batch size.
fn appends(scratch: &ScratchDir, settings: &Settings) {
    println!(
        "== WAL synced appends vs the disk's limit (write_all + fdatasync of the same bytes per sync), {} ==",
        scratch.path().display()
    );
    println!(
        "each figure: median of {RUNS} runs of {:.1} s per side, the limit and the log alternating in {SLICES} slices per run; \
         ratio = median of the runs' WAL ÷ limit",
        settings.measure.as_secs_f64()
    );
    println!("MB = 10^6 bytes; the log's MB/s counts payload, the limit's counts bytes written");
    println!(
        "{:>7} {:>6} {:>10} | {:>11} {:>9} {:>8} | {:>10} {:>9} | {:>6} {:>11}",
        "entry B",
        "batch",
        "bytes/sync",
        "entries/s",
        "MB/s",
        "speedup",
        "syncs/s",
        "MB/s",
        "ratio",
        "min–max"
    );
    let mut singles = Vec::new();
    for entry_bytes in ENTRY_BYTES {
        let mut batch_one_entries_per_second = None;
        for batch_entries in BATCH_ENTRIES {
            let wal_dir = scratch.path().join("append-wal");
            let bytes_per_sync = wal_bytes_per_sync(&wal_dir, entry_bytes, batch_entries);
            let (mut wal, mut limit, mut overwrite, mut ratios) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..RUNS {
                let run = paired_run(
                    scratch,
                    entry_bytes,
                    batch_entries,
                    bytes_per_sync as usize,
                    settings.measure,
                );
                wal.push(run.wal.syncs_per_second());
                limit.push(run.limit.syncs_per_second());
                ratios.push(run.wal.syncs_per_second() / run.limit.syncs_per_second());
                overwrite.extend(run.overwrite.map(Rate::syncs_per_second));
            }
            let entries_per_second = median(&wal) * batch_entries as f64;
            let batch_one = *batch_one_entries_per_second.get_or_insert(entries_per_second);
            let limit_syncs = median(&limit);
            println!(
                "{:>7} {:>6} {:>10} | {:>11.0} {:>9.1} {:>7.1}x | {:>10.0} {:>9.1} | {:>6.3} {:>11}",
                entry_bytes,
                batch_entries,
                bytes_per_sync,
                entries_per_second,
                entries_per_second * entry_bytes as f64 / MEGABYTE,
                entries_per_second / batch_one,
                limit_syncs,
                limit_syncs * bytes_per_sync as f64 / MEGABYTE,
                median(&ratios),
                spread(&ratios, 3),
            );
            if batch_entries == 1 {
                singles.push(SingleEntryFigures {
                    entry_bytes,
                    limit_syncs_per_second: limit,
                    overwrite_syncs_per_second: overwrite,
                    wal_syncs_per_second: wal,
                });
            }
        }
    }
    println!("speedup = entries/s ÷ entries/s at batch 1 for the same entry size (linear growth = the batch size)");
    println!();
    println!("-- reference at batch 1: overwriting a preallocated file in place (no file size to sync each time) --");
    println!(
        "{:>7} | {:>14} {:>17} {:>12} | {:>16}",
        "entry B", "append syncs/s", "overwrite syncs/s", "WAL syncs/s", "WAL ÷ overwrite"
    );
    for single in &singles {
        println!(
            "{:>7} | {:>14.0} {:>17.0} {:>12.0} | {:>16.3}",
            single.entry_bytes,
            median(&single.limit_syncs_per_second),
            median(&single.overwrite_syncs_per_second),
            median(&single.wal_syncs_per_second),
            median(&single.wal_syncs_per_second) / median(&single.overwrite_syncs_per_second),
        );
    }
    println!();
}

/// Prints every write-ahead log figure.
pub fn run() {
    let settings = Settings::from_environment();
    let scratch = ScratchDir::create();
    let start = Instant::now();
    appends(&scratch, &settings);
    group_commit::run(&scratch, &settings);
    recovery::run(&scratch, &settings);
    println!(
        "wal benchmark took {:.0} s; peak resident memory of this process: {} KiB",
        start.elapsed().as_secs_f64(),
        status_kib("VmHWM").map_or_else(|| "unknown".to_string(), |kib| kib.to_string())
    );
}
