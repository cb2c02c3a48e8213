//! Reading a request: [`Original`] keeps what a handler and a forward to the leader need
//! (method, URI, headers, the body), the body read under three limits.
//!
//! ```text
//!  declared length over the body limit ─────────────────────────────► 413, no byte read
//!  the declared length (a chunked body: the limit) taken from the node's
//!  body budget (--http-body-bytes-in-flight-max) ── none left ──────► 503 + Retry-After
//!  the body read ── not complete within the read timeout ───────────► 408
//!                └─ longer than the limit after all ────────────────► 413
//! ```
//!
//! The budget's share is given back when the request is answered and every copy made to
//! forward it is gone.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use super::AppState;
use crate::limits::retry_later;

/// The parts of a request needed to forward it.
#[derive(Clone)]
pub(super) struct Original {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    /// The body's share of the body budget, given back when the request is answered (and
    /// every copy made to forward it is gone).
    pub(super) _body_budget: Option<Arc<BodyBudgetShare>>,
}

/// A request body's share of the node's body budget, shown in
/// `raftkv_http_request_body_bytes_held` until it is given back.
pub(super) struct BodyBudgetShare {
    permit: OwnedSemaphorePermit,
    held: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for BodyBudgetShare {
    fn drop(&mut self) {
        self.held.dec_by(self.permit.num_permits() as i64);
    }
}

/// No body budget left of the node's total (in bytes): answered 503 with Retry-After.
struct BudgetSpent(usize);

impl IntoResponse for BudgetSpent {
    fn into_response(self) -> Response {
        retry_later(format!(
            "this node holds its limit of {} bytes of request bodies; retry shortly",
            self.0
        ))
    }
}

impl AppState {
    /// Takes `bytes` of the body budget for one request (none for a request without a body),
    /// or says that they are not left.
    fn reserve_body(&self, bytes: usize) -> Result<Option<Arc<BodyBudgetShare>>, BudgetSpent> {
        if bytes == 0 {
            return Ok(None);
        }
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        let Ok(permit) = Arc::clone(&self.body_budget).try_acquire_many_owned(permits) else {
            self.metrics.http_request_bodies_shed.inc();
            return Err(BudgetSpent(self.body_budget_bytes));
        };
        let held = self.metrics.http_request_body_bytes_held.clone();
        held.inc_by(i64::from(permits));
        Ok(Some(Arc::new(BodyBudgetShare { permit, held })))
    }
}

impl axum::extract::FromRequest<AppState> for Original {
    type Rejection = Response;

    /// Takes the parts a forward needs; a body that cannot be read is answered with its status
    /// (413 when too large) as JSON.
    async fn from_request(request: Request, state: &AppState) -> Result<Original, Response> {
        let (parts, body) = request.into_parts();
        let body_too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} bytes",
                    state.body_bytes_max
                ),
            )
            .into_response()
        };
        // A declared length over the limit is refused before a byte of the body is read.
        let declared_length = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > state.body_bytes_max as u64) {
            return Err(body_too_large());
        }
        // The body is counted against the node's budget before a byte of it is read, so a
        // flood of large bodies is answered 503 instead of filling memory. A chunked body's
        // length is not known: it counts as the largest allowed. Without either header a
        // request has no body (HTTP/1.1).
        let chunked = parts
            .headers
            .contains_key(axum::http::header::TRANSFER_ENCODING);
        let reserved = match declared_length {
            Some(length) => length as usize,
            None if chunked => state.body_bytes_max,
            None => 0,
        };
        let body_budget = state
            .reserve_body(reserved)
            .map_err(IntoResponse::into_response)?;
        let reading = axum::body::to_bytes(body, state.body_bytes_max);
        let Ok(read) = tokio::time::timeout(state.body_read_timeout, reading).await else {
            // A body trickling in would hold a request slot for as long as it pleased.
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?}",
                    state.body_read_timeout
                ),
            )
            .into_response());
        };
        let body = read.map_err(|error| {
            let over_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if over_limit {
                body_too_large()
            } else {
                ApiError::bad_request(format!("cannot read the request body: {error}"))
                    .into_response()
            }
        })?;
        Ok(Original {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            _body_budget: body_budget,
        })
    }
}
