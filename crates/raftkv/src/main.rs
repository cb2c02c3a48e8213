//! The `raftkv` command: run a node, a local cluster, or talk to one.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftkv::cli::{self, ClientCommand};
use raftkv::dev::DevArgs;
use raftkv::settings::ServeArgs;

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
    /// file (--config); logs go to stderr (filter with RAFTKV_LOG, e.g. `info,raft_node=debug`;
    /// change it while the node runs with `raftkv log-level`). SIGHUP reloads the TLS and
    /// token files (they are also reloaded when they change).
    Serve(Box<ServeArgs>),
    /// Runs a local cluster (3 nodes unless --nodes) until Ctrl-C.
    Dev(DevArgs),
    /// Writes a cluster CA, a certificate and key per node (for --tls-cert and
    /// --peer-tls-cert alike) and a client certificate, as PEM files.
    Certs(raftkv::certs::CertsArgs),
    /// Drives a cluster (raftkv, or etcd with --target etcd) with a closed-loop load and
    /// prints throughput, latency percentiles, errors and CPU use. Runs the `raftkv-bench`
    /// program (`cargo build --release -p raftkv-bench`); `raftkv bench --help` shows its
    /// options.
    #[command(disable_help_flag = true)]
    Bench(BenchCommand),
    /// Reads a stopped node's data directory without changing it: segments, records and
    /// their checksums, hard state, snapshot files, configuration, damage by file and byte
    /// offset, and what the next start would recover. Exit status 0 read, 1 damage found
    /// (with --verify), 2 unusable directory.
    Inspect(raftkv::inspect::InspectArgs),
    /// Saves the cluster's state to a file (online, from any node) or restores a new
    /// cluster's data directories from one (offline); see docs/operations.md.
    Snapshot {
        /// What to do.
        #[command(subcommand)]
        action: raftkv::backup::SnapshotAction,
    },
    /// Makes a stopped node that survived the loss of its cluster's majority a cluster of one
    /// with its data (--force-new-cluster), which new members then join; its old data
    /// directory is kept beside it. See docs/operations.md for what may be lost.
    Recover(raftkv::backup::recover::RecoverArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// `raftkv bench ARGS`: ARGS go to `raftkv-bench` as they are, so the load generator alone
/// defines its options and the server binary links none of it.
#[derive(Debug, clap::Args)]
struct BenchCommand {
    /// Options of `raftkv-bench` (see `raftkv bench --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// Logs to stderr from `RAFTKV_LOG`, else `default`; the filter can be changed while the
/// process runs (`raftkv log-level`, see `raftkv::logging`).
fn init_logging(default: &str) {
    raftkv::logging::init(default);
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
        Command::Bench(BenchCommand { ref args }) => run_bench(&cli, args),
        Command::Inspect(args) => {
            init_logging("warn");
            raftkv::inspect::run(&args)
        }
        Command::Snapshot { action } => {
            init_logging("warn");
            let Some(tls) = client_tls(&cli.ca_cert, &cli.client_cert, &cli.client_key) else {
                return ExitCode::from(2);
            };
            raftkv::backup::run_snapshot_command(cli.endpoints, cli.token, tls, action)
        }
        Command::Recover(args) => {
            init_logging("warn");
            raftkv::backup::run_recover_command(&args)
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
    let tls = raftkv_client::ClientTls::from_cli_flags(
        ca_cert.as_deref(),
        client_cert.as_deref(),
        client_key.as_deref(),
    );
    tls.map_err(|error| eprintln!("raftkv: {error}")).ok()
}

/// The load generator's program, looked for beside this executable (cargo builds both into
/// target/<profile>), then on PATH.
const BENCH_PROGRAM: &str = "raftkv-bench";

/// `raftkv bench`: replaces this process with `raftkv-bench ARGS`, so its output, its exit
/// status and a Ctrl-C are the load generator's own. The client options given to `raftkv` go
/// along in the environment variables both programs read (`RAFTKV_ENDPOINTS`, `RAFTKV_TOKEN`,
/// ...): a token stays out of the process list, and an option repeated in ARGS wins.
fn run_bench(cli: &Cli, args: &[OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt as _;

    let beside = std::env::current_exe()
        .ok()
        .map(|own| own.with_file_name(BENCH_PROGRAM))
        .filter(|path| path.is_file());
    let program = beside
        .clone()
        .map_or_else(|| OsString::from(BENCH_PROGRAM), PathBuf::into_os_string);
    let mut command = std::process::Command::new(&program);
    command.args(args);
    command.env("RAFTKV_ENDPOINTS", cli.endpoints.join(","));
    let options = [
        ("RAFTKV_TOKEN", cli.token.as_ref().map(OsString::from)),
        (
            "RAFTKV_CA_CERT",
            cli.ca_cert.clone().map(PathBuf::into_os_string),
        ),
        (
            "RAFTKV_CLIENT_CERT",
            cli.client_cert.clone().map(PathBuf::into_os_string),
        ),
        (
            "RAFTKV_CLIENT_KEY",
            cli.client_key.clone().map(PathBuf::into_os_string),
        ),
    ];
    for (variable, value) in options {
        if let Some(value) = value {
            command.env(variable, value);
        }
    }
    // exec returns only when it failed.
    let error = command.exec();
    if error.kind() == std::io::ErrorKind::NotFound && beside.is_none() {
        eprintln!(
            "raftkv bench: the load generator {BENCH_PROGRAM} is neither beside this raftkv nor \
             on PATH: build it with `cargo build --release -p raftkv-bench`"
        );
    } else {
        eprintln!(
            "raftkv bench: cannot run {}: {error}",
            std::path::Path::new(&program).display()
        );
    }
    ExitCode::from(2)
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
