//! Prometheus metrics: request latency by route, the Raft node's counters and its fsync
//! latency, and the key-value state, rendered in the text exposition format at `/metrics`.
//!
//! ```text
//!  HTTP middleware ─► request_seconds{route,method,status}  (histogram, observed per request)
//!  access guard ─► auth_refusals_total{reason}; connection loop ─► http_connections_* and
//!                  http_requests_* (counted as they happen)
//!  scrape ─► NodeCollector ─► RaftNode::metrics() and TcpCounters (for_each: names, help and
//!                              kinds declared once in raft-node), the watch hub's counters
//!                              + KvServer state, revisions, history and leases (read at
//!                              scrape time)
//! ```

use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use raft_node::metrics::{MetricDescriptor, MetricValue};
use raft_wal::{HistogramSnapshot, LatencyHistogram};

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

/// Labels of a configuration reload (see [`crate::live_config`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// What was reloaded: `tls` (certificates and keys), `ca` or `tokens`.
    pub what: &'static str,
    /// `ok`, or `failed` (the old files stay in force).
    pub result: &'static str,
}

/// Labels of what a configuration reload was about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadWhatLabels {
    /// `tls`, `ca` or `tokens`.
    pub what: &'static str,
}

/// The registry and the metrics observed directly.
pub struct Metrics {
    registry: Registry,
    /// Request latency in seconds by route, method and status.
    pub requests: Family<RequestLabels, Histogram>,
    /// Requests refused by the access guard, by reason.
    pub auth_refusals: Family<RefusalLabels, Counter>,
    /// Reloads of the TLS files, the CAs and the token file, by what and result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// When each kind of file was last put in force (Unix seconds): at start, then at each
    /// successful reload.
    pub config_reload_last_success: Family<ReloadWhatLabels, Gauge>,
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
    /// Time to answer each read of keys a client sent to this node (not one a node forwarded
    /// here), for the dashboard's throughput and latency (`/v1/status?load=true`). Not
    /// exported: `http_request_duration_seconds` has the same by route.
    pub key_reads: LatencyHistogram,
    /// Time to answer each write of keys a client sent to this node, as `key_reads`.
    pub key_writes: LatencyHistogram,
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
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Reloads of configuration files without a restart (SIGHUP or a change seen), by \
             what (tls, ca, tokens) and result (ok, failed: the old files stay in force)",
            config_reloads.clone(),
        );
        let config_reload_last_success = Family::<ReloadWhatLabels, Gauge>::default();
        registry.register(
            "config_reload_last_success_timestamp_seconds",
            "When the files of each kind (tls, ca, tokens) were last put in force, at start \
             or by a reload, in Unix seconds",
            config_reload_last_success.clone(),
        );
        // Each metric is registered where its field is set: one place names it and says what
        // it counts. Fields are evaluated in the order written, which is the exposition's.
        Metrics {
            requests,
            auth_refusals,
            config_reloads,
            config_reload_last_success,
            http_connections_open: registered(
                &mut registry,
                "http_connections_open",
                "HTTP connections open",
            ),
            http_connections_refused: registered(
                &mut registry,
                "http_connections_refused",
                "HTTP connections closed at once because the connection limit was reached",
            ),
            http_connections_timed_out: registered(
                &mut registry,
                "http_connections_timed_out",
                "HTTP connections closed because a request head was not received in time",
            ),
            http_request_body_bytes_held: registered(
                &mut registry,
                "http_request_body_bytes_held",
                "Bytes of request bodies held now, each at its declared length until answered",
            ),
            http_requests_in_flight: registered(
                &mut registry,
                "http_requests_in_flight",
                "HTTP requests being handled",
            ),
            http_requests_shed: registered(
                &mut registry,
                "http_requests_shed",
                "HTTP requests answered 503 because the in-flight request limit was reached",
            ),
            http_request_bodies_shed: registered(
                &mut registry,
                "http_request_bodies_shed",
                "HTTP requests answered 503 because the request bodies being held reached their \
                 byte limit",
            ),
            key_reads: LatencyHistogram::new(),
            key_writes: LatencyHistogram::new(),
            // Last, so the collector's figures follow the metrics above.
            registry: {
                registry.register_collector(Box::new(NodeCollector {
                    server: Arc::downgrade(server),
                }));
                registry
            },
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

/// A new metric, registered in `registry` under `name` with `help`.
fn registered<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: Default + Clone + EncodeMetric + Send + Sync + std::fmt::Debug + 'static,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
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
        let encoder = &mut encoder;
        // The node's, the peer transport's and the service's figures, each declared once
        // (with raft_node::declare_metrics!) with its exported name and help.
        let mut encoded = Ok(());
        let mut encode = |descriptor: &MetricDescriptor, value: MetricValue<'_>| {
            if encoded.is_ok() {
                encoded = figure(encoder, descriptor, value);
            }
        };
        server.node().metrics().for_each(&mut encode);
        server.transport_counters().for_each(&mut encode);
        server.counters.snapshot().for_each(&mut encode);
        server.watch_hub().figures().for_each(&mut encode);
        server.consistency_figures().for_each(&mut encode);
        encoded?;
        let as_gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        counter(
            encoder,
            "http_tls_handshakes_failed",
            "HTTPS handshakes that failed: a client certificate missing or from another CA, \
             plain HTTP on the HTTPS port, or too slow a handshake",
            server.tls().http_handshakes_failed(),
        )?;
        histogram(
            encoder,
            "watch_delivery_seconds",
            "Time from the apply loop's publish of a revision to its events' hand-over to a \
             watch's stream (live events only)",
            &server.watch_hub().delivery_latency.snapshot(),
        )?;
        histogram(
            encoder,
            "wal_fsync_duration_seconds",
            "Time of each fdatasync of the write-ahead log",
            &server.wal_sync_latency(),
        )?;
        let (keys, sessions, data_bytes) = {
            let state = server.state();
            (state.keys(), state.sessions(), state.data_bytes())
        };
        let (revision, compact_revision, history_versions, history_bytes) = {
            let state = server.state();
            (
                state.revision(),
                state.compact_revision(),
                state.history_versions(),
                state.history_bytes(),
            )
        };
        gauge(
            encoder,
            "kv_revision",
            "The store's revision: changes applied (1 for an empty store)",
            as_gauge(revision),
        )?;
        gauge(
            encoder,
            "kv_compact_revision",
            "The oldest revision still readable (history before it is compacted)",
            as_gauge(compact_revision),
        )?;
        gauge(
            encoder,
            "kv_history_versions",
            "Versions of keys held for reads at past revisions and watches (beside the current)",
            history_versions as i64,
        )?;
        gauge(
            encoder,
            "kv_history_bytes",
            "Bytes of keys and values held for reads at past revisions and watches",
            as_gauge(history_bytes),
        )?;
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
        let leases = server.state().leases_count();
        gauge(
            encoder,
            "kv_leases",
            "Leases granted and not revoked or expired",
            leases as i64,
        )?;
        gauge(
            encoder,
            "kv_lessor_promoted",
            "1 while this node is the leader that decides about leases (it leads and applied its \
             own first entry of the term), else 0",
            i64::from(server.lessor_promoted()),
        )?;
        let data_dir = &server.config().data_dir;
        gauge(
            encoder,
            "data_dir_bytes",
            "Bytes of the files in this node's data directory (log segments, snapshots)",
            as_gauge(directory_bytes(data_dir)),
        )?;
        // A scrape that cannot read the file system's figures leaves them out rather than
        // reporting a full or empty disk that is neither.
        if let Some(space) = filesystem_space(data_dir) {
            gauge(
                encoder,
                "data_dir_filesystem_size_bytes",
                "Size of the file system that holds the data directory",
                as_gauge(space.size_bytes),
            )?;
            gauge(
                encoder,
                "data_dir_filesystem_available_bytes",
                "Bytes of that file system an unprivileged process may still write",
                as_gauge(space.available_bytes),
            )?;
        }
        Ok(())
    }
}

