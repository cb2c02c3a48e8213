//! A [`Transport`] over TCP: length-prefixed protobuf frames ([`crate::wire`]), one persistent
//! connection per direction and peer pair.
//!
//! ```text
//!  send(message) ─► per-peer queue ─► outbound task ─(dial, handshake, batched writes)─► peer
//!                   (bounded: count                   reconnects with exponential backoff
//!                    and bytes)
//!
//!  peer ─(dial, handshake, frames)─► accept loop ─► connection task ─► inbound channel
//!                                                   (checks the handshake, then every frame)
//! ```
//!
//! Each node dials every peer and writes its own messages on that connection; it reads its
//! peers' messages from the connections they dialed. One connection per direction keeps each
//! task simple (a writer never reads frames, a reader never writes) and avoids the tie-breaking
//! a shared connection needs when both ends dial at once. Order is preserved per sender
//! because a peer's messages travel on one connection at a time.
//!
//! The first frame on a connection is the dialer's [`Handshake`]. The acceptor closes the
//! connection, with a log line, when the protocol version, the cluster id or the addressed node
//! is wrong, or the dialer is not a known peer. Afterwards an oversized or undecodable frame
//! closes that connection only; a frame whose addressing does not match the handshake is
//! dropped. NB: the acceptor sends no handshake back (the dialer does not need to check whom it
//! reached: the acceptor already refuses a connection meant for another node).
//!
//! With [`TcpConfig::tls`] set, every connection is mutual TLS 1.3 first and the frames above
//! travel inside it: the dialer checks that the acceptor's certificate is the addressed
//! node's, the acceptor that the dialer's is signed by the cluster CA and, once the handshake
//! frame names the dialer, that it is that node's (see [`super::tls`]). A failed TLS handshake
//! closes the connection and is counted in [`TcpCounters::tls_handshakes_failed`]. Without it
//! the transport is plain TCP, for a private network only.
//!
//! Snapshots need nothing special: the core cuts them into chunks (1 MiB), each an ordinary
//! message, so heartbeats interleave with chunks at message granularity.
//!
//! The peer set changes at run time, for membership changes (thesis §4): [`TcpTransport`] is a
//! handle the service keeps a clone of after handing one to the node, and
//! [`TcpTransport::set_peer`] and [`TcpTransport::remove_peer`] edit one table that both
//! `send` and the acceptor read.
//!
//! ```text
//!  set_peer(id, address) ─► peer table (RwLock) ◄─ read on every send (finds the queue)
//!  remove_peer(id)        ─►   id → address,     ◄─ read on every handshake (known peer?)
//!                              queue, outbound task,
//!                              membership channel ─(closes on removal)─► inbound connections
//!                                                                        from that peer end
//! ```
//!
//! Adding a peer starts its queue and outbound task; moving it to another address aborts the
//! task and starts a new one, with a new queue; removing it aborts the task and drops the queue.
//! Messages left in a dropped queue are counted as dropped, so every message given to `send`
//! ends up counted once, as sent or as dropped. Removing a peer also closes the connections it
//! dialed to us: a node that left the configuration must stop reaching this one, whose core no
//! longer expects its messages.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use raft_core::{Message, MessageBody, NodeId};
use rustls::pki_types::CertificateDer;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::tls::{self, PeerTls};
use super::Transport;
use crate::wire::{
    decode_handshake, decode_message, encode_frame, encode_message_frame, FrameDecoder, Handshake,
    WireError, FRAME_PREFIX_BYTES, PROTOCOL_VERSION,
};

/// The largest handshake frame accepted: a handshake is a few dozen bytes, and an
/// unauthenticated dialer must not make us buffer a full-size frame.
pub const HANDSHAKE_BYTES_MAX: u64 = 1024;
/// The longest cluster id, so that a handshake always fits in the 1 KiB accepted for it.
pub const CLUSTER_ID_BYTES_MAX: usize = 256;
/// Spare capacity ensured before each read, so reads are not a few bytes at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Settings of a [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// This node's id.
    pub id: NodeId,
    /// The cluster this node belongs to; a connection from another cluster is refused.
    pub cluster_id: String,
    /// The initial peers (this node excluded) and the addresses they listen on. The set is
    /// changed at run time with [`TcpTransport::set_peer`] and [`TcpTransport::remove_peer`];
    /// [`TcpTransport::peers`] reads the current one.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The largest frame payload accepted or sent.
    pub frame_bytes_max: u64,
    /// Messages queued per peer before [`Transport::send`] drops.
    pub queue_messages_max: usize,
    /// Approximate bytes queued per peer before [`Transport::send`] drops.
    pub queue_bytes_max: u64,
    /// Bytes of frames coalesced into one write (a single larger message still goes alone).
    pub write_batch_bytes_max: usize,
    /// The first delay before reconnecting to a peer.
    pub reconnect_backoff_min: Duration,
    /// The longest delay between attempts to reconnect to a peer.
    pub reconnect_backoff_max: Duration,
    /// The limit on connecting, on receiving a handshake, and on one write.
    pub io_timeout: Duration,
    /// Inbound connections served at once; more are refused.
    pub connections_inbound_max: usize,
    /// The address this node tells the peers it dials, so that one that does not know it yet
    /// can answer (see [`TcpTransport::set_peer`]). `None`: it tells none, and only peers that
    /// were given its address accept its connections.
    pub advertised_address: Option<SocketAddr>,
    /// Mutual TLS on every connection, both ways; `None` (the default): plain TCP. Every peer
    /// must use the same setting and CA: a TLS node refuses a plain dialer and the reverse.
    pub tls: Option<PeerTls>,
}

