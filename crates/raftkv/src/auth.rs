//! Client authentication of the HTTP API: bearer tokens with roles, read from the file given
//! with `--auth-tokens`.
//!
//! ```text
//!  request ─► route's guard: public route? ── yes ──────────────────────────────► handler
//!                 │ no
//!                 ├─ no / malformed / unknown `Authorization: Bearer` ─► 401 + WWW-Authenticate
//!                 ├─ token's role below the route's requirement ───────► 403
//!                 └─ role enough ─────────────────────────────────────────────────► handler
//! ```
//!
//! # The token file
//!
//! TOML, one `[[token]]` table per token:
//!
//! ```toml
//! [[token]]
//! name = "dashboards"   # who holds it: shown in errors about the file, never the token
//! role = "read-only"    # read-only | read-write | admin
//! # SHA-256 of the token, 64 hex digits: `printf %s "$TOKEN" | sha256sum`
//! token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
//!
//! [[token]]
//! name = "nodes"
//! role = "admin"
//! token = "the token itself, at least 16 visible ASCII characters"
//! ```
//!
//! Each entry has a unique `name`, a `role`, and exactly one of `token` (the token itself) or
//! `token_sha256` (its digest). Digests are the better choice: a stolen copy of the file then
//! lets nobody in. Tokens are visible ASCII without spaces (what fits in a header), at least
//! [`TOKEN_BYTES_MIN`] long, so they cannot be guessed; the same token twice is refused, as it
//! would have two roles.
//!
//! # Roles
//!
//! Each role includes the ones before it:
//!
//! | role | may |
//! |---|---|
//! | `read-only` | `GET` a key, scan, `/v1/status`, `/v1/members`, `/metrics`, the demo `/get` |
//! | `read-write` | also put, delete, append, compare-and-swap, the demo `/set` |
//! | `admin` | also add, promote and remove members, transfer leadership, and the nodes' own `/v1/internal/announce` (which records where a member is reached, so it is as strong as a membership change) |
//!
//! A route or method this table does not name needs `admin`: a route added later without a
//! thought for its role fails closed. `/metrics` and `/v1/status` are open to anyone when the
//! node runs with `--public-metrics` / `--public-status` (for scrapers and load balancers'
//! health checks); by default they need a read-only token like every other read, since
//! status names the members' addresses and metrics tell the data's size.
//!
//! # Between nodes
//!
//! A node forwards a client's request to the leader with the client's `Authorization` header
//! as it came, and the leader checks it again: a follower's word is not taken for it. A node's
//! own calls (announcing its addresses, joining) need a token of role `admin` in the other
//! nodes' files: the one in the file given with `--cluster-token-file`, else the first `admin`
//! entry of `--auth-tokens` given as `token` (a digest cannot be sent). A node with
//! `--auth-tokens` and neither refuses to start, as its followers could not announce
//! themselves and forwarding to them would fail later, far from the cause.
//!
//! # Refusals
//!
//! 401 with `WWW-Authenticate: Bearer realm="raftkv"` when the token is missing, malformed or
//! unknown (one answer for all three: which it was would help a guesser), 403 when it is
//! valid but its role is not enough. Both are JSON errors like the API's others and are
//! counted in `raftkv_auth_refusals_total{reason="unauthenticated"|"forbidden"}`. Tokens are
//! compared as SHA-256 digests against every entry, in time that does not depend on where
//! they differ.

use std::path::Path;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use raftkv_client::api::ErrorResponse;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::metrics::{Metrics, RefusalLabels};

/// Shortest token accepted, in bytes: 16 random characters are beyond guessing over a network.
pub const TOKEN_BYTES_MIN: usize = 16;

/// Longest token accepted, in bytes; a header line is bounded anyway, this says so early.
pub const TOKEN_BYTES_MAX: usize = 4096;

