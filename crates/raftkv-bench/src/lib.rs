//! # raftkv-bench
//!
//! A closed-loop load generator for raftkv, and for etcd with the same workload; the
//! `raftkv-bench` binary, which `raftkv bench` runs. The server binary does not link it.
//!
//! ```text
//!  --clients N workers, each with its own session/connection
//!     loop: key = uniform over --keys, read with probability --read-ratio
//!           send, wait for the answer, record (completion time, latency, ok) ──▶ worker's
//!           until --ops are issued or --duration passes                         histograms
//!  at the end: merge ──▶ summary (text or --json), latency plot (--plot), CPU of this process
//!              and of the servers (--server-pids) over the run
//! ```
//!
//! Each worker keeps its own histograms and samples, so recording takes no lock and allocates
//! only when its sample buffer grows; each worker writes its keys into one reused buffer, and
//! values are one shared buffer. Every percentile in the reports and the plots is HdrHistogram's
//! `value_at_quantile` over microseconds, with 3 significant digits, the same definition as
//! the chaos suite's and raft-bench's figures.

#![deny(missing_docs)]

pub mod background;
pub mod disk;
pub mod fill;
pub mod history;
pub mod lease;
pub mod plot;
mod report;
pub mod steady;
pub mod sweep;
mod target;
pub mod watch;

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use raftkv_client::ClientTls;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

pub use report::{CpuFigures, LatencySummary, OpCounts, Report, ServerFigures};
use target::Driver;

/// How long a run lasts when neither --ops nor --duration is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Slowest latency the histograms hold; slower operations are recorded at this value.
const LATENCY_MAX_MICROS: u64 = 120_000_000;

/// `raftkv bench` options.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients; each has one request in flight (closed loop).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub clients: u64,
    /// Stop after this many operations in all (instead of --duration).
    #[arg(long, conflicts_with = "duration")]
    pub ops: Option<u64>,
    /// Run for this long (e.g. 30s, 500ms, 2m); 10s when neither this nor --ops is given.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Bytes in each written value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Number of distinct keys, chosen uniformly at random.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub keys: u64,
    /// Fraction of operations that are reads (0.0 to 1.0); the rest are puts.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub read_ratio: f64,
    /// Consistency of reads. etcd has no lease reads: its reads are linearizable or
    /// serializable (what `stale` selects there).
    #[arg(long, value_enum, default_value_t = ReadConsistency::Linearizable)]
    pub consistency: ReadConsistency,
    /// The system to drive: raftkv over its HTTP API, or anything speaking etcd's v3 gRPC API
    /// (etcd itself, or raftkv's --grpc-addr) over it.
    #[arg(long, value_enum, default_value_t = TargetKind::Raftkv)]
    pub target: TargetKind,
    /// etcd only: gRPC (HTTP/2) connections to each endpoint, every client a stream of one of
    /// them, the clients spread over the endpoints in turn. One, as etcd's own Go client
    /// keeps one per endpoint. raftkv's clients each have their own HTTP/1.1 keep-alive
    /// connection, unless --http2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub connections: u64,
    /// Send every request to the leader: etcd: to the endpoint whose Maintenance.Status
    /// names itself as leader; raftkv: the clients follow the leader the nodes name
    /// (`raftkv-leader`), as raftkv's client does. The default for --target raftkv.
    #[arg(long, conflicts_with = "spread")]
    pub target_leader: bool,
    /// Spread the clients evenly over every endpoint, each sending every request to its own
    /// node and never following the leader the nodes name, as clients behind a load balancer
    /// do: a follower serves their writes by forwarding them to the leader. The default for
    /// --target etcd (etcd's own clients spread over their endpoints).
    #[arg(long)]
    pub spread: bool,
    /// raftkv only: speak HTTP/2 with prior knowledge (h2c), every client a stream of one
    /// connection per node, as etcd's gRPC clients share theirs. Plain HTTP only.
    #[arg(long)]
    pub http2: bool,
    /// Prefix of every key, so a run does not disturb other data.
    #[arg(long, default_value = "bench-")]
    pub key_prefix: String,
    /// Longest wait for one answer before the operation counts as failed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Threads of the load generator. One drives tens of thousands of operations a second
    /// and leaves the cores to the servers when they share the machine; raise it when the
    /// report warns that the load generator was nearly always busy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// Seed of the workload's random choices (printed; random when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Process ids of the servers, to report their CPU time during the run and their resident
    /// size at its end (Linux /proc).
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Print the result as one JSON object on stdout instead of a text summary.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG of latency over time and the latency distribution here (with --sweep:
    /// throughput and latency against the swept parameter).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write every operation here as CSV (`completed_unix_micros,latency_micros,ok,
    /// service_micros,read`, in completion order), to line latencies up with events the
    /// servers log (a snapshot, a leader change) by wall-clock time. `service_micros` leaves
    /// out the wait of a paced (--rate) operation for its turn; `read` is 1 for a read.
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// The sweep options (--sweep and what goes with it).
    #[command(flatten)]
    pub sweep: sweep::SweepArgs,
    /// Pace the load: this many operations a second over all clients, open loop (each
    /// operation has an intended start; its latency counts from then, so a stall is charged
    /// to every operation it delayed). At most --clients are in flight. Without it, closed loop.
    #[arg(long, value_parser = steady::parse_rate)]
    pub rate: Option<f64>,
    /// Report throughput, p50/p99/p99.9, errors and the servers' resident size and CPU for
    /// every interval this long (e.g. 1m), live on stderr and in the summary.
    #[arg(long, value_parser = parse_duration)]
    pub report_every: Option<Duration>,
    /// Before the measured run, the same load (paced too with --rate) for this long on the
    /// same connections, not counted, so that the first interval, which steadiness is judged
    /// against, does not hold the start: a cluster's first seconds under load (files created,
    /// the store filling) and a load generator's first requests on new connections were the
    /// slowest of their runs.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
}

