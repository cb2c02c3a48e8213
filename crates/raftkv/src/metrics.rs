//! Prometheus metrics: request latency by route, the Raft node's counters and its fsync
//! latency, and the key-value state, rendered in the text exposition format at `/metrics`.
//!
//! ```text
//!  HTTP middleware ─► request_seconds{route,method,status}  (histogram, observed per request)
//!  access guard ─► auth_refusals_total{reason}; connection loop ─► http_connections_* and
//!                  http_requests_* (counted as they happen)
//!  scrape ─► NodeCollector ─► RaftNode::metrics() + KvServer state  (read at scrape time)
//! ```

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use raft_wal::HistogramSnapshot;

use crate::server::KvServer;

/// Labels of a request observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern, e.g. `/v1/kv/{key}`, or `unmatched`.
    pub route: &'static str,
    /// The HTTP method, or `other` for one outside the standard set.
    pub method: &'static str,
    /// The status code.
    pub status: u16,
}

/// Labels of a request refused by the access guard.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `unauthenticated` (401) or `forbidden` (403).
    pub reason: &'static str,
}

/// The registry and the metrics observed directly.
pub struct Metrics {
    registry: Registry,
    /// Request latency in seconds by route, method and status.
    pub requests: Family<RequestLabels, Histogram>,
    /// Requests refused by the access guard, by reason.
    pub auth_refusals: Family<RefusalLabels, Counter>,
    /// HTTP connections open now.
    pub http_connections_open: Gauge,
    /// Connections closed at once because `--http-connections-max` were open.
    pub http_connections_refused: Counter,
    /// Connections closed because a request's head did not arrive within the read timeout.
    pub http_connections_timed_out: Counter,
    /// Requests being handled now.
    pub http_requests_in_flight: Gauge,
    /// Bytes of request bodies held now, each counted at its declared length from before it
    /// is read until it is answered (what `--http-body-bytes-in-flight-max` bounds).
    pub http_request_body_bytes_held: Gauge,
    /// Requests answered 503 because `--http-requests-in-flight-max` were being handled.
    pub http_requests_shed: Counter,
    /// Requests answered 503 because their body did not fit in what was left of
    /// `--http-body-bytes-in-flight-max`.
    pub http_request_bodies_shed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Metrics")
    }
}

impl Metrics {
    /// Metrics of `server` (held weakly, so metrics never keep a stopped server alive).
    pub fn new(server: &Arc<KvServer>) -> Metrics {
        let mut registry = Registry::with_prefix("raftkv");
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to about 13 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route, method and status",
            requests.clone(),
        );
        let auth_refusals = Family::<RefusalLabels, Counter>::default();
        // Both series exist from the start, so a dashboard shows 0 rather than nothing.
        for reason in ["unauthenticated", "forbidden"] {
            drop(auth_refusals.get_or_create(&RefusalLabels { reason }));
        }
        registry.register(
            "auth_refusals",
            "Requests refused by client authentication: unauthenticated (401) or forbidden (403)",
            auth_refusals.clone(),
        );
        let http_connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open",
            http_connections_open.clone(),
        );
        let http_connections_refused = Counter::default();
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once because the connection limit was reached",
            http_connections_refused.clone(),
        );
        let http_connections_timed_out = Counter::default();
        registry.register(
            "http_connections_timed_out",
            "HTTP connections closed because a request head was not received in time",
            http_connections_timed_out.clone(),
        );
        let http_requests_in_flight = Gauge::default();
        let http_request_body_bytes_held = Gauge::default();
        registry.register(
            "http_request_body_bytes_held",
            "Bytes of request bodies held now, each at its declared length until answered",
            http_request_body_bytes_held.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled",
            http_requests_in_flight.clone(),
        );
        let http_requests_shed = Counter::default();
        registry.register(
            "http_requests_shed",
            "HTTP requests answered 503 because the in-flight request limit was reached",
            http_requests_shed.clone(),
        );
        let http_request_bodies_shed = Counter::default();
        registry.register(
            "http_request_bodies_shed",
            "HTTP requests answered 503 because the request bodies being held reached their byte limit",
            http_request_bodies_shed.clone(),
        );
        registry.register_collector(Box::new(NodeCollector {
            server: Arc::downgrade(server),
        }));
        Metrics {
            registry,
            requests,
            auth_refusals,
            http_connections_open,
            http_connections_refused,
            http_connections_timed_out,
            http_requests_in_flight,
            http_request_body_bytes_held,
            http_requests_shed,
            http_request_bodies_shed,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "metrics could not be rendered");
        }
        text
    }
}

