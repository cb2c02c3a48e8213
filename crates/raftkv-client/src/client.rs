//! The async client: one call per API route, with retries across the cluster's nodes and a
//! session that makes retried writes safe.
//!
//! ```text
//!  put / delete / append / cas          get / scan              status(endpoint)
//!        │ take the session lock,          │ no session              │ one node,
//!        │ next sequence number            │                         │ one attempt
//!        ▼                                 ▼                         ▼
//!  execute(call) ── attempt ──▶ target node ──▶ answer (2xx/4xx) ──▶ interpret ──▶ Ok / Server
//!        ▲              │
//!        │              └─ connection error, timeout, 5xx, 408, 429 ──▶ failure
//!        │                                                      │
//!        └── next target: the leader the failure named, else the next endpoint;
//!            wait the backoff between passes; past the retry deadline ──▶ Unavailable
//!            (at once when every endpoint in a row refused a TLS certificate)
//! ```
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

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::http::uri::Authority;
use hyper::{header, Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::api::{
    AddMemberRequest, AppendResponse, CasRequest, CasResponse, Consistency, DeleteResponse,
    ErrorResponse, MembersResponse, MembershipChangeResponse, ScanResponse, StatusResponse,
    TransferRequest, WriteResponse, CLIENT_ID_HEADER, KEY_BYTES_MAX, LEADER_HEADER,
    REQUEST_SEQ_HEADER,
};
use crate::tls::ClientTls;

/// Largest answer body the client reads, in bytes. A scan of many large values can be big, but an
/// answer past this is a misbehaving peer, not data: it is refused rather than buffered.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Wait after the first pass over the endpoints fails; it doubles after every further pass.
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest wait between passes, so a client notices a new leader within about a second.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Idle time after which an HTTP/2 connection is pinged, so a dead node or a dropped NAT entry is
/// noticed (and the connection replaced) before a request waits on it.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// Longest part of an error body quoted in an error message, in bytes.
const ERROR_QUOTE_BYTES_MAX: usize = 200;

/// Characters left as they are in a path segment or query value: RFC 3986's unreserved set.
/// Everything else, `/` and `?` included, is percent-encoded, so a key is always one segment.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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

struct Inner {
    /// The endpoints as given to [`Client::new`], trimmed.
    endpoints: Vec<String>,
    /// Invariant: one `http://authority` base URL per entry of `endpoints`, in the same order.
    base_urls: Vec<String>,
    options: ClientOptions,
    http: Http,
    /// Invariant: not zero, so it cannot be mistaken for a missing session.
    client_id: u64,
    /// The last sequence number taken (0 before the first write). A write holds this lock for its
    /// whole retry loop, which is what keeps one write in flight per client.
    session: tokio::sync::Mutex<u64>,
    /// Base URL of the node that last gave a definite answer; tried first by the next call, as it
    /// is most likely the leader (or a node that reaches it).
    preferred: StdMutex<Option<String>>,
    /// Jitter for the backoff; per client rather than global so clients do not share state.
    random: StdMutex<StdRng>,
    /// `Bearer <token>`, sent with every request; marked sensitive.
    authorization: Option<header::HeaderValue>,
}

/// A request, ready to be sent to any node.
struct Call {
    method: Method,
    /// Starts with `/`; every key and query value in it is percent-encoded.
    path_and_query: String,
    body: Bytes,
    content_type: Option<&'static str>,
    session: Option<Session>,
}

impl Call {
    /// A call without a session whose body (possibly empty) is JSON.
    fn json(method: Method, path_and_query: &str, body: Bytes) -> Call {
        Call {
            method,
            path_and_query: path_and_query.to_string(),
            content_type: (!body.is_empty()).then_some("application/json"),
            body,
            session: None,
        }
    }
}

/// The exactly-once identity of a write.
#[derive(Clone, Copy, Debug)]
struct Session {
    client_id: u64,
    sequence: u64,
}

/// A node's answer, whatever its status.
struct Answer {
    status: StatusCode,
    body: Bytes,
    /// The `Retry-After` header, when it held a number of seconds.
    retry_after: Option<Duration>,
    /// Base URL of the leader, when a follower forwarded the request to it.
    served_by_leader: Option<String>,
}

/// Why an attempt got no definite answer.
struct Failure {
    kind: FailureKind,
    description: String,
    /// A leader address the failing node named.
    leader_http: Option<String>,
    retry_after: Option<Duration>,
}

impl Failure {
    /// A failure of the exchange itself, before any answer that could name a leader.
    fn local(kind: FailureKind, description: String) -> Failure {
        Failure {
            kind,
            description,
            leader_http: None,
            retry_after: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureKind {
    /// Could not connect: the node is down or the address is wrong.
    Connect,
    /// No full answer within the attempt's timeout.
    Timeout,
    /// The connection broke during the exchange.
    Transport,
    /// The node answered with a transient status ([`is_transient_status`]).
    ServerStatus,
    /// The TLS handshake failed on a certificate: the node's is not the CA's or not for its
    /// address, or the node refused ours. Trying again helps only once a certificate changes.
    Certificate,
}

/// The outcome of one attempt.
enum Exchange {
    Answered(Answer),
    Failed(Failure),
    /// Retrying cannot help (the request could not be built, the answer is too large).
    Final(ClientError),
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
        Client::build(endpoints, options, None)
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
        Client::build(endpoints, options, Some(tls))
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
        let (given, base_urls) = parse_endpoints(endpoints, options, false)?;
        let http = Http {
            transport: Transport::Http2(Arc::new(Http2Connections::new(options.request_timeout))),
            https: false,
        };
        Ok(Client::with_parts(given, base_urls, options, http, None))
    }

    fn build<I, S>(
        endpoints: I,
        options: ClientOptions,
        tls: Option<ClientTls>,
    ) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let https = tls.is_some();
        let (given, base_urls) = parse_endpoints(endpoints, options, https)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(options.request_timeout));
        // Requests are small and latency matters more than packet count.
        connector.set_nodelay(true);
        // The TLS connector hands `https://` URIs to this one for the TCP part.
        connector.enforce_http(false);
        let tls_config = tls.map_or_else(crate::tls::plain_config, |tls| tls.config());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls_config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = HttpClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let http = Http {
            transport: Transport::Pooled(client),
            https,
        };
        Ok(Client::with_parts(given, base_urls, options, http, None))
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
        let inner = &self.inner;
        let client = Client::with_parts(
            inner.endpoints.clone(),
            inner.base_urls.clone(),
            inner.options,
            inner.http.clone(),
            Some(authorization),
        );
        if let Some(preferred) = self.preferred() {
            client.remember(&preferred);
        }
        Ok(client)
    }

    fn with_parts(
        endpoints: Vec<String>,
        base_urls: Vec<String>,
        options: ClientOptions,
        http: Http,
        authorization: Option<header::HeaderValue>,
    ) -> Client {
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
                preferred: StdMutex::new(None),
                random: StdMutex::new(random),
                authorization,
            }),
        }
    }

    /// A client of the same cluster with a session of its own, sharing this client's connection
    /// pool. Its writes are not serialized with this client's: this is how one process runs
    /// many concurrent writers without a pool (and a client id) per writer. Over HTTP/1.1 each
    /// request in flight still takes a connection of the pool; over HTTP/2
    /// ([`Client::with_http2`]) it is a stream of the one connection per node.
    pub fn new_session(&self) -> Client {
        let inner = &self.inner;
        let client = Client::with_parts(
            inner.endpoints.clone(),
            inner.base_urls.clone(),
            inner.options,
            inner.http.clone(),
            inner.authorization.clone(),
        );
        if let Some(preferred) = self.preferred() {
            client.remember(&preferred);
        }
        client
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
        let call = Call {
            method: Method::PUT,
            path_and_query: key_path(key)?,
            body: value.into(),
            content_type: Some("application/octet-stream"),
            session: None,
        };
        let answer = self.write(call).await?;
        decode_success(answer, "WriteResponse")
    }

    /// The value of `key`, or `None` when it does not exist.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<Option<Bytes>, ClientError> {
        let call = Call {
            method: Method::GET,
            path_and_query: format!("{}?consistency={}", key_path(key)?, consistency.as_str()),
            body: Bytes::new(),
            content_type: None,
            session: None,
        };
        let answer = self.execute(&call).await?;
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
        let call = Call {
            method: Method::DELETE,
            path_and_query: key_path(key)?,
            body: Bytes::new(),
            content_type: None,
            session: None,
        };
        let answer = self.write(call).await?;
        decode_success(answer, "DeleteResponse")
    }

    /// Appends `suffix` to the value of `key` (an absent key counts as empty).
    pub async fn append(
        &self,
        key: &str,
        suffix: impl Into<Bytes>,
    ) -> Result<AppendResponse, ClientError> {
        let call = Call {
            method: Method::POST,
            path_and_query: format!("{}/append", key_path(key)?),
            body: suffix.into(),
            content_type: Some("application/octet-stream"),
            session: None,
        };
        let answer = self.write(call).await?;
        decode_success(answer, "AppendResponse")
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
        let call = Call {
            method: Method::POST,
            path_and_query: format!("{}/cas", key_path(key)?),
            body: Bytes::from(body),
            content_type: Some("application/json"),
            session: None,
        };
        let answer = self.write(call).await?;
        if answer.status == StatusCode::CONFLICT {
            // 409 is the contract's "did not swap", with a CasResponse body; a 409 whose body is
            // an ErrorResponse instead is some other conflict, reported as such.
            return match decode_cas_response(&answer.body) {
                Ok(response) => Ok(response),
                Err(_) => Err(server_error(&answer)),
            };
        }
        if !answer.status.is_success() {
            return Err(server_error(&answer));
        }
        decode_cas_response(&answer.body).map_err(|error| {
            ClientError::Decode(format!("CasResponse: {error}: {}", quote(&answer.body)))
        })
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
        let call = Call {
            method: Method::GET,
            path_and_query: format!(
                "/v1/kv?prefix={}&limit={limit}&consistency={}",
                utf8_percent_encode(prefix, UNRESERVED),
                consistency.as_str()
            ),
            body: Bytes::new(),
            content_type: None,
            session: None,
        };
        let answer = self.execute(&call).await?;
        decode_success(answer, "ScanResponse")
    }

    /// The status of the one node at `endpoint` (in the same forms [`Client::new`] accepts). It
    /// is asked once, with the request timeout; other nodes are never tried, since the point is
    /// to learn about this one. A node that does not answer is [`ClientError::Unavailable`].
    pub async fn status(&self, endpoint: &str) -> Result<StatusResponse, ClientError> {
        let base_url = parse_endpoint(endpoint.trim(), self.inner.http.https)?;
        let call = Call {
            method: Method::GET,
            path_and_query: "/v1/status".to_string(),
            body: Bytes::new(),
            content_type: None,
            session: None,
        };
        match self
            .exchange(&base_url, &call, self.inner.options.request_timeout)
            .await
        {
            Exchange::Answered(answer) => decode_success(answer, "StatusResponse"),
            Exchange::Failed(failure) => Err(ClientError::Unavailable(format!(
                "{base_url}: {}",
                failure.description
            ))),
            Exchange::Final(error) => Err(error),
        }
    }

    /// The members of the cluster, with their roles and addresses.
    pub async fn members(&self) -> Result<MembersResponse, ClientError> {
        let answer = self
            .execute(&Call::json(Method::GET, "/v1/members", Bytes::new()))
            .await?;
        decode_success(answer, "MembersResponse")
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
        let call = Call::json(Method::POST, "/v1/members", Bytes::from(body));
        decode_success(self.execute(&call).await?, "MembershipChangeResponse")
    }

    /// Makes learner `id` a voter; refused (409) until it has caught up with the leader.
    pub async fn promote(&self, id: u64) -> Result<MembershipChangeResponse, ClientError> {
        let call = Call::json(
            Method::POST,
            &format!("/v1/members/{id}/promote"),
            Bytes::new(),
        );
        decode_success(self.execute(&call).await?, "MembershipChangeResponse")
    }

    /// Removes member `id` (the leader included: it hands over after the change commits).
    pub async fn remove_member(&self, id: u64) -> Result<MembershipChangeResponse, ClientError> {
        let call = Call::json(Method::DELETE, &format!("/v1/members/{id}"), Bytes::new());
        decode_success(self.execute(&call).await?, "MembershipChangeResponse")
    }

    /// Asks the leader to hand leadership to voter `to`.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), ClientError> {
        let body = serde_json::to_vec(&TransferRequest { to })
            .map_err(|error| ClientError::InvalidInput(error.to_string()))?;
        let call = Call::json(Method::POST, "/v1/leader/transfer", Bytes::from(body));
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
        call.session = Some(Session {
            client_id: self.inner.client_id,
            sequence: *last_sequence,
        });
        let result = self.execute(&call).await;
        drop(last_sequence);
        result
    }

    /// Sends `call` until a node gives a definite answer (any status but a transient one:
    /// [`is_transient_status`]) or the retry deadline passes. A write keeps its session's
    /// sequence number across the attempts, so a retry is never applied twice.
    ///
    /// Order of targets: the node that answered last, then the endpoints in turn; a leader named
    /// by a failing node is tried next. After a failure that says nothing about the cluster
    /// (connection refused, a timeout) or that names a leader, the next target is tried at once,
    /// until as many attempts as there are endpoints went out since the last wait; then, and
    /// after every 5xx, the client waits the backoff (50 ms doubling to 1 s, half of it random,
    /// at least the `Retry-After` capped at 1 s). As many TLS handshakes in a row as there are
    /// endpoints failing on a certificate end the call at once: that is a misconfiguration.
    async fn execute(&self, call: &Call) -> Result<Answer, ClientError> {
        let options = self.inner.options;
        let start = Instant::now();
        let deadline = start + options.retry_deadline;
        let mut rotation = Rotation::new(&self.inner.base_urls, self.preferred());
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut attempts: u32 = 0;
        let mut attempts_since_wait: usize = 0;
        let mut certificate_failures_in_a_row: usize = 0;
        loop {
            let target = rotation.next_target();
            let timeout = if attempts == 0 {
                options.request_timeout
            } else {
                options
                    .request_timeout
                    .min(deadline.saturating_duration_since(Instant::now()))
            };
            attempts += 1;
            attempts_since_wait += 1;
            let failure = match self.exchange(&target, call, timeout).await {
                Exchange::Final(error) => return Err(error),
                Exchange::Answered(answer) if !is_transient_status(answer.status) => {
                    self.remember(answer.served_by_leader.as_deref().unwrap_or(&target));
                    return Ok(answer);
                }
                Exchange::Answered(answer) => failure_of_answer(&answer),
                Exchange::Failed(failure) => failure,
            };

            let hinted = match failure
                .leader_http
                .as_deref()
                .map(|leader| parse_endpoint(leader, self.inner.http.https))
            {
                Some(Ok(leader)) if leader != target => {
                    rotation.hint(leader);
                    true
                }
                _ => false,
            };
            // As many handshakes in a row as there are nodes failed on a certificate: a
            // misconfiguration, which retrying until the deadline would only hide for longer.
            certificate_failures_in_a_row = match failure.kind {
                FailureKind::Certificate => certificate_failures_in_a_row + 1,
                _ => 0,
            };
            if certificate_failures_in_a_row >= self.inner.base_urls.len() {
                return Err(ClientError::Unavailable(format!(
                    "every node refused the TLS handshake ({attempts} attempts); last: {target}: {}",
                    failure.description
                )));
            }
            let quick = hinted
                || matches!(
                    failure.kind,
                    FailureKind::Connect | FailureKind::Timeout | FailureKind::Certificate
                );
            let delay = if quick && attempts_since_wait < self.inner.base_urls.len() {
                Duration::ZERO
            } else {
                let retry_after = failure.retry_after.unwrap_or(Duration::ZERO);
                self.jittered(backoff)
                    .max(retry_after.min(RETRY_BACKOFF_MAX))
            };
            let now = Instant::now();
            if now + delay >= deadline {
                return Err(ClientError::Unavailable(format!(
                    "no definite answer within {:?} ({attempts} attempts); last failure: {target}: {}",
                    now.saturating_duration_since(start),
                    failure.description
                )));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                attempts_since_wait = 0;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }

    /// One attempt: sends `call` to `base_url` and reads the whole answer within `timeout`.
    async fn exchange(&self, base_url: &str, call: &Call, timeout: Duration) -> Exchange {
        let request = match build_request(base_url, call, self.inner.authorization.as_ref()) {
            Ok(request) => request,
            Err(error) => return Exchange::Final(error),
        };
        let attempt = async {
            let response = match self.inner.http.send(request).await {
                Ok(response) => response,
                Err(failure) => return Exchange::Failed(failure),
            };
            let (parts, body) = response.into_parts();
            let body = match Limited::new(body, RESPONSE_BYTES_MAX).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                    return Exchange::Final(ClientError::Decode(format!(
                        "{base_url}: answer larger than {RESPONSE_BYTES_MAX} bytes"
                    )));
                }
                Err(error) => {
                    return Exchange::Failed(Failure {
                        kind: FailureKind::Transport,
                        description: format!("reading the answer: {}", describe(&*error)),
                        leader_http: None,
                        retry_after: None,
                    });
                }
            };
            let retry_after = parts
                .headers
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let served_by_leader = parts
                .headers
                .get(LEADER_HEADER)
                .and_then(|value| value.to_str().ok())
                .and_then(|address| parse_endpoint(address.trim(), self.inner.http.https).ok());
            Exchange::Answered(Answer {
                status: parts.status,
                body,
                retry_after,
                served_by_leader,
            })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(exchange) => exchange,
            Err(_) => Exchange::Failed(Failure {
                kind: FailureKind::Timeout,
                description: format!("no answer within {timeout:?}"),
                leader_http: None,
                retry_after: None,
            }),
        }
    }

    fn preferred(&self) -> Option<String> {
        lock(&self.inner.preferred).clone()
    }

    fn remember(&self, base_url: &str) {
        let mut preferred = lock(&self.inner.preferred);
        if preferred.as_deref() != Some(base_url) {
            *preferred = Some(base_url.to_string());
        }
    }

    /// `backoff` with its upper half random ("equal jitter"), so clients that failed together do
    /// not retry together.
    fn jittered(&self, backoff: Duration) -> Duration {
        let half = backoff / 2;
        let random_nanos = lock(&self.inner.random).gen_range(0..=half.as_nanos() as u64);
        half + Duration::from_nanos(random_nanos)
    }
}

