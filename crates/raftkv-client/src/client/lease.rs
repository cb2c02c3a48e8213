//! Leases: the calls of `api::lease` (grant, revoke, keepalive, time to live, list, a put
//! attached to a lease) and [`LeaseKeeper`], the task that keeps one lease alive.
//!
//! ```text
//!  lease_grant / lease_revoke ── POST, writes with the session (applied once) ─┐
//!  lease_keep_alive_once ── POST /v1/lease/keepalive (no session: idempotent) ─┼─▶ retry::execute
//!  lease_time_to_live / lease_list / put_with_lease ───────────────────────────┘
//!      404 / 409 with a LeaseErrorResponse ─▶ ClientError::LeaseNotFound / LeaseAlreadyExists
//!
//!  keep_alive(id) ─▶ first keepalive ─▶ LeaseKeeper ─▶ task: every TTL/3 a keepalive
//!      answer ttl > 0 ─▶ Alive { acknowledged_at: when it was SENT, ttl }, deadline = sent + ttl
//!      answer ttl 0 / 404 ─▶ Lost(NotFound)         deadline passes unacknowledged ─▶ Lost(...)
//!      transport error, no leader ─▶ again at once (the client's retry picks the node), backoff
//! ```
//!
//! The keeper's own deadline is counted from when the last acknowledged keepalive was *sent*,
//! not from when its answer came: the leader renewed the lease at some moment after the
//! sending, so the lease lives at least until `sent + ttl` (docs/leases.md has the rule), and
//! the client never believes in the lease longer than the leader guarantees.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::answer::{decode, decode_success, server_error, Answer};
use super::endpoint::key_path;
use super::transport::Call;
use super::{Client, ClientError, RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
use crate::api::{
    LeaseErrorResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseListResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, WriteResponse, LEASE_ID_MAX, LEASE_KEEPALIVE_IDS_MAX,
};

/// Shortest wait between two keepalives, whatever the TTL: a keeper never floods the leader.
const KEEPALIVE_INTERVAL_MIN: Duration = Duration::from_millis(100);

impl Client {
    /// Grants a lease of `ttl_seconds` (the cluster raises a TTL below its minimum to it, and
    /// refuses one above its maximum with a 400), with the id `id`, or one the node picks when
    /// `None`. A write: applied exactly once under this client's session.
    ///
    /// An id already in use is [`ClientError::LeaseAlreadyExists`].
    pub async fn lease_grant(
        &self,
        ttl_seconds: u64,
        id: Option<u64>,
    ) -> Result<LeaseGrantResponse, ClientError> {
        if let Some(id) = id {
            check_lease_id(id)?;
        }
        if ttl_seconds == 0 {
            return Err(ClientError::InvalidInput(
                "a lease's TTL is at least 1 second".to_string(),
            ));
        }
        let body = to_json(&LeaseGrantRequest { ttl_seconds, id }, "lease grant")?;
        let call = Call::json(Method::POST, "/v1/lease/grant".to_string(), body);
        let answer = self.write(call).await?;
        lease_answer(answer, id.unwrap_or(0), "LeaseGrantResponse")
    }

    /// Revokes lease `id`: the lease is gone and every key attached to it is deleted, all at
    /// one revision. A write, applied exactly once. A lease that does not exist (never
    /// granted, or already revoked or expired) is [`ClientError::LeaseNotFound`].
    pub async fn lease_revoke(&self, id: u64) -> Result<LeaseRevokeResponse, ClientError> {
        check_lease_id(id)?;
        let body = to_json(&LeaseRevokeRequest { id }, "lease revoke")?;
        let call = Call::json(Method::POST, "/v1/lease/revoke".to_string(), body);
        let answer = self.write(call).await?;
        lease_answer(answer, id, "LeaseRevokeResponse")
    }

    /// Renews each lease of `ids` for its full TTL, once (the leader answers after confirming
    /// its leadership). A lease that does not exist answers TTL 0 and is not an error. To keep
    /// a lease alive, [`Client::keep_alive`] does this on a schedule.
    pub async fn lease_keep_alive_once(
        &self,
        ids: &[u64],
    ) -> Result<LeaseKeepAliveResponse, ClientError> {
        if ids.is_empty() || ids.len() > LEASE_KEEPALIVE_IDS_MAX {
            return Err(ClientError::InvalidInput(format!(
                "a keepalive names 1 to {LEASE_KEEPALIVE_IDS_MAX} leases, not {}",
                ids.len()
            )));
        }
        for &id in ids {
            check_lease_id(id)?;
        }
        let body = to_json(
            &LeaseKeepAliveRequest { ids: ids.to_vec() },
            "lease keepalive",
        )?;
        let call = Call::json(Method::POST, "/v1/lease/keepalive".to_string(), body);
        let answer = self.execute(&call).await?;
        let response: LeaseKeepAliveResponse = lease_answer(answer, 0, "LeaseKeepAliveResponse")?;
        let answered: Vec<u64> = response.leases.iter().map(|lease| lease.id).collect();
        if answered != ids {
            return Err(ClientError::Decode(format!(
                "a keepalive for leases {ids:?} was answered for {answered:?}"
            )));
        }
        Ok(response)
    }

    /// Lease `id`'s granted TTL and the seconds left before the leader expires it, with its
    /// keys when `keys`. A lease that does not exist is [`ClientError::LeaseNotFound`].
    pub async fn lease_time_to_live(
        &self,
        id: u64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, ClientError> {
        check_lease_id(id)?;
        let query = if keys { "?keys=true" } else { "" };
        let call = Call::empty(Method::GET, format!("/v1/lease/{id}{query}"));
        let answer = self.execute(&call).await?;
        lease_answer(answer, id, "LeaseTimeToLiveResponse")
    }

    /// The id of every lease that exists, ascending (a linearizable read).
    pub async fn lease_list(&self) -> Result<LeaseListResponse, ClientError> {
        let call = Call::empty(Method::GET, "/v1/leases".to_string());
        decode_success(self.execute(&call).await?, "LeaseListResponse")
    }

    /// Sets `key` to `value` and attaches it to lease `lease` (detaching it from any other):
    /// the key is deleted when the lease ends. A lease that does not exist is
    /// [`ClientError::LeaseNotFound`], and the put changed nothing. `lease` 0 means no lease:
    /// the same as [`Client::put`].
    pub async fn put_with_lease(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        lease: u64,
    ) -> Result<WriteResponse, ClientError> {
        if lease == 0 {
            return self.put(key, value).await;
        }
        check_lease_id(lease)?;
        let path = format!("{}?lease={lease}", key_path(key)?);
        let call = Call::octets(Method::PUT, path, value.into());
        let answer = self.write(call).await?;
        lease_answer(answer, lease, "WriteResponse")
    }

    /// Keeps lease `id` alive until the keeper is stopped or dropped, or the lease is lost: a
    /// task sends a keepalive at once (this call waits for its answer) and then every third of
    /// the TTL, retrying failed ones at once through the client's retries (another node, the
    /// new leader) with a backoff.
    ///
    /// A lease that does not exist is [`ClientError::LeaseNotFound`]. The keeper's status is
    /// [`LeaseStatus::Alive`] while a keepalive was acknowledged within its TTL (counted from
    /// its sending), and turns [`LeaseStatus::Lost`] when the leader answers that the lease is
    /// gone or no keepalive was acknowledged for a whole TTL. Must be called within a tokio
    /// runtime.
    pub async fn keep_alive(&self, id: u64) -> Result<LeaseKeeper, ClientError> {
        check_lease_id(id)?;
        let sent_at = Instant::now();
        let ttl_seconds = keep_alive_ttl(self, id).await?;
        if ttl_seconds == 0 {
            return Err(ClientError::LeaseNotFound {
                id,
                message: "the leader answered the first keepalive with TTL 0".to_string(),
            });
        }
        let client = self.clone();
        let mut keeper = LeaseKeeper::start(
            id,
            Alive {
                sent_at,
                ttl_seconds,
            },
            move || {
                let client = client.clone();
                async move { keep_alive_ttl(&client, id).await }
            },
        );
        keeper.client = Some(self.clone());
        Ok(keeper)
    }
}

/// One keepalive of `id`: the TTL it was renewed for (0: the lease is gone).
async fn keep_alive_ttl(client: &Client, id: u64) -> Result<u64, ClientError> {
    let response = client.lease_keep_alive_once(&[id]).await?;
    // lease_keep_alive_once checked that the answer is for exactly [id].
    Ok(response.leases[0].ttl_seconds)
}

/// Refuses 0 and ids above [`LEASE_ID_MAX`] before anything is sent.
pub(crate) fn check_lease_id(id: u64) -> Result<(), ClientError> {
    if id == 0 || id > LEASE_ID_MAX {
        return Err(ClientError::InvalidInput(format!(
            "lease id {id:x} is not in 1..={LEASE_ID_MAX:x} (hexadecimal)"
        )));
    }
    Ok(())
}

fn to_json(body: &impl serde::Serialize, what: &str) -> Result<Bytes, ClientError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|error| ClientError::InvalidInput(format!("{what} body: {error}")))
}

