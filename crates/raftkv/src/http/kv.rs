//! The key routes: put, get, delete, append, compare-and-swap and scan under `/v1/kv`, and the
//! original demo's `GET /set` and `GET /get`.
//!
//! ```text
//!  key (not empty, at most --key-bytes-max: 400 / 413) and value (413) checked
//!    ├─ writes ─► write: through Raft on the leader (forwarded there) ─► index and term
//!    └─ reads ─► read_barrier in the asked consistency (lease reads forwarded to the leader)
//!               ─► the state machine's value (404 when absent), or a scan's page, at the
//!                  current revision or the one asked (?revision=N: 410 compacted, 400 future)
//!               ─► the value's bytes with the raftkv-*revision headers, or ?format=json
//! ```

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use raftkv_client::api::{
    AppendResponse, CasRequest, CasResponse, Consistency, DeleteResponse, KeyValue,
    KeyValueResponse, ScanResponse, WriteResponse, CREATE_REVISION_HEADER, MOD_REVISION_HEADER,
    REVISION_HEADER, VERSION_HEADER,
};
use serde::Deserialize;

use super::error::{Api, ApiError};
use super::lease::{check_lease_id, lease_refusal};
use super::request::Original;
use super::revisions::{revision_error, value_fields, versioned_key_value};
use super::write::{unexpected, write};
use super::AppState;
use crate::server::{KvServer, ReadMode, ServeError, WriteResult};
use crate::store::{Operation, Outcome, VersionedValue};

/// Most keys one scan returns.
const SCAN_LIMIT_MAX: usize = 10_000;

pub(super) fn check_key(key: &str, server: &KvServer) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("the key is empty"));
    }
    check_key_bytes("key", key, server.config().key_bytes_max)
}

/// A key or prefix (`what`) longer than `limit` bytes is refused with 413.
pub(super) fn check_key_bytes(what: &str, text: &str, limit: usize) -> Result<(), ApiError> {
    if text.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the {what} is {} bytes; at most {limit} are allowed",
                text.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_value(value: &[u8], server: &KvServer) -> Result<(), ApiError> {
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

/// Query of `PUT /v1/kv/{key}`.
#[derive(Debug, Deserialize)]
pub(super) struct PutQuery {
    /// The lease to attach the key to (absent or 0: none; the put detaches the key).
    lease: Option<u64>,
}

pub(super) async fn put_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    Api(Query(query)): Api<Query<PutQuery>>,
    original: Original,
) -> Response {
    let lease = match query.lease {
        None | Some(0) => 0,
        Some(id) => match check_lease_id(id) {
            Ok(id) => id,
            Err(error) => return lease_refusal(&error),
        },
    };
    let answer = match keyed_write(&state, key, original, |key, value| Operation::Put {
        key,
        value,
        lease,
    })
    .await
    {
        Ok(
            result @ WriteResult {
                outcome: Outcome::Put,
                ..
            },
        ) => put_answer(&result),
        // No lease with that id: the key was left as it was.
        Ok(WriteResult {
            outcome: Outcome::LeaseRefused { error },
            ..
        }) => lease_refusal(&error),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    };
    state.naming_leader(answer)
}

/// The answer to a put: where it sits in the log, and its revision.
fn put_answer(result: &WriteResult) -> Response {
    let answer = WriteResponse {
        index: result.index,
        term: result.term,
        revision: result.revision,
    };
    with_revision(result.revision, Json(answer))
}

pub(super) async fn delete_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    let answer = match keyed_write(&state, key, original, |key, _| Operation::Delete { key }).await
    {
        Ok(WriteResult {
            outcome: Outcome::Deleted { existed },
            index,
            term,
            revision,
        }) => with_revision(
            revision,
            Json(DeleteResponse {
                deleted: existed,
                index,
                term,
                revision,
            }),
        ),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    };
    state.naming_leader(answer)
}

pub(super) async fn append_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    let append = |key, suffix| Operation::Append { key, suffix };
    let answer = match keyed_write(&state, key, original, append).await {
        Ok(WriteResult {
            outcome: Outcome::Appended { length },
            index,
            term,
            revision,
        }) => with_revision(
            revision,
            Json(AppendResponse {
                length,
                index,
                term,
                revision,
            }),
        ),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    };
    state.naming_leader(answer)
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
    let answer = match write(&state, original, operation).await {
        Ok(WriteResult {
            outcome: Outcome::Cas { swapped, current },
            index,
            term,
            revision,
        }) => {
            let status = if swapped {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            let current = current.map(|value| String::from_utf8_lossy(&value).into_owned());
            with_revision(
                revision,
                (
                    status,
                    Json(CasResponse {
                        ok: swapped,
                        current,
                        index,
                        term,
                        revision,
                    }),
                ),
            )
        }
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    };
    state.naming_leader(answer)
}

