//! # raft-node
//!
//! The service-facing Raft API over a real network transport and durable storage (issue 4).
//! Built so far: the wire format between peers ([`wire`]) and the transports ([`transport`]).
//! The runtime (event loop, apply task, storage thread with group commit) and the `RaftNode`
//! API follow.

#![deny(missing_docs)]

pub mod transport;
pub mod wire;
