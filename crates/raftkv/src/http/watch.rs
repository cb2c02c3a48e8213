//! `GET /v1/watch`: a watch as Server-Sent Events (routes and bodies in
//! [`raftkv_client::api::coordination`]).
//!
//! ```text
//!  key= xor prefix=, start_revision= (or Last-Event-ID: R, meaning R + 1),
//!  progress_interval_ms=  ── bad ──────────────────────────────────────────► 400
//!    ─► KvServer::watch: subscribe, then catch up from history ── compacted ─► 410
//!    ─► 200 text/event-stream, one message per WatchMessage:
//!         event: events     id: R   data: WatchEvents     (every selected change of R)
//!         event: progress           data: WatchProgress
//!         event: cancelled          data: WatchCancelled  (the last; the stream ends)
//! ```
//!
//! Served by whichever node is asked, from its own applied state: followers apply the same
//! log, so every node yields the same events at the same revisions. The `id:` of an events
//! message is its revision, so a browser's `EventSource` reconnects with `Last-Event-ID` and
//! resumes where it stopped.
//!
//! The cost of many watchers: an events message of a revision the watch selects whole is
//! encoded once for every such watcher ([`PublishedRevision::encoded`]); and each wake-up of
//! a watch writes every message it has ready as one body chunk (one HTTP/2 DATA frame, not
//! one per revision), up to `CHUNK_MESSAGES_MAX` messages.

use std::convert::Infallible;
use std::io::Write as _;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use raftkv_client::api::{EventType, WatchCancelled, WatchEvent, WatchEvents, WatchProgress};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::kv::check_key_bytes;
use super::revisions::{revision_error, versioned_key_value};
use super::AppState;
use crate::store::{Change, ChangeKind, KeySelector};
use crate::watch::{History, PublishedRevision, SharedEncoding, Start, WatchMessage, Watcher};

/// Shortest progress interval a watch may ask for, in milliseconds: shorter would make idle
/// watches cost more than the changes they follow.
const PROGRESS_INTERVAL_MS_MIN: u64 = 10;
/// Longest progress interval, in milliseconds (an hour).
const PROGRESS_INTERVAL_MS_MAX: u64 = 3_600_000;
/// Watch messages in one body chunk at most, when more are ready at one wake-up.
const CHUNK_MESSAGES_MAX: usize = 256;
/// Bytes a body chunk grows to at most before it takes another ready message: bounds what
/// one watch writes at once when it catches up on many revisions.
const CHUNK_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct WatchQuery {
    key: Option<String>,
    prefix: Option<String>,
    start_revision: Option<u64>,
    progress_interval_ms: Option<u64>,
}

/// The watch a request asks for, or why it cannot be.
fn parse_watch(
    query: WatchQuery,
    headers: &HeaderMap,
    key_bytes_max: usize,
    default_progress_interval: Duration,
) -> Result<Start, ApiError> {
    let selector = match (query.key, query.prefix) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give key= or prefix=, not both")),
        (None, None) => {
            return Err(ApiError::bad_request(
                "give the key (key=K) or the prefix (prefix=P; empty for every key) to watch",
            ))
        }
        (Some(key), None) if key.is_empty() => {
            return Err(ApiError::bad_request("the key is empty"))
        }
        (Some(key), None) => {
            check_key_bytes("key or prefix", &key, key_bytes_max)?;
            KeySelector::Key(key)
        }
        (None, Some(prefix)) => {
            check_key_bytes("key or prefix", &prefix, key_bytes_max)?;
            KeySelector::Prefix(prefix)
        }
    };
    // A reconnecting EventSource sends the URL it first used and the last id it saw: the id
    // wins, since it is where the stream stopped.
    let last_event = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .and_then(|revision| revision.checked_add(1))
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID must be a revision (an unsigned integer)")
                })
        })
        .transpose()?;
    let start_revision = last_event.or(query.start_revision);
    if start_revision == Some(0) {
        return Err(ApiError::bad_request(
            "start_revision must be at least 1 (leave it out to watch from now)",
        ));
    }
    let progress_interval = match query.progress_interval_ms {
        None => default_progress_interval,
        Some(0) => Duration::ZERO,
        Some(milliseconds)
            if (PROGRESS_INTERVAL_MS_MIN..=PROGRESS_INTERVAL_MS_MAX).contains(&milliseconds) =>
        {
            Duration::from_millis(milliseconds)
        }
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "progress_interval_ms must be 0 (none) or between {PROGRESS_INTERVAL_MS_MIN} and \
                 {PROGRESS_INTERVAL_MS_MAX}"
            )))
        }
    };
    Ok(Start {
        selector,
        start_revision,
        progress_interval,
    })
}

