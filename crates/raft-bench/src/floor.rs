//! The physical floor of a replicated write on this machine: how long the disk takes to make a
//! small append durable, and how long a loopback round trip takes. `node` compares its cluster
//! against it; `floor` prints it on its own (for scripts comparing raftkv with other systems).
//!
//! ```text
//!  fdatasync        one file: write_all(N bytes, appended) + File::sync_data, repeated
//!  shared-disk      the same in `shared_files` files at once, one thread each (the peers of a
//!                   local cluster share one disk); every file's latencies are pooled
//!  round trip       tokio TcpStream ping-pong of 8 bytes over loopback, TCP_NODELAY
//!
//!  one replicated write (floor mode):
//!      leader fdatasync ─► round trip to a follower ─► follower fdatasync
//!      floor_us        = 2 × fdatasync p50        + round trip p50
//!      shared_floor_us = 2 × shared fdatasync p50 + round trip p50
//! ```
//!
//! The sum is a floor for a leader that syncs before it sends; a leader that sends while its
//! own sync runs (thesis §10.2.1) needs only one sync plus the round trip on its critical path,
//! which is the figure `node` divides by.
//!
//! `raft-bench floor --dir DIR [--json]` samples for about two seconds in DIR (which must
//! exist; the files it creates are removed), in four rounds of the three kinds in turn, and
//! prints medians and 90th percentiles, as a table or, with `--json`, as one JSON object on
//! stdout. A failure (DIR missing or not writable, a failed sync) is a message on stderr and
//! exit code 1; a usage error exits with 2.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes of each ping and pong of the loopback round trip.
const PING_BYTES: usize = 8;
/// Bytes appended before each fdatasync in floor mode: "fdatasync of a 4 KiB append".
const FLOOR_MODE_SYNC_BYTES: usize = 4096;
/// Files synced at once for the shared-disk samples in floor mode: one per peer of a
/// 3-node cluster.
const FLOOR_MODE_SHARED_FILES: usize = 3;
/// Rounds of floor mode, pooled: short alternating slices of each kind, so a disk whose speed
/// swings (a shared virtual disk does, by 10x within a second) weighs on every kind alike.
const FLOOR_MODE_ROUNDS: usize = 4;
/// How long floor mode samples each of its three kinds per round: about two seconds in all.
const FLOOR_MODE_SAMPLE_TIME: Duration = Duration::from_millis(167);
/// Worker threads of floor mode's runtime, as `node` uses, so round trips cross threads alike.
const FLOOR_MODE_WORKER_THREADS: usize = 2;
/// Exit code of a usage error, as `main` uses.
const EXIT_USAGE: u8 = 2;
/// Exit code of a failed measurement.
const EXIT_FAILURE: u8 = 1;

/// What one round of sampling does.
#[derive(Clone, Copy, Debug)]
pub struct FloorShape {
    /// Bytes appended before each fdatasync.
    pub sync_bytes: usize,
    /// Files synced at once for the shared-disk samples.
    pub shared_files: usize,
    /// How long each kind of sample is taken per round.
    pub sample_time: Duration,
}

/// Samples of the physical floor, pooled over any number of rounds.
#[derive(Debug)]
pub struct Floor {
    shape: FloorShape,
    /// Append-and-fdatasync latencies of a lone file.
    syncs: Vec<Duration>,
    /// Append-and-fdatasync latencies while `shape.shared_files` files sync at once.
    shared_syncs: Vec<Duration>,
    /// Loopback ping-pong latencies.
    round_trips: Vec<Duration>,
}

/// The median and 90th percentile of one kind of sample, and how many samples there were.
#[derive(Clone, Copy, Debug)]
pub struct Quantiles {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// Number of samples.
    pub samples: usize,
}

impl Quantiles {
    /// The quantiles of `samples`.
    fn of(samples: &[Duration]) -> Quantiles {
        let latencies = Latencies::of(samples);
        let quantiles = Quantiles {
            p50: latencies.at(0.50),
            p90: latencies.at(0.90),
            samples: samples.len(),
        };
        assert!(quantiles.p50 <= quantiles.p90, "quantiles: p50 <= p90");
        quantiles
    }
}

