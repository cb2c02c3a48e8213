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
//! Snapshots need nothing special: the core cuts them into chunks (1 MiB), each an ordinary
//! message, so heartbeats interleave with chunks at message granularity.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use raft_core::{Message, MessageBody, NodeId};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::Transport;
use crate::wire::{
    decode_handshake, decode_message, encode_frame, encode_message, FrameDecoder, Handshake,
    WireError, FRAME_PREFIX_BYTES, PROTOCOL_VERSION,
};

/// The largest handshake frame accepted: a handshake is a few dozen bytes, and an
/// unauthenticated dialer must not make us buffer a full-size frame.
const HANDSHAKE_BYTES_MAX: u64 = 1024;
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
    /// Every peer (this node excluded) and the address it listens on.
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
    /// Messages dropped before the network: unknown peer, full queue, too large a frame, or
    /// queued while the peer was unreachable.
    pub messages_dropped: u64,
    /// Messages received and handed to the inbound channel.
    pub messages_received: u64,
    /// Received messages dropped because their sender or receiver did not match the
    /// connection's handshake.
    pub messages_misaddressed: u64,
    /// Outbound connections established (a reconnect counts again).
    pub connections_established: u64,
    /// Inbound connections refused: bad or missing handshake, or too many connections.
    pub connections_refused: u64,
    /// Inbound connections closed for an oversized or undecodable frame.
    pub frames_rejected: u64,
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
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: TcpConfig,
    counters: AtomicCounters,
}

/// The sending side of one peer's queue.
#[derive(Debug)]
struct PeerQueue {
    sender: mpsc::Sender<Message>,
    /// Invariant: the sum of [`message_bytes`] over the messages in the queue (approximately:
    /// a message is added before it is queued and removed when it is taken out).
    queued_bytes: Arc<AtomicU64>,
}

