//! What `raftkv bench` measured, as text or JSON, and the CPU and memory figures beside it.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::steady::{IntervalRow, Steadiness};
use super::{BenchArgs, Placement, ReadConsistency, TargetKind};

/// The result of one run; serialized as-is for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The system driven.
    pub target: TargetKind,
    /// Its endpoints.
    pub endpoints: Vec<String>,
    /// How the clients reached it: protocol and connections.
    pub protocol: String,
    /// Which nodes the clients sent to: the leader, or spread over every node.
    pub placement: Placement,
    /// Concurrent clients.
    pub clients: u64,
    /// Threads of the load generator.
    pub threads: u16,
    /// Bytes per written value.
    pub value_size: usize,
    /// Distinct keys.
    pub keys: u64,
    /// Fraction of operations that were reads.
    pub read_ratio: f64,
    /// Consistency of the reads.
    pub consistency: ReadConsistency,
    /// The workload's seed.
    pub seed: u64,
    /// Wall-clock length of the run.
    pub elapsed_secs: f64,
    /// Operation counts.
    pub ops: OpCounts,
    /// Successful operations per second.
    pub throughput_ops_per_sec: f64,
    /// Latency of every successful operation.
    pub latency_us: LatencySummary,
    /// Latency of successful reads (absent when there were none).
    pub read_latency_us: Option<LatencySummary>,
    /// Latency of successful writes (absent when there were none).
    pub write_latency_us: Option<LatencySummary>,
    /// CPU this load generator used.
    pub client_cpu: CpuFigures,
    /// CPU and memory of the servers named by `--server-pids`.
    pub servers: Option<ServerFigures>,
    /// The first error a client saw, if any.
    pub first_error: Option<String>,
    /// The paced rate asked for (`--rate`), operations a second; absent for a closed loop.
    pub rate_ops_per_sec: Option<f64>,
    /// What latencies count from: `send` (closed loop) or `intended start` (paced).
    pub latency_from: &'static str,
    /// Per-interval figures (`--report-every`).
    pub intervals: Option<Vec<IntervalRow>>,
    /// Whether the intervals' p50 and p99 stayed near the first's (two full intervals or more).
    pub steadiness: Option<Steadiness>,
}

/// Operation counts of a run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OpCounts {
    /// Operations completed, successful or not.
    pub total: u64,
    /// Successful ones.
    pub ok: u64,
    /// Failed ones (an error answer or no answer in time).
    pub errors: u64,
    /// Successful reads.
    pub reads: u64,
    /// Successful writes.
    pub writes: u64,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl LatencySummary {
    /// The summary of `histogram`, or `None` if it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<LatencySummary> {
        (!histogram.is_empty()).then(|| LatencySummary {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        })
    }

    fn text(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            human_micros(self.p50),
            human_micros(self.p90),
            human_micros(self.p99),
            human_micros(self.p999),
            human_micros(self.max)
        )
    }
}

/// CPU used by some processes over the run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CpuFigures {
    /// User plus system CPU time.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the run's length: how many cores were busy on average.
    pub cores: f64,
    /// CPU time per successful operation, in microseconds.
    pub us_per_op: f64,
}

/// CPU and memory of the servers.
#[derive(Clone, Debug, Serialize)]
pub struct ServerFigures {
    /// Their process ids.
    pub pids: Vec<u32>,
    /// CPU time of all of them together during the run.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the run's length.
    pub cores: f64,
    /// CPU time of all of them together per successful operation, in microseconds.
    pub us_per_op: f64,
    /// Resident size of each at the end of the run, in bytes, in `pids` order.
    pub rss_bytes: Vec<u64>,
}