/// The order in which one call tries nodes.
struct Rotation<'a> {
    /// Invariant: not empty.
    base_urls: &'a [String],
    /// Index into `base_urls` of the next endpoint in turn.
    position: usize,
    /// Tried before anything else: a leader a failing node named.
    hint: Option<String>,
    /// Tried first: the node that answered the previous call.
    first: Option<String>,
}

impl<'a> Rotation<'a> {
    fn new(base_urls: &'a [String], preferred: Option<String>) -> Rotation<'a> {
        assert!(!base_urls.is_empty(), "a client has at least one endpoint");
        // Continue the rotation after the preferred node, so it is not tried twice in a row.
        let position = preferred
            .as_ref()
            .and_then(|preferred| base_urls.iter().position(|url| url == preferred))
            .map_or(0, |index| (index + 1) % base_urls.len());
        Rotation {
            base_urls,
            position,
            hint: None,
            first: preferred,
        }
    }

    fn hint(&mut self, base_url: String) {
        self.hint = Some(base_url);
    }

    fn next_target(&mut self) -> String {
        if let Some(hint) = self.hint.take() {
            return hint;
        }
        if let Some(first) = self.first.take() {
            return first;
        }
        let target = self.base_urls[self.position].clone();
        self.position = (self.position + 1) % self.base_urls.len();
        target
    }
}

/// The connections, and whether they speak TLS (then endpoints without a scheme are
/// `https://`). Cloned into every client that shares them.
#[derive(Clone)]
struct Http {
    transport: Transport,
    https: bool,
}

#[derive(Clone)]
enum Transport {
    /// HTTP/1.1, plain or TLS: a pool with one connection per request in flight.
    Pooled(HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>),
    /// HTTP/2 with prior knowledge, plain: one connection per node, a stream per request.
    Http2(Arc<Http2Connections>),
}

impl Http {
    fn is_http2(&self) -> bool {
        matches!(self.transport, Transport::Http2(_))
    }

