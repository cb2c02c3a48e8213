//! Load beside a measured run, for the watcher and lease sweeps: watches of the written prefix
//! that receive every write, and leases kept alive, so the writes' throughput and latency can
//! be read against how many there are.
//!
//! ```text
//!  start: watchers spread over the endpoints (HTTP/2, WATCH_STREAMS_PER_CONNECTION streams per
//!         connection) ─► wait until the nodes' watch_watchers_open gauges count them
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
use serde::Serialize;
use tokio::task::{JoinHandle, JoinSet};

use raftkv_client::api::LEASE_KEEPALIVE_IDS_MAX;

use crate::lease::{grant, renew_every_third_of_ttl, revoke};
use crate::watch::{open_watches, wait_for_open_watches};
use crate::{mode_options, with_token};

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
    first_error: Mutex<Option<String>>,
}

impl BackgroundLoad {
    /// Opens the watches of `key_prefix` and grants the leases; returns once every watch is
    /// counted open by the nodes.
    pub(crate) async fn start(
        self,
        endpoints: &[String],
        token: Option<&str>,
        key_prefix: &str,
        request_timeout: Duration,
    ) -> Result<RunningLoad, String> {
        let options = mode_options(request_timeout);
        let counts = Arc::new(WatchCounts::default());
        let mut watchers = JoinSet::new();
        let mut open_before = 0;
        if self.watchers > 0 {
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
                            Err(error) => {
                                if let Ok(mut first) = counts.first_error.lock() {
                                    first.get_or_insert(error.to_string());
                                }
                                return;
                            }
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
        if self.load.watchers > 0 {
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
