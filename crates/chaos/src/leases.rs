//! The lease workload and what observes it, recorded for [`crate::lease_check`].
//!
//! ```text
//!  lease client (each its own session and its own offset clock that jumps forward)
//!    grant (id chosen here) → attach 2-4 keys in one transaction → keepalives every TTL/3
//!    by its own clock, for half a TTL to two → revoke, or stop and let it expire; stop early when
//!    its clock says no keepalive was acknowledged for a TTL
//!  scanner       a linearizable scan of the lease prefix every 200 ms: which keys exist
//!  watcher       the lease prefix from revision 1: when each delete was first seen
//!  term observer every node's status every 200 ms: the highest term and whether it has a
//!                leader
//! ```
//!
//! A client's clock is the checker's monotonic clock plus an offset that jumps forward at
//! random (seeded), like the clock nemesis's libfaketime jumps of a node: the client then
//! sends keepalives early, or thinks its lease expired and stops, both safe. Every recorded
//! time is the checker's real clock, so no verdict depends on a faked clock.

use std::sync::Arc;
use std::time::Duration;

use raftkv_client::api::{EventType, TxnOp, TxnRequest};
use raftkv_client::{Client, ClientError, ClientOptions, WatchMessage, WatchRequest};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::lease_check::{
    LeaseAnswer, LeaseCall, LeaseEnd, LeaseHistory, LeaseScan, LeaseStep, SeenDelete, TermSample,
};
use crate::workload::nanos;

/// The prefix of every lease key.
pub const LEASE_PREFIX: &str = "chaos/lease/";
/// Shortest and longest TTL a client asks for, in seconds.
const TTL_SECONDS: (u64, u64) = (3, 6);
/// Fewest and most keys attached to one lease.
const KEYS_PER_LEASE: (usize, usize) = (2, 4);
/// Ids are chosen in 1 ..= 2^53, as the nodes choose them.
const LEASE_ID_MAX: u64 = 1 << 53;
/// Chance that a client's clock jumps before a keepalive, in percent.
const CLOCK_JUMP_PERCENT: u32 = 10;
/// Scans and term samples, this often.
pub const OBSERVE_EVERY: Duration = Duration::from_millis(200);
/// Most lease keys one scan reads.
const SCAN_LIMIT: usize = 10_000;

/// What a lease client works with.
#[derive(Clone, Debug)]
pub struct LeaseShared {
    /// The run's time origin: every recorded time is counted from it.
    pub origin: Instant,
    /// Set to stop the clients.
    pub stop: watch::Receiver<bool>,
}

/// A client's own clock: the real monotonic clock plus an offset that only grows.
struct OffsetClock {
    offset: Duration,
    jumped: Duration,
}

impl OffsetClock {
    fn now(&self) -> Instant {
        Instant::now() + self.offset
    }

    /// Jumps forward by 1 s up to `ttl` with a small chance, as a libfaketime jump would.
    fn maybe_jump(&mut self, random: &mut Xoshiro256PlusPlus, ttl: Duration) {
        if random.gen_ratio(CLOCK_JUMP_PERCENT, 100) {
            let jump = Duration::from_millis(random.gen_range(1_000..=nanos(ttl) / 1_000_000));
            self.offset += jump;
            self.jumped += jump;
        }
    }
}

/// Runs one lease client until `shared.stop` is set; returns every lease it held.
pub async fn run_lease_client(
    number: u64,
    client: Client,
    shared: Arc<LeaseShared>,
    seed: u64,
) -> Vec<LeaseHistory> {
    let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut clock = OffsetClock {
        offset: Duration::ZERO,
        jumped: Duration::ZERO,
    };
    let mut leases = Vec::new();
    let mut sequence = 0u64;
    while !*shared.stop.borrow() {
        sequence += 1;
        let ttl_seconds = random.gen_range(TTL_SECONDS.0..=TTL_SECONDS.1);
        let keys: Vec<String> = (0..random.gen_range(KEYS_PER_LEASE.0..=KEYS_PER_LEASE.1))
            .map(|index| format!("{LEASE_PREFIX}{number}/{sequence}/{index}"))
            .collect();
        let mut lease = LeaseHistory {
            client: number,
            id: random.gen_range(1..=LEASE_ID_MAX),
            ttl_seconds,
            keys,
            steps: Vec::new(),
            end: LeaseEnd::GrantUnanswered,
            client_clock_jumped_ms: 0,
        };
        let jumped_before = clock.jumped;
        hold(&client, &shared, &mut lease, &mut clock, &mut random).await;
        lease.client_clock_jumped_ms = nanos(clock.jumped - jumped_before) / 1_000_000;
        leases.push(lease);
    }
    leases
}

