//! `raftkv-chaos`: runs the fault suite against real raftkv processes, or checks a recorded
//! history.
//!
//! Exit status: 0 when the run passed, 1 when it found an anomaly, 2 when it could not be
//! carried out, 3 when it found nothing but could not prove the history linearizable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use raftkv_bench::parse_duration;
use raftkv_chaos::{parse_nemeses, run, Isolation, RunOptions, Schedule, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "raftkv-chaos",
    version,
    about = "Jepsen-style faults against a real raftkv cluster, checked for linearizability",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checks a history (JSON Lines, one operation a line) for linearizability.
    Check {
        /// The history file, e.g. a run's history.jsonl.
        history: PathBuf,
        /// Where to write violation.html when it is not linearizable.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Search steps per key before giving up on it.
        #[arg(long, default_value_t = 50_000_000)]
        steps_max_per_key: u64,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// `all`, `none`, or a comma-separated list of partition, kill, pause, slow, flaky,
    /// membership, clock, disk, fsync.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// How long the clients run while faults come and go: 90s, 10m, 1h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Founding voters.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent client sessions of the kv workload.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// The workloads, comma-separated: `kv` (single-key operations, checked by lincheck),
    /// `bank` (transfers by transaction, checked by revision), `lease` (leases with keys kept
    /// alive, revoked or left to expire, checked against the lease timing rule), `lock`
    /// (holders of a lock with a fencing register), or `all`.
    #[arg(long, default_value = "all", value_parser = Workload::parse)]
    workload: Workload,
    /// Concurrent client sessions of the bank workload.
    #[arg(long, default_value_t = 3)]
    bank_clients: usize,
    /// Concurrent clients of the lease workload.
    #[arg(long, default_value_t = 3)]
    lease_clients: usize,
    /// Concurrent clients of the lock workload (each its own session).
    #[arg(long, default_value_t = 3)]
    lock_clients: usize,
    /// Seed of every random choice; printed when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory. Default: target/chaos/seed-SEED.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The raftkv executable. Default: `raftkv` beside this program.
    #[arg(long, env = "RAFTKV_BIN")]
    raftkv_bin: Option<PathBuf>,
    /// The fsync shim the `fsync` nemesis loads into the nodes. Default:
    /// `libraftkv_fsync_fault.so` beside this program (cargo build -p raftkv-fsync-fault).
    #[arg(long, env = "RAFTKV_FSYNC_SHIM")]
    fsync_shim: Option<PathBuf>,
    /// Let the disk and fsync nemeses also take away synced data (a cut inside the last
    /// record of a segment; fsync that lies, then a power loss): beyond Raft's storage model,
    /// so acknowledged writes may be lost.
    #[arg(long)]
    lossy_storage: bool,
    /// Use loopback addresses even as root (no network faults).
    #[arg(long, conflicts_with = "namespaces")]
    loopback: bool,
    /// Require network namespaces (fail instead of falling back to loopback).
    #[arg(long)]
    namespaces: bool,
    /// How long a fault is held: MIN..MAX.
    #[arg(long, default_value = "1s..6s", value_parser = parse_range)]
    hold: (Duration, Duration),
    /// The calm between two faults of one nemesis: MIN..MAX.
    #[arg(long, default_value = "1s..5s", value_parser = parse_range)]
    calm: (Duration, Duration),
    /// Percentage of reads done as lease reads (the rest are linearizable reads).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=100))]
    lease_read_percent: u8,
    /// Each client's pause after an operation (sets the load and the history's size).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pause: Duration,
    /// Longest wait for the cluster to settle once healed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    settle_timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("raftkv-chaos: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Check {
            history,
            out,
            steps_max_per_key,
        }) => check(&history, &out, steps_max_per_key),
        None => runtime.block_on(run_chaos(cli.run)),
    }
}

