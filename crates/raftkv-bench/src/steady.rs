//! Paced load (`--rate`) and per-interval reports (`--report-every`): what a steady-state run
//! needs to show whether latency and memory stay level over minutes or hours.
//!
//! ```text
//!  --rate R: one schedule for all clients, operation k intended at start + k/R
//!     free client ──takes the next slot k──► sleeps until its intended time ──► sends
//!     latency = completion − intended time   (not − send time: a stall that delays sends
//!                                             still counts against every operation it held up)
//!  --report-every I: every I, the counts since the last report ──► one row
//!     (throughput, p50/p99/p99.9, errors, servers' resident size and CPU, this process's CPU)
//! ```
//!
//! Open loop, bounded by the clients: at most `--clients` operations are in flight. When the
//! target falls behind, slots pile up in the past and their latency grows by the time they
//! waited for a free client, which is what a user arriving at that moment would have seen
//! (coordinated omission: a closed loop would send less while the target is slow and report
//! only the fast operations). Tokio's timer fires on millisecond ticks, so an operation starts
//! up to about 1 ms after its intended time; that lateness is counted in the latency, the
//! same in every interval. The service time (send to completion) is reported beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::{self, LatencySummary};

/// How far from the first full interval's p50 and p99 every later one may be, as a fraction:
/// issue 29's steady-state target ("within 10% of the first minute's").
pub const STEADY_TOLERANCE: f64 = 0.10;

/// An interval shorter than this fraction of `--report-every` (the tail of a run) is marked
/// partial and left out of the steadiness check.
const FULL_INTERVAL_FRACTION: f64 = 0.9;

/// The schedule of a paced run: operation `k` (counting from 0 over all clients) is intended
/// to start `k / rate` seconds after the start.
#[derive(Debug)]
pub(crate) struct Pacer {
    started: Instant,
    nanos_per_operation: f64,
    next_slot: AtomicU64,
}

impl Pacer {
    /// A schedule of `rate` operations a second from `started`; `rate` is positive and finite
    /// (checked by the argument parser).
    pub(crate) fn new(started: Instant, rate: f64) -> Pacer {
        assert!(
            rate.is_finite() && rate > 0.0,
            "rate {rate} is not positive"
        );
        Pacer {
            started,
            nanos_per_operation: 1e9 / rate,
            next_slot: AtomicU64::new(0),
        }
    }

    /// Takes the next slot of the schedule and returns its intended start.
    pub(crate) fn next_start(&self) -> Instant {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        self.slot_start(slot)
    }

    fn slot_start(&self, slot: u64) -> Instant {
        // f64 holds slot numbers exactly up to 2^53; nanoseconds up to ~292 years fit in u64.
        let offset = (slot as f64 * self.nanos_per_operation).round() as u64;
        self.started + Duration::from_nanos(offset)
    }
}

/// Parses `--rate`: operations a second, a positive number.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate in operations per second (a number above 0, at most 10000000)"
        )),
    }
}

/// What the clients recorded since the last report.
struct IntervalCounts {
    /// Latency of successful operations (from the intended start when paced).
    latency: Histogram<u64>,
    /// Send to completion of successful operations; kept only when paced.
    service: Histogram<u64>,
    errors: u64,
}

impl IntervalCounts {
    fn new() -> IntervalCounts {
        IntervalCounts {
            latency: crate::new_histogram(),
            service: crate::new_histogram(),
            errors: 0,
        }
    }
}

/// Where the clients record each operation for the interval reports. The lock is held for
/// one histogram record: at the tens of thousands of operations a second one load generator
/// drives, uncontended, it costs far less than a request.
pub(crate) struct IntervalRecorder {
    current: Mutex<IntervalCounts>,
}

impl IntervalRecorder {
    pub(crate) fn new() -> IntervalRecorder {
        IntervalRecorder {
            current: Mutex::new(IntervalCounts::new()),
        }
    }

    /// Records one completed operation: `latency_us` as the run reports it, `service_us` from
    /// the send (the same unless paced), `None` for a failed one.
    pub(crate) fn record(&self, outcome: Option<(u64, u64)>) {
        let mut current = self.lock();
        match outcome {
            Some((latency_us, service_us)) => {
                current.latency.saturating_record(latency_us);
                current.service.saturating_record(service_us);
            }
            None => current.errors += 1,
        }
    }