/// The bytes of every file under `dir` (its subdirectories too); unreadable entries count as
/// empty. A data directory holds tens of files, so a walk per scrape costs microseconds.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |meta| meta.len()),
            _ => 0,
        })
        .sum()
}

/// The size and free space of a file system, from `statvfs`.
struct FilesystemSpace {
    size_bytes: u64,
    available_bytes: u64,
}

fn filesystem_space(path: &std::path::Path) -> Option<FilesystemSpace> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes the struct it is given; zeroed is a valid value for it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = stats.f_frsize as u64;
    Some(FilesystemSpace {
        size_bytes: (stats.f_blocks as u64).saturating_mul(block),
        available_bytes: (stats.f_bavail as u64).saturating_mul(block),
    })
}

/// Encodes one figure of raft-node's, as its kind says.
fn figure(
    encoder: &mut DescriptorEncoder,
    descriptor: &MetricDescriptor,
    value: MetricValue<'_>,
) -> Result<(), std::fmt::Error> {
    let (name, help) = (descriptor.name, descriptor.help);
    match value {
        MetricValue::Counter(value) => counter(encoder, name, help, value),
        MetricValue::Gauge(value) => gauge(
            encoder,
            name,
            help,
            i64::try_from(value).unwrap_or(i64::MAX),
        ),
        MetricValue::Histogram(latency) => histogram(encoder, name, help, latency),
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