/// Most entries in a token file; every request is checked against all of them.
pub const TOKENS_MAX: usize = 10_000;

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
        "/v1/kv/{key}/append" | "/v1/kv/{key}/cas" if *method == Method::POST => Role::ReadWrite,
        "/set" if read => Role::ReadWrite,
        // A request to no route is answered 404 by whoever may read; its method does not
        // matter, since nothing is done.
        "unmatched" => Role::ReadOnly,
        _ => Role::Admin,
    }
}

/// A token as sent by a node or a client. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// `text` as a token, if it can be one: [`TOKEN_BYTES_MIN`] to [`TOKEN_BYTES_MAX`] visible
    /// ASCII characters (no spaces), what fits a header as it is. The reason never quotes it.
    pub fn new(text: &str) -> Result<BearerToken, String> {
        if text.is_empty() {
            return Err("the token is empty".into());
        }
        if text.len() < TOKEN_BYTES_MIN {
            return Err(format!(
                "the token is {} characters; at least {TOKEN_BYTES_MIN} are needed",
                text.len()
            ));
        }
        if text.len() > TOKEN_BYTES_MAX {
            return Err(format!("the token is longer than {TOKEN_BYTES_MAX} bytes"));
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("the token must be visible ASCII characters without spaces".into());
        }
        Ok(BearerToken(text.to_string()))
    }

    /// Reads a token from the first line of the file at `path` (surrounding white space
    /// ignored, so a trailing newline does not matter).
    pub fn from_file(path: &Path) -> Result<BearerToken, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let first_line = text.lines().next().unwrap_or("").trim();
        BearerToken::new(first_line).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// The token itself, to hand to a client library.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// `Bearer <token>`, marked sensitive so that it is kept out of logs and HPACK tables.
    pub fn authorization(&self) -> HeaderValue {
        // The token is visible ASCII (checked in `new`), which is always a valid header value.
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// A token file that cannot be used. The messages name entries by their `name` and never
/// quote a token.
#[derive(Debug, Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not TOML of the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// An entry is wrong.
    #[error("token entry {number} (`{name}`): {reason}")]
    Entry {
        /// The entry's position in the file, from 1.
        number: usize,
        /// Its `name`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two entries hold the same token, or the same name.
    #[error("token entries `{first}` and `{second}`: {reason}")]
    Duplicate {
        /// The earlier entry's name.
        first: String,
        /// The later entry's name.
        second: String,
        /// What they share.
        reason: &'static str,
    },
    /// No entries: nobody could use the API.
    #[error("no [[token]] entries: with --auth-tokens, nobody could use the API")]
    Empty,
    /// More than [`TOKENS_MAX`] entries.
    #[error("more than {TOKENS_MAX} token entries")]
    TooMany,
}

/// One `[[token]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    role: String,
    token: Option<String>,
    token_sha256: Option<String>,
}

/// The token file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFileSpec {
    #[serde(default)]
    token: Vec<TokenSpec>,
}

/// One accepted token.
#[derive(Clone)]
struct TokenEntry {
    name: String,
    digest: [u8; 32],
    role: Role,
}

/// The tokens of a token file, validated. Its `Debug` shows names and roles, never digests.
#[derive(Clone)]
pub struct TokenStore {
    /// Invariant: not empty; names and digests are unique.
    entries: Vec<TokenEntry>,
    /// The first `admin` entry given as `token` (not as a digest), for the node's own calls.
    first_admin_token: Option<BearerToken>,
    /// Some entry is given as `token`: the file is a secret.
    holds_tokens: bool,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|entry| (&entry.name, entry.role.name())),
            )
            .finish()
    }
}

impl TokenStore {
    /// Reads and validates the token file at `path`.
    pub fn load(path: &Path) -> Result<TokenStore, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| TokenFileError::Unreadable {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        TokenStore::parse(&text)
    }