    fn take(&self) -> IntervalCounts {
        std::mem::replace(&mut *self.lock(), IntervalCounts::new())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IntervalCounts> {
        // A client that panicked while recording left counts that are still counts.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One interval of a run with `--report-every`.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalRow {
    /// 1 for the first interval.
    pub number: usize,
    /// Start of the interval, seconds after the run's start.
    pub start_secs: f64,
    /// Its length (the last one of a run may be short).
    pub elapsed_secs: f64,
    /// Shorter than 90% of `--report-every` (the run's tail): not part of the steadiness check.
    pub partial: bool,
    /// Successful operations completed in it.
    pub ok: u64,
    /// Failed ones.
    pub errors: u64,
    /// `ok` per second.
    pub throughput_ops_per_sec: f64,
    /// Latency of its successful operations (from the intended start when paced).
    pub latency_us: Option<LatencySummary>,
    /// Paced runs only: send to completion, without the wait for the intended start or for a
    /// free client.
    pub service_latency_us: Option<LatencySummary>,
    /// p50 over the first full interval's p50.
    pub p50_vs_first: Option<f64>,
    /// p99 over the first full interval's p99.
    pub p99_vs_first: Option<f64>,
    /// Resident size of each server (`--server-pids` order) at the interval's end, in bytes.
    pub server_rss_bytes: Option<Vec<u64>>,
    /// Cores the servers used together over the interval.
    pub server_cores: Option<f64>,
    /// Cores this load generator used over the interval.
    pub client_cores: f64,
}

/// Whether every full interval's p50 and p99 stayed within [`STEADY_TOLERANCE`] of the first
/// full interval's.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Steadiness {
    /// The allowed distance, as a fraction of the first interval's figure.
    pub tolerance: f64,
    /// Full intervals compared (the first included).
    pub intervals: usize,
    /// The largest p50 over the first interval's p50.
    pub p50_max_vs_first: f64,
    /// The smallest.
    pub p50_min_vs_first: f64,
    /// The largest p99 over the first interval's p99.
    pub p99_max_vs_first: f64,
    /// The smallest.
    pub p99_min_vs_first: f64,
    /// Every ratio within `1 ± tolerance`.
    pub within: bool,
}

impl Steadiness {
    /// Fills in the rows' ratios to the first full interval and judges them; `None` when
    /// fewer than two full intervals have latencies.
    pub fn judge(rows: &mut [IntervalRow]) -> Option<Steadiness> {
        let first = rows
            .iter()
            .find(|row| !row.partial)
            .and_then(|row| row.latency_us)?;
        let (p50_first, p99_first) = (first.p50.max(1) as f64, first.p99.max(1) as f64);
        let mut ratios = Vec::new();
        for row in rows.iter_mut().filter(|row| !row.partial) {
            let Some(latency) = row.latency_us else {
                continue;
            };
            let p50 = latency.p50 as f64 / p50_first;
            let p99 = latency.p99 as f64 / p99_first;
            row.p50_vs_first = Some(p50);
            row.p99_vs_first = Some(p99);
            ratios.push((p50, p99));
        }
        if ratios.len() < 2 {
            return None;
        }
        let fold = |pick: fn(&(f64, f64)) -> f64, max: bool| {
            ratios
                .iter()
                .map(pick)
                .fold(if max { f64::MIN } else { f64::MAX }, |a, b| {
                    if max {
                        a.max(b)
                    } else {
                        a.min(b)
                    }
                })
        };
        let steadiness = Steadiness {
            tolerance: STEADY_TOLERANCE,
            intervals: ratios.len(),
            p50_max_vs_first: fold(|r| r.0, true),
            p50_min_vs_first: fold(|r| r.0, false),
            p99_max_vs_first: fold(|r| r.1, true),
            p99_min_vs_first: fold(|r| r.1, false),
            within: false,
        };
        let inside = |ratio: f64| (ratio - 1.0).abs() <= STEADY_TOLERANCE + 1e-9;
        Some(Steadiness {
            within: [
                steadiness.p50_max_vs_first,
                steadiness.p50_min_vs_first,
                steadiness.p99_max_vs_first,
                steadiness.p99_min_vs_first,
            ]
            .into_iter()
            .all(inside),
            ..steadiness
        })
    }
}

/// Makes a row every `every` from `recorder` until `done` fires, then one for what is left.
/// Each row is also printed to stderr as it is made, so a long run shows its progress in a
/// log (the summary and --json have them all at the end).
pub(crate) async fn report_intervals(
    recorder: std::sync::Arc<IntervalRecorder>,
    every: Duration,
    started: Instant,
    server_pids: Vec<u32>,
    paced: bool,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> Vec<IntervalRow> {
    let mut rows = Vec::new();
    let mut interval_start = started;
    let mut client_cpu = report::own_cpu_seconds();
    let mut server_cpu = servers_cpu(&server_pids);
    eprintln!("{}", IntervalRow::text_header());
    loop {
        let next = started + every * (rows.len() as u32 + 1);
        let finished = tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => false,
            _ = &mut done => true,
        };
        let now = Instant::now();
        let counts = recorder.take();
        let elapsed = now.saturating_duration_since(interval_start);
        let client_now = report::own_cpu_seconds();
        let server_now = servers_cpu(&server_pids);
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let ok = counts.latency.len();
        let row = IntervalRow {
            number: rows.len() + 1,
            start_secs: interval_start
                .saturating_duration_since(started)
                .as_secs_f64(),
            elapsed_secs: seconds,
            partial: seconds < every.as_secs_f64() * FULL_INTERVAL_FRACTION,
            ok,
            errors: counts.errors,
            throughput_ops_per_sec: ok as f64 / seconds,
            latency_us: LatencySummary::of(&counts.latency),
            service_latency_us: if paced {
                LatencySummary::of(&counts.service)
            } else {
                None
            },
            p50_vs_first: None,
            p99_vs_first: None,
            server_rss_bytes: (!server_pids.is_empty())
                .then(|| {
                    server_pids
                        .iter()
                        .map(|pid| report::process_rss_bytes(*pid).ok())
                        .collect::<Option<Vec<_>>>()
                })
                .flatten(),
            server_cores: match (server_cpu, server_now) {
                (Some(before), Some(after)) => Some((after - before) / seconds),
                _ => None,
            },
            client_cores: (client_now - client_cpu) / seconds,
        };
        interval_start = now;
        client_cpu = client_now;
        server_cpu = server_now;
        // The tail after the last full interval is kept only if something happened in it.
        if !(finished && row.partial && row.ok == 0 && row.errors == 0) {
            eprintln!("{}", row.text());
            rows.push(row);
        }
        if finished {
            return rows;
        }
    }
}

/// The servers' CPU seconds together, `None` when there are none or one cannot be read.
fn servers_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|pid| report::process_cpu_seconds(*pid).ok())
        .sum()
}

