//! Backup and disaster recovery: `raftkv snapshot save` (a node's state, online, to a file),
//! `raftkv snapshot restore` (a new cluster's data directories from that file) and `raftkv
//! recover --force-new-cluster` (a surviving node as a cluster of one, from its own data).
//!
//! ```text
//!  save     GET /v1/snapshot (any node: read barrier, O(1) image, encoded off the apply path)
//!             ─► file.rs layout streamed ─► FILE.tmp (checked as it comes) ─► fsync ─► FILE
//!  restore  FILE ─► checked ─► StateMachine (old cluster's addresses dropped) ─┐
//!  recover  DIR's log: snapshot + every entry it holds applied ────────────────┤
//!                                                                              ▼
//!           data_dir::build: a new log holding that state as its installed snapshot,
//!           the new members as voters, the cluster id file ─► `raftkv serve` starts it
//! ```
//!
//! One module per part: `file` (the snapshot file's layout and its checks), `data_dir` (a
//! fresh data directory from a state, and the cluster id kept in it), `save`, `restore`,
//! `recover` (the commands).

pub mod data_dir;
pub mod file;
pub mod recover;
pub mod restore;
pub mod save;

use std::path::PathBuf;

use thiserror::Error;

pub use file::{SnapshotFileError, SnapshotHeader, SnapshotMember, SnapshotVerifier};

/// Why a backup command failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The snapshot file is damaged, truncated or not one.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: SnapshotFileError,
    },
    /// The snapshot's state does not decode (a file whose checksums match but written by a
    /// build whose state format this one does not read, or by a bug).
    #[error("{path}: the state does not decode: {error}")]
    State {
        /// The file or data directory.
        path: PathBuf,
        /// Why.
        error: crate::store::SnapshotError,
    },
    /// The target data directory holds something already.
    #[error(
        "{0}: the data directory is not empty (restore writes a new one; move or remove it first)"
    )]
    DataDirNotEmpty(PathBuf),
    /// The node's log cannot be opened or read (it may be running: stop it first).
    #[error("{path}: the log cannot be used: {reason}")]
    Log {
        /// The data directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{path}: cannot {operation}: {error}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// An argument cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The download failed.
    #[error("{0}")]
    Download(#[from] raftkv_client::ClientError),
}

impl BackupError {
    /// The exit status of a command that failed with this error: 2 for what the operator must
    /// change (arguments, a non-empty directory, a damaged file), 3 when no node served the
    /// snapshot, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Usage(_) | BackupError::DataDirNotEmpty(_) | BackupError::File { .. } => 2,
            BackupError::Download(raftkv_client::ClientError::Unavailable(_)) => 3,
            BackupError::Download(_) => 4,
            BackupError::State { .. } | BackupError::Log { .. } | BackupError::Io { .. } => 1,
        }
    }
}

/// An I/O error on `path` while doing `operation`, as a [`BackupError`].
fn io_error(
    operation: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |error| BackupError::Io {
        operation,
        path,
        error,
    }
}

/// `raftkv snapshot` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SnapshotAction {
    /// Saves the cluster's state, online, from any node that answers (an admin token with
    /// --auth-tokens): consistent at one applied index, checked against its SHA-256 and
    /// length, written to FILE.tmp, synced, then renamed to FILE. Prints the index, revision,
    /// bytes and checksum.
    ///
    /// Exit status: 0 saved; 2 the bytes did not match their header (damaged, or cut short;
    /// no FILE); 3 no node served it, or the connection broke or stalled (no FILE); 4 refused
    /// (401, 403); 1 a local file error.
    Save {
        /// The file to write.
        file: PathBuf,
    },
    /// Writes a new cluster member's data directory from a saved snapshot (offline). Run it
    /// for every member with the same FILE and --peers, then start each with `raftkv serve`
    /// and the same --id, --peers and --data-dir. Sessions, leases and the history
    /// (revisions) are kept; the members are --peers, all voters, under a new cluster id.
    ///
    /// Exit status: 0 restored; 2 bad arguments, a non-empty directory or a damaged file;
    /// 1 a file system error.
    Restore(restore::RestoreArgs),
}

/// Runs a `raftkv snapshot` subcommand and prints its result (stdout) or error (stderr,
/// `raftkv: ...`); `endpoints`, `token` and `tls` are the global client flags, for `save`.
pub fn run_snapshot_command(
    endpoints: Vec<String>,
    token: Option<String>,
    tls: Option<raftkv_client::ClientTls>,
    action: SnapshotAction,
) -> std::process::ExitCode {
    match action {
        SnapshotAction::Restore(args) => report(restore::run(&args)),
        SnapshotAction::Save { file } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("raftkv: cannot start the runtime: {error}");
                    return std::process::ExitCode::from(1);
                }
            };
            report(runtime.block_on(async {
                let client = match tls {
                    Some(tls) => raftkv_client::Client::with_tls(
                        &endpoints,
                        raftkv_client::ClientOptions::default(),
                        tls,
                    ),
                    None => raftkv_client::Client::new(&endpoints),
                };
                let client = match (client?, token) {
                    (client, Some(token)) => client.with_bearer_token(&token)?,
                    (client, None) => client,
                };
                save::run(&client, &file).await
            }))
        }
    }
}

/// Runs `raftkv recover` and prints its result or error.
pub fn run_recover_command(args: &recover::RecoverArgs) -> std::process::ExitCode {
    report(recover::run(args))
}

/// Prints `result` (stdout) or its error (stderr) and gives the exit status.
fn report<T: std::fmt::Display>(result: Result<T, BackupError>) -> std::process::ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raftkv: {error}");
            std::process::ExitCode::from(error.exit_code())
        }
    }
}
