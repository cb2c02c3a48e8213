//! Consistency checks (routes and bodies in [`raftkv_client::api::consistency`]): a node's
//! hash of its state at one index, and a check of every member's.
//!
//! ```text
//!  GET  /v1/consistency/hash?index=I&wait_ms=W ─► KvServer::state_hash_at ─► StateHashResponse
//!  POST /v1/consistency/check ─► leader? ── no ─► forwarded to the leader
//!                                   └ yes ─► KvServer::check_consistency (asking the other
//!                                            members with the Forwarder) ─► report
//! ```

use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use raftkv_client::api::{StateHashResponse, STATE_HASH_WAIT_MS_MAX};
use serde::Deserialize;

use super::error::{Api, ApiError};
use super::request::Original;
use super::{AppState, Forwarder};
use crate::server::{ServeError, StateHashAnswer, StateHashFetcher};

/// Largest answer read from another node's hash route: a few hundred bytes of JSON.
const STATE_HASH_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Query of `GET /v1/consistency/hash`.
#[derive(Debug, Deserialize)]
pub(super) struct HashQuery {
    /// The log index to give the hash at.
    index: u64,
    /// How long to wait while the hash is pending, in milliseconds (absent: not at all).
    wait_ms: Option<u64>,
}

pub(super) async fn state_hash(
    State(state): State<AppState>,
    Api(Query(query)): Api<Query<HashQuery>>,
) -> Response {
    if query.index == 0 {
        return ApiError::bad_request("index must be at least 1").into_response();
    }
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(STATE_HASH_WAIT_MS_MAX));
    let answer = state.server.state_hash_at(query.index, wait).await;
    let (hash, revision) = match answer {
        StateHashAnswer::Hashed(hash) => (Some(hash.hex()), Some(hash.revision)),
        _ => (None, None),
    };
    Json(StateHashResponse {
        node: state.server.config().id.0,
        index: query.index,
        state: answer.state(),
        hash,
        revision,
    })
    .into_response()
}

pub(super) async fn check(State(state): State<AppState>, original: Original) -> Response {
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    match state.server.check_consistency(&*state.forwarder).await {
        Ok(report) => Json(report).into_response(),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            state.forward_to(original, Some(leader)).await
        }
        Err(error) => ApiError::from_serve(error, &state.server).into_response(),
    }
}

impl StateHashFetcher for Forwarder {
    async fn state_hash(
        &self,
        http_address: String,
        index: u64,
        wait: Duration,
    ) -> Result<StateHashResponse, String> {
        let mut headers = HeaderMap::new();
        if let Some(authorization) = &self.node_authorization {
            headers.insert("authorization", authorization.clone());
        }
        let path = format!(
            "/v1/consistency/hash?index={index}&wait_ms={}",
            wait.as_millis()
        );
        let response = self
            .send(Method::GET, &http_address, &path, headers, Bytes::new())
            .await?;
        let status = response.status();
        let body = to_bytes(response.into_body(), STATE_HASH_ANSWER_BYTES_MAX)
            .await
            .map_err(|error| format!("{http_address}: the answer broke off: {error}"))?;
        if !status.is_success() {
            return Err(format!(
                "{http_address} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|error| format!("{http_address}: not a state hash answer: {error}"))
    }
}
