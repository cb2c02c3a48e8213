//! The retry policy: which node each attempt of a call goes to, which answers are tried again,
//! and how long to wait between passes over the cluster.
//!
//! ```text
//!  execute(call) ── attempt ──▶ target node ──▶ answer (2xx/4xx) ──▶ Ok(answer), remembered node
//!        ▲              │
//!        │              └─ connection error, timeout, 5xx, 408, 429 ──▶ failure
//!        │                                                      │
//!        └── next target: the leader the failure named, else the next endpoint;
//!            wait the backoff between passes; past the retry deadline ──▶ Unavailable
//!            (at once when every endpoint in a row refused a TLS certificate)
//! ```

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::Instant;

use super::answer::{error_response, Answer};
use super::endpoint::parse_endpoint;
use super::transport::{Call, Exchange, Failure, FailureKind};
use super::{lock, ClientError, Inner};

/// Wait after the first pass over the endpoints fails; it doubles after every further pass.
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest wait between passes, so a client notices a new leader within about a second.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the policy remembers of one client between its calls.
pub(super) struct RetryState {
    /// Base URL of the node that last gave a definite answer; tried first by the next call, as it
    /// is most likely the leader (or a node that reaches it).
    preferred: StdMutex<Option<String>>,
    /// Jitter for the backoff; per client rather than global so clients do not share state.
    random: StdMutex<StdRng>,
}

impl RetryState {
    pub(super) fn new(random: StdRng, preferred: Option<String>) -> RetryState {
        RetryState {
            preferred: StdMutex::new(preferred),
            random: StdMutex::new(random),
        }
    }

    pub(super) fn preferred(&self) -> Option<String> {
        lock(&self.preferred).clone()
    }

    fn remember(&self, base_url: &str) {
        let mut preferred = lock(&self.preferred);
        if preferred.as_deref() != Some(base_url) {
            *preferred = Some(base_url.to_string());
        }
    }

    /// `backoff` with its upper half random ("equal jitter"), so clients that failed together do
    /// not retry together.
    pub(super) fn jittered(&self, backoff: Duration) -> Duration {
        let half = backoff / 2;
        let random_nanos = lock(&self.random).gen_range(0..=half.as_nanos() as u64);
        half + Duration::from_nanos(random_nanos)
    }
}