    /// Sends `request` and returns the answer's head, its body still to be read.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, Failure> {
        match &self.transport {
            Transport::Pooled(client) => client.request(request).await.map_err(|error| {
                let kind = if certificate_refused(&error) {
                    FailureKind::Certificate
                } else if error.is_connect() {
                    FailureKind::Connect
                } else {
                    FailureKind::Transport
                };
                Failure::local(kind, describe(&error))
            }),
            Transport::Http2(connections) => connections.send(request).await,
        }
    }
}

/// One HTTP/2 connection per node, opened on first use and again after it closed.
///
/// ```text
///  send(request) ── slot of the URI's authority ── open sender? ──yes──▶ a new stream
///                                                    │ no
///                                                    ▼
///                          one task connects (TCP, h2 handshake, spawned connection task)
///                          while the others wait for its sender; a failure leaves the slot empty
/// ```
struct Http2Connections {
    /// Bounds the TCP connect, as the HTTP/1.1 pool's connector does.
    connect_timeout: Duration,
    /// Slots without an open connection that no request is using are dropped whenever a slot is
    /// added, so the nodes named as leaders over a client's life do not pile up.
    slots: StdMutex<HashMap<Authority, Arc<Http2Slot>>>,
}

#[derive(Default)]
struct Http2Slot {
    /// The connection's sender; `None` before the first connect, after a failed one and once
    /// the connection closed.
    sender: StdMutex<Option<http2::SendRequest<Full<Bytes>>>>,
    /// Held while connecting, so concurrent requests share one new connection rather than race
    /// to open several.
    connecting: tokio::sync::Mutex<()>,
}

