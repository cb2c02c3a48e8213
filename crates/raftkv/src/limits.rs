//! The HTTP server's accept loop, and the limits it holds under abuse.
//!
//! ```text
//!  accept ─► connections open < --http-connections-max? ── no ─► close at once (counted)
//!              │ yes: a task per connection; its first bytes choose the protocol:
//!              ├─ HTTP/2's preface (h2c, prior knowledge) ─► hyper's HTTP/2: streams up to
//!              │  --http-requests-in-flight-max, headers up to --http-header-bytes-max, a ping
//!              │  after --http-idle-timeout-ms of silence (no answer in 20 s: closed), frames
//!              │  up to 1 MiB (a value arrives in one piece, not copied together); every
//!              │  request then meets the in-flight limit and the router as below
//!              │ HTTP/1.1 (hyper):
//!              ├─ head larger than --http-header-bytes-max, or more than --http-headers-max
//!              │  headers ─► 431 from hyper, connection closed
//!              ├─ request head not complete --http-request-read-timeout-ms after its first
//!              │  byte (slowloris) ─► connection closed (counted)
//!              ├─ silent for --http-idle-timeout-ms while waiting for a request ─► closed
//!              └─ request ─► requests in flight < --http-requests-in-flight-max?
//!                               ├─ no ─► 503 + Retry-After, body never read (counted);
//!                               │        GET /metrics and /v1/status take a few slots of
//!                               │        their own first, so an overloaded node can be watched
//!                               └─ yes ─► router: access guard, handler: its body bounded in
//!                                         size (413) and in time (408), and its declared size
//!                                         taken from --http-body-bytes-in-flight-max before it
//!                                         is read (none left: 503 + Retry-After, counted)
//!  stop signal ─► stop accepting; every connection finishes its request in flight and closes
//!                 (idle ones at once) ─► return once all are closed
//! ```
//!
//! Every limit has a generous default that costs the benchmark nothing (`raftkv bench` runs
//! 256 clients on as many keep-alive connections) and a flag to tighten it. Overload is
//! answered 503 with `Retry-After` rather than 429: the Rust client and other well-behaved
//! clients retry a 5xx on another node after the pause, where a 4xx is final.
//!
//! hyper's own `header_read_timeout` is armed whenever a connection waits for a request head,
//! so it measures idleness plus the head's arrival from the same instant; it serves here as
//! the idle timeout. The slowloris limit is counted from a head's first byte, by a watchdog
//! per connection that sees the bytes as they are read (`WatchedIo`): that way an idle
//! keep-alive connection may wait long (clients pool them for up to 30 s) while a head that
//! started must finish quickly.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use raftkv_client::api::ErrorResponse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// hyper's smallest read buffer; a smaller header limit would make it panic.
pub const HEADER_BYTES_MAX_MIN: usize = 8192;

/// hyper's default number of headers, kept on the stack (a different number costs an
/// allocation per request).
const HEADERS_MAX_DEFAULT: usize = 100;

/// Most connections or requests in flight a limit may allow (the semaphores count in `u32`).
const COUNT_LIMIT_MAX: usize = 1_000_000;