/// Which nodes the clients send their requests to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Every request to the leader (--target-leader; raftkv's default).
    Leader,
    /// The clients spread evenly over every node, each staying on its own (--spread; etcd's
    /// default).
    Spread,
}

impl Placement {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Leader => "leader",
            Placement::Spread => "spread",
        }
    }
}

impl BenchArgs {
    /// Where the clients send their requests: as --spread or --target-leader say, else the
    /// target's default.
    pub fn placement(&self) -> Placement {
        match (self.spread, self.target_leader, self.target) {
            (true, _, _) => Placement::Spread,
            (false, true, _) => Placement::Leader,
            (false, false, TargetKind::Raftkv) => Placement::Leader,
            (false, false, TargetKind::Etcd) => Placement::Spread,
        }
    }
}

/// Read consistency asked of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    /// Confirmed with a quorum before it is served.
    Linearizable,
    /// raftkv only: served by the leader under its lease.
    Lease,
    /// Whatever the answering node has (etcd: serializable).
    Stale,
}

impl ReadConsistency {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "linearizable",
            ReadConsistency::Lease => "lease",
            ReadConsistency::Stale => "stale",
        }
    }
}

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// raftkv's HTTP API.
    Raftkv,
    /// etcd's v3 gRPC API.
    Etcd,
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

impl TargetKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Raftkv => "raftkv",
            TargetKind::Etcd => "etcd",
        }
    }
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a fraction between 0.0 and 1.0")),
    }
}

/// What every worker reads: fixed before the run starts.
struct Plan {
    key_prefix: String,
    keys: u64,
    /// Digits of the largest key number: keys are zero-padded to it, so they sort numerically.
    key_width: usize,
    value: Bytes,
    read_ratio: f64,
    seed: u64,
    stop: Stop,
    record_samples: bool,
    /// The schedule of a paced run (--rate).
    pacer: Option<steady::Pacer>,
    /// Where operations are counted for the interval reports (--report-every).
    intervals: Option<Arc<steady::IntervalRecorder>>,
}