/// A [`Transport`] over TCP. Dropping it, or [`TcpTransport::shutdown`], stops every task and
/// closes every connection.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    queues: BTreeMap<NodeId, PeerQueue>,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl TcpTransport {
    /// Starts serving `listener` and dialing every peer; messages received are sent to
    /// `inbound`. Must be called within a tokio runtime.
    ///
    /// The caller binds the listener (port 0 works), so that every node's address can be known
    /// before any transport starts. A full `inbound` channel holds up the connection the next
    /// message arrived on (TCP backpressure to that peer), not the other connections.
    pub fn start(
        config: TcpConfig,
        listener: TcpListener,
        inbound: mpsc::Sender<Message>,
    ) -> io::Result<TcpTransport> {
        config
            .validate()
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            counters: AtomicCounters::default(),
        });
        let config = &shared.config;
        let mut queues = BTreeMap::new();
        let mut tasks = Vec::with_capacity(config.peers.len() + 1);
        for (&peer, &address) in &config.peers {
            let (sender, receiver) = mpsc::channel(config.queue_messages_max);
            let queued_bytes = Arc::new(AtomicU64::new(0));
            let span = tracing::info_span!("tcp_outbound", node = config.id.0, peer = peer.0);
            tasks.push(tokio::spawn(
                run_outbound(
                    Arc::clone(&shared),
                    peer,
                    address,
                    receiver,
                    Arc::clone(&queued_bytes),
                )
                .instrument(span),
            ));
            queues.insert(
                peer,
                PeerQueue {
                    sender,
                    queued_bytes,
                },
            );
        }
        let span = tracing::info_span!("tcp_listener", node = config.id.0, %local_addr);
        tasks.push(tokio::spawn(
            run_listener(Arc::clone(&shared), listener, inbound).instrument(span),
        ));
        assert_eq!(queues.len(), shared.config.peers.len());
        Ok(TcpTransport {
            shared,
            queues,
            local_addr,
            tasks,
        })
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn counters(&self) -> TcpCounters {
        self.shared.counters.snapshot()
    }

    /// Stops every task and waits until they are gone, so that the listening address can be
    /// bound again once this returns.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // An aborted task reports cancellation; nothing else is expected, and nothing
            // could be done about it here.
            let _ = task.await;
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, message: Message) {
        assert_eq!(
            message.from, self.shared.config.id,
            "a node sends as itself"
        );
        let counters = &self.shared.counters;
        let Some(queue) = self.queues.get(&message.to) else {
            tracing::debug!(to = message.to.0, "message to an unknown peer dropped");
            AtomicCounters::add(&counters.messages_dropped, 1);
            return;
        };
        let bytes = message_bytes(&message);
        let queued = queue.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > self.shared.config.queue_bytes_max {
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
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Owns the connection to `peer`: dials, writes queued messages in batches, and on any failure
/// backs off (doubling up to the maximum) and dials again. Returns when the queue closes.
async fn run_outbound(
    shared: Arc<Shared>,
    peer: NodeId,
    address: SocketAddr,
    mut queue: mpsc::Receiver<Message>,
    queued_bytes: Arc<AtomicU64>,
) {
    let config = &shared.config;
    let mut backoff = config.reconnect_backoff_min;
    loop {
        match connect(&shared, peer, address).await {
            Ok(stream) => {
                AtomicCounters::add(&shared.counters.connections_established, 1);
                tracing::debug!(%address, "connected");
                backoff = config.reconnect_backoff_min;
                match write_loop(&shared, stream, &mut queue, &queued_bytes).await {
                    Ok(()) => return,
                    Err(error) => tracing::info!(%address, %error, "connection lost"),
                }
            }
            Err(error) => tracing::debug!(%address, %error, "connect failed"),
        }
        // Messages queued for an unreachable peer are stale by the time it is back, and the
        // core sends again what matters; dropping them keeps an outage from pinning memory.
        while let Ok(message) = queue.try_recv() {
            queued_bytes.fetch_sub(message_bytes(&message), Ordering::Relaxed);
            AtomicCounters::add(&shared.counters.messages_dropped, 1);
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(config.reconnect_backoff_max);
        assert!(backoff >= config.reconnect_backoff_min);
    }
}

/// Dials `address`, disables Nagle's algorithm (Raft messages are latency-bound) and sends the
/// handshake.
async fn connect(
    shared: &Shared,
    peer: NodeId,
    address: SocketAddr,
) -> Result<TcpStream, OutboundError> {
    let config = &shared.config;
    let mut stream = tokio::time::timeout(config.io_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| OutboundError::Timeout)??;
    stream.set_nodelay(true)?;
    let handshake = Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: config.cluster_id.clone(),
        from: config.id.0,
        to: peer.0,
    };
    let mut frame = BytesMut::new();
    encode_frame(&handshake, &mut frame);
    tokio::time::timeout(config.io_timeout, stream.write_all(&frame))
        .await
        .map_err(|_| OutboundError::Timeout)??;
    Ok(stream)
}

/// Waits for a message, coalesces everything else queued (up to the batch limit) into one
/// buffer and writes it at once. Returns `Ok` when the queue closes. Also watches the read
/// side, which the acceptor never writes to, to notice a closed connection while idle.
async fn write_loop(
    shared: &Shared,
    mut stream: TcpStream,
    queue: &mut mpsc::Receiver<Message>,
    queued_bytes: &AtomicU64,
) -> Result<(), OutboundError> {
    let config = &shared.config;
    let (mut reader, mut writer) = stream.split();
    let mut batch = BytesMut::new();
    let mut probe = [0u8; 64];
    loop {
        // Both branches are cancel-safe: an unchosen `recv` loses no message and an unchosen
        // `read` consumes no bytes.
        let first = tokio::select! {
            message = queue.recv() => match message {
                Some(message) => message,
                None => return Ok(()),
            },
            read = reader.read(&mut probe) => {
                return Err(match read {
                    Ok(0) => OutboundError::ClosedByPeer,
                    Ok(_) => OutboundError::UnexpectedBytes,
                    Err(error) => OutboundError::Io(error),
                });
            }
        };
        batch.clear();
        let mut count = 0u64;
        let mut next = Some(first);
        while let Some(message) = next {
            queued_bytes.fetch_sub(message_bytes(&message), Ordering::Relaxed);
            let frame_start = batch.len();
            encode_message(&message, &mut batch);
            let payload_bytes = (batch.len() - frame_start - FRAME_PREFIX_BYTES) as u64;
            if payload_bytes > config.frame_bytes_max {
                // The peer would close the connection on it; drop this one message instead.
                batch.truncate(frame_start);
                tracing::warn!(payload_bytes, "message larger than a frame dropped");
                AtomicCounters::add(&shared.counters.messages_dropped, 1);
            } else {
                count += 1;
            }
            next = if batch.len() < config.write_batch_bytes_max {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if batch.is_empty() {
            continue;
        }
        tokio::time::timeout(config.io_timeout, writer.write_all(&batch))
            .await
            .map_err(|_| OutboundError::Timeout)??;
        AtomicCounters::add(&shared.counters.messages_sent, count);
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

/// Serves one inbound connection, then counts and logs why it ended. The stream is closed only
/// after the counting, so that whoever sees the close also sees the count.
async fn handle_inbound(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    inbound: mpsc::Sender<Message>,
) {
    let counters = &shared.counters;
    match serve_inbound(&shared, &mut stream, &inbound).await {
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

/// Reads and checks the handshake, then forwards every well-addressed message. Returns `Ok`
/// when the peer closes the connection or the inbound channel is gone.
async fn serve_inbound(
    shared: &Shared,
    stream: &mut TcpStream,
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
    check_handshake(config, &handshake).map_err(InboundError::Refused)?;
    let from = NodeId(handshake.from);
    tracing::debug!(from = from.0, "handshake accepted");

    let mut decoder = FrameDecoder::new(config.frame_bytes_max);
    // Frames sent right behind the handshake may already be in its decoder's buffer.
    decoder.extend(handshake_decoder.buffer_mut());
    while let Some(frame) = read_frame(stream, &mut decoder).await? {
        let message = decode_message(frame)?;
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

/// Why a handshake is refused, if it is.
fn check_handshake(config: &TcpConfig, handshake: &Handshake) -> Result<(), String> {
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
    if !config.peers.contains_key(&NodeId(handshake.from)) {
        return Err(format!("unknown peer {}", handshake.from));
    }
    Ok(())
}

/// The next frame's payload, or `None` when the peer closed the connection (a partial frame
/// at the end is discarded: it could not be a whole message).
async fn read_frame(
    stream: &mut TcpStream,
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