impl Http2Connections {
    fn new(connect_timeout: Duration) -> Http2Connections {
        assert!(!connect_timeout.is_zero(), "a connect timeout is not zero");
        Http2Connections {
            connect_timeout,
            slots: StdMutex::new(HashMap::new()),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, Failure> {
        let authority = request
            .uri()
            .authority()
            .cloned()
            .expect("a request's URI is absolute: build_request starts it with a base URL");
        let slot = self.slot(&authority);
        let mut sender = slot.sender(&authority, self.connect_timeout).await?;
        let mut error = match sender.try_send_request(request).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        // The connection closed between the check and the send, and handed the request back
        // unsent: sending it on a new connection cannot apply it twice. The HTTP/1.1 pool does
        // the same with a reused connection.
        if let Some(request) = error.take_message() {
            let mut sender = slot.sender(&authority, self.connect_timeout).await?;
            return sender
                .send_request(request)
                .await
                .map_err(|error| Failure::local(FailureKind::Transport, describe(&error)));
        }
        Err(Failure::local(
            FailureKind::Transport,
            describe(&error.into_error()),
        ))
    }

    fn slot(&self, authority: &Authority) -> Arc<Http2Slot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(authority) {
            return slot.clone();
        }
        slots.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.open().is_some());
        slots.entry(authority.clone()).or_default().clone()
    }
}

