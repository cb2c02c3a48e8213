//! Mutual TLS for the TCP transport ([`super::tcp`]): certificates, keys and the rustls
//! settings both ends of a peer connection use.
//!
//! ```text
//!  dialer (node 1)                                   acceptor (node 3)
//!  TLS client: presents node-1.pem ───────────────►  TLS server: presents node-3.pem,
//!              verifies the server's chain                       requires a client certificate
//!              against the cluster CA and                        whose chain verifies against the
//!              that it names `node-3`                            cluster CA
//!  handshake frame { from: 1, to: 3 } ────────────►  checks that the client certificate names
//!                                                    `node-1`, then the usual handshake checks
//! ```
//!
//! # Identity
//!
//! Peers are addressed by socket address, and addresses are a poor identity here: a node
//! binds `0.0.0.0`, sits behind NAT (`--advertise-raft-addr`), or moves, and a certificate
//! per address would have to be reissued with each move. A node's identity in Raft is its
//! [`NodeId`], so that is what the certificate binds: every node certificate carries the DNS
//! subject alternative name `node-N` ([`node_name`]), besides whatever IP and DNS names its
//! HTTP clients need.
//!
//! - The dialer knows which node it means to reach, and verifies the server certificate
//!   against the cluster CA *and* the name `node-N` of that node (rustls' ordinary server
//!   name check, with `node-N` as the server name). Dialing node 3 at an address where
//!   node 2 now listens fails the handshake.
//! - The acceptor verifies the client certificate's chain against the cluster CA during the
//!   TLS handshake (a certificate from any other CA, or none, never gets a byte through), and
//!   once the dialer's [`crate::wire::Handshake`] says who it is, checks that the certificate
//!   names `node-{from}`. A node holding a valid certificate for node 2 cannot speak as
//!   node 1, and a client certificate (which names no node) cannot speak Raft at all.
//!
//! The CA is the cluster's alone: anyone who holds a certificate it signed for `node-N` may
//! be node N, so it must sign nothing else with such a name. TLS 1.3 only, since both ends
//! are this code; the `ring` provider, chosen explicitly so that no process-wide default is
//! consulted.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft_core::NodeId;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The DNS name prefix a node certificate carries its id under: node 3's is `node-3`.
pub const NODE_NAME_PREFIX: &str = "node-";

/// The subject alternative name (a DNS name) that identifies node `id` among its peers.
pub fn node_name(id: NodeId) -> String {
    format!("{NODE_NAME_PREFIX}{}", id.0)
}

/// Why TLS settings could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// PEM text did not hold what was expected, or did not parse.
    #[error("{what}: {reason}")]
    Pem {
        /// What was being read (a file name, or a description).
        what: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The certificates and key parse but cannot be used together: a certificate not signed
    /// by the CA, expired, or not for this node; a key that does not match.
    #[error("{0}")]
    Invalid(String),
}

/// The cryptography every TLS configuration of this project uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in `pem`, in order; at least one. `what` names the source in errors.
pub fn parse_certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(what, error.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error(what, "no CERTIFICATE block found".into()));
    }
    Ok(certificates)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in `pem`. `what` names the source in errors.
pub fn parse_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            pem_error(what, "no PRIVATE KEY block found".into())
        }
        other => pem_error(what, other.to_string()),
    })
}

/// Reads a file of PEM certificates (see [`parse_certificates`]).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certificates(&read(path)?, &path.display().to_string())
}

/// Reads a PEM private key file (see [`parse_private_key`]).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_private_key(&read(path)?, &path.display().to_string())
}

/// The trust anchors of `authorities` (CA certificates).
pub fn root_store(
    authorities: &[CertificateDer<'static>],
    what: &str,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for authority in authorities {
        roots
            .add(authority.clone())
            .map_err(|error| pem_error(what, format!("not a usable CA certificate: {error}")))?;
    }
    assert!(!roots.is_empty(), "at least one certificate was parsed");
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(what: &str, reason: String) -> TlsError {
    TlsError::Pem {
        what: what.to_string(),
        reason,
    }
}

/// The TLS side of one node's peer transport: its certificate and key, and the cluster CA
/// that every peer's certificate must chain to. Give it to [`super::tcp::TcpConfig::tls`].
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// This node's own certificate, to check at start that it names the node.
    certificate: CertificateDer<'static>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configurations hold the private key: show nothing of them.
        formatter.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Reads the cluster CA certificate(s), this node's certificate chain and its private key
    /// from PEM files.
    pub fn from_pem_files(ca: &Path, certificate: &Path, key: &Path) -> Result<PeerTls, TlsError> {
        PeerTls::new(
            read_certificates(ca)?,
            read_certificates(certificate)?,
            read_private_key(key)?,
        )
    }

    /// From parsed parts: `authorities` are the cluster CA certificates, `chain` this node's
    /// certificate first (then any intermediates), `key` its private key.
    ///
    /// Fails when the chain is not signed by the CA or is expired, when the key does not match
    /// the certificate, or when the certificate cannot serve both as server and as client.
    pub fn new(
        authorities: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerTls, TlsError> {
        let Some(certificate) = chain.first().cloned() else {
            return Err(TlsError::Invalid("no certificate given".into()));
        };
        let provider = crypto_provider();
        let roots = Arc::new(root_store(&authorities, "the CA certificate")?);
        // The default verifier requires a client certificate: an anonymous dialer is refused
        // during the TLS handshake, before any of its bytes are read as frames.
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|error| TlsError::Invalid(format!("the CA certificate: {error}")))?;
        // Checking our own certificate as a peer would, so that a node given the wrong files
        // says so at start instead of failing every handshake later.
        client_verifier
            .verify_client_cert(&certificate, &chain[1..], UnixTime::now())
            .map_err(|error| {
                TlsError::Invalid(format!(
                    "this node's certificate does not verify against the CA: {error}"
                ))
            })?;
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|error| TlsError::Invalid(format!("the CA certificate: {error}")))?;
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| TlsError::Invalid(error.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| {
                TlsError::Invalid(format!("the certificate and key do not fit: {error}"))
            })?;
        // Peers never resume sessions (a connection lives as long as the peer is up), so
        // tickets would be bytes for nothing.
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| TlsError::Invalid(error.to_string()))?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain, key)
            .map_err(|error| {
                TlsError::Invalid(format!("the certificate and key do not fit: {error}"))
            })?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            certificate,
        })
    }

    /// Checks that this node's certificate names node `id` (see the module doc), so that a
    /// node given another node's files refuses to start rather than be refused by every peer.
    pub fn check_identity(&self, id: NodeId) -> Result<(), TlsError> {
        certificate_names_node(&self.certificate, id).map_err(TlsError::Invalid)
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    pub(crate) fn connector(&self) -> &TlsConnector {
        &self.connector
    }
}

/// The name the dialer verifies the server certificate of `peer` against.
pub(crate) fn server_name(peer: NodeId) -> ServerName<'static> {
    ServerName::try_from(node_name(peer))
        .unwrap_or_else(|_| unreachable!("`node-` and digits always make a valid DNS name"))
}

/// Whether `certificate` (already verified against the CA) names node `id`; the reason if not.
pub(crate) fn certificate_names_node(
    certificate: &CertificateDer<'_>,
    id: NodeId,
) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(certificate)
        .map_err(|error| format!("the certificate does not parse: {error}"))?;
    rustls::client::verify_server_name(&parsed, &server_name(id))
        .map_err(|error| format!("the certificate is not for {}: {error}", node_name(id)))
}
