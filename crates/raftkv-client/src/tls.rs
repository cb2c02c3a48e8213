//! HTTPS settings of a [`crate::Client`]: the CA that signed the nodes' certificates, and a
//! client certificate for clusters that require one (`raftkv serve --tls-ca`).
//!
//! ```text
//!  ClientTls::from_pem_files(ca.pem, Some((client.pem, client-key.pem)))
//!      └─► Client::with_tls(["127.0.0.1:8001", ...], options, tls)
//!              endpoints without a scheme, and leader addresses a node names, become https://
//! ```
//!
//! Only the CA given is trusted (no system roots): a raftkv cluster's certificates come from
//! its own CA (`raftkv certs`). A node is verified against the host of its endpoint, so its
//! certificate must carry that IP address or DNS name. TLS 1.3 only, with the `ring` provider
//! chosen explicitly so that no process-wide default is consulted.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::client::ClientError;

/// TLS settings for talking to a raftkv cluster over HTTPS. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration may hold a private key: show nothing of it.
        formatter.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA certificate(s) in the PEM file `ca`; presents the certificate and key in
    /// `identity` (PEM files) when given.
    pub fn from_pem_files(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<ClientTls, ClientError> {
        let read = |path: &Path| {
            let pem = std::fs::read(path).map_err(|error| {
                ClientError::InvalidInput(format!("cannot read {}: {error}", path.display()))
            })?;
            Ok::<_, ClientError>(Pem {
                text: pem,
                what: path.display().to_string(),
            })
        };
        let identity = match identity {
            Some((certificate, key)) => Some((read(certificate)?, read(key)?)),
            None => None,
        };
        ClientTls::build(&read(ca)?, identity.as_ref().map(|(c, k)| (c, k)))
    }

    /// Like [`ClientTls::from_pem_files`], from PEM text: `ca_pem` holds the CA certificate(s),
    /// `identity` the client certificate chain and its private key.
    pub fn from_pem(
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<ClientTls, ClientError> {
        let pem = |text: &[u8], what: &str| Pem {
            text: text.to_vec(),
            what: what.to_string(),
        };
        let identity = identity.map(|(certificate, key)| {
            (
                pem(certificate, "the client certificate"),
                pem(key, "the client key"),
            )
        });
        ClientTls::build(
            &pem(ca_pem, "the CA certificate"),
            identity.as_ref().map(|(c, k)| (c, k)),
        )
    }

    fn build(ca: &Pem, identity: Option<(&Pem, &Pem)>) -> Result<ClientTls, ClientError> {
        let invalid = |what: &str, error: &dyn fmt::Display| {
            ClientError::InvalidInput(format!("{what}: {error}"))
        };
        let mut roots = RootCertStore::empty();
        for certificate in certificates(ca)? {
            roots
                .add(certificate)
                .map_err(|error| invalid(&ca.what, &error))?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|error| invalid("TLS settings", &error))?
                .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((certificate, key)) => {
                let chain = certificates(certificate)?;
                let key_der = PrivateKeyDer::from_pem_slice(&key.text)
                    .map_err(|error| invalid(&key.what, &error))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|error| {
                        invalid(
                            &format!("{} and {} do not fit", certificate.what, key.what),
                            &error,
                        )
                    })?
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// The HTTPS settings a command line asks for with `--ca-cert`, `--client-cert` and
    /// `--client-key` (as `raftkv` and `raftkv-bench` name them): `ca` to trust, `certificate`
    /// and `key` to present. `None` when none is given; an error a person reads when a
    /// certificate comes without its key (or the reverse), or without a CA.
    pub fn from_cli_flags(
        ca: Option<&Path>,
        certificate: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ClientTls>, String> {
        let identity = match (certificate, key) {
            (Some(certificate), Some(key)) => Some((certificate, key)),
            (None, None) => None,
            (Some(_), None) => return Err("--client-cert needs --client-key".into()),
            (None, Some(_)) => return Err("--client-key needs --client-cert".into()),
        };
        match (ca, identity) {
            (Some(ca), identity) => ClientTls::from_pem_files(ca, identity)
                .map(Some)
                .map_err(|error| error.to_string()),
            (None, Some(_)) => Err("--client-cert needs --ca-cert (the CA of the nodes)".into()),
            (None, None) => Ok(None),
        }
    }

    /// Settings made elsewhere: `config` must be a TLS 1.3 client configuration that verifies
    /// the nodes' certificates. A raftkv node builds its own this way, with a verifier and a
    /// certificate that its configuration reloads replace (`raftkv::tls`).
    pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    /// The rustls settings, for building other HTTPS clients that trust the same nodes.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }
}

/// PEM text and where it came from, for error messages.
struct Pem {
    text: Vec<u8>,
    what: String,
}

/// Every certificate in `pem`; at least one.
fn certificates(pem: &Pem) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let what = &pem.what;
    let certificates = CertificateDer::pem_slice_iter(&pem.text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ClientError::InvalidInput(format!("{what}: {error}")))?;
    if certificates.is_empty() {
        return Err(ClientError::InvalidInput(format!(
            "{what}: no CERTIFICATE block found"
        )));
    }
    Ok(certificates)
}

/// The settings of a client without TLS: plain `http://` goes through the same connector,
/// which never uses these (an `https://` endpoint is refused without [`ClientTls`]).
pub(crate) fn plain_config() -> Arc<ClientConfig> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map(|builder| {
                builder
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            });
    match config {
        Ok(config) => Arc::new(config),
        // The ring provider supports TLS 1.3: this would be a broken build, not bad input.
        Err(error) => panic!("the ring provider refuses TLS 1.3: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_pem_is_refused_with_what_was_read() {
        let error = ClientTls::from_pem(b"not pem", None).expect_err("no certificate");
        assert!(
            error
                .to_string()
                .contains("the CA certificate: no CERTIFICATE"),
            "{error}"
        );
        let error =
            ClientTls::from_pem_files(Path::new("/nonexistent/ca.pem"), None).expect_err("no file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        assert!(matches!(error, ClientError::InvalidInput(_)));
    }

    #[test]
    fn an_https_endpoint_without_tls_settings_is_refused() {
        let error = crate::Client::new(["https://127.0.0.1:8001"]).expect_err("no CA");
        assert!(error.to_string().contains("--ca-cert"), "{error}");
    }
}
