//! # raft-node
//!
//! The service-facing Raft API over a real network transport and durable storage: a
//! [`RaftNode`] runs one peer (the event loop driving `raft-core`, `raft-wal`'s group-commit
//! thread, and the task that feeds committed commands to the service's [`ApplyMsg`] channel),
//! talking to its peers through a [`transport::Transport`]: TCP (optionally mutual TLS, see
//! [`transport::tls`]), or the in-process network with fault injection used by tests. [`wire`] is the versioned format they exchange.

#![deny(missing_docs)]

mod node;
// Public for the group-commit benchmark (raft-bench) only: the node runs it for every store;
// not part of the library's stable surface.
#[doc(hidden)]
pub mod storage_thread;
pub mod transport;
pub mod wire;

pub use node::{ApplyMsg, NodeConfig, NodeError, NodeMetrics, RaftNode, StartError, StopReason};
