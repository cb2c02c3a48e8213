//! TLS for a raftkv node: HTTPS for its API, mutual TLS for its Raft transport, and HTTPS for
//! its own calls to the other nodes (forwarding to the leader, announcing, joining).
//!
//! ```text
//!  --tls-cert/--tls-key [--tls-ca]  ─► HTTPS on --http-addr (client certificates required and
//!                                      checked against --tls-ca when given)
//!                                   └► node-to-node HTTPS: https:// to the other nodes, trusting
//!                                      --tls-ca and --peer-tls-ca, presenting --tls-cert
//!  --peer-tls-cert/-key/-ca         ─► mutual TLS on every Raft connection (raft_node::transport::tls)
//! ```
//!
//! Every file is read and parsed when the node starts ([`ServeArgs::resolve_tls`]), so a
//! missing file, a key that does not fit its certificate or a certificate not signed by the CA
//! stops the node with the reason instead of failing every connection later.
//!
//! HTTPS connections are accepted by [`TlsListener`], which hands the HTTP server streams that
//! do their TLS handshake on first use, inside the connection's own task: one slow client's
//! handshake never holds up the accept loop, and the server's per-connection limits and
//! graceful shutdown apply to TLS connections as they are.
//!
//! [`ServeArgs::resolve_tls`]: crate::settings::ServeArgs::resolve_tls

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use raft_core::NodeId;
use raft_node::transport::tls::live::{
    ForgetfulSessionCache, LiveCertifiedKey, LiveClientVerifier, LiveServerVerifier,
};
use raft_node::transport::tls::{self as peer_tls, PeerMaterial, PeerTls};
use raftkv_client::{Client, ClientError, ClientOptions, ClientTls};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

/// Longest time an HTTPS client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS files of a node as given (flags, environment, file), before they are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsPaths {
    /// `--tls-cert`: the HTTPS certificate chain.
    pub http_certificate: Option<PathBuf>,
    /// `--tls-key`: its private key.
    pub http_key: Option<PathBuf>,
    /// `--tls-ca`: the CA client certificates must chain to (then they are required).
    pub http_client_ca: Option<PathBuf>,
    /// `--peer-tls-cert`: this node's certificate on the Raft transport.
    pub peer_certificate: Option<PathBuf>,
    /// `--peer-tls-key`: its private key.
    pub peer_key: Option<PathBuf>,
    /// `--peer-tls-ca`: the cluster CA every peer's certificate must chain to.
    pub peer_ca: Option<PathBuf>,
}