/// What a `Floor` measured.
#[derive(Clone, Copy, Debug)]
pub struct FloorSummary {
    /// A lone file's append + fdatasync.
    pub sync: Quantiles,
    /// Append + fdatasync while every peer's file syncs at once.
    pub shared_sync: Quantiles,
    /// Loopback TCP round trip.
    pub round_trip: Quantiles,
}

impl FloorSummary {
    /// Leader fdatasync + round trip + follower fdatasync, from the medians.
    pub fn replicated_write(&self) -> Duration {
        2 * self.sync.p50 + self.round_trip.p50
    }

    /// The same with the fdatasync measured while every peer's file syncs at once.
    pub fn shared_replicated_write(&self) -> Duration {
        2 * self.shared_sync.p50 + self.round_trip.p50
    }
}

impl Floor {
    /// No samples yet.
    pub fn new(shape: FloorShape) -> Floor {
        assert!(shape.sync_bytes > 0, "floor: sync_bytes > 0");
        assert!(shape.shared_files > 0, "floor: shared_files > 0");
        Floor {
            shape,
            syncs: Vec::new(),
            shared_syncs: Vec::new(),
            round_trips: Vec::new(),
        }
    }

    /// Adds `shape.sample_time` of each kind of sample, syncing files in `dir` (created, then
    /// removed); `round` tells this round's files from earlier rounds'.
    pub async fn sample(&mut self, dir: &Path, round: usize) -> io::Result<()> {
        let shape = self.shape;
        let path = floor_file(dir, round, None);
        let syncs = tokio::task::spawn_blocking(move || sync_latencies(&path, shape))
            .await
            .expect("sync sampling does not panic")?;
        self.syncs.extend(syncs);

        let dir_owned = dir.to_path_buf();
        let shared =
            tokio::task::spawn_blocking(move || shared_sync_latencies(&dir_owned, round, shape))
                .await
                .expect("sync sampling does not panic")?;
        self.shared_syncs.extend(shared);

        self.round_trips
            .extend(round_trip_latencies(shape.sample_time).await?);
        Ok(())
    }

    /// The quantiles of every kind of sample taken so far.
    pub fn summary(&mut self) -> FloorSummary {
        FloorSummary {
            sync: Quantiles::of(&self.syncs),
            shared_sync: Quantiles::of(&self.shared_syncs),
            round_trip: Quantiles::of(&self.round_trips),
        }
    }
}

/// Latency samples, read as every report of this workspace reads them: HdrHistogram's
/// `value_at_quantile`, here over nanoseconds with 3 significant digits (a loopback round trip
/// takes tens of microseconds, so whole microseconds would be too coarse). The load generator
/// and the chaos suite record microseconds at the same precision, so their percentiles agree
/// with these to 0.1%.
pub struct Latencies {
    histogram: Histogram<u64>,
}

/// The slowest latency held, in nanoseconds (an hour); a slower sample counts as an hour.
const LATENCY_MAX_NANOS: u64 = 3_600_000_000_000;

impl Latencies {
    /// Records `samples` (at least one).
    pub fn of(samples: &[Duration]) -> Latencies {
        assert!(!samples.is_empty(), "percentiles of no samples");
        let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_NANOS, 3)
            .expect("constant histogram bounds are valid");
        for sample in samples {
            let nanos = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
            histogram.saturating_record(nanos.max(1));
        }
        Latencies { histogram }
    }

    /// The latency at `quantile` (0.5 for the median, 1.0 for the slowest).
    pub fn at(&self, quantile: f64) -> Duration {
        assert!((0.0..=1.0).contains(&quantile), "quantile within 0..=1");
        Duration::from_nanos(self.histogram.value_at_quantile(quantile))
    }
}

/// The file a round syncs: `shared` names the shared-disk file of one syncer.
fn floor_file(dir: &Path, round: usize, shared: Option<usize>) -> PathBuf {
    let pid = std::process::id();
    match shared {
        None => dir.join(format!("raft-bench-floor-{pid}-{round}")),
        Some(syncer) => dir.join(format!("raft-bench-floor-{pid}-{round}-shared-{syncer}")),
    }
}

/// An I/O error with the operation and path in its message.
fn annotate(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", path.display()))
}

