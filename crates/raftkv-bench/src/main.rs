//! The `raftkv-bench` command (also run as `raftkv bench`): drives a cluster with a closed-loop
//! load and prints what it measured.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use raftkv_bench::BenchArgs;
use raftkv_client::ClientTls;
use tracing_subscriber::EnvFilter;

/// The same allocator as the `raftkv` server binary, so the load generator's own CPU per
/// operation reads the same as when it was part of that binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drives a cluster (raftkv, or etcd with --target etcd) with a closed-loop load and prints
/// throughput, latency percentiles, errors and CPU use.
///
/// The client options read the same flags and environment variables as `raftkv`'s client
/// commands; `raftkv bench` passes its own through the environment.
#[derive(Debug, Parser)]
#[command(name = "raftkv-bench", version, about, long_about = None)]
struct Cli {
    /// HTTP addresses of the nodes (etcd: its client URLs), comma-separated.
    #[arg(
        long,
        env = "RAFTKV_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003"
    )]
    endpoints: Vec<String>,
    /// Bearer token every raftkv client sends, for nodes run with --auth-tokens. The
    /// environment variable keeps it out of the process list.
    #[arg(long, env = "RAFTKV_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) the nodes' HTTPS certificates are verified with; endpoints
    /// without a scheme are then reached with https://.
    #[arg(long, env = "RAFTKV_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) to present, for nodes run with --tls-ca; needs --client-key
    /// and --ca-cert.
    #[arg(long, env = "RAFTKV_CLIENT_CERT")]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, env = "RAFTKV_CLIENT_KEY")]
    client_key: Option<PathBuf>,
    #[command(flatten)]
    bench: BenchArgs,
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// Measurements other than the closed-loop load (which runs when none is named).
#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// What watches cost a node: RSS and CPU of 10,000 idle watches, and the delay from a
    /// put's acknowledgement to its delivery at 1,000 active watches (exit 1 on a gap or a
    /// repeat).
    Watch(raftkv_bench::watch::WatchArgs),
    /// What a held version of history costs a node's memory: RSS growth of overwrites with
    /// the history kept against the same overwrites compacted as they go.
    History(raftkv_bench::history::HistoryArgs),
    /// What keeping leases alive costs the leader: keepalives per second and the leader's CPU
    /// per keepalive with batched keepalives of 10,000 leases, and a single-lease keepalive's
    /// latency beside a linearizable GET's (exit 1 if a lease was lost during the run).
    Lease(raftkv_bench::lease::LeaseArgs),
    /// Draws reports of separate `raftkv bench --json` runs (e.g. one per cluster size) as
    /// one sweep: throughput and latency against the value each was run at.
    SweepPlot(raftkv_bench::sweep::SweepPlotArgs),
    /// Puts --keys distinct keys into the store in transactions of up to 128 puts, as fast as
    /// they go (to measure what a large store costs).
    Fill(raftkv_bench::fill::FillArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("RAFTKV_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let tls = match ClientTls::from_cli_flags(
        cli.ca_cert.as_deref(),
        cli.client_cert.as_deref(),
        cli.client_key.as_deref(),
    ) {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("raftkv bench: {error}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime(usize::from(cli.bench.threads)) else {
        return ExitCode::from(1);
    };
    match cli.mode {
        Some(Mode::Watch(args)) => {
            if tls.is_some() {
                eprintln!("raftkv bench watch: speaks plain HTTP/2 only, not HTTPS");
                return ExitCode::from(2);
            }
            runtime.block_on(raftkv_bench::watch::run(cli.endpoints, cli.token, args))
        }
        Some(Mode::History(args)) => {
            if tls.is_some() {
                eprintln!("raftkv bench history: speaks plain HTTP/2 only, not HTTPS");
                return ExitCode::from(2);
            }
            runtime.block_on(raftkv_bench::history::run(cli.endpoints, cli.token, args))
        }
        Some(Mode::Lease(args)) => {
            if tls.is_some() {
                eprintln!("raftkv bench lease: speaks plain HTTP only, not HTTPS");
                return ExitCode::from(2);
            }
            runtime.block_on(raftkv_bench::lease::run(cli.endpoints, cli.token, args))
        }
        Some(Mode::Fill(args)) => {
            if tls.is_some() {
                eprintln!("raftkv bench fill: speaks plain HTTP/2 only, not HTTPS");
                return ExitCode::from(2);
            }
            runtime.block_on(raftkv_bench::fill::run(cli.endpoints, cli.token, args))
        }
        Some(Mode::SweepPlot(args)) => raftkv_bench::sweep::plot_reports(args),
        None => runtime.block_on(raftkv_bench::run(cli.endpoints, cli.token, tls, cli.bench)),
    }
}

/// The async runtime, with `threads` threads. One thread is the calling thread itself (a
/// current-thread runtime): it then needs none of the machinery that lets threads steal work
/// from each other, which costs CPU on every wake-up.
fn runtime(threads: usize) -> Option<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("raftkv bench: cannot start the runtime: {error}");
            None
        }
    }
}