/// Limits of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub connections_max: usize,
    /// Requests handled at once over all connections; one more is answered 503.
    pub requests_in_flight_max: usize,
    /// Bytes of request bodies held at once over all requests (each counted at its declared
    /// length from before it is read until it is answered); a body beyond it is answered 503.
    pub body_bytes_in_flight_max: usize,
    /// Bytes of a request head (request line and headers); more is answered 431.
    pub header_bytes_max: usize,
    /// Headers in a request; more is answered 431.
    pub headers_max: usize,
    /// Time a client has to send a request head, from its first byte, and again its body.
    pub request_read_timeout: Duration,
    /// Time a connection may wait for its next request (from its start, or from the end of
    /// the previous answer) before it is closed.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connections_max: 10_000,
            requests_in_flight_max: 4096,
            body_bytes_in_flight_max: 256 * 1024 * 1024,
            header_bytes_max: 64 * 1024,
            headers_max: HEADERS_MAX_DEFAULT,
            request_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl HttpLimits {
    /// Checks every limit; `key_bytes_max` is the longest key, which the head must be able to
    /// carry percent-encoded in the path, and `body_bytes_max` the largest body, which the
    /// body budget must hold. The error names the setting and says why.
    pub fn validate(
        &self,
        key_bytes_max: usize,
        body_bytes_max: usize,
    ) -> Result<(), (&'static str, String)> {
        let count = |name: &'static str, value: usize| {
            if value == 0 || value > COUNT_LIMIT_MAX {
                Err((name, format!("must be between 1 and {COUNT_LIMIT_MAX}")))
            } else {
                Ok(())
            }
        };
        count("http_connections_max", self.connections_max)?;
        count("http_requests_in_flight_max", self.requests_in_flight_max)?;
        // The budget is counted in a semaphore's permits, whose number is bounded.
        let budget_max = 1 << 40;
        if self.body_bytes_in_flight_max < body_bytes_max
            || self.body_bytes_in_flight_max > budget_max
        {
            return Err((
                "http_body_bytes_in_flight_max",
                format!(
                    "must be between {body_bytes_max} (the largest request body: two values, \
                     two keys and their JSON) and {budget_max}"
                ),
            ));
        }
        // Each byte of a key is at most three in the path (%XX), plus the rest of the head.
        let header_bytes_min = HEADER_BYTES_MAX_MIN.max(3 * key_bytes_max + 4096);
        if self.header_bytes_max < header_bytes_min || self.header_bytes_max > 16 * 1024 * 1024 {
            return Err((
                "http_header_bytes_max",
                format!(
                    "must be between {header_bytes_min} (room for the longest key, \
                     percent-encoded) and 16 MiB"
                ),
            ));
        }
        if self.headers_max < 8 || self.headers_max > 10_000 {
            return Err(("http_headers_max", "must be between 8 and 10000".into()));
        }
        for (name, timeout) in [
            ("http_request_read_timeout_ms", self.request_read_timeout),
            ("http_idle_timeout_ms", self.idle_timeout),
        ] {
            if timeout.is_zero() || timeout > Duration::from_secs(3600) {
                return Err((name, "must be between 1 ms and one hour".into()));
            }
        }
        Ok(())
    }

    /// The HTTP/1.1 settings of every connection.
    fn connection_builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            // Armed whenever the connection waits for a head: the idle limit (module doc).
            .header_read_timeout(self.idle_timeout)
            // The read buffer is bounded, so a connection holds at most this much of a head;
            // bodies stream through it in pieces. Twice the head limit: a head somewhat over
            // the limit is read whole and answered 431 (a head cut off in a full buffer is
            // answered 431 too, but the unread rest can turn the close into a reset that
            // loses the answer).
            .max_buf_size((2 * self.header_bytes_max).max(HEADER_BYTES_MAX_MIN))
            .max_header_size(self.header_bytes_max);
        if self.headers_max != HEADERS_MAX_DEFAULT {
            builder.max_headers(self.headers_max);
        }
        builder
    }

    /// The HTTP/2 settings of every connection that opens with HTTP/2's preface.
    fn http2_builder(&self) -> http2::Builder<TokioExecutor> {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            // More streams than the node takes requests would only be answered 503.
            .max_concurrent_streams(u32::try_from(self.requests_in_flight_max).unwrap_or(u32::MAX))
            .max_header_list_size(u32::try_from(self.header_bytes_max).unwrap_or(u32::MAX))
            // A multiplexed connection is meant to stay open while idle; a peer that vanished
            // is found by a ping after the idle time and closed when it does not answer.
            .keep_alive_interval(Some(self.idle_timeout))
            .keep_alive_timeout(HTTP2_PING_TIMEOUT)
            // A body larger than one DATA frame reaches the handler in pieces, which
            // `to_bytes` copies into a fresh buffer; a body in one frame is handed over as a
            // slice of what was read. See `HTTP2_FRAME_BYTES_MAX`.
            .max_frame_size(HTTP2_FRAME_BYTES_MAX);
        builder
    }
}

