//! Criterion benchmarks of the write-ahead log, in a temporary directory (`$TMPDIR`, so the disk
//! measured is the one holding it).
//!
//! ```text
//!  append/N            Wal::write of one request of N entries of 100 B, with
//!                      `unsafe_no_sync`: encoding, the vectored write into the page cache and
//!                      publishing to readers, without the fdatasync (throughput in entries)
//!  append_sync/N       the same with the fdatasync, as a node writes (few samples: slow)
//!  recovery/...        Wal::open of a log of 10,000 entries of 100 B (replay and index build),
//!                      warm page cache; `preallocated` is the default layout, whose last
//!                      segment is a 64 MiB sparse file read whole, `not_preallocated` is not
//! ```
//!
//! Each timed call of `append` and `append_sync` starts from a new, empty log, so the files
//! stay as small as the sample; building the request and opening or dropping a log are not
//! timed. The record codec is private to the crate, so encoding is measured only as part of
//! `append`. Run with `cargo bench -p raft-wal`, or one group with
//! `cargo bench -p raft-wal -- append` (the argument filters bench names).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, NodeId, PersistRequest, Storage, Term,
};
use raft_wal::{Wal, WalOptions};
use tempfile::TempDir;

/// Payload of every entry written.
const ENTRY_BYTES: usize = 100;
/// Entries per request of the `append` and `append_sync` groups.
const BATCH_ENTRIES: [u64; 3] = [1, 64, 1024];
/// Entries of the log the `recovery` group opens.
const RECOVERY_ENTRIES: u64 = 10_000;
/// Entries per request when writing the log the `recovery` group opens.
const RECOVERY_BATCH_ENTRIES: u64 = 1_000;

/// The bootstrap configuration of every log: three voters.
fn configuration() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// Options of a log whose writes skip the fdatasync (and so measure everything else).
fn no_sync_options() -> WalOptions {
    WalOptions {
        unsafe_no_sync: true,
        ..WalOptions::default()
    }
}

fn open_wal(dir: &Path, options: WalOptions) -> Wal {
    Wal::open(dir, configuration(), options).expect("open the write-ahead log")
}

/// A log in its own temporary directory, and the requests that continue it.
struct Appender {
    // Declared before `dir`, so the log (and its directory lock) is dropped first.
    wal: Wal,
    dir: TempDir,
    /// Index of the next entry.
    next_index: Index,
    /// Id of the next request.
    next_id: u64,
    payload: Bytes,
}

impl Appender {
    /// A new, empty log with `options`.
    fn new(options: WalOptions) -> Appender {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let wal = open_wal(dir.path(), options);
        let last = wal.storage().last_index().expect("read the last index");
        Appender {
            wal,
            dir,
            next_index: last.next(),
            next_id: 1,
            payload: Bytes::from(vec![0x5a; ENTRY_BYTES]),
        }
    }

    /// The next request: `count` entries after the last one.
    fn next_request(&mut self, count: u64) -> PersistRequest {
        assert!(count > 0, "Appender: a request holds at least one entry");
        let entries = (0..count)
            .map(|offset| Entry {
                id: LogId::new(Term(1), self.next_index.plus(offset)),
                kind: EntryKind::Normal,
                data: self.payload.clone(),
            })
            .collect();
        self.next_index = self.next_index.plus(count);
        let id = self.next_id;
        self.next_id += 1;
        PersistRequest {
            id,
            snapshot: None,
            entries,
            hard_state: None,
        }
    }

    /// Writes `request`, checking the log reports it durable.
    fn write(&mut self, request: PersistRequest) {
        let id = request.id;
        let durable = self.wal.write([request]).expect("write to the log");
        assert_eq!(durable, Some(id), "Wal::write reports the last request");
    }

    /// Hands the log's directory over, with the log closed.
    fn into_dir(self) -> TempDir {
        drop(self.wal);
        self.dir
    }
}

/// Times `iterations` writes of `batch_entries` entries to a new log with `options`.
fn time_appends(options: &WalOptions, batch_entries: u64, iterations: u64) -> Duration {
    let mut appender = Appender::new(options.clone());
    let mut elapsed = Duration::ZERO;
    for _ in 0..iterations {
        let request = appender.next_request(batch_entries);
        let start = Instant::now();
        appender.write(request);
        elapsed += start.elapsed();
    }
    elapsed
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let options = no_sync_options();
    for batch_entries in BATCH_ENTRIES {
        group.throughput(Throughput::Elements(batch_entries));
        group.bench_function(batch_entries.to_string(), |b| {
            b.iter_custom(|iterations| time_appends(&options, batch_entries, iterations));
        });
    }
    group.finish();
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let options = WalOptions::default();
    for batch_entries in BATCH_ENTRIES {
        group.throughput(Throughput::Elements(batch_entries));
        group.bench_function(batch_entries.to_string(), |b| {
            b.iter_custom(|iterations| time_appends(&options, batch_entries, iterations));
        });
    }
    group.finish();
}

/// A closed log of `RECOVERY_ENTRIES` entries written with `options` (without syncs: the page
/// cache holds it either way).
fn recovery_log(options: &WalOptions) -> TempDir {
    let mut appender = Appender::new(WalOptions {
        unsafe_no_sync: true,
        ..options.clone()
    });
    for _ in 0..RECOVERY_ENTRIES / RECOVERY_BATCH_ENTRIES {
        let request = appender.next_request(RECOVERY_BATCH_ENTRIES);
        appender.write(request);
    }
    appender.into_dir()
}

fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    // Ten samples (criterion's least) of the preallocated layout take about two seconds.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(RECOVERY_ENTRIES));
    let layouts = [
        ("preallocated", WalOptions::default()),
        (
            "not_preallocated",
            WalOptions {
                preallocate: false,
                ..WalOptions::default()
            },
        ),
    ];
    for (name, options) in layouts {
        let dir = recovery_log(&options);
        group.bench_function(format!("{RECOVERY_ENTRIES}_entries/{name}"), |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let start = Instant::now();
                    let wal = open_wal(dir.path(), options.clone());
                    elapsed += start.elapsed();
                    assert_eq!(
                        wal.recovery_report().entries,
                        RECOVERY_ENTRIES,
                        "recovery finds every written entry"
                    );
                    // Dropped before the next open, which needs the directory lock.
                    drop(wal);
                }
                elapsed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, append, append_sync, recovery);
criterion_main!(benches);