/// A 2xx answer's body; a failure as [`lease_error`] says (`id`: the lease the call named, for
/// the error when the body does not say).
fn lease_answer<T: serde::de::DeserializeOwned>(
    answer: Answer,
    id: u64,
    what: &str,
) -> Result<T, ClientError> {
    if !answer.status.is_success() {
        return Err(lease_error(&answer, id));
    }
    decode(&answer, what)
}

/// A failed answer as an error: a 404 or 409 carrying a [`LeaseErrorResponse`] is
/// [`ClientError::LeaseNotFound`] or [`ClientError::LeaseAlreadyExists`]; anything else (a 400
/// for a TTL above the maximum included) is [`ClientError::Server`].
pub(super) fn lease_error(answer: &Answer, id: u64) -> ClientError {
    assert!(
        !answer.status.is_success(),
        "only a failed answer is an error"
    );
    let body = serde_json::from_slice::<LeaseErrorResponse>(&answer.body).ok();
    match (answer.status, body) {
        (StatusCode::NOT_FOUND, Some(body)) => ClientError::LeaseNotFound {
            id: if body.id == 0 { id } else { body.id },
            message: body.error,
        },
        (StatusCode::CONFLICT, Some(body)) => ClientError::LeaseAlreadyExists {
            id: if body.id == 0 { id } else { body.id },
            message: body.error,
        },
        _ => server_error(answer),
    }
}

