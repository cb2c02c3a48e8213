//! The async client: one call per API route, with retries across the cluster's nodes and a
//! session that makes retried writes safe.
//!
//! ```text
//!  put / delete / append / cas      get / scan / members ...      status(endpoint)
//!        │ session lock, next          │ no session                  │ one node,
//!        │ sequence number             │                             │ one attempt
//!        ▼                             ▼                             │
//!  retry::execute(call): attempts across the nodes ─┐                │
//!                                                   ▼                ▼
//!                                  transport: Http::attempt ──▶ answer: decode ──▶ Ok / Err
//! ```
//!
//! Its parts: `endpoint` (URLs and paths), `retry` (the retry policy), `transport` (connections
//! and one attempt), `http2` (the HTTP/2 connection per node), `answer` (what an answer means),
//! `coordination` (reads at a revision, transactions, compaction, and their typed revision
//! errors), `consistency` (the consistency check), `log_level` (a node's log filter, asked of
//! one node like `status`), `watch` (the watch: a task that follows `GET /v1/watch` across
//! nodes, handed out as a [`WatchStream`]), `sse` (the Server-Sent Events parser it reads with)
//! and `snapshot` (a node's snapshot of the state, streamed: [`Client::download_snapshot`]).
//!
//! A client made with [`Client::with_http2`] sends every request as a stream of one HTTP/2
//! connection per node, shared by its clones and sessions, instead of one HTTP/1.1 connection per
//! request in flight.
//!
//! A client made with [`Client::with_bearer_token`] sends `Authorization: Bearer <token>` on
//! every request, to nodes run with `--auth-tokens`.
//!
//! Every write carries the `client-id` and `request-seq` headers. The sequence number is taken
//! once per call and kept across its retries, so a write the server already applied is answered
//! with its original result rather than applied twice. The server remembers only the last result
//! of each client, so a client has at most one write in flight: writes through one [`Client`]
//! (and its clones, which share the session) are serialized. Create more clients for concurrent
//! writes.

mod answer;
mod consistency;
mod coordination;
mod endpoint;
mod http2;
mod lease;
mod lock;
mod log_level;
mod retry;
mod snapshot;
mod sse;
mod transport;
mod watch;

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::{header, Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use self::answer::{decode, decode_success, server_error, Answer};
use self::endpoint::{encode, key_path, parse_endpoint, parse_endpoints};
use self::retry::RetryState;
use self::transport::{Call, Exchange, Http, Session as WriteSession};
use crate::api::{
    AddMemberRequest, AppendResponse, CasRequest, CasResponse, Consistency, DeleteResponse,
    ErrorResponse, MembersResponse, MembershipChangeResponse, ScanResponse, StatusResponse,
    TransferRequest, WriteResponse,
};
use crate::tls::ClientTls;

pub use self::lease::{LeaseKeeper, LeaseLost, LeaseStatus};
pub use self::lock::{
    ElectionLeader, ElectionObserver, Leadership, LockError, LockGuard, LockLost, Session,
    SESSION_TTL_SECONDS_DEFAULT,
};
pub use self::retry::{RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
pub use self::snapshot::{SnapshotDownload, SNAPSHOT_PATH};
pub use self::transport::RESPONSE_BYTES_MAX;
pub use self::watch::{WatchMessage, WatchRequest, WatchSelector, WatchStream};

/// Timeouts of a [`Client`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Longest wait for one attempt's answer, body included (default 5 s). Must not be zero.
    pub request_timeout: Duration,
    /// Longest time one call spends retrying, counted from its start (default 20 s). The first
    /// attempt always goes out, so zero means "try once"; later attempts are cut short so the
    /// call ends near the deadline.
    pub retry_deadline: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(5),
            retry_deadline: Duration::from_secs(20),
        }
    }
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The call was refused before anything was sent: an empty or too long key, a bad endpoint
    /// or option.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A node gave a definite answer that is an error (400, 404 outside `get`, 409 outside
    /// `cas`, 413 ...). Such answers are final: the call was not retried. Transient answers
    /// (5xx, 408, 429) never end up here: they are retried until the retry deadline.
    #[error("server answered {status}: {}", error.error)]
    Server {
        /// The HTTP status.
        status: u16,
        /// The error body (made up from the status and body text when it was not JSON).
        error: ErrorResponse,
    },
    /// No node gave a definite answer before the retry deadline passed; the message describes
    /// the last failure (connection refused, a timeout, 503 no leader or a leadership transfer,
    /// 500). A write's outcome is unknown: it may or may not have been applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A node's answer did not parse.
    #[error("undecodable answer: {0}")]
    Decode(String),
    /// The revision asked for (a read at a revision, a watch's start, the revision a watch
    /// must resume at) is older than the cluster's compaction: its history is gone (410). Read
    /// or watch again from `compact_revision` or later, accepting that the changes before it
    /// are lost to you.
    #[error("{}", compacted_message(*.requested, *.compact_revision, *.revision))]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still readable.
        compact_revision: u64,
        /// The store's current revision; 0 when the node did not say (a watch cancelled for
        /// compaction).
        revision: u64,
    },
    /// The revision asked for is past the store's current revision (400).
    #[error("revision {requested} is in the future: the current revision is {revision}")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's current revision.
        revision: u64,
        /// The oldest revision still readable.
        compact_revision: u64,
    },
    /// No lease with this id exists (404): it was never granted, or it was revoked or expired.
    /// A put or transaction naming it changed nothing.
    #[error("lease {id:x} not found: {message}")]
    LeaseNotFound {
        /// The lease asked for.
        id: u64,
        /// The node's message.
        message: String,
    },
    /// A grant named an id that is already in use (409); nothing was granted.
    #[error("lease {id:x} already exists: {message}")]
    LeaseAlreadyExists {
        /// The id asked for.
        id: u64,
        /// The node's message.
        message: String,
    },
}