/// Reads the node's and the service's figures at scrape time.
#[derive(Debug)]
struct NodeCollector {
    server: Weak<KvServer>,
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(server) = self.server.upgrade() else {
            return Ok(());
        };
        let node = server.node().metrics();
        let encoder = &mut encoder;
        let as_gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        gauge(
            encoder,
            "raft_term",
            "Current Raft term",
            as_gauge(node.term.0),
        )?;
        gauge(
            encoder,
            "raft_is_leader",
            "1 if this node leads",
            i64::from(node.is_leader),
        )?;
        gauge(
            encoder,
            "raft_commit_index",
            "Highest log index known committed",
            as_gauge(node.commit_index.0),
        )?;
        gauge(
            encoder,
            "raft_applied_index",
            "Highest log index handed to the state machine",
            as_gauge(node.applied_index.0),
        )?;
        gauge(
            encoder,
            "raft_last_log_index",
            "Last index in the log",
            as_gauge(node.last_log_index.0),
        )?;
        gauge(
            encoder,
            "raft_snapshot_index",
            "Last index covered by the snapshot",
            as_gauge(node.snapshot_index.0),
        )?;
        counter(
            encoder,
            "raft_proposals_accepted",
            "Commands accepted for proposal by this node as leader",
            node.proposals_accepted_total,
        )?;
        counter(
            encoder,
            "raft_proposals_refused",
            "Commands refused (not leader, busy, too large)",
            node.proposals_refused_total,
        )?;
        counter(
            encoder,
            "raft_entries_committed",
            "Log entries this node saw committed",
            node.entries_committed_total,
        )?;
        counter(
            encoder,
            "raft_entries_applied",
            "Log entries handed to the state machine",
            node.entries_applied_total,
        )?;
        counter(
            encoder,
            "raft_elections_started",
            "Elections this node started",
            node.elections_started_total,
        )?;
        counter(
            encoder,
            "raft_leader_changes",
            "Times the leader this node knows of changed",
            node.leader_changes_total,
        )?;
        counter(
            encoder,
            "raft_snapshots_installed",
            "Snapshots installed from a leader",
            node.snapshots_installed_total,
        )?;
        counter(
            encoder,
            "raft_snapshots_taken",
            "Snapshots of the local state that compacted the log",
            node.snapshots_taken_total,
        )?;
        counter(
            encoder,
            "raft_messages_sent",
            "Raft messages sent",
            node.messages_sent_total,
        )?;
        counter(
            encoder,
            "raft_messages_received",
            "Raft messages received",
            node.messages_received_total,
        )?;
        let transport = server.transport_counters();
        counter(
            encoder,
            "raft_peer_tls_handshakes_failed",
            "TLS handshakes with peers that failed: a certificate from another CA or none, \
             one not for the node dialed, a plain-TCP peer, or too slow a handshake",
            transport.tls_handshakes_failed,
        )?;
        counter(
            encoder,
            "raft_peer_connections_refused",
            "Inbound Raft connections refused at their handshake (wrong cluster, unknown or \
             removed peer, a certificate for another node) or for too many connections",
            transport.connections_refused,
        )?;
        counter(
            encoder,
            "http_tls_handshakes_failed",
            "HTTPS handshakes that failed: a client certificate missing or from another CA, \
             plain HTTP on the HTTPS port, or too slow a handshake",
            server.tls().http_handshakes_failed(),
        )?;
        histogram(
            encoder,
            "wal_fsync_duration_seconds",
            "Time of each fdatasync of the write-ahead log",
            &server.wal_sync_latency(),
        )?;
        histogram(
            encoder,
            "raft_storage_write_duration_seconds",
            "Time of each durable write of the Raft log: a batch of requests encoded, \
             written and synced",
            &node.storage_write_latency,
        )?;
        let (keys, sessions, data_bytes) = {
            let state = server.state();
            (state.keys(), state.sessions(), state.data_bytes())
        };
        gauge(encoder, "kv_keys", "Keys held", keys as i64)?;
        gauge(
            encoder,
            "kv_sessions",
            "Client sessions remembered for exactly-once writes",
            sessions as i64,
        )?;
        gauge(
            encoder,
            "kv_data_bytes",
            "Bytes of keys and values held",
            as_gauge(data_bytes),
        )?;
        let counters = &server.counters;
        counter(
            encoder,
            "kv_requests_forwarded",
            "Requests this node forwarded to the leader",
            counters.forwarded_total.load(Ordering::Relaxed),
        )?;
        counter(
            encoder,
            "kv_snapshots_taken",
            "Snapshots the service took of its state",
            counters.snapshots_taken_total.load(Ordering::Relaxed),
        )?;
        counter(
            encoder,
            "kv_writes_not_committed",
            "Writes answered not committed (leadership changed)",
            counters.writes_not_committed_total.load(Ordering::Relaxed),
        )?;
        counter(
            encoder,
            "kv_writes_outcome_unknown",
            "Writes answered with an unknown outcome (timeout or snapshot)",
            counters.writes_unknown_total.load(Ordering::Relaxed),
        )?;
        counter(
            encoder,
            "kv_requests_held_for_leadership_change",
            "Requests that waited for a leadership change (a transfer) to pass instead of being refused",
            counters.held_for_leadership_change_total.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}

/// Encodes a latency histogram (cumulative buckets, as the node and the log keep them) as a
/// Prometheus histogram.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    latency: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut previous = 0;
    let buckets: Vec<(f64, u64)> = latency
        .bounds_seconds
        .iter()
        .zip(&latency.cumulative_counts)
        .map(|(bound, cumulative)| {
            let in_bucket = cumulative.saturating_sub(previous);
            previous = *cumulative;
            (*bound, in_bucket)
        })
        .collect();
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            latency.sum_seconds,
            latency.count,
            &buckets,
            None,
        )
}
