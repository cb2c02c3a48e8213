//! The lease routes (bodies and codes in [`raftkv_client::api::lease`]): grant and revoke
//! (writes through the log), keepalive and time to live (the promoted leader's; forwarded
//! there), and the list of leases (a linearizable read on any node).
//!
//! ```text
//!  POST /v1/lease/grant     ─► TTL ≤ max (400), id valid (400) or picked ─► write LeaseGrant
//!  POST /v1/lease/revoke    ─► id valid (400) ─► write LeaseRevoke ─► 404 if missing
//!  POST /v1/lease/keepalive ─► ≤ 10,000 ids (400) ─► leader: KvServer::lease_keep_alive
//!  GET  /v1/lease/{id}      ─► leader: KvServer::lease_time_to_live ─► 404 if missing
//!  GET  /v1/leases          ─► read barrier (linearizable) ─► the store's ids
//!  LeaseRefused ─► 404 not found / 409 already exists / 400 invalid id (LeaseErrorResponse)
//! ```

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftkv_client::api::{
    LeaseErrorResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAlive,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseListResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, LEASE_KEEPALIVE_IDS_MAX,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{Api, ApiError};
use super::request::Original;
use super::write::{unexpected, write_on_leader};
use super::AppState;
use crate::server::{LeaseGrantError, ReadMode, ServeError, WriteResult};
use crate::store::{LeaseError, Operation, Outcome, LEASE_ID_MAX};

/// A lease error answer: `status` and a [`LeaseErrorResponse`].
fn lease_error(status: StatusCode, error: impl ToString, id: u64) -> Response {
    let body = LeaseErrorResponse {
        error: error.to_string(),
        id,
    };
    (status, Json(body)).into_response()
}

/// The answer to the store's refusal of a lease command, or of a put or transaction naming a
/// lease: 404 no such lease, 409 the id is taken, 400 the id is invalid.
pub(super) fn lease_refusal(error: &LeaseError) -> Response {
    match error {
        LeaseError::NotFound { id } => lease_error(StatusCode::NOT_FOUND, error, *id),
        LeaseError::AlreadyExists { id } => lease_error(StatusCode::CONFLICT, error, *id),
        LeaseError::InvalidId { id } => lease_error(StatusCode::BAD_REQUEST, error, *id),
    }
}

/// `id` as a lease id a request may name (1 ..= i64::MAX), or why not (answered 400 by
/// [`lease_refusal`]).
pub(super) fn check_lease_id(id: u64) -> Result<u64, LeaseError> {
    if id == 0 || id > LEASE_ID_MAX {
        return Err(LeaseError::InvalidId { id });
    }
    Ok(id)
}

fn json_body<T: DeserializeOwned>(original: &Original, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(&original.body)
        .map_err(|error| ApiError::bad_request(format!("the body must be JSON {shape}: {error}")))
}

/// The answer to a lease write: `answer_of` the outcome the route expects, a lease refusal
/// (404 / 409 / 400), or any other outcome as [`unexpected`].
fn lease_write_answer<T: IntoResponse>(
    written: Result<WriteResult, Response>,
    answer_of: impl FnOnce(&WriteResult) -> Option<T>,
) -> Response {
    let result = match written {
        Ok(result) => result,
        Err(response) => return response,
    };
    if let Some(answer) = answer_of(&result) {
        return answer.into_response();
    }
    match result.outcome {
        Outcome::LeaseRefused { error } => lease_refusal(&error),
        other => unexpected(other),
    }
}

pub(super) async fn grant(State(state): State<AppState>, original: Original) -> Response {
    let request: LeaseGrantRequest =
        match json_body(&original, "{\"ttl_seconds\": N, \"id\": N (optional)}") {
            Ok(request) => request,
            Err(error) => return error.into_response(),
        };
    // The node that proposes the grant picks its id (against its own store): a follower
    // forwards the request as it came.
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    let operation = match state
        .server
        .lease_grant_operation(request.ttl_seconds, request.id)
    {
        Ok(operation) => operation,
        Err(error @ LeaseGrantError::InvalidId { id }) => {
            return lease_error(StatusCode::BAD_REQUEST, error, id)
        }
        Err(error @ LeaseGrantError::TtlTooLong { .. }) => {
            return lease_error(StatusCode::BAD_REQUEST, error, request.id.unwrap_or(0))
        }
    };
    let answer = write_on_leader(&state, original, operation).await;
    lease_write_answer(answer, |result| match result.outcome {
        Outcome::LeaseGranted { id, ttl_seconds } => Some(Json(LeaseGrantResponse {
            id,
            ttl_seconds,
            revision: result.revision,
            index: result.index,
            term: result.term,
        })),
        _ => None,
    })
}

pub(super) async fn revoke(State(state): State<AppState>, original: Original) -> Response {
    let request: LeaseRevokeRequest = match json_body(&original, "{\"id\": N}") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let id = match check_lease_id(request.id) {
        Ok(id) => id,
        Err(error) => return lease_refusal(&error),
    };
    let operation = Operation::LeaseRevoke { id, expired: false };
    let answer = write_on_leader(&state, original, operation).await;
    lease_write_answer(answer, |result| match result.outcome {
        Outcome::LeaseRevoked {
            id, keys_deleted, ..
        } => Some(Json(LeaseRevokeResponse {
            id,
            keys_deleted,
            revision: result.revision,
            index: result.index,
            term: result.term,
        })),
        _ => None,
    })
}

pub(super) async fn keep_alive(State(state): State<AppState>, original: Original) -> Response {
    let request: LeaseKeepAliveRequest = match json_body(&original, "{\"ids\": [N, ...]}") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if request.ids.len() > LEASE_KEEPALIVE_IDS_MAX {
        return ApiError::bad_request(format!(
            "a keepalive names at most {LEASE_KEEPALIVE_IDS_MAX} leases, not {}",
            request.ids.len()
        ))
        .into_response();
    }
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    let server = &state.server;
    match server.lease_keep_alive(&request.ids).await {
        Ok((answers, revision)) => Json(LeaseKeepAliveResponse {
            leases: answers
                .into_iter()
                .map(|(id, ttl_seconds)| LeaseKeepAlive { id, ttl_seconds })
                .collect(),
            revision,
        })
        .into_response(),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            state.forward_to(original, Some(leader)).await
        }
        Err(error) => ApiError::from_serve(error, server).into_response(),
    }
}

