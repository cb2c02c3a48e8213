//! The `raftkv` command: run a node, a local cluster, or talk to one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftkv::cli::{self, ClientCommand};
use raftkv::config::ServeArgs;
use raftkv::dev::DevArgs;
use tracing_subscriber::EnvFilter;

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("raftkv: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Serve(args) => {
            init_logging("info");
            let config = match (*args).resolve() {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("raftkv: {error}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(raftkv::serve::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("raftkv: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Dev(args) => {
            init_logging("warn");
            runtime.block_on(raftkv::dev::run(args))
        }
        Command::Client(command) => {
            init_logging("warn");
            runtime.block_on(cli::run(cli.endpoints, command))
        }
    }
}