/// The largest HTTP/2 frame a client may send (SETTINGS_MAX_FRAME_SIZE), so that a value up
/// to this size travels in one DATA frame instead of HTTP/2's default 16 KiB pieces.
///
/// Measured (3-node release cluster on a loaded 2-core machine, 16 clients over HTTP/2, 64 KiB
/// values, snapshots off): `to_bytes` joining the four frames of each body took 11-13% of the
/// leader's CPU samples, nearly all of it the kernel zeroing the copy's fresh pages; with one
/// frame it fell to 4% (bodies the connection window still splits), and the servers' CPU per
/// write to 0.85-0.91 of what it was in 3 alternated pairs. A frame is read whole into the
/// connection's buffer before it is handed over, so a connection holds at most this much more
/// than before; the flow-control windows (1 MiB per stream and per connection, hyper's
/// defaults) still bound what a client may send unread.
pub const HTTP2_FRAME_BYTES_MAX: u32 = 1024 * 1024;

/// How long an HTTP/2 connection's keep-alive ping may go unanswered before it is closed.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// What a client speaking HTTP/2 with prior knowledge (h2c) sends first (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What every connection task shares.
struct Shared {
    router: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    builder: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// One permit per request that may be in flight.
    requests: Arc<Semaphore>,
    /// Slots of `GET /metrics` and `GET /v1/status`, taken before those of `requests`, so
    /// that an overloaded node can still be watched and watching it takes nothing from clients.
    monitoring: Semaphore,
}

/// Requests for `/metrics` and `/v1/status` that may be handled beyond the in-flight limit.
const MONITORING_SLOTS: usize = 8;

/// Whether `request` is one of the cheap reads a monitor makes, which the monitoring slots
/// serve when the node is overloaded.
fn is_monitoring<B>(request: &hyper::Request<B>) -> bool {
    request.method() == axum::http::Method::GET
        && matches!(request.uri().path(), "/metrics" | "/v1/status")
}

/// Serves `router` on the connections of `listener` within `limits` until `shutdown`
/// resolves; then stops accepting, lets every connection finish the request it is handling
/// (idle ones close at once), and returns once all are closed.
///
/// Any [`axum::serve::Listener`] will do (plain TCP, or one that wraps its streams).
pub async fn serve_http<L>(
    mut listener: L,
    router: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener,
{
    assert!(
        limits.validate(0, 0).is_ok(),
        "limits are validated with the configuration"
    );
    let connections_max = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let connections = Arc::new(Semaphore::new(connections_max as usize));
    let shared = Arc::new(Shared {
        // Turns every route into its service once, not per request (as `axum::serve` does).
        router: router.with_state(()),
        limits,
        builder: limits.connection_builder(),
        http2: limits.http2_builder(),
        requests: Arc::new(Semaphore::new(limits.requests_in_flight_max)),
        monitoring: Semaphore::new(MONITORING_SLOTS),
        metrics,
    });
    let (stop_sender, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _address) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&connections).try_acquire_owned() else {
            // Closing at once tells the client to try another node, where waiting in the
            // kernel's backlog would leave it hanging until its own timeout.
            shared.metrics.http_connections_refused.inc();
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, &shared, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    stop_sender.send_replace(true);
    // Every connection task holds a permit until it ends: all are back once all have ended.
    let all_closed = connections.acquire_many(connections_max).await;
    drop(all_closed);
}

/// Serves one connection until it closes, its head watchdog fires, or (after `stop` turns
/// true) it finished its requests in flight. Its first bytes tell HTTP/2's preface (one
/// multiplexed connection per client) from an HTTP/1.1 request.
async fn serve_connection<S>(stream: S, shared: &Arc<Shared>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = &shared.metrics;
    metrics.http_connections_open.inc();
    let clock = Arc::new(RequestClock::new());
    let mut io = WatchedIo {
        inner: stream,
        clock: Arc::clone(&clock),
        replay: Vec::new(),
        replayed: 0,
    };
    let first_bytes = tokio::select! {
        // Waiting for the first request is being idle, whichever the version.
        read = tokio::time::timeout(shared.limits.idle_timeout, io.read_preface()) => read,
        _ = stop.wait_for(|stop| *stop) => Ok(Ok(false)),
    };
    let service = connection_service(shared, &clock);
    let ended_badly = "HTTP connection ended with an error";
    match first_bytes {
        _ if *stop.borrow() => {}
        Ok(Ok(true)) => {
            let connection = shared.http2.serve_connection(TokioIo::new(io), service);
            let connection = std::pin::pin!(connection);
            let ended = drive(
                connection,
                |connection| connection.graceful_shutdown(),
                stop,
                None,
            );
            if let Err(error) = ended.await {
                tracing::debug!(%error, "{ended_badly}");
            }
        }
        Ok(Ok(false)) => {
            let connection = shared.builder.serve_connection(TokioIo::new(io), service);
            let connection = std::pin::pin!(connection);
            let head = Some((&*clock, shared.limits.request_read_timeout));
            match drive(
                connection,
                |connection| connection.graceful_shutdown(),
                stop,
                head,
            )
            .await
            {
                Err(Ended::HeadOverdue) => {
                    metrics.http_connections_timed_out.inc();
                    tracing::debug!(
                        timeout = ?shared.limits.request_read_timeout,
                        "closing an HTTP connection whose request head did not arrive in time"
                    );
                }
                Err(error) => tracing::debug!(%error, "{ended_badly}"),
                Ok(()) => {}
            }
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "HTTP connection failed before its first request")
        }
        Err(_idle) => {}
    }
    metrics.http_connections_open.dec();
}