/// One lease from grant to revoke or abandonment.
async fn hold(
    client: &Client,
    shared: &LeaseShared,
    lease: &mut LeaseHistory,
    clock: &mut OffsetClock,
    random: &mut Xoshiro256PlusPlus,
) {
    let ttl = Duration::from_secs(lease.ttl_seconds);
    let granted_at = clock.now();
    let grant = call(shared, LeaseCall::Grant, async {
        client
            .lease_grant(lease.ttl_seconds, Some(lease.id))
            .await
            .map(|granted| (granted.ttl_seconds, granted.revision))
    })
    .await;
    let granted = matches!(grant.answer, LeaseAnswer::Ok { .. });
    lease.steps.push(grant);
    if !granted {
        return;
    }
    let attach = TxnRequest {
        compare: Vec::new(),
        success: lease
            .keys
            .iter()
            .map(|key| TxnOp::Put {
                key: key.clone(),
                value: Some(format!("lease {:x}", lease.id)),
                value_base64: None,
                lease: Some(lease.id),
            })
            .collect(),
        failure: Vec::new(),
    };
    let attach = call(shared, LeaseCall::Attach, async {
        client
            .txn(&attach)
            .await
            .map(|response| (0, response.revision))
    })
    .await;
    let gone = attach.answer == LeaseAnswer::NotFound;
    lease.steps.push(attach);
    if gone {
        lease.end = LeaseEnd::ToldGone;
        return;
    }
    // By the client's own clock: when the last acknowledged keepalive (or the grant) was sent,
    // and when it means to stop.
    let mut alive_from = granted_at;
    let mut last_sent = granted_at;
    let keep_for_ms = random.gen_range(nanos(ttl) / 2_000_000..=nanos(ttl) * 2 / 1_000_000);
    let keep_until = clock.now() + Duration::from_millis(keep_for_ms);
    let mut stop = shared.stop.clone();
    lease.end = loop {
        clock.maybe_jump(random, ttl);
        let now = clock.now();
        if now >= alive_from + ttl {
            break LeaseEnd::ClockSaidExpired;
        }
        if now >= keep_until || *stop.borrow() {
            break LeaseEnd::Revoked;
        }
        let next = last_sent + ttl / 3;
        if next > now {
            tokio::select! {
                _ = tokio::time::sleep(next - now) => {}
                _ = stop.changed() => continue,
            }
        }
        let sent = clock.now();
        last_sent = sent;
        let keepalive = call(shared, LeaseCall::KeepAlive, async {
            client
                .lease_keep_alive_once(&[lease.id])
                .await
                .map(|answer| {
                    let ttl = answer.leases.first().map_or(0, |lease| lease.ttl_seconds);
                    (ttl, answer.revision)
                })
        })
        .await;
        let answer = keepalive.answer.clone();
        lease.steps.push(keepalive);
        match answer {
            LeaseAnswer::Ok { ttl_seconds: 0, .. } => break LeaseEnd::ToldGone,
            LeaseAnswer::Ok { .. } => alive_from = sent,
            _ => {}
        }
    };
    // At the run's end every lease held is revoked, so the run ends with few to wait for.
    if lease.end == LeaseEnd::Revoked && !*shared.stop.borrow() && random.gen_bool(0.5) {
        lease.end = LeaseEnd::LeftToExpire;
    }
    if lease.end == LeaseEnd::Revoked {
        let revoke = call(shared, LeaseCall::Revoke, async {
            client
                .lease_revoke(lease.id)
                .await
                .map(|revoked| (0, revoked.revision))
        })
        .await;
        lease.steps.push(revoke);
    }
}