/// Appends `shape.sync_bytes` to a new file at `path` and `sync_data`s it, for
/// `shape.sample_time` (at least once); returns each append-and-sync's latency and removes the
/// file, also when a write fails.
fn sync_latencies(path: &Path, shape: FloorShape) -> io::Result<Vec<Duration>> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(|error| annotate(error, "create", path))?;
    let block = vec![0x5a; shape.sync_bytes];
    let mut latencies = Vec::new();
    let end = Instant::now() + shape.sample_time;
    let sampled: io::Result<()> = loop {
        let start = Instant::now();
        if let Err(error) = file.write_all(&block) {
            break Err(annotate(error, "append to", path));
        }
        if let Err(error) = file.sync_data() {
            break Err(annotate(error, "fdatasync", path));
        }
        latencies.push(start.elapsed());
        if Instant::now() >= end {
            break Ok(());
        }
    };
    drop(file);
    let removed = fs::remove_file(path).map_err(|error| annotate(error, "remove", path));
    sampled?;
    removed?;
    assert!(!latencies.is_empty(), "sync_latencies: at least one sample");
    Ok(latencies)
}

/// Runs `sync_latencies` in `shape.shared_files` files of `dir` at once, one thread each, and
/// pools their latencies; the first failure is returned once every thread has finished.
fn shared_sync_latencies(dir: &Path, round: usize, shape: FloorShape) -> io::Result<Vec<Duration>> {
    let syncers: Vec<_> = (0..shape.shared_files)
        .map(|syncer| {
            let path = floor_file(dir, round, Some(syncer));
            std::thread::spawn(move || sync_latencies(&path, shape))
        })
        .collect();
    let results: Vec<io::Result<Vec<Duration>>> = syncers
        .into_iter()
        .map(|syncer| syncer.join().expect("sync sampling does not panic"))
        .collect();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    Ok(latencies)
}

/// Ping-pongs `PING_BYTES` over a loopback TCP connection (no Nagle delay) for `sample_time`
/// (at least once); returns each round trip's latency.
async fn round_trip_latencies(sample_time: Duration) -> io::Result<Vec<Duration>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let mut buffer = [0u8; PING_BYTES];
        // The pinger closing the connection ends the echo.
        while stream.read_exact(&mut buffer).await.is_ok() {
            stream.write_all(&buffer).await?;
        }
        io::Result::Ok(())
    });
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut buffer = [0x5a; PING_BYTES];
    let mut latencies = Vec::new();
    let end = Instant::now() + sample_time;
    loop {
        let start = Instant::now();
        stream.write_all(&buffer).await?;
        stream.read_exact(&mut buffer).await?;
        latencies.push(start.elapsed());
        if Instant::now() >= end {
            break;
        }
    }
    drop(stream);
    echo.await.expect("echo does not panic")?;
    Ok(latencies)
}

/// The arguments of floor mode.
#[derive(Debug)]
struct FloorArgs {
    /// The directory whose disk is measured.
    dir: PathBuf,
    /// One JSON object on stdout instead of a table.
    json: bool,
}

/// How floor mode is called.
const USAGE: &str = "usage: raft-bench floor --dir DIR [--json]";

impl FloorArgs {
    /// Parses the arguments after `floor`.
    fn parse(args: &[String]) -> Result<FloorArgs, String> {
        let mut dir = None;
        let mut json = false;
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--json" => json = true,
                "--dir" => match rest.next() {
                    Some(value) => dir = Some(PathBuf::from(value)),
                    None => return Err("--dir needs a directory".to_string()),
                },
                other => match other.strip_prefix("--dir=") {
                    Some(value) => dir = Some(PathBuf::from(value)),
                    None => return Err(format!("unknown argument {other:?}")),
                },
            }
        }
        match dir {
            Some(dir) => Ok(FloorArgs { dir, json }),
            None => Err("--dir is required".to_string()),
        }
    }
}