/// Query of `GET /v1/lease/{id}`.
#[derive(Debug, Deserialize)]
pub(super) struct TimeToLiveQuery {
    /// List the lease's keys.
    #[serde(default)]
    keys: bool,
}

pub(super) async fn time_to_live(
    State(state): State<AppState>,
    Api(Path(id)): Api<Path<u64>>,
    Api(Query(query)): Api<Query<TimeToLiveQuery>>,
    original: Original,
) -> Response {
    let id = match check_lease_id(id) {
        Ok(id) => id,
        Err(error) => return lease_refusal(&error),
    };
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    let server = &state.server;
    match server.lease_time_to_live(id, query.keys).await {
        Ok(Some(lease)) => Json(LeaseTimeToLiveResponse {
            id: lease.id,
            granted_ttl_seconds: lease.granted_ttl_seconds,
            ttl_seconds: lease.ttl_seconds,
            keys: lease.keys,
            revision: lease.revision,
        })
        .into_response(),
        Ok(None) => lease_refusal(&LeaseError::NotFound { id }),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            state.forward_to(original, Some(leader)).await
        }
        Err(error) => ApiError::from_serve(error, server).into_response(),
    }
}

pub(super) async fn list(State(state): State<AppState>) -> Response {
    let server = &state.server;
    if let Err(error) = server.read_barrier(ReadMode::Linearizable).await {
        return ApiError::from_serve(error, server).into_response();
    }
    let (ids, revision) = {
        let store = server.state();
        (store.lease_ids(), store.revision())
    };
    Json(LeaseListResponse { ids, revision }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lease_refusal_has_its_status_and_names_the_lease() {
        let cases = [
            (LeaseError::NotFound { id: 7 }, StatusCode::NOT_FOUND),
            (LeaseError::AlreadyExists { id: 7 }, StatusCode::CONFLICT),
            (LeaseError::InvalidId { id: 7 }, StatusCode::BAD_REQUEST),
        ];
        for (error, status) in cases {
            assert_eq!(lease_refusal(&error).status(), status, "{error:?}");
        }
        assert!(check_lease_id(0).is_err());
        assert!(check_lease_id(LEASE_ID_MAX + 1).is_err());
        assert_eq!(check_lease_id(LEASE_ID_MAX).ok(), Some(LEASE_ID_MAX));
    }
}
