//! The HTTP API (routes and bodies in [`raftkv_client::api`]) over a [`KvServer`].
//!
//! ```text
//!  request ─► metrics middleware ─► access guard (401 / 403, with --auth-tokens)
//!          ─► handler: validate (400 / 413) ─► leader? ── yes ─► KvServer ─► answer, or
//!                                                 │                 ServeError ─► status_of
//!                                                 │ no (writes, lease reads, membership)
//!                                                 └─► forward to the leader's HTTP address
//!                                                     (header raftkv-forwarded), or 503 + Retry-After
//! ```
//!
//! Errors stay typed until the answer is made: [`ServeError`] says what happened, and
//! `status_of` picks the status. Every transient condition (no leader, a transfer, busy, a read
//! not confirmed, a write not committed or of unknown outcome, a membership change that must
//! wait) is 503 with Retry-After, which every client retries; 400 is kept for requests that can
//! never succeed, 409 for conflicts with the cluster's state, 413 for what is too large. During
//! a leadership transfer the server holds a request until the transfer ends rather than answer
//! 503 ([`KvServer::write`]); a request held by a leader that then handed over is forwarded
//! to the new leader, even when it was forwarded once already.
//!
//! A forwarded request carries the client's `Authorization` header as it came, and the
//! leader's guard checks it again; the node's own announcements carry the node's token
//! ([`crate::auth`]).
//!
//! Linearizable reads are served by whichever node is asked: it confirms the read index with
//! the leader over Raft and waits to apply through it, so no HTTP hop is needed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put, MethodRouter};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use raft_core::{ConfChange, ConfChangeError, NodeId, ProgressState};
use raftkv_client::api::{
    AddMemberRequest, AppendResponse, CasRequest, CasResponse, Consistency, DeleteResponse,
    ErrorResponse, FollowerStatus, KeyValue, Member, MembersResponse, MembershipChangeResponse,
    ScanResponse, StatusResponse, TransferRequest, WriteResponse, CLIENT_ID_HEADER,
    FORWARDED_HEADER, LEADER_HEADER, REQUEST_SEQ_HEADER,
};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{Access, AccessLayer, AccessPolicy};
use crate::limits::{request_body_bytes_max, retry_later, HttpLimits};
use crate::metrics::{Metrics, RequestLabels};
use crate::server::{
    membership_refusal_is_transient, AnnounceForwarder, KvServer, ReadMode, ServeError, WriteResult,
};
use crate::store::{ClientId, Operation, Outcome, Session};

/// Most keys one scan returns.
const SCAN_LIMIT_MAX: usize = 10_000;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    server: Arc<KvServer>,
    metrics: Arc<Metrics>,
    /// Behind an `Arc`: the state is cloned for every request, and a forwarder's HTTP client
    /// is several handles.
    forwarder: Arc<Forwarder>,
    /// Largest request body read; larger ones get 413 before they are buffered.
    body_bytes_max: usize,
    /// Longest wait for a request's body; a slower one gets 408.
    body_read_timeout: std::time::Duration,
    /// One permit per byte of request bodies that may be held at once; a request holds its
    /// declared length from before its body is read until it is answered.
    body_budget: Arc<Semaphore>,
    /// The permits `body_budget` started with.
    body_budget_bytes: usize,
    /// Who may do what; `None`: anyone may do anything.
    access: Option<Arc<AccessPolicy>>,
}

impl AppState {
    /// The state of the API of `server`.
    pub fn new(server: Arc<KvServer>) -> AppState {
        let metrics = Arc::new(Metrics::new(&server));
        let config = server.config();
        let body_bytes_max = request_body_bytes_max(config.key_bytes_max, config.value_bytes_max);
        let defaults = HttpLimits::default();
        let body_budget_bytes = defaults.body_bytes_in_flight_max.max(body_bytes_max);
        AppState {
            forwarder: Arc::new(Forwarder::new(config.request_timeout, server.tls())),
            body_bytes_max,
            body_read_timeout: defaults.request_read_timeout,
            body_budget: Arc::new(Semaphore::new(body_budget_bytes)),
            body_budget_bytes,
            access: None,
            server,
            metrics,
        }
    }

    /// The same state with `access` in force: its policy guards every route, and its node
    /// token goes with this node's own announcements.
    pub fn with_access(mut self, access: &Access) -> AppState {
        self.access = access.policy.clone();
        Arc::make_mut(&mut self.forwarder).node_authorization = access
            .node_token
            .as_ref()
            .map(crate::auth::BearerToken::authorization);
        self
    }

