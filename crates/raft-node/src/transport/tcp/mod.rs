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
//! The first frame on a connection is the dialer's [`Handshake`](crate::wire::Handshake). The
//! acceptor closes the connection, with a log line, when the protocol version, the cluster id
//! or the addressed node is wrong, or the dialer is not a known peer. Afterwards an oversized or undecodable frame
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
//!
//! One module per job: [`config`] (the settings and their checks), the peer table and each
//! peer's queue (`peers`), the task that dials a peer and writes its queue (`outbound`), the
//! accept loop and the connections peers dialed (`inbound`). This file is the handle a
//! service holds and the `send` the node calls.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use raft_core::{Message, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::Transport;
use crate::metrics::add;

pub mod config;
mod inbound;
mod outbound;
mod peers;

pub use config::{TcpConfig, CLUSTER_ID_BYTES_MAX, HANDSHAKE_BYTES_MAX};
pub use peers::{PeerChange, PeerError};

use inbound::run_listener;
use peers::{start_peer, Peer, PeerTable};

crate::declare_metrics! {
    /// What a [`TcpTransport`] has done since it started. [`TcpCounters::for_each`] visits
    /// the ones a monitoring system shows, under their exported names.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpCounters;
    /// Where the transport's tasks count, as they go.
    struct CounterCells;

    /// Messages written to a peer's connection.
    messages_sent: u64,
    /// Messages dropped before the network: unknown (or removed) peer, full queue, too large a
    /// frame, queued while the peer was unreachable, lost with a failed write, or still queued
    /// when the peer was removed or moved or the transport stopped.
    messages_dropped: u64,
    /// Messages received and handed to the inbound channel.
    messages_received: u64,
    /// Received messages dropped because their sender or receiver did not match the
    /// connection's handshake.
    messages_misaddressed: u64,
    /// Outbound connections established (a reconnect counts again).
    connections_established: u64,
    /// Inbound connections refused: bad or missing handshake (including one from a node that
    /// is not a peer now, and, with TLS, one whose certificate is not the claimed node's), or
    /// too many connections.
    connections_refused: u64 => counter(
        "raft_peer_connections_refused",
        "Inbound Raft connections refused at their handshake (wrong cluster, unknown or \
         removed peer, a certificate for another node) or for too many connections"
    ),
    /// Inbound connections closed for an oversized or undecodable frame.
    frames_rejected: u64,
    /// TLS handshakes that failed, inbound or outbound: a certificate from another CA, none, an
    /// expired one, a server certificate not for the node dialed, a plain-TCP dialer, or a
    /// handshake cut off or too slow. Always 0 without [`TcpConfig::tls`].
    tls_handshakes_failed: u64 => counter(
        "raft_peer_tls_handshakes_failed",
        "TLS handshakes with peers that failed: a certificate from another CA or none, \
         one not for the node dialed, a plain-TCP peer, or too slow a handshake"
    ),
}

#[derive(Debug)]
struct Shared {
    /// The settings the transport started with.
    /// Invariant: `config.peers` is empty; the current peers live in `peers` only, so that
    /// nothing can consult a stale set.
    config: TcpConfig,
    counters: CounterCells,
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
                    counters: CounterCells::default(),
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
            add(&counters.messages_dropped, 1);
            return;
        };
        if !peer.queue.offer(message, shared.config.queue_bytes_max) {
            add(&counters.messages_dropped, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_counters_are_the_ones_dashboards_know() {
        let cells = CounterCells::default();
        add(&cells.connections_refused, 2);
        add(&cells.tls_handshakes_failed, 1);
        add(&cells.messages_dropped, 5);
        let counters = cells.snapshot();
        let mut exported = Vec::new();
        counters.for_each(|descriptor, value| exported.push((descriptor.name, value)));
        // Renaming one breaks every dashboard and alert built on it.
        assert_eq!(
            exported,
            [
                (
                    "raft_peer_connections_refused",
                    crate::metrics::MetricValue::Counter(2)
                ),
                (
                    "raft_peer_tls_handshakes_failed",
                    crate::metrics::MetricValue::Counter(1)
                ),
            ]
        );
    }
}
