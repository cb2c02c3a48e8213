//! Forwarding to the leader: whether this node serves a request itself, and the [`Forwarder`]
//! that sends it on to the leader's HTTP API (and carries this node's announcements).
//!
//! ```text
//!  request this node must not serve (it does not lead, and no node forwarded it here)
//!    ─► the leader it knows (after an election under way, if none) ─► its HTTP address
//!    ─► same method, path, body; client-id, request-seq, content-type, authorization as
//!       they came; raftkv-forwarded: the forwarding nodes' ids, this one's added
//!    ─► the leader's answer (raftkv-leader: its address), or 503 + Retry-After
//! ```
//!
//! A request is forwarded at most [`FORWARDS_MAX`] times, so it makes at most three hops
//! whatever leadership does meanwhile.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use raft_core::NodeId;
use raftkv_client::api::{CLIENT_ID_HEADER, FORWARDED_HEADER, LEADER_HEADER, REQUEST_SEQ_HEADER};

use super::admin::Announcement;
use super::error::ApiError;
use super::request::Original;
use super::AppState;
use crate::server::{AnnounceForwarder, AnnouncedAddresses};

/// Most times a request is forwarded: once by the node it was sent to, once more by a leader
/// that lost leadership before it could serve it (a transfer), and no more, so a request makes
/// at most three hops whatever leadership does meanwhile.
const FORWARDS_MAX: usize = 2;

impl Original {
    /// Whether a node forwarded this request here.
    pub(super) fn forwarded(&self) -> bool {
        self.headers.contains_key(FORWARDED_HEADER)
    }

    /// Whether this node may forward the request (again) to the leader: it was forwarded
    /// fewer than [`FORWARDS_MAX`] times. The forwarded header lists the forwarding nodes'
    /// ids, comma-separated; a value that is not such a list counts as the most.
    pub(super) fn may_forward(&self) -> bool {
        let Some(value) = self.headers.get(FORWARDED_HEADER) else {
            return true;
        };
        let forwards = value.to_str().ok().and_then(|list| {
            list.split(',')
                .map(|id| id.trim().parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()
        });
        forwards.is_some_and(|forwarders| forwarders.len() < FORWARDS_MAX)
    }
}

/// Sends requests on to the leader's HTTP API.
#[derive(Clone)]
pub struct Forwarder {
    client: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `https` when the nodes serve HTTPS (their published addresses carry no scheme).
    scheme: &'static str,
    timeout: std::time::Duration,
    /// `Bearer <node token>` for this node's own calls (announcements), when it has one.
    pub(super) node_authorization: Option<HeaderValue>,
}

impl Forwarder {
    pub(super) fn new(timeout: std::time::Duration, tls: &crate::tls::NodeTls) -> Forwarder {
        let connector = tls.connector();
        Forwarder {
            scheme: tls.scheme(),
            client: HttpClient::builder(TokioExecutor::new())
                // Below the nodes' idle timeout (60 s by default), so a pooled connection is
                // dropped here before the leader closes it under a request.
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .build(connector),
            timeout,
            node_authorization: None,
        }
    }

    /// Sends a request to the node whose HTTP API is at `leader_http` (the leader, for every
    /// caller but the consistency check's hash requests); its answer, or why there is none.
    pub(super) async fn send(
        &self,
        method: Method,
        leader_http: &str,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, String> {
        let url = format!("{}://{leader_http}{path}", self.scheme);
        let mut request = hyper::Request::builder().method(method).uri(&url);
        // The client's credentials go as they came: the leader checks them again.
        for name in [
            CLIENT_ID_HEADER,
            REQUEST_SEQ_HEADER,
            "content-type",
            "authorization",
            FORWARDED_HEADER,
        ] {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| format!("cannot build the request to {url}: {error}"))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| format!("the leader at {url} did not answer in {:?}", self.timeout))?
            .map_err(|error| format!("cannot reach the leader at {url}: {error}"))?;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(self.timeout, body.collect())
            .await
            .map_err(|_| format!("the leader at {url} did not finish its answer"))?
            .map_err(|error| format!("the leader's answer broke off: {error}"))?
            .to_bytes();
        let mut answer = Response::new(Body::from(body));
        *answer.status_mut() = parts.status;
        for name in ["content-type", "retry-after", "www-authenticate"] {
            if let Some(value) = parts.headers.get(name) {
                answer.headers_mut().insert(name, value.clone());
            }
        }
        if !parts.status.is_server_error() {
            if let Ok(leader) = HeaderValue::from_str(leader_http) {
                answer.headers_mut().insert(LEADER_HEADER, leader);
            }
        }
        Ok(answer)
    }
}

impl Forwarder {
    /// The body of `GET path` from the node at `http_address`, with this node's token when
    /// it has one, within `timeout`; an answer other than 200 is an error.
    pub(super) async fn fetch(
        &self,
        http_address: &str,
        path: &str,
        timeout: std::time::Duration,
    ) -> Result<Bytes, String> {
        let url = format!("{}://{http_address}{path}", self.scheme);
        let mut request = hyper::Request::builder().method(Method::GET).uri(&url);
        if let Some(authorization) = &self.node_authorization {
            request = request.header("authorization", authorization.clone());
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|error| format!("cannot build the request to {url}: {error}"))?;
        let answer = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| format!("cannot reach {http_address}: {error}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| format!("the answer of {http_address} broke off: {error}"))?
                .to_bytes();
            match status {
                hyper::StatusCode::OK => Ok(body),
                status => Err(format!("{http_address} answered {status}")),
            }
        };
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| format!("{http_address} did not answer in {timeout:?}"))?
    }
}

