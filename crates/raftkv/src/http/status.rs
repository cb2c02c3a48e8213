//! What a node tells about itself: `/v1/status` (its role, term, indexes, members and
//! followers' progress) and `/metrics` (OpenMetrics text).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{ProgressState, RecoveryPhase};
use raftkv_client::api::{FollowerStatus, RecoveryStatus, StatusResponse};

use super::error::ApiError;
use super::AppState;
use crate::server::KvServer;

pub(super) async fn status(State(state): State<AppState>) -> Response {
    let server = &state.server;
    let status = match server.node().status().await {
        Ok(status) => status,
        Err(error) => return ApiError::from_serve(error.into(), server).into_response(),
    };
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
    Json(StatusResponse {
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
    })
    .into_response()
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