/// Why a [`LeaseKeeper`] no longer vouches for its lease.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    /// The leader answered that the lease does not exist (revoked, expired, never granted).
    #[error("the lease does not exist any more (revoked or expired)")]
    NotFound,
    /// No keepalive was acknowledged for a whole TTL, counted from the sending of the last
    /// acknowledged one: the lease may have expired.
    #[error("no keepalive was acknowledged within the lease's TTL ({ttl_seconds} s): it may have expired")]
    Unacknowledged {
        /// The TTL of the last acknowledged keepalive, in seconds.
        ttl_seconds: u64,
    },
    /// A node refused the keepalive as invalid (the error names why); the keeper gave up.
    #[error("a keepalive was refused: {0}")]
    Refused(String),
    /// The keeper was stopped ([`LeaseKeeper::stop`], [`LeaseKeeper::revoke`]) or dropped:
    /// nobody keeps the lease alive any more.
    #[error("the keeper was stopped")]
    Stopped,
}

/// What a [`LeaseKeeper`] knows of its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    /// A keepalive sent at `acknowledged_at` was acknowledged: the lease lives at least until
    /// `acknowledged_at + ttl_seconds`.
    Alive {
        /// When the last acknowledged keepalive was sent (tokio's monotonic clock).
        acknowledged_at: Instant,
        /// The TTL it renewed the lease for, in seconds.
        ttl_seconds: u64,
    },
    /// The keeper no longer vouches for the lease; its task has ended.
    Lost {
        /// Why.
        reason: LeaseLost,
    },
}

