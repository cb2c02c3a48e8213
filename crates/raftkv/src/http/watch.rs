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

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use raftkv_client::api::{EventType, WatchCancelled, WatchEvent, WatchEvents, WatchProgress};
use serde::Deserialize;

use super::error::ApiError;
use super::kv::check_key_bytes;
use super::revisions::{revision_error, versioned_key_value};
use super::AppState;
use crate::store::{ChangeKind, KeySelector};
use crate::watch::{Start, WatchMessage};

/// Shortest progress interval a watch may ask for, in milliseconds: shorter would make idle
/// watches cost more than the changes they follow.
const PROGRESS_INTERVAL_MS_MIN: u64 = 10;
/// Longest progress interval, in milliseconds (an hour).
const PROGRESS_INTERVAL_MS_MAX: u64 = 3_600_000;

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
    let stream = futures_util::stream::unfold(watcher, |mut watcher| async move {
        let message = watcher.next().await?;
        Some((Ok::<Event, Infallible>(sse_event(message)), watcher))
    });
    Sse::new(stream).into_response()
}

/// The SSE message of one watch message.
fn sse_event(message: WatchMessage) -> Event {
    let (event, data) = match message {
        WatchMessage::Events { revision, changes } => {
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
            let body = WatchEvents { revision, events };
            let event = Event::default().event("events").id(revision.to_string());
            (event, serde_json::to_string(&body))
        }
        WatchMessage::Progress { revision } => (
            Event::default().event("progress"),
            serde_json::to_string(&WatchProgress { revision }),
        ),
        WatchMessage::Cancelled {
            reason,
            resume_revision,
            compact_revision,
            error,
        } => (
            Event::default().event("cancelled"),
            serde_json::to_string(&WatchCancelled {
                reason,
                error,
                resume_revision,
                compact_revision,
            }),
        ),
    };
    // These bodies are plain structs of strings and numbers: serializing cannot fail.
    let data = data.unwrap_or_else(|error| {
        panic!("invariant watch-bodies-serialize: {error}");
    });
    event.data(data)
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
