//! Connections and one attempt: a [`Call`] sent to one node, and its answer read whole within a
//! timeout.
//!
//! ```text
//!  Call + base URL ─► build_request ─► Http::send ─► node
//!                                        │ HTTP/1.1, plain or TLS: hyper-util's pooling client,
//!                                        │   a keep-alive connection per request in flight
//!                                        │ h2c (Client::with_http2): one connection per node,
//!                                        │   a stream per request (`http2`)
//!                                        ▼
//!  answer head + body (at most RESPONSE_BYTES_MAX) ─► Exchange::Answered(Answer)
//!  refused, timed out, broken, certificate refused ─► Exchange::Failed(Failure)  (retry decides)
//! ```

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::answer::Answer;
use super::endpoint::parse_endpoint;
use super::http2::Http2Connections;
use super::ClientError;
use crate::api::{CLIENT_ID_HEADER, LEADER_HEADER, REQUEST_SEQ_HEADER};
use crate::tls::ClientTls;

/// Largest answer body the client reads, in bytes. A scan of many large values can be big, but an
/// answer past this is a misbehaving peer, not data: it is refused rather than buffered.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Idle time after which an HTTP/1.1 connection of the pool is closed.
const HTTP1_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A request, ready to be sent to any node.
pub(super) struct Call {
    pub(super) method: Method,
    /// Starts with `/`; every key and query value in it is percent-encoded.
    pub(super) path_and_query: String,
    pub(super) body: Bytes,
    pub(super) content_type: Option<&'static str>,
    pub(super) session: Option<Session>,
}

impl Call {
    /// A call without a body or a session.
    pub(super) fn empty(method: Method, path_and_query: String) -> Call {
        Call {
            method,
            path_and_query,
            body: Bytes::new(),
            content_type: None,
            session: None,
        }
    }

    /// A call without a session whose body is bytes (a value, a suffix).
    pub(super) fn octets(method: Method, path_and_query: String, body: Bytes) -> Call {
        Call {
            content_type: Some("application/octet-stream"),
            body,
            ..Call::empty(method, path_and_query)
        }
    }

    /// A call without a session whose body (possibly empty) is JSON.
    pub(super) fn json(method: Method, path_and_query: String, body: Bytes) -> Call {
        Call {
            content_type: (!body.is_empty()).then_some("application/json"),
            body,
            ..Call::empty(method, path_and_query)
        }
    }
}

/// The exactly-once identity of a write.
#[derive(Clone, Copy, Debug)]
pub(super) struct Session {
    pub(super) client_id: u64,
    pub(super) sequence: u64,
}

/// Why an attempt got no definite answer.
pub(super) struct Failure {
    pub(super) kind: FailureKind,
    pub(super) description: String,
    /// A leader address the failing node named.
    pub(super) leader_http: Option<String>,
    pub(super) retry_after: Option<Duration>,
}