impl Http2Slot {
    /// The cached sender if its connection is still open; a closed one is dropped, so the next
    /// request reconnects.
    fn open(&self) -> Option<http2::SendRequest<Full<Bytes>>> {
        let mut sender = lock(&self.sender);
        if sender.as_ref().is_some_and(http2::SendRequest::is_closed) {
            *sender = None;
        }
        sender.clone()
    }

    async fn sender(
        &self,
        authority: &Authority,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<Full<Bytes>>, Failure> {
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        // The task that held the lock may have connected meanwhile.
        if let Some(sender) = self.open() {
            return Ok(sender);
        }
        let sender = connect_http2(authority, connect_timeout).await?;
        *lock(&self.sender) = Some(sender.clone());
        Ok(sender)
    }
}

/// Opens an HTTP/2 connection with prior knowledge to `authority` and spawns its task.
async fn connect_http2(
    authority: &Authority,
    connect_timeout: Duration,
) -> Result<http2::SendRequest<Full<Bytes>>, Failure> {
    // As the HTTP/1.1 pool does: an authority without a port is port 80, and an IPv6 host is
    // given to the resolver without its brackets.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect((host, port))).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            return Err(Failure::local(
                FailureKind::Connect,
                format!("tcp connect error: {}", describe(&error)),
            ))
        }
        Err(_) => {
            return Err(Failure::local(
                FailureKind::Connect,
                format!("tcp connect error: no connection within {connect_timeout:?}"),
            ))
        }
    };
    // Requests are small and latency matters more than packet count.
    stream.set_nodelay(true).map_err(|error| {
        Failure::local(
            FailureKind::Connect,
            format!("tcp connect error: {}", describe(&error)),
        )
    })?;
    // A handshake failure is a Transport failure, as the HTTP/1.1 pool reports its own.
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|error| Failure::local(FailureKind::Transport, describe(&error)))?;
    // The connection's error also fails the requests in flight on it, which report it as their
    // failure; the log also says why a connection with none in flight went away.
    let node = authority.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%node, error = %describe(&error), "HTTP/2 connection closed");
        }
    });
    Ok(sender)
}

