//! # raft-wal
//!
//! Durable storage for [`raft_core`]: a segmented write-ahead log holding the entries and the
//! hard state, and snapshot files, in one data directory.
//!
//! ```text
//!  data-dir/
//!    LOCK                                  held while a process has the log open
//!    00000000000000000001.wal ...          segments: header, then framed records (codec)
//!    snapshot-<index>-<term>.snap          the newest snapshot (written via a .tmp + rename)
//!
//!  core.ready().persist ─► Wal::write (LogStore::write) ─► fdatasync ─► core.on_persisted
//!                                                     (timed into Wal::sync_latency, a LatencyHistogram)
//!  core reads            ◄─ WalStorage (index in memory, tail cache, positioned file reads;
//!                                      configuration entries tracked as written and replayed)
//! ```
//!
//! Guarantees: a write is reported durable only after its fdatasync; a torn write at the end
//! of the log is truncated on the next open; damage anywhere else stops the open with an error
//! naming the file and the offset; after an I/O error the log accepts no more writes.
//!
//! ```no_run
//! use raft_core::{Configuration, NodeId, PersistRequest};
//! use raft_wal::{Wal, WalOptions};
//!
//! let configuration = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
//! let mut wal = Wal::open("/var/lib/raftkv/1", configuration, WalOptions::default())?;
//! let storage = wal.storage(); // give this to raft_core::Raft::new
//! # let request = PersistRequest { id: 1, snapshot: None, entries: vec![], hard_state: None };
//! wal.persist(request)?;       // then raft.on_persisted(id)
//! # Ok::<(), raft_wal::WalError>(())
//! ```

#![deny(missing_docs)]

mod checksum;
mod codec;
mod error;
mod fsutil;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod index;
mod metrics;
mod pending;
mod recovery;
mod segment;
mod snapshot_file;
mod storage;
mod wal;

pub use error::WalError;
pub use metrics::{HistogramSnapshot, LatencyHistogram};
pub use recovery::RecoveryReport;
pub use storage::WalStorage;
pub use wal::{Wal, WalOptions};
