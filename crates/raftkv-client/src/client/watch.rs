//! The watch: `GET /v1/watch` read as Server-Sent Events, handed to the caller as a
//! [`Stream`] that resumes by itself.
//!
//! ```text
//!  Client::watch ─► task ─┬─ open GET /v1/watch?…&start_revision=next at the next endpoint
//!                         │     410 ─────────────────────────────▶ Err(Compacted), end
//!                         │     other 4xx ───────────────────────▶ Err(Server), end
//!                         │     refused, 5xx, 400 future (a node behind) ─▶ back off, next node
//!                         ├─ read the body: sse::SseParser ─► events / progress / cancelled
//!                         │     events R ≥ next ─▶ Ok(Events), next = R + 1  (R < next: a repeat,
//!                         │                                                  dropped)
//!                         │     progress R ─▶ Ok(Progress) when it moves on, next = R + 1
//!                         │     cancelled compacted ─▶ Err(Compacted), end
//!                         │     cancelled lagged / stopping, the stream ended or broke,
//!                         │     nothing heard for 3 progress intervals ─▶ resume at next
//!                         └─ bounded channel ─► WatchStream (the caller's Stream)
//! ```
//!
//! The caller sees every change the watch selects from its start revision on, in revision
//! order, each revision once, whatever nodes fail or cancel in between: `next` (one past the
//! last revision delivered) is where every reconnection starts. The channel is bounded: a
//! caller that stops reading stops the task reading the node, which in time cancels the watch
//! as lagged, and the task resumes where the caller left off.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Method;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::coordination::revision_error;
use super::endpoint::encode;
use super::retry::{failure_of_answer, is_transient_status, Rotation};
use super::sse::{SseEvent, SseParser};
use super::transport::{describe, Call, Exchange};
use super::{Client, ClientError, Inner, RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
use crate::api::{CancelReason, WatchCancelled, WatchEvents, WatchProgress};

/// Messages the watch task may have ready before the caller reads them. Small: holding back
/// lets the node see a slow reader (and cancel it as lagged) rather than the client buffering
/// without bound.
const WATCH_BUFFER_MESSAGES: usize = 64;

/// Progress intervals of silence after which a connection counts as dead and is replaced.
const SILENT_INTERVALS_MAX: u32 = 3;

/// What a watch follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchSelector {
    /// One key.
    Key(String),
    /// Every key starting with the prefix.
    Prefix(String),
}

/// A watch to open with [`Client::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    /// The key or keys watched.
    pub selector: WatchSelector,
    /// The first revision whose changes are wanted; `None`: the changes after the present
    /// (the client reads the current revision first, so a reconnection cannot skip any). That
    /// read happens in the watch's own task, after [`Client::watch`] returned: to be sure of
    /// seeing a write made right after, start at a revision you know.
    pub start_revision: Option<u64>,
    /// Asks the node for a [`WatchMessage::Progress`] this often while nothing changes
    /// (millisecond resolution); `None`: the node's default. With it, a connection silent for
    /// three intervals counts as dead and is replaced.
    pub progress_interval: Option<Duration>,
}

impl WatchRequest {
    /// A watch of `key` from `start_revision` (`None`: from now), without progress messages.
    pub fn key(key: impl Into<String>, start_revision: Option<u64>) -> WatchRequest {
        WatchRequest {
            selector: WatchSelector::Key(key.into()),
            start_revision,
            progress_interval: None,
        }
    }

    /// A watch of every key starting with `prefix` from `start_revision` (`None`: from now).
    pub fn prefix(prefix: impl Into<String>, start_revision: Option<u64>) -> WatchRequest {
        WatchRequest {
            selector: WatchSelector::Prefix(prefix.into()),
            start_revision,
            progress_interval: None,
        }
    }
}

/// What a watch delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// The changes of one revision that the watch selects (a transaction's together).
    Events(WatchEvents),
    /// Every change up to this revision has been delivered; sent while nothing changes.
    Progress(WatchProgress),
}

impl WatchMessage {
    /// The revision of the events, or the revision the progress reached.
    pub fn revision(&self) -> u64 {
        match self {
            WatchMessage::Events(events) => events.revision,
            WatchMessage::Progress(progress) => progress.revision,
        }
    }
}

