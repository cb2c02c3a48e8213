//! `GET` and `PUT /v1/log-level`: this node's log filter, read and changed while it runs
//! (routes and bodies in [`raftkv_client::api::log_level`]). Admin tokens only (the access
//! guard's default for a route it does not name): a filter at `trace` can flood the disk.
//!
//! ```text
//!  GET ─► the filter in force ─► 200 LogLevelResponse
//!  PUT body (text) ─► parsed: bad ─► 400 with the parse error, the filter in force stays
//!                            good ─► in force for every event from now on ─► 200 (the new one)
//! ```
//!
//! Never forwarded: the filter is this node's own. A process whose log is not
//! [`crate::logging`]'s (a server run inside a test) answers 501.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftkv_client::api::LogLevelResponse;

use super::error::ApiError;
use super::request::Original;
use crate::logging::{self, LogFilterError};

pub(super) async fn get_log_level() -> Response {
    answer(logging::current_filter())
}

pub(super) async fn set_log_level(original: Original) -> Response {
    let Ok(text) = std::str::from_utf8(&original.body) else {
        return ApiError::bad_request("the body must be a filter in UTF-8 text").into_response();
    };
    let answer = answer(logging::set_filter(text));
    if answer.status().is_success() {
        // At WARN, so that the change shows in the log even under the filter it set.
        tracing::warn!(filter = text.trim(), "log filter changed at run time");
    }
    answer
}

fn answer(result: Result<String, LogFilterError>) -> Response {
    match result {
        Ok(filter) => Json(LogLevelResponse { filter }).into_response(),
        Err(error @ LogFilterError::Invalid(_)) => {
            ApiError::bad_request(error.to_string()).into_response()
        }
        Err(error @ LogFilterError::NotInstalled) => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, error.to_string()).into_response()
        }
    }
}