impl Report {
    /// Puts the measurements of a run together.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        args: &BenchArgs,
        endpoints: &[String],
        protocol: String,
        seed: u64,
        elapsed: Duration,
        reads: &Histogram<u64>,
        writes: &Histogram<u64>,
        errors: u64,
        first_error: Option<String>,
        client_cpu_seconds: f64,
        servers: Option<(f64, Vec<u64>)>,
    ) -> Report {
        let mut all = reads.clone();
        // Both have the same bounds, so adding cannot fail; an empty summary is the fallback.
        let merged = all.add(writes).is_ok();
        let ok = reads.len() + writes.len();
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let per_op = |cpu_seconds: f64| {
            if ok == 0 {
                0.0
            } else {
                cpu_seconds * 1e6 / ok as f64
            }
        };
        let empty = LatencySummary {
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
            mean: 0.0,
        };
        Report {
            target: args.target,
            endpoints: endpoints.to_vec(),
            protocol,
            placement: args.placement(),
            clients: args.clients,
            threads: args.threads,
            value_size: args.value_size,
            keys: args.keys,
            read_ratio: args.read_ratio,
            consistency: args.consistency,
            seed,
            elapsed_secs: seconds,
            ops: OpCounts {
                total: ok + errors,
                ok,
                errors,
                reads: reads.len(),
                writes: writes.len(),
            },
            throughput_ops_per_sec: ok as f64 / seconds,
            latency_us: if merged {
                LatencySummary::of(&all).unwrap_or(empty)
            } else {
                empty
            },
            read_latency_us: LatencySummary::of(reads),
            write_latency_us: LatencySummary::of(writes),
            client_cpu: CpuFigures {
                cpu_seconds: client_cpu_seconds,
                cores: client_cpu_seconds / seconds,
                us_per_op: per_op(client_cpu_seconds),
            },
            servers: servers.map(|(cpu_seconds, rss_bytes)| ServerFigures {
                pids: args.server_pids.clone(),
                cpu_seconds,
                cores: cpu_seconds / seconds,
                us_per_op: per_op(cpu_seconds),
                rss_bytes,
            }),
            first_error,
            rate_ops_per_sec: None,
            latency_from: "send",
            intervals: None,
            steadiness: None,
        }
    }

    /// Adds what `--rate` and `--report-every` measured.
    pub(super) fn with_intervals(
        mut self,
        rate: Option<f64>,
        intervals: Option<Vec<IntervalRow>>,
    ) -> Report {
        if rate.is_some() {
            self.latency_from = "intended start";
        }
        self.rate_ops_per_sec = rate;
        if let Some(mut rows) = intervals {
            self.steadiness = Steadiness::judge(&mut rows);
            self.intervals = Some(rows);
        }
        self
    }

    /// One line naming the run, for the plot.
    pub fn title(&self) -> String {
        format!(
            "{} — {} clients ({}), {} B values, {} keys, {:.0}% reads ({}): {:.0} ops/s",
            self.target.name(),
            self.clients,
            self.placement.name(),
            self.value_size,
            self.keys,
            self.read_ratio * 100.0,
            self.consistency.name(),
            self.throughput_ops_per_sec
        )
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "target      {} at {} ({}; clients {})",
            self.target.name(),
            self.endpoints.join(","),
            self.protocol,
            match self.placement {
                Placement::Leader => "to the leader",
                Placement::Spread => "spread over every node, leader hints ignored",
            }
        );
        let _ = writeln!(
            text,
            "workload    {} clients, {}-byte values, {} keys, {:.0}% reads ({}), seed {}",
            self.clients,
            self.value_size,
            self.keys,
            self.read_ratio * 100.0,
            self.consistency.name(),
            self.seed
        );
        let _ = writeln!(
            text,
            "operations  {} ok ({} reads, {} writes), {} errors in {:.2} s",
            self.ops.ok, self.ops.reads, self.ops.writes, self.ops.errors, self.elapsed_secs
        );
        match self.rate_ops_per_sec {
            Some(rate) => {
                let _ = writeln!(
                    text,
                    "throughput  {:.0} ops/s (paced at {rate:.0}; latency from each operation's \
                     intended start)",
                    self.throughput_ops_per_sec
                );
            }
            None => {
                let _ = writeln!(text, "throughput  {:.0} ops/s", self.throughput_ops_per_sec);
            }
        }
        let _ = writeln!(text, "latency     {}", self.latency_us.text());
        if self.ops.reads > 0 && self.ops.writes > 0 {
            if let Some(reads) = &self.read_latency_us {
                let _ = writeln!(text, "  reads     {}", reads.text());
            }
            if let Some(writes) = &self.write_latency_us {
                let _ = writeln!(text, "  writes    {}", writes.text());
            }
        }
        let _ = writeln!(
            text,
            "bench CPU   {:.2} cores, {:.1} µs per op",
            self.client_cpu.cores, self.client_cpu.us_per_op
        );
        if self.client_cpu.cores > 0.85 * f64::from(self.threads) {
            let _ = writeln!(
                text,
                "warning     the load generator was nearly always busy: the figures may be its \
                 limit, not the servers'; raise --threads if cores are free"
            );
        }
        if let Some(servers) = &self.servers {
            let rss: Vec<String> = servers
                .rss_bytes
                .iter()
                .map(|bytes| format!("{:.1} MiB", *bytes as f64 / (1024.0 * 1024.0)))
                .collect();
            let _ = writeln!(
                text,
                "server CPU  {:.2} cores, {:.1} µs per op (all servers); resident {}",
                servers.cores,
                servers.us_per_op,
                rss.join(", ")
            );
        }
        if let Some(error) = &self.first_error {
            let _ = writeln!(text, "first error {error}");
        }
        if let Some(rows) = &self.intervals {
            let _ = writeln!(text, "intervals   (RSS: all servers together)");
            let _ = writeln!(text, "{}", IntervalRow::text_header());
            for row in rows {
                let _ = writeln!(text, "{}", row.text());
            }
        }
        if let Some(steady) = &self.steadiness {
            let _ = writeln!(
                text,
                "steady      {}: over {} full intervals p50 {:.2}–{:.2}× and p99 {:.2}–{:.2}× the \
                 first's (allowed ±{:.0}%)",
                if steady.within { "yes" } else { "NO" },
                steady.intervals,
                steady.p50_min_vs_first,
                steady.p50_max_vs_first,
                steady.p99_min_vs_first,
                steady.p99_max_vs_first,
                steady.tolerance * 100.0
            );
        }
        text
    }
}