/// The text of [`ClientError::Compacted`], which names the current revision when it is known.
fn compacted_message(requested: u64, compact_revision: u64, revision: u64) -> String {
    let mut message = format!(
        "revision {requested} is compacted: the oldest revision available is {compact_revision}"
    );
    if revision > 0 {
        message.push_str(&format!(" (current revision {revision})"));
    }
    message
}

/// A client of a raftkv cluster. Cheap to clone; clones share the connection pool and the
/// session, so their writes are serialized too.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("client_id", &self.inner.client_id)
            .field("options", &self.inner.options)
            .field("authenticated", &self.inner.authorization.is_some())
            .field("http2", &self.inner.http.is_http2())
            .finish_non_exhaustive()
    }
}

/// What a client and its clones share; sessions made from it share only `http`.
struct Inner {
    /// The endpoints as given to [`Client::new`], trimmed.
    endpoints: Vec<String>,
    /// Invariant: one `scheme://authority` base URL per entry of `endpoints`, in the same order.
    base_urls: Vec<String>,
    options: ClientOptions,
    http: Http,
    /// Invariant: not zero, so it cannot be mistaken for a missing session.
    client_id: u64,
    /// The last sequence number taken (0 before the first write). A write holds this lock for its
    /// whole retry loop, which is what keeps one write in flight per client.
    session: tokio::sync::Mutex<u64>,
    /// Where the next call starts, and the backoff's randomness.
    retry: RetryState,
    /// `Bearer <token>`, sent with every request; marked sensitive.
    authorization: Option<header::HeaderValue>,
    /// Whether calls go to the leader the nodes name (the default), or stay on this client's
    /// endpoints ([`Client::ignoring_leader_hints`]).
    follows_leader: bool,
}

