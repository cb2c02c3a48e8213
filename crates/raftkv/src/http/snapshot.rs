//! `GET /v1/snapshot` (admin): this node's state as a snapshot file (`crate::backup::file`),
//! for `raftkv snapshot save`.
//!
//! ```text
//!  KvServer::backup_snapshot (read barrier, image, encoded off the apply path)
//!    ─► 200 application/octet-stream, Content-Length: head (magic, header, CRC) then the body
//!       in chunks of CHUNK_BYTES, each a slice of the one encoded buffer (no copy)
//!    └ not current (no leader, read not confirmed) ─► 503 + Retry-After; encoding failed ─► 500
//! ```

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;
use super::AppState;
use crate::backup::file::encode_head;
use crate::server::BackupSnapshotError;

/// Bytes of the body handed to the connection at a time, so that a large state leaves in
/// pieces the connection's flow control paces rather than one write of the whole buffer.
const CHUNK_BYTES: usize = 1 << 20;

pub(super) async fn snapshot(State(state): State<AppState>) -> Response {
    let server = &state.server;
    let (header, body) = match server.backup_snapshot().await {
        Ok(snapshot) => snapshot,
        Err(BackupSnapshotError::NotCurrent(error)) => {
            return ApiError::from_serve(error, server).into_response()
        }
        Err(error @ BackupSnapshotError::EncodingFailed) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
                .into_response()
        }
    };
    let head = Bytes::from(encode_head(&header));
    let length = head.len() + body.len();
    let chunks = std::iter::once(head).chain(
        (0..body.len())
            .step_by(CHUNK_BYTES)
            .map(move |start| body.slice(start..body.len().min(start + CHUNK_BYTES))),
    );
    let stream = futures_util::stream::iter(chunks.map(Ok::<Bytes, Infallible>));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
