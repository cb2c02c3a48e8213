//! The outbound side: one task per peer dials it, sends this node's handshake, and writes
//! the peer's queue in batches; on any failure it drops what is queued, backs off and dials
//! again.
//!
//! ```text
//!  QueueReceiver ─► run_outbound ─► connect (TCP, TLS when configured, handshake frame)
//!                        │              └─ failed: discard queue, sleep backoff (doubling), retry
//!                        └─► write_loop: coalesce up to write_batch_bytes_max, write + flush
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use raft_core::NodeId;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::tls;
use super::peers::QueueReceiver;
use super::{CounterCells, Shared, TcpConfig};
use crate::metrics::add;
use crate::wire::{
    encode_frame, encode_message_frame, Handshake, FRAME_PREFIX_BYTES, PROTOCOL_VERSION,
};

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

/// Messages taken from the queue whose write has not completed. Whatever is left when this is
/// dropped, because the write failed or the task was aborted during it, counts as dropped.
struct Unwritten<'a> {
    counters: &'a CounterCells,
    messages: u64,
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if self.messages > 0 {
            add(&self.counters.messages_dropped, self.messages);
        }
    }
}

/// Owns the connection to `peer`: dials, writes queued messages in batches, and on any failure
/// backs off (doubling up to the maximum) and dials again. Returns when the queue closes; is
/// aborted when the peer moves or is removed.
pub(super) async fn run_outbound(
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
                add(&shared.counters.connections_established, 1);
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
            add(&shared.counters.tls_handshakes_failed, 1);
            return Err(OutboundError::Tls(error));
        }
        Err(_) => {
            add(&shared.counters.tls_handshakes_failed, 1);
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
                        add(&shared.counters.tls_handshakes_failed, 1);
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
                add(&shared.counters.messages_dropped, 1);
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
        add(&shared.counters.messages_sent, written);
    }
}
