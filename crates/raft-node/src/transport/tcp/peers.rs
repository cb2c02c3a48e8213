//! The peer table and each peer's queue: who this node talks to, where they listen, and the
//! bounded queue (messages and bytes) between `send` and the peer's outbound task.
//!
//! ```text
//!  send ─► PeerTable[to].queue (PeerQueue: try_send, bytes counted) ─► QueueReceiver ─► outbound task
//!                                                 dropped and counted when full ─┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft_core::{Message, MessageBody, NodeId};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::outbound::run_outbound;
use super::Shared;
#[cfg(doc)]
use super::TcpTransport;
use crate::metrics::add;

/// The current peers: read on every send and every handshake, changed by
/// [`TcpTransport::set_peer`] and [`TcpTransport::remove_peer`].
#[derive(Debug, Default)]
pub(super) struct PeerTable {
    /// Invariant: holds neither this node nor id 0.
    pub(super) peers: BTreeMap<NodeId, Peer>,
    /// Peers removed with [`TcpTransport::remove_peer`] and not set again since: their
    /// handshakes are refused even when they carry an address.
    pub(super) removed: BTreeSet<NodeId>,
    /// Set once, when the transport stops.
    /// Invariant: when set, `peers` is empty, so every send is dropped and every handshake
    /// refused.
    pub(super) stopped: bool,
}

/// One peer: where it listens, its queue, and the task that owns the connection to it.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) address: SocketAddr,
    pub(super) queue: PeerQueue,
    /// Dials `address` and writes the queue; aborted when the peer moves or is removed.
    pub(super) outbound: JoinHandle<()>,
    /// Nothing is ever sent on it: each inbound connection from the peer subscribes at its
    /// handshake, and dropping this sender, when the peer is removed, closes them all. An
    /// address change keeps it, since the peer is still a member.
    pub(super) membership: watch::Sender<()>,
}

/// The sending side of one peer's queue.
#[derive(Debug)]
pub(super) struct PeerQueue {
    sender: mpsc::Sender<Message>,
    /// Invariant: the sum of [`message_bytes`] over the messages in the queue (approximately:
    /// a message is added before it is queued and removed when it is taken out).
    queued_bytes: Arc<AtomicU64>,
}

impl PeerQueue {
    /// Queues `message` unless the queue holds `queue_bytes_max` bytes with it, or is full;
    /// returns whether it was queued. Never waits.
    pub(super) fn offer(&self, message: Message, queue_bytes_max: u64) -> bool {
        let bytes = message_bytes(&message);
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > queue_bytes_max || self.sender.try_send(message).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// What [`TcpTransport::set_peer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerChange {
    /// The node was not a peer; it now has a queue and an outbound connection.
    Added,
    /// The peer listened elsewhere: its old connection and queued messages were dropped and it
    /// is dialed at the new address.
    AddressChanged {
        /// The address it had until now.
        previous: SocketAddr,
    },
    /// The peer already had this address; nothing changed.
    Unchanged,
}

/// Why [`TcpTransport::set_peer`] refused a change.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum PeerError {
    /// A node is not its own peer.
    #[error("node {0} is this node, not a peer")]
    ThisNode(NodeId),
    /// `NodeId(0)` is never a valid node.
    #[error("node id 0 is not a valid id")]
    InvalidId,
    /// [`TcpTransport::shutdown`] was called through another clone.
    #[error("the transport is shut down")]
    ShutDown,
}

/// Starts the queue and the outbound task of `id` at `address`, on `runtime`.
pub(super) fn start_peer(
    shared: &Arc<Shared>,
    runtime: &tokio::runtime::Handle,
    id: NodeId,
    address: SocketAddr,
    membership: watch::Sender<()>,
) -> Peer {
    let config = &shared.config;
    assert!(
        id != config.id && id != NodeId(0),
        "a peer is another, valid node"
    );
    let (sender, receiver) = mpsc::channel(config.queue_messages_max);
    let queued_bytes = Arc::new(AtomicU64::new(0));
    let queue = QueueReceiver {
        receiver,
        queued_bytes: Arc::clone(&queued_bytes),
        shared: Arc::clone(shared),
    };
    let span = tracing::info_span!("tcp_outbound", node = config.id.0, peer = id.0);
    let outbound =
        runtime.spawn(run_outbound(Arc::clone(shared), id, address, queue).instrument(span));
    Peer {
        address,
        queue: PeerQueue {
            sender,
            queued_bytes,
        },
        outbound,
        membership,
    }
}

/// An estimate of a message's encoded size, cheap enough to compute on every send: the bulk
/// of a large message is entry or snapshot data.
fn message_bytes(message: &Message) -> u64 {
    const HEADER_BYTES: u64 = 64;
    const ENTRY_HEADER_BYTES: u64 = 32;
    let payload: u64 = match &message.body {
        MessageBody::Append { entries, .. } => entries
            .iter()
            .map(|entry| ENTRY_HEADER_BYTES + entry.data.len() as u64)
            .sum(),
        MessageBody::InstallSnapshot { data, .. } => data.len() as u64,
        _ => 0,
    };
    HEADER_BYTES + payload
}

/// The receiving side of one peer's queue, owned by its outbound task.
pub(super) struct QueueReceiver {
    receiver: mpsc::Receiver<Message>,
    /// Shared with the [`PeerQueue`]; see its invariant.
    queued_bytes: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl QueueReceiver {
    /// The next message, once there is one; `None` when the queue is closed and empty.
    /// Cancel-safe, as [`mpsc::Receiver::recv`] is.
    pub(super) async fn recv(&mut self) -> Option<Message> {
        let message = self.receiver.recv().await?;
        self.taken(&message);
        Some(message)
    }

    /// The next message if one is queued.
    pub(super) fn try_recv(&mut self) -> Option<Message> {
        let message = self.receiver.try_recv().ok()?;
        self.taken(&message);
        Some(message)
    }

    fn taken(&self, message: &Message) {
        self.queued_bytes
            .fetch_sub(message_bytes(message), Ordering::Relaxed);
    }

    /// Drops every message queued now, counting each as dropped.
    pub(super) fn discard_queued(&mut self) {
        let mut discarded = 0;
        while self.try_recv().is_some() {
            discarded += 1;
        }
        add(&self.shared.counters.messages_dropped, discarded);
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        // The task ended or was aborted (the peer moved or was removed, or the transport
        // stopped): what is still queued will never be written. Closing first makes later
        // sends fail, and count themselves, instead of landing behind the drain.
        self.receiver.close();
        self.discard_queued();
    }
}