impl TlsPaths {
    /// Checks that the settings come in usable groups: the HTTPS certificate with its key, the
    /// client CA only with them, the three peer settings together, and a CA for the node's own
    /// HTTPS calls. Returns the setting at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match (&self.http_certificate, &self.http_key) {
            (Some(_), None) => {
                return Err((
                    "tls_key",
                    "--tls-cert needs --tls-key (its private key)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(("tls_cert", "--tls-key needs --tls-cert".into()));
            }
            _ => {}
        }
        if self.http_client_ca.is_some() && self.http_certificate.is_none() {
            return Err((
                "tls_ca",
                "--tls-ca (require client certificates) needs --tls-cert and --tls-key".into(),
            ));
        }
        let peer = [
            ("--peer-tls-cert", self.peer_certificate.is_some()),
            ("--peer-tls-key", self.peer_key.is_some()),
            ("--peer-tls-ca", self.peer_ca.is_some()),
        ];
        let given = peer.iter().filter(|(_, given)| *given).count();
        if given != 0 && given != peer.len() {
            let missing: Vec<&str> = peer
                .iter()
                .filter(|(_, given)| !given)
                .map(|(name, _)| *name)
                .collect();
            return Err((
                "peer_tls",
                format!(
                    "give --peer-tls-cert, --peer-tls-key and --peer-tls-ca together (missing: {})",
                    missing.join(", ")
                ),
            ));
        }
        if self.http_certificate.is_some()
            && self.http_client_ca.is_none()
            && self.peer_ca.is_none()
        {
            return Err((
                "tls_ca",
                "with --tls-cert the node calls the other nodes over HTTPS (forwarding to the \
                 leader, joining) and must verify their certificates: give --tls-ca or the \
                 --peer-tls-* settings, whose CA it then trusts"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A node's TLS settings, read and checked: what [`crate::server::serve`] and
/// [`crate::server::KvServer`] use. The default is no TLS anywhere. Cheap to clone; clones
/// share the certificates, keys and CAs in force, which [`NodeTls::reload`] replaces.
#[derive(Clone, Default)]
pub struct NodeTls {
    /// The files, for [`NodeTls::reload`].
    paths: TlsPaths,
    http: Option<HttpTls>,
    peer: Option<PeerTls>,
    /// Shared with the HTTPS listener, read by the metrics.
    http_handshakes: Arc<HandshakeCounters>,
}

/// The HTTPS side: the rustls configurations, made once, and the live cells they read, which
/// a reload fills anew (see `raft_node::transport::tls::live`).
#[derive(Clone)]
struct HttpTls {
    /// The HTTPS server's settings (and, with ALPN `h2`, the gRPC server's).
    server: Arc<ServerConfig>,
    /// The settings of this node's HTTPS calls to the other nodes.
    client: ClientTls,
    /// `--tls-cert` and `--tls-key`: presented to HTTPS clients, and to the other nodes when
    /// this node calls them.
    certified_key: LiveCertifiedKey,
    /// `--tls-ca`: what client certificates must chain to, when given.
    client_verifier: Option<LiveClientVerifier>,
    /// `--tls-ca` and `--peer-tls-ca`: what the other nodes' HTTPS certificates must chain to.
    node_verifier: LiveServerVerifier,
    /// The sessions HTTPS clients may resume, forgotten at each reload.
    sessions: Arc<ForgetfulSessionCache>,
}

/// TLS sessions the HTTPS server remembers for resumption (rustls' default).
const HTTP_SESSIONS_MAX: usize = 256;

/// The HTTPS files, read and checked, not in force yet.
struct HttpMaterial {
    certified_key: Arc<CertifiedKey>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    node_verifier: Arc<dyn ServerCertVerifier>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configurations hold private keys: say only what is on.
        formatter
            .debug_struct("NodeTls")
            .field("https", &self.http.is_some())
            .field("peer_tls", &self.peer.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Reads and checks every file of `paths` (which must [`TlsPaths::validate`]). Returns the
    /// setting at fault and why.
    pub fn load(paths: &TlsPaths) -> Result<NodeTls, (&'static str, String)> {
        let Material { http, peer } = read_material(paths)?;
        let peer = peer
            .map(PeerTls::from_material)
            .transpose()
            .map_err(|error| ("peer_tls", error.to_string()))?;
        let http = http.map(HttpTls::new).transpose()?;
        Ok(NodeTls {
            paths: paths.clone(),
            http,
            peer,
            http_handshakes: Arc::default(),
        })
    }

    /// Reads every file again and, if all of them pass the checks of a start (and the peer
    /// certificate still names node `id`), puts them in force for every handshake from now on,
    /// on every clone of this value; connections already made keep what they have. If any
    /// fails, nothing changes: returns the setting at fault and why.
    pub fn reload(&self, id: NodeId) -> Result<(), (&'static str, String)> {
        let Material { http, peer } = read_material(&self.paths)?;
        if let Some(peer) = &peer {
            peer.check_identity(id)
                .map_err(|error| ("peer_tls_cert", error.to_string()))?;
        }
        // The same paths as at load: the same parts are on.
        assert_eq!(http.is_some(), self.http.is_some(), "HTTPS stays on or off");
        assert_eq!(
            peer.is_some(),
            self.peer.is_some(),
            "peer TLS stays on or off"
        );
        // Every check passed: from here nothing can fail, so the node never runs on half of
        // the new files.
        if let (Some(material), Some(live)) = (peer, &self.peer) {
            live.install(material);
        }
        if let (Some(material), Some(live)) = (http, &self.http) {
            live.install(material);
        }
        Ok(())
    }

    /// The files this node's TLS comes from.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// Whether the HTTP API is served over HTTPS (and the other nodes are called with it).
    pub fn https(&self) -> bool {
        self.http.is_some()
    }

    /// `inner` wrapped to serve HTTPS, or `inner` itself back when the API is plain HTTP.
    pub fn http_listener<L>(&self, inner: L) -> Result<TlsListener<L>, L> {
        match &self.http {
            Some(http) => Ok(TlsListener {
                inner,
                acceptor: TlsAcceptor::from(Arc::clone(&http.server)),
                counters: Arc::clone(&self.http_handshakes),
            }),
            None => Err(inner),
        }
    }

    /// `inner` wrapped to serve the etcd gRPC API over the same TLS as the HTTPS API (same
    /// certificate, same client CA, reloaded with them), or `inner` itself back when the API
    /// is plain HTTP. gRPC is HTTP/2 only, and clients check the server agreed to it: the
    /// handshake offers ALPN `h2` (the HTTPS listener offers none, so HTTP/1 clients keep
    /// working there).
    pub fn grpc_listener<L>(&self, inner: L) -> Result<TlsListener<L>, L> {
        match &self.http {
            Some(http) => {
                // The clone shares the resolver and verifier cells.
                let mut config = (*http.server).clone();
                config.alpn_protocols = vec![b"h2".to_vec()];
                Ok(TlsListener {
                    inner,
                    acceptor: TlsAcceptor::from(Arc::new(config)),
                    counters: Arc::clone(&self.http_handshakes),
                })
            }
            None => Err(inner),
        }
    }

    /// HTTPS handshakes that failed so far (a client without a certificate the CA signed,
    /// plain HTTP sent to the HTTPS port, a handshake that took too long).
    pub fn http_handshakes_failed(&self) -> u64 {
        self.http_handshakes.failed.load(Ordering::Relaxed)
    }

    /// The settings of this node's HTTPS calls to the other nodes.
    pub fn http_client(&self) -> Option<&ClientTls> {
        self.http.as_ref().map(|http| &http.client)
    }

    /// The Raft transport's mutual TLS settings.
    pub fn peer(&self) -> Option<&PeerTls> {
        self.peer.as_ref()
    }

    /// A client of the nodes at `endpoints`, over HTTPS when this node uses it.
    pub fn client<I, S>(&self, endpoints: I, options: ClientOptions) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        match self.http_client() {
            Some(tls) => Client::with_tls(endpoints, options, tls.clone()),
            None => Client::with_options(endpoints, options),
        }
    }

    /// The scheme of the other nodes' HTTP addresses.
    pub fn scheme(&self) -> &'static str {
        if self.https() {
            "https"
        } else {
            "http"
        }
    }

    /// A connector for hyper clients calling the other nodes: `https://` with this node's
    /// settings when on, plain `http://` always.
    pub fn connector(&self) -> HttpsConnector<HttpConnector> {
        let mut http = HttpConnector::new();
        // Forwarded requests are small and latency-bound.
        http.set_nodelay(true);
        // The TLS connector hands `https://` URIs to this one for the TCP part.
        http.enforce_http(false);
        let config = match self.http_client() {
            // The clone shares the verifier and certificate cells, so reloads reach it.
            Some(tls) => (*tls.config()).clone(),
            None => plain_client_config(),
        };
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }
}

/// Settings for a connector that is only ever used for `http://` (the forwarder of a node
/// without HTTPS): no CA, so an `https://` address would fail rather than go unverified.
fn plain_client_config() -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(peer_tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13]);
    match builder {
        Ok(builder) => builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        // The ring provider supports TLS 1.3: this would be a broken build, not bad input.
        Err(error) => panic!("the ring provider refuses TLS 1.3: {error}"),
    }
}

/// Every TLS file of a node, read and checked, not in force yet.
struct Material {
    http: Option<HttpMaterial>,
    peer: Option<PeerMaterial>,
}

/// Reads and checks the HTTPS files and the peer files of `paths` (which must validate).
fn read_material(paths: &TlsPaths) -> Result<Material, (&'static str, String)> {
    paths.validate()?;
    let peer = match (&paths.peer_certificate, &paths.peer_key, &paths.peer_ca) {
        (Some(certificate), Some(key), Some(ca)) => Some(
            PeerMaterial::from_pem_files(ca, certificate, key)
                .map_err(|error| ("peer_tls", error.to_string()))?,
        ),
        _ => None,
    };
    let http = match (&paths.http_certificate, &paths.http_key) {
        (Some(certificate), Some(key)) => Some(http_material(paths, certificate, key)?),
        _ => None,
    };
    Ok(Material { http, peer })
}

impl HttpTls {
    /// The HTTPS server settings (client certificates required when `--tls-ca` is given) and
    /// those of the node's own HTTPS calls, both reading cells that start with `material`.
    fn new(material: HttpMaterial) -> Result<HttpTls, (&'static str, String)> {
        let certified_key = LiveCertifiedKey::new(material.certified_key);
        let client_verifier = material.client_verifier.map(LiveClientVerifier::new);
        let node_verifier = LiveServerVerifier::new(material.node_verifier);
        let provider = peer_tls::crypto_provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| ("tls_cert", error.to_string()))?;
        let builder = match &client_verifier {
            None => builder.with_no_client_auth(),
            Some(verifier) => builder.with_client_cert_verifier(Arc::new(verifier.clone())),
        };
        let mut server = builder.with_cert_resolver(Arc::new(certified_key.clone()));
        let sessions = Arc::new(ForgetfulSessionCache::new(HTTP_SESSIONS_MAX));
        server.session_storage = Arc::clone(&sessions) as _;
        // The node trusts the client CA and the peer CA (whichever are given; usually one
        // cluster CA) and presents its HTTPS certificate, which the other nodes require when
        // they run with `--tls-ca`.
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| ("tls_cert", error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(node_verifier.clone()))
            .with_client_cert_resolver(Arc::new(certified_key.clone()));
        // A resumed session skips the server's certificate check: after a reload to a new CA
        // the node would go on trusting a server only the old one vouched for.
        client.resumption = rustls::client::Resumption::disabled();
        Ok(HttpTls {
            server: Arc::new(server),
            client: ClientTls::from_config(Arc::new(client)),
            certified_key,
            client_verifier,
            node_verifier,
            sessions,
        })
    }

    /// Puts `material` in force from the next handshake on (checked already: cannot fail).
    fn install(&self, material: HttpMaterial) {
        match (&self.client_verifier, material.client_verifier) {
            (Some(live), Some(verifier)) => live.replace(verifier),
            (None, None) => {}
            _ => unreachable!("the same paths require client certificates or not"),
        }
        self.node_verifier.replace(material.node_verifier);
        self.certified_key.replace(material.certified_key);
        // Sessions made under the old CA must not skip the new one's check.
        self.sessions.forget_all();
    }
}

/// Reads and checks the HTTPS files: `certificate` and `key` (which must fit together), the
/// client CA of `paths` when given, and the CAs the node verifies the other nodes with.
fn http_material(
    paths: &TlsPaths,
    certificate: &Path,
    key: &Path,
) -> Result<HttpMaterial, (&'static str, String)> {
    let chain = peer_tls::read_certificates(certificate)
        .map_err(|error| ("tls_cert", error.to_string()))?;
    let key_der =
        peer_tls::read_private_key(key).map_err(|error| ("tls_key", error.to_string()))?;
    let provider = peer_tls::crypto_provider();
    let certified_key = CertifiedKey::from_der(chain, key_der, &provider).map_err(|error| {
        (
            "tls_key",
            format!(
                "{} and {} do not fit together: {error}",
                certificate.display(),
                key.display()
            ),
        )
    })?;
    let client_verifier = match &paths.http_client_ca {
        None => None,
        Some(ca) => {
            let authorities =
                peer_tls::read_certificates(ca).map_err(|error| ("tls_ca", error.to_string()))?;
            let roots = peer_tls::root_store(&authorities, &ca.display().to_string())
                .map_err(|error| ("tls_ca", error.to_string()))?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|error| ("tls_ca", format!("{}: {error}", ca.display())))?;
            Some(verifier)
        }
    };
    let mut authorities = Vec::new();
    for ca in [&paths.http_client_ca, &paths.peer_ca]
        .into_iter()
        .flatten()
    {
        authorities.extend(
            peer_tls::read_certificates(ca).map_err(|error| ("tls_ca", error.to_string()))?,
        );
    }
    assert!(
        !authorities.is_empty(),
        "validate requires a CA with --tls-cert"
    );
    let roots = peer_tls::root_store(&authorities, "the CAs of --tls-ca and --peer-tls-ca")
        .map_err(|error| ("tls_ca", error.to_string()))?;
    let node_verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| ("tls_ca", error.to_string()))?;
    Ok(HttpMaterial {
        certified_key: Arc::new(certified_key),
        client_verifier,
        node_verifier,
    })
}

