//! Load beside a measured run, for the watcher and lease sweeps: watches of the written prefix
//! that receive every write, and leases kept alive, so the writes' throughput and latency can
//! be read against how many there are.
//!
//! ```text
//!  start: watchers spread over the endpoints (HTTP/2, WATCH_STREAMS_PER_CONNECTION streams per
//!         connection) ─► wait until the nodes' watch_watchers_open gauges count them
//!         (--target etcd: etcd's v3 Watch, a gRPC stream per watch, one connection per
//!         endpoint ─► wait until every watch is answered `created`)
//!         leases granted (TTL LEASE_TTL_SECONDS) ─► one task renews all every
//!         LEASE_RENEWAL_INTERVAL_SECONDS
//!  ... the measured run ...
//!  stop:  watchers closed (events received counted, any error reported)
//!         renewals stopped (a lease found gone fails the point) ─► leases revoked
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftkv_client::{Client, WatchMessage, WatchRequest};
use raftkv_etcd_api::etcdserverpb::watch_client::WatchClient;
use raftkv_etcd_api::etcdserverpb::watch_request::RequestUnion;
use raftkv_etcd_api::etcdserverpb::{WatchCreateRequest, WatchRequest as EtcdWatchRequest};
use serde::Serialize;
use tokio::task::{JoinHandle, JoinSet};
use tokio_stream::StreamExt as _;

use raftkv_client::api::LEASE_KEEPALIVE_IDS_MAX;

use crate::lease::{grant, renew_every_third_of_ttl, revoke};
use crate::watch::{open_watches, wait_for_open_watches};
use crate::{mode_options, with_token, TargetKind};

/// Watch streams per HTTP/2 connection: under a node's default cap of streams in flight on one
/// connection (4,096), as `raftkv bench watch` keeps them.
const WATCH_STREAMS_PER_CONNECTION: usize = 4_000;

/// TTL of the leases kept alive: long enough that the first leases granted do not expire while
/// the last ones are granted (100,000 grants took over 10 s on a loaded 2-core machine, and a
/// 10 s TTL lost leases before the first renewal).
const LEASE_TTL_SECONDS: u64 = 60;

/// How often every lease is renewed: several rounds of keepalives within a point of a few
/// seconds, so their cost is part of what the point measures.
const LEASE_RENEWAL_INTERVAL_SECONDS: u64 = 2;

/// Grants and revokes in flight at once.
const LEASE_GRANTS_IN_FLIGHT: u64 = 64;

/// The deadline of an etcd watch call (sent as `grpc-timeout`): longer than any run, since a
/// watch lives as long as its point.
const ETCD_WATCH_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long etcd watches may take to be answered `created`, all of them.
const ETCD_WATCHES_CREATED_WAIT_MAX: Duration = Duration::from_secs(180);

/// What to run beside the measured run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackgroundLoad {
    /// Watches of the run's key prefix.
    pub watchers: usize,
    /// Leases kept alive.
    pub leases: u64,
}

/// What the background load saw.
#[derive(Clone, Debug, Serialize)]
pub struct BackgroundFigures {
    /// Watches that were open.
    pub watchers: usize,
    /// Events they received in all (each write once per watch, when all kept up).
    pub watch_events: u64,
    /// Leases kept alive.
    pub leases: u64,
    /// Rounds of renewals of every lease.
    pub lease_renewal_rounds: u64,
}

/// The background load while it runs.
pub struct RunningLoad {
    load: BackgroundLoad,
    target: TargetKind,
    /// The endpoints, and the watches open on them before this load opened its own.
    endpoints: Vec<String>,
    watchers_open_before: u64,
    watchers: JoinSet<()>,
    counts: Arc<WatchCounts>,
    leases: Option<LeasesKept>,
}

struct LeasesKept {
    client: Client,
    ids: Arc<Vec<u64>>,
    stop: Arc<AtomicBool>,
    renewer: JoinHandle<Result<(u64, u64), String>>,
}

#[derive(Default)]
struct WatchCounts {
    events: AtomicU64,
    /// etcd watches answered `created`.
    created: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl WatchCounts {
    fn failed(&self, error: String) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }
}

