//! TLS material that can be replaced while connections use it: a certificate with its key, and
//! the verifiers of the other end's certificate, each held in a cell that a reload swaps whole.
//!
//! ```text
//!  rustls ServerConfig / ClientConfig (built once, cloned freely)
//!    ├─ cert resolver ─────► LiveCertifiedKey ──► Arc<CertifiedKey>          ◄── replace()
//!    ├─ client verifier ───► LiveClientVerifier ─► Arc<dyn ClientCertVerifier> ◄── replace()
//!    └─ server verifier ───► LiveServerVerifier ─► Arc<dyn ServerCertVerifier> ◄── replace()
//!    └─ session storage ───► ForgetfulSessionCache ─► ServerSessionMemoryCache ◄── forget_all()
//!  each handshake reads the cells once per step; a connection keeps what its handshake used
//! ```
//!
//! rustls asks its resolver and verifiers anew at every handshake, so a configuration whose
//! resolver and verifiers read a swapped `Arc` serves the new material from the next handshake
//! on, without rebuilding the configuration or the acceptors, connectors and HTTP clients made
//! from it. Established connections are not touched: TLS has no way to change a certificate
//! mid-connection, and cutting them would turn a credential rotation into an outage.
//!
//! The cells are an `RwLock<Arc<_>>`: a reader holds the lock only to clone the `Arc`, and a
//! writer replaces one pointer. A poisoned lock still holds a whole `Arc` (a panic cannot leave
//! half a pointer), so it is used as it is.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// A value read by many and replaced whole. Clones share the value.
struct Cell<T: ?Sized>(Arc<RwLock<Arc<T>>>);

impl<T: ?Sized> Clone for Cell<T> {
    fn clone(&self) -> Self {
        Cell(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Cell<T> {
    fn new(value: Arc<T>) -> Cell<T> {
        Cell(Arc::new(RwLock::new(value)))
    }

    fn current(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

/// A certificate chain with its private key, presented by the server side of a handshake
/// ([`ResolvesServerCert`]) or by the client side when asked for one ([`ResolvesClientCert`]).
/// Clones share the cell: [`LiveCertifiedKey::replace`] on one is seen by all.
#[derive(Clone)]
pub struct LiveCertifiedKey(Cell<CertifiedKey>);

impl fmt::Debug for LiveCertifiedKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is private: say nothing of it.
        formatter
            .debug_struct("LiveCertifiedKey")
            .finish_non_exhaustive()
    }
}

impl LiveCertifiedKey {
    /// A cell holding `key` (a chain whose private key was checked to fit its first
    /// certificate, as `CertifiedKey::from_der` does).
    pub fn new(key: Arc<CertifiedKey>) -> LiveCertifiedKey {
        assert!(!key.cert.is_empty(), "a certified key has a certificate");
        LiveCertifiedKey(Cell::new(key))
    }

    /// The chain and key handshakes present now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.current()
    }

    /// Presents `key` from the next handshake on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        assert!(!key.cert.is_empty(), "a certified key has a certificate");
        self.0.replace(key);
    }
}

impl ResolvesServerCert for LiveCertifiedKey {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for LiveCertifiedKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // As rustls' own single-certificate resolver: the one certificate there is, whatever
        // the server hints; a server that wants another refuses the handshake and says so.
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The handshake signature checks of a verifier in a cell, handed to the verifier in force:
/// they depend on the certificate's key, not on the CA, so which verifier answers them does not
/// matter; the one in force is as good as any.
macro_rules! signature_checks_of_the_cell {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0
                .current()
                .verify_tls12_signature(message, certificate, signature)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            certificate: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0
                .current()
                .verify_tls13_signature(message, certificate, signature)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.current().supported_verify_schemes()
        }
    };
}

/// The verifier of the other end's certificate on the server side (client certificates),
/// replaceable: a new CA takes effect from the next handshake.
#[derive(Clone)]
pub struct LiveClientVerifier(Cell<dyn ClientCertVerifier>);

impl fmt::Debug for LiveClientVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("LiveClientVerifier")
            .field(&self.0.current())
            .finish()
    }
}

impl LiveClientVerifier {
    /// A cell holding `verifier`, which must require a client certificate: whether one is
    /// asked for is the configuration's choice, made once, so a reload cannot turn it off.
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> LiveClientVerifier {
        assert!(
            verifier.offer_client_auth() && verifier.client_auth_mandatory(),
            "a live client verifier requires client certificates"
        );
        LiveClientVerifier(Cell::new(verifier))
    }

    /// Verifies client certificates with `verifier` from the next handshake on.
    pub fn replace(&self, verifier: Arc<dyn ClientCertVerifier>) {
        assert!(
            verifier.offer_client_auth() && verifier.client_auth_mandatory(),
            "a live client verifier requires client certificates"
        );
        self.0.replace(verifier);
    }
}

impl ClientCertVerifier for LiveClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would borrow from a verifier a reload may drop, so none are sent. TLS 1.3
        // makes them optional (RFC 8446 §4.2.4), and clients with one certificate (raftkv's
        // own, curl's, an etcd client's) present it regardless.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    signature_checks_of_the_cell!();
}

/// The verifier of the other end's certificate on the client side (the server's), replaceable:
/// a new CA takes effect from the next handshake.
#[derive(Clone)]
pub struct LiveServerVerifier(Cell<dyn ServerCertVerifier>);

impl fmt::Debug for LiveServerVerifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("LiveServerVerifier")
            .field(&self.0.current())
            .finish()
    }
}

impl LiveServerVerifier {
    /// A cell holding `verifier`.
    pub fn new(verifier: Arc<dyn ServerCertVerifier>) -> LiveServerVerifier {
        LiveServerVerifier(Cell::new(verifier))
    }

    /// Verifies servers' certificates with `verifier` from the next handshake on.
    pub fn replace(&self, verifier: Arc<dyn ServerCertVerifier>) {
        self.0.replace(verifier);
    }
}

impl ServerCertVerifier for LiveServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.current().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    signature_checks_of_the_cell!();
}

/// A server's cache of TLS sessions that clients may resume, emptied on demand. A resumed
/// session skips the certificate checks, so a server that trusts a new CA forgets the sessions
/// made under the old one ([`ForgetfulSessionCache::forget_all`]); their clients then make a
/// full handshake, checked against the CA in force.
pub struct ForgetfulSessionCache {
    /// Sessions kept at most.
    sessions_max: usize,
    cache: Cell<ServerSessionMemoryCache>,
}

impl fmt::Debug for ForgetfulSessionCache {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ForgetfulSessionCache")
            .field("sessions_max", &self.sessions_max)
            .finish_non_exhaustive()
    }
}

impl ForgetfulSessionCache {
    /// An empty cache of at most `sessions_max` sessions (rustls' default is 256).
    pub fn new(sessions_max: usize) -> ForgetfulSessionCache {
        assert!(sessions_max > 0, "a cache holds something");
        ForgetfulSessionCache {
            sessions_max,
            cache: Cell::new(ServerSessionMemoryCache::new(sessions_max)),
        }
    }

    /// Forgets every session: none made so far can be resumed.
    pub fn forget_all(&self) {
        self.cache
            .replace(ServerSessionMemoryCache::new(self.sessions_max));
    }
}

impl StoresServerSessions for ForgetfulSessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache.current().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.current().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.current().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
