//! # raft-core
//!
//! A deterministic, I/O-free Raft consensus state machine. The caller owns every clock,
//! thread, socket and file; the core only reacts to inputs and tells the caller what to do.
//!
//! ```text
//!  loop {
//!      on timer:    raft.tick()
//!      on message:  raft.step(message)
//!      on request:  raft.propose(data) / raft.propose_or_forward(data) / raft.read_index(ctx)
//!                   / raft.lease_read(ctx)
//!                   / raft.transfer_leader(id) / raft.propose_conf_change(change)
//!      while raft.has_ready() {                 (false once the peer stopped: is_stopped())
//!          let ready = raft.ready();
//!          send ready.messages                  (need no write first)
//!          write ready.persist → raft.on_persisted(id)   (held-back messages then appear)
//!          apply ready.snapshot_to_apply → raft.on_applied(its last index)
//!          apply ready.committed_entries, no-ops and configurations included
//!                                               → raft.on_applied(last index)
//!          serve ready.read_states once applied through their index
//!          answer forwarded proposals from ready.forwarded
//!      }
//!  }
//! ```
//!
//! The smallest complete program: one voter on [`MemStorage`] elects itself once its election
//! timeout has passed, then a command is proposed, made durable, committed and applied. A
//! service of several peers sends `ready.messages` to them and steps what they send back; a
//! durable one writes `ready.persist` to disk (raft-wal) before reporting it.
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::{Config, Configuration, EntryKind, Index, MemStorage, NodeId, Raft};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let me = NodeId(1);
//! let storage = MemStorage::new(Configuration::new([me]));
//! let mut raft = Raft::new(Config::new(me, 7), storage)?;
//! let mut state_machine: Vec<Bytes> = Vec::new();
//! let mut applied = Index(0);
//! let mut proposed = None;
//!
//! // Each round is one tick of the caller's clock (say 10 ms).
//! for _tick in 0..100 {
//!     raft.tick();
//!     if proposed.is_none() && raft.state().1 {
//!         // The leader's index: the new leader's no-op took index 1.
//!         proposed = Some(raft.propose(Bytes::from_static(b"set x = 1"))?);
//!     }
//!     while raft.has_ready() {
//!         let ready = raft.ready();
//!         assert!(ready.messages.is_empty(), "a single voter has nobody to talk to");
//!         if let Some(persist) = ready.persist {
//!             let id = persist.id;
//!             raft.storage_mut().persist(persist); // a real store makes it durable first
//!             raft.on_persisted(id);
//!         }
//!         if let Some(snapshot) = ready.snapshot_to_apply {
//!             // Replace the state machine with `snapshot.data`, then report it.
//!             raft.on_applied(snapshot.meta.last_included.index);
//!         }
//!         for entry in ready.committed_entries {
//!             if entry.kind == EntryKind::Normal {
//!                 state_machine.push(entry.data.clone());
//!             }
//!             // No-ops and configuration entries count as applied too.
//!             applied = entry.index();
//!             raft.on_applied(applied);
//!         }
//!     }
//!     if proposed.is_some_and(|id| applied >= id.index) {
//!         break;
//!     }
//! }
//!
//! let proposed = proposed.expect("the single voter became leader");
//! assert_eq!(proposed.index, Index(2));
//! assert_eq!(applied, proposed.index);
//! assert_eq!(state_machine, vec![Bytes::from_static(b"set x = 1")]);
//! # Ok(())
//! # }
//! ```
//!
//! Storage: the core reads through [`Storage`] and never writes; a runtime makes its
//! [`PersistRequest`]s durable through a [`LogStore`] ([`SharedMemStorage`] in memory,
//! `raft_wal::Wal` on disk, or a store of your own, held to the contract by the conformance
//! suite in `testing::storage`).
//!
//! Cargo features: `wire` adds the module `raft_core::wire`, a protobuf encoding of messages,
//! entries and snapshot metadata for a transport of the caller's own (raft-node's TCP
//! transport speaks it); `testing` adds `raft_core::testing::storage`, the storage conformance
//! suite, and `raft_core::testing::messages`, sample messages and entries for codec and
//! transport tests; `proptest` adds to the latter strategies that generate any message.
//!
//! Text: [`Message`], [`MessageBody`], [`Configuration`], [`HardState`], [`SoftState`] and
//! [`Ready`] print (`Display`) in one stable, one-line-per-message form, for logs, traces and
//! golden test files: `1->2 Append term=3 prev=2.5 commit=5 entries=[3.6:noop 3.7..3.8]`.
//!
//! ## Stability
//!
//! Version 0.x: the API may change between minor versions (the README lists what changed).
//! What does not change without a new protocol version: the meaning of every message and the
//! `wire` encoding (field tags are never reused), and the persistence contract of [`LogStore`]
//! (what a store written by one version holds is read by the next). The error enums are
//! exhaustive, so that a caller's `match` names every condition: a new variant is a breaking
//! change and comes with a new minor version.
//!
//! Protocol references cite the Raft paper (Ongaro and Ousterhout, 2014) by section, and
//! Ongaro's thesis (2014) as "thesis §".

#![deny(missing_docs)]

mod display;
mod election;
mod error;
mod forward;
mod invariant;
mod log;
mod log_store;
mod membership;
mod message;
mod options;
mod progress;
mod quorum;
mod raft;
mod read_index;
mod ready;
mod recovery;
mod replication;
mod snapshot;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
#[cfg(feature = "wire")]
pub mod wire;

pub use error::{CompactError, ConfChangeError, ConfigError, InitError, ProposeError};
pub use forward::{
    ForwardError, ForwardId, ForwardOutcome, Proposal, FORWARD_ANSWER_ELECTION_TIMEOUTS,
    SESSIONS_PER_SENDER_MAX,
};
pub use invariant::{InvariantViolation, SafetyViolation};
pub use log_store::{LogStore, SharedMemStorage, SnapshotStager, StageError};
pub use membership::{ConfChange, ConfigurationError};
pub use message::{Message, MessageBody, MessageKind, ReadContext, TERM_OR_INDEX_MAX};
pub use options::Config;
pub use progress::ProgressState;
pub use raft::{Counters, PeerStatus, Raft, Status, StepError};
pub use ready::{PersistId, PersistRequest, ReadState, Ready, SoftState};
pub use recovery::{RecoveryPhase, RecoveryStatus};
pub use storage::{InitialState, MemStorage, RestoreError, Storage, StorageError};
pub use types::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, Role, Snapshot, SnapshotMeta,
    Term,
};

/// The text of a caught panic, for tests that check what a panic says.
#[cfg(test)]
pub(crate) fn test_panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match payload.downcast_ref::<String>() {
        Some(text) => text.clone(),
        None => payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_string())
            .unwrap_or_default(),
    }
}