impl Client {
    /// A client of the cluster reachable at `endpoints`, each `host:port` or `http://host:port`,
    /// with [`ClientOptions::default`]. At least one endpoint is needed; any node will do, as
    /// nodes forward requests to the leader.
    pub fn new<I, S>(endpoints: I) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::with_options(endpoints, ClientOptions::default())
    }

    /// Like [`Client::new`], with the given timeouts.
    pub fn with_options<I, S>(endpoints: I, options: ClientOptions) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = parse_endpoints(endpoints, options, false)?;
        let http = Http::http1(options.request_timeout, None);
        Ok(Client::from_parts(
            endpoints, options, http, None, None, true,
        ))
    }

    /// Like [`Client::with_options`], over HTTPS: endpoints given as `host:port`, and leader
    /// addresses the nodes name, are reached with `https://` (an explicit `http://` endpoint
    /// stays plain). Each node's certificate must be signed by the CA in `tls` and carry the
    /// host of its endpoint.
    pub fn with_tls<I, S>(
        endpoints: I,
        options: ClientOptions,
        tls: ClientTls,
    ) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = parse_endpoints(endpoints, options, true)?;
        let http = Http::http1(options.request_timeout, Some(tls));
        Ok(Client::from_parts(
            endpoints, options, http, None, None, true,
        ))
    }

    /// Like [`Client::with_options`], over HTTP/2 with prior knowledge (h2c): one connection per
    /// node, opened on first use and shared by this client, its clones and its sessions, with
    /// each request a stream of it. Plaintext only: an `https://` endpoint is refused. The nodes
    /// must accept HTTP/2 without an upgrade.
    pub fn with_http2<I, S>(endpoints: I, options: ClientOptions) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|endpoint| endpoint.as_ref().trim().to_string())
            .collect();
        if let Some(secure) = endpoints
            .iter()
            .find(|endpoint| endpoint.to_ascii_lowercase().starts_with("https://"))
        {
            return Err(ClientError::InvalidInput(format!(
                "endpoint {secure:?}: HTTP/2 is plaintext only here (h2c); use Client::with_tls \
                 for HTTPS"
            )));
        }
        let endpoints = parse_endpoints(endpoints, options, false)?;
        let http = Http::http2(options.request_timeout);
        Ok(Client::from_parts(
            endpoints, options, http, None, None, true,
        ))
    }

    /// A client of the same cluster that sends `Authorization: Bearer <token>` with every
    /// request (for nodes run with `--auth-tokens`). It shares this client's connection pool
    /// and has a session of its own, as [`Client::new_session`]. The token must be visible
    /// ASCII without spaces; the error never quotes it.
    pub fn with_bearer_token(&self, token: &str) -> Result<Client, ClientError> {
        let token = token.trim();
        if token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ClientError::InvalidInput(
                "a token is visible ASCII characters without spaces, and not empty".to_string(),
            ));
        }
        let mut authorization = header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::InvalidInput("the token is not a valid header".into()))?;
        // Kept out of debug output and header compression tables.
        authorization.set_sensitive(true);
        Ok(self.sibling(Some(authorization)))
    }

    /// A client of the same cluster with a session of its own, sharing this client's connection
    /// pool. Its writes are not serialized with this client's: this is how one process runs
    /// many concurrent writers without a pool (and a client id) per writer. Over HTTP/1.1 each
    /// request in flight still takes a connection of the pool; over HTTP/2
    /// ([`Client::with_http2`]) it is a stream of the one connection per node.
    pub fn new_session(&self) -> Client {
        self.sibling(self.inner.authorization.clone())
    }

    /// A client with a session of its own, sharing this client's connection pool, that never
    /// follows the leader the nodes name (the `raftkv-leader` header of an answer, the leader a
    /// refusal names): every call goes to one of this client's endpoints, the one that
    /// answered last, and a failed call is tried at the next. A node serves any request (a
    /// follower forwards a write to the leader), so this is how a client behind a load
    /// balancer behaves; `raftkv bench --spread` measures it.
    pub fn ignoring_leader_hints(&self) -> Client {
        let inner = &self.inner;
        Client::from_parts(
            (inner.endpoints.clone(), inner.base_urls.clone()),
            inner.options,
            inner.http.clone(),
            inner.authorization.clone(),
            None,
            false,
        )
    }

    /// A client with a new session that shares this one's pool and starts at its preferred node.
    fn sibling(&self, authorization: Option<header::HeaderValue>) -> Client {
        let inner = &self.inner;
        Client::from_parts(
            (inner.endpoints.clone(), inner.base_urls.clone()),
            inner.options,
            inner.http.clone(),
            authorization,
            inner.retry.preferred(),
            inner.follows_leader,
        )
    }

    /// A client with a new session; `endpoints` are the endpoints as given and their base URLs.
    fn from_parts(
        (endpoints, base_urls): (Vec<String>, Vec<String>),
        options: ClientOptions,
        http: Http,
        authorization: Option<header::HeaderValue>,
        preferred: Option<String>,
        follows_leader: bool,
    ) -> Client {
        assert_eq!(
            endpoints.len(),
            base_urls.len(),
            "one base URL per endpoint"
        );
        let mut random = StdRng::from_entropy();
        let client_id = random.gen_range(1..=u64::MAX);
        Client {
            inner: Arc::new(Inner {
                endpoints,
                base_urls,
                options,
                http,
                client_id,
                session: tokio::sync::Mutex::new(0),
                retry: RetryState::new(random, preferred),
                authorization,
                follows_leader,
            }),
        }
    }

    /// This client's session id, sent in the `client-id` header of every write.
    pub fn client_id(&self) -> u64 {
        self.inner.client_id
    }

    /// The endpoints as given to [`Client::new`] (trimmed).
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The options in force.
    pub fn options(&self) -> ClientOptions {
        self.inner.options
    }

    /// Sets `key` to `value`.
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Bytes>,
    ) -> Result<WriteResponse, ClientError> {
        let call = Call::octets(Method::PUT, key_path(key)?, value.into());
        decode_success(self.write(call).await?, "WriteResponse")
    }

    /// The value of `key`, or `None` when it does not exist.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<Option<Bytes>, ClientError> {
        let path = format!("{}?consistency={}", key_path(key)?, consistency.as_str());
        let answer = self.execute(&Call::empty(Method::GET, path)).await?;
        if answer.status.is_success() {
            Ok(Some(answer.body))
        } else if answer.status == StatusCode::NOT_FOUND {
            Ok(None)
        } else {
            Err(server_error(&answer))
        }
    }

    /// Deletes `key`; the answer says whether it existed.
    pub async fn delete(&self, key: &str) -> Result<DeleteResponse, ClientError> {
        let call = Call::empty(Method::DELETE, key_path(key)?);
        decode_success(self.write(call).await?, "DeleteResponse")
    }

    /// Appends `suffix` to the value of `key` (an absent key counts as empty).
    pub async fn append(
        &self,
        key: &str,
        suffix: impl Into<Bytes>,
    ) -> Result<AppendResponse, ClientError> {
        let path = format!("{}/append", key_path(key)?);
        let call = Call::octets(Method::POST, path, suffix.into());
        decode_success(self.write(call).await?, "AppendResponse")
    }

    /// Sets `key` to `value` if it holds `expect` (`None`: if it is absent).
    ///
    /// A swap that did not happen is `Ok(CasResponse { ok: false, current, .. })`, not an error.
    pub async fn cas(
        &self,
        key: &str,
        expect: Option<&str>,
        value: &str,
    ) -> Result<CasResponse, ClientError> {
        let request = CasRequest {
            expect: expect.map(str::to_string),
            value: value.to_string(),
        };
        let body = serde_json::to_vec(&request).map_err(|error| {
            ClientError::InvalidInput(format!("compare-and-swap body: {error}"))
        })?;
        let path = format!("{}/cas", key_path(key)?);
        let answer = self
            .write(Call::json(Method::POST, path, Bytes::from(body)))
            .await?;
        if answer.status == StatusCode::CONFLICT {
            // 409 is the contract's "did not swap", with a CasResponse body; a 409 whose body is
            // an ErrorResponse instead is some other conflict, reported as such.
            return decode(&answer, "CasResponse").map_err(|_| server_error(&answer));
        }
        decode_success(answer, "CasResponse")
    }

    /// The keys starting with `prefix`, in key order, at most `limit` of them (a linearizable
    /// read).
    pub async fn scan(&self, prefix: &str, limit: usize) -> Result<ScanResponse, ClientError> {
        self.scan_with(prefix, limit, Consistency::Linearizable)
            .await
    }

    /// [`Client::scan`] in the given consistency: `Stale` answers from the node's own state
    /// without asking the leader, which is how one node's copy is inspected.
    pub async fn scan_with(
        &self,
        prefix: &str,
        limit: usize,
        consistency: Consistency,
    ) -> Result<ScanResponse, ClientError> {
        let path = format!(
            "/v1/kv?prefix={}&limit={limit}&consistency={}",
            encode(prefix),
            consistency.as_str()
        );
        let answer = self.execute(&Call::empty(Method::GET, path)).await?;
        decode_success(answer, "ScanResponse")
    }

    /// The status of the one node at `endpoint` (in the same forms [`Client::new`] accepts). It
    /// is asked once, with the request timeout; other nodes are never tried, since the point is
    /// to learn about this one. A node that does not answer is [`ClientError::Unavailable`].
    pub async fn status(&self, endpoint: &str) -> Result<StatusResponse, ClientError> {
        let call = Call::empty(Method::GET, "/v1/status".to_string());
        self.ask_one(endpoint, &call, "StatusResponse").await
    }

    /// Sends `call` to the node at `endpoint` once, with the request timeout, and decodes its
    /// answer as `what`; other nodes are never tried, since the answer is about this one.
    async fn ask_one<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        call: &Call,
        what: &str,
    ) -> Result<T, ClientError> {
        let inner = &self.inner;
        let base_url = parse_endpoint(endpoint.trim(), inner.http.https)?;
        let exchange = inner
            .http
            .attempt(
                &base_url,
                call,
                inner.authorization.as_ref(),
                inner.options.request_timeout,
            )
            .await;
        match exchange {
            Exchange::Answered(answer) => decode_success(answer, what),
            Exchange::Failed(failure) => Err(ClientError::Unavailable(format!(
                "{base_url}: {}",
                failure.description
            ))),
            Exchange::Final(error) => Err(error),
        }
    }

    /// The members of the cluster, with their roles and addresses.
    pub async fn members(&self) -> Result<MembersResponse, ClientError> {
        let call = Call::empty(Method::GET, "/v1/members".to_string());
        decode_success(self.execute(&call).await?, "MembersResponse")
    }

    /// Adds node `id`, reachable for Raft at `raft_address`, as a learner: it receives the log
    /// but does not vote until [`Client::promote`].
    pub async fn add_member(
        &self,
        id: u64,
        raft_address: &str,
    ) -> Result<MembershipChangeResponse, ClientError> {
        let body = serde_json::to_vec(&AddMemberRequest {
            id,
            raft_address: raft_address.to_string(),
        })
        .map_err(|error| ClientError::InvalidInput(error.to_string()))?;
        let call = Call::json(Method::POST, "/v1/members".to_string(), Bytes::from(body));
        decode_success(self.execute(&call).await?, "MembershipChangeResponse")
    }

    /// Makes learner `id` a voter; refused (409) until it has caught up with the leader.
    pub async fn promote(&self, id: u64) -> Result<MembershipChangeResponse, ClientError> {
        let call = Call::empty(Method::POST, format!("/v1/members/{id}/promote"));
        decode_success(self.execute(&call).await?, "MembershipChangeResponse")
    }

    /// Removes member `id` (the leader included: it hands over after the change commits).
    pub async fn remove_member(&self, id: u64) -> Result<MembershipChangeResponse, ClientError> {
        let call = Call::empty(Method::DELETE, format!("/v1/members/{id}"));
        decode_success(self.execute(&call).await?, "MembershipChangeResponse")
    }

    /// Asks the leader to hand leadership to voter `to`.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&TransferRequest { to })
            .map_err(|error| ClientError::InvalidInput(error.to_string()))?;
        let call = Call::json(
            Method::POST,
            "/v1/leader/transfer".to_string(),
            Bytes::from(body),
        );
        let answer = self.execute(&call).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(server_error(&answer))
        }
    }

    /// Sends a write with the next sequence number of the session, holding the session for the
    /// whole retry loop so that this client has one write in flight.
    async fn write(&self, mut call: Call) -> Result<Answer, ClientError> {
        assert!(call.session.is_none(), "a write's session is assigned here");
        let mut last_sequence = self.inner.session.lock().await;
        // The number is consumed even if the call fails: the server may have applied it, and a
        // later write must not be mistaken for its retry.
        *last_sequence += 1;
        call.session = Some(WriteSession {
            client_id: self.inner.client_id,
            sequence: *last_sequence,
        });
        let result = self.execute(&call).await;
        drop(last_sequence);
        result
    }

    /// Sends `call` under the retry policy (`retry::execute`).
    async fn execute(&self, call: &Call) -> Result<Answer, ClientError> {
        retry::execute(&self.inner, call).await
    }
}

/// Locks a mutex that guards plain data: a panic elsewhere cannot leave it inconsistent, so a
/// poisoned lock is used as it is.
fn lock<T>(mutex: &StdMutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
