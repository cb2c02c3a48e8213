//! Errors as answers: [`ApiError`] (a status and a JSON [`ErrorResponse`]; a 503 carries
//! Retry-After and names the leader to go to), [`status_of`] (the status of each
//! [`ServeError`]), and [`Api`], which answers axum's own extractor rejections the same way.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raft_core::{ConfChangeError, NodeId};
use raftkv_client::api::ErrorResponse;

use crate::server::{membership_refusal_is_transient, KvServer, ServeError};

/// An error answer: status, JSON body, and for 503 a Retry-After.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: ErrorResponse,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorResponse {
                error: error.into(),
                leader: None,
                leader_http: None,
            },
        }
    }

    pub(super) fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub(super) fn unavailable(error: impl Into<String>, server: &KvServer) -> ApiError {
        ApiError::unavailable_naming(error, server.node().metrics().leader, server)
    }

    /// A 503 naming `leader` (and its HTTP address, when known), for the client to go to.
    fn unavailable_naming(
        error: impl Into<String>,
        leader: Option<NodeId>,
        server: &KvServer,
    ) -> ApiError {
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error);
        if let Some(leader) = leader {
            error.body.leader = Some(leader.0);
            error.body.leader_http = server.http_address_of(leader);
        }
        error
    }

    /// The answer to `error`: its status ([`status_of`]), its message, and for a 503 the
    /// leader to go to.
    pub(super) fn from_serve(error: ServeError, server: &KvServer) -> ApiError {
        match status_of(&error) {
            StatusCode::SERVICE_UNAVAILABLE => match error {
                ServeError::NotLeader { leader } => ApiError::unavailable_naming(
                    format!("{error}, and the request was forwarded here already; retry"),
                    Some(leader),
                    server,
                ),
                transient => ApiError::unavailable(transient.to_string(), server),
            },
            status => ApiError::new(status, error.to_string()),
        }
    }
}