    /// Validates the text of a token file (the format is in the module's documentation).
    pub fn parse(text: &str) -> Result<TokenStore, TokenFileError> {
        let spec: TokenFileSpec = toml::from_str(text).map_err(|error| {
            // The error's own rendering quotes the offending line, which may hold a token:
            // say where it is instead.
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            TokenFileError::Syntax(match line {
                Some(line) => format!("line {line}: {}", error.message()),
                None => error.message().to_string(),
            })
        })?;
        if spec.token.is_empty() {
            return Err(TokenFileError::Empty);
        }
        if spec.token.len() > TOKENS_MAX {
            return Err(TokenFileError::TooMany);
        }
        let mut entries: Vec<TokenEntry> = Vec::with_capacity(spec.token.len());
        let mut first_admin_token = None;
        let mut holds_tokens = false;
        for (position, token) in spec.token.into_iter().enumerate() {
            let number = position + 1;
            let name = token.name.trim().to_string();
            let entry_error = |reason: String| TokenFileError::Entry {
                number,
                name: name.clone(),
                reason,
            };
            if name.is_empty() {
                return Err(entry_error("the name is empty".into()));
            }
            let role = Role::from_name(token.role.trim()).ok_or_else(|| {
                entry_error(format!(
                    "unknown role `{}` (read-only, read-write or admin)",
                    token.role
                ))
            })?;
            let (digest, plain) = match (token.token, token.token_sha256) {
                (Some(text), None) => {
                    holds_tokens = true;
                    let plain = BearerToken::new(&text).map_err(entry_error)?;
                    (plain.digest(), Some(plain))
                }
                (None, Some(hex)) => (parse_sha256(&hex).map_err(entry_error)?, None),
                (Some(_), Some(_)) => {
                    return Err(entry_error(
                        "give `token` or `token_sha256`, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(entry_error(
                        "no token: give `token` or `token_sha256`".into(),
                    ))
                }
            };
            for earlier in &entries {
                let duplicate = if earlier.name == name {
                    Some("the same name")
                } else if digests_equal(&earlier.digest, &digest) {
                    Some("the same token")
                } else {
                    None
                };
                if let Some(reason) = duplicate {
                    return Err(TokenFileError::Duplicate {
                        first: earlier.name.clone(),
                        second: name,
                        reason,
                    });
                }
            }
            if role == Role::Admin && first_admin_token.is_none() {
                first_admin_token = plain;
            }
            entries.push(TokenEntry { name, digest, role });
        }
        assert!(!entries.is_empty(), "an empty file was refused above");
        Ok(TokenStore {
            entries,
            first_admin_token,
            holds_tokens,
        })
    }

    /// The role of `token`, if it is one of the file's. Its digest is compared with every
    /// entry's, each comparison in time independent of the bytes, so the answer's timing
    /// tells nothing about how close a guess came.
    pub fn role_of(&self, token: &[u8]) -> Option<Role> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for entry in &self.entries {
            if digests_equal(&entry.digest, &digest) {
                found = Some(entry.role);
            }
        }
        found
    }

    /// The first `admin` entry given as a token rather than a digest.
    pub fn first_admin_token(&self) -> Option<&BearerToken> {
        self.first_admin_token.as_ref()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: a store holds at least one token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether two digests are equal, looking at every byte whatever the first difference.
fn digests_equal(left: &[u8; 32], right: &[u8; 32]) -> bool {
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |difference, (left, right)| difference | (left ^ right));
    // Keeps the optimizer from turning the fold back into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// 64 hex digits (either case) as a SHA-256 digest.
fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(format!(
            "token_sha256 must be 64 hex digits, not {}",
            text.len()
        ));
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        let high = hex_value(pair[0]);
        let low = hex_value(pair[1]);
        match (high, low) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return Err("token_sha256 must be hex digits only".into()),
        }
    }
    Ok(digest)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
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
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    tokens: TokenStore,
    /// `GET /metrics` needs no token.
    public_metrics: bool,
    /// `GET /v1/status` needs no token.
    public_status: bool,
}

impl AccessPolicy {
    /// A policy over `tokens`, with `/metrics` and `/v1/status` open to anyone or not.
    pub fn new(tokens: TokenStore, public_metrics: bool, public_status: bool) -> AccessPolicy {
        AccessPolicy {
            tokens,
            public_metrics,
            public_status,
        }
    }

