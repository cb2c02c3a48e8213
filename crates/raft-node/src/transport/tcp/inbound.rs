//! The inbound side: the accept loop, and one task per connection a peer dialed, which checks
//! the dialer (TLS certificate, handshake frame, membership) and forwards its messages.
//!
//! ```text
//!  listener ─► run_listener (at most connections_inbound_max) ─► handle_inbound (TLS accept)
//!     ─► serve_inbound: handshake frame ─► admit (version, cluster, addressee, known peer)
//!        ─► forward_messages: frame ─► decode ─► addressing checked ─► inbound channel
//!           (ends when the peer is removed: its membership channel closes)
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use raft_core::{Message, NodeId};
use rustls::pki_types::CertificateDer;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::super::tls;
use super::peers::start_peer;
use super::{Shared, HANDSHAKE_BYTES_MAX};
use crate::metrics::add;
use crate::wire::{
    decode_handshake, decode_message, FrameDecoder, Handshake, WireError, PROTOCOL_VERSION,
};

/// Spare capacity ensured before each read, so reads are not a few bytes at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Accepts connections and serves each in its own task; dropping this future (on shutdown)
/// drops the set and so aborts every connection task.
pub(super) async fn run_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    inbound: mpsc::Sender<Message>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    if connections.len() >= shared.config.connections_inbound_max {
                        tracing::warn!(%remote, "too many inbound connections; refused");
                        add(&shared.counters.connections_refused, 1);
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
            add(&shared.counters.tls_handshakes_failed, 1);
            tracing::warn!(%remote, %error, "TLS handshake failed; connection refused");
            drop(stream);
            return;
        }
        Err(_) => {
            add(&shared.counters.tls_handshakes_failed, 1);
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
        add(&shared.counters.tls_handshakes_failed, 1);
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
            add(&counters.connections_refused, 1);
            tracing::warn!(%remote, %reason, "connection refused");
        }
        Err(InboundError::Frame(error)) => {
            add(&counters.frames_rejected, 1);
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
            add(&shared.counters.messages_misaddressed, 1);
            continue;
        }
        if inbound.send(message).await.is_err() {
            return Ok(());
        }
        add(&shared.counters.messages_received, 1);
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
