//! The one middleware around every route: the access guard, then the route's timing.
//!
//! ```text
//!  request ─► RouteLayer of route R (its pattern, or `unmatched`): the clock starts
//!               ├─ with --auth-tokens, the policy refuses ─► 401 / 403 (counted by reason)
//!               └─ admitted (or no policy) ─────────────► R's handler
//!             answer ─► its time, under R, the method and the status
//!                       └─ a client's read or write of keys (not forwarded by a node) ─► its
//!                          time, in the dashboard's key_reads / key_writes
//! ```
//!
//! A layer around each route knows the route's pattern: cheaper than `middleware::from_fn`,
//! which boxes and clones the route's service on every request, and than looking the matched
//! path up. Refusals are timed and counted like every other answer. Labels are static, so a
//! request costs no allocation for its metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use raftkv_client::api::FORWARDED_HEADER;

use crate::auth::AccessPolicy;
use crate::metrics::{Metrics, RefusalLabels, RequestLabels};

/// Guards and times one route.
#[derive(Clone)]
pub(super) struct RouteLayer {
    /// The route pattern (or `unmatched`): the policy's key and the metrics' route label.
    route: &'static str,
    /// Who may call the route; `None`: anyone may.
    access: Option<Arc<AccessPolicy>>,
    metrics: Arc<Metrics>,
}

impl RouteLayer {
    /// The layer of `route`, under `access` when given, recording into `metrics`.
    pub(super) fn new(
        route: &'static str,
        access: Option<Arc<AccessPolicy>>,
        metrics: Arc<Metrics>,
    ) -> RouteLayer {
        RouteLayer {
            route,
            access,
            metrics,
        }
    }
}

impl<S> tower_layer::Layer<S> for RouteLayer {
    type Service = GuardedRoute<S>;

    fn layer(&self, inner: S) -> GuardedRoute<S> {
        GuardedRoute {
            inner,
            layer: self.clone(),
        }
    }
}

/// A route's service, behind its guard and timed.
#[derive(Clone)]
pub(super) struct GuardedRoute<S> {
    inner: S,
    layer: RouteLayer,
}

impl<S> tower_service::Service<Request> for GuardedRoute<S>
where
    S: tower_service::Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimedAnswer<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> TimedAnswer<S::Future> {
        let started = Instant::now();
        let layer = &self.layer;
        let method = method_label(request.method());
        // A request a node forwarded was timed where the client sent it; counted once.
        let key_access = match request.headers().contains_key(FORWARDED_HEADER) {
            true => None,
            false => key_access(layer.route, request.method()),
        };
        let refusal = layer.access.as_ref().and_then(|policy| {
            policy
                .check(layer.route, request.method(), request.headers())
                .err()
        });
        let answer = match refusal {
            None => Answer::Admitted(self.inner.call(request), key_access),
            Some(refusal) => {
                layer
                    .metrics
                    .auth_refusals
                    .get_or_create(&RefusalLabels {
                        reason: refusal.label(),
                    })
                    .inc();
                Answer::Refused(Some(refusal.into_response()))
            }
        };
        TimedAnswer {
            answer,
            started,
            route: layer.route,
            method,
            metrics: Arc::clone(&layer.metrics),
        }
    }
}

/// The answer of a [`GuardedRoute`], recorded when it is ready.
pub(super) struct TimedAnswer<F> {
    answer: Answer<F>,
    started: Instant,
    route: &'static str,
    method: &'static str,
    metrics: Arc<Metrics>,
}

/// The route's answer, or the guard's.
enum Answer<F> {
    /// The request went on to the route; a client's read or write of keys says which.
    Admitted(F, Option<KeyAccess>),
    /// The refusal, until it is taken.
    Refused(Option<Response>),
}

impl<F, E> Future for TimedAnswer<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut key_access = None;
        let result = match &mut this.answer {
            Answer::Admitted(inner, access) => {
                let result = std::task::ready!(Pin::new(inner).poll(context));
                key_access = *access;
                result
            }
            Answer::Refused(response) => match response.take() {
                Some(response) => Ok(response),
                // Polled again after it answered: a caller's bug, answered harmlessly.
                None => Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            },
        };
        if let Ok(response) = &result {
            let elapsed = this.started.elapsed();
            match key_access {
                Some(KeyAccess::Read) => this.metrics.key_reads.record(elapsed),
                Some(KeyAccess::Write) => this.metrics.key_writes.record(elapsed),
                None => {}
            }
            this.metrics
                .requests
                .get_or_create(&RequestLabels {
                    route: this.route,
                    method: this.method,
                    status: response.status().as_u16(),
                })
                .observe(elapsed.as_secs_f64());
        }
        Poll::Ready(result)
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

/// Whether a request reads or writes keys, for the dashboard's throughput and latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyAccess {
    /// A get or a scan.
    Read,
    /// A put, delete, append, compare-and-swap or transaction.
    Write,
}

/// Whether a request to `route` with `method` reads or writes keys; `None` for the others
/// (status, membership, leases, watches...).
fn key_access(route: &str, method: &Method) -> Option<KeyAccess> {
    let read = *method == Method::GET || *method == Method::HEAD;
    match route {
        "/v1/kv" | "/v1/kv/{key}" | "/get" if read => Some(KeyAccess::Read),
        "/v1/kv/{key}" if *method == Method::PUT || *method == Method::DELETE => {
            Some(KeyAccess::Write)
        }
        "/v1/kv/{key}/append" | "/v1/kv/{key}/cas" | "/v1/txn" if *method == Method::POST => {
            Some(KeyAccess::Write)
        }
        "/set" if read => Some(KeyAccess::Write),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_of_keys_are_told_apart_and_other_routes_are_neither() {
        let cases = [
            ("/v1/kv/{key}", Method::GET, Some(KeyAccess::Read)),
            ("/v1/kv", Method::GET, Some(KeyAccess::Read)),
            ("/get", Method::GET, Some(KeyAccess::Read)),
            ("/v1/kv/{key}", Method::PUT, Some(KeyAccess::Write)),
            ("/v1/kv/{key}", Method::DELETE, Some(KeyAccess::Write)),
            ("/v1/kv/{key}/cas", Method::POST, Some(KeyAccess::Write)),
            ("/v1/kv/{key}/append", Method::POST, Some(KeyAccess::Write)),
            ("/v1/txn", Method::POST, Some(KeyAccess::Write)),
            ("/set", Method::GET, Some(KeyAccess::Write)),
            ("/v1/status", Method::GET, None),
            ("/v1/watch", Method::GET, None),
            ("/v1/leader/transfer", Method::POST, None),
            ("/v1/kv/{key}", Method::POST, None),
        ];
        for (route, method, access) in cases {
            assert_eq!(key_access(route, &method), access, "{method} {route}");
        }
    }
}
