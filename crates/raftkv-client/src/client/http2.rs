//! HTTP/2 with prior knowledge (h2c) for [`super::Client::with_http2`]: one connection per node,
//! opened on first use and again after it closed, every request a stream of it.
//!
//! ```text
//!  send(request) ── slot of the URI's authority ── open sender? ──yes──▶ a new stream
//!                                                    │ no
//!                                                    ▼
//!                          one task connects (TCP, h2 handshake, spawned connection task)
//!                          while the others wait for its sender; a failure leaves the slot empty
//! ```
//!
//! NB: hand-written on purpose, measured. hyper-util's legacy `Client` with `http2_only(true)`
//! does the same job (one shared connection per authority, one connect in progress that the
//! others wait for, a request handed back unsent resent on a new connection) and was tried in
//! its place (issue 24): `raftkv bench --http2`, 10 s write runs against a 3-node `raftkv dev`,
//! the two builds alternated, 7 pairs per point on a busy 2-core machine. Medians, hyper-util
//! vs this pool: 64 clients 8,732 vs 9,233 writes/s (ratio 0.96, lower in 5 of 7 pairs), 256
//! clients 13,498 vs 14,053 (0.89, lower in 6 of 7); the load generator's CPU per write 12.9 vs
//! 11.9 µs and 12.0 vs 11.2 µs, higher in all 14 pairs. The likely cost is what it does more per
//! request: a pool checkout raced against a lazy connect future, and a boxed response future.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::lock;
use super::transport::{describe, Failure, FailureKind};

/// Idle time after which an HTTP/2 connection is pinged, so a dead node or a dropped NAT entry is
/// noticed (and the connection replaced) before a request waits on it.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// One HTTP/2 connection per node, opened on first use and again after it closed.
pub(super) struct Http2Connections {
    /// Bounds the TCP connect, as the HTTP/1.1 pool's connector does.
    connect_timeout: Duration,
    /// Slots without an open connection that no request is using are dropped whenever a slot is
    /// added, so the nodes named as leaders over a client's life do not pile up.
    slots: StdMutex<HashMap<Authority, Arc<Http2Slot>>>,
}

#[derive(Default)]
struct Http2Slot {
    /// The connection's sender; `None` before the first connect, after a failed one and once
    /// the connection closed.
    sender: StdMutex<Option<http2::SendRequest<Full<Bytes>>>>,
    /// Held while connecting, so concurrent requests share one new connection rather than race
    /// to open several.
    connecting: tokio::sync::Mutex<()>,
}

impl Http2Connections {
    pub(super) fn new(connect_timeout: Duration) -> Http2Connections {
        assert!(!connect_timeout.is_zero(), "a connect timeout is not zero");
        Http2Connections {
            connect_timeout,
            slots: StdMutex::new(HashMap::new()),
        }
    }

    pub(super) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Failure> {
        let authority = request
            .uri()
            .authority()
            .cloned()
            .expect("a request's URI is absolute: build_request starts it with a base URL");
        let slot = self.slot(&authority);
        let mut sender = slot.sender(&authority, self.connect_timeout).await?;
        let mut error = match sender.try_send_request(request).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        // The connection closed between the check and the send, and handed the request back
        // unsent: sending it on a new connection cannot apply it twice. The HTTP/1.1 pool does
        // the same with a reused connection.
        if let Some(request) = error.take_message() {
            let mut sender = slot.sender(&authority, self.connect_timeout).await?;
            return sender
                .send_request(request)
                .await
                .map_err(|error| Failure::local(FailureKind::Transport, describe(&error)));
        }
        Err(Failure::local(
            FailureKind::Transport,
            describe(&error.into_error()),
        ))
    }

    fn slot(&self, authority: &Authority) -> Arc<Http2Slot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(authority) {
            return slot.clone();
        }
        slots.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.open().is_some());
        slots.entry(authority.clone()).or_default().clone()
    }
}

impl Http2Slot {
    /// The cached sender if its connection is still open; a closed one is dropped, so the next
    /// request reconnects.
    fn open(&self) -> Option<http2::SendRequest<Full<Bytes>>> {
        let mut sender = lock(&self.sender);
        if sender.as_ref().is_some_and(http2::SendRequest::is_closed) {
            *sender = None;
        }
        sender.clone()
    }

    async fn sender(
        &self,
        authority: &Authority,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<Full<Bytes>>, Failure> {
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        // The task that held the lock may have connected meanwhile.
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let sender = connect_http2(authority, connect_timeout).await?;
        *lock(&self.sender) = Some(sender.clone());
        Ok(sender)
    }
}

/// Opens an HTTP/2 connection with prior knowledge to `authority` and spawns its task.
async fn connect_http2(
    authority: &Authority,
    connect_timeout: Duration,
) -> Result<http2::SendRequest<Full<Bytes>>, Failure> {
    // As the HTTP/1.1 pool does: an authority without a port is port 80, and an IPv6 host is
    // given to the resolver without its brackets.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect((host, port))).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            return Err(Failure::local(
                FailureKind::Connect,
                format!("tcp connect error: {}", describe(&error)),
            ))
        }
        Err(_) => {
            return Err(Failure::local(
                FailureKind::Connect,
                format!("tcp connect error: no connection within {connect_timeout:?}"),
            ))
        }
    };
    // Requests are small and latency matters more than packet count.
    stream.set_nodelay(true).map_err(|error| {
        Failure::local(
            FailureKind::Connect,
            format!("tcp connect error: {}", describe(&error)),
        )
    })?;
    // A handshake failure is a Transport failure, as the HTTP/1.1 pool reports its own.
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|error| Failure::local(FailureKind::Transport, describe(&error)))?;
    // The connection's error also fails the requests in flight on it, which report it as their
    // failure; the log also says why a connection with none in flight went away.
    let node = authority.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%node, error = %describe(&error), "HTTP/2 connection closed");
        }
    });
    Ok(sender)
}
