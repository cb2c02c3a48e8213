//! Downloading a snapshot of the cluster's state (`GET /v1/snapshot`, an admin route): the
//! first node that serves it streams it, and the caller reads the bytes as they arrive.
//!
//! ```text
//!  download_snapshot ─► each endpoint in turn ─► open_stream ─► 2xx: SnapshotDownload (body unread)
//!                         ▲  refused, timed out, 5xx        │     4xx: ClientError::Server (final)
//!                         └──── backoff between passes ─────┘     past the retry deadline: Unavailable
//!  SnapshotDownload::next_chunk ─► the body's next bytes (at most one request timeout of silence)
//! ```
//!
//! The client checks nothing of the bytes: the file's header carries their length and checksum,
//! which the caller (raftkv's `snapshot save`) verifies before it keeps them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Method;
use tokio::time::Instant;

use super::answer::server_error;
use super::retry::{failure_of_answer, is_transient_status, Rotation};
use super::retry::{RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
use super::transport::{describe, Call, Exchange};
use super::{Client, ClientError};

/// The route a node serves its snapshot on.
pub const SNAPSHOT_PATH: &str = "/v1/snapshot";

/// The shortest wait for the head of a snapshot's answer: a node makes its state current (a
/// read barrier) and encodes it whole before it answers, which for a large store takes longer
/// than an ordinary request.
const SNAPSHOT_HEAD_TIMEOUT_MIN: Duration = Duration::from_secs(60);

/// A snapshot being downloaded from one node.
pub struct SnapshotDownload {
    /// The base URL of the node that serves it.
    endpoint: String,
    body: Incoming,
    /// Longest silence between two chunks.
    silence_max: Duration,
}

impl std::fmt::Debug for SnapshotDownload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SnapshotDownload")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SnapshotDownload {
    /// The base URL of the node that serves the snapshot.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next bytes of the snapshot; `None` once the node ended the answer. A connection
    /// that breaks, or stays silent for a request timeout, is an [`ClientError::Unavailable`]:
    /// what arrived is then incomplete.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let frame = tokio::time::timeout(self.silence_max, self.body.frame())
                .await
                .map_err(|_| {
                    ClientError::Unavailable(format!(
                        "{}: the snapshot stalled: nothing for {:?}",
                        self.endpoint, self.silence_max
                    ))
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(error)) => {
                    return Err(ClientError::Unavailable(format!(
                        "{}: reading the snapshot: {}",
                        self.endpoint,
                        describe(&error)
                    )))
                }
                // Trailers, if a proxy adds any, carry nothing of the snapshot.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => return Ok(Some(data)),
                    Err(_) => continue,
                },
            }
        }
    }
}

impl Client {
    /// Starts downloading a snapshot of the cluster's state, consistent at one applied index,
    /// from the first node that serves it (`GET /v1/snapshot`; the token must be an admin
    /// token). The endpoints are tried in turn until one answers or the retry deadline passes;
    /// a refusal (401, 403, 404) is final.
    pub async fn download_snapshot(&self) -> Result<SnapshotDownload, ClientError> {
        let inner = &self.inner;
        let options = inner.options;
        let head_timeout = options.request_timeout.max(SNAPSHOT_HEAD_TIMEOUT_MIN);
        let start = Instant::now();
        let mut rotation = Rotation::new(&inner.base_urls, inner.retry.preferred());
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut attempts_since_wait = 0;
        let call = Call::empty(Method::GET, SNAPSHOT_PATH.to_string());
        loop {
            let target = rotation.next_target();
            attempts_since_wait += 1;
            let opened = inner
                .http
                .open_stream(&target, &call, inner.authorization.as_ref(), head_timeout)
                .await;
            let failure = match opened {
                Ok(body) => {
                    return Ok(SnapshotDownload {
                        endpoint: target,
                        body,
                        silence_max: options.request_timeout,
                    })
                }
                Err(Exchange::Final(error)) => return Err(error),
                Err(Exchange::Answered(answer)) if !is_transient_status(answer.status) => {
                    return Err(server_error(&answer))
                }
                Err(Exchange::Answered(answer)) => failure_of_answer(&answer).description,
                Err(Exchange::Failed(failure)) => failure.description,
            };
            tracing::debug!(target = %target, %failure, "snapshot download: trying another node");
            if start.elapsed() >= options.retry_deadline {
                return Err(ClientError::Unavailable(format!(
                    "no node served the snapshot within {:?}; last failure: {target}: {failure}",
                    options.retry_deadline
                )));
            }
            if attempts_since_wait >= inner.base_urls.len() {
                attempts_since_wait = 0;
                tokio::time::sleep(inner.retry.jittered(backoff)).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }
}