impl Failure {
    /// A failure of the exchange itself, before any answer that could name a leader.
    pub(super) fn local(kind: FailureKind, description: String) -> Failure {
        Failure {
            kind,
            description,
            leader_http: None,
            retry_after: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FailureKind {
    /// Could not connect: the node is down or the address is wrong.
    Connect,
    /// No full answer within the attempt's timeout.
    Timeout,
    /// The connection broke during the exchange (a failed HTTP/2 handshake included).
    Transport,
    /// The node answered with a transient status (`retry::is_transient_status`).
    ServerStatus,
    /// The TLS handshake failed on a certificate: the node's is not the CA's or not for its
    /// address, or the node refused ours. Trying again helps only once a certificate changes.
    Certificate,
}

/// The outcome of one attempt.
pub(super) enum Exchange {
    Answered(Answer),
    Failed(Failure),
    /// Retrying cannot help (the request could not be built, the answer is too large).
    Final(ClientError),
}

/// The connections, and whether they speak TLS (then endpoints without a scheme are
/// `https://`). Cloned into every client that shares them.
#[derive(Clone)]
pub(super) struct Http {
    transport: Transport,
    pub(super) https: bool,
}

#[derive(Clone)]
enum Transport {
    /// HTTP/1.1, plain or TLS: a pool with one connection per request in flight.
    /// Boxed: the pooled client is a few hundred bytes, the other variant a pointer.
    Pooled(Box<HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>>),
    /// HTTP/2 with prior knowledge, plain: one connection per node, a stream per request.
    Http2(Arc<Http2Connections>),
}

impl Http {
    /// HTTP/1.1, over TLS when `tls` is given.
    pub(super) fn http1(connect_timeout: Duration, tls: Option<ClientTls>) -> Http {
        let https = tls.is_some();
        let client = HttpClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(HTTP1_IDLE_TIMEOUT)
            .build(connector(connect_timeout, tls));
        Http {
            transport: Transport::Pooled(Box::new(client)),
            https,
        }
    }

    /// HTTP/2 with prior knowledge over plain TCP (h2c).
    pub(super) fn http2(connect_timeout: Duration) -> Http {
        Http {
            transport: Transport::Http2(Arc::new(Http2Connections::new(connect_timeout))),
            https: false,
        }
    }

    pub(super) fn is_http2(&self) -> bool {
        matches!(self.transport, Transport::Http2(_))
    }

    /// One attempt: sends `call` to `base_url` and reads the whole answer within `timeout`.
    pub(super) async fn attempt(
        &self,
        base_url: &str,
        call: &Call,
        authorization: Option<&header::HeaderValue>,
        timeout: Duration,
    ) -> Exchange {
        let request = match build_request(base_url, call, authorization) {
            Ok(request) => request,
            Err(error) => return Exchange::Final(error),
        };
        match tokio::time::timeout(timeout, self.exchange(base_url, request)).await {
            Ok(exchange) => exchange,
            Err(_) => Exchange::Failed(Failure::local(
                FailureKind::Timeout,
                format!("no answer within {timeout:?}"),
            )),
        }
    }

    /// One attempt whose successful answer is a stream (a watch): sends `call` to `base_url`
    /// and waits at most `timeout` for the answer's head. A 2xx answer comes back with its body
    /// unread, for the caller to read as it arrives, with no time limit; any other answer is
    /// read whole, as [`Http::attempt`] reads it, and comes back as the `Err` exchange.
    pub(super) async fn open_stream(
        &self,
        base_url: &str,
        call: &Call,
        authorization: Option<&header::HeaderValue>,
        timeout: Duration,
    ) -> Result<Incoming, Exchange> {
        let request = build_request(base_url, call, authorization).map_err(Exchange::Final)?;
        let response = match tokio::time::timeout(timeout, self.send(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => return Err(Exchange::Failed(failure)),
            Err(_) => {
                return Err(Exchange::Failed(Failure::local(
                    FailureKind::Timeout,
                    format!("no answer within {timeout:?}"),
                )))
            }
        };
        if response.status().is_success() {
            return Ok(response.into_body());
        }
        match tokio::time::timeout(timeout, self.read_answer(base_url, response)).await {
            Ok(exchange) => Err(exchange),
            Err(_) => Err(Exchange::Failed(Failure::local(
                FailureKind::Timeout,
                format!("no whole answer within {timeout:?}"),
            ))),
        }
    }

    async fn exchange(&self, base_url: &str, request: Request<Full<Bytes>>) -> Exchange {
        match self.send(request).await {
            Ok(response) => self.read_answer(base_url, response).await,
            Err(failure) => Exchange::Failed(failure),
        }
    }

    /// Reads the body of `response` whole (at most [`RESPONSE_BYTES_MAX`]) into an [`Answer`].
    async fn read_answer(&self, base_url: &str, response: Response<Incoming>) -> Exchange {
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, RESPONSE_BYTES_MAX).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return Exchange::Final(ClientError::Decode(format!(
                    "{base_url}: answer larger than {RESPONSE_BYTES_MAX} bytes"
                )));
            }
            Err(error) => {
                return Exchange::Failed(Failure::local(
                    FailureKind::Transport,
                    format!("reading the answer: {}", describe(&*error)),
                ));
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
            .and_then(|address| parse_endpoint(address.trim(), self.https).ok());
        Exchange::Answered(Answer {
            status: parts.status,
            body,
            retry_after,
            served_by_leader,
        })
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

/// TCP (with a connect timeout and no Nagle delay) under TLS for `https://` URIs; the TLS
/// settings are unused without [`ClientTls`], as `https://` endpoints are refused then.
fn connector(connect_timeout: Duration, tls: Option<ClientTls>) -> HttpsConnector<HttpConnector> {
    assert!(!connect_timeout.is_zero(), "a connect timeout is not zero");
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    // Requests are small and latency matters more than packet count.
    connector.set_nodelay(true);
    // The TLS connector hands `https://` URIs to this one for the TCP part.
    connector.enforce_http(false);
    let tls_config = tls.map_or_else(crate::tls::plain_config, |tls| tls.config());
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls_config).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector)
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

/// An error and its chain of sources, since hyper's own message ("client error (Connect)") hides
/// the useful part ("Connection refused").
pub(super) fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut description = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        description.push_str(": ");
        description.push_str(&cause.to_string());
        source = cause.source();
    }
    description
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
}