/// The service every request of one connection goes through: the in-flight limit (with the
/// monitoring slots), then the router.
fn connection_service(
    shared: &Arc<Shared>,
    clock: &Arc<RequestClock>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone {
    let shared = Arc::clone(shared);
    let clock = Arc::clone(clock);
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        // Synchronously, before any of the body is read: what arrives from now on is
        // body, not a new head.
        let visit = clock.request_started();
        let shared = Arc::clone(&shared);
        let monitoring = is_monitoring(&request);
        async move {
            let _visit = visit;
            // Monitoring takes its own slots first, so that polling it never takes one a
            // client's request then finds missing.
            let slot = match monitoring {
                true => shared
                    .monitoring
                    .try_acquire()
                    .or_else(|_| shared.requests.try_acquire()),
                false => shared.requests.try_acquire(),
            };
            let Ok(_slot) = slot else {
                shared.metrics.http_requests_shed.inc();
                return Ok::<_, Infallible>(retry_later(format!(
                    "this node is handling its limit of {} requests; retry shortly",
                    shared.limits.requests_in_flight_max
                )));
            };
            shared.metrics.http_requests_in_flight.inc();
            let _in_flight = GaugeDecrement(&shared.metrics.http_requests_in_flight);
            // A `Router` is always ready (its `poll_ready` returns `Ready`), so it is
            // called without waiting for readiness.
            let mut router = shared.router.clone();
            tower_service::Service::call(&mut router, request).await
        }
    })
}

/// Why a connection ended other than by closing cleanly.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("request head overdue")]
    HeadOverdue,
}

/// Runs `connection` until it ends; once `stop` turns true, shuts it down gracefully (its
/// requests in flight are answered, idle it closes at once). With `head`, an HTTP/1.1 head
/// that takes longer than the limit to arrive ends it ([`Ended::HeadOverdue`]).
async fn drive<C>(
    mut connection: Pin<&mut C>,
    shut_down: impl Fn(Pin<&mut C>),
    mut stop: watch::Receiver<bool>,
    head: Option<(&RequestClock, Duration)>,
) -> Result<(), Ended>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let head_overdue = async {
        match head {
            Some((clock, limit)) => clock.head_overdue(limit).await,
            None => std::future::pending().await,
        }
    };
    let mut head_overdue = std::pin::pin!(head_overdue);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => return result.map_err(Ended::from),
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                shut_down(connection.as_mut());
                stopping = true;
            }
            () = head_overdue.as_mut() => return Err(Ended::HeadOverdue),
        }
    }
}

/// Decrements a gauge when dropped, however the request ends.
struct GaugeDecrement<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeDecrement<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The largest request body that keys of `key_bytes_max` and values of `value_bytes_max`
/// need: a compare-and-swap carries two values and a key in JSON.
pub fn request_body_bytes_max(key_bytes_max: usize, value_bytes_max: usize) -> usize {
    2 * value_bytes_max + 2 * key_bytes_max + 4096
}

