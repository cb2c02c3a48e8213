//! The key routes: put, get, delete, append, compare-and-swap and scan under `/v1/kv`, and the
//! original demo's `GET /set` and `GET /get`.
//!
//! ```text
//!  key (not empty, at most --key-bytes-max: 400 / 413) and value (413) checked
//!    ├─ writes ─► write: through Raft on the leader (forwarded there) ─► index and term
//!    └─ reads ─► read_barrier in the asked consistency (lease reads forwarded to the leader)
//!               ─► the state machine's value (404 when absent), or a scan's page
//! ```

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use raftkv_client::api::{
    AppendResponse, CasRequest, CasResponse, Consistency, DeleteResponse, KeyValue, ScanResponse,
    WriteResponse,
};
use serde::Deserialize;

use super::error::{Api, ApiError};
use super::request::Original;
use super::write::{unexpected, write};
use super::AppState;
use crate::server::{KvServer, ReadMode, ServeError, WriteResult};
use crate::store::Operation;
use crate::store::Outcome;

/// Most keys one scan returns.
const SCAN_LIMIT_MAX: usize = 10_000;

fn check_key(key: &str, server: &KvServer) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("the key is empty"));
    }
    let limit = server.config().key_bytes_max;
    if key.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the key is {} bytes; at most {limit} are allowed",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn check_value(value: &[u8], server: &KvServer) -> Result<(), ApiError> {
    let limit = server.config().value_bytes_max;
    if value.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the value is {} bytes; at most {limit} are allowed",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Validates `key` and the body (the value, for the routes that carry one), then writes the
/// operation `make` builds from them.
async fn keyed_write(
    state: &AppState,
    key: String,
    original: Original,
    make: impl FnOnce(String, Bytes) -> Operation,
) -> Result<WriteResult, Response> {
    let server = &state.server;
    check_key(&key, server)
        .and_then(|()| check_value(&original.body, server))
        .map_err(IntoResponse::into_response)?;
    let operation = make(key, original.body.clone());
    write(state, original, operation).await
}

