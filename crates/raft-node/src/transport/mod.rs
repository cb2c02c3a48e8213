//! Moving messages between peers. The runtime hands every outbound message to a [`Transport`]
//! and reads inbound ones from the channel the transport was built with.
//!
//! ```text
//!  runtime ── send(message) ──► Transport ──► peer's transport ──► inbound channel ──► runtime
//! ```
//!
//! Delivery is best effort, as Raft assumes: a message may be lost, delayed, duplicated or
//! reordered, and the core copes. A transport never blocks its caller: when a peer's queue is
//! full the message is dropped and counted.

use raft_core::Message;

pub mod memory;
pub mod tcp;
pub mod tls;

/// Sends messages to peers.
pub trait Transport: Send + Sync + 'static {
    /// Queues `message` for `message.to`; never blocks. An unknown or unreachable peer, or a
    /// full queue, drops the message.
    fn send(&self, message: Message);
}