/// Floor mode: samples the floor in `--dir` and prints it. `args` are the arguments after
/// `floor`.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let floor_args = match FloorArgs::parse(args) {
        Ok(floor_args) => floor_args,
        Err(message) => {
            eprintln!("raft-bench floor: {message}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match measure(&floor_args.dir) {
        Ok(summary) => {
            if floor_args.json {
                println!("{}", json(&summary));
            } else {
                print_table(&floor_args.dir, &summary);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raft-bench floor: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Samples every kind for `FLOOR_MODE_SAMPLE_TIME` in each of `FLOOR_MODE_ROUNDS` rounds in
/// `dir`.
fn measure(dir: &Path) -> io::Result<FloorSummary> {
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(FLOOR_MODE_WORKER_THREADS)
        .enable_all()
        .build()?;
    let mut floor = Floor::new(FloorShape {
        sync_bytes: FLOOR_MODE_SYNC_BYTES,
        shared_files: FLOOR_MODE_SHARED_FILES,
        sample_time: FLOOR_MODE_SAMPLE_TIME,
    });
    for round in 0..FLOOR_MODE_ROUNDS {
        runtime.block_on(floor.sample(dir, round))?;
    }
    Ok(floor.summary())
}

/// Whole and tenth microseconds of `duration`, for JSON.
fn micros_json(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

/// The summary as one flat JSON object (numbers only, so formatted by hand).
fn json(summary: &FloorSummary) -> String {
    let fields = [
        ("fdatasync_us_p50", micros_json(summary.sync.p50)),
        ("fdatasync_us_p90", micros_json(summary.sync.p90)),
        (
            "shared_fdatasync_us_p50",
            micros_json(summary.shared_sync.p50),
        ),
        (
            "shared_fdatasync_us_p90",
            micros_json(summary.shared_sync.p90),
        ),
        ("round_trip_us_p50", micros_json(summary.round_trip.p50)),
        ("round_trip_us_p90", micros_json(summary.round_trip.p90)),
        ("floor_us", micros_json(summary.replicated_write())),
        (
            "shared_floor_us",
            micros_json(summary.shared_replicated_write()),
        ),
        ("fdatasync_bytes", FLOOR_MODE_SYNC_BYTES.to_string()),
        ("shared_files", FLOOR_MODE_SHARED_FILES.to_string()),
        ("fdatasync_samples", summary.sync.samples.to_string()),
        (
            "shared_fdatasync_samples",
            summary.shared_sync.samples.to_string(),
        ),
        ("round_trip_samples", summary.round_trip.samples.to_string()),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("\"{key}\":{value}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// The summary as a table for a person.
fn print_table(dir: &Path, summary: &FloorSummary) {
    let micros = |duration: Duration| format!("{:.0} µs", duration.as_secs_f64() * 1e6);
    println!(
        "floor: the disk of {}, each kind sampled for {FLOOR_MODE_ROUNDS} × {:.2} s, alternating",
        dir.display(),
        FLOOR_MODE_SAMPLE_TIME.as_secs_f64()
    );
    println!("{:<44}  {:>10}  {:>10}  {:>8}", "", "p50", "p90", "samples");
    let rows = [
        (
            format!("fdatasync of a {FLOOR_MODE_SYNC_BYTES} B append"),
            summary.sync,
        ),
        (
            format!("same, {FLOOR_MODE_SHARED_FILES} files syncing at once"),
            summary.shared_sync,
        ),
        (
            format!("loopback TCP round trip of {PING_BYTES} B"),
            summary.round_trip,
        ),
    ];
    for (name, quantiles) in rows {
        println!(
            "{name:<44}  {:>10}  {:>10}  {:>8}",
            micros(quantiles.p50),
            micros(quantiles.p90),
            quantiles.samples
        );
    }
    println!(
        "floor of one replicated write (leader fdatasync + round trip + follower fdatasync, \
         medians): {}",
        micros(summary.replicated_write())
    );
    println!(
        "same with the shared-disk fdatasync: {}",
        micros(summary.shared_replicated_write())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_read_at_hdr_quantiles_to_three_digits() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let latencies = Latencies::of(&samples);
        let near = |got: Duration, micros: u64| {
            let want = Duration::from_micros(micros);
            got >= want && got <= want + want / 1000
        };
        assert!(near(latencies.at(0.5), 50), "{:?}", latencies.at(0.5));
        assert!(near(latencies.at(0.99), 99), "{:?}", latencies.at(0.99));
        assert!(near(latencies.at(1.0), 100), "{:?}", latencies.at(1.0));
        assert!(near(
            Latencies::of(&[Duration::from_millis(7)]).at(0.9),
            7_000
        ));
    }
}
