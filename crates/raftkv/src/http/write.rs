//! A write through Raft, for every route that makes one: the session headers that make a
//! retry exactly-once, the write served here (a store write on any node, through Raft
//! forwarding on a follower; a lease or membership write when this node leads) or forwarded
//! to the leader's HTTP API, and the answer to an outcome the route did not ask for.
//!
//! ```text
//!  client-id + request-seq (both or neither; else 400)
//!    ├─ store write (`write`) ─► KvServer::write_on(AnyNode): a follower hands the proposal
//!    │     to the leader over Raft and answers once it applied the entry itself
//!    │     (raftkv-leader: the leader's address, as a forwarded answer has)
//!    └─ leader's write (`write_on_leader`) ─► leader here? ── no ─► forward (HTTP)
//!          └─ yes ─► KvServer::write
//!  ─► WriteResult ─► the route's answer, or `unexpected`
//!     └─ ServeError ─► NotLeader and may forward ─► forward (HTTP), else its status
//! ```

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use raftkv_client::api::{CLIENT_ID_HEADER, REQUEST_SEQ_HEADER};

use super::error::ApiError;
use super::request::Original;
use super::AppState;
use crate::server::{Route, ServeError, WriteResult};
use crate::store::Outcome;
use crate::store::{ClientId, Operation, Session};

/// The session of a request: both headers or neither. `client-id` is any opaque id of 1 to
/// 128 visible ASCII characters ([`ClientId::parse`]); `request-seq` an unsigned integer from 1.
fn session(headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let client_id = headers
        .get(CLIENT_ID_HEADER)
        .map(|value| {
            // HTTP has already trimmed the value's ends.
            ClientId::parse(value.as_bytes()).map_err(|error| {
                ApiError::bad_request(format!("header {CLIENT_ID_HEADER}: {error}"))
            })
        })
        .transpose()?;
    let sequence = headers
        .get(REQUEST_SEQ_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|sequence| *sequence >= 1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "header {REQUEST_SEQ_HEADER} must be an unsigned integer, at least 1"
                    ))
                })
        })
        .transpose()?;
    match (client_id, sequence) {
        (Some(client_id), Some(sequence)) => Ok(Some(Session {
            client_id,
            sequence,
        })),
        (None, None) => Ok(None),
        _ => Err(ApiError::bad_request(format!(
            "{CLIENT_ID_HEADER} and {REQUEST_SEQ_HEADER} must be given together"
        ))),
    }
}

/// Runs a plain store write (a put, a delete, a transaction...) from this node, whichever
/// node leads: a follower forwards the proposal to the leader over Raft and answers once it
/// applied it, so a read here right after sees it. A request the Raft path cannot place (the
/// leader it reached no longer leads) is forwarded to the leader's HTTP API. Answer a success
/// through [`AppState::naming_leader`], as a forwarded answer names the leader.
pub(super) async fn write(
    state: &AppState,
    original: Original,
    operation: Operation,
) -> Result<WriteResult, Response> {
    let server = &state.server;
    let session = session(&original.headers).map_err(IntoResponse::into_response)?;
    let answer = server.write_on(Route::AnyNode, session, operation).await;
    settled(state, original, answer).await
}

/// Runs a write only the leader may propose (a lease's, a membership record) here if this
/// node leads, else forwards it to the leader's HTTP API.
pub(super) async fn write_on_leader(
    state: &AppState,
    original: Original,
    operation: Operation,
) -> Result<WriteResult, Response> {
    let session = session(&original.headers).map_err(IntoResponse::into_response)?;
    if !state.serves_here(&original).await {
        return Err(state.forward(original).await);
    }
    let answer = state.server.write(session, operation).await;
    settled(state, original, answer).await
}

/// The result of a write, or its refusal as an answer: a refusal naming another leader is
/// forwarded there over HTTP (if the request may make another hop).
async fn settled(
    state: &AppState,
    original: Original,
    answer: Result<WriteResult, ServeError>,
) -> Result<WriteResult, Response> {
    match answer {
        Ok(result) => Ok(result),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            Err(state.forward_to(original, Some(leader)).await)
        }
        Err(error) => Err(ApiError::from_serve(error, &state.server).into_response()),
    }
}

/// A write outcome that is not the one the route expects: a stale session sequence, or the
/// cached outcome of a different request sent earlier under the same session sequence (the
/// state machine answers a repeated sequence with the first request's outcome, whatever the
/// repeat asks).
pub(super) fn unexpected(outcome: Outcome) -> Response {
    match outcome {
        Outcome::StaleSequence { last } => ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "request-seq is older than this client's last request ({last}); its result is \
                 no longer kept"
            ),
        )
        .into_response(),
        Outcome::Rejected { reason } => ApiError::bad_request(reason).into_response(),
        // Found by fuzzing (fuzz/regressions/http_request/): this was a 500, which a client
        // retries under the same sequence forever.
        other => ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "request-seq was already used by a different request of this client; that \
                 request's outcome: {other:?}"
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_client_id_is_any_short_visible_ascii_text_and_a_bad_one_is_told_the_rule() {
        let headers = |client_id: &str, sequence: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                CLIENT_ID_HEADER,
                HeaderValue::from_str(client_id).expect("a header value"),
            );
            headers.insert(
                REQUEST_SEQ_HEADER,
                HeaderValue::from_str(sequence).expect("a header value"),
            );
            headers
        };
        let uuid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let parsed = session(&headers(uuid, "4"))
            .expect("valid")
            .expect("a session");
        assert_eq!(parsed.client_id.to_string(), uuid);
        assert_eq!(parsed.sequence, 4);
        let numeric = session(&headers("77", "1"))
            .expect("valid")
            .expect("a session");
        assert_eq!(
            numeric.client_id,
            ClientId::number(77),
            "as older releases kept it"
        );
        for (client_id, sequence) in [
            ("two words", "1"),
            (&"x".repeat(129)[..], "1"),
            ("ok", "0"),
            ("ok", "-1"),
        ] {
            let refused = session(&headers(client_id, sequence)).expect_err("refused");
            assert_eq!(refused.status, StatusCode::BAD_REQUEST);
            assert!(
                refused.body.error.contains("visible ASCII")
                    || refused.body.error.contains("at least 1"),
                "{}",
                refused.body.error
            );
        }
        let mut alone = HeaderMap::new();
        alone.insert(CLIENT_ID_HEADER, HeaderValue::from_static("ok"));
        assert!(session(&alone).is_err(), "both headers or neither");
        assert!(matches!(session(&HeaderMap::new()), Ok(None)));
    }

    /// Found by fuzzing (fuzz/regressions/http_request/): a request-seq reused for a different
    /// request gets the first request's outcome, which the route cannot report; that is the
    /// client's conflict, not a server error a client would retry.
    #[test]
    fn an_outcome_of_another_request_under_the_same_sequence_is_a_conflict() {
        for outcome in [
            Outcome::Put,
            Outcome::Deleted { existed: true },
            Outcome::Appended { length: 3 },
            Outcome::Cas {
                swapped: true,
                current: None,
            },
            Outcome::Announced,
            Outcome::StaleSequence { last: 4 },
        ] {
            assert_eq!(
                unexpected(outcome.clone()).status(),
                StatusCode::CONFLICT,
                "{outcome:?}"
            );
        }
        let rejected = Outcome::Rejected {
            reason: "undecodable".into(),
        };
        assert_eq!(unexpected(rejected).status(), StatusCode::BAD_REQUEST);
    }
}
