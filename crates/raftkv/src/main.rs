//! The `raftkv` command: run a node, a local cluster, or talk to one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftkv::bench::BenchArgs;
use raftkv::cli::{self, ClientCommand};
use raftkv::dev::DevArgs;
use raftkv::settings::ServeArgs;
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
    /// Bearer token the client commands and `bench` send, for nodes run with --auth-tokens.
    /// The environment variable keeps it out of the process list.
    #[arg(long, global = true, env = "RAFTKV_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) the client commands and `bench` verify the nodes' HTTPS
    /// certificates with; endpoints without a scheme are then reached with https://.
    #[arg(long, global = true, env = "RAFTKV_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) the client commands and `bench` present, for nodes run with
    /// --tls-ca; needs --client-key and --ca-cert.
    #[arg(long, global = true, env = "RAFTKV_CLIENT_CERT")]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, global = true, env = "RAFTKV_CLIENT_KEY")]
    client_key: Option<PathBuf>,
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
    /// Writes a cluster CA, a certificate and key per node (for --tls-cert and
    /// --peer-tls-cert alike) and a client certificate, as PEM files.
    Certs(raftkv::certs::CertsArgs),
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
        Command::Certs(args) => {
            init_logging("warn");
            raftkv::certs::run(&args)
        }
        Command::Bench(args) => {
            let Some(tls) = client_tls(&cli.ca_cert, &cli.client_cert, &cli.client_key) else {
                return ExitCode::from(2);
            };
            with_runtime(Some(usize::from(args.threads)), |runtime| {
                runtime.block_on(raftkv::bench::run(cli.endpoints, cli.token, tls, *args))
            })
        }
        Command::Client(command) => {
            let Some(tls) = client_tls(&cli.ca_cert, &cli.client_cert, &cli.client_key) else {
                return ExitCode::from(2);
            };
            with_runtime(None, |runtime| {
                runtime.block_on(cli::run_with_tls(cli.endpoints, cli.token, tls, command))
            })
        }
    }
}

/// The HTTPS settings of the client commands and `bench`: `Some(None)` for plain HTTP, `None`
/// (the reason printed) when the flags are unusable.
fn client_tls(
    ca_cert: &Option<PathBuf>,
    client_cert: &Option<PathBuf>,
    client_key: &Option<PathBuf>,
) -> Option<Option<raftkv_client::ClientTls>> {
    let tls = raftkv::tls::cli_client_tls(
        ca_cert.as_deref(),
        client_cert.as_deref(),
        client_key.as_deref(),
    );
    tls.map_err(|error| eprintln!("raftkv: {error}")).ok()
}

/// `raftkv serve`: the runtime is sized by the node's settings, so they are read first.
fn serve(args: ServeArgs) -> ExitCode {
    init_logging("info");
    let settings = args
        .clone()
        .resolve()
        .and_then(|config| Ok((args.resolve_http(&config)?, config)));
    let (http, config) = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("raftkv: {error}");
            return ExitCode::from(2);
        }
    };
    // Certificates and keys are read here, so a bad file is reported as a configuration error.
    let tls = match args.resolve_tls() {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("raftkv: {error}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime(config.worker_threads) else {
        return ExitCode::from(1);
    };
    match runtime.block_on(raftkv::server::serve(config, http, tls)) {
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

/// The async runtime, with `worker_threads` threads (one per core when `None`). One thread is
/// the calling thread itself (a current-thread runtime): it then needs none of the machinery
/// that lets threads steal work from each other, which costs CPU on every wake-up.
fn runtime(worker_threads: Option<usize>) -> Option<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("raftkv: cannot start the runtime: {error}");
            None
        }
    }
}
