//! Revisions on the wire: a stored version as JSON ([`versioned_key_value`]), a value as text
//! or base64 ([`value_fields`]), and the answer to a revision the store cannot serve
//! ([`revision_error`]: 410 compacted, 400 future, with a [`RevisionErrorResponse`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use raftkv_client::api::{RevisionErrorResponse, VersionedKeyValue};

use crate::store::{RevisionError, VersionedValue};

/// A value as JSON carries it: `(Some(text), None)` when it is UTF-8, else
/// `(None, Some(base64))`.
pub(super) fn value_fields(value: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(value) {
        Ok(text) => (Some(text.to_owned()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(value)),
        ),
    }
}

/// `key` at the version `value` as JSON.
pub(super) fn versioned_key_value(key: &str, value: &VersionedValue) -> VersionedKeyValue {
    let (text, base64) = value_fields(&value.value);
    VersionedKeyValue {
        key: key.to_owned(),
        value: text,
        value_base64: base64,
        create_revision: value.create_revision,
        mod_revision: value.mod_revision,
        version: value.version,
        lease: value.lease,
    }
}

/// The status and body of a revision the store cannot serve: 410 Gone for a compacted one,
/// 400 for one in the future; both name the oldest revision still readable and the current.
pub(super) fn revision_error(error: &RevisionError) -> Response {
    let (status, compact_revision, revision) = match error {
        RevisionError::Compacted {
            compact_revision,
            current,
            ..
        } => (StatusCode::GONE, *compact_revision, *current),
        RevisionError::Future {
            compact_revision,
            current,
            ..
        } => (StatusCode::BAD_REQUEST, *compact_revision, *current),
    };
    let body = RevisionErrorResponse {
        error: error.to_string(),
        compact_revision,
        revision,
    };
    (status, Json(body)).into_response()
}
