//! The `raftkv` command: run a node, a local cluster, or talk to one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftkv::bench::BenchArgs;
use raftkv::cli::{self, ClientCommand};
use raftkv::config::ServeArgs;
use raftkv::dev::DevArgs;
use tracing_subscriber::EnvFilter;

/// glibc's allocator spends a tenth of a loaded node's CPU in malloc and free (measured with
/// perf: fragmentation work under many connections' buffers); mimalloc does the same job for less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A replicated key-value store on Raft.
#[derive(Debug, Parser)]
#[command(name = "raftkv", version, about, long_about = None)]
struct Cli {
    /// HTTP addresses of the nodes the client commands talk to, comma-separated (any node
    /// answers: requests are forwarded to the leader).
    #[arg(
        long,
        global = true,
        env = "RAFTKV_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003"
    )]
    endpoints: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one node. Settings come from flags, RAFTKV_* environment variables or a TOML
    /// file (--config); logs go to stderr (filter with RAFTKV_LOG, e.g. `info,raft_node=debug`).
    Serve(Box<ServeArgs>),
    /// Runs a local cluster (3 nodes unless --nodes) until Ctrl-C.
    Dev(DevArgs),
    /// Drives a cluster (raftkv, or etcd with --target etcd) with a closed-loop load and
    /// prints throughput, latency percentiles, errors and CPU use.
    Bench(Box<BenchArgs>),
    #[command(flatten)]
    Client(ClientCommand),
}

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_env("RAFTKV_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Dev(args) => {
            with_runtime(None, |runtime| runtime.block_on(raftkv::dev::run(args)))
        }
        Command::Bench(args) => with_runtime(Some(usize::from(args.threads)), |runtime| {
            runtime.block_on(raftkv::bench::run(cli.endpoints, *args))
        }),
        Command::Client(command) => with_runtime(None, |runtime| {
            runtime.block_on(cli::run(cli.endpoints, command))
        }),
    }
}

/// `raftkv serve`: the runtime is sized by the node's settings, so they are read first.
fn serve(args: ServeArgs) -> ExitCode {
    init_logging("info");
    let config = match args.resolve() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("raftkv: {error}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime(config.worker_threads) else {
        return ExitCode::from(1);
    };
    match runtime.block_on(raftkv::serve::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raftkv: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs a command other than `serve` on a runtime of `threads` threads (one per core when
/// `None`), logging warnings only.
fn with_runtime(
    threads: Option<usize>,
    run: impl FnOnce(&tokio::runtime::Runtime) -> ExitCode,
) -> ExitCode {
    init_logging("warn");
    match runtime(threads) {
        Some(runtime) => run(&runtime),
        None => ExitCode::from(1),
    }
}

/// The async runtime, with `worker_threads` threads (one per core when `None`).
fn runtime(worker_threads: Option<usize>) -> Option<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads);
    }
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("raftkv: cannot start the runtime: {error}");
            None
        }
    }
}