impl IntervalRow {
    /// The column names of [`IntervalRow::text`].
    pub fn text_header() -> String {
        format!(
            "{:>4} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6} {:>12} {:>7}",
            "#",
            "at s",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "p50÷1",
            "p99÷1",
            "RSS MiB",
            "srv CPU"
        )
    }

    /// One line of the interval table: the servers' resident size is their sum.
    pub fn text(&self) -> String {
        let millis = |pick: fn(&LatencySummary) -> u64| {
            self.latency_us.as_ref().map_or_else(
                || "-".to_string(),
                |l| format!("{:.2}", pick(l) as f64 / 1e3),
            )
        };
        let ratio =
            |value: Option<f64>| value.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
        let rss = self.server_rss_bytes.as_ref().map_or_else(
            || "-".to_string(),
            |bytes| {
                format!(
                    "{:.1}",
                    bytes.iter().sum::<u64>() as f64 / (1024.0 * 1024.0)
                )
            },
        );
        let cores = self
            .server_cores
            .map_or_else(|| "-".to_string(), |cores| format!("{cores:.2}"));
        format!(
            "{:>4} {:>8.0} {:>9.0} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6} {:>12} {:>7}{}",
            self.number,
            self.start_secs,
            self.throughput_ops_per_sec,
            millis(|l| l.p50),
            millis(|l| l.p99),
            millis(|l| l.p999),
            self.errors,
            ratio(self.p50_vs_first),
            ratio(self.p99_vs_first),
            rss,
            cores,
            if self.partial { "  (partial)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spaces_slots_by_one_over_the_rate_whoever_takes_them() {
        let started = Instant::now();
        let pacer = Pacer::new(started, 4000.0);
        let starts: Vec<Duration> = (0..5).map(|_| pacer.next_start() - started).collect();
        assert_eq!(
            starts,
            [0, 250, 500, 750, 1000].map(Duration::from_micros).to_vec()
        );
        // Slot numbers far into a long run keep their spacing exact.
        assert_eq!(
            pacer.slot_start(4000 * 3600) - started,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn rates_must_be_positive_numbers() {
        assert_eq!(parse_rate("2500"), Ok(2500.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-3", "NaN", "inf", "fast", ""] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_recorder_hands_over_each_interval_once_and_starts_afresh() {
        let recorder = IntervalRecorder::new();
        recorder.record(Some((1000, 900)));
        recorder.record(Some((3000, 800)));
        recorder.record(None);
        let first = recorder.take();
        assert_eq!(first.latency.len(), 2);
        assert_eq!(first.service.max(), 900);
        assert_eq!(first.errors, 1);
        let second = recorder.take();
        assert!(second.latency.is_empty() && second.errors == 0);
    }

    fn row(number: usize, p50: u64, p99: u64, partial: bool) -> IntervalRow {
        IntervalRow {
            number,
            start_secs: 60.0 * (number - 1) as f64,
            elapsed_secs: if partial { 1.0 } else { 60.0 },
            partial,
            ok: 100,
            errors: 0,
            throughput_ops_per_sec: 100.0 / 60.0,
            latency_us: Some(LatencySummary {
                p50,
                p90: p99,
                p99,
                p999: p99,
                max: p99,
                mean: p50 as f64,
            }),
            service_latency_us: None,
            p50_vs_first: None,
            p99_vs_first: None,
            server_rss_bytes: None,
            server_cores: None,
            client_cores: 0.0,
        }
    }

    #[test]
    fn steadiness_compares_every_full_interval_with_the_first_and_skips_the_tail() {
        let mut rows = vec![
            row(1, 5000, 10_000, false),
            row(2, 5400, 10_900, false),
            row(3, 4600, 9_200, false),
            row(4, 50_000, 90_000, true),
        ];
        let steady = Steadiness::judge(&mut rows).expect("three full intervals");
        assert!(steady.within, "{steady:?}");
        assert_eq!(steady.intervals, 3);
        assert_eq!(rows[1].p50_vs_first, Some(1.08));
        assert_eq!(rows[3].p50_vs_first, None, "the partial tail is not judged");

        rows.push(row(5, 5000, 11_200, false));
        let drifted = Steadiness::judge(&mut rows).expect("four full intervals");
        assert!(!drifted.within, "p99 12% above the first: {drifted:?}");
        assert!((drifted.p99_max_vs_first - 1.12).abs() < 1e-9);

        let mut lone = vec![row(1, 5000, 10_000, false)];
        assert!(
            Steadiness::judge(&mut lone).is_none(),
            "nothing to compare with"
        );
    }

    #[test]
    fn an_interval_row_prints_its_figures_in_milliseconds_and_mebibytes() {
        let mut line = row(2, 5000, 12_346, false);
        line.server_rss_bytes = Some(vec![10 << 20, 20 << 20]);
        line.p50_vs_first = Some(1.04);
        let text = line.text();
        assert!(
            text.contains(" 5.00 ") && text.contains(" 12.35 "),
            "{text}"
        );
        assert!(text.contains(" 30.0 ") && text.contains(" 1.04 "), "{text}");
        assert!(!text.contains("partial"));
        assert!(row(3, 1, 1, true).text().ends_with("(partial)"));
    }
}