/// Sends `call` until a node gives a definite answer (any status but a transient one:
/// [`is_transient_status`]) or the retry deadline passes. A write keeps its session's
/// sequence number across the attempts, so a retry is never applied twice.
///
/// Order of targets: the node that answered last, then the endpoints in turn; a leader named
/// by a failing node is tried next (unless the client ignores leader hints:
/// [`super::Client::ignoring_leader_hints`]). After a failure that says nothing about the cluster
/// (connection refused, a timeout) or that names a leader, the next target is tried at once,
/// until as many attempts as there are endpoints went out since the last wait; then, and
/// after every 5xx, the client waits the backoff (50 ms doubling to 1 s, half of it random,
/// at least the `Retry-After` capped at 1 s). As many TLS handshakes in a row as there are
/// endpoints failing on a certificate end the call at once: that is a misconfiguration.
pub(super) async fn execute(client: &Inner, call: &Call) -> Result<Answer, ClientError> {
    let options = client.options;
    let endpoint_count = client.base_urls.len();
    let start = Instant::now();
    let deadline = start + options.retry_deadline;
    let mut rotation = Rotation::new(&client.base_urls, client.retry.preferred());
    let mut backoff = RETRY_BACKOFF_MIN;
    let mut attempts: u32 = 0;
    let mut attempts_since_wait: usize = 0;
    let mut certificate_failures_in_a_row: usize = 0;
    loop {
        let target = rotation.next_target();
        let timeout = if attempts == 0 {
            options.request_timeout
        } else {
            options
                .request_timeout
                .min(deadline.saturating_duration_since(Instant::now()))
        };
        attempts += 1;
        attempts_since_wait += 1;
        let exchange = client
            .http
            .attempt(&target, call, client.authorization.as_ref(), timeout)
            .await;
        let failure = match exchange {
            Exchange::Final(error) => return Err(error),
            Exchange::Answered(answer) if !is_transient_status(answer.status) => {
                let leader = answer.served_by_leader.as_deref();
                let next = match leader {
                    Some(leader) if client.follows_leader => leader,
                    _ => &target,
                };
                client.retry.remember(next);
                return Ok(answer);
            }
            Exchange::Answered(answer) => failure_of_answer(&answer),
            Exchange::Failed(failure) => failure,
        };

        let hinted = match failure
            .leader_http
            .as_deref()
            .filter(|_| client.follows_leader)
            .map(|leader| parse_endpoint(leader, client.http.https))
        {
            Some(Ok(leader)) if leader != target => {
                rotation.hint(leader);
                true
            }
            _ => false,
        };
        // As many handshakes in a row as there are nodes failed on a certificate: a
        // misconfiguration, which retrying until the deadline would only hide for longer.
        certificate_failures_in_a_row = match failure.kind {
            FailureKind::Certificate => certificate_failures_in_a_row + 1,
            _ => 0,
        };
        if certificate_failures_in_a_row >= endpoint_count {
            return Err(ClientError::Unavailable(format!(
                "every node refused the TLS handshake ({attempts} attempts); last: {target}: {}",
                failure.description
            )));
        }
        let quick = hinted
            || matches!(
                failure.kind,
                FailureKind::Connect | FailureKind::Timeout | FailureKind::Certificate
            );
        let delay = if quick && attempts_since_wait < endpoint_count {
            Duration::ZERO
        } else {
            let retry_after = failure.retry_after.unwrap_or(Duration::ZERO);
            client
                .retry
                .jittered(backoff)
                .max(retry_after.min(RETRY_BACKOFF_MAX))
        };
        let now = Instant::now();
        if now + delay >= deadline {
            return Err(ClientError::Unavailable(format!(
                "no definite answer within {:?} ({attempts} attempts); last failure: {target}: {}",
                now.saturating_duration_since(start),
                failure.description
            )));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            attempts_since_wait = 0;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}

/// Whether an answer with `status` says "try again" rather than anything about the request:
/// every 5xx (503 is the server's answer to every transient condition: no leader, a
/// leadership transfer, busy, a write of unknown outcome...), 408 (the request did not arrive
/// in time: the node did nothing with it) and 429 (a proxy's rate limit).
pub(super) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The failure a transient answer stands for, with the leader it names, if any.
pub(super) fn failure_of_answer(answer: &Answer) -> Failure {
    assert!(
        is_transient_status(answer.status),
        "only transient answers are retried"
    );
    let error = error_response(answer);
    Failure {
        kind: FailureKind::ServerStatus,
        description: format!("{}: {}", answer.status, error.error),
        leader_http: error.leader_http,
        retry_after: answer.retry_after,
    }
}

/// The order in which one call tries nodes.
pub(super) struct Rotation<'a> {
    /// Invariant: not empty.
    base_urls: &'a [String],
    /// Index into `base_urls` of the next endpoint in turn.
    position: usize,
    /// Tried before anything else: a leader a failing node named.
    hint: Option<String>,
    /// Tried first: the node that answered the previous call.
    first: Option<String>,
}

impl<'a> Rotation<'a> {
    pub(super) fn new(base_urls: &'a [String], preferred: Option<String>) -> Rotation<'a> {
        assert!(!base_urls.is_empty(), "a client has at least one endpoint");
        // Continue the rotation after the preferred node, so it is not tried twice in a row.
        let position = preferred
            .as_ref()
            .and_then(|preferred| base_urls.iter().position(|url| url == preferred))
            .map_or(0, |index| (index + 1) % base_urls.len());
        Rotation {
            base_urls,
            position,
            hint: None,
            first: preferred,
        }
    }

    fn hint(&mut self, base_url: String) {
        self.hint = Some(base_url);
    }

    pub(super) fn next_target(&mut self) -> String {
        if let Some(hint) = self.hint.take() {
            return hint;
        }
        if let Some(first) = self.first.take() {
            return first;
        }
        let target = self.base_urls[self.position].clone();
        self.position = (self.position + 1) % self.base_urls.len();
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::answer::tests::answer;

    #[test]
    fn rotation_starts_after_the_preferred_node_and_follows_hints() {
        let urls = vec![
            "http://a".to_string(),
            "http://b".to_string(),
            "http://c".to_string(),
        ];
        let mut rotation = Rotation::new(&urls, Some("http://b".to_string()));
        assert_eq!(rotation.next_target(), "http://b");
        assert_eq!(rotation.next_target(), "http://c");
        rotation.hint("http://leader".to_string());
        assert_eq!(rotation.next_target(), "http://leader");
        assert_eq!(rotation.next_target(), "http://a");
        assert_eq!(rotation.next_target(), "http://b");

        let mut rotation = Rotation::new(&urls, None);
        assert_eq!(rotation.next_target(), "http://a");
    }

    #[test]
    fn transient_answers_are_failures_that_name_the_leader_and_the_wait() {
        let mut unavailable = answer(
            503,
            br#"{"error":"no leader","leader_http":"10.0.0.2:8001"}"#,
        );
        unavailable.retry_after = Some(Duration::from_secs(1));
        let failure = failure_of_answer(&unavailable);
        assert_eq!(failure.kind, FailureKind::ServerStatus);
        assert_eq!(failure.leader_http.as_deref(), Some("10.0.0.2:8001"));
        assert_eq!(failure.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(failure.description, "503 Service Unavailable: no leader");
        for transient in [500, 502, 503, 504, 408, 429] {
            let status = StatusCode::from_u16(transient).expect("a status");
            assert!(is_transient_status(status), "{status}");
        }
        for definite in [200, 204, 400, 401, 403, 404, 409, 413] {
            let status = StatusCode::from_u16(definite).expect("a status");
            assert!(!is_transient_status(status), "{status}");
        }
    }
}
