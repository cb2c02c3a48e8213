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
//!    snapshot-<index>-<term>.staged.snap.tmp  a snapshot staged ahead of the write that
//!                                          records it (LogStore::snapshot_stager), renamed
//!                                          into place by that write; removed at open unread
//!    CLEAN_SHUTDOWN                        only while closed: written by Wal::close_cleanly
//!                                          after a graceful stop, removed by Wal::open before
//!                                          anything else; absent at open after a crash (with
//!                                          WalOptions::distrust_unclean_shutdown, that sets
//!                                          RecoveryReport::possibly_lost_writes)
//!    SUSPECT                               written by Wal::open when the log may have lost
//!                                          writes (a torn tail cut ...), removed by
//!                                          Wal::close_cleanly: keeps the log suspect across
//!                                          crashes until a recovered peer stops cleanly
//!
//!  core.ready().persist ─► Wal::write (LogStore::write) ─► fdatasync ─► core.on_persisted
//!                                                     (timed into Wal::sync_latency, a LatencyHistogram)
//!  core reads            ◄─ WalStorage (index in memory, tail cache, positioned file reads;
//!                                      configuration entries tracked as written and replayed)
//!  an operator           ◄─ inspect::inspect_directory (a closed directory, read only: records,
//!                                      checksums, damage by file and offset, the state an
//!                                      open would recover)
//! ```
//!
//! Guarantees: a write is reported durable only after its fdatasync; a torn write at the end
//! of the log is truncated on the next open; damage anywhere else stops the open with an error
//! naming the file and the offset; after an I/O error the log accepts no more writes.
//!
//! The log is the storage a `raft-node` peer runs on by default (it implements
//! [`raft_core::LogStore`]); driving `raft-core` by hand, write each `ready.persist` with
//! [`Wal::write`] and read through [`Wal::storage`]:
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::{Configuration, Entry, EntryKind, Index, LogId, NodeId, PersistRequest, Storage, Term};
//! use raft_wal::{Wal, WalOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let bootstrap = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
//! let mut wal = Wal::open(dir.path(), bootstrap.clone(), WalOptions::default())?;
//! let storage = wal.storage(); // give this to raft_core::Raft::new
//! let entry = Entry {
//!     id: LogId::new(Term(1), Index(1)),
//!     kind: EntryKind::Normal,
//!     data: Bytes::from_static(b"x=1"),
//! };
//! let request = PersistRequest { id: 1, entries: vec![entry.clone()], ..Default::default() };
//! wal.write([request])?; // durable (one fdatasync): now raft.on_persisted(1)
//! assert_eq!(storage.last_index()?, Index(1));
//!
//! drop(wal); // a crash or a restart: the next open recovers what was durable
//! let wal = Wal::open(dir.path(), bootstrap, WalOptions::default())?;
//! assert_eq!(wal.storage().entries(Index(1), Index(2), u64::MAX)?, vec![entry]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Stability
//!
//! Version 0.x: the API may change between minor versions. The on-disk format does not change
//! without a format version in the segment header that a newer version still reads: a log
//! written by one version is recovered by the next.

#![deny(missing_docs)]

mod checksum;
mod clean_shutdown;
mod codec;
mod error;
mod fsutil;
// For the fuzz targets of this workspace only; not part of the stable surface.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod index;
pub mod inspect;
mod metrics;
mod pending;
mod reaper;
mod recovery;
mod segment;
mod snapshot_file;
mod staging;
mod storage;
mod wal;

pub use error::WalError;
pub use metrics::{HistogramSnapshot, LatencyHistogram};
pub use recovery::RecoveryReport;
pub use storage::WalStorage;
pub use wal::{Wal, WalOptions};