impl BackgroundLoad {
    /// Opens the watches of `key_prefix` and grants the leases; returns once every watch is
    /// counted open by the nodes (for `target` etcd: answered `created`; no leases).
    pub(crate) async fn start(
        self,
        endpoints: &[String],
        token: Option<&str>,
        key_prefix: &str,
        request_timeout: Duration,
        target: TargetKind,
    ) -> Result<RunningLoad, String> {
        let options = mode_options(request_timeout);
        let counts = Arc::new(WatchCounts::default());
        let mut watchers = JoinSet::new();
        let mut open_before = 0;
        if target == TargetKind::Etcd {
            if self.leases > 0 {
                return Err("lease sweeps drive raftkv's HTTP API only".into());
            }
            if self.watchers > 0 {
                watchers = open_etcd_watches(endpoints, key_prefix, self.watchers, &counts).await?;
            }
        } else if self.watchers > 0 {
            open_before = open_watches(endpoints).await?;
            let current = with_token(Client::with_http2(endpoints, options), token)?
                .scan_at(key_prefix, 1, None)
                .await
                .map_err(|error| format!("reading the current revision: {error}"))?
                .revision;
            // Connections per node, and the streams spread over them in turn.
            let per_node = self
                .watchers
                .div_ceil(endpoints.len().max(1))
                .div_ceil(WATCH_STREAMS_PER_CONNECTION);
            let mut connections = Vec::new();
            for endpoint in endpoints {
                for _ in 0..per_node.max(1) {
                    connections.push(with_token(
                        Client::with_http2([endpoint.as_str()], options),
                        token,
                    )?);
                }
            }
            for index in 0..self.watchers {
                let request = WatchRequest::prefix(key_prefix, Some(current + 1));
                let mut stream = connections[index % connections.len()].watch(request);
                let counts = Arc::clone(&counts);
                watchers.spawn(async move {
                    while let Some(message) = stream.next().await {
                        match message {
                            Ok(WatchMessage::Events(batch)) => {
                                counts
                                    .events
                                    .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                            }
                            Ok(WatchMessage::Progress(_)) => {}
                            Err(error) => return counts.failed(error.to_string()),
                        }
                    }
                });
            }
            let target = open_before + self.watchers as u64;
            wait_for_open_watches(endpoints, |open| open >= target, &counts.first_error).await?;
        }
        let leases = if self.leases > 0 {
            let client = with_token(Client::with_http2(endpoints, options), token)?;
            let ids = Arc::new(
                grant(
                    &client,
                    self.leases,
                    LEASE_TTL_SECONDS,
                    LEASE_GRANTS_IN_FLIGHT,
                )
                .await?,
            );
            let stop = Arc::new(AtomicBool::new(false));
            let renewer = tokio::spawn(renew_every_third_of_ttl(
                client.clone(),
                Arc::clone(&ids),
                LEASE_KEEPALIVE_IDS_MAX as u64,
                // It renews every third of the TTL it is given.
                3 * LEASE_RENEWAL_INTERVAL_SECONDS,
                Arc::clone(&stop),
            ));
            Some(LeasesKept {
                client,
                ids,
                stop,
                renewer,
            })
        } else {
            None
        };
        Ok(RunningLoad {
            load: self,
            target,
            endpoints: endpoints.to_vec(),
            watchers_open_before: open_before,
            watchers,
            counts,
            leases,
        })
    }
}

