//! # raft-node
//!
//! The service-facing Raft API over a real network transport and durable storage: a
//! [`RaftNode`] runs one peer (the event loop driving `raft-core`, `raft-wal`'s group-commit
//! thread, and the task that feeds committed commands to the service's [`ApplyMsg`] channel),
//! talking to its peers through a [`transport::Transport`]: TCP (optionally mutual TLS, see
//! [`transport::tls`]), or the in-process network with fault injection used by tests. [`wire`] is the versioned format they exchange.

#![deny(missing_docs)]

mod builder;
mod node;
// Public for the group-commit benchmark (raft-bench) only: the node runs it for every store;
// not part of the library's stable surface.
#[doc(hidden)]
pub mod storage_thread;
pub mod transport;
pub mod wire;

pub use builder::{BuildError, NodeBuilder};
pub use node::{ApplyMsg, NodeConfig, NodeError, NodeMetrics, RaftNode, StartError, StopReason};

// The facade: what a service needs, from one dependency. The whole of the core and of the
// log stay reachable as `raft_node::core` and `raft_node::wal`; the runtime and the payload
// type too, so that their versions always match the node's.
pub use bytes::{self, Bytes};
pub use raft_core as core;
pub use raft_core::{
    CompactError, ConfChange, ConfChangeError, Config, Configuration, Index, LogId, LogStore,
    NodeId, Role, SharedMemStorage, Status, Term,
};
pub use raft_wal as wal;
pub use raft_wal::{HistogramSnapshot, Wal, WalError, WalOptions};
pub use tokio;