/// Refuses a zero request timeout, and parses each endpoint (trimmed) with [`parse_endpoint`]:
/// the endpoints as given and their base URLs, in the same order.
fn parse_endpoints<I, S>(
    endpoints: I,
    options: ClientOptions,
    https: bool,
) -> Result<(Vec<String>, Vec<String>), ClientError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    if options.request_timeout.is_zero() {
        return Err(ClientError::InvalidInput(
            "request_timeout must not be zero".to_string(),
        ));
    }
    let mut given = Vec::new();
    let mut base_urls = Vec::new();
    for endpoint in endpoints {
        let endpoint = endpoint.as_ref().trim();
        base_urls.push(parse_endpoint(endpoint, https)?);
        given.push(endpoint.to_string());
    }
    if given.is_empty() {
        return Err(ClientError::InvalidInput(
            "at least one endpoint is needed".to_string(),
        ));
    }
    assert_eq!(given.len(), base_urls.len(), "one base URL per endpoint");
    Ok((given, base_urls))
}

/// `scheme://authority` for an endpoint given as `host:port`, `http://host:port` or (with TLS,
/// `https` true) `https://host:port`; without a scheme it is `https` when `https`, else `http`.
/// A trailing `/` is tolerated. Anything with a path, a query, user information or another
/// scheme is refused.
fn parse_endpoint(endpoint: &str, https: bool) -> Result<String, ClientError> {
    let invalid = |why: &str| ClientError::InvalidInput(format!("endpoint {endpoint:?}: {why}"));
    if endpoint.is_empty() {
        return Err(invalid("empty"));
    }
    let default_scheme = if https { "https" } else { "http" };
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("{default_scheme}://{endpoint}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|error| invalid(&format!("{error}")))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") if https => "https",
        Some("https") => {
            return Err(invalid(
                "https:// needs TLS settings (a CA certificate: Client::with_tls, --ca-cert)",
            ))
        }
        _ => return Err(invalid("only http:// and https:// are supported")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("user information is not supported"));
    }
    if !(uri.path().is_empty() || uri.path() == "/") || uri.query().is_some() {
        return Err(invalid("expected host:port without a path"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `/v1/kv/{key}` with the key percent-encoded as one path segment.
fn key_path(key: &str) -> Result<String, ClientError> {
    if key.is_empty() {
        return Err(ClientError::InvalidInput("empty key".to_string()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(ClientError::InvalidInput(format!(
            "key of {} bytes is longer than {KEY_BYTES_MAX} bytes",
            key.len()
        )));
    }
    Ok(format!("/v1/kv/{}", utf8_percent_encode(key, UNRESERVED)))
}

fn build_request(
    base_url: &str,
    call: &Call,
    authorization: Option<&header::HeaderValue>,
) -> Result<Request<Full<Bytes>>, ClientError> {
    assert!(call.path_and_query.starts_with('/'), "a path is absolute");
    let mut builder = Request::builder()
        .method(call.method.clone())
        .uri(format!("{base_url}{}", call.path_and_query));
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization.clone());
    }
    if let Some(content_type) = call.content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(session) = call.session {
        builder = builder
            .header(CLIENT_ID_HEADER, session.client_id)
            .header(REQUEST_SEQ_HEADER, session.sequence);
    }
    builder
        .body(Full::new(call.body.clone()))
        .map_err(|error| ClientError::InvalidInput(format!("request to {base_url}: {error}")))
}

/// Whether an answer with `status` says "try again" rather than anything about the request:
/// every 5xx (503 is the server's answer to every transient condition: no leader, a
/// leadership transfer, busy, a write of unknown outcome...), 408 (the request did not arrive
/// in time: the node did nothing with it) and 429 (a proxy's rate limit).
fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The failure a transient answer stands for, with the leader it names, if any.
fn failure_of_answer(answer: &Answer) -> Failure {
    assert!(
        is_transient_status(answer.status),
        "only transient answers are retried"
    );
    let error = error_response(answer);
    Failure {
        kind: FailureKind::ServerStatus,
        description: format!("{}: {}", answer.status, error.error),
        leader_http: error.leader_http,
        retry_after: answer.retry_after,
    }
}

/// A 2xx answer's JSON body; anything else is a [`ClientError::Server`].
fn decode_success<T: DeserializeOwned>(answer: Answer, what: &str) -> Result<T, ClientError> {
    if !answer.status.is_success() {
        return Err(server_error(&answer));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|error| ClientError::Decode(format!("{what}: {error}: {}", quote(&answer.body))))
}

fn decode_cas_response(body: &[u8]) -> Result<CasResponse, serde_json::Error> {
    serde_json::from_slice(body)
}

fn server_error(answer: &Answer) -> ClientError {
    ClientError::Server {
        status: answer.status.as_u16(),
        error: error_response(answer),
    }
}

/// The answer's `ErrorResponse`, or one made up from its status and text when the body is not
/// one (a proxy's page, an empty body).
fn error_response(answer: &Answer) -> ErrorResponse {
    match serde_json::from_slice::<ErrorResponse>(&answer.body) {
        Ok(error) => error,
        Err(_) => {
            let reason = answer.status.canonical_reason().unwrap_or("unknown status");
            let error = if answer.body.is_empty() {
                reason.to_string()
            } else {
                format!("{reason}: {}", quote(&answer.body))
            };
            ErrorResponse {
                error,
                leader: None,
                leader_http: None,
            }
        }
    }
}

/// The start of a body, as text, for an error message.
fn quote(body: &[u8]) -> String {
    let shown = &body[..body.len().min(ERROR_QUOTE_BYTES_MAX)];
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if body.len() > shown.len() {
        text.push('…');
    }
    text
}

/// An error and its chain of sources, since hyper's own message ("client error (Connect)") hides
/// the useful part ("Connection refused").
/// Whether `error` comes from a TLS handshake that failed on a certificate, on either side.
fn certificate_refused(error: &(dyn StdError + 'static)) -> bool {
    use rustls::AlertDescription as Alert;
    let on_certificate = |tls: &rustls::Error| match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => true,
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            Alert::BadCertificate
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::CertificateRequired
        ),
        _ => false,
    };
    let mut current = Some(error);
    while let Some(cause) = current {
        if cause
            .downcast_ref::<rustls::Error>()
            .is_some_and(on_certificate)
        {
            return true;
        }
        // An io::Error hands out the error it wraps (maybe another io::Error) with `get_ref`,
        // not as its source.
        current = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => cause.source(),
        };
    }
    false
}

fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut description = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        description.push_str(": ");
        description.push_str(&cause.to_string());
        source = cause.source();
    }
    description
}