/// Counts HTTPS handshakes that failed.
#[derive(Debug, Default)]
struct HandshakeCounters {
    /// TLS handshakes that failed or timed out.
    failed: AtomicU64,
}

/// An [`axum::serve::Listener`] whose connections speak TLS: it accepts from `inner` and hands
/// out streams that do the server side of the handshake on first use (see the module doc).
/// Made by [`NodeTls::http_listener`].
pub struct TlsListener<L> {
    inner: L,
    acceptor: TlsAcceptor,
    counters: Arc<HandshakeCounters>,
}

impl<L> axum::serve::Listener for TlsListener<L>
where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = TlsIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = self.inner.accept().await;
        let io = TlsIo {
            state: State::Handshaking {
                accept: Box::new(self.acceptor.accept(stream)),
                deadline: Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)),
            },
            counters: Arc::clone(&self.counters),
        };
        (io, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One HTTPS connection: handshakes on the first read or write, then reads and writes
/// plaintext through the TLS session.
pub struct TlsIo<S> {
    state: State<S>,
    counters: Arc<HandshakeCounters>,
}

enum State<S> {
    /// Boxed, like the stream it becomes: a TLS session is over a kilobyte.
    Handshaking {
        accept: Box<tokio_rustls::Accept<S>>,
        deadline: Pin<Box<tokio::time::Sleep>>,
    },
    Ready(Box<tokio_rustls::server::TlsStream<S>>),
    /// The handshake failed; the connection is useless and is closed by its owner.
    Failed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsIo<S> {
    /// Drives the handshake to its end; `Ready(Ok)` once the stream is usable.
    fn poll_handshake(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = match &mut self.state {
            State::Ready(_) => return Poll::Ready(Ok(())),
            State::Failed => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the TLS handshake failed",
                )))
            }
            State::Handshaking { accept, deadline } => {
                match Pin::new(accept.as_mut()).poll(context) {
                    Poll::Ready(outcome) => outcome,
                    Poll::Pending => match deadline.as_mut().poll(context) {
                        Poll::Ready(()) => Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
                        )),
                        Poll::Pending => return Poll::Pending,
                    },
                }
            }
        };
        match outcome {
            Ok(stream) => {
                self.state = State::Ready(Box::new(stream));
                Poll::Ready(Ok(()))
            }
            Err(error) => {
                self.state = State::Failed;
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "HTTPS handshake failed");
                Poll::Ready(Err(error))
            }
        }
    }

    /// The TLS stream, once the handshake is done.
    fn ready_stream(&mut self) -> Pin<&mut tokio_rustls::server::TlsStream<S>> {
        match &mut self.state {
            State::Ready(stream) => Pin::new(stream.as_mut()),
            _ => unreachable!("called after poll_handshake returned Ready(Ok)"),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(context))?;
        this.ready_stream().poll_read(context, buffer)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(context))?;
        this.ready_stream().poll_write(context, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(context))?;
        this.ready_stream().poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        // rustls copies every write into records anyway; a vectored write saves the caller
        // from concatenating first.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_handshake(context))?;
        this.ready_stream().poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.state {
            // Nothing was said over TLS yet: dropping the socket is the whole goodbye.
            State::Handshaking { .. } | State::Failed => Poll::Ready(Ok(())),
            State::Ready(_) => this.ready_stream().poll_shutdown(context),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{generate, CertsArgs};
    use crate::settings::ServeArgs;

    /// `raftkv certs` output for nodes 1 and 2 in a fresh directory.
    fn certificates() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        generate(&CertsArgs {
            out: dir.path().to_path_buf(),
            nodes: vec![1, 2],
            ip: Vec::new(),
            dns: Vec::new(),
            days: 30,
            no_client: false,
            force: false,
        })
        .expect("certificates");
        dir
    }

    fn full(dir: &Path, id: u64) -> TlsPaths {
        let file = |name: String| Some(dir.join(name));
        TlsPaths {
            http_certificate: file(format!("node-{id}.pem")),
            http_key: file(format!("node-{id}-key.pem")),
            http_client_ca: file("ca.pem".into()),
            peer_certificate: file(format!("node-{id}.pem")),
            peer_key: file(format!("node-{id}-key.pem")),
            peer_ca: file("ca.pem".into()),
        }
    }

    #[test]
    fn settings_come_in_groups_or_are_refused_with_the_missing_one_named() {
        let some = || Some(PathBuf::from("x.pem"));
        assert_eq!(TlsPaths::default().validate(), Ok(()));
        let cases = [
            (
                TlsPaths {
                    http_certificate: some(),
                    ..TlsPaths::default()
                },
                "--tls-key",
            ),
            (
                TlsPaths {
                    http_key: some(),
                    ..TlsPaths::default()
                },
                "--tls-cert",
            ),
            (
                TlsPaths {
                    http_client_ca: some(),
                    ..TlsPaths::default()
                },
                "needs --tls-cert",
            ),
            (
                TlsPaths {
                    peer_certificate: some(),
                    peer_ca: some(),
                    ..TlsPaths::default()
                },
                "missing: --peer-tls-key",
            ),
            // HTTPS without any CA to verify the other nodes with.
            (
                TlsPaths {
                    http_certificate: some(),
                    http_key: some(),
                    ..TlsPaths::default()
                },
                "give --tls-ca or the --peer-tls-*",
            ),
        ];
        for (paths, reason) in cases {
            let (_, error) = paths.validate().expect_err(reason);
            assert!(error.contains(reason), "{reason}: {error}");
        }
        let peer_only = TlsPaths {
            peer_certificate: some(),
            peer_key: some(),
            peer_ca: some(),
            ..TlsPaths::default()
        };
        assert_eq!(peer_only.validate(), Ok(()));
    }

    #[test]
    fn files_are_read_at_start_and_bad_ones_named() {
        let dir = certificates();
        let tls = NodeTls::load(&full(dir.path(), 1)).expect("valid files");
        assert!(tls.https() && tls.peer().is_some() && tls.http_client().is_some());
        assert_eq!(tls.scheme(), "https");
        assert_eq!(
            format!("{tls:?}"),
            "NodeTls { https: true, peer_tls: true, .. }"
        );
        let none = NodeTls::load(&TlsPaths::default()).expect("no TLS");
        assert!(!none.https() && none.peer().is_none());
        assert_eq!(none.scheme(), "http");

        // A missing file, a key of another certificate, a certificate in place of a key.
        let mut missing = full(dir.path(), 1);
        missing.peer_ca = Some(dir.path().join("nowhere.pem"));
        let (name, error) = NodeTls::load(&missing).expect_err("missing file");
        assert_eq!(name, "peer_tls");
        assert!(error.contains("nowhere.pem"), "{error}");
        let mut mismatched = full(dir.path(), 1);
        mismatched.http_key = Some(dir.path().join("node-2-key.pem"));
        let (name, error) = NodeTls::load(&mismatched).expect_err("another key");
        assert_eq!(name, "tls_key");
        assert!(error.contains("do not fit"), "{error}");
        let mut not_a_key = full(dir.path(), 1);
        not_a_key.peer_key = Some(dir.path().join("node-1.pem"));
        let (_, error) = NodeTls::load(&not_a_key).expect_err("not a key");
        assert!(error.contains("no PRIVATE KEY"), "{error}");
    }

    #[test]
    fn the_config_file_names_the_files_and_another_nodes_certificate_is_refused() {
        let dir = certificates();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "id = 1\ntls_cert = {:?}\ntls_key = {:?}\ntls_ca = {:?}\n\
                 peer_tls_cert = {:?}\npeer_tls_key = {:?}\npeer_tls_ca = {:?}\n",
                path("node-1.pem"),
                path("node-1-key.pem"),
                path("ca.pem"),
                path("node-1.pem"),
                path("node-1-key.pem"),
                path("ca.pem"),
            ),
        )
        .expect("writes");
        let args = ServeArgs {
            config: Some(config),
            ..ServeArgs::default()
        };
        let tls = args.resolve_tls().expect("valid");
        assert!(tls.https() && tls.peer().is_some());
        // Node 2's peer certificate given to node 1 (a flag wins over the file).
        let args = ServeArgs {
            peer_tls_cert: Some(dir.path().join("node-2.pem")),
            peer_tls_key: Some(dir.path().join("node-2-key.pem")),
            ..args
        };
        let error = args.resolve_tls().expect_err("another node's").to_string();
        assert!(
            error.contains("peer_tls_cert") && error.contains("node-1"),
            "{error}"
        );
    }

    #[test]
    fn the_command_line_needs_a_ca_for_a_client_certificate() {
        let dir = certificates();
        let file = |name: &str| dir.path().join(name);
        assert!(ClientTls::from_cli_flags(None, None, None)
            .expect("plain")
            .is_none());
        assert!(ClientTls::from_cli_flags(Some(&file("ca.pem")), None, None)
            .expect("a CA")
            .is_some());
        assert!(ClientTls::from_cli_flags(
            Some(&file("ca.pem")),
            Some(&file("client.pem")),
            Some(&file("client-key.pem"))
        )
        .expect("a client certificate")
        .is_some());
        for (ca, certificate, key, reason) in [
            (
                None,
                Some(file("client.pem")),
                Some(file("client-key.pem")),
                "--ca-cert",
            ),
            (
                Some(file("ca.pem")),
                Some(file("client.pem")),
                None,
                "--client-key",
            ),
            (
                Some(file("ca.pem")),
                None,
                Some(file("client-key.pem")),
                "--client-cert",
            ),
            (Some(file("missing.pem")), None, None, "missing.pem"),
        ] {
            let error =
                ClientTls::from_cli_flags(ca.as_deref(), certificate.as_deref(), key.as_deref())
                    .expect_err(reason);
            assert!(error.contains(reason), "{reason}: {error}");
        }
    }
}