async fn run_chaos(args: RunArgs) -> ExitCode {
    let nemeses = match parse_nemeses(&args.nemesis) {
        Ok(nemeses) => nemeses,
        Err(error) => {
            eprintln!("raftkv-chaos: {error}");
            return ExitCode::from(2);
        }
    };
    let raftkv_bin = match args.raftkv_bin.map(Ok).unwrap_or_else(sibling_raftkv) {
        Ok(path) => path,
        Err(message) => {
            eprintln!("raftkv-chaos: {message}");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(time_seed);
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("target/chaos/seed-{seed}")));
    eprintln!(
        "raftkv-chaos: seed {seed}, {} nodes, {} clients, {:?}, output in {}",
        args.nodes,
        args.clients,
        args.duration,
        out.display()
    );
    let mut options = RunOptions::new(raftkv_bin, out);
    options.nemeses = nemeses;
    options.duration = args.duration;
    options.nodes = args.nodes;
    options.clients = args.clients;
    options.workload = args.workload;
    options.bank_clients = args.bank_clients;
    options.lease_clients = args.lease_clients;
    options.lock_clients = args.lock_clients;
    options.seed = seed;
    options.isolation = if args.loopback {
        Some(Isolation::Loopback)
    } else if args.namespaces {
        Some(Isolation::Namespaces)
    } else {
        None
    };
    options.schedule = Schedule {
        calm: args.calm,
        hold: args.hold,
    };
    options.lease_read_percent = args.lease_read_percent;
    options.pause_between_operations = args.pause;
    options.settle_timeout = args.settle_timeout;
    options.progress_every = Some(Duration::from_secs(10));
    options.lossy_storage = args.lossy_storage;
    options.fsync_shim = args.fsync_shim.or_else(|| {
        let own = std::env::current_exe().ok()?;
        Some(own.with_file_name("libraftkv_fsync_fault.so"))
    });
    let run = tokio::select! {
        run = run(options) => run,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("raftkv-chaos: interrupted; the nodes and namespaces are being removed");
            return ExitCode::from(2);
        }
    };
    match run {
        Ok(report) => {
            print!("{}", report.summary.to_text());
            println!("output: {}", report.out_dir.display());
            if report.passed() {
                ExitCode::SUCCESS
            } else if report.summary.anomalies.is_empty() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("raftkv-chaos: {error}");
            ExitCode::from(2)
        }
    }
}

fn check(path: &std::path::Path, out: &std::path::Path, steps_max_per_key: u64) -> ExitCode {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("raftkv-chaos: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let history = match lincheck::History::read_jsonl(std::io::BufReader::new(file)) {
        Ok(history) => history,
        Err(error) => {
            eprintln!("raftkv-chaos: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let report = lincheck::check(&history, &lincheck::CheckOptions { steps_max_per_key });
    let figures =
        raftkv_chaos::analysis::LincheckFigures::of(&report, started.elapsed().as_secs_f64());
    println!(
        "{}: {} operations on {} keys, {} steps, {:.2} s",
        figures.verdict,
        figures.operations_checked,
        figures.keys_checked,
        figures.steps,
        figures.seconds
    );
    match report.verdict.violation() {
        Some(violation) => {
            println!("{violation}");
            let html = out.join("violation.html");
            match std::fs::write(&html, lincheck::render_html(violation)) {
                Ok(()) => println!("drawn in {}", html.display()),
                Err(error) => eprintln!("raftkv-chaos: {}: {error}", html.display()),
            }
            ExitCode::from(1)
        }
        None if report.verdict.is_linearizable() => ExitCode::SUCCESS,
        None => {
            println!("out of budget on: {}", figures.unknown_keys.join(", "));
            ExitCode::from(3)
        }
    }
}

/// `raftkv` in the directory of this executable (cargo puts both in target/<profile>).
fn sibling_raftkv() -> Result<PathBuf, String> {
    let own = std::env::current_exe().map_err(|error| format!("locating myself: {error}"))?;
    let sibling = own.with_file_name("raftkv");
    if sibling.exists() {
        Ok(sibling)
    } else {
        Err(format!(
            "no raftkv beside {}: build it (cargo build --release -p raftkv) or pass --raftkv-bin",
            own.display()
        ))
    }
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(1)
}

/// `MIN..MAX`, each a duration.
fn parse_range(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range like 1s..5s"))?;
    let (low, high) = (parse_duration(low)?, parse_duration(high)?);
    if low > high {
        return Err(format!("{text:?}: the minimum is above the maximum"));
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_with_units_and_refuse_nonsense() {
        assert_eq!(
            parse_range("1s..4s"),
            Ok((Duration::from_secs(1), Duration::from_secs(4)))
        );
        assert!(parse_range("4s..1s").is_err());
        assert!(parse_range("4s").is_err());
        assert!(parse_range("1x..2s").is_err());
    }
}