impl LeaseStatus {
    /// Until when the lease surely lives, or `None` once lost.
    pub fn alive_until(&self) -> Option<Instant> {
        match self {
            LeaseStatus::Alive {
                acknowledged_at,
                ttl_seconds,
            } => Some(*acknowledged_at + Duration::from_secs(*ttl_seconds)),
            LeaseStatus::Lost { .. } => None,
        }
    }
}

/// An acknowledged keepalive: sent at `sent_at`, renewed for `ttl_seconds`.
#[derive(Clone, Copy, Debug)]
struct Alive {
    sent_at: Instant,
    ttl_seconds: u64,
}

impl Alive {
    fn deadline(self) -> Instant {
        self.sent_at + Duration::from_secs(self.ttl_seconds)
    }

    /// When the next keepalive goes out: a third of the TTL after this one was sent.
    fn next_send(self) -> Instant {
        self.sent_at + keepalive_interval(self.ttl_seconds)
    }

    fn status(self) -> LeaseStatus {
        LeaseStatus::Alive {
            acknowledged_at: self.sent_at,
            ttl_seconds: self.ttl_seconds,
        }
    }
}

/// A third of the TTL (so two keepalives in a row may fail before the lease is at risk), at
/// least [`KEEPALIVE_INTERVAL_MIN`].
fn keepalive_interval(ttl_seconds: u64) -> Duration {
    (Duration::from_secs(ttl_seconds) / 3).max(KEEPALIVE_INTERVAL_MIN)
}

/// Keeps one lease alive ([`Client::keep_alive`]): a task sending keepalives every third of
/// the TTL. Dropping it stops the task too (without revoking the lease).
pub struct LeaseKeeper {
    id: u64,
    status: watch::Receiver<LeaseStatus>,
    /// Taken by `stop`; the task ends when it fires or is dropped.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    client: Option<Client>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LeaseKeeper")
            .field("id", &self.id)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// A keeper whose first keepalive (`first`) was acknowledged, sending the next ones with
    /// `send` (the TTL renewed, 0 when the lease is gone).
    fn start<F, Fut>(id: u64, first: Alive, send: F) -> LeaseKeeper
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, ClientError>> + Send + 'static,
    {
        assert!(first.ttl_seconds > 0, "a keeper starts from a live lease");
        let (status_sender, status) = watch::channel(first.status());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(keep(first, send, status_sender, stopped));
        LeaseKeeper {
            id,
            status,
            stop: Some(stop),
            task: Some(task),
            client: None,
        }
    }

    /// The lease kept alive.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The status now, and every change to come: `changed()` wakes at each acknowledged
    /// keepalive and when the lease is lost.
    pub fn status(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// Resolves with the reason when the lease is lost (at once if it already is). It borrows
    /// nothing, so it can wait beside other work (`tokio::select!`) while the keeper lives.
    pub fn lost(&self) -> impl Future<Output = LeaseLost> + Send + 'static {
        let status = self.status.clone();
        wait_lost(status)
    }

    /// Stops the task and waits for it to end. The lease is not revoked: it expires a TTL after
    /// the last keepalive unless someone else keeps it alive.
    pub async fn stop(mut self) {
        self.stop_task().await;
    }

    /// Stops the task, then revokes the lease (deleting its keys).
    pub async fn revoke(mut self) -> Result<LeaseRevokeResponse, ClientError> {
        self.stop_task().await;
        match self.client.take() {
            Some(client) => client.lease_revoke(self.id).await,
            None => Err(ClientError::InvalidInput(
                "this keeper has no client to revoke its lease with".to_string(),
            )),
        }
    }