/// The HTTP status of `error`: 503 (with Retry-After) for every transient condition
/// ([`ServeError::is_transient`]), since a client must retry those and never give up on them;
/// 413 for a command too large; 409 for a request that conflicts with the cluster as it is (a
/// membership change refused for good, a transfer to a node that is not a voter); 400 for a
/// request that can never be right (node id 0); 500 for a refusal of the node this service
/// does not expect.
pub(super) fn status_of(error: &ServeError) -> StatusCode {
    match error {
        ServeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ServeError::NotVoter(_) => StatusCode::CONFLICT,
        ServeError::Membership(ConfChangeError::InvalidNode) => StatusCode::BAD_REQUEST,
        ServeError::Membership(refusal) if !membership_refusal_is_transient(refusal) => {
            StatusCode::CONFLICT
        }
        ServeError::Node(refusal) if !refusal.is_retryable() => StatusCode::INTERNAL_SERVER_ERROR,
        transient => {
            assert!(
                transient.is_transient(),
                "invariant every-permanent-error-has-its-status: {transient:?}"
            );
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (self.status, Json(self.body)).into_response();
        if retry {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

/// An axum extractor (`Path`, `Query`) whose rejection (a segment that is not UTF-8 once
/// decoded, an id that is not a number, a malformed query) is answered as JSON, like every
/// other error.
pub(super) struct Api<E>(pub(super) E);

/// What the wrapped extractors' rejections tell.
pub(super) trait Rejection {
    fn status(&self) -> StatusCode;
    fn body_text(&self) -> String;
}

impl Rejection for axum::extract::rejection::PathRejection {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn body_text(&self) -> String {
        self.body_text()
    }
}

impl Rejection for axum::extract::rejection::QueryRejection {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn body_text(&self) -> String {
        self.body_text()
    }
}

impl<E, S> axum::extract::FromRequestParts<S> for Api<E>
where
    E: axum::extract::FromRequestParts<S>,
    E::Rejection: Rejection,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Api<E>, Response> {
        E::from_request_parts(parts, state)
            .await
            .map(Api)
            .map_err(|rejection| {
                ApiError::new(rejection.status(), rejection.body_text()).into_response()
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use raft_core::Index;
    use raft_node::{NodeError, StopReason};

    use super::*;

    /// Issue 23: a write refused during a leadership transfer was a 400, which every client
    /// takes as final. Every transient condition is a 503 (with Retry-After) now, and nothing
    /// else is.
    #[test]
    fn every_transient_error_is_a_503_and_every_other_has_its_own_status() {
        let node = NodeId(2);
        let cases = [
            (ServeError::NotLeader { leader: node }, 503),
            (ServeError::NoLeader, 503),
            (ServeError::TransferInProgress, 503),
            (ServeError::LessorNotPromoted, 503),
            (ServeError::Busy, 503),
            (ServeError::ReadNotConfirmed, 503),
            (
                ServeError::ApplyBehind {
                    index: 9,
                    within: Duration::from_secs(1),
                },
                503,
            ),
            (ServeError::NotCommitted, 503),
            (ServeError::ReplacedBySnapshot, 503),
            (ServeError::ForwardUnanswered, 503),
            (
                ServeError::TimedOut {
                    within: Duration::from_secs(1),
                },
                503,
            ),
            (ServeError::Stopped(StopReason::Shutdown), 503),
            (ServeError::ApplyLoopEnded, 503),
            (ServeError::Membership(ConfChangeError::InProgress), 503),
            (
                ServeError::Membership(ConfChangeError::TransferInProgress),
                503,
            ),
            (
                ServeError::Membership(ConfChangeError::NotCaughtUp {
                    match_index: Index(1),
                    last_index: Index(90),
                }),
                503,
            ),
            (
                ServeError::Membership(ConfChangeError::NotLeader { leader: None }),
                503,
            ),
            (
                ServeError::Membership(ConfChangeError::TooFewActiveVoters {
                    active: 2,
                    needed: 3,
                }),
                503,
            ),
            (ServeError::TooLarge { size: 9, limit: 8 }, 413),
            (ServeError::NotVoter(node), 409),
            (
                ServeError::Membership(ConfChangeError::AlreadyMember(node)),
                409,
            ),
            (
                ServeError::Membership(ConfChangeError::AlreadyVoter(node)),
                409,
            ),
            (
                ServeError::Membership(ConfChangeError::NotMember(node)),
                409,
            ),
            (
                ServeError::Membership(ConfChangeError::LastVoter(node)),
                409,
            ),
            (ServeError::Membership(ConfChangeError::InvalidNode), 400),
            (
                ServeError::Node(NodeError::Compact(raft_core::CompactError::NotApplied {
                    index: Index(2),
                    applied: Index(1),
                })),
                503,
            ),
            (
                ServeError::Node(NodeError::Compact(
                    raft_core::CompactError::AlreadyCompacted {
                        index: Index(1),
                        snapshot: Index(2),
                    },
                )),
                500,
            ),
        ];
        for (error, expected) in cases {
            let status = status_of(&error);
            assert_eq!(status.as_u16(), expected, "{error:?}");
            assert_eq!(
                status == StatusCode::SERVICE_UNAVAILABLE,
                error.is_transient(),
                "{error:?}"
            );
        }
        // The node's typed errors keep their meaning on the way.
        let transfer = ServeError::from(NodeError::TransferInProgress);
        assert!(matches!(transfer, ServeError::TransferInProgress));
        let not_leader = ServeError::from(NodeError::NotLeader {
            leader: Some(node),
            address: None,
        });
        assert!(matches!(not_leader, ServeError::NotLeader { leader } if leader == node));
        let too_large = ServeError::from(NodeError::TooLarge { size: 9, limit: 8 });
        assert_eq!(status_of(&too_large), StatusCode::PAYLOAD_TOO_LARGE);
        let response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "x").into_response();
        assert!(response.headers().contains_key("retry-after"));
    }
}