/// Locks a mutex that guards plain data: a panic elsewhere cannot leave it inconsistent, so a
/// poisoned lock is used as it is.
fn lock<T>(mutex: &StdMutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_are_told_from_other_failures_however_deep_they_are_wrapped() {
        use std::io::{Error as IoError, ErrorKind};
        let unknown_issuer =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As hyper-rustls reports a refused server certificate: an io::Error in an io::Error.
        let nested = IoError::other(IoError::new(ErrorKind::InvalidData, unknown_issuer));
        assert!(certificate_refused(&nested));
        let refused_ours = IoError::new(
            ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        assert!(certificate_refused(&refused_ours));
        // Not about a certificate: the node is down, or the handshake failed otherwise.
        assert!(!certificate_refused(&IoError::from(
            ErrorKind::ConnectionRefused
        )));
        let other_alert = IoError::new(
            ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        assert!(!certificate_refused(&other_alert));
    }

    #[test]
    fn endpoints_are_normalized_to_base_urls() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8001", false).ok(),
            Some("http://127.0.0.1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("http://node-1:8001/", false).ok(),
            Some("http://node-1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("[::1]:8001", false).ok(),
            Some("http://[::1]:8001".to_string())
        );
        for bad in [
            "",
            "https://node:1",
            "node:1/path",
            "http://",
            "user@node:1",
            "node:1?x=1",
        ] {
            assert!(
                matches!(
                    parse_endpoint(bad, false),
                    Err(ClientError::InvalidInput(_))
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn with_tls_endpoints_default_to_https_and_http_stays_possible() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8001", true).ok(),
            Some("https://127.0.0.1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("https://node-1:8001/", true).ok(),
            Some("https://node-1:8001".to_string())
        );
        assert_eq!(
            parse_endpoint("http://node-1:8001", true).ok(),
            Some("http://node-1:8001".to_string())
        );
        let error = parse_endpoint("https://node-1:8001", false).expect_err("no TLS settings");
        assert!(error.to_string().contains("--ca-cert"), "{error}");
        assert!(parse_endpoint("ftp://node-1:8001", true).is_err());
    }

    #[test]
    fn keys_are_one_encoded_path_segment() {
        assert_eq!(key_path("a/b c").ok(), Some("/v1/kv/a%2Fb%20c".to_string()));
        assert_eq!(
            key_path("A-z_0.9~").ok(),
            Some("/v1/kv/A-z_0.9~".to_string())
        );
        assert_eq!(
            key_path("é?#%").ok(),
            Some("/v1/kv/%C3%A9%3F%23%25".to_string())
        );
        assert!(matches!(key_path(""), Err(ClientError::InvalidInput(_))));
        assert!(key_path(&"k".repeat(KEY_BYTES_MAX)).is_ok());
        assert!(matches!(
            key_path(&"k".repeat(KEY_BYTES_MAX + 1)),
            Err(ClientError::InvalidInput(_))
        ));
    }

    #[test]
    fn rotation_starts_after_the_preferred_node_and_follows_hints() {
        let urls = vec![
            "http://a".to_string(),
            "http://b".to_string(),
            "http://c".to_string(),
        ];
        let mut rotation = Rotation::new(&urls, Some("http://b".to_string()));
        assert_eq!(rotation.next_target(), "http://b");
        assert_eq!(rotation.next_target(), "http://c");
        rotation.hint("http://leader".to_string());
        assert_eq!(rotation.next_target(), "http://leader");
        assert_eq!(rotation.next_target(), "http://a");
        assert_eq!(rotation.next_target(), "http://b");

        let mut rotation = Rotation::new(&urls, None);
        assert_eq!(rotation.next_target(), "http://a");
    }

    #[test]
    fn error_bodies_that_are_not_json_become_error_responses() {
        let answer = Answer {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from_static(b"<html>oops</html>"),
            retry_after: None,
            served_by_leader: None,
        };
        assert_eq!(
            error_response(&answer).error,
            "Bad Gateway: <html>oops</html>"
        );
        let answer = Answer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Bytes::from_static(br#"{"error":"no leader","leader_http":"10.0.0.2:8001"}"#),
            retry_after: Some(Duration::from_secs(1)),
            served_by_leader: None,
        };
        let failure = failure_of_answer(&answer);
        assert_eq!(failure.kind, FailureKind::ServerStatus);
        for transient in [500, 502, 503, 504, 408, 429] {
            let status = StatusCode::from_u16(transient).expect("a status");
            assert!(is_transient_status(status), "{status}");
        }
        for definite in [200, 204, 400, 401, 403, 404, 409, 413] {
            let status = StatusCode::from_u16(definite).expect("a status");
            assert!(!is_transient_status(status), "{status}");
        }
        assert_eq!(failure.leader_http.as_deref(), Some("10.0.0.2:8001"));
        assert_eq!(failure.description, "503 Service Unavailable: no leader");
    }
}