    /// The same state with the body read timeout and the body budget of `limits`.
    pub fn with_limits(mut self, limits: &HttpLimits) -> AppState {
        self.body_read_timeout = limits.request_read_timeout;
        self.body_budget_bytes = limits.body_bytes_in_flight_max;
        self.body_budget = Arc::new(Semaphore::new(limits.body_bytes_in_flight_max));
        self
    }

    /// The metrics the API records into, for the connection loop to add its own.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The forwarder, for the announce loop.
    pub fn forwarder(&self) -> Forwarder {
        Forwarder::clone(&self.forwarder)
    }
}

/// The metrics' label for `method`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The API's routes, each timed under its pattern (unmatched requests under `unmatched`).
pub fn router(state: AppState) -> Router {
    let routes: [(&'static str, MethodRouter<AppState>); 14] = [
        ("/v1/kv", get(scan)),
        ("/v1/kv/", get(empty_key).put(empty_key).delete(empty_key)),
        (
            "/v1/kv/{key}",
            put(put_value).get(get_value).delete(delete_value),
        ),
        ("/v1/kv/{key}/append", post(append_value)),
        ("/v1/kv/{key}/cas", post(compare_and_swap)),
        ("/v1/status", get(status)),
        ("/v1/members", get(list_members).post(add_member)),
        ("/v1/members/{id}", axum::routing::delete(remove_member)),
        ("/v1/members/{id}/promote", post(promote_member)),
        ("/v1/leader/transfer", post(transfer_leader)),
        ("/v1/internal/announce", post(announce)),
        ("/metrics", get(metrics)),
        ("/set", get(demo_set)),
        ("/get", get(demo_get)),
    ];
    let observe = |route: &'static str| ObserveLayer {
        route,
        metrics: Arc::clone(&state.metrics),
    };
    // Inside the metrics layer, so refusals are timed and counted like other answers.
    let guard = |route: &'static str, handlers: MethodRouter<AppState>| match &state.access {
        Some(policy) => handlers.layer(AccessLayer::new(
            route,
            Arc::clone(policy),
            Arc::clone(&state.metrics),
        )),
        None => handlers,
    };
    let fallback: MethodRouter<AppState> = guard("unmatched", any(not_found));
    let fallback: MethodRouter<()> = fallback
        .layer(observe("unmatched"))
        .with_state(state.clone());
    routes
        .into_iter()
        .fold(Router::new(), |router, (route, handlers)| {
            router.route(route, guard(route, handlers).layer(observe(route)))
        })
        .fallback_service(fallback)
        .layer(DefaultBodyLimit::max(state.body_bytes_max))
        .with_state(state)
}

/// An error answer: status, JSON body, and for 503 a Retry-After.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: ErrorResponse,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorResponse {
                error: error.into(),
                leader: None,
                leader_http: None,
            },
        }
    }

    fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    fn unavailable(error: impl Into<String>, server: &KvServer) -> ApiError {
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
    fn from_serve(error: ServeError, server: &KvServer) -> ApiError {
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
fn status_of(error: &ServeError) -> StatusCode {
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

/// Times every request by route, method and status: a layer around each route, which knows its
/// pattern (cheaper than `middleware::from_fn`, which boxes and clones the route's service on
/// every request, and than looking the matched path up).
#[derive(Clone)]
struct ObserveLayer {
    /// The route pattern, the metrics' route label.
    route: &'static str,
    metrics: Arc<Metrics>,
}

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            route: self.route,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// A route's service, timed.
#[derive(Clone)]
struct Observe<S> {
    inner: S,
    route: &'static str,
    metrics: Arc<Metrics>,
}

impl<S> tower_service::Service<Request> for Observe<S>
where
    S: tower_service::Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Observed<S::Future> {
        // Static labels: a request costs no allocation for its metrics.
        let route = self.route;
        let method = method_label(request.method());
        Observed {
            started: Instant::now(),
            route,
            method,
            metrics: Arc::clone(&self.metrics),
            inner: self.inner.call(request),
        }
    }
}

/// The answer of an [`Observe`]d route, recorded when it is ready.
struct Observed<F> {
    inner: F,
    started: Instant,
    route: &'static str,
    method: &'static str,
    metrics: Arc<Metrics>,
}

impl<F, E> std::future::Future for Observed<F>
where
    F: std::future::Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        let result = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll(context));
        if let Ok(response) = &result {
            this.metrics
                .requests
                .get_or_create(&RequestLabels {
                    route: this.route,
                    method: this.method,
                    status: response.status().as_u16(),
                })
                .observe(this.started.elapsed().as_secs_f64());
        }
        std::task::Poll::Ready(result)
    }
}

