//! What a node tells about itself: `/v1/status` (its role, term, indexes, members and
//! followers' progress; with `?load=true` also what it served and its fsyncs, for the
//! dashboard) and `/metrics` (OpenMetrics text).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{ProgressState, RecoveryPhase};
use raft_wal::HistogramSnapshot;
use raftkv_client::api::{
    FollowerStatus, LatencyBuckets, NodeLoad, RecoveryStatus, StatusResponse,
};
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::server::{KvServer, ServeError};

/// The query of `GET /v1/status`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct StatusQuery {
    /// Add [`NodeLoad`] to the answer.
    #[serde(default)]
    load: bool,
}

pub(super) async fn status(
    State(state): State<AppState>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    match local_status(&state, query.load).await {
        Ok(status) => Json(status).into_response(),
        Err(error) => ApiError::from_serve(error, &state.server).into_response(),
    }
}

/// This node's status, as `GET /v1/status` answers it (with its load when `load`).
pub(super) async fn local_status(
    state: &AppState,
    load: bool,
) -> Result<StatusResponse, ServeError> {
    let server = &state.server;
    let status = server.node().status().await?;
    let followers = status
        .peers
        .iter()
        .map(|peer| FollowerStatus {
            id: peer.id.0,
            match_index: peer.match_index.0,
            next_index: peer.next_index.0,
            state: match peer.state {
                ProgressState::Probe => "probe",
                ProgressState::Replicate => "replicate",
                ProgressState::Snapshot(_) => "snapshot",
            }
            .to_string(),
        })
        .collect();
    let (applied_index, keys) = {
        let kv = server.state();
        (kv.applied_index(), kv.keys() as u64)
    };
    Ok(StatusResponse {
        id: status.id.0,
        role: KvServer::role_name(status.role).to_string(),
        term: status.term.0,
        leader: status.leader.map(|leader| leader.0),
        leader_http: status
            .leader
            .and_then(|leader| server.http_address_of(leader)),
        commit_index: status.commit.0,
        applied_index,
        last_log_index: status.last_index.0,
        snapshot_index: status.snapshot_index.0,
        members: status
            .configuration
            .members()
            .map(|member| member.0)
            .collect(),
        followers,
        keys,
        http_address: server.config().http_addr.to_string(),
        recovery: status.recovery.map(recovery_status),
        load: load.then(|| NodeLoad {
            read_latency: latency_buckets(&state.metrics.key_reads.snapshot()),
            write_latency: latency_buckets(&state.metrics.key_writes.snapshot()),
            wal_fsync: latency_buckets(&server.wal_sync_latency()),
        }),
    })
}

/// `histogram` as the API gives it: its finite bounds in microseconds.
fn latency_buckets(histogram: &HistogramSnapshot) -> LatencyBuckets {
    let finite = histogram
        .bounds_seconds
        .iter()
        .take_while(|bound| bound.is_finite())
        .count();
    LatencyBuckets {
        bounds_micros: histogram.bounds_seconds[..finite]
            .iter()
            .map(|bound| (bound * 1e6).round() as u64)
            .collect(),
        cumulative_counts: histogram
            .cumulative_counts
            .iter()
            .take(finite)
            .copied()
            .collect(),
        count: histogram.count,
    }
}

/// A recovery as the status answer shows it (see docs/operations.md).
fn recovery_status(recovery: raft_core::RecoveryStatus) -> RecoveryStatus {
    RecoveryStatus {
        phase: match recovery.phase {
            RecoveryPhase::Probing => "probing",
            RecoveryPhase::CatchingUp => "catching-up",
        }
        .to_string(),
        answered: recovery.answered.iter().map(|id| id.0).collect(),
        awaiting: recovery.awaiting.iter().map(|id| id.0).collect(),
        term_floor: recovery.term_floor.0,
        log_floor_index: recovery.log_floor.index.0,
        log_floor_term: recovery.log_floor.term.0,
    }
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