#[derive(Debug, Deserialize)]
pub(super) struct ReadQuery {
    #[serde(default)]
    consistency: Consistency,
    /// `json`: the key with its revisions as a [`KeyValueResponse`].
    format: Option<String>,
    /// Read at this past revision.
    revision: Option<u64>,
}

/// A revision asked for with `?revision=`: at least 1.
fn check_revision(revision: Option<u64>) -> Result<(), ApiError> {
    match revision {
        Some(0) => Err(ApiError::bad_request(
            "revision must be at least 1 (leave it out to read the current state)",
        )),
        _ => Ok(()),
    }
}

/// `response` with the store's revision it reflects in the `raftkv-revision` header.
fn with_revision(revision: u64, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(REVISION_HEADER, HeaderValue::from(revision));
    response
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
        return ApiError::bad_request(
            "consistency must be linearizable, lease or stale; revision an unsigned integer",
        )
        .into_response();
    };
    let json = match query.format.as_deref() {
        None => false,
        Some("json") => true,
        Some(other) => {
            return ApiError::bad_request(format!(
                "format `{other}` is unknown: leave it out for the value's bytes, or json"
            ))
            .into_response()
        }
    };
    if let Err(error) = check_key(&key, &state.server).and_then(|()| check_revision(query.revision))
    {
        return error.into_response();
    }
    if let Err(response) = read_barrier(&state, query.consistency, original).await {
        return response;
    }
    serve_versioned(&state.server, &key, query.revision, json)
}

/// `key` at `revision` (else the current state): the value's bytes with the revision headers,
/// or with `json` a [`KeyValueResponse`]; 404 when absent, 410 / 400 for a revision the store
/// cannot serve.
fn serve_versioned(server: &KvServer, key: &str, revision: Option<u64>, json: bool) -> Response {
    let (found, read_at) = {
        let state = server.state();
        let read_at = revision.unwrap_or_else(|| state.revision());
        (state.get_at(key, revision), read_at)
    };
    let found = match found {
        Ok(found) => found.filter(VersionedValue::exists),
        Err(error) => return revision_error(&error),
    };
    let status = match found {
        Some(_) => StatusCode::OK,
        None => StatusCode::NOT_FOUND,
    };
    if json {
        let body = KeyValueResponse {
            kv: found.as_ref().map(|value| versioned_key_value(key, value)),
            revision: read_at,
        };
        return with_revision(read_at, (status, Json(body)));
    }
    let Some(value) = found else {
        return with_revision(
            read_at,
            ApiError::new(StatusCode::NOT_FOUND, format!("key `{key}` not found")),
        );
    };
    let headers = [
        (CREATE_REVISION_HEADER, value.create_revision),
        (MOD_REVISION_HEADER, value.mod_revision),
        (VERSION_HEADER, value.version),
    ]
    .map(|(name, number)| (name, HeaderValue::from(number)));
    with_revision(
        read_at,
        (
            headers,
            [("content-type", "application/octet-stream")],
            Body::from(value.value),
        ),
    )
}

fn serve_value(server: &KvServer, key: &str) -> Response {
    serve_versioned(server, key, None, false)
}

#[derive(Debug, Deserialize)]
pub(super) struct ScanQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    #[serde(default)]
    consistency: Consistency,
    /// Scan at this past revision.
    revision: Option<u64>,
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
    if let Err(error) = check_revision(query.revision) {
        return error.into_response();
    }
    if let Err(response) = read_barrier(&state, query.consistency, original).await {
        return response;
    }
    let (scanned, read_at) = {
        let state = state.server.state();
        let read_at = query.revision.unwrap_or_else(|| state.revision());
        (state.scan_at(&query.prefix, limit, query.revision), read_at)
    };
    let (pairs, truncated) = match scanned {
        Ok(scanned) => scanned,
        Err(error) => return revision_error(&error),
    };
    let items = pairs
        .into_iter()
        .map(|(key, version)| {
            let (value, value_base64) = value_fields(&version.value);
            KeyValue {
                key,
                value,
                value_base64,
                create_revision: version.create_revision,
                mod_revision: version.mod_revision,
                version: version.version,
            }
        })
        .collect();
    with_revision(
        read_at,
        Json(ScanResponse {
            items,
            truncated,
            revision: read_at,
        }),
    )
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
    let answer = match write(
        &state,
        original,
        Operation::Put {
            key,
            value,
            lease: 0,
        },
    )
    .await
    {
        Ok(result) => put_answer(&result),
        Err(response) => response,
    };
    state.naming_leader(answer)
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
