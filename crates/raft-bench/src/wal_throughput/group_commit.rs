//! Group commit under a closed loop: `producers` threads each submit one entry through
//! raft-node's storage thread (`StorageThread`, the node's group commit) and wait until it is durable before submitting the next.
//!
//! ```text
//!  producer k ─► lock Queue { next_index, waiting } ─► index = next_index++,
//!                waiting.push((index, k)), submit(request id = index) ─► unlock
//!  writer thread ─► Wal::write(everything queued) ─► on_durable(Ok(last id))
//!                ─► pop every waiting (index ≤ id) ─► wake producer k
//! ```
//!
//! Assigning the index and submitting under one lock keeps the writer's queue in index order,
//! which the log requires (each entry follows the last one). Request ids are the entry
//! indexes, so the durable id tells directly which entries are durable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Entry, EntryKind, Index, LogId, PersistRequest, Term};
use raft_node::storage_thread::{Durable, StorageThread};

use crate::floor::Latencies;

use super::{
    median, ok_or_panic, open_wal, remove_path, spread, timed, wal_bytes_per_sync, LimitFile,
    ScratchDir, Settings, FILL_BYTE, RUNS,
};

/// Payload of every entry.
const ENTRY_BYTES: usize = 100;
/// Producer counts measured.
const PRODUCERS: [usize; 4] = [1, 4, 16, 64];

/// Submission state shared by the producers and the durability callback.
#[derive(Debug, Default)]
struct Queue {
    /// Index of the next entry to submit.
    next_index: u64,
    /// Entries submitted and not yet durable, in index order, with the producer waiting for
    /// each. Invariant: indexes strictly increase.
    waiting: VecDeque<(u64, usize)>,
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue
        .lock()
        .expect("group-commit queue poisoned: a producer panicked")
}

/// What one run measured.
struct RunFigures {
    entries: u64,
    /// `Wal::write` calls, each one fdatasync.
    groups: u64,
    elapsed: Duration,
    /// Submit-to-durable latency of every entry.
    latencies: Vec<Duration>,
}

