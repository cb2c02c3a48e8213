//! The access guard's rules: the [`Role`] each route needs ([`required_role`]), the
//! [`AccessPolicy`] that checks a request's bearer token against the token store, and the
//! [`Refusal`] it answers with (the router's middleware applies it to every route).
//!
//! ```text
//!  route, method, headers ─► public route? (the dashboard's files; --public-metrics,
//!                            --public-status: the dashboard's feed too) ── yes ─► admitted
//!    └─ the one `Authorization: Bearer <token>` ─► missing, malformed, unknown ─► 401
//!         └─ its role ─► below required_role(route, method) ─► 403, else admitted
//! ```

use std::sync::{Arc, PoisonError, RwLock};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftkv_client::api::ErrorResponse;

use super::token_file::TokenStore;

/// The `realm` of the `WWW-Authenticate` challenge.
const CHALLENGE: &str = "Bearer realm=\"raftkv\"";

/// What a token may do. Each role includes the ones before it (the order is the derived `Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: keys, scans, status, members, metrics.
    ReadOnly,
    /// Reads and writes of keys.
    ReadWrite,
    /// Everything, membership changes and leader transfer included.
    Admin,
}

impl Role {
    /// The role's name in the token file.
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }

    /// The role named `name` in the token file.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::ReadOnly, Role::ReadWrite, Role::Admin]
            .into_iter()
            .find(|role| role.name() == name)
    }
}

/// The role a request to `route` (a pattern of the router, or `unmatched`) with `method`
/// needs. Routes and methods not named here need [`Role::Admin`], so a new route fails closed.
pub fn required_role(route: &str, method: &Method) -> Role {
    let read = *method == Method::GET || *method == Method::HEAD;
    match route {
        "/v1/kv" | "/v1/status" | "/metrics" | "/get" | "/v1/members" | "unmatched" if read => {
            Role::ReadOnly
        }
        "/v1/kv/" | "/v1/kv/{key}" if read => Role::ReadOnly,
        "/v1/kv/" | "/v1/kv/{key}" if *method == Method::PUT || *method == Method::DELETE => {
            Role::ReadWrite
        }
        "/v1/kv/{key}/append" | "/v1/kv/{key}/cas" | "/v1/txn" if *method == Method::POST => {
            Role::ReadWrite
        }
        "/v1/watch" | "/v1/lease/{id}" | "/v1/leases" if read => Role::ReadOnly,
        // The dashboard's feed tells what every member's status does.
        "/v1/ui/events" if read => Role::ReadOnly,
        // A node's hash of its state reveals nothing a reader could not read; running a check
        // (POST /v1/consistency/check) writes to the log and is an admin's.
        "/v1/consistency/hash" if read => Role::ReadOnly,
        // A keepalive changes no key, but keeps keys from being deleted: a writer's request.
        "/v1/lease/grant" | "/v1/lease/revoke" | "/v1/lease/keepalive"
            if *method == Method::POST =>
        {
            Role::ReadWrite
        }
        "/set" if read => Role::ReadWrite,
        // A request to no route is answered 404 by whoever may read; its method does not
        // matter, since nothing is done.
        "unmatched" => Role::ReadOnly,
        _ => Role::Admin,
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token, a malformed one, or an unknown one: 401.
    Unauthenticated,
    /// A valid token whose role is not enough: 403.
    Forbidden,
}

impl Refusal {
    /// The `reason` label of `raftkv_auth_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "forbidden",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error) = match self {
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "authentication required: send Authorization: Bearer <token>",
            ),
            Refusal::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden: this token's role does not allow this request",
            ),
        };
        let body = ErrorResponse {
            error: error.to_string(),
            leader: None,
            leader_http: None,
        };
        let mut response = (status, Json(body)).into_response();
        if self == Refusal::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        response
    }
}

/// Who may do what: the tokens, and which routes are open to anyone.
#[derive(Debug)]
pub struct AccessPolicy {
    /// Replaced whole when the token file is reloaded ([`AccessPolicy::replace_tokens`]); a
    /// request holds the lock only while its token is looked up.
    tokens: RwLock<Arc<TokenStore>>,
    /// `GET /metrics` needs no token.
    public_metrics: bool,
    /// `GET /v1/status` needs no token.
    public_status: bool,
}