pub(super) async fn put_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    match keyed_write(&state, key, original, |key, value| Operation::Put {
        key,
        value,
    })
    .await
    {
        Ok(WriteResult {
            outcome: Outcome::Put,
            index,
            term,
        }) => Json(WriteResponse { index, term }).into_response(),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

pub(super) async fn delete_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    match keyed_write(&state, key, original, |key, _| Operation::Delete { key }).await {
        Ok(WriteResult {
            outcome: Outcome::Deleted { existed },
            index,
            term,
        }) => Json(DeleteResponse {
            deleted: existed,
            index,
            term,
        })
        .into_response(),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

pub(super) async fn append_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    let append = |key, suffix| Operation::Append { key, suffix };
    match keyed_write(&state, key, original, append).await {
        Ok(WriteResult {
            outcome: Outcome::Appended { length },
            index,
            term,
        }) => Json(AppendResponse {
            length,
            index,
            term,
        })
        .into_response(),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

pub(super) async fn compare_and_swap(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    let server = &state.server;
    let parsed = check_key(&key, server).and_then(|()| {
        let request: CasRequest = serde_json::from_slice(&original.body).map_err(|error| {
            ApiError::bad_request(format!(
                "the body must be JSON {{\"expect\": string or null, \"value\": string}}: {error}"
            ))
        })?;
        check_value(request.value.as_bytes(), server)?;
        if let Some(expect) = &request.expect {
            check_value(expect.as_bytes(), server)?;
        }
        Ok(request)
    });
    let request = match parsed {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let operation = Operation::Cas {
        key,
        expect: request.expect.map(Bytes::from),
        value: Bytes::from(request.value),
    };
    match write(&state, original, operation).await {
        Ok(WriteResult {
            outcome: Outcome::Cas { swapped, current },
            index,
            term,
        }) => {
            let status = if swapped {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            let current = current.map(|value| String::from_utf8_lossy(&value).into_owned());
            (
                status,
                Json(CasResponse {
                    ok: swapped,
                    current,
                    index,
                    term,
                }),
            )
                .into_response()
        }
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReadQuery {
    #[serde(default)]
    consistency: Consistency,
}

/// Confirms a read in `consistency` here, or forwards it to the leader (lease reads).
async fn read_barrier(
    state: &AppState,
    consistency: Consistency,
    original: Original,
) -> Result<(), Response> {
    let server = &state.server;
    let mode = match consistency {
        Consistency::Linearizable => ReadMode::Linearizable,
        Consistency::Lease => ReadMode::Lease,
        Consistency::Stale => ReadMode::Stale,
    };
    if mode == ReadMode::Lease && !state.serves_here(&original).await {
        return Err(state.forward(original).await);
    }
    match server.read_barrier(mode).await {
        Ok(()) => Ok(()),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            Err(state.forward_to(original, Some(leader)).await)
        }
        Err(error) => Err(ApiError::from_serve(error, server).into_response()),
    }
}

pub(super) async fn get_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
    original: Original,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::bad_request("consistency must be linearizable, lease or stale")
            .into_response();
    };
    if let Err(error) = check_key(&key, &state.server) {
        return error.into_response();
    }
    if let Err(response) = read_barrier(&state, query.consistency, original).await {
        return response;
    }
    serve_value(&state.server, &key)
}

fn serve_value(server: &KvServer, key: &str) -> Response {
    match server.state().get(key).cloned() {
        Some(value) => (
            [("content-type", "application/octet-stream")],
            Body::from(value),
        )
            .into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, format!("key `{key}` not found")).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ScanQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    #[serde(default)]
    consistency: Consistency,
}

pub(super) async fn scan(
    State(state): State<AppState>,
    query: Result<Query<ScanQuery>, axum::extract::rejection::QueryRejection>,
    original: Original,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > SCAN_LIMIT_MAX {
        return ApiError::bad_request(format!("limit must be between 1 and {SCAN_LIMIT_MAX}"))
            .into_response();
    }
    if let Err(response) = read_barrier(&state, query.consistency, original).await {
        return response;
    }
    let (pairs, truncated) = state.server.state().scan(&query.prefix, limit);
    let items = pairs
        .into_iter()
        .map(|(key, value)| match String::from_utf8(value.to_vec()) {
            Ok(text) => KeyValue {
                key,
                value: Some(text),
                value_base64: None,
            },
            Err(_) => KeyValue {
                key,
                value: None,
                value_base64: Some(base64::engine::general_purpose::STANDARD.encode(&value)),
            },
        })
        .collect();
    Json(ScanResponse { items, truncated }).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct DemoQuery {
    key: Option<String>,
    value: Option<String>,
}

/// The original demo's `GET /set?key=K&value=V`.
pub(super) async fn demo_set(
    State(state): State<AppState>,
    Api(Query(query)): Api<Query<DemoQuery>>,
    original: Original,
) -> Response {
    let (Some(key), Some(value)) = (query.key, query.value) else {
        return ApiError::bad_request("give key and value: /set?key=K&value=V").into_response();
    };
    let value = Bytes::from(value);
    if let Err(error) =
        check_key(&key, &state.server).and_then(|()| check_value(&value, &state.server))
    {
        return error.into_response();
    }
    match write(&state, original, Operation::Put { key, value }).await {
        Ok(WriteResult { index, term, .. }) => Json(WriteResponse { index, term }).into_response(),
        Err(response) => response,
    }
}

/// The original demo's `GET /get?key=K` (linearizable).
pub(super) async fn demo_get(
    State(state): State<AppState>,
    Api(Query(query)): Api<Query<DemoQuery>>,
    original: Original,
) -> Response {
    let Some(key) = query.key else {
        return ApiError::bad_request("give a key: /get?key=K").into_response();
    };
    if let Err(error) = check_key(&key, &state.server) {
        return error.into_response();
    }
    if let Err(response) = read_barrier(&state, Consistency::Linearizable, original).await {
        return response;
    }
    serve_value(&state.server, &key)
}

pub(super) async fn empty_key() -> Response {
    ApiError::bad_request("the key is empty").into_response()
}