impl TcpConfig {
    /// A configuration with the default limits.
    pub fn new(
        id: NodeId,
        cluster_id: impl Into<String>,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> TcpConfig {
        TcpConfig {
            id,
            cluster_id: cluster_id.into(),
            peers,
            frame_bytes_max: 16 * 1024 * 1024,
            queue_messages_max: 4096,
            queue_bytes_max: 64 * 1024 * 1024,
            write_batch_bytes_max: 1024 * 1024,
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            connections_inbound_max: 1024,
            advertised_address: None,
            tls: None,
        }
    }

    fn validate(&self) -> Result<(), &'static str> {
        if self.id == NodeId(0) {
            return Err("node id 0 is not a valid id");
        }
        if self.peers.contains_key(&self.id) {
            return Err("peers must not contain this node");
        }
        if self.peers.contains_key(&NodeId(0)) {
            return Err("peer id 0 is not a valid id");
        }
        if self.cluster_id.len() > CLUSTER_ID_BYTES_MAX {
            return Err("cluster_id is longer than CLUSTER_ID_BYTES_MAX");
        }
        if self.frame_bytes_max == 0 || self.frame_bytes_max > u64::from(u32::MAX) {
            return Err("frame_bytes_max must be in 1..=u32::MAX");
        }
        if self.queue_messages_max == 0 || self.queue_bytes_max == 0 {
            return Err("queue limits must be positive");
        }
        if self.write_batch_bytes_max == 0 || self.connections_inbound_max == 0 {
            return Err("write_batch_bytes_max and connections_inbound_max must be positive");
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return Err("reconnect backoff must satisfy 0 < min <= max");
        }
        if self.io_timeout.is_zero() {
            return Err("io_timeout must be positive");
        }
        Ok(())
    }
}

/// What a [`TcpTransport`] has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Messages written to a peer's connection.
    pub messages_sent: u64,
    /// Messages dropped before the network: unknown (or removed) peer, full queue, too large a
    /// frame, queued while the peer was unreachable, lost with a failed write, or still queued
    /// when the peer was removed or moved or the transport stopped.
    pub messages_dropped: u64,
    /// Messages received and handed to the inbound channel.
    pub messages_received: u64,
    /// Received messages dropped because their sender or receiver did not match the
    /// connection's handshake.
    pub messages_misaddressed: u64,
    /// Outbound connections established (a reconnect counts again).
    pub connections_established: u64,
    /// Inbound connections refused: bad or missing handshake (including one from a node that
    /// is not a peer now, and, with TLS, one whose certificate is not the claimed node's), or
    /// too many connections.
    pub connections_refused: u64,
    /// Inbound connections closed for an oversized or undecodable frame.
    pub frames_rejected: u64,
    /// TLS handshakes that failed, inbound or outbound: a certificate from another CA, none, an
    /// expired one, a server certificate not for the node dialed, a plain-TCP dialer, or a
    /// handshake cut off or too slow. Always 0 without [`TcpConfig::tls`].
    pub tls_handshakes_failed: u64,
}

#[derive(Debug, Default)]
struct AtomicCounters {
    messages_sent: AtomicU64,
    messages_dropped: AtomicU64,
    messages_received: AtomicU64,
    messages_misaddressed: AtomicU64,
    connections_established: AtomicU64,
    connections_refused: AtomicU64,
    frames_rejected: AtomicU64,
    tls_handshakes_failed: AtomicU64,
}

