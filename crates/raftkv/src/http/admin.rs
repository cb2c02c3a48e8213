//! The cluster's administration routes: list, add, promote and remove members
//! (`/v1/members`), hand leadership over (`/v1/leader/transfer`), and the nodes' own
//! announcements of where they are reached (`/v1/internal/announce`).
//!
//! ```text
//!  add member:  id and Raft address checked (400) ─► its address written through the log
//!               (every node, and any later leader, must dial it) ─► AddLearner
//!  promote, remove, transfer ─► on the leader (forwarded there) ─► index and term, or 204
//!  announce:    a member's HTTP (and gRPC and Raft) address written through the log
//! ```

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{ConfChange, NodeId};
use raftkv_client::api::{
    AddMemberRequest, Member, MembersResponse, MembershipChangeResponse, TransferRequest,
};
use serde::Deserialize;

use super::error::{Api, ApiError};
use super::request::Original;
use super::write::write_on_leader;
use super::AppState;
use crate::server::ServeError;
use crate::store::Operation;

/// Runs `change` on the leader (forwarding if this node is not it).
async fn change_membership(state: &AppState, original: Original, change: ConfChange) -> Response {
    let server = &state.server;
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    match server.change_membership(change).await {
        Ok((index, term)) => Json(MembershipChangeResponse {
            index: index.0,
            term: term.0,
        })
        .into_response(),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            state.forward_to(original, Some(leader)).await
        }
        Err(error) => ApiError::from_serve(error, server).into_response(),
    }
}

pub(super) async fn list_members(State(state): State<AppState>) -> Response {
    let server = &state.server;
    let status = match server.node().status().await {
        Ok(status) => status,
        Err(error) => return ApiError::from_serve(error.into(), server).into_response(),
    };
    let configuration = &status.configuration;
    let members = configuration
        .members()
        .map(|id| {
            let role = if configuration.voters.contains(&id) {
                "voter"
            } else if configuration.outgoing.contains(&id) {
                "outgoing"
            } else {
                "learner"
            };
            let match_index = if id == status.id {
                (status.role == raft_core::Role::Leader).then_some(status.last_index.0)
            } else {
                status
                    .peers
                    .iter()
                    .find(|peer| peer.id == id)
                    .map(|peer| peer.match_index.0)
            };
            Member {
                id: id.0,
                role: role.to_string(),
                raft_address: server
                    .raft_address_of(id)
                    .map(|address| address.to_string()),
                http_address: server.http_address_of(id),
                match_index,
            }
        })
        .collect();
    Json(MembersResponse {
        members,
        joint: configuration.is_joint(),
        change_in_progress: status.configuration_change_in_progress,
        leader: status.leader.map(|leader| leader.0),
        cluster_id: Some(server.config().cluster_id.clone()),
    })
    .into_response()
}

pub(super) async fn add_member(State(state): State<AppState>, original: Original) -> Response {
    let request: AddMemberRequest = match serde_json::from_slice(&original.body) {
        Ok(request) => request,
        Err(error) => {
            return ApiError::bad_request(format!(
                "the body must be JSON {{\"id\": number, \"raft_address\": \"HOST:PORT\"}}: {error}"
            ))
            .into_response()
        }
    };
    if request.id == 0
        || request
            .raft_address
            .parse::<std::net::SocketAddr>()
            .is_err()
    {
        return ApiError::bad_request("id must be at least 1 and raft_address HOST:PORT")
            .into_response();
    }
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    // Every node (and any later leader) must be able to dial the newcomer: its address goes
    // through the log before it joins the configuration.
    let address = Operation::RaftAddress {
        node: request.id,
        raft_address: request.raft_address.clone(),
    };
    if let Err(response) = write_on_leader(&state, original.clone(), address).await {
        return response;
    }
    change_membership(&state, original, ConfChange::AddLearner(NodeId(request.id))).await
}

pub(super) async fn promote_member(
    State(state): State<AppState>,
    Api(Path(id)): Api<Path<u64>>,
    original: Original,
) -> Response {
    change_membership(&state, original, ConfChange::Promote(NodeId(id))).await
}

pub(super) async fn remove_member(
    State(state): State<AppState>,
    Api(Path(id)): Api<Path<u64>>,
    original: Original,
) -> Response {
    change_membership(&state, original, ConfChange::Remove(NodeId(id))).await
}

pub(super) async fn transfer_leader(State(state): State<AppState>, original: Original) -> Response {
    let server = &state.server;
    let request: TransferRequest = match serde_json::from_slice(&original.body) {
        Ok(request) => request,
        Err(error) => {
            return ApiError::bad_request(format!("the body must be JSON {{\"to\": id}}: {error}"))
                .into_response()
        }
    };
    if !state.serves_here(&original).await {
        return state.forward(original).await;
    }
    match server.transfer_leadership(NodeId(request.to)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            state.forward_to(original, Some(leader)).await
        }
        Err(error) => ApiError::from_serve(error, server).into_response(),
    }
}

/// Body of the internal announce route.
#[derive(Debug, serde::Serialize, Deserialize)]
pub(super) struct Announcement {
    /// The announcing node.
    pub(super) node: u64,
    /// Where its HTTP API is reached.
    pub(super) http_address: String,
    /// Where the others dial the node's Raft transport (absent from older nodes).
    #[serde(default)]
    pub(super) raft_address: Option<String>,
    /// Where its etcd gRPC API is reached; absent when it serves none (and from older nodes).
    #[serde(default)]
    pub(super) grpc_address: Option<String>,
}

pub(super) async fn announce(State(state): State<AppState>, original: Original) -> Response {
    let server = &state.server;
    let announcement = match serde_json::from_slice::<Announcement>(&original.body) {
        Ok(announcement) => announcement,
        Err(error) => {
            return ApiError::bad_request(format!("bad announcement: {error}")).into_response()
        }
    };
    // A node started with --peers, or one added at run time (its Raft address is in the log).
    let member = server
        .config()
        .peers
        .contains_key(&NodeId(announcement.node))
        || server.state().raft_address(announcement.node).is_some();
    if !member {
        return ApiError::bad_request("not a member").into_response();
    }
    if announcement
        .http_address
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        return ApiError::bad_request("http_address must be HOST:PORT").into_response();
    }
    if let Some(grpc_address) = &announcement.grpc_address {
        if grpc_address.parse::<std::net::SocketAddr>().is_err() {
            return ApiError::bad_request("grpc_address must be HOST:PORT").into_response();
        }
    }
    if let Some(raft_address) = &announcement.raft_address {
        if raft_address.parse::<std::net::SocketAddr>().is_err() {
            return ApiError::bad_request("raft_address must be HOST:PORT").into_response();
        }
        let operation = Operation::RaftAddress {
            node: announcement.node,
            raft_address: raft_address.clone(),
        };
        if let Err(response) = write_on_leader(&state, original.clone(), operation).await {
            return response;
        }
    }
    let operation = Operation::Announce {
        node: announcement.node,
        http_address: announcement.http_address,
        grpc_address: announcement.grpc_address,
    };
    match write_on_leader(&state, original, operation).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}
