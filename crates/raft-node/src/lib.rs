//! # raft-node
//!
//! The service-facing Raft API over a real network transport and durable storage (issue 4).
//! Built so far: the wire format between peers ([`wire`]), the transports ([`transport`]) and a
//! first [`RaftNode`]: the event loop driving the core, the storage thread with group commit and
//! the apply task.

#![deny(missing_docs)]

mod node;
pub mod transport;
pub mod wire;

pub use node::{ApplyMsg, NodeConfig, NodeError, RaftNode};
