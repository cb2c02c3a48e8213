//! `POST /v1/compact`: forget the history before a revision (routes and bodies in
//! [`raftkv_client::api::coordination`]).
//!
//! ```text
//!  JSON CompactRequest (revision ≥ 1; else 400) ─► write Compact through Raft (forwarded to
//!  the leader like any write) ─► Compacted ─► 200 CompactResponse
//!                                └ refused: after the current revision ─► 400 RevisionErrorResponse
//! ```
//!
//! The leader also compacts by itself as `--history-retention-revisions` and
//! `--history-retention` say (`crate::server`'s retention).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftkv_client::api::{CompactRequest, CompactResponse};

use super::error::ApiError;
use super::request::Original;
use super::revisions::revision_error;
use super::write::{unexpected, write};
use super::AppState;
use crate::server::WriteResult;
use crate::store::{Operation, Outcome};

pub(super) async fn compact(State(state): State<AppState>, original: Original) -> Response {
    let request: CompactRequest = match serde_json::from_slice(&original.body) {
        Ok(request) => request,
        Err(error) => {
            return ApiError::bad_request(format!(
                "the body must be JSON {{\"revision\": unsigned integer}}: {error}"
            ))
            .into_response()
        }
    };
    if request.revision == 0 {
        return ApiError::bad_request("revision must be at least 1").into_response();
    }
    let operation = Operation::Compact {
        revision: request.revision,
    };
    let answer = match write(&state, original, operation).await {
        Ok(WriteResult {
            outcome: Outcome::Compacted { compact_revision },
            index,
            term,
            revision,
        }) => Json(CompactResponse {
            compact_revision,
            revision,
            index,
            term,
        })
        .into_response(),
        Ok(WriteResult {
            outcome: Outcome::CompactRefused { error },
            ..
        }) => revision_error(&error),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    };
    state.naming_leader(answer)
}