/// The parts of a request needed to forward it.
#[derive(Clone)]
struct Original {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// The body's share of the body budget, given back when the request is answered (and
    /// every copy made to forward it is gone).
    _body_budget: Option<Arc<BodyBudgetShare>>,
}

/// A request body's share of the node's body budget, shown in
/// `raftkv_http_request_body_bytes_held` until it is given back.
struct BodyBudgetShare {
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

fn check_key(key: &str, server: &KvServer) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("the key is empty"));
    }
    let limit = server.config().key_bytes_max;
    if key.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the key is {} bytes; at most {limit} are allowed",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn check_value(value: &[u8], server: &KvServer) -> Result<(), ApiError> {
    let limit = server.config().value_bytes_max;
    if value.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the value is {} bytes; at most {limit} are allowed",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// The session of a request: both headers or neither. `client-id` is any opaque id of 1 to
/// 128 visible ASCII characters ([`ClientId::parse`]); `request-seq` an unsigned integer from 1.
fn session(headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let client_id = headers
        .get(CLIENT_ID_HEADER)
        .map(|value| {
            // HTTP has already trimmed the value's ends.
            ClientId::parse(value.as_bytes()).map_err(|error| {
                ApiError::bad_request(format!("header {CLIENT_ID_HEADER}: {error}"))
            })
        })
        .transpose()?;
    let sequence = headers
        .get(REQUEST_SEQ_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|sequence| *sequence >= 1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "header {REQUEST_SEQ_HEADER} must be an unsigned integer, at least 1"
                    ))
                })
        })
        .transpose()?;
    match (client_id, sequence) {
        (Some(client_id), Some(sequence)) => Ok(Some(Session {
            client_id,
            sequence,
        })),
        (None, None) => Ok(None),
        _ => Err(ApiError::bad_request(format!(
            "{CLIENT_ID_HEADER} and {REQUEST_SEQ_HEADER} must be given together"
        ))),
    }
}

/// Runs a write here if this node leads, else forwards it to the leader.
async fn write(
    state: &AppState,
    original: Original,
    operation: Operation,
) -> Result<WriteResult, Response> {
    let server = &state.server;
    let session = session(&original.headers).map_err(IntoResponse::into_response)?;
    if !state.serves_here(&original).await {
        return Err(state.forward(original).await);
    }
    match server.write(session, operation).await {
        Ok(result) => Ok(result),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            Err(state.forward_to(original, Some(leader)).await)
        }
        Err(error) => Err(ApiError::from_serve(error, server).into_response()),
    }
}

/// A write outcome that is not the one the route expects: a stale session sequence, or the
/// cached outcome of a different request sent earlier under the same session sequence (the
/// state machine answers a repeated sequence with the first request's outcome, whatever the
/// repeat asks).
fn unexpected(outcome: Outcome) -> Response {
    match outcome {
        Outcome::StaleSequence { last } => ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "request-seq is older than this client's last request ({last}); its result is \
                 no longer kept"
            ),
        )
        .into_response(),
        Outcome::Rejected { reason } => ApiError::bad_request(reason).into_response(),
        // Found by fuzzing (fuzz/regressions/http_request/): this was a 500, which a client
        // retries under the same sequence forever.
        other => ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "request-seq was already used by a different request of this client; that \
                 request's outcome: {other:?}"
            ),
        )
        .into_response(),
    }
}

/// An axum extractor (`Path`, `Query`) whose rejection (a segment that is not UTF-8 once
/// decoded, an id that is not a number, a malformed query) is answered as JSON, like every
/// other error.
struct Api<E>(E);

/// What the wrapped extractors' rejections tell.
trait Rejection {
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

/// Most times a request is forwarded: once by the node it was sent to, once more by a leader
/// that lost leadership before it could serve it (a transfer), and no more, so a request makes
/// at most three hops whatever leadership does meanwhile.
const FORWARDS_MAX: usize = 2;

impl Original {
    /// Whether a node forwarded this request here.
    fn forwarded(&self) -> bool {
        self.headers.contains_key(FORWARDED_HEADER)
    }