/// One closed-loop run of `producers` threads for `duration` against a new log in `dir`.
fn run_once(dir: &std::path::Path, producers: usize, duration: Duration) -> RunFigures {
    let wal = open_wal(dir);
    let last = ok_or_panic(raft_core::Storage::last_index(&wal.storage()), || {
        "read the last index".into()
    });
    let queue = Arc::new(Mutex::new(Queue {
        next_index: last.0 + 1,
        waiting: VecDeque::new(),
    }));
    let groups = Arc::new(AtomicU64::new(0));
    let (senders, receivers): (Vec<SyncSender<()>>, Vec<Receiver<()>>) =
        (0..producers).map(|_| mpsc::sync_channel(1)).unzip();
    let on_durable = {
        let queue = Arc::clone(&queue);
        let groups = Arc::clone(&groups);
        let mut senders = senders;
        move |durable: Durable| match durable {
            Ok(id) => {
                groups.fetch_add(1, Ordering::Relaxed);
                let mut queue = lock(&queue);
                while let Some(&(index, producer)) = queue.waiting.front() {
                    if index > id {
                        break;
                    }
                    queue.waiting.pop_front();
                    // Each producer has at most one entry in flight, so this never blocks;
                    // a producer that has gone has nothing left to wait for.
                    let _ = senders[producer].send(());
                }
            }
            Err(error) => {
                eprintln!("group commit stopped: {error}");
                // Dropping the senders wakes every producer with an error.
                senders.clear();
            }
        }
    };
    let group_commit = ok_or_panic(
        StorageThread::spawn(wal, Arc::default(), on_durable),
        || "spawn the group-commit thread".into(),
    );
    let payload = Bytes::from(vec![FILL_BYTE; ENTRY_BYTES]);
    let barrier = Barrier::new(producers + 1);
    let (latencies, elapsed) = thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(producer, receiver)| {
                let (queue, group_commit, payload, barrier) =
                    (&queue, &group_commit, &payload, &barrier);
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    barrier.wait();
                    let start = Instant::now();
                    while start.elapsed() < duration {
                        let submitted = Instant::now();
                        {
                            let mut queue = lock(queue);
                            let index = queue.next_index;
                            queue.next_index += 1;
                            queue.waiting.push_back((index, producer));
                            let request = PersistRequest {
                                id: index,
                                snapshot: None,
                                entries: vec![Entry {
                                    id: LogId::new(Term(1), Index(index)),
                                    kind: EntryKind::Normal,
                                    data: payload.clone(),
                                }],
                                hard_state: None,
                            };
                            ok_or_panic(group_commit.submit(request), || {
                                format!("submit entry {index}")
                            });
                        }
                        receiver
                            .recv()
                            .expect("the group-commit log stopped (its error is printed above)");
                        latencies.push(submitted.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let latencies: Vec<Duration> = handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a producer panicked"))
            .collect();
        (latencies, start.elapsed())
    });
    ok_or_panic(group_commit.shutdown(), || {
        "shut the group-commit thread down".into()
    });
    remove_path(dir);
    assert!(
        lock(&queue).waiting.is_empty(),
        "every submitted entry was reported durable"
    );
    RunFigures {
        entries: latencies.len() as u64,
        groups: groups.load(Ordering::Relaxed),
        elapsed,
        latencies,
    }
}

/// Measures and prints group-commit throughput and latency for every producer count.
/// Before each run, the disk's append limit for one entry per sync is measured for a quarter
/// of the run's time, so that every row has a reference taken at nearly the same moment.
pub(super) fn run(scratch: &ScratchDir, settings: &Settings) {
    println!(
        "== WAL group commit: N producers, one {ENTRY_BYTES}-byte entry each, waiting for durability before the next =="
    );
    println!(
        "median of {RUNS} runs of {:.1} s; entries/fsync over all runs; latency (submit → durable callback) over all runs' entries",
        settings.measure.as_secs_f64()
    );
    println!(
        "limit = the disk's append limit for one entry per sync (write_all + fdatasync), measured for {:.2} s before each run",
        (settings.measure / 4).as_secs_f64()
    );
    println!(
        "{:>9} | {:>10} {:>15} | {:>13} {:>9} | {:>13} | {:>8} {:>8} {:>8}",
        "producers",
        "entries/s",
        "min–max",
        "entries/fsync",
        "fsyncs/s",
        "limit syncs/s",
        "p50 µs",
        "p99 µs",
        "max µs"
    );
    let dir = scratch.path().join("group-commit-wal");
    let bytes_per_sync = wal_bytes_per_sync(&dir, ENTRY_BYTES, 1) as usize;
    for producers in PRODUCERS {
        // A short first run warms the threads and the disk path.
        run_once(&dir, producers, settings.measure / 10);
        let mut limit = Vec::new();
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let mut limit_file =
                LimitFile::create(scratch.fresh("group-commit-limit.dat"), bytes_per_sync);
            limit
                .push(timed(settings.measure / 4, || limit_file.append_block()).syncs_per_second());
            drop(limit_file);
            runs.push(run_once(&dir, producers, settings.measure));
        }
        let per_second: Vec<f64> = runs
            .iter()
            .map(|run| run.entries as f64 / run.elapsed.as_secs_f64())
            .collect();
        let fsyncs_per_second: Vec<f64> = runs
            .iter()
            .map(|run| run.groups as f64 / run.elapsed.as_secs_f64())
            .collect();
        let entries: u64 = runs.iter().map(|run| run.entries).sum();
        let groups: u64 = runs.iter().map(|run| run.groups).sum();
        let latencies: Vec<Duration> = runs.into_iter().flat_map(|run| run.latencies).collect();
        let latencies = Latencies::of(&latencies);
        let micros = |latency: Duration| latency.as_secs_f64() * 1e6;
        println!(
            "{:>9} | {:>10.0} {:>15} | {:>13.1} {:>9.0} | {:>13.0} | {:>8.0} {:>8.0} {:>8.0}",
            producers,
            median(&per_second),
            spread(&per_second, 0),
            entries as f64 / groups as f64,
            median(&fsyncs_per_second),
            median(&limit),
            micros(latencies.at(0.5)),
            micros(latencies.at(0.99)),
            micros(latencies.at(1.0)),
        );
    }
    println!();
}