/// A running watch ([`Client::watch`]): a [`Stream`] of [`WatchMessage`]s in revision order.
///
/// It ends after an error, which is its last item: [`ClientError::Compacted`] when the
/// revision it must (re)start from is compacted, [`ClientError::Unavailable`] when no node
/// could be reached for the client's retry deadline, [`ClientError::Server`] when a node
/// refused the watch as asked. Dropping it stops the watch.
pub struct WatchStream {
    receiver: mpsc::Receiver<Result<WatchMessage, ClientError>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WatchStream")
            .field("running", &!self.task.is_finished())
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// The next message, or `None` once the watch has ended (for callers that do not use a
    /// `Stream` combinator library).
    pub async fn next(&mut self) -> Option<Result<WatchMessage, ClientError>> {
        self.receiver.recv().await
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchMessage, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(context)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Watches the key or prefix of `request`: a stream of every change from its start
    /// revision on, in revision order, each revision's changes in one message, over the SSE
    /// stream of `GET /v1/watch` of any node.
    ///
    /// The stream resumes by itself: when its connection drops, its node stops or crashes, or
    /// the node cancels it for reading too slowly, it reconnects (to the next endpoint, with
    /// the backoff of the client's retries) at one past the last revision it delivered, so no
    /// change is missed or repeated. It gives up, with [`ClientError::Unavailable`], only when
    /// no node has served it for the client's retry deadline.
    ///
    /// Must be called within a tokio runtime: the watch runs as a task of its own, stopped
    /// when the stream is dropped. Bad input (an empty key, a start revision of 0) is the
    /// stream's first and only item.
    pub fn watch(&self, request: WatchRequest) -> WatchStream {
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER_MESSAGES);
        let client = self.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = run(&client, &request, &sender).await {
                let _ = sender.send(Err(error)).await;
            }
        });
        WatchStream { receiver, task }
    }
}

/// How one connection's stream ended.
enum Ended {
    /// The caller dropped the stream.
    CallerGone,
    /// The watch cannot go on.
    Final(ClientError),
    /// Resume at `next`, on another connection; `heard` says whether the node sent anything
    /// of use (then the backoff starts over), `retry` the reconnection time its `retry:`
    /// field asked for.
    Resume {
        heard: bool,
        why: String,
        retry: Option<Duration>,
    },
}