    /// Whether this node may forward the request (again) to the leader: it was forwarded
    /// fewer than [`FORWARDS_MAX`] times. The forwarded header lists the forwarding nodes'
    /// ids, comma-separated; a value that is not such a list counts as the most.
    fn may_forward(&self) -> bool {
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

/// Validates `key` and the body (the value, for the routes that carry one), then writes the
/// operation `make` builds from them.
async fn keyed_write(
    state: &AppState,
    key: String,
    original: Original,
    make: impl FnOnce(String, Bytes) -> Operation,
) -> Result<WriteResult, Response> {
    let server = &state.server;
    check_key(&key, server)
        .and_then(|()| check_value(&original.body, server))
        .map_err(IntoResponse::into_response)?;
    let operation = make(key, original.body.clone());
    write(state, original, operation).await
}

async fn put_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    match keyed_write(&state, key, original, |key, value| Operation::Put {
        key,
        value,
    })
    .await
    {
        Ok(WriteResult {
            outcome: Outcome::Put,
            index,
            term,
        }) => Json(WriteResponse { index, term }).into_response(),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

async fn delete_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    match keyed_write(&state, key, original, |key, _| Operation::Delete { key }).await {
        Ok(WriteResult {
            outcome: Outcome::Deleted { existed },
            index,
            term,
        }) => Json(DeleteResponse {
            deleted: existed,
            index,
            term,
        })
        .into_response(),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

async fn append_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    let append = |key, suffix| Operation::Append { key, suffix };
    match keyed_write(&state, key, original, append).await {
        Ok(WriteResult {
            outcome: Outcome::Appended { length },
            index,
            term,
        }) => Json(AppendResponse {
            length,
            index,
            term,
        })
        .into_response(),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

async fn compare_and_swap(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    original: Original,
) -> Response {
    let server = &state.server;
    let parsed = check_key(&key, server).and_then(|()| {
        let request: CasRequest = serde_json::from_slice(&original.body).map_err(|error| {
            ApiError::bad_request(format!(
                "the body must be JSON {{\"expect\": string or null, \"value\": string}}: {error}"
            ))
        })?;
        check_value(request.value.as_bytes(), server)?;
        if let Some(expect) = &request.expect {
            check_value(expect.as_bytes(), server)?;
        }
        Ok(request)
    });
    let request = match parsed {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let operation = Operation::Cas {
        key,
        expect: request.expect.map(Bytes::from),
        value: Bytes::from(request.value),
    };
    match write(&state, original, operation).await {
        Ok(WriteResult {
            outcome: Outcome::Cas { swapped, current },
            index,
            term,
        }) => {
            let status = if swapped {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            let current = current.map(|value| String::from_utf8_lossy(&value).into_owned());
            (
                status,
                Json(CasResponse {
                    ok: swapped,
                    current,
                    index,
                    term,
                }),
            )
                .into_response()
        }
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    #[serde(default)]
    consistency: Consistency,
}

/// Confirms a read in `consistency` here, or forwards it to the leader (lease reads).
async fn read_barrier(
    state: &AppState,
    consistency: Consistency,
    original: Original,
) -> Result<(), Response> {
    let server = &state.server;
    let mode = match consistency {
        Consistency::Linearizable => ReadMode::Linearizable,
        Consistency::Lease => ReadMode::Lease,
        Consistency::Stale => ReadMode::Stale,
    };
    if mode == ReadMode::Lease && !state.serves_here(&original).await {
        return Err(state.forward(original).await);
    }
    match server.read_barrier(mode).await {
        Ok(()) => Ok(()),
        Err(ServeError::NotLeader { leader }) if original.may_forward() => {
            Err(state.forward_to(original, Some(leader)).await)
        }
        Err(error) => Err(ApiError::from_serve(error, server).into_response()),
    }
}

async fn get_value(
    State(state): State<AppState>,
    Api(Path(key)): Api<Path<String>>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
    original: Original,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::bad_request("consistency must be linearizable, lease or stale")
            .into_response();
    };
    if let Err(error) = check_key(&key, &state.server) {
        return error.into_response();
    }
    if let Err(response) = read_barrier(&state, query.consistency, original).await {
        return response;
    }
    serve_value(&state.server, &key)
}

fn serve_value(server: &KvServer, key: &str) -> Response {
    match server.state().get(key).cloned() {
        Some(value) => (
            [("content-type", "application/octet-stream")],
            Body::from(value),
        )
            .into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, format!("key `{key}` not found")).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
struct ScanQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    #[serde(default)]
    consistency: Consistency,
}

async fn scan(
    State(state): State<AppState>,
    query: Result<Query<ScanQuery>, axum::extract::rejection::QueryRejection>,
    original: Original,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > SCAN_LIMIT_MAX {
        return ApiError::bad_request(format!("limit must be between 1 and {SCAN_LIMIT_MAX}"))
            .into_response();
    }
    if let Err(response) = read_barrier(&state, query.consistency, original).await {
        return response;
    }
    let (pairs, truncated) = state.server.state().scan(&query.prefix, limit);
    let items = pairs
        .into_iter()
        .map(|(key, value)| match String::from_utf8(value.to_vec()) {
            Ok(text) => KeyValue {
                key,
                value: Some(text),
                value_base64: None,
            },
            Err(_) => KeyValue {
                key,
                value: None,
                value_base64: Some(base64::engine::general_purpose::STANDARD.encode(&value)),
            },
        })
        .collect();
    Json(ScanResponse { items, truncated }).into_response()
}

async fn status(State(state): State<AppState>) -> Response {
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
    })
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Body of the internal announce route.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Announcement {
    node: u64,
    http_address: String,
    /// Where the others dial the node's Raft transport (absent from older nodes).
    #[serde(default)]
    raft_address: Option<String>,
}

async fn announce(State(state): State<AppState>, original: Original) -> Response {
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
    if let Some(raft_address) = &announcement.raft_address {
        if raft_address.parse::<std::net::SocketAddr>().is_err() {
            return ApiError::bad_request("raft_address must be HOST:PORT").into_response();
        }
        let operation = Operation::RaftAddress {
            node: announcement.node,
            raft_address: raft_address.clone(),
        };
        if let Err(response) = write(&state, original.clone(), operation).await {
            return response;
        }
    }
    let operation = Operation::Announce {
        node: announcement.node,
        http_address: announcement.http_address,
    };
    match write(&state, original, operation).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct DemoQuery {
    key: Option<String>,
    value: Option<String>,
}

/// The original demo's `GET /set?key=K&value=V`.
async fn demo_set(
    State(state): State<AppState>,
    Api(Query(query)): Api<Query<DemoQuery>>,
    original: Original,
) -> Response {
    let (Some(key), Some(value)) = (query.key, query.value) else {
        return ApiError::bad_request("give key and value: /set?key=K&value=V").into_response();
    };
    let value = Bytes::from(value);
    if let Err(error) =
        check_key(&key, &state.server).and_then(|()| check_value(&value, &state.server))
    {
        return error.into_response();
    }
    match write(&state, original, Operation::Put { key, value }).await {
        Ok(WriteResult { index, term, .. }) => Json(WriteResponse { index, term }).into_response(),
        Err(response) => response,
    }
}

/// The original demo's `GET /get?key=K` (linearizable).
async fn demo_get(
    State(state): State<AppState>,
    Api(Query(query)): Api<Query<DemoQuery>>,
    original: Original,
) -> Response {
    let Some(key) = query.key else {
        return ApiError::bad_request("give a key: /get?key=K").into_response();
    };
    if let Err(error) = check_key(&key, &state.server) {
        return error.into_response();
    }
    if let Err(response) = read_barrier(&state, Consistency::Linearizable, original).await {
        return response;
    }
    serve_value(&state.server, &key)
}

async fn empty_key() -> Response {
    ApiError::bad_request("the key is empty").into_response()
}

async fn not_found(uri: Uri) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {}", uri.path())).into_response()
}

/// Sends requests on to the leader's HTTP API.
#[derive(Clone)]
pub struct Forwarder {
    client: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `https` when the nodes serve HTTPS (their published addresses carry no scheme).
    scheme: &'static str,
    timeout: std::time::Duration,
    /// `Bearer <node token>` for this node's own calls (announcements), when it has one.
    node_authorization: Option<HeaderValue>,
}

impl Forwarder {
    fn new(timeout: std::time::Duration, tls: &crate::tls::NodeTls) -> Forwarder {
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

    async fn send(
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

impl AppState {
    /// Whether this node serves `original` itself rather than forward it: it leads, or the
    /// request was forwarded here. A node that knows no leader while an election is under way
    /// waits for its end first ([`KvServer::leader_after_election`]): it may win it (the
    /// target of a transfer does).
    async fn serves_here(&self, original: &Original) -> bool {
        let server = &self.server;
        if original.forwarded() || server.is_leader() {
            return true;
        }
        if server.node().metrics().leader.is_some() {
            return false;
        }
        server.leader_after_election().await == Some(server.config().id)
    }

    /// Forwards `original` to the leader this node knows of, or answers 503 if it cannot.
    async fn forward(&self, original: Original) -> Response {
        self.forward_to(original, None).await
    }

    /// Forwards `original` to `leader`, or to the leader this node knows of (once it knows
    /// one, while an election is under way: [`KvServer::leader_after_election`]), or answers
    /// 503 if it cannot. The forwarded header gets this node's id added.
    async fn forward_to(&self, original: Original, leader: Option<NodeId>) -> Response {
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
    async fn announce(
        &self,
        leader_http: String,
        node: u64,
        http_address: String,
        raft_address: String,
    ) {
        let announcement = Announcement {
            node,
            http_address,
            raft_address: Some(raft_address),
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

async fn list_members(State(state): State<AppState>) -> Response {
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
    })
    .into_response()
}

async fn add_member(State(state): State<AppState>, original: Original) -> Response {
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
    if let Err(response) = write(&state, original.clone(), address).await {
        return response;
    }
    change_membership(&state, original, ConfChange::AddLearner(NodeId(request.id))).await
}

async fn promote_member(
    State(state): State<AppState>,
    Api(Path(id)): Api<Path<u64>>,
    original: Original,
) -> Response {
    change_membership(&state, original, ConfChange::Promote(NodeId(id))).await
}

async fn remove_member(
    State(state): State<AppState>,
    Api(Path(id)): Api<Path<u64>>,
    original: Original,
) -> Response {
    change_membership(&state, original, ConfChange::Remove(NodeId(id))).await
}

async fn transfer_leader(State(state): State<AppState>, original: Original) -> Response {
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

    #[test]
    fn a_client_id_is_any_short_visible_ascii_text_and_a_bad_one_is_told_the_rule() {
        let headers = |client_id: &str, sequence: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                CLIENT_ID_HEADER,
                HeaderValue::from_str(client_id).expect("a header value"),
            );
            headers.insert(
                REQUEST_SEQ_HEADER,
                HeaderValue::from_str(sequence).expect("a header value"),
            );
            headers
        };
        let uuid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let parsed = session(&headers(uuid, "4"))
            .expect("valid")
            .expect("a session");
        assert_eq!(parsed.client_id.to_string(), uuid);
        assert_eq!(parsed.sequence, 4);
        let numeric = session(&headers("77", "1"))
            .expect("valid")
            .expect("a session");
        assert_eq!(
            numeric.client_id,
            ClientId::number(77),
            "as older releases kept it"
        );
        for (client_id, sequence) in [
            ("two words", "1"),
            (&"x".repeat(129)[..], "1"),
            ("ok", "0"),
            ("ok", "-1"),
        ] {
            let refused = session(&headers(client_id, sequence)).expect_err("refused");
            assert_eq!(refused.status, StatusCode::BAD_REQUEST);
            assert!(
                refused.body.error.contains("visible ASCII")
                    || refused.body.error.contains("at least 1"),
                "{}",
                refused.body.error
            );
        }
        let mut alone = HeaderMap::new();
        alone.insert(CLIENT_ID_HEADER, HeaderValue::from_static("ok"));
        assert!(session(&alone).is_err(), "both headers or neither");
        assert!(matches!(session(&HeaderMap::new()), Ok(None)));
    }

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

    /// Found by fuzzing (fuzz/regressions/http_request/): a request-seq reused for a different
    /// request gets the first request's outcome, which the route cannot report; that is the
    /// client's conflict, not a server error a client would retry.
    #[test]
    fn an_outcome_of_another_request_under_the_same_sequence_is_a_conflict() {
        for outcome in [
            Outcome::Put,
            Outcome::Deleted { existed: true },
            Outcome::Appended { length: 3 },
            Outcome::Cas {
                swapped: true,
                current: None,
            },
            Outcome::Announced,
            Outcome::StaleSequence { last: 4 },
        ] {
            assert_eq!(
                unexpected(outcome.clone()).status(),
                StatusCode::CONFLICT,
                "{outcome:?}"
            );
        }
        let rejected = Outcome::Rejected {
            reason: "undecodable".into(),
        };
        assert_eq!(unexpected(rejected).status(), StatusCode::BAD_REQUEST);
    }
}