/// The answer to a request beyond a limit of the whole node: 503 with Retry-After, which the
/// Rust client and other well-behaved clients retry (on another node) after a pause.
pub(crate) fn retry_later(error: String) -> Response {
    let body = ErrorResponse {
        error,
        leader: None,
        leader_http: None,
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    response
}

/// When the request head a connection is reading started arriving.
struct RequestClock {
    opened: Instant,
    /// Nanoseconds after `opened`, plus one, at which the first byte of the head now being
    /// read arrived; 0 while no head is being read. Invariant: 0 while `in_flight` > 0.
    head_started: AtomicU64,
    /// Requests handed to the service and not answered yet.
    in_flight: AtomicUsize,
    /// Woken when a head starts.
    head_began: Notify,
}

impl RequestClock {
    fn new() -> RequestClock {
        RequestClock {
            opened: Instant::now(),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_began: Notify::new(),
        }
    }

    /// Bytes were read: the start of a head, unless a request is being handled (then they
    /// are its body, or a pipelined request the idle timeout covers) or a head already
    /// started.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return;
        }
        let now = u64::try_from(self.opened.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        if self
            .head_started
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.head_began.notify_one();
        }
    }

    /// A head was complete and its request handed to the service; the returned guard marks
    /// it answered when dropped.
    fn request_started(self: &Arc<Self>) -> RequestVisit {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        RequestVisit {
            clock: Arc::clone(self),
        }
    }

    /// Resolves once a head has been arriving for longer than `limit`.
    async fn head_overdue(&self, limit: Duration) {
        loop {
            let started = self.head_started.load(Ordering::Acquire);
            if started == 0 {
                self.head_began.notified().await;
                continue;
            }
            let deadline = self.opened + Duration::from_nanos(started - 1) + limit;
            tokio::time::sleep_until(deadline).await;
            // The same head still not complete (a new one would have another start).
            if self.head_started.load(Ordering::Acquire) == started {
                return;
            }
        }
    }
}

/// A request between its head and its answer.
struct RequestVisit {
    clock: Arc<RequestClock>,
}

