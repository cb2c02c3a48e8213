//! Who may call the etcd API: the HTTP API's bearer tokens and roles (`--auth-tokens`,
//! [`crate::auth`]), checked on every call before any service sees it.
//!
//! ```text
//!  call ─► /etcdserverpb.Auth/Authenticate, AuthStatus ─────────────────────────► served
//!    └─ token: etcd's `token` metadata, else `authorization: Bearer <token>`
//!         └─ the HTTP route of the same strength (gRPC method ─► route, method) ─► AccessPolicy::check
//!              ├─ missing, malformed, unknown ─► Unauthenticated "etcdserver: invalid auth token"
//!              ├─ role not enough             ─► PermissionDenied "etcdserver: permission denied"
//!              └─ admitted ─► the service
//! ```
//!
//! Each gRPC method is checked as the HTTP route that does the same thing, so one token has
//! one set of rights whichever API it is sent to: reads need `read-only`, writes and leases
//! `read-write`, compaction, membership changes and leadership transfer `admin`, and a method
//! not listed needs `admin` (a method added later fails closed). `Status` is open to anyone
//! when `/v1/status` is (`--public-status`).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{header, HeaderMap, HeaderValue, Method};
use futures_util::future::{BoxFuture, FutureExt};

use super::error;
use crate::auth::{AccessPolicy, Refusal};

/// The HTTP route and method a gRPC method (its path, `/package.Service/Method`) is checked as;
/// `None` for the calls anyone may make.
fn route_of(path: &str) -> Option<(&'static str, Method)> {
    let read = Method::GET;
    let write = Method::POST;
    Some(match path {
        "/etcdserverpb.Auth/Authenticate" | "/etcdserverpb.Auth/AuthStatus" => return None,
        "/etcdserverpb.KV/Range" => ("/v1/kv", read),
        "/etcdserverpb.KV/Put" | "/etcdserverpb.KV/DeleteRange" | "/etcdserverpb.KV/Txn" => {
            ("/v1/txn", write)
        }
        "/etcdserverpb.KV/Compact" => ("/v1/compact", write),
        "/etcdserverpb.Watch/Watch" => ("/v1/watch", read),
        "/etcdserverpb.Lease/LeaseGrant" => ("/v1/lease/grant", write),
        "/etcdserverpb.Lease/LeaseRevoke" => ("/v1/lease/revoke", write),
        "/etcdserverpb.Lease/LeaseKeepAlive" => ("/v1/lease/keepalive", write),
        "/etcdserverpb.Lease/LeaseTimeToLive" => ("/v1/lease/{id}", read),
        "/etcdserverpb.Lease/LeaseLeases" => ("/v1/leases", read),
        "/etcdserverpb.Cluster/MemberList" => ("/v1/members", read),
        "/etcdserverpb.Cluster/MemberAdd" | "/etcdserverpb.Cluster/MemberUpdate" => {
            ("/v1/members", write)
        }
        "/etcdserverpb.Cluster/MemberRemove" => ("/v1/members/{id}", Method::DELETE),
        "/etcdserverpb.Cluster/MemberPromote" => ("/v1/members/{id}/promote", write),
        "/etcdserverpb.Maintenance/Status" => ("/v1/status", read),
        // Reading the alarms (none) and the hashes tells no more than the status does, but
        // they are not part of what --public-status opens.
        "/etcdserverpb.Maintenance/Alarm"
        | "/etcdserverpb.Maintenance/Hash"
        | "/etcdserverpb.Maintenance/HashKV" => ("/v1/members", read),
        "/etcdserverpb.Maintenance/MoveLeader" => ("/v1/leader/transfer", write),
        // Everything else (etcd's user and role administration, defragment, snapshot,
        // downgrade, methods added later): administrators only.
        _ => ("(etcd administration)", write),
    })
}

/// The headers `policy` reads the token from: etcd's `token` metadata given as a bearer
/// token, or the call's own `authorization` header.
fn credentials(headers: &HeaderMap) -> std::borrow::Cow<'_, HeaderMap> {
    let mut tokens = headers.get_all("token").iter();
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => {
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(token.as_bytes());
            let mut synthesized = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&bearer) {
                synthesized.insert(header::AUTHORIZATION, value);
            }
            std::borrow::Cow::Owned(synthesized)
        }
        // Two tokens: which one counts would be anyone's guess; the policy refuses an empty
        // set of credentials.
        (Some(_), Some(_)) => std::borrow::Cow::Owned(HeaderMap::new()),
        (None, _) => std::borrow::Cow::Borrowed(headers),
    }
}

/// Whether a call to `path` with `headers` may go on, as etcd's refusal if not.
pub(super) fn check(
    policy: &AccessPolicy,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), tonic::Status> {
    let Some((route, method)) = route_of(path) else {
        return Ok(());
    };
    policy
        .check(route, &method, &credentials(headers))
        .map_err(|refusal| match refusal {
            Refusal::Unauthenticated => error::INVALID_AUTH_TOKEN.status(),
            Refusal::Forbidden => error::PERMISSION_DENIED.status(),
        })
}