impl Plan {
    /// The workload of `args` from `started` until `stop`, recording no samples or intervals.
    fn counting_nothing(
        args: &BenchArgs,
        seed: u64,
        value: Bytes,
        stop: Stop,
        started: Instant,
    ) -> Plan {
        Plan {
            key_prefix: args.key_prefix.clone(),
            keys: args.keys,
            key_width: args.keys.saturating_sub(1).to_string().len(),
            value,
            read_ratio: args.read_ratio,
            seed,
            stop,
            record_samples: false,
            pacer: args.rate.map(|rate| steady::Pacer::new(started, rate)),
            intervals: None,
        }
    }
}

enum Stop {
    AfterOps(u64),
    At(Instant),
}

/// Counters the progress display reads while the workers run.
#[derive(Default)]
struct Progress {
    issued: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
}

/// What one worker measured.
struct WorkerResult {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    samples: Vec<plot::Sample>,
}

impl WorkerResult {
    fn new(samples_capacity: usize) -> WorkerResult {
        WorkerResult {
            reads: new_histogram(),
            writes: new_histogram(),
            errors: 0,
            first_error: None,
            samples: Vec::with_capacity(samples_capacity),
        }
    }
}

/// Samples each worker reserves room for before the run, where its length in operations is
/// known (a count, or a pace and a duration): a little over each worker's share, else 0. Grown
/// by doubling instead, every worker's buffer reached the same size at the same moment and all
/// of them copied at once: the paced runs' slowest seconds (p99 60-300 ms) fell at 80, 160 and
/// 320 s, where 64 workers at 205 operations a second each passed 2^14, 2^15 and 2^16 samples.
/// Only for runs that record samples.
fn samples_per_worker(args: &BenchArgs) -> usize {
    let total = match (args.ops, args.rate) {
        (Some(ops), _) => ops as f64,
        (None, Some(rate)) => rate * args.duration.unwrap_or(DEFAULT_DURATION).as_secs_f64(),
        (None, None) => 0.0,
    };
    let share = total * 1.02 / args.clients.max(1) as f64;
    // At most 1 GiB of samples a worker reserved up front; past it the buffer grows.
    let ceiling = (1usize << 30) / std::mem::size_of::<plot::Sample>();
    (share.ceil() as usize).min(ceiling)
}

/// A client of the measurement modes (`watch`, `lease`) with the bearer token, if any, set;
/// the error as text for the mode's message.
pub(crate) fn with_token(
    client: Result<raftkv_client::Client, raftkv_client::ClientError>,
    token: Option<&str>,
) -> Result<raftkv_client::Client, String> {
    client
        .and_then(|client| match token {
            Some(token) => client.with_bearer_token(token),
            None => Ok(client),
        })
        .map_err(|error| error.to_string())
}

/// The client options of the measurement modes: `request_timeout` for one answer, and 30 s to
/// find a node that serves (a leader elected meanwhile).
pub(crate) fn mode_options(request_timeout: Duration) -> raftkv_client::ClientOptions {
    raftkv_client::ClientOptions {
        request_timeout,
        retry_deadline: Duration::from_secs(30),
    }
}

/// A histogram of microseconds from 1 µs to two minutes with 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3)
        .expect("constant histogram bounds are valid")
}