pub(super) async fn watch(
    State(state): State<AppState>,
    query: Result<Query<WatchQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    let server = &state.server;
    let config = server.config();
    let start = match parse_watch(
        query,
        &headers,
        config.key_bytes_max,
        config.coordination.watch_progress_interval,
    ) {
        Ok(start) => start,
        Err(error) => return error.into_response(),
    };
    let mut watcher = server.watch(start);
    // A compacted start is known now: refused outright rather than as a stream that ends at
    // once.
    if let Err(error) = watcher.catch_up() {
        return revision_error(&error);
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(sse_chunks(watcher)),
    )
        .into_response()
}

/// The body of a watch: at each wake-up, every message the watcher has ready (at least
/// one), as SSE messages in one chunk; ends after the cancellation.
fn sse_chunks<H: History>(
    watcher: Watcher<H>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold(watcher, |mut watcher| async move {
        let first = sse_message(watcher.next().await?);
        let mut chunk: Option<BytesMut> = None;
        for _ in 1..CHUNK_MESSAGES_MAX {
            let length = chunk.as_ref().map_or(first.len(), BytesMut::len);
            if length >= CHUNK_BYTES_MAX {
                break;
            }
            // `next` is cancel-safe: a message not ready now stays queued for the next wake.
            let Some(Some(message)) = watcher.next().now_or_never() else {
                break;
            };
            let chunk = chunk.get_or_insert_with(|| BytesMut::from(&first[..]));
            chunk.extend_from_slice(&sse_message(message));
        }
        // A lone message goes out as it is: for a shared revision, the shared bytes.
        let chunk = chunk.map_or(first, BytesMut::freeze);
        Some((Ok(chunk), watcher))
    })
}

/// The SSE message of one watch message; an events message of a whole published revision is
/// encoded once for every watcher.
fn sse_message(message: WatchMessage) -> Bytes {
    match message {
        WatchMessage::Events(events) => match events.whole() {
            Some(published) => shared_sse_events(published),
            None => sse_events(events.revision(), events.changes()),
        },
        WatchMessage::Progress { revision } => {
            sse_message_of("progress", None, &WatchProgress { revision })
        }
        WatchMessage::Cancelled {
            reason,
            resume_revision,
            compact_revision,
            error,
        } => sse_message_of(
            "cancelled",
            None,
            &WatchCancelled {
                reason,
                error,
                resume_revision,
                compact_revision,
            },
        ),
    }
}

/// The events message of a published revision, made by the first watcher that sends it.
fn shared_sse_events(published: &PublishedRevision) -> Bytes {
    published.encoded(SharedEncoding::ServerSentEvents, sse_events)
}

/// `event: events`, `id:` the revision, the changes as [`WatchEvents`].
fn sse_events(revision: u64, changes: &[Change]) -> Bytes {
    let events = changes
        .iter()
        .map(|change| WatchEvent {
            kind: match change.kind {
                ChangeKind::Put => EventType::Put,
                ChangeKind::Delete => EventType::Delete,
            },
            kv: versioned_key_value(&change.key, &change.value),
        })
        .collect();
    sse_message_of("events", Some(revision), &WatchEvents { revision, events })
}

