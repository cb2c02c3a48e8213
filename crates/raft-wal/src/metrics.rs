//! A lock-free latency histogram, shared with whoever exports it: the log times its
//! fdatasyncs into one, and `raft-node` times its storage writes into another.
//!
//! ```text
//!  writer thread: fdatasync ─► LatencyHistogram::record(duration) ─► bucket += 1, count, sum (atomics)
//!  exporter (any thread):      LatencyHistogram::snapshot() ─► HistogramSnapshot (Prometheus shape)
//! ```
//!
//! Buckets are fixed upper bounds in the Prometheus convention (`le`: a duration falls in the
//! first bucket whose bound it does not exceed); the snapshot reports them cumulatively, with a
//! last `+Inf` bucket equal to the count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the finite buckets, in nanoseconds: 50 µs to 2.5 s, roughly three per
/// decade, covering a fast NVMe flush up to a stalled disk.
const BOUNDS_NANOSECONDS: [u64; 15] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// Buckets including the last, unbounded one.
const BUCKETS: usize = BOUNDS_NANOSECONDS.len() + 1;

/// How long something took, each time (the log's fdatasyncs, see [`crate::Wal::sync_latency`]):
/// a histogram updated with atomics only, so the writer thread never waits for a reader. Share
/// it with [`std::sync::Arc`].
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Syncs per bucket (not cumulative); the last bucket has no upper bound.
    buckets: [AtomicU64; BUCKETS],
    /// Total of every recorded duration, in nanoseconds (wraps after about 584 years).
    sum_nanoseconds: AtomicU64,
}

/// A histogram's state at one moment, shaped for a Prometheus `histogram`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bound of each bucket, in seconds, increasing; the last is `f64::INFINITY`.
    pub bounds_seconds: Vec<f64>,
    /// Observations at or below each bound (cumulative, so non-decreasing); one per bound,
    /// the last (`+Inf`) equal to `count`.
    pub cumulative_counts: Vec<u64>,
    /// Observations in all.
    pub count: u64,
    /// Sum of every observation, in seconds.
    pub sum_seconds: f64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanoseconds: AtomicU64::new(0),
        }
    }

    /// Records one observation that took `duration`.
    pub fn record(&self, duration: Duration) {
        let nanoseconds = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOSECONDS.partition_point(|&bound| bound < nanoseconds);
        assert!(bucket < BUCKETS, "invariant sync-latency-bucket-in-range");
        // Relaxed suffices: each counter is exact on its own, and a snapshot taken while a
        // sync is being recorded may see the bucket but not yet the sum (or the reverse),
        // which a scraper cannot tell from a sync recorded a moment later.
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanoseconds
            .fetch_add(nanoseconds, Ordering::Relaxed);
    }

    /// The histogram now. `count` is the sum of the buckets read, so it always equals the
    /// `+Inf` bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative_counts = Vec::with_capacity(BUCKETS);
        let mut count = 0u64;
        for bucket in &self.buckets {
            count += bucket.load(Ordering::Relaxed);
            cumulative_counts.push(count);
        }
        let bounds_seconds = BOUNDS_NANOSECONDS
            .iter()
            .map(|&bound| bound as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
            .collect::<Vec<f64>>();
        assert_eq!(
            bounds_seconds.len(),
            cumulative_counts.len(),
            "invariant histogram-bucket-per-bound"
        );
        HistogramSnapshot {
            bounds_seconds,
            cumulative_counts,
            count,
            sum_seconds: self.sum_nanoseconds.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let latency = LatencyHistogram::new();
        latency.record(Duration::from_micros(50)); // exactly the first bound
        latency.record(Duration::from_micros(51)); // the second bucket
        latency.record(Duration::from_millis(3)); // at or below 5 ms
        latency.record(Duration::from_secs(10)); // only +Inf
        let snapshot = latency.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.bounds_seconds.len(), 16);
        assert_eq!(snapshot.bounds_seconds[0], 50e-6);
        assert_eq!(snapshot.bounds_seconds[14], 2.5);
        assert_eq!(snapshot.bounds_seconds[15], f64::INFINITY);
        assert_eq!(
            snapshot.cumulative_counts,
            vec![1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4]
        );
        let expected_sum = 50e-6 + 51e-6 + 3e-3 + 10.0;
        assert!((snapshot.sum_seconds - expected_sum).abs() < 1e-9);
    }

    #[test]
    fn an_empty_histogram_has_zero_everywhere() {
        let snapshot = LatencyHistogram::new().snapshot();
        assert_eq!(snapshot.count, 0);
        assert_eq!(snapshot.sum_seconds, 0.0);
        assert!(snapshot.cumulative_counts.iter().all(|&count| count == 0));
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let latency = std::sync::Arc::new(LatencyHistogram::new());
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let latency = std::sync::Arc::clone(&latency);
                std::thread::spawn(move || {
                    for micros in 0..1_000u64 {
                        latency.record(Duration::from_micros(micros * (thread + 1)));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        let snapshot = latency.snapshot();
        assert_eq!(snapshot.count, 4_000);
        assert_eq!(snapshot.cumulative_counts.last(), Some(&4_000));
        assert!(snapshot
            .cumulative_counts
            .windows(2)
            .all(|pair| pair[0] <= pair[1]));
    }
}