/// The layer that puts [`AccessService`] in front of every service.
#[derive(Clone)]
pub(super) struct AccessLayer {
    /// `None`: anyone may call (no `--auth-tokens`).
    pub(super) policy: Option<Arc<AccessPolicy>>,
}

impl<S> tower_layer::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> AccessService<S> {
        AccessService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Checks each call's token ([`check`]) and answers a refusal itself.
#[derive(Clone)]
pub(super) struct AccessService<S> {
    inner: S,
    policy: Option<Arc<AccessPolicy>>,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for AccessService<S>
where
    S: tower_service::Service<
            axum::http::Request<B>,
            Response = axum::http::Response<tonic::body::Body>,
        > + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if let Some(policy) = &self.policy {
            if let Err(status) = check(policy, request.uri().path(), request.headers()) {
                return std::future::ready(Ok(status.into_http())).boxed();
            }
        }
        self.inner.call(request).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenStore;

    const READER: &str = "reader-token-0123456789";
    const WRITER: &str = "writer-token-0123456789";
    const ADMIN: &str = "admin-token-01234567890";

    fn policy(public_status: bool) -> AccessPolicy {
        let file = format!(
            "[[token]]\nname = \"r\"\nrole = \"read-only\"\ntoken = \"{READER}\"\n\
             [[token]]\nname = \"w\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\
             [[token]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
        );
        let tokens = TokenStore::parse(&file).expect("a valid token file");
        AccessPolicy::new(tokens, false, public_status)
    }

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn each_method_needs_the_role_of_the_http_route_that_does_the_same() {
        let policy = policy(false);
        let cases = [
            ("/etcdserverpb.KV/Range", READER),
            ("/etcdserverpb.Watch/Watch", READER),
            ("/etcdserverpb.Cluster/MemberList", READER),
            ("/etcdserverpb.Maintenance/Status", READER),
            ("/etcdserverpb.Maintenance/Alarm", READER),
            ("/etcdserverpb.Lease/LeaseTimeToLive", READER),
            ("/etcdserverpb.KV/Put", WRITER),
            ("/etcdserverpb.KV/Txn", WRITER),
            ("/etcdserverpb.Lease/LeaseKeepAlive", WRITER),
            ("/etcdserverpb.KV/Compact", ADMIN),
            ("/etcdserverpb.Cluster/MemberAdd", ADMIN),
            ("/etcdserverpb.Cluster/MemberRemove", ADMIN),
            ("/etcdserverpb.Maintenance/MoveLeader", ADMIN),
            ("/etcdserverpb.Auth/UserAdd", ADMIN),
            ("/etcdserverpb.Future/Method", ADMIN),
        ];
        for (path, weakest) in cases {
            let rank = |token: &str| [READER, WRITER, ADMIN].iter().position(|t| *t == token);
            for token in [READER, WRITER, ADMIN] {
                let answer = check(&policy, path, &with("token", token));
                if rank(token) >= rank(weakest) {
                    assert!(answer.is_ok(), "{path} with {token}: {answer:?}");
                } else {
                    let status = answer.expect_err(path);
                    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{path}");
                    assert_eq!(status.message(), "etcdserver: permission denied");
                }
            }
        }
    }

    #[test]
    fn a_token_is_read_from_etcd_metadata_or_a_bearer_header() {
        let policy = policy(false);
        let path = "/etcdserverpb.KV/Put";
        assert!(check(&policy, path, &with("token", WRITER)).is_ok());
        assert!(check(
            &policy,
            path,
            &with("authorization", &format!("Bearer {WRITER}"))
        )
        .is_ok());
        for headers in [
            HeaderMap::new(),
            with("token", "not-a-token-of-the-file"),
            with("authorization", WRITER),
            with("token", ""),
        ] {
            let status = check(&policy, path, &headers).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{headers:?}");
            assert_eq!(status.message(), "etcdserver: invalid auth token");
        }
        let mut two = with("token", WRITER);
        two.append("token", HeaderValue::from_static(ADMIN));
        assert!(check(&policy, path, &two).is_err(), "two tokens");
    }

    #[test]
    fn authenticating_needs_no_token_and_status_is_public_with_public_status() {
        let closed = policy(false);
        let open = policy(true);
        for path in [
            "/etcdserverpb.Auth/Authenticate",
            "/etcdserverpb.Auth/AuthStatus",
        ] {
            assert!(check(&closed, path, &HeaderMap::new()).is_ok(), "{path}");
        }
        let status = "/etcdserverpb.Maintenance/Status";
        assert!(check(&closed, status, &HeaderMap::new()).is_err());
        assert!(check(&open, status, &HeaderMap::new()).is_ok());
        assert!(check(&open, "/etcdserverpb.KV/Range", &HeaderMap::new()).is_err());
    }
}