    async fn stop_task(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The task may have ended already (lease lost); then nobody listens.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // A task that panicked is over all the same.
            let _ = task.await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Waits on `status` until it says lost. A keeper whose task is gone without saying why was
/// aborted (dropped): that is [`LeaseLost::Stopped`].
pub(super) async fn wait_lost(mut status: watch::Receiver<LeaseStatus>) -> LeaseLost {
    loop {
        if let LeaseStatus::Lost { reason } = &*status.borrow_and_update() {
            return reason.clone();
        }
        if status.changed().await.is_err() {
            return match &*status.borrow() {
                LeaseStatus::Lost { reason } => reason.clone(),
                LeaseStatus::Alive { .. } => LeaseLost::Stopped,
            };
        }
    }
}

/// The keeper's task: a keepalive at each [`Alive::next_send`], again after a failure (with a
/// backoff), each cut short at the deadline; ends when lost or stopped.
async fn keep<F, Fut>(
    mut alive: Alive,
    mut send: F,
    status: watch::Sender<LeaseStatus>,
    mut stopped: oneshot::Receiver<()>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, ClientError>>,
{
    let mut next_send = alive.next_send();
    let mut backoff = RETRY_BACKOFF_MIN;
    let reason = loop {
        let deadline = alive.deadline();
        tokio::select! {
            biased;
            _ = &mut stopped => break LeaseLost::Stopped,
            () = tokio::time::sleep_until(deadline) => {
                break LeaseLost::Unacknowledged { ttl_seconds: alive.ttl_seconds }
            }
            () = tokio::time::sleep_until(next_send) => {}
        }
        let sent_at = Instant::now();
        // One keepalive may retry across the nodes for a while (the client's retry policy);
        // it is cut short after an interval so a later one, sent afresh, can count from a
        // later sending time.
        let window = keepalive_interval(alive.ttl_seconds);
        let answer = tokio::select! {
            biased;
            _ = &mut stopped => break LeaseLost::Stopped,
            () = tokio::time::sleep_until(deadline) => {
                break LeaseLost::Unacknowledged { ttl_seconds: alive.ttl_seconds }
            }
            answer = tokio::time::timeout(window, send()) => answer,
        };
        match answer {
            Ok(Ok(0)) | Ok(Err(ClientError::LeaseNotFound { .. })) => break LeaseLost::NotFound,
            Ok(Ok(ttl_seconds)) => {
                if sent_at + Duration::from_secs(ttl_seconds) > alive.deadline() {
                    alive = Alive {
                        sent_at,
                        ttl_seconds,
                    };
                }
                backoff = RETRY_BACKOFF_MIN;
                next_send = Alive {
                    sent_at,
                    ttl_seconds,
                }
                .next_send();
                // Nobody listening is no reason to stop: the owner may only hold the keeper.
                status.send_replace(alive.status());
            }
            // A definite refusal (transient statuses are retried inside the call and end as
            // Unavailable): asking again would be refused again.
            Ok(Err(error @ (ClientError::InvalidInput(_) | ClientError::Server { .. }))) => {
                break LeaseLost::Refused(error.to_string());
            }
            // Unavailable, undecodable, timed out: try again soon, as long as the deadline
            // allows.
            Ok(Err(error)) => {
                tracing::debug!(%error, "lease keepalive failed; retrying");
                next_send = Instant::now() + backoff;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
            Err(_elapsed) => {
                next_send = Instant::now();
            }
        }
    };
    tracing::debug!(%reason, "lease keeper ends");
    status.send_replace(LeaseStatus::Lost { reason });
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::client::answer::tests::answer;

    /// One scripted keepalive: how long it takes, and its result.
    type Step = (Duration, Result<u64, ClientError>);

    /// A scripted keepalive: each call takes the next (delay, result) and records when it was
    /// made; once the script is exhausted it answers TTL 3 at once.
    #[derive(Clone, Default)]
    struct Script {
        steps: Arc<Mutex<VecDeque<Step>>>,
        calls: Arc<Mutex<Vec<Instant>>>,
    }

    impl Script {
        fn new(steps: Vec<Step>) -> Script {
            Script {
                steps: Arc::new(Mutex::new(steps.into())),
                calls: Arc::default(),
            }
        }

        fn sender(
            &self,
        ) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, ClientError>> + Send>>
               + Send
               + 'static {
            let script = self.clone();
            move || {
                let script = script.clone();
                Box::pin(async move {
                    script.calls.lock().expect("calls").push(Instant::now());
                    let step = script.steps.lock().expect("steps").pop_front();
                    let (delay, result) = step.unwrap_or((Duration::ZERO, Ok(3)));
                    tokio::time::sleep(delay).await;
                    result
                })
            }
        }

        fn calls(&self, since: Instant) -> Vec<Duration> {
            let calls = self.calls.lock().expect("calls");
            calls.iter().map(|call| *call - since).collect()
        }
    }

    fn unavailable() -> Result<u64, ClientError> {
        Err(ClientError::Unavailable("no leader".to_string()))
    }

    fn start_keeper(script: &Script, ttl_seconds: u64) -> (LeaseKeeper, Instant) {
        let start = Instant::now();
        let keeper = LeaseKeeper::start(
            7,
            Alive {
                sent_at: start,
                ttl_seconds,
            },
            script.sender(),
        );
        (keeper, start)
    }

    #[tokio::test(start_paused = true)]
    async fn keepalives_go_every_third_of_the_ttl_and_the_status_counts_from_the_sending() {
        // Each answer takes 400 ms: acknowledged_at must be the sending, not the answer.
        let delay = Duration::from_millis(400);
        let script = Script::new(vec![(delay, Ok(3)), (delay, Ok(3)), (delay, Ok(3))]);
        let (keeper, start) = start_keeper(&script, 3);
        let mut status = keeper.status();
        for expected_sent_ms in [1000, 2000, 3000] {
            status.changed().await.expect("an acknowledgement");
            let now = status.borrow_and_update().clone();
            let sent = start + Duration::from_millis(expected_sent_ms);
            assert_eq!(
                now,
                LeaseStatus::Alive {
                    acknowledged_at: sent,
                    ttl_seconds: 3
                }
            );
            assert_eq!(Instant::now(), sent + delay, "seen when the answer came");
        }
        assert_eq!(
            script.calls(start),
            [1000, 2000, 3000].map(Duration::from_millis)
        );
        keeper.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_of_ttl_zero_is_lost_at_once() {
        let script = Script::new(vec![(Duration::ZERO, Ok(3)), (Duration::ZERO, Ok(0))]);
        let (keeper, start) = start_keeper(&script, 3);
        assert_eq!(keeper.lost().await, LeaseLost::NotFound);
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        let not_found = Script::new(vec![(
            Duration::ZERO,
            Err(ClientError::LeaseNotFound {
                id: 7,
                message: "gone".to_string(),
            }),
        )]);
        let (keeper, _) = start_keeper(&not_found, 3);
        assert_eq!(keeper.lost().await, LeaseLost::NotFound);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_backoff_and_lost_at_the_ttl_from_the_last_sending() {
        // The first keepalive (at 1 s) is acknowledged; every later one fails.
        let mut steps = vec![(Duration::ZERO, Ok(3))];
        steps.extend((0..100).map(|_| (Duration::ZERO, unavailable())));
        let script = Script::new(steps);
        let (keeper, start) = start_keeper(&script, 3);
        let reason = keeper.lost().await;
        assert_eq!(reason, LeaseLost::Unacknowledged { ttl_seconds: 3 });
        // Lost exactly a TTL after the sending of the acknowledged keepalive, not its answer,
        // and not a moment later.
        assert_eq!(Instant::now() - start, Duration::from_secs(4));
        let calls = script.calls(start);
        // Retries after failures: 50 ms, 100 ms, 200 ms ... capped at 1 s.
        let gaps: Vec<Duration> = calls.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert_eq!(gaps[0], Duration::from_secs(1), "the second keepalive");
        assert_eq!(&gaps[1..5], &[50, 100, 200, 400].map(Duration::from_millis));
        assert!(gaps.iter().all(|gap| *gap <= Duration::from_secs(1)));
        // The status receiver sees the end too.
        assert!(matches!(
            &*keeper.status().borrow(),
            LeaseStatus::Lost { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_keepalive_stuck_in_retries_is_cut_short_and_sent_afresh() {
        // The second keepalive hangs for 10 s (a node that never answers); the keeper gives it
        // one interval (1 s), sends a fresh one, whose ack counts from its own sending.
        let script = Script::new(vec![
            (Duration::ZERO, Ok(3)),
            (Duration::from_secs(10), Ok(3)),
            (Duration::ZERO, Ok(3)),
        ]);
        let (keeper, start) = start_keeper(&script, 3);
        let mut status = keeper.status();
        status.changed().await.expect("first");
        status.changed().await.expect("second");
        assert_eq!(
            status.borrow().alive_until(),
            Some(start + Duration::from_secs(3 + 3))
        );
        assert_eq!(
            script.calls(start)[..3],
            [1000, 2000, 3000].map(Duration::from_millis)
        );
        keeper.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_end_the_keeper() {
        let refused = Script::new(vec![(
            Duration::ZERO,
            Err(lease_error(&answer(400, br#"{"error":"bad id"}"#), 7)),
        )]);
        let (keeper, _) = start_keeper(&refused, 3);
        assert!(
            matches!(keeper.lost().await, LeaseLost::Refused(message) if message.contains("bad id"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_task_and_dropping_aborts_it() {
        let script = Script::new(vec![]);
        let (keeper, start) = start_keeper(&script, 3);
        let mut status = keeper.status();
        status.changed().await.expect("an acknowledgement");
        keeper.stop().await;
        // The task owned the sender: it is gone, so the task has ended.
        assert_eq!(
            *status.borrow_and_update(),
            LeaseStatus::Lost {
                reason: LeaseLost::Stopped
            }
        );
        assert!(status.changed().await.is_err(), "the task is gone");
        let calls = script.calls(start).len();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(script.calls(start).len(), calls, "no keepalive after stop");

        let (dropped, _) = start_keeper(&script, 3);
        let mut status = dropped.status();
        let lost = dropped.lost();
        drop(dropped);
        assert!(status.changed().await.is_err(), "the aborted task is gone");
        assert_eq!(lost.await, LeaseLost::Stopped);
    }

    #[test]
    fn lease_errors_are_typed() {
        let not_found = answer(404, br#"{"error":"no lease 2a","id":42}"#);
        assert!(matches!(
            lease_error(&not_found, 0),
            ClientError::LeaseNotFound { id: 42, .. }
        ));
        let exists = answer(409, br#"{"error":"in use","id":42}"#);
        assert!(matches!(
            lease_error(&exists, 42),
            ClientError::LeaseAlreadyExists { id: 42, .. }
        ));
        // A 404 that is not the contract's (an older node without the route) stays a server
        // error, and so does a 400.
        assert!(matches!(
            lease_error(&answer(404, b"not found"), 42),
            ClientError::Server { status: 404, .. }
        ));
        assert!(matches!(
            lease_error(&answer(400, br#"{"error":"TTL too large","id":0}"#), 0),
            ClientError::Server { status: 400, .. }
        ));
        assert!(check_lease_id(0).is_err());
        assert!(check_lease_id(LEASE_ID_MAX + 1).is_err());
        assert!(check_lease_id(LEASE_ID_MAX).is_ok());
    }
}