impl Drop for RequestVisit {
    fn drop(&mut self) {
        self.clock.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's stream, telling its [`RequestClock`] when bytes arrive, and handing out
/// the bytes read to tell the HTTP version again before the rest.
struct WatchedIo<S> {
    inner: S,
    clock: Arc<RequestClock>,
    /// The first bytes, read by [`WatchedIo::read_preface`].
    replay: Vec<u8>,
    /// How many of them were handed out again.
    replayed: usize,
}

impl<S: AsyncRead + Unpin> WatchedIo<S> {
    /// Reads the connection's first bytes until they are HTTP/2's preface (`true`), or differ
    /// from it or end (`false`: HTTP/1.1, or a closed connection). Reads no further than the
    /// preface, and keeps what it read to hand out again.
    async fn read_preface(&mut self) -> std::io::Result<bool> {
        let mut first = [0; HTTP2_PREFACE.len()];
        let mut read = 0;
        let is_http2 = loop {
            if read == first.len() {
                break true;
            }
            let more = self.read(&mut first[read..]).await?;
            read += more;
            if more == 0 || !HTTP2_PREFACE.starts_with(&first[..read]) {
                break false;
            }
        };
        self.replay = first[..read].to_vec();
        Ok(is_http2)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.replayed < self.replay.len() {
            let this = &mut *self;
            let rest = &this.replay[this.replayed..];
            let taken = rest.len().min(buffer.remaining());
            buffer.put_slice(&rest[..taken]);
            this.replayed += taken;
            return Poll::Ready(Ok(()));
        }
        let before = buffer.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            self.clock.bytes_arrived();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_limit_is_checked() {
        let defaults = HttpLimits::default();
        let body_bytes_max = request_body_bytes_max(4096, 1024 * 1024);
        assert_eq!(defaults.validate(4096, body_bytes_max), Ok(()));
        let refused = |limits: HttpLimits, key_bytes_max: usize| {
            limits
                .validate(key_bytes_max, body_bytes_max)
                .expect_err("out of range")
                .0
        };
        // Every valid request must fit in the body budget on its own.
        assert_eq!(
            refused(
                HttpLimits {
                    body_bytes_in_flight_max: body_bytes_max - 1,
                    ..defaults
                },
                4096
            ),
            "http_body_bytes_in_flight_max"
        );
        assert_eq!(
            refused(
                HttpLimits {
                    connections_max: 0,
                    ..defaults
                },
                4096
            ),
            "http_connections_max"
        );
        assert_eq!(
            refused(
                HttpLimits {
                    requests_in_flight_max: 2_000_000,
                    ..defaults
                },
                4096
            ),
            "http_requests_in_flight_max"
        );
        assert_eq!(
            refused(
                HttpLimits {
                    header_bytes_max: 4096,
                    ..defaults
                },
                16
            ),
            "http_header_bytes_max"
        );
        // The head must carry the longest key percent-encoded.
        assert_eq!(refused(defaults, 64 * 1024), "http_header_bytes_max");
        assert_eq!(
            refused(
                HttpLimits {
                    request_read_timeout: Duration::ZERO,
                    ..defaults
                },
                4096
            ),
            "http_request_read_timeout_ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_is_overdue_only_when_it_started_and_did_not_finish_in_time() {
        let clock = Arc::new(RequestClock::new());
        let limit = Duration::from_secs(10);
        // Idle: nothing is overdue however long it waits.
        let idle = tokio::time::timeout(Duration::from_secs(60), clock.head_overdue(limit)).await;
        assert!(idle.is_err());
        // A head starts and completes in time; the body that follows does not count.
        clock.bytes_arrived();
        tokio::time::advance(Duration::from_secs(5)).await;
        let visit = clock.request_started();
        clock.bytes_arrived();
        let answered = tokio::time::timeout(Duration::from_secs(60), clock.head_overdue(limit));
        assert!(
            answered.await.is_err(),
            "a request in flight is not a slow head"
        );
        drop(visit);
        // The next head trickles in and is cut off after the limit.
        clock.bytes_arrived();
        let started = tokio::time::Instant::now();
        clock.head_overdue(limit).await;
        assert!(started.elapsed() >= limit);
    }

    /// Sends `body` on `sender` and returns the handler's answer: how many DATA frames and
    /// bytes the body arrived in.
    async fn frames_of(
        sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
        body: Vec<u8>,
    ) -> String {
        use http_body_util::BodyExt;
        let request = hyper::Request::post("http://node/")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("a valid request");
        let answer = sender.send_request(request).await.expect("answered");
        let body = answer.into_body().collect().await.expect("read");
        String::from_utf8_lossy(&body.to_bytes()).into_owned()
    }

    /// A 64 KiB value (one PUT's body) reaches the handler as one DATA frame over HTTP/2, so
    /// `to_bytes` hands it over without copying it; with HTTP/2's default 16 KiB frames it
    /// came in four pieces (see `HTTP2_FRAME_BYTES_MAX`).
    #[tokio::test]
    async fn an_http2_body_within_the_frame_limit_arrives_in_one_data_frame() {
        use http_body_util::BodyExt;
        let (client_io, server_io) = tokio::io::duplex(4 << 20);
        let count_frames = hyper::service::service_fn(
            |request: hyper::Request<hyper::body::Incoming>| async move {
                let mut body = request.into_body();
                let (mut frames, mut bytes) = (0, 0);
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame?.into_data() {
                        frames += 1;
                        bytes += data.len();
                    }
                }
                let answer = bytes::Bytes::from(format!("{frames} frames, {bytes} bytes"));
                Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(answer)))
            },
        );
        let server = HttpLimits::default().http2_builder();
        tokio::spawn(async move {
            server
                .serve_connection(TokioIo::new(server_io), count_frames)
                .await
        });
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(client_io))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        // A first exchange, so that the client knows the server's settings and windows before
        // the large body, as on any connection in use.
        assert_eq!(
            frames_of(&mut sender, vec![1; 10]).await,
            "1 frames, 10 bytes"
        );
        let value_bytes = 64 * 1024;
        assert!(value_bytes <= HTTP2_FRAME_BYTES_MAX as usize);
        assert_eq!(
            frames_of(&mut sender, vec![7; value_bytes]).await,
            format!("1 frames, {value_bytes} bytes")
        );
    }
}
