//! The write-ahead log as a simulated peer's storage: `raft_wal::Wal` in a temporary directory
//! of its own, reopened from its files after every crash.
//!
//! ```text
//!  WalHarness::create ─► new directory under wal_parent_dir() ─► Wal::open (bootstraps)
//!  WalDisk::write     ─► Wal::write (unsafe_no_sync: the page cache survives a process crash)
//!  WalHarness::reopen ─► drop the Wal, no close ─► Wal::open on the same directory: real
//!                        recovery, which must repair nothing (every completed write was whole)
//! ```
//!
//! The log runs with `unsafe_no_sync`: an fsync per write would make seed sweeps far too slow,
//! and a simulated crash is a process crash, which keeps what a completed write handed to the
//! operating system. A log that fails a write or a reopen keeps its directory for inspection
//! (the error names it); otherwise the directory is removed with the store.

use std::path::PathBuf;

use raft_core::testing::storage::{BoxError, StoreHarness};
use raft_core::{Configuration, LogStore, PersistRequest};
use raft_wal::{Wal, WalError, WalOptions, WalStorage};
use tempfile::TempDir;

use super::wal_parent_dir;

/// Opens [`WalDisk`]s: write-ahead logs in temporary directories under [`wal_parent_dir`],
/// without fsyncs. What [`crate::StorageKind::Wal`] runs on; it passes the storage conformance
/// suite (`tests/storage_conformance.rs`).
#[derive(Clone, Debug)]
pub struct WalHarness {
    options: WalOptions,
}

impl WalHarness {
    /// Logs with these segment and tail-cache sizes (the other options are the defaults, but
    /// for `unsafe_no_sync`).
    pub fn new(segment_bytes_max: u64, cache_bytes_max: u64) -> WalHarness {
        WalHarness::with_options(WalOptions {
            segment_bytes_max,
            cache_bytes_max,
            ..WalOptions::default()
        })
    }

    /// Logs with `options`, but for `unsafe_no_sync`, which is always on (see the module
    /// documentation).
    pub fn with_options(options: WalOptions) -> WalHarness {
        WalHarness {
            options: WalOptions {
                unsafe_no_sync: true,
                ..options
            },
        }
    }
}

impl StoreHarness for WalHarness {
    type Store = WalDisk;

    fn create(&mut self, bootstrap: &Configuration) -> Result<WalDisk, BoxError> {
        let dir = tempfile::Builder::new()
            .prefix("raft-sim-")
            .tempdir_in(wal_parent_dir())?;
        let wal = Wal::open(dir.path(), bootstrap.clone(), self.options.clone())?;
        if !wal.recovery_report().bootstrapped {
            return Err(format!("the new directory {} held a log", dir.path().display()).into());
        }
        Ok(WalDisk {
            wal,
            bootstrap: bootstrap.clone(),
            dir,
        })
    }

    fn reopen(&mut self, store: WalDisk) -> Result<WalDisk, BoxError> {
        let WalDisk {
            wal,
            bootstrap,
            mut dir,
        } = store;
        // The lock on the directory goes with the log: one writer at a time.
        drop(wal);
        let reopened = Wal::open(dir.path(), bootstrap.clone(), self.options.clone());
        let at = dir.path().display().to_string();
        let mut wal = match reopened {
            Ok(wal) => wal,
            Err(error) => {
                dir.disable_cleanup(true);
                return Err(format!("recovery of {at} (kept) failed: {error}").into());
            }
        };
        // A simulated crash never interrupts a write: every completed write was whole, so
        // there is no torn tail to cut and no snapshot marker to restore.
        let report = wal.recovery_report();
        let repaired = report.torn_tail_bytes > 0
            || report.corrupt_bytes_dropped > 0
            || report.snapshot_marker_restored;
        if report.bootstrapped || repaired {
            dir.disable_cleanup(true);
            return Err(format!(
                "recovery of {at} (kept) after a process crash reported {report:?}"
            )
            .into());
        }
        // The log was not closed cleanly, so it reports that writes may have been lost, but a
        // simulated crash is a process crash on an honest disk and the reopen was just checked:
        // the peer restarts with nothing lost, as on memory storage. (The lying disk loses
        // writes in its in-memory overlay, which says so itself.)
        wal.set_possibly_lost_writes(false);
        Ok(WalDisk {
            wal,
            bootstrap,
            dir,
        })
    }
}

/// A peer's write-ahead log and the temporary directory it lives in: a `LogStore`.
#[derive(Debug)]
pub struct WalDisk {
    wal: Wal,
    bootstrap: Configuration,
    /// Declared last, so the log's files are closed before the directory is removed.
    dir: TempDir,
}

impl WalDisk {
    /// The log's directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// A write the log refused; its directory is kept for inspection.
#[derive(Debug, thiserror::Error)]
#[error("{source} (the log is kept in {dir})")]
pub struct WalDiskError {
    /// The log's directory.
    pub dir: PathBuf,
    /// What the log reported.
    #[source]
    pub source: WalError,
}

impl LogStore for WalDisk {
    type Reader = WalStorage;
    type Error = WalDiskError;

    fn reader(&self) -> WalStorage {
        self.wal.storage()
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), WalDiskError> {
        let Err(source) = self.wal.write(requests) else {
            return Ok(());
        };
        self.dir.disable_cleanup(true);
        Err(WalDiskError {
            dir: self.dir(),
            source,
        })
    }
}