impl AccessPolicy {
    /// A policy over `tokens`, with `/metrics` and `/v1/status` open to anyone or not.
    pub fn new(tokens: TokenStore, public_metrics: bool, public_status: bool) -> AccessPolicy {
        AccessPolicy {
            tokens: RwLock::new(Arc::new(tokens)),
            public_metrics,
            public_status,
        }
    }

    /// The tokens in force now.
    pub fn tokens(&self) -> Arc<TokenStore> {
        Arc::clone(&self.tokens.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Checks every request from now on against `tokens` instead (a reloaded token file).
    /// Requests being checked finish with the tokens they began with.
    pub fn replace_tokens(&self, tokens: Arc<TokenStore>) {
        // A poisoned lock holds a whole `Arc`: a panic cannot leave half a store behind.
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = tokens;
    }

    /// The role of `token` among the tokens in force.
    pub fn role_of(&self, token: &[u8]) -> Option<Role> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .role_of(token)
    }

    /// Whether a request to `route` with `method` and `headers` may go on.
    pub fn check(&self, route: &str, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let read = *method == Method::GET || *method == Method::HEAD;
        let public = read
            && (is_public_asset(route)
                || (route == "/metrics" && self.public_metrics)
                || (route == "/v1/status" && self.public_status)
                || (route == "/v1/ui/events" && self.public_status));
        if public {
            return Ok(());
        }
        let token = bearer_token(headers).ok_or(Refusal::Unauthenticated)?;
        let role = self.role_of(token).ok_or(Refusal::Unauthenticated)?;
        if role >= required_role(route, method) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }
}

/// Whether `route` serves the dashboard's static files, which anyone may read: they hold no
/// data (the page asks for a token before it reads the feed), and a browser cannot send a
/// token with the request for a page.
fn is_public_asset(route: &str) -> bool {
    matches!(route, "/ui" | "/ui/" | "/ui/{asset}")
}

/// The token of the one `Authorization: Bearer <token>` header (scheme in any case), if there
/// is exactly one such header.
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None; // Two credentials: which one counts would be anyone's guess.
    }
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    let token = value[scheme.len()..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::super::test_tokens::{store, ADMIN, READER, WRITER};
    use super::*;

    fn headers(authorization: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("valid header"),
            );
        }
        headers
    }

    #[test]
    fn the_role_table_gives_reads_writes_and_administration_their_roles() {
        let cases = [
            ("/v1/kv/{key}", Method::GET, Role::ReadOnly),
            ("/v1/kv/{key}", Method::HEAD, Role::ReadOnly),
            ("/v1/kv", Method::GET, Role::ReadOnly),
            ("/v1/status", Method::GET, Role::ReadOnly),
            ("/v1/members", Method::GET, Role::ReadOnly),
            ("/metrics", Method::GET, Role::ReadOnly),
            ("/get", Method::GET, Role::ReadOnly),
            ("unmatched", Method::POST, Role::ReadOnly),
            ("/v1/kv/{key}", Method::PUT, Role::ReadWrite),
            ("/v1/kv/{key}", Method::DELETE, Role::ReadWrite),
            ("/v1/kv/{key}/append", Method::POST, Role::ReadWrite),
            ("/v1/kv/{key}/cas", Method::POST, Role::ReadWrite),
            ("/v1/txn", Method::POST, Role::ReadWrite),
            ("/v1/watch", Method::GET, Role::ReadOnly),
            ("/v1/ui/events", Method::GET, Role::ReadOnly),
            ("/v1/lease/{id}", Method::GET, Role::ReadOnly),
            ("/v1/leases", Method::GET, Role::ReadOnly),
            ("/v1/lease/grant", Method::POST, Role::ReadWrite),
            ("/v1/lease/revoke", Method::POST, Role::ReadWrite),
            ("/v1/lease/keepalive", Method::POST, Role::ReadWrite),
            ("/v1/compact", Method::POST, Role::Admin),
            ("/set", Method::GET, Role::ReadWrite),
            ("/v1/members", Method::POST, Role::Admin),
            ("/v1/members/{id}", Method::DELETE, Role::Admin),
            ("/v1/members/{id}/promote", Method::POST, Role::Admin),
            ("/v1/leader/transfer", Method::POST, Role::Admin),
            ("/v1/internal/announce", Method::POST, Role::Admin),
            ("/v1/snapshot", Method::GET, Role::Admin),
            // Not in the table: the strongest role.
            ("/v1/kv/{key}", Method::PATCH, Role::Admin),
            ("/v1/status", Method::POST, Role::Admin),
            ("/v1/some-future-route", Method::GET, Role::Admin),
        ];
        for (route, method, role) in cases {
            assert_eq!(required_role(route, &method), role, "{method} {route}");
        }
        assert!(Role::ReadOnly < Role::ReadWrite && Role::ReadWrite < Role::Admin);
    }

    #[test]
    fn requests_are_refused_unless_their_token_s_role_is_enough() {
        let policy = AccessPolicy::new(store(), false, true);
        let get = Method::GET;
        let put = Method::PUT;
        let key = "/v1/kv/{key}";
        let bearer = |token: &str| format!("Bearer {token}");
        assert_eq!(
            policy.check(key, &get, &headers(&[])),
            Err(Refusal::Unauthenticated)
        );
        for malformed in [
            "Bearer",
            "Bearer ",
            "Basic cmVhZGVyOnNlY3JldA==",
            READER,
            "Bearer not-a-known-token-at-all",
        ] {
            assert_eq!(
                policy.check(key, &get, &headers(&[malformed])),
                Err(Refusal::Unauthenticated),
                "{malformed}"
            );
        }
        assert_eq!(
            policy.check(key, &get, &headers(&[&bearer(READER), &bearer(READER)])),
            Err(Refusal::Unauthenticated),
            "two credentials"
        );
        assert_eq!(
            policy.check(key, &get, &headers(&[&bearer(READER)])),
            Ok(())
        );
        assert_eq!(
            policy.check(key, &get, &headers(&[&format!("bEaReR  {READER} ")])),
            Ok(())
        );
        assert_eq!(
            policy.check(key, &put, &headers(&[&bearer(READER)])),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            policy.check(key, &put, &headers(&[&bearer(WRITER)])),
            Ok(())
        );
        let transfer = "/v1/leader/transfer";
        assert_eq!(
            policy.check(transfer, &Method::POST, &headers(&[&bearer(WRITER)])),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            policy.check(transfer, &Method::POST, &headers(&[&bearer(ADMIN)])),
            Ok(())
        );
        // Public status (and so the dashboard's feed), authenticated metrics.
        assert_eq!(policy.check("/v1/status", &get, &headers(&[])), Ok(()));
        assert_eq!(policy.check("/v1/ui/events", &get, &headers(&[])), Ok(()));
        assert_eq!(
            policy.check("/metrics", &get, &headers(&[])),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn the_dashboard_s_files_are_public_and_its_feed_needs_the_read_role() {
        let policy = AccessPolicy::new(store(), false, false);
        let get = Method::GET;
        for route in ["/ui", "/ui/", "/ui/{asset}"] {
            assert_eq!(policy.check(route, &get, &headers(&[])), Ok(()), "{route}");
            assert_eq!(
                policy.check(route, &Method::POST, &headers(&[])),
                Err(Refusal::Unauthenticated),
                "POST {route}"
            );
        }
        let feed = "/v1/ui/events";
        assert_eq!(
            policy.check(feed, &get, &headers(&[])),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            policy.check(feed, &get, &headers(&[&format!("Bearer {READER}")])),
            Ok(())
        );
    }

    #[test]
    fn refusals_are_401_with_a_challenge_or_403_as_json() {
        let response = Refusal::Unauthenticated.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static(CHALLENGE))
        );
        let response = Refusal::Forbidden.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