/// Runs a lease call and records it.
async fn call(
    shared: &LeaseShared,
    kind: LeaseCall,
    future: impl std::future::Future<Output = Result<(u64, u64), ClientError>>,
) -> LeaseStep {
    let invoke = shared.origin.elapsed();
    let result = future.await;
    let complete = shared.origin.elapsed();
    LeaseStep {
        call: kind,
        invoke_ns: nanos(invoke),
        complete_ns: nanos(complete),
        answer: match result {
            Ok((ttl_seconds, revision)) => LeaseAnswer::Ok {
                ttl_seconds,
                revision,
            },
            Err(ClientError::LeaseNotFound { .. }) => LeaseAnswer::NotFound,
            // An id another lease took: nothing was granted.
            Err(error @ ClientError::LeaseAlreadyExists { .. }) => LeaseAnswer::Failed {
                reason: error.to_string(),
            },
            Err(error) => match crate::workload::write_error(error) {
                lincheck::Outcome::Failed { reason } => LeaseAnswer::Failed { reason },
                lincheck::Outcome::Unknown { reason } => LeaseAnswer::Unknown { reason },
                lincheck::Outcome::Ok { .. } => LeaseAnswer::Unknown {
                    reason: "no definite answer".into(),
                },
            },
        },
    }
}

/// Scans the lease prefix every [`OBSERVE_EVERY`] until `stop` is set. A scan that fails is
/// not recorded: it saw nothing.
pub async fn run_scanner(
    client: Client,
    origin: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<LeaseScan> {
    let mut scans = Vec::new();
    while !*stop.borrow() {
        let invoke = origin.elapsed();
        let answer = tokio::select! {
            answer = client.scan_at(LEASE_PREFIX, SCAN_LIMIT, None) => answer,
            _ = stop.changed() => break,
        };
        if let Ok(scan) = answer {
            scans.push(LeaseScan {
                invoke_ns: nanos(invoke),
                complete_ns: nanos(origin.elapsed()),
                revision: scan.revision,
                keys: scan.items.into_iter().map(|item| item.key).collect(),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(OBSERVE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    scans
}

/// Whether the last scan found no lease key.
pub fn none_left(scans: &[LeaseScan]) -> bool {
    scans.last().is_some_and(|scan| scan.keys.is_empty())
}

/// Watches the lease prefix from revision 1 until `stop` is set, resuming after each ended
/// stream; records every delete with the time it was handed over.
pub async fn run_delete_watcher(
    client: Client,
    origin: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<SeenDelete> {
    let mut seen = Vec::new();
    let mut next = 1u64;
    while !*stop.borrow() {
        let mut stream = client.watch(WatchRequest::prefix(LEASE_PREFIX, Some(next)));
        loop {
            let message = tokio::select! {
                message = stream.next() => message,
                _ = stop.changed() => return seen,
            };
            match message {
                Some(Ok(WatchMessage::Events(events))) => {
                    next = next.max(events.revision + 1);
                    let keys: Vec<String> = events
                        .events
                        .iter()
                        .filter(|event| event.kind == EventType::Delete)
                        .map(|event| event.kv.key.clone())
                        .collect();
                    if !keys.is_empty() {
                        seen.push(SeenDelete {
                            seen_ns: nanos(origin.elapsed()),
                            revision: events.revision,
                            keys,
                        });
                    }
                }
                Some(Ok(WatchMessage::Progress(progress))) => {
                    next = next.max(progress.revision + 1);
                }
                Some(Err(_)) | None => break,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(OBSERVE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    seen
}

/// Asks every endpoint's status every [`OBSERVE_EVERY`] until `stop` is set.
pub async fn run_term_observer(
    endpoints: Vec<String>,
    origin: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<TermSample> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        retry_deadline: Duration::ZERO,
    };
    let clients: Vec<(String, Client)> = endpoints
        .into_iter()
        .filter_map(|endpoint| {
            Client::with_options([endpoint.clone()], options)
                .ok()
                .map(|client| (endpoint, client))
        })
        .collect();
    let mut samples = Vec::new();
    while !*stop.borrow() {
        let at = origin.elapsed();
        let mut asks = JoinSet::new();
        for (endpoint, client) in &clients {
            let (endpoint, client) = (endpoint.clone(), client.clone());
            asks.spawn(async move { client.status(&endpoint).await });
        }
        let mut answers = Vec::new();
        while let Some(answer) = asks.join_next().await {
            if let Ok(Ok(status)) = answer {
                answers.push((status.term, status.role == "leader"));
            }
        }
        let term = answers.iter().map(|(term, _)| *term).max().unwrap_or(0);
        samples.push(TermSample {
            at_ns: nanos(at),
            term,
            leader: answers
                .iter()
                .any(|(answered, leader)| *leader && *answered == term && term > 0),
        });
        tokio::select! {
            _ = tokio::time::sleep(OBSERVE_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    samples
}