    /// The tokens.
    pub fn tokens(&self) -> &TokenStore {
        &self.tokens
    }

    /// Whether a request to `route` with `method` and `headers` may go on.
    pub fn check(&self, route: &str, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let read = *method == Method::GET || *method == Method::HEAD;
        let public = read
            && ((route == "/metrics" && self.public_metrics)
                || (route == "/v1/status" && self.public_status));
        if public {
            return Ok(());
        }
        let token = bearer_token(headers).ok_or(Refusal::Unauthenticated)?;
        let role = self.tokens.role_of(token).ok_or(Refusal::Unauthenticated)?;
        if role >= required_role(route, method) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }
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

/// What `--auth-tokens` and `--cluster-token-file` amount to.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The policy, or `None` when the API is open to anyone (no `--auth-tokens`).
    pub policy: Option<Arc<AccessPolicy>>,
    /// The token this node sends on its own calls to other nodes (announce, join).
    pub node_token: Option<BearerToken>,
}

impl Access {
    /// Loads the token file (if any) and the cluster token (if any), and checks that together
    /// they let this node make its own calls: with a token file, the node's token must be one
    /// of its `admin` tokens.
    pub fn load(
        auth_tokens: Option<&Path>,
        cluster_token_file: Option<&Path>,
        public_metrics: bool,
        public_status: bool,
    ) -> Result<Access, String> {
        let cluster_token = cluster_token_file
            .map(BearerToken::from_file)
            .transpose()
            .map_err(|reason| format!("--cluster-token-file {reason}"))?;
        if let Some(path) = cluster_token_file {
            warn_if_others_may_read(path);
        }
        let Some(path) = auth_tokens else {
            return Ok(Access {
                policy: None,
                node_token: cluster_token,
            });
        };
        let tokens = TokenStore::load(path)
            .map_err(|error| format!("--auth-tokens {}: {error}", path.display()))?;
        if tokens.holds_tokens {
            warn_if_others_may_read(path);
        }
        let node_token = match cluster_token {
            Some(token) => {
                if tokens.role_of(token.secret().as_bytes()) != Some(Role::Admin) {
                    return Err(format!(
                        "--cluster-token-file: its token is not an admin token of --auth-tokens \
                         {}; the other nodes would refuse this node's own calls",
                        path.display()
                    ));
                }
                token
            }
            None => tokens.first_admin_token().cloned().ok_or_else(|| {
                format!(
                    "--auth-tokens {}: this node needs an admin token for its own calls to the \
                     other nodes (announcing its address, joining): give --cluster-token-file, \
                     or add an entry with role = \"admin\" and `token` (not only its digest)",
                    path.display()
                )
            })?,
        };
        Ok(Access {
            policy: Some(Arc::new(AccessPolicy::new(
                tokens,
                public_metrics,
                public_status,
            ))),
            node_token: Some(node_token),
        })
    }
}

/// Warns when the file at `path`, which holds tokens, may be read by users other than its
/// owner: a copy of a token is a key to the cluster.
fn warn_if_others_may_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return; // Read successfully a moment ago; nothing useful to say.
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "this file holds tokens and other users may read it (chmod 600 it, or store \
             token_sha256 digests instead)"
        );
    }
}

/// Checks every request to one route against the policy: a layer around each route, which
/// knows its pattern (as [`crate::http`]'s metrics layer does).
#[derive(Clone)]
pub struct AccessLayer {
    /// The route pattern, or `unmatched`.
    route: &'static str,
    policy: Arc<AccessPolicy>,
    metrics: Arc<Metrics>,
}

impl AccessLayer {
    /// The guard of `route` under `policy`, counting refusals in `metrics`.
    pub fn new(route: &'static str, policy: Arc<AccessPolicy>, metrics: Arc<Metrics>) -> Self {
        AccessLayer {
            route,
            policy,
            metrics,
        }
    }
}