/// The watch task: connects, follows, reconnects, until the caller goes or an error is final.
/// `Ok` when the caller went away.
async fn run(
    client: &Client,
    request: &WatchRequest,
    sender: &mpsc::Sender<Result<WatchMessage, ClientError>>,
) -> Result<(), ClientError> {
    let inner: &Arc<Inner> = &client.inner;
    if let WatchSelector::Key(key) = &request.selector {
        if key.is_empty() {
            return Err(ClientError::InvalidInput("empty key".to_string()));
        }
    }
    let mut next = match request.start_revision {
        Some(0) => {
            return Err(ClientError::InvalidInput(
                "revisions start at 1: a watch starts at revision 1 or later".to_string(),
            ))
        }
        Some(start) => start,
        None => {
            // The present, read once: resuming "from now" after a drop would skip what changed
            // while disconnected.
            let probe = match &request.selector {
                WatchSelector::Key(key) | WatchSelector::Prefix(key) => key,
            };
            client.scan_at(probe, 1, None).await?.revision + 1
        }
    };
    let silence_max = request
        .progress_interval
        .map(|interval| interval * SILENT_INTERVALS_MAX + inner.options.request_timeout);
    let mut rotation = Rotation::new(&inner.base_urls, inner.retry.preferred());
    let endpoint_count = inner.base_urls.len();
    let mut backoff = RETRY_BACKOFF_MIN;
    let mut attempts_since_wait = 0;
    let mut failing_since: Option<Instant> = None;
    loop {
        let target = rotation.next_target();
        attempts_since_wait += 1;
        let call = Call::empty(Method::GET, watch_path(request, next));
        let opened = inner
            .http
            .open_stream(
                &target,
                &call,
                inner.authorization.as_ref(),
                inner.options.request_timeout,
            )
            .await;
        let mut asked_wait = None;
        let (heard, why, last_error) = match opened {
            Ok(body) => match follow(body, &mut next, sender, silence_max).await {
                Ended::CallerGone => return Ok(()),
                Ended::Final(error) => return Err(error),
                Ended::Resume { heard, why, retry } => {
                    asked_wait = retry;
                    (heard, why, None)
                }
            },
            Err(Exchange::Final(error)) => return Err(error),
            Err(Exchange::Answered(answer)) => match revision_error(&answer, next) {
                // A node behind the revisions already delivered (a follower catching up after
                // a failover) refuses a start in its future: another node, or this one a moment
                // later, serves it.
                future @ ClientError::FutureRevision { .. } => {
                    (false, future.to_string(), Some(future))
                }
                _ if is_transient_status(answer.status) => {
                    (false, failure_of_answer(&answer).description, None)
                }
                error => return Err(error),
            },
            Err(Exchange::Failed(failure)) => (false, failure.description, None),
        };
        tracing::debug!(target = %target, next, %why, "watch reconnecting");
        let now = Instant::now();
        if heard {
            backoff = RETRY_BACKOFF_MIN;
            attempts_since_wait = 0;
            failing_since = None;
            // The node's `retry:` asks for a pause before reconnecting; capped like every
            // backoff, so a node cannot stall the watch.
            if let Some(wait) = asked_wait {
                tokio::select! {
                    () = sender.closed() => return Ok(()),
                    () = tokio::time::sleep(wait.min(RETRY_BACKOFF_MAX)) => {}
                }
            }
            continue;
        }
        let since = *failing_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= inner.options.retry_deadline {
            return Err(last_error.unwrap_or_else(|| {
                ClientError::Unavailable(format!(
                    "no node served the watch for {:?}; last failure: {target}: {why}",
                    inner.options.retry_deadline
                ))
            }));
        }
        if attempts_since_wait >= endpoint_count {
            attempts_since_wait = 0;
            let delay = inner.retry.jittered(backoff);
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            tokio::select! {
                () = sender.closed() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// `/v1/watch?…` for `request`, starting at `start_revision`.
fn watch_path(request: &WatchRequest, start_revision: u64) -> String {
    let selector = match &request.selector {
        WatchSelector::Key(key) => format!("key={}", encode(key)),
        WatchSelector::Prefix(prefix) => format!("prefix={}", encode(prefix)),
    };
    let mut path = format!("/v1/watch?{selector}&start_revision={start_revision}");
    if let Some(interval) = request.progress_interval {
        let millis = interval.as_millis().clamp(1, u128::from(u64::MAX));
        path.push_str(&format!("&progress_interval_ms={millis}"));
    }
    path
}

/// Reads one connection's events until it ends, delivering what is new and moving `next`.
async fn follow(
    mut body: Incoming,
    next: &mut u64,
    sender: &mpsc::Sender<Result<WatchMessage, ClientError>>,
    silence_max: Option<Duration>,
) -> Ended {
    let mut parser = SseParser::new();
    let mut heard = false;
    loop {
        let frame = tokio::select! {
            () = sender.closed() => return Ended::CallerGone,
            frame = read_frame(&mut body, silence_max) => frame,
        };
        let data = match frame {
            Frame::Data(data) => data,
            Frame::Other => continue,
            Frame::Ended(why) => {
                return Ended::Resume {
                    heard,
                    why,
                    retry: retry_of(&parser),
                }
            }
        };
        let events = match parser.push(&data) {
            Ok(events) => events,
            Err(too_large) => {
                return Ended::Resume {
                    heard,
                    why: too_large.to_string(),
                    retry: retry_of(&parser),
                }
            }
        };
        for event in events {
            match interpret(&event, next) {
                Interpreted::Deliver(message) => {
                    heard = true;
                    *next = message.revision() + 1;
                    if sender.send(Ok(message)).await.is_err() {
                        return Ended::CallerGone;
                    }
                }
                Interpreted::Nothing => {}
                Interpreted::Resume(why) => {
                    return Ended::Resume {
                        heard: true,
                        why,
                        retry: retry_of(&parser),
                    }
                }
                Interpreted::Final(error) => return Ended::Final(error),
            }
        }
    }
}

fn retry_of(parser: &SseParser) -> Option<Duration> {
    parser.retry_millis().map(Duration::from_millis)
}

/// One read of the body.
enum Frame {
    Data(bytes::Bytes),
    /// A frame that is not data (trailers).
    Other,
    /// The stream ended, broke, or was silent too long.
    Ended(String),
}

async fn read_frame(body: &mut Incoming, silence_max: Option<Duration>) -> Frame {
    let frame = match silence_max {
        Some(silence_max) => match tokio::time::timeout(silence_max, body.frame()).await {
            Ok(frame) => frame,
            Err(_) => return Frame::Ended(format!("nothing heard for {silence_max:?}")),
        },
        None => body.frame().await,
    };
    match frame {
        None => Frame::Ended("the node ended the stream".to_string()),
        Some(Err(error)) => Frame::Ended(format!("reading the stream: {}", describe(&error))),
        Some(Ok(frame)) => match frame.into_data() {
            Ok(data) => Frame::Data(data),
            Err(_) => Frame::Other,
        },
    }
}

/// What one SSE event means for the watch.
#[derive(Debug)]
enum Interpreted {
    Deliver(WatchMessage),
    /// Old news (a repeat, progress behind what was delivered) or an event type this client
    /// does not know: skipped.
    Nothing,
    Resume(String),
    Final(ClientError),
}

/// What `event` means when the next revision expected is `next`.
fn interpret(event: &SseEvent, next: &u64) -> Interpreted {
    let undecodable = |what: &str, error: serde_json::Error| {
        Interpreted::Final(ClientError::Decode(format!(
            "watch {what}: {error}: {}",
            event.data
        )))
    };
    match event.event_type.as_str() {
        "events" => match serde_json::from_str::<WatchEvents>(&event.data) {
            Ok(events) if events.revision >= *next => {
                Interpreted::Deliver(WatchMessage::Events(events))
            }
            Ok(_) => Interpreted::Nothing,
            Err(error) => undecodable("events", error),
        },
        "progress" => match serde_json::from_str::<WatchProgress>(&event.data) {
            // Progress at R says revisions up to R are delivered: news only when R reaches
            // next - 1 (a node behind may report less).
            Ok(progress) if progress.revision + 1 >= *next => {
                Interpreted::Deliver(WatchMessage::Progress(progress))
            }
            Ok(_) => Interpreted::Nothing,
            Err(error) => undecodable("progress", error),
        },
        "cancelled" => match serde_json::from_str::<WatchCancelled>(&event.data) {
            Ok(cancelled) => match cancelled.reason {
                CancelReason::Compacted => Interpreted::Final(ClientError::Compacted {
                    requested: *next,
                    compact_revision: cancelled.compact_revision,
                    // The cancellation does not carry the current revision.
                    revision: 0,
                }),
                CancelReason::Lagged | CancelReason::Stopping => Interpreted::Resume(format!(
                    "the node cancelled the watch ({:?}): {}",
                    cancelled.reason, cancelled.error
                )),
            },
            Err(error) => undecodable("cancellation", error),
        },
        _ => Interpreted::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EventType, VersionedKeyValue, WatchEvent};

    fn sse(event_type: &str, data: &str) -> SseEvent {
        SseEvent {
            event_type: event_type.to_string(),
            data: data.to_string(),
            last_event_id: String::new(),
        }
    }

    fn events_at(revision: u64) -> WatchEvents {
        WatchEvents {
            revision,
            events: vec![WatchEvent {
                kind: EventType::Put,
                kv: VersionedKeyValue {
                    key: "k".to_string(),
                    value: Some("v".to_string()),
                    value_base64: None,
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                    lease: 0,
                },
            }],
        }
    }

    #[test]
    fn events_before_next_are_repeats_and_dropped() {
        let data = serde_json::to_string(&events_at(5)).expect("json");
        assert!(matches!(
            interpret(&sse("events", &data), &5),
            Interpreted::Deliver(WatchMessage::Events(events)) if events == events_at(5)
        ));
        assert!(matches!(
            interpret(&sse("events", &data), &6),
            Interpreted::Nothing
        ));
    }

    #[test]
    fn progress_only_when_it_is_news() {
        let progress = sse("progress", r#"{"revision":9}"#);
        assert!(matches!(
            interpret(&progress, &10),
            Interpreted::Deliver(WatchMessage::Progress(WatchProgress { revision: 9 }))
        ));
        assert!(matches!(interpret(&progress, &11), Interpreted::Nothing));
    }

    #[test]
    fn cancellations_resume_or_end_typed() {
        let lagged = sse(
            "cancelled",
            r#"{"reason":"lagged","error":"too slow","resume_revision":7,"compact_revision":1}"#,
        );
        assert!(matches!(interpret(&lagged, &7), Interpreted::Resume(_)));
        let compacted = sse(
            "cancelled",
            r#"{"reason":"compacted","error":"gone","resume_revision":3,"compact_revision":20}"#,
        );
        assert!(matches!(
            interpret(&compacted, &3),
            Interpreted::Final(ClientError::Compacted {
                requested: 3,
                compact_revision: 20,
                ..
            })
        ));
        assert!(matches!(
            interpret(&sse("events", "{not json"), &1),
            Interpreted::Final(ClientError::Decode(_))
        ));
        assert!(matches!(
            interpret(&sse("message", "hello"), &1),
            Interpreted::Nothing
        ));
    }

    #[test]
    fn the_path_names_the_selector_start_and_interval() {
        let mut request = WatchRequest::prefix("svc/a b", Some(4));
        assert_eq!(
            watch_path(&request, 4),
            "/v1/watch?prefix=svc%2Fa%20b&start_revision=4"
        );
        request.selector = WatchSelector::Key("k".to_string());
        request.progress_interval = Some(Duration::from_millis(1500));
        assert_eq!(
            watch_path(&request, 12),
            "/v1/watch?key=k&start_revision=12&progress_interval_ms=1500"
        );
    }
}