/// Runs `raftkv bench` against `endpoints` and prints the result; `token` is sent as bearer
/// token by every raftkv client (for nodes run with `--auth-tokens`), and with `tls` they
/// speak HTTPS (for nodes run with `--tls-cert`).
pub async fn run(
    endpoints: Vec<String>,
    token: Option<String>,
    tls: Option<ClientTls>,
    args: BenchArgs,
) -> ExitCode {
    if let Some(spec) = args.sweep.sweep.clone() {
        return sweep::run(endpoints, token, tls, args, spec).await;
    }
    match run_bench(endpoints, token.as_deref(), tls, &args).await {
        Ok(report) => {
            if let Err(failed) = print_result(args.json, &report, || report.text()) {
                return failed;
            }
            if report.ops.ok == 0 {
                eprintln!("raftkv bench: no operation succeeded");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raftkv bench: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run_bench(
    endpoints: Vec<String>,
    token: Option<&str>,
    tls: Option<ClientTls>,
    args: &BenchArgs,
) -> Result<Report, String> {
    if args.target == TargetKind::Etcd && args.consistency == ReadConsistency::Lease {
        return Err("etcd has no lease reads: use --consistency linearizable or stale".into());
    }
    let seed = args.seed.unwrap_or_else(|| rand::thread_rng().gen());
    let mut value = vec![0u8; args.value_size];
    StdRng::seed_from_u64(seed).fill_bytes(&mut value);
    let value = Bytes::from(value);
    let protocol = target::protocol(args, tls.is_some());
    let mut drivers = target::connect(&endpoints, token, tls, args).await?;
    if !args.warmup.is_zero() {
        drivers = warm_up(drivers, args, seed, value.clone()).await?;
    }
    let record_samples = args.plot.is_some() || args.samples.is_some();
    let samples_capacity = if record_samples {
        samples_per_worker(args)
    } else {
        0
    };
    let results = fresh_results(drivers.len(), samples_capacity);
    let server_cpu_start = servers_cpu_seconds(&args.server_pids)?;
    let cpu_start = report::own_cpu_seconds();
    let started = Instant::now();
    let started_unix_micros = unix_micros_now();
    // The deadline counts from now, not from before the connections were made.
    let stop = match args.ops {
        Some(ops) => Stop::AfterOps(ops),
        None => Stop::At(started + args.duration.unwrap_or(DEFAULT_DURATION)),
    };
    let plan = Arc::new(Plan {
        record_samples,
        intervals: args
            .report_every
            .map(|_| Arc::new(steady::IntervalRecorder::new())),
        ..Plan::counting_nothing(args, seed, value, stop, started)
    });
    let progress = Arc::new(Progress::default());
    let (bar, display) = show_progress(args, Arc::clone(&progress), started);
    let (intervals_done, interval_reporter) = match (&plan.intervals, args.report_every) {
        (Some(recorder), Some(every)) => {
            let (done, finished) = tokio::sync::oneshot::channel();
            let reporter = tokio::spawn(steady::report_intervals(
                Arc::clone(recorder),
                every,
                started,
                args.server_pids.clone(),
                args.rate.is_some(),
                finished,
            ));
            (Some(done), Some(reporter))
        }
        _ => (None, None),
    };

    let mut workers = tokio::task::JoinSet::new();
    for (index, (driver, result)) in drivers.into_iter().zip(results).enumerate() {
        let plan = Arc::clone(&plan);
        let progress = Arc::clone(&progress);
        workers.spawn(work(index as u64, driver, result, plan, progress, started));
    }
    let results = join_workers(workers).await?;
    let elapsed = started.elapsed();
    if let Some(done) = intervals_done {
        // The reporter may have ended already only by panicking, which the join reports.
        let _ = done.send(());
    }
    let intervals = match interval_reporter {
        Some(reporter) => Some(
            reporter
                .await
                .map_err(|error| format!("the interval reporter failed: {error}"))?,
        ),
        None => None,
    };
    let client_cpu = report::own_cpu_seconds() - cpu_start;
    let servers = if args.server_pids.is_empty() {
        None
    } else {
        let cpu = servers_cpu_seconds(&args.server_pids)? - server_cpu_start;
        let rss = args
            .server_pids
            .iter()
            .map(|pid| report::process_rss_bytes(*pid))
            .collect::<Result<Vec<_>, _>>()?;
        Some((cpu, rss))
    };
    display.abort();
    bar.finish_and_clear();

    let mut reads = new_histogram();
    let mut writes = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    let mut samples = Vec::new();
    for (_, result) in results {
        reads
            .add(&result.reads)
            .map_err(|error| format!("merging histograms: {error}"))?;
        writes
            .add(&result.writes)
            .map_err(|error| format!("merging histograms: {error}"))?;
        errors += result.errors;
        first_error = first_error.or(result.first_error);
        samples.extend(result.samples);
    }
    let report = Report::new(
        args,
        &endpoints,
        protocol,
        seed,
        elapsed,
        &reads,
        &writes,
        errors,
        first_error,
        client_cpu,
        servers,
    )
    .with_intervals(args.rate, intervals);
    samples.sort_by_key(|sample| sample.at_micros);
    if let Some(path) = &args.samples {
        write_samples_csv(path, &samples, started_unix_micros)?;
    }
    if let Some(path) = &args.plot {
        let mut all = reads.clone();
        all.add(&writes)
            .map_err(|error| format!("merging histograms: {error}"))?;
        let svg = plot::render_svg(&report.title(), &samples, &all)?;
        std::fs::write(path, svg)
            .map_err(|error| format!("cannot write the plot to {}: {error}", path.display()))?;
    }
    Ok(report)
}

/// Runs the load of `args` for `--warmup` on `drivers`, counting nothing, and gives them back.
async fn warm_up(
    drivers: Vec<Driver>,
    args: &BenchArgs,
    seed: u64,
    value: Bytes,
) -> Result<Vec<Driver>, String> {
    let results = fresh_results(drivers.len(), 0);
    let started = Instant::now();
    // Another sequence of keys than the measured run's.
    let plan = Arc::new(Plan::counting_nothing(
        args,
        seed.wrapping_add(1),
        value,
        Stop::At(started + args.warmup),
        started,
    ));
    let progress = Arc::new(Progress::default());
    let mut workers = tokio::task::JoinSet::new();
    for (index, (driver, result)) in drivers.into_iter().zip(results).enumerate() {
        workers.spawn(work(
            index as u64,
            driver,
            result,
            Arc::clone(&plan),
            Arc::clone(&progress),
            started,
        ));
    }
    let results = join_workers(workers).await?;
    Ok(results.into_iter().map(|(driver, _)| driver).collect())
}

/// An empty result for each of `workers`, each with room for `samples_capacity` samples: made
/// before a run's clock starts, since 256 workers making theirs as they started (two
/// histograms of ~150 KB each, zeroed) held the run's first sends back by 35-75 ms.
fn fresh_results(workers: usize, samples_capacity: usize) -> Vec<WorkerResult> {
    (0..workers)
        .map(|_| WorkerResult::new(samples_capacity))
        .collect()
}

/// Every worker's driver and result, once all have stopped.
async fn join_workers(
    mut workers: tokio::task::JoinSet<(Driver, WorkerResult)>,
) -> Result<Vec<(Driver, WorkerResult)>, String> {
    let mut results = Vec::with_capacity(workers.len());
    while let Some(joined) = workers.join_next().await {
        results.push(joined.map_err(|error| format!("a client task failed: {error}"))?);
    }
    Ok(results)
}

/// Microseconds since the Unix epoch now (0 if the clock is set before it).
fn unix_micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, micros)
}

/// Writes `samples` (times relative to a run that started at `started_unix_micros`) as CSV.
fn write_samples_csv(
    path: &std::path::Path,
    samples: &[plot::Sample],
    started_unix_micros: u64,
) -> Result<(), String> {
    let mut text = String::with_capacity(32 * (samples.len() + 1));
    text.push_str("completed_unix_micros,latency_micros,ok,service_micros,read\n");
    for sample in samples {
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            started_unix_micros + sample.at_micros,
            sample.latency_micros,
            u8::from(sample.ok),
            sample.service_micros,
            u8::from(sample.read)
        );
    }
    std::fs::write(path, text)
        .map_err(|error| format!("cannot write the samples to {}: {error}", path.display()))
}

/// One closed-loop client: one operation in flight until the plan says stop; gives its driver
/// back with what it measured, added to `result`.
async fn work(
    index: u64,
    mut driver: Driver,
    mut result: WorkerResult,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
    started: Instant,
) -> (Driver, WorkerResult) {
    let mut random =
        StdRng::seed_from_u64(plan.seed ^ (index + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut key = String::with_capacity(plan.key_prefix.len() + plan.key_width);
    loop {
        // Paced: the slot's intended start decides whether the run is over.
        let intended = plan.pacer.as_ref().map(steady::Pacer::next_start);
        match plan.stop {
            Stop::AfterOps(total) => {
                if progress.issued.fetch_add(1, Ordering::Relaxed) >= total {
                    break;
                }
            }
            Stop::At(deadline) => {
                if intended.unwrap_or_else(Instant::now) >= deadline {
                    break;
                }
            }
        }
        if let Some(intended) = intended {
            tokio::time::sleep_until(intended.into()).await;
        }
        key.clear();
        key.push_str(&plan.key_prefix);
        // Writing to a String cannot fail.
        let _ = write!(
            key,
            "{:0width$}",
            random.gen_range(0..plan.keys),
            width = plan.key_width
        );
        let is_read = plan.read_ratio > 0.0 && random.gen_bool(plan.read_ratio);
        let begin = Instant::now();
        let outcome = if is_read {
            driver.read(&key).await
        } else {
            driver.write(&key, &plan.value).await
        };
        let end = Instant::now();
        let service = micros(end - begin).clamp(1, LATENCY_MAX_MICROS);
        // Open loop: from the intended start, so time spent waiting for it to come round
        // behind a slow operation counts (module `steady`).
        let latency = intended.map_or(service, |intended| {
            micros(end.saturating_duration_since(intended)).clamp(1, LATENCY_MAX_MICROS)
        });
        let ok = outcome.is_ok();
        if let Some(recorder) = &plan.intervals {
            recorder.record(ok.then_some((latency, service)));
        }
        match outcome {
            Ok(()) => {
                let histogram = if is_read {
                    &mut result.reads
                } else {
                    &mut result.writes
                };
                histogram.saturating_record(latency);
            }
            Err(error) => {
                result.errors += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                result.first_error.get_or_insert(error);
            }
        }
        progress.completed.fetch_add(1, Ordering::Relaxed);
        if plan.record_samples {
            result.samples.push(plot::Sample {
                at_micros: micros(end - started),
                latency_micros: latency,
                ok,
                service_micros: service,
                read: is_read,
            });
        }
    }
    (driver, result)
}

/// Prints `result` as one JSON object (`json`) or as `text`; exit status 1 if it cannot be
/// encoded.
pub(crate) fn print_result<T: serde::Serialize>(
    json: bool,
    result: &T,
    text: impl FnOnce() -> String,
) -> Result<(), ExitCode> {
    if json {
        match serde_json::to_string(result) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("raftkv bench: cannot encode the result: {error}");
                return Err(ExitCode::from(1));
            }
        }
    } else {
        print!("{}", text());
    }
    Ok(())
}

/// CPU time of all of `pids` together so far, in seconds.
fn servers_cpu_seconds(pids: &[u32]) -> Result<f64, String> {
    pids.iter()
        .map(|pid| report::process_cpu_seconds(*pid))
        .sum()
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Draws a progress bar on a terminal (nothing when stderr is piped or --json is given).
fn show_progress(
    args: &BenchArgs,
    progress: Arc<Progress>,
    started: Instant,
) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let visible = std::io::stderr().is_terminal() && !args.json;
    let (length, by_ops) = match (args.ops, args.duration) {
        (Some(ops), _) => (ops, true),
        (None, duration) => (micros(duration.unwrap_or(DEFAULT_DURATION)) / 1000, false),
    };
    let bar = ProgressBar::with_draw_target(
        Some(length),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let template = if by_ops {
        "{bar:40} {pos}/{len} ops {msg}"
    } else {
        "{bar:40} {elapsed}/{duration} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    let shown = bar.clone();
    let updater = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        loop {
            ticker.tick().await;
            let completed = progress.completed.load(Ordering::Relaxed);
            let errors = progress.errors.load(Ordering::Relaxed);
            let seconds = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(if by_ops {
                completed
            } else {
                micros(started.elapsed()) / 1000
            });
            bar.set_message(format!(
                "{:.0} ops/s, {completed} done, {errors} errors",
                completed as f64 / seconds
            ));
        }
    });
    (shown, updater)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn ratios_outside_zero_to_one_are_refused() {
        assert_eq!(parse_ratio("0.9"), Ok(0.9));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("NaN").is_err());
    }
}