/// One SSE message, as axum's `Event` writes it: `event:`, `id:` when given, one `data:` line
/// of `body` in JSON, and the blank line that ends it.
fn sse_message_of(event: &str, id: Option<u64>, body: &impl Serialize) -> Bytes {
    let mut message = Vec::with_capacity(256);
    // Writing into a Vec cannot fail.
    let _ = writeln!(message, "event: {event}");
    if let Some(id) = id {
        let _ = writeln!(message, "id: {id}");
    }
    message.extend_from_slice(b"data: ");
    let data_start = message.len();
    // These bodies are plain structs of strings and numbers: serializing cannot fail.
    if let Err(error) = serde_json::to_writer(&mut message, body) {
        panic!("invariant watch-bodies-serialize: {error}");
    }
    // Compact JSON escapes every line break inside its strings: the data is one line, so the
    // message needs no `data:` line per line of it.
    assert!(
        !message[data_start..]
            .iter()
            .any(|byte| *byte == b'\n' || *byte == b'\r'),
        "invariant watch-data-one-line"
    );
    message.extend_from_slice(b"\n\n");
    Bytes::from(message)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    fn query(key: Option<&str>, prefix: Option<&str>) -> WatchQuery {
        WatchQuery {
            key: key.map(str::to_owned),
            prefix: prefix.map(str::to_owned),
            start_revision: None,
            progress_interval_ms: None,
        }
    }

    fn parse(query: WatchQuery, headers: &HeaderMap) -> Result<Start, ApiError> {
        parse_watch(query, headers, 16, Duration::from_secs(10))
    }

    #[test]
    fn a_watch_names_a_key_or_a_prefix_and_a_start_and_the_last_event_id_wins() {
        let none = HeaderMap::new();
        let start = parse(query(Some("k"), None), &none).expect("valid");
        assert_eq!(start.selector, KeySelector::Key("k".into()));
        assert_eq!(start.start_revision, None, "from now");
        assert_eq!(start.progress_interval, Duration::from_secs(10));
        let every = parse(query(None, Some("")), &none).expect("valid");
        assert_eq!(every.selector, KeySelector::Prefix(String::new()));
        let mut asked = query(None, Some("p/"));
        asked.start_revision = Some(7);
        asked.progress_interval_ms = Some(0);
        let start = parse(asked, &none).expect("valid");
        assert_eq!(start.start_revision, Some(7));
        assert!(start.progress_interval.is_zero(), "0: no progress");
        let mut reconnecting = HeaderMap::new();
        reconnecting.insert("last-event-id", HeaderValue::from_static("41"));
        let mut asked = query(None, Some("p/"));
        asked.start_revision = Some(7);
        let start = parse(asked, &reconnecting).expect("valid");
        assert_eq!(
            start.start_revision,
            Some(42),
            "the revision after the last seen"
        );
    }

    /// No history to catch up from: watches start after revision 1.
    struct NoHistory;

    impl History for NoHistory {
        fn since(
            &self,
            _start: Option<u64>,
            _selector: &KeySelector,
        ) -> Result<crate::watch::CaughtUp, crate::store::RevisionError> {
            Ok(crate::watch::CaughtUp {
                changes: Vec::new(),
                revision: 1,
            })
        }

        fn compact_revision(&self) -> u64 {
            1
        }
    }

    fn put(key: &str, revision: u64) -> Change {
        Change {
            kind: ChangeKind::Put,
            key: key.into(),
            value: crate::store::VersionedValue {
                value: Bytes::from(format!("{key}@{revision}")),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            },
        }
    }

    #[tokio::test]
    async fn sse_messages_are_written_as_axum_s_sse_writes_them() {
        use axum::response::sse::{Event, Sse};

        let changes = [put("p/a", 7), put("p/b", 7)];
        let body = WatchEvents {
            revision: 7,
            events: changes
                .iter()
                .map(|change| WatchEvent {
                    kind: EventType::Put,
                    kv: versioned_key_value(&change.key, &change.value),
                })
                .collect(),
        };
        let progress = WatchProgress { revision: 9 };
        let events = [
            Event::default()
                .event("events")
                .id("7")
                .data(serde_json::to_string(&body).expect("serializes")),
            Event::default()
                .event("progress")
                .data(serde_json::to_string(&progress).expect("serializes")),
        ];
        let axum_body = Sse::new(futures_util::stream::iter(events.map(Ok::<_, Infallible>)))
            .into_response()
            .into_body();
        let axum_bytes = axum::body::to_bytes(axum_body, usize::MAX)
            .await
            .expect("a body");
        let mut ours = sse_events(7, &changes).to_vec();
        ours.extend_from_slice(&sse_message(WatchMessage::Progress { revision: 9 }));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&axum_bytes)
        );
    }

    #[tokio::test]
    async fn messages_ready_at_one_wake_up_go_out_in_one_chunk_in_order() {
        use futures_util::StreamExt;

        let hub = crate::watch::WatchHub::new(64);
        let start = || Start {
            selector: KeySelector::Prefix("p/".into()),
            start_revision: None,
            progress_interval: Duration::ZERO,
        };
        let mut watcher = hub.watch(NoHistory, start());
        watcher.catch_up().expect("caught up");
        let mut other = hub.watch(NoHistory, start());
        other.catch_up().expect("caught up");
        let revisions = [
            vec![put("p/a", 2)],
            vec![put("p/b", 3), put("q", 3)],
            vec![put("p/c", 4)],
        ];
        for (revision, changes) in (2..).zip(&revisions) {
            hub.publish(crate::store::RevisionChanges {
                revision,
                changes: changes.clone(),
            });
        }
        let mut chunks = Box::pin(sse_chunks(watcher));
        let chunk = chunks.next().await.expect("a chunk").expect("infallible");
        let mut expected = sse_events(2, &revisions[0][..]).to_vec();
        expected.extend_from_slice(&sse_events(3, &revisions[1][..1]));
        expected.extend_from_slice(&sse_events(4, &revisions[2][..]));
        assert_eq!(
            String::from_utf8_lossy(&chunk),
            String::from_utf8_lossy(&expected),
            "three revisions ready: one chunk, in revision order, the foreign key left out"
        );
        let mut others = Box::pin(sse_chunks(other));
        let first_of_other = others.next().await.expect("a chunk").expect("infallible");
        assert_eq!(first_of_other, chunk, "identical for another watcher");
        // A lone whole revision goes out as the bytes every watcher shares.
        hub.publish(crate::store::RevisionChanges {
            revision: 5,
            changes: vec![put("p/d", 5)],
        });
        let lone = chunks.next().await.expect("a chunk").expect("infallible");
        let lone_of_other = others.next().await.expect("a chunk").expect("infallible");
        assert_eq!(lone_of_other, lone);
        assert_eq!(
            lone_of_other.as_ptr(),
            lone.as_ptr(),
            "the same bytes, encoded once"
        );
    }

    #[test]
    fn a_bad_watch_is_refused_with_the_rule() {
        let none = HeaderMap::new();
        let mut zero = query(Some("k"), None);
        zero.start_revision = Some(0);
        let mut fast = query(Some("k"), None);
        fast.progress_interval_ms = Some(1);
        for (bad, rule) in [
            (query(Some("k"), Some("p")), "not both"),
            (query(None, None), "give the key"),
            (query(Some(""), None), "empty"),
            (zero, "at least 1"),
            (fast, "progress_interval_ms"),
        ] {
            let error = parse(bad, &none).expect_err("refused");
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.body.error.contains(rule), "{}", error.body.error);
        }
        let long = parse(query(Some(&"k".repeat(17)), None), &none).expect_err("refused");
        assert_eq!(long.status, StatusCode::PAYLOAD_TOO_LARGE);
        let mut garbled = HeaderMap::new();
        garbled.insert("last-event-id", HeaderValue::from_static("x"));
        let error = parse(query(Some("k"), None), &garbled).expect_err("refused");
        assert!(error.body.error.contains("Last-Event-ID"));
    }
}
