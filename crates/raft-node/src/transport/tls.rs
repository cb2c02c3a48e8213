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
//! # Reloading
//!
//! A running node's certificate, key and CA can be replaced ([`PeerTls::install`], with a
//! [`PeerMaterial`] checked as at start): new connections use the new ones from their
//! handshake on ([`live`]), connections already made keep theirs. To move the cluster to a
//! new CA without a gap, trust both (a CA file holding the old and the new certificate) on
//! every node first, then give the nodes certificates from the new CA, then drop the old.
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
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub mod live;

use live::{LiveCertifiedKey, LiveClientVerifier, LiveServerVerifier};

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

/// A node's peer TLS files, read and checked but not in force yet: what [`PeerTls`] starts
/// with, and what [`PeerTls::install`] replaces its material with on a reload. Building one
/// makes every check a start makes, so a reload that would fail a start is refused before
/// anything changes.
pub struct PeerMaterial {
    certified_key: Arc<CertifiedKey>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<dyn ServerCertVerifier>,
}

impl fmt::Debug for PeerMaterial {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The certified key holds the private key: show nothing of it.
        formatter
            .debug_struct("PeerMaterial")
            .finish_non_exhaustive()
    }
}

impl PeerMaterial {
    /// Reads the cluster CA certificate(s), this node's certificate chain and its private key
    /// from PEM files (see [`PeerMaterial::new`]).
    pub fn from_pem_files(
        ca: &Path,
        certificate: &Path,
        key: &Path,
    ) -> Result<PeerMaterial, TlsError> {
        PeerMaterial::new(
            read_certificates(ca)?,
            read_certificates(certificate)?,
            read_private_key(key)?,
        )
    }

    /// From parsed parts: `authorities` are the cluster CA certificates, `chain` this node's
    /// certificate first (then any intermediates), `key` its private key.
    ///
    /// Fails when the chain is not signed by the CA or is expired, or when the key does not
    /// match the certificate.
    pub fn new(
        authorities: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerMaterial, TlsError> {
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
        // says so at start (or at a reload) instead of failing every handshake later.
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
        let certified_key = CertifiedKey::from_der(chain, key, &provider).map_err(|error| {
            TlsError::Invalid(format!("the certificate and key do not fit: {error}"))
        })?;
        Ok(PeerMaterial {
            certified_key: Arc::new(certified_key),
            client_verifier,
            server_verifier,
        })
    }

    /// Checks that the certificate names node `id` (see [`PeerTls::check_identity`]).
    pub fn check_identity(&self, id: NodeId) -> Result<(), TlsError> {
        let certificate = self
            .certified_key
            .cert
            .first()
            .unwrap_or_else(|| unreachable!("a certified key is built from a non-empty chain"));
        certificate_names_node(certificate, id).map_err(TlsError::Invalid)
    }
}

/// The TLS side of one node's peer transport: its certificate and key, and the cluster CA
/// that every peer's certificate must chain to. Give it to [`super::tcp::TcpConfig::tls`].
///
/// Clones share the material: [`PeerTls::install`] on any of them (a reload) takes effect
/// for every new connection, accepted or dialed, from the next handshake on ([`live`]);
/// connections already made keep the certificates they were made with.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    /// This node's certificate and key, presented on both sides of a handshake.
    certified_key: LiveCertifiedKey,
    /// Checks a dialer's certificate against the cluster CA.
    client_verifier: LiveClientVerifier,
    /// Checks an acceptor's certificate against the cluster CA.
    server_verifier: LiveServerVerifier,
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
        PeerTls::from_material(PeerMaterial::from_pem_files(ca, certificate, key)?)
    }

    /// From parsed parts (see [`PeerMaterial::new`]).
    pub fn new(
        authorities: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerTls, TlsError> {
        PeerTls::from_material(PeerMaterial::new(authorities, chain, key)?)
    }

    /// The settings both ends of a peer connection use, serving `material` until
    /// [`PeerTls::install`] replaces it.
    pub fn from_material(material: PeerMaterial) -> Result<PeerTls, TlsError> {
        let provider = crypto_provider();
        let certified_key = LiveCertifiedKey::new(material.certified_key);
        let client_verifier = LiveClientVerifier::new(material.client_verifier);
        let server_verifier = LiveServerVerifier::new(material.server_verifier);
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| TlsError::Invalid(error.to_string()))?
            .with_client_cert_verifier(Arc::new(client_verifier.clone()))
            .with_cert_resolver(Arc::new(certified_key.clone()));
        // Peers never resume sessions (a connection lives as long as the peer is up), so
        // tickets would be bytes for nothing.
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| TlsError::Invalid(error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(server_verifier.clone()))
            .with_client_cert_resolver(Arc::new(certified_key.clone()));
        client.resumption = rustls::client::Resumption::disabled();
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            certified_key,
            client_verifier,
            server_verifier,
        })
    }

    /// Puts `material` in force for every handshake from now on (a reload). The caller has
    /// checked it as a start would, [`PeerMaterial::check_identity`] included; nothing here
    /// can fail, so the node never runs on half of the new material.
    pub fn install(&self, material: PeerMaterial) {
        self.client_verifier.replace(material.client_verifier);
        self.server_verifier.replace(material.server_verifier);
        self.certified_key.replace(material.certified_key);
    }

    /// Checks that this node's certificate names node `id` (see the module doc), so that a
    /// node given another node's files refuses to start rather than be refused by every peer.
    pub fn check_identity(&self, id: NodeId) -> Result<(), TlsError> {
        let key = self.certified_key.current();
        let certificate = key
            .cert
            .first()
            .unwrap_or_else(|| unreachable!("a certified key is built from a non-empty chain"));
        certificate_names_node(certificate, id).map_err(TlsError::Invalid)
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