impl RunningLoad {
    /// Closes the watches and revokes the leases; the figures, or `None` when there was no
    /// background load. An error if a watch failed or a lease was lost meanwhile.
    pub(crate) async fn stop(mut self) -> Result<Option<BackgroundFigures>, String> {
        if self.load == BackgroundLoad::default() {
            return Ok(None);
        }
        self.watchers.shutdown().await;
        // etcd has no gauge of its watches: its streams are gone with their connections.
        if self.load.watchers > 0 && self.target == TargetKind::Raftkv {
            // The next point counts its own watches by the same gauges: wait until the nodes
            // have closed these.
            wait_for_open_watches(
                &self.endpoints,
                |open| open <= self.watchers_open_before,
                &self.counts.first_error,
            )
            .await?;
        }
        let watch_error = self
            .counts
            .first_error
            .lock()
            .map_err(|_| "a watcher panicked".to_string())?
            .take();
        let mut rounds = 0;
        if let Some(kept) = self.leases.take() {
            kept.stop.store(true, Ordering::Relaxed);
            let renewed = kept
                .renewer
                .await
                .map_err(|error| format!("the lease renewer failed: {error}"));
            revoke(&kept.client, &kept.ids, LEASE_GRANTS_IN_FLIGHT).await?;
            let (done, lost) = renewed??;
            if lost > 0 {
                return Err(format!("{lost} keepalive answers found a lease gone"));
            }
            rounds = done;
        }
        if let Some(error) = watch_error {
            return Err(format!("a watch failed during the run: {error}"));
        }
        Ok(Some(BackgroundFigures {
            watchers: self.load.watchers,
            watch_events: self.counts.events.load(Ordering::Relaxed),
            leases: self.load.leases,
            lease_renewal_rounds: rounds,
        }))
    }
}

/// Opens `count` etcd v3 watches of `key_prefix` from the next revision, a gRPC stream each,
/// spread over one connection per endpoint; returns once every one is answered `created`.
async fn open_etcd_watches(
    endpoints: &[String],
    key_prefix: &str,
    count: usize,
    counts: &Arc<WatchCounts>,
) -> Result<JoinSet<()>, String> {
    let mut clients = Vec::new();
    for address in endpoints {
        let endpoint = crate::target::etcd_endpoint(address, ETCD_WATCHES_CREATED_WAIT_MAX)?
            .timeout(ETCD_WATCH_DEADLINE);
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        clients.push(WatchClient::new(channel));
    }
    if clients.is_empty() {
        return Err("no --endpoints given".into());
    }
    let create = EtcdWatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key_prefix.as_bytes().to_vec().into(),
            range_end: prefix_range_end(key_prefix.as_bytes()).into(),
            ..WatchCreateRequest::default()
        })),
    };
    let mut watchers = JoinSet::new();
    for index in 0..count {
        let mut client = clients[index % clients.len()].clone();
        // The request side stays open: a closed one may end the watch.
        let requests = tokio_stream::iter([create.clone()]).chain(tokio_stream::pending());
        let counts = Arc::clone(counts);
        watchers.spawn(async move {
            let mut responses = match client.watch(requests).await {
                Ok(responses) => responses.into_inner(),
                Err(status) => return counts.failed(format!("watch refused: {status}")),
            };
            loop {
                match responses.message().await {
                    Ok(Some(response)) if response.canceled => {
                        return counts
                            .failed(format!("watch canceled: {}", response.cancel_reason));
                    }
                    Ok(Some(response)) => {
                        if response.created {
                            counts.created.fetch_add(1, Ordering::Relaxed);
                        }
                        counts
                            .events
                            .fetch_add(response.events.len() as u64, Ordering::Relaxed);
                    }
                    Ok(None) => return counts.failed("watch stream ended".into()),
                    Err(status) => return counts.failed(format!("watch failed: {status}")),
                }
            }
        });
    }
    let deadline = tokio::time::Instant::now() + ETCD_WATCHES_CREATED_WAIT_MAX;
    while counts.created.load(Ordering::Relaxed) < count as u64 {
        if let Some(error) = counts
            .first_error
            .lock()
            .map_err(|_| "a watcher panicked".to_string())?
            .as_ref()
        {
            return Err(format!("a watch failed while opening: {error}"));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{} of {count} watches created in {ETCD_WATCHES_CREATED_WAIT_MAX:?}",
                counts.created.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(watchers)
}

/// The end of etcd's range of every key starting with `prefix`: the prefix with its last
/// byte below 0xff incremented (what follows dropped); `\0` (every key) when there is none.
fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_range_end;

    #[test]
    fn a_prefix_range_ends_after_every_key_starting_with_it() {
        assert_eq!(prefix_range_end(b"watched/"), b"watched0");
        assert_eq!(prefix_range_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }
}
