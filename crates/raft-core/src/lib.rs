//! # raft-core
//!
//! A deterministic, I/O-free Raft consensus state machine. The caller owns every clock,
//! thread, socket and file; the core only reacts to inputs and tells the caller what to do.
//!
//! ```text
//!  loop {
//!      on timer:    raft.tick()
//!      on message:  raft.step(message)
//!      on request:  raft.propose(data) / raft.read_index(ctx) / raft.lease_read(ctx)
//!                   / raft.transfer_leader(id) / raft.propose_conf_change(change)
//!      let ready = raft.ready();
//!      send ready.messages                      (need no write first)
//!      write ready.persist → raft.on_persisted(id)   (held-back messages then appear)
//!      apply ready.snapshot_to_apply, ready.committed_entries → raft.on_applied(index)
//!      serve ready.read_states once applied through their index
//!  }
//! ```
//!
//! Protocol references cite the Raft paper (Ongaro and Ousterhout, 2014) by section, and
//! Ongaro's thesis (2014) as "thesis §".

#![deny(missing_docs)]

mod config;
mod config_change;
mod configuration;
mod election;
mod error;
mod log;
mod log_store;
mod message;
mod progress;
pub mod quorum;
mod raft;
mod read_index;
mod ready;
mod replication;
mod snapshot;
mod storage;
mod types;
#[cfg(feature = "wire")]
pub mod wire;

pub use config::Config;
pub use config_change::ConfChange;
pub use configuration::ConfigurationError;
pub use error::{CompactError, ConfChangeError, ConfigError, InitError, ProposeError};
pub use log_store::{LogStore, SharedMemStorage};
pub use message::{Message, MessageBody, MessageKind, ReadContext, TERM_OR_INDEX_MAX};
pub use progress::ProgressState;
pub use raft::{Counters, PeerStatus, Raft, Status, StepError};
pub use ready::{PersistId, PersistRequest, ReadState, Ready, SoftState};
pub use storage::{InitialState, MemStorage, RestoreError, Storage, StorageError};
pub use types::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, Role, Snapshot, SnapshotMeta,
    Term,
};
