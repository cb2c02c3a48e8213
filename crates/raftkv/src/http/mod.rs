//! The HTTP API (routes and bodies in [`raftkv_client::api`]) over a [`KvServer`]: the router
//! and the state its handlers share.
//!
//! ```text
//!  request ─► middleware: access guard (401 / 403, with --auth-tokens), timed by route
//!          ─► request: the body read under its limits (413 / 408 / 503)
//!          ─► handler (kv, admin, status): validate (400 / 413) ─► leader? ── yes ─► KvServer
//!                                                                    │        ─► answer, or
//!                                                                    │  ServeError ─► status_of
//!                                                                    │ no (lease writes and reads,
//!                                                                    │     keepalives, lease
//!                                                                    │     TTLs, membership)
//!                                                                    └─► forward to the leader's
//!                                          HTTP address (header raftkv-forwarded), or 503 + Retry-After
//!          ─► store writes on any node: KvServer::write_on(AnyNode), a follower forwarding the
//!             proposal to the leader over Raft and answering once it applied it
//! ```
//!
//! One module per part: `middleware` (the access guard and the timing around every route),
//! `request` (reading a request's body under its limits), `error` (errors as answers, and
//! the status of each), `write` (a write through Raft, for every route that makes one),
//! `forward` (to the leader), and the routes by group: `kv` (keys, and the original demo's
//! `/set` and `/get`), `admin` (membership, leadership transfer, the nodes' announcements),
//! `status` (status and metrics), `txn` (transactions), `compact` (compaction of the history),
//! `watch` (watches as
//! Server-Sent Events), `ui` (the live dashboard and its feed), `revisions` (revisions and
//! their errors as JSON), `lease` (grant, revoke, keepalive, time to live and list of leases),
//! `snapshot` (the node's state as a backup file, admin only), `log_level` (this node's log
//! filter) and `consistency` (a node's hash of its state at an index, and the consistency
//! check comparing every member's).
//!
//! Errors stay typed until the answer is made: [`ServeError`](crate::server::ServeError) says
//! what happened, and `status_of` picks the status. Every transient condition (no leader, a
//! transfer, busy, a read not confirmed, a write not committed or of unknown outcome, a
//! membership change that must wait) is 503 with Retry-After, which every client retries; 400
//! is kept for requests that can never succeed, 409 for conflicts with the cluster's state, 413
//! for what is too large. During a leadership transfer the server holds a request until the
//! transfer ends rather than answer 503 ([`KvServer::write`]); a request held by a leader that
//! then handed over is forwarded to the new leader, even when it was forwarded once already.
//!
//! A forwarded request carries the client's `Authorization` header as it came, and the
//! leader's guard checks it again; the node's own announcements carry the node's token
//! ([`crate::auth`]).
//!
//! Linearizable reads are served by whichever node is asked: it confirms the read index with
//! the leader over Raft and waits to apply through it, so no HTTP hop is needed. Store writes
//! likewise: a follower forwards the proposal over Raft (`write`).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put, MethodRouter};
use axum::Router;
use tokio::sync::Semaphore;

use crate::auth::{Access, AccessPolicy};
use crate::limits::{request_body_bytes_max, HttpLimits};
use crate::metrics::Metrics;
use crate::server::KvServer;

mod admin;
mod compact;
mod consistency;
mod error;
mod forward;
mod kv;
mod lease;
mod log_level;
mod middleware;
mod request;
mod revisions;
mod snapshot;
mod status;
mod txn;
mod ui;
mod watch;
mod write;

pub use forward::Forwarder;

use error::ApiError;
use middleware::RouteLayer;

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
    /// The dashboard's live feed (`ui`).
    ui: Arc<ui::FeedHub>,
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
            ui: Arc::default(),
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

/// The API's routes, each behind the access guard (with `--auth-tokens`) and timed under its
/// pattern (unmatched requests under `unmatched`): see `middleware`.
pub fn router(state: AppState) -> Router {
    let routes: [(&'static str, MethodRouter<AppState>); 30] = [
        ("/v1/kv", get(kv::scan)),
        (
            "/v1/kv/",
            get(kv::empty_key).put(kv::empty_key).delete(kv::empty_key),
        ),
        (
            "/v1/kv/{key}",
            put(kv::put_value)
                .get(kv::get_value)
                .delete(kv::delete_value),
        ),
        ("/v1/kv/{key}/append", post(kv::append_value)),
        ("/v1/kv/{key}/cas", post(kv::compare_and_swap)),
        ("/v1/txn", post(txn::txn)),
        ("/v1/compact", post(compact::compact)),
        ("/v1/lease/grant", post(lease::grant)),
        ("/v1/lease/revoke", post(lease::revoke)),
        ("/v1/lease/keepalive", post(lease::keep_alive)),
        ("/v1/lease/{id}", get(lease::time_to_live)),
        ("/v1/leases", get(lease::list)),
        ("/v1/watch", get(watch::watch)),
        ("/v1/status", get(status::status)),
        (
            "/v1/members",
            get(admin::list_members).post(admin::add_member),
        ),
        ("/v1/members/{id}", delete(admin::remove_member)),
        ("/v1/members/{id}/promote", post(admin::promote_member)),
        ("/v1/leader/transfer", post(admin::transfer_leader)),
        ("/v1/internal/announce", post(admin::announce)),
        ("/v1/snapshot", get(snapshot::snapshot)),
        ("/v1/consistency/hash", get(consistency::state_hash)),
        ("/v1/consistency/check", post(consistency::check)),
        ("/metrics", get(status::metrics)),
        ("/set", get(kv::demo_set)),
        ("/get", get(kv::demo_get)),
        (
            "/v1/log-level",
            get(log_level::get_log_level).put(log_level::set_log_level),
        ),
        ("/ui", get(ui::page)),
        ("/ui/", get(ui::page)),
        ("/ui/{asset}", get(ui::asset)),
        ("/v1/ui/events", get(ui::events)),
    ];
    let guarded = |route: &'static str| {
        RouteLayer::new(route, state.access.clone(), Arc::clone(&state.metrics))
    };
    let fallback: MethodRouter<()> = any(not_found)
        .layer(guarded("unmatched"))
        .with_state(state.clone());
    routes
        .into_iter()
        .fold(Router::new(), |router, (route, handlers)| {
            router.route(route, handlers.layer(guarded(route)))
        })
        .fallback_service(fallback)
        .layer(DefaultBodyLimit::max(state.body_bytes_max))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {}", uri.path())).into_response()
}