/// `1234` µs as `1.23 ms`, and so on.
fn human_micros(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.2} ms", micros as f64 / 1e3)
    } else {
        format!("{:.2} s", micros as f64 / 1e6)
    }
}

/// CPU time of this process so far, in seconds.
pub(super) fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU time (user + system) of process `pid` so far, in seconds, from /proc.
pub(super) fn process_cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {path} (is process {pid} running?): {error}"))?;
    // The command name is in parentheses and may hold spaces or parentheses itself: the
    // numeric fields start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the name: state is field 3 of stat(5), utime 14 and stime 15.
    let ticks = |field: usize| -> Result<u64, String> {
        fields
            .get(field - 3)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("{path}: field {field} is missing or not a number"))
    };
    let total = ticks(14)? + ticks(15)?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        return Err("cannot learn the clock tick rate".to_string());
    }
    Ok(total as f64 / per_second as f64)
}

/// Resident size of process `pid`, in bytes, from /proc.
pub(super) fn process_rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {path} (is process {pid} running?): {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path} has no VmRSS line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_a_resident_size() {
        let pid = std::process::id();
        // Burn a little CPU so the figure cannot be zero at coarse clock ticks.
        let start = std::time::Instant::now();
        let mut spin = 0u64;
        while start.elapsed() < Duration::from_millis(30) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(own_cpu_seconds() > 0.0);
        assert!(process_cpu_seconds(pid).is_ok());
        assert!(process_rss_bytes(pid).expect("own RSS") > 1024 * 1024);
        assert!(process_cpu_seconds(u32::MAX).is_err());
    }

    #[test]
    fn latencies_read_as_microseconds_milliseconds_or_seconds() {
        assert_eq!(human_micros(999), "999 µs");
        assert_eq!(human_micros(1_234), "1.23 ms");
        assert_eq!(human_micros(2_500_000), "2.50 s");
    }
}