impl<S> tower_layer::Layer<S> for AccessLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            layer: self.clone(),
        }
    }
}

/// A route's service behind its guard.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    layer: AccessLayer,
}

impl<S> tower_service::Service<Request> for Guarded<S>
where
    S: tower_service::Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> GuardFuture<S::Future> {
        let layer = &self.layer;
        match layer
            .policy
            .check(layer.route, request.method(), request.headers())
        {
            Ok(()) => GuardFuture::Admitted(self.inner.call(request)),
            Err(refusal) => {
                layer
                    .metrics
                    .auth_refusals
                    .get_or_create(&RefusalLabels {
                        reason: refusal.label(),
                    })
                    .inc();
                GuardFuture::Refused(Some(refusal.into_response()))
            }
        }
    }
}

/// The answer of a [`Guarded`] route: the route's, or the refusal.
pub enum GuardFuture<F> {
    /// The request went on to the route.
    Admitted(F),
    /// The refusal, until it is taken.
    Refused(Option<Response>),
}

impl<F, E> std::future::Future for GuardFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut *self {
            GuardFuture::Admitted(inner) => std::pin::Pin::new(inner).poll(context),
            GuardFuture::Refused(response) => match response.take() {
                Some(response) => std::task::Poll::Ready(Ok(response)),
                // Polled again after it answered: a caller's bug, answered harmlessly.
                None => {
                    std::task::Poll::Ready(Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READER: &str = "reader-token-0123456789";
    const WRITER: &str = "writer-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";

    fn sha256_hex(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn store() -> TokenStore {
        let text = format!(
            "[[token]]\nname = \"reader\"\nrole = \"read-only\"\ntoken_sha256 = \"{}\"\n\
             [[token]]\nname = \"writer\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\
             [[token]]\nname = \"admin\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n",
            sha256_hex(READER).to_uppercase()
        );
        TokenStore::parse(&text).expect("a valid file")
    }

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
    fn tokens_are_found_by_token_or_digest_with_their_roles() {
        let store = store();
        assert_eq!(store.len(), 3);
        assert_eq!(store.role_of(READER.as_bytes()), Some(Role::ReadOnly));
        assert_eq!(store.role_of(WRITER.as_bytes()), Some(Role::ReadWrite));
        assert_eq!(store.role_of(ADMIN.as_bytes()), Some(Role::Admin));
        assert_eq!(store.role_of(b"admin-token-0123456788"), None);
        assert_eq!(store.role_of(b""), None);
        assert_eq!(
            store.first_admin_token().map(BearerToken::secret),
            Some(ADMIN)
        );
    }

    #[test]
    fn the_store_debug_shows_names_and_roles_but_no_token() {
        let shown = format!("{:?}", store());
        assert!(shown.contains("\"writer\": \"read-write\""), "{shown}");
        assert!(!shown.contains(WRITER), "{shown}");
        let token = BearerToken::new(ADMIN).expect("valid");
        assert!(!format!("{token:?}").contains(ADMIN));
    }

    #[test]
    fn bad_token_files_are_refused_with_a_reason_that_quotes_no_token() {
        let entry = |body: &str| format!("[[token]]\n{body}\n");
        let digest = sha256_hex(WRITER);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no [[token]] entries"),
            (
                entry("name = \"a\"\nrole = \"read-only\"\ntoken = \"\""),
                "the token is empty",
            ),
            (
                entry("name = \"a\"\nrole = \"read-only\"\ntoken = \"short\""),
                "at least 16",
            ),
            (
                entry("name = \"a\"\nrole = \"read-only\"\ntoken = \"has a space in it...\""),
                "visible ASCII",
            ),
            (
                entry(&format!("name = \"a\"\nrole = \"superuser\"\ntoken = \"{WRITER}\"")),
                "unknown role `superuser`",
            ),
            (
                entry(&format!("name = \"\"\nrole = \"admin\"\ntoken = \"{WRITER}\"")),
                "the name is empty",
            ),
            (
                entry("name = \"a\"\nrole = \"admin\""),
                "no token: give `token` or `token_sha256`",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"\ntoken_sha256 = \"{digest}\""
                )),
                "not both",
            ),
            (
                entry("name = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"abc\""),
                "64 hex digits",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"",
                    "g".repeat(64)
                )),
                "hex digits only",
            ),
            (
                format!(
                    "{}{}",
                    entry(&format!("name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"")),
                    entry(&format!(
                        "name = \"b\"\nrole = \"read-only\"\ntoken_sha256 = \"{digest}\""
                    ))
                ),
                "token entries `a` and `b`: the same token",
            ),
            (
                format!(
                    "{}{}",
                    entry(&format!("name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"")),
                    entry(&format!("name = \"a\"\nrole = \"admin\"\ntoken = \"{ADMIN}\""))
                ),
                "the same name",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"\nexpires = 1"
                )),
                "unknown field `expires`",
            ),
            (
                format!("[[token]]\nname = \"a\"\ntoken = \"{WRITER}"),
                "line 3",
            ),
        ];
        for (text, reason) in cases {
            let error = TokenStore::parse(&text)
                .err()
                .unwrap_or_else(|| panic!("refused: {text}"))
                .to_string();
            assert!(error.contains(reason), "{text}\n=> {error}");
            assert!(!error.contains(WRITER) && !error.contains(ADMIN), "{error}");
        }
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
            ("/set", Method::GET, Role::ReadWrite),
            ("/v1/members", Method::POST, Role::Admin),
            ("/v1/members/{id}", Method::DELETE, Role::Admin),
            ("/v1/members/{id}/promote", Method::POST, Role::Admin),
            ("/v1/leader/transfer", Method::POST, Role::Admin),
            ("/v1/internal/announce", Method::POST, Role::Admin),
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
        // Public status, authenticated metrics.
        assert_eq!(policy.check("/v1/status", &get, &headers(&[])), Ok(()));
        assert_eq!(
            policy.check("/metrics", &get, &headers(&[])),
            Err(Refusal::Unauthenticated)
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

    #[test]
    fn the_node_token_is_the_cluster_token_file_else_the_first_admin_token() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens.toml");
        let hashed_only = dir.path().join("hashed.toml");
        let cluster = dir.path().join("cluster-token");
        let stranger = dir.path().join("stranger-token");
        std::fs::write(
            &tokens,
            format!(
                "[[token]]\nname = \"w\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\
                 [[token]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
            ),
        )
        .expect("writes");
        std::fs::write(
            &hashed_only,
            format!(
                "[[token]]\nname = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
                sha256_hex(ADMIN)
            ),
        )
        .expect("writes");
        std::fs::write(&cluster, format!("{ADMIN}\n")).expect("writes");
        std::fs::write(&stranger, format!("{WRITER}\n")).expect("writes");

        let access = Access::load(Some(&tokens), None, false, false).expect("valid");
        assert!(access.policy.is_some());
        assert_eq!(
            access.node_token.as_ref().map(BearerToken::secret),
            Some(ADMIN)
        );

        let error = Access::load(Some(&hashed_only), None, false, false).expect_err("no token");
        assert!(error.contains("needs an admin token"), "{error}");
        let access = Access::load(Some(&hashed_only), Some(&cluster), false, false).expect("valid");
        assert_eq!(
            access.node_token.as_ref().map(BearerToken::secret),
            Some(ADMIN)
        );

        let error =
            Access::load(Some(&tokens), Some(&stranger), false, false).expect_err("not admin");
        assert!(error.contains("not an admin token"), "{error}");
        assert!(!error.contains(WRITER), "{error}");

        let open = Access::load(None, Some(&cluster), false, false).expect("valid");
        assert!(open.policy.is_none());
        assert!(open.node_token.is_some());
        let error = Access::load(Some(&dir.path().join("missing.toml")), None, false, false)
            .expect_err("no file");
        assert!(error.contains("cannot read"), "{error}");
    }
}