impl AtomicCounters {
    fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TcpCounters {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TcpCounters {
            messages_sent: load(&self.messages_sent),
            messages_dropped: load(&self.messages_dropped),
            messages_received: load(&self.messages_received),
            messages_misaddressed: load(&self.messages_misaddressed),
            connections_established: load(&self.connections_established),
            connections_refused: load(&self.connections_refused),
            frames_rejected: load(&self.frames_rejected),
            tls_handshakes_failed: load(&self.tls_handshakes_failed),
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// The settings the transport started with.
    /// Invariant: `config.peers` is empty; the current peers live in `peers` only, so that
    /// nothing can consult a stale set.
    config: TcpConfig,
    counters: AtomicCounters,
    peers: RwLock<PeerTable>,
}

impl Shared {
    /// The peer table for reading. A panic while the lock was held leaves every entry whole
    /// (an entry is built before it is inserted), so a poisoned lock is carried on.
    fn peers(&self) -> RwLockReadGuard<'_, PeerTable> {
        self.peers.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The peer table for changing; see [`Shared::peers`] about poisoning.
    fn peers_mut(&self) -> RwLockWriteGuard<'_, PeerTable> {
        self.peers.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The current peers: read on every send and every handshake, changed by
/// [`TcpTransport::set_peer`] and [`TcpTransport::remove_peer`].
#[derive(Debug, Default)]
struct PeerTable {
    /// Invariant: holds neither this node nor id 0.
    peers: BTreeMap<NodeId, Peer>,
    /// Peers removed with [`TcpTransport::remove_peer`] and not set again since: their
    /// handshakes are refused even when they carry an address.
    removed: BTreeSet<NodeId>,
    /// Set once, when the transport stops.
    /// Invariant: when set, `peers` is empty, so every send is dropped and every handshake
    /// refused.
    stopped: bool,
}

/// One peer: where it listens, its queue, and the task that owns the connection to it.
#[derive(Debug)]
struct Peer {
    address: SocketAddr,
    queue: PeerQueue,
    /// Dials `address` and writes the queue; aborted when the peer moves or is removed.
    outbound: JoinHandle<()>,
    /// Nothing is ever sent on it: each inbound connection from the peer subscribes at its
    /// handshake, and dropping this sender, when the peer is removed, closes them all. An
    /// address change keeps it, since the peer is still a member.
    membership: watch::Sender<()>,
}

/// The sending side of one peer's queue.
#[derive(Debug)]
struct PeerQueue {
    sender: mpsc::Sender<Message>,
    /// Invariant: the sum of [`message_bytes`] over the messages in the queue (approximately:
    /// a message is added before it is queued and removed when it is taken out).
    queued_bytes: Arc<AtomicU64>,
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

/// A [`Transport`] over TCP, and the handle that manages its peers.
///
/// Cloning is cheap and every clone is the same transport: the service keeps one to change the
/// peer set after handing another to the node. The tasks stop, and every connection closes,
/// when the last clone is dropped or when [`TcpTransport::shutdown`] is called through any
/// clone.
#[derive(Clone, Debug)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

/// What every clone of a [`TcpTransport`] shares. Tasks hold [`Shared`], never this, so that
/// dropping the last clone drops it and stops them.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// The runtime the transport started in, where outbound tasks are spawned, so that peers
    /// can be changed from any thread.
    runtime: tokio::runtime::Handle,
    /// The accept loop; `None` before it starts and once the transport stops.
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    /// Empties the peer table for good and aborts every task; returns them so that
    /// [`TcpTransport::shutdown`] can wait for them. Doing it again does nothing.
    fn stop(&self) -> Vec<JoinHandle<()>> {
        let peers = {
            let mut table = self.shared.peers_mut();
            table.stopped = true;
            std::mem::take(&mut table.peers)
        };
        let mut tasks: Vec<JoinHandle<()>> =
            peers.into_values().map(|peer| peer.outbound).collect();
        tasks.extend(
            self.listener
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        for task in &tasks {
            task.abort();
        }
        let table = self.shared.peers();
        assert!(
            table.stopped && table.peers.is_empty(),
            "a stopped table stays empty"
        );
        tasks
    }

    /// Starts the queue and the outbound task of `id` at `address`.
    fn start_peer(&self, id: NodeId, address: SocketAddr, membership: watch::Sender<()>) -> Peer {
        start_peer(&self.shared, &self.runtime, id, address, membership)
    }
}

/// Starts the queue and the outbound task of `id` at `address`, on `runtime`.
fn start_peer(
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

impl Drop for Inner {
    fn drop(&mut self) {
        // The last clone is gone: nothing can send or change peers any more.
        self.stop();
    }
}

impl TcpTransport {
    /// Starts serving `listener` and dialing every peer of `config.peers`; messages received
    /// are sent to `inbound`. Must be called within a tokio runtime, where every task of the
    /// transport then runs.
    ///
    /// The caller binds the listener (port 0 works), so that every node's address can be known
    /// before any transport starts. A full `inbound` channel holds up the connection the next
    /// message arrived on (TCP backpressure to that peer), not the other connections.
    pub fn start(
        mut config: TcpConfig,
        listener: TcpListener,
        inbound: mpsc::Sender<Message>,
    ) -> io::Result<TcpTransport> {
        config
            .validate()
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        if let Some(tls) = &config.tls {
            tls.check_identity(config.id)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let local_addr = listener.local_addr()?;
        let initial_peers = std::mem::take(&mut config.peers);
        let node = config.id;
        let transport = TcpTransport {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    config,
                    counters: AtomicCounters::default(),
                    peers: RwLock::new(PeerTable::default()),
                }),
                local_addr,
                runtime,
                listener: Mutex::new(None),
            }),
        };
        // Peers first, so that the acceptor never refuses an initial peer.
        for (&peer, &address) in &initial_peers {
            let change = transport
                .set_peer(peer, address)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
            assert_eq!(change, PeerChange::Added, "the initial peers are distinct");
        }
        assert_eq!(transport.peers(), initial_peers);
        let inner = &transport.inner;
        assert!(
            inner.shared.config.peers.is_empty(),
            "the peer table is the only set"
        );
        let span = tracing::info_span!("tcp_listener", node = node.0, %local_addr);
        let accept_loop = inner
            .runtime
            .spawn(run_listener(Arc::clone(&inner.shared), listener, inbound).instrument(span));
        *inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(accept_loop);
        Ok(transport)
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The counters so far.
    pub fn counters(&self) -> TcpCounters {
        self.inner.shared.counters.snapshot()
    }

    /// The current peers and the addresses they are dialed at; empty once shut down.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.inner
            .shared
            .peers()
            .peers
            .iter()
            .map(|(&id, peer)| (id, peer.address))
            .collect()
    }

    /// Makes `id` a peer listening on `address`: a new peer gets a queue and an outbound
    /// connection at once; a peer known at another address loses its connection and whatever
    /// it had queued (counted as dropped) and is dialed at `address`; the same address changes
    /// nothing, so callers can apply a whole configuration without comparing first.
    ///
    /// Inbound connections from `id` are accepted from now on. An address change keeps those
    /// already open: the peer decides when to dial again.
    ///
    /// A node that is not a peer yet is also made one when it dials in with a handshake that
    /// says where it listens (its [`TcpConfig::advertised_address`]) and the right cluster id,
    /// unless it was removed with [`TcpTransport::remove_peer`] and not set since. This is how
    /// a node that restarts from an old state hears from members that joined after it, the
    /// leader among them, and can answer them.
    pub fn set_peer(&self, id: NodeId, address: SocketAddr) -> Result<PeerChange, PeerError> {
        let inner = &self.inner;
        if id == NodeId(0) {
            return Err(PeerError::InvalidId);
        }
        if id == inner.shared.config.id {
            return Err(PeerError::ThisNode(id));
        }
        let mut table = inner.shared.peers_mut();
        if table.stopped {
            assert!(table.peers.is_empty());
            return Err(PeerError::ShutDown);
        }
        table.removed.remove(&id);
        let (membership, change) = match table.peers.remove(&id) {
            Some(previous) if previous.address == address => {
                table.peers.insert(id, previous);
                return Ok(PeerChange::Unchanged);
            }
            Some(Peer {
                address: previous,
                outbound,
                membership,
                queue: _,
            }) => {
                // Its queue goes with the task: the messages in it were meant for a process
                // that is gone or moving, and counting them as dropped keeps the books whole.
                outbound.abort();
                (membership, PeerChange::AddressChanged { previous })
            }
            None => (watch::Sender::new(()), PeerChange::Added),
        };
        let peer = inner.start_peer(id, address, membership);
        let replaced = table.peers.insert(id, peer);
        assert!(replaced.is_none());
        drop(table);
        tracing::info!(node = inner.shared.config.id.0, peer = id.0, %address, ?change, "peer set");
        Ok(change)
    }

    /// Removes `id` from the peers and returns the address it had, or `None` if it was not a
    /// peer. Its outbound task stops, what was queued for it is counted as dropped, and later
    /// sends to it are dropped and counted.
    ///
    /// Inbound connections from `id` are closed, those already open included (a removed node
    /// must stop reaching this one), and new ones are refused at their handshake.
    pub fn remove_peer(&self, id: NodeId) -> Option<SocketAddr> {
        let removed = {
            let mut table = self.inner.shared.peers_mut();
            let removed = table.peers.remove(&id)?;
            table.removed.insert(id);
            removed
        };
        removed.outbound.abort();
        tracing::info!(
            node = self.inner.shared.config.id.0,
            peer = id.0,
            address = %removed.address,
            "peer removed"
        );
        // Dropping `removed` closes its queue and its membership channel, and so the inbound
        // connections from it.
        Some(removed.address)
    }

    /// Stops every task and waits until they are gone, so that the listening address can be
    /// bound again once this returns.
    ///
    /// Other clones stay valid but inert: their sends are dropped and counted,
    /// [`TcpTransport::peers`] is empty and [`TcpTransport::set_peer`] returns
    /// [`PeerError::ShutDown`].
    pub async fn shutdown(self) {
        let tasks = self.inner.stop();
        for task in tasks {
            // An aborted task reports cancellation; nothing else is expected, and nothing
            // could be done about it here.
            let _ = task.await;
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, message: Message) {
        let shared = &self.inner.shared;
        assert_eq!(message.from, shared.config.id, "a node sends as itself");
        let counters = &shared.counters;
        // The read lock is held only for the lookup and `try_send`, neither of which waits.
        let table = shared.peers();
        let Some(peer) = table.peers.get(&message.to) else {
            tracing::debug!(to = message.to.0, "message to an unknown peer dropped");
            AtomicCounters::add(&counters.messages_dropped, 1);
            return;
        };
        let queue = &peer.queue;
        let bytes = message_bytes(&message);
        let queued = queue.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > shared.config.queue_bytes_max {
            queue.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            AtomicCounters::add(&counters.messages_dropped, 1);
            return;
        }
        if queue.sender.try_send(message).is_err() {
            queue.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            AtomicCounters::add(&counters.messages_dropped, 1);
        }
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

/// Why an outbound connection ended.
#[derive(Debug, Error)]
enum OutboundError {
    #[error("connect or write timed out")]
    Timeout,
    #[error("the peer closed the connection")]
    ClosedByPeer,
    #[error("the peer sent bytes on a connection it should only read")]
    UnexpectedBytes,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The receiving side of one peer's queue, owned by its outbound task.
struct QueueReceiver {
    receiver: mpsc::Receiver<Message>,
    /// Shared with the [`PeerQueue`]; see its invariant.
    queued_bytes: Arc<AtomicU64>,
    shared: Arc<Shared>,
}

impl QueueReceiver {
    /// The next message, once there is one; `None` when the queue is closed and empty.
    /// Cancel-safe, as [`mpsc::Receiver::recv`] is.
    async fn recv(&mut self) -> Option<Message> {
        let message = self.receiver.recv().await?;
        self.taken(&message);
        Some(message)
    }

    /// The next message if one is queued.
    fn try_recv(&mut self) -> Option<Message> {
        let message = self.receiver.try_recv().ok()?;
        self.taken(&message);
        Some(message)
    }

    fn taken(&self, message: &Message) {
        self.queued_bytes
            .fetch_sub(message_bytes(message), Ordering::Relaxed);
    }

    /// Drops every message queued now, counting each as dropped.
    fn discard_queued(&mut self) {
        let mut discarded = 0;
        while self.try_recv().is_some() {
            discarded += 1;
        }
        AtomicCounters::add(&self.shared.counters.messages_dropped, discarded);
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

/// Messages taken from the queue whose write has not completed. Whatever is left when this is
/// dropped, because the write failed or the task was aborted during it, counts as dropped.
struct Unwritten<'a> {
    counters: &'a AtomicCounters,
    messages: u64,
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if self.messages > 0 {
            AtomicCounters::add(&self.counters.messages_dropped, self.messages);
        }
    }
}

/// Owns the connection to `peer`: dials, writes queued messages in batches, and on any failure
/// backs off (doubling up to the maximum) and dials again. Returns when the queue closes; is
/// aborted when the peer moves or is removed.
async fn run_outbound(
    shared: Arc<Shared>,
    peer: NodeId,
    address: SocketAddr,
    mut queue: QueueReceiver,
) {
    let config = &shared.config;
    let mut backoff = config.reconnect_backoff_min;
    loop {
        match connect(&shared, peer, address).await {
            Ok(stream) => {
                AtomicCounters::add(&shared.counters.connections_established, 1);
                tracing::debug!(%address, "connected");
                backoff = config.reconnect_backoff_min;
                let written = match stream {
                    OutboundStream::Plain(stream) => write_loop(&shared, stream, &mut queue).await,
                    OutboundStream::Tls(stream) => write_loop(&shared, *stream, &mut queue).await,
                };
                match written {
                    Ok(()) => return,
                    Err(error) => tracing::info!(%address, %error, "connection lost"),
                }
            }
            Err(error @ OutboundError::Tls(_)) => {
                // Unlike a peer that is down, this does not heal by itself: say so loudly.
                tracing::warn!(%address, %error, "TLS handshake with a peer failed");
            }
            Err(error) => tracing::debug!(%address, %error, "connect failed"),
        }
        // Messages queued for an unreachable peer are stale by the time it is back, and the
        // core sends again what matters; dropping them keeps an outage from pinning memory.
        queue.discard_queued();
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(config.reconnect_backoff_max);
        assert!(backoff >= config.reconnect_backoff_min);
    }
}

/// An established outbound connection, plain or TLS. An enum rather than a trait object, so
/// the write loop stays monomorphic for the plain default.
enum OutboundStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Dials `address`, disables Nagle's algorithm (Raft messages are latency-bound), does the TLS
/// handshake when configured, and sends the handshake frame.
async fn connect(
    shared: &Shared,
    peer: NodeId,
    address: SocketAddr,
) -> Result<OutboundStream, OutboundError> {
    let config = &shared.config;
    let stream = tokio::time::timeout(config.io_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| OutboundError::Timeout)??;
    stream.set_nodelay(true)?;
    let Some(tls) = &config.tls else {
        let mut stream = stream;
        send_handshake(config, peer, &mut stream).await?;
        return Ok(OutboundStream::Plain(stream));
    };
    // The server certificate must name the node meant, not merely chain to the CA: see
    // `super::tls` on identity.
    let handshake = tls.connector().connect(tls::server_name(peer), stream);
    let established = tokio::time::timeout(config.io_timeout, handshake).await;
    let mut stream = match established {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            AtomicCounters::add(&shared.counters.tls_handshakes_failed, 1);
            return Err(OutboundError::Tls(error));
        }
        Err(_) => {
            AtomicCounters::add(&shared.counters.tls_handshakes_failed, 1);
            return Err(OutboundError::Timeout);
        }
    };
    send_handshake(config, peer, &mut stream).await?;
    Ok(OutboundStream::Tls(Box::new(stream)))
}

/// Writes this node's handshake frame, addressed to `peer`.
async fn send_handshake(
    config: &TcpConfig,
    peer: NodeId,
    stream: &mut (impl AsyncWrite + Unpin),
) -> Result<(), OutboundError> {
    let handshake = Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: config.cluster_id.clone(),
        from: config.id.0,
        to: peer.0,
        from_address: config
            .advertised_address
            .map(|address| address.to_string())
            .unwrap_or_default(),
    };
    let mut frame = BytesMut::new();
    encode_frame(&handshake, &mut frame);
    tokio::time::timeout(config.io_timeout, write_flushed(stream, &frame))
        .await
        .map_err(|_| OutboundError::Timeout)??;
    Ok(())
}

/// Whether `error` comes from TLS (an alert, a bad record) rather than from the socket.
fn is_tls_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// Writes `bytes` and flushes them: a TLS stream may hold records back until flushed (a plain
/// socket's flush does nothing).
async fn write_flushed(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Waits for a message, coalesces everything else queued (up to the batch limit) into one
/// buffer and writes it at once. Returns `Ok` when the queue closes. Also watches the read
/// side, which the acceptor never writes to, to notice a closed connection while idle.
async fn write_loop(
    shared: &Shared,
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    queue: &mut QueueReceiver,
) -> Result<(), OutboundError> {
    let config = &shared.config;
    let mut batch = BytesMut::new();
    let mut probe = [0u8; 64];
    let mut unwritten = Unwritten {
        counters: &shared.counters,
        messages: 0,
    };
    loop {
        assert_eq!(
            unwritten.messages, 0,
            "a batch is counted before the next one"
        );
        // Both branches are cancel-safe: an unchosen `recv` loses no message and an unchosen
        // `read` consumes no bytes.
        let first = tokio::select! {
            message = queue.recv() => match message {
                Some(message) => message,
                None => return Ok(()),
            },
            read = stream.read(&mut probe) => {
                return Err(match read {
                    Ok(0) => OutboundError::ClosedByPeer,
                    Ok(_) => OutboundError::UnexpectedBytes,
                    // In TLS 1.3 the client finishes its handshake before the server has judged
                    // its certificate, so a refusal (an alert) arrives here, on the first read.
                    Err(error) if is_tls_error(&error) => {
                        AtomicCounters::add(&shared.counters.tls_handshakes_failed, 1);
                        OutboundError::Tls(error)
                    }
                    Err(error) => OutboundError::Io(error),
                });
            }
        };
        batch.clear();
        let mut next = Some(first);
        while let Some(message) = next {
            let frame_start = batch.len();
            encode_message_frame(&message, &mut batch);
            let payload_bytes = (batch.len() - frame_start - FRAME_PREFIX_BYTES) as u64;
            if payload_bytes > config.frame_bytes_max {
                // The peer would close the connection on it; drop this one message instead.
                batch.truncate(frame_start);
                tracing::warn!(payload_bytes, "message larger than a frame dropped");
                AtomicCounters::add(&shared.counters.messages_dropped, 1);
            } else {
                unwritten.messages += 1;
            }
            next = if batch.len() < config.write_batch_bytes_max {
                queue.try_recv()
            } else {
                None
            };
        }
        if batch.is_empty() {
            assert_eq!(unwritten.messages, 0);
            continue;
        }
        tokio::time::timeout(config.io_timeout, write_flushed(&mut stream, &batch))
            .await
            .map_err(|_| OutboundError::Timeout)??;
        let written = std::mem::take(&mut unwritten.messages);
        AtomicCounters::add(&shared.counters.messages_sent, written);
    }
}

/// Accepts connections and serves each in its own task; dropping this future (on shutdown)
/// drops the set and so aborts every connection task.
async fn run_listener(shared: Arc<Shared>, listener: TcpListener, inbound: mpsc::Sender<Message>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    if connections.len() >= shared.config.connections_inbound_max {
                        tracing::warn!(%remote, "too many inbound connections; refused");
                        AtomicCounters::add(&shared.counters.connections_refused, 1);
                        continue;
                    }
                    let span = tracing::info_span!("tcp_inbound", %remote);
                    connections.spawn(
                        handle_inbound(Arc::clone(&shared), stream, remote, inbound.clone())
                            .instrument(span),
                    );
                }
                Err(error) => {
                    // Typically out of file descriptors: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(shared.config.reconnect_backoff_min).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Why an inbound connection was closed.
#[derive(Debug, Error)]
enum InboundError {
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Frame(#[from] WireError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Serves one inbound connection, TLS first when configured, then counts and logs why it
/// ended. The stream is closed only after the counting, so that whoever sees the close also
/// sees the count.
async fn handle_inbound(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    inbound: mpsc::Sender<Message>,
) {
    let Some(tls) = shared.config.tls.clone() else {
        return finish_inbound(&shared, stream, None, remote, &inbound).await;
    };
    // Bounded like the handshake frame: an unauthenticated dialer must not hold a connection
    // slot for long.
    let accepted = tokio::time::timeout(
        shared.config.io_timeout,
        tls.acceptor().accept(stream).into_fallible(),
    )
    .await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err((error, stream))) => {
            AtomicCounters::add(&shared.counters.tls_handshakes_failed, 1);
            tracing::warn!(%remote, %error, "TLS handshake failed; connection refused");
            drop(stream);
            return;
        }
        Err(_) => {
            AtomicCounters::add(&shared.counters.tls_handshakes_failed, 1);
            tracing::warn!(%remote, "no TLS handshake in time; connection refused");
            return;
        }
    };
    // rustls verified the chain against the CA during the handshake; which node it belongs to
    // is checked once the handshake frame says which node the dialer claims to be.
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .cloned();
    let Some(certificate) = certificate else {
        // Unreachable with the verifier in `PeerTls`, which requires a certificate; refusing
        // keeps a future change of verifier from opening the door.
        AtomicCounters::add(&shared.counters.tls_handshakes_failed, 1);
        tracing::warn!(%remote, "TLS peer without a certificate; connection refused");
        return;
    };
    finish_inbound(&shared, stream, Some(certificate), remote, &inbound).await;
}

/// Serves one inbound connection (see [`handle_inbound`]); `certificate` is the dialer's TLS
/// certificate, when TLS is on.
async fn finish_inbound(
    shared: &Arc<Shared>,
    mut stream: impl AsyncRead + Unpin,
    certificate: Option<CertificateDer<'static>>,
    remote: SocketAddr,
    inbound: &mpsc::Sender<Message>,
) {
    let counters = &shared.counters;
    match serve_inbound(shared, &mut stream, certificate.as_ref(), inbound).await {
        Ok(()) => tracing::debug!(%remote, "connection closed"),
        Err(InboundError::Refused(reason)) => {
            AtomicCounters::add(&counters.connections_refused, 1);
            tracing::warn!(%remote, %reason, "connection refused");
        }
        Err(InboundError::Frame(error)) => {
            AtomicCounters::add(&counters.frames_rejected, 1);
            tracing::warn!(%remote, %error, "bad frame; connection closed");
        }
        Err(InboundError::Io(error)) => tracing::debug!(%remote, %error, "connection failed"),
    }
    drop(stream);
}

/// Reads and checks the handshake (against `certificate`, the dialer's, when TLS is on), then
/// forwards every well-addressed message. Returns `Ok` when the peer closes the connection,
/// the inbound channel is gone, or the peer is removed.
async fn serve_inbound(
    shared: &Arc<Shared>,
    stream: &mut (impl AsyncRead + Unpin),
    certificate: Option<&CertificateDer<'static>>,
    inbound: &mpsc::Sender<Message>,
) -> Result<(), InboundError> {
    let config = &shared.config;
    let mut handshake_decoder = FrameDecoder::new(HANDSHAKE_BYTES_MAX);
    let frame = tokio::time::timeout(
        config.io_timeout,
        read_frame(stream, &mut handshake_decoder),
    )
    .await
    .map_err(|_| InboundError::Refused("no handshake in time".into()))?
    .map_err(|error| match error {
        InboundError::Frame(error) => InboundError::Refused(format!("bad handshake: {error}")),
        other => other,
    })?;
    let Some(frame) = frame else {
        return Ok(());
    };
    let handshake = decode_handshake(frame)
        .map_err(|error| InboundError::Refused(format!("bad handshake: {error}")))?;
    if let Some(certificate) = certificate {
        // Before `admit`, which may make the dialer a peer: only the holder of node N's
        // certificate may speak as node N.
        tls::certificate_names_node(certificate, NodeId(handshake.from))
            .map_err(InboundError::Refused)?;
    }
    let mut membership = admit(shared, &handshake).map_err(InboundError::Refused)?;
    let from = NodeId(handshake.from);
    tracing::debug!(from = from.0, "handshake accepted");

    let mut decoder = FrameDecoder::new(config.frame_bytes_max);
    // Frames sent right behind the handshake may already be in its decoder's buffer.
    decoder.extend(handshake_decoder.buffer_mut());
    tokio::select! {
        result = forward_messages(shared, stream, &mut decoder, from, inbound) => result,
        // Nothing is ever sent on the channel, so `changed` only returns when the sender is
        // dropped: the peer was removed, or the transport stopped. A message cut off here was
        // from a node this one no longer talks to.
        _ = membership.changed() => {
            tracing::info!(from = from.0, "no longer a peer; connection closed");
            Ok(())
        }
    }
}

/// Forwards every well-addressed message from `from`. Returns `Ok` when the peer closes the
/// connection or the inbound channel is gone.
async fn forward_messages(
    shared: &Shared,
    stream: &mut (impl AsyncRead + Unpin),
    decoder: &mut FrameDecoder,
    from: NodeId,
    inbound: &mpsc::Sender<Message>,
) -> Result<(), InboundError> {
    let config = &shared.config;
    while let Some(frame) = read_frame(stream, decoder).await? {
        let message = decode_message(frame).map_err(WireError::from)?;
        if message.from != from || message.to != config.id {
            tracing::warn!(
                from = message.from.0,
                to = message.to.0,
                connection_from = from.0,
                "misaddressed message dropped"
            );
            AtomicCounters::add(&shared.counters.messages_misaddressed, 1);
            continue;
        }
        if inbound.send(message).await.is_err() {
            return Ok(());
        }
        AtomicCounters::add(&shared.counters.messages_received, 1);
    }
    Ok(())
}

/// Checks a handshake against this node and the current peer set. Returns why it is refused,
/// or a subscription to the dialer's membership, which ends when the dialer stops being a
/// peer. Checking and subscribing under one read lock means a removal cannot slip between
/// them.
fn admit(shared: &Arc<Shared>, handshake: &Handshake) -> Result<watch::Receiver<()>, String> {
    let config = &shared.config;
    if handshake.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} (this node speaks {PROTOCOL_VERSION})",
            handshake.protocol_version
        ));
    }
    if handshake.cluster_id != config.cluster_id {
        return Err(format!("cluster id {:?}", handshake.cluster_id));
    }
    if handshake.to != config.id.0 {
        return Err(format!("addressed to node {}", handshake.to));
    }
    let from = NodeId(handshake.from);
    if let Some(peer) = shared.peers().peers.get(&from) {
        return Ok(peer.membership.subscribe());
    }
    // Not a peer: one that says where it listens is made one (see `TcpTransport::set_peer`).
    let Ok(address) = handshake.from_address.parse::<SocketAddr>() else {
        return Err(format!("unknown peer {}", handshake.from));
    };
    if from == NodeId(0) || from == config.id {
        return Err(format!("peer id {}", handshake.from));
    }
    let mut table = shared.peers_mut();
    if table.stopped || table.removed.contains(&from) {
        return Err(format!("removed peer {}", handshake.from));
    }
    if let Some(peer) = table.peers.get(&from) {
        // Set by another connection or by the owner meanwhile.
        return Ok(peer.membership.subscribe());
    }
    let peer = start_peer(
        shared,
        &tokio::runtime::Handle::current(),
        from,
        address,
        watch::Sender::new(()),
    );
    let membership = peer.membership.subscribe();
    table.peers.insert(from, peer);
    drop(table);
    tracing::info!(node = config.id.0, peer = from.0, %address, "peer admitted from its handshake");
    Ok(membership)
}

/// The next frame's payload, or `None` when the peer closed the connection (a partial frame
/// at the end is discarded: it could not be a whole message).
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    decoder: &mut FrameDecoder,
) -> Result<Option<Bytes>, InboundError> {
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(Some(frame));
        }
        let buffer = decoder.buffer_mut();
        buffer.reserve(READ_CHUNK_BYTES);
        if stream.read_buf(buffer).await? == 0 {
            return Ok(None);
        }
    }
}