impl AppState {
    /// Whether this node serves `original` itself rather than forward it: it leads, or the
    /// request was forwarded here. A node that knows no leader while an election is under way
    /// waits for its end first ([`KvServer::leader_after_election`]): it may win it (the
    /// target of a transfer does).
    pub(super) async fn serves_here(&self, original: &Original) -> bool {
        let server = &self.server;
        if original.forwarded() || server.is_leader() {
            return true;
        }
        if server.node().metrics().leader.is_some() {
            return false;
        }
        server.leader_after_election().await == Some(server.config().id)
    }

    /// `response`, a write's answer this node made, as a follower gives it: with the leader's
    /// HTTP address in `raftkv-leader` (as an answer forwarded from the leader carries it), so
    /// that a client that follows the leader finds it. Left alone when this node leads, the
    /// answer already names a leader, or it is a server error (which names one in its body).
    pub(super) fn naming_leader(&self, mut response: Response) -> Response {
        let server = &self.server;
        if response.status().is_server_error()
            || response.headers().contains_key(LEADER_HEADER)
            || server.is_leader()
        {
            return response;
        }
        let address = server
            .node()
            .metrics()
            .leader
            .and_then(|leader| server.http_address_of(leader))
            .and_then(|address| HeaderValue::from_str(&address).ok());
        if let Some(address) = address {
            response.headers_mut().insert(LEADER_HEADER, address);
        }
        response
    }

    /// Forwards `original` to the leader this node knows of, or answers 503 if it cannot.
    pub(super) async fn forward(&self, original: Original) -> Response {
        self.forward_to(original, None).await
    }

    /// Forwards `original` to `leader`, or to the leader this node knows of (once it knows
    /// one, while an election is under way: [`KvServer::leader_after_election`]), or answers
    /// 503 if it cannot. The forwarded header gets this node's id added.
    pub(super) async fn forward_to(&self, original: Original, leader: Option<NodeId>) -> Response {
        let server = &self.server;
        let leader = match leader.or(server.node().metrics().leader) {
            Some(leader) => Some(leader),
            None => server.leader_after_election().await,
        };
        let Some(leader) = leader else {
            return ApiError::unavailable("no leader is known right now; retry shortly", server)
                .into_response();
        };
        if leader == server.config().id {
            // It won an election while the request waited; the client's retry finds it.
            return ApiError::unavailable(
                "this node became the leader while the request waited; retry",
                server,
            )
            .into_response();
        }
        let Some(address) = server.http_address_of(leader) else {
            return ApiError::unavailable(
                format!(
                    "the leader (node {}) has not published its HTTP address yet; retry",
                    leader.0
                ),
                server,
            )
            .into_response();
        };
        server
            .counters
            .forwarded_total
            .fetch_add(1, Ordering::Relaxed);
        let path = original
            .uri
            .path_and_query()
            .map_or("/", |path| path.as_str());
        let own = server.config().id.0;
        let forwarders = match original.headers.get(FORWARDED_HEADER) {
            Some(previous) => {
                let mut value = previous.as_bytes().to_vec();
                value.extend_from_slice(format!(",{own}").as_bytes());
                HeaderValue::from_bytes(&value).unwrap_or_else(|_| HeaderValue::from(own))
            }
            None => HeaderValue::from(own),
        };
        let mut headers = original.headers;
        headers.insert(FORWARDED_HEADER, forwarders);
        match self
            .forwarder
            .send(original.method, &address, path, headers, original.body)
            .await
        {
            Ok(response) => response,
            Err(reason) => ApiError::unavailable(reason, server).into_response(),
        }
    }
}

impl AnnounceForwarder for Forwarder {
    async fn announce(&self, leader_http: String, node: u64, addresses: AnnouncedAddresses) {
        let announcement = Announcement {
            node,
            http_address: addresses.http,
            raft_address: Some(addresses.raft),
            grpc_address: addresses.grpc,
        };
        let body = match serde_json::to_vec(&announcement) {
            Ok(body) => Bytes::from(body),
            Err(_) => return,
        };
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(FORWARDED_HEADER, HeaderValue::from(node));
        if let Some(authorization) = &self.node_authorization {
            headers.insert("authorization", authorization.clone());
        }
        if let Err(reason) = self
            .send(
                Method::POST,
                &leader_http,
                "/v1/internal/announce",
                headers,
                body,
            )
            .await
        {
            tracing::debug!(%reason, "announcing to the leader failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Uri;

    use super::*;

    #[test]
    fn a_request_is_forwarded_at_most_twice() {
        let original = |forwarded: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = forwarded {
                headers.insert(FORWARDED_HEADER, HeaderValue::from_static(value));
            }
            Original {
                method: Method::PUT,
                uri: Uri::from_static("/v1/kv/k"),
                headers,
                body: Bytes::new(),
                _body_budget: None,
            }
        };
        assert!(!original(None).forwarded());
        assert!(original(None).may_forward());
        assert!(original(Some("2")).forwarded());
        assert!(original(Some("2")).may_forward(), "a second hop is allowed");
        assert!(!original(Some("2,3")).may_forward());
        assert!(!original(Some("2,3,1")).may_forward());
        assert!(!original(Some("two")).may_forward(), "not a list: no hop");
    }
}
