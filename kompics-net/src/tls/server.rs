//! [`ServerTls`]: TLS for a client-facing [`crate::StreamServer`] (the key-value store's RESP
//! port), from PEM files, with client certificates not asked for, optional or required
//! (Redis' `tls-auth-clients no|optional|yes`).
//!
//! Unlike the peer transport, clients are not cluster members: the server's certificate is an
//! ordinary one (a DNS or IP name the clients check), and a client certificate, when asked
//! for, only has to chain to the configured CA. TLS 1.3 only, like the peer port.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::security::{warn_if_readable_by_others, SecurityError};

/// Whether a TLS server asks its clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Not asked for.
    No,
    /// Asked for; a client without one is served, a client with one must present one that
    /// chains to the CA.
    Optional,
    /// Required, chaining to the CA.
    Required,
}

impl FromStr for ClientAuth {
    type Err = String;

    /// `no`, `optional` or `yes`, as Redis' `tls-auth-clients`.
    fn from_str(s: &str) -> Result<ClientAuth, String> {
        match s {
            "no" => Ok(ClientAuth::No),
            "optional" => Ok(ClientAuth::Optional),
            "yes" => Ok(ClientAuth::Required),
            other => Err(format!("expected no, optional or yes, not {other:?}")),
        }
    }
}

/// A TLS server configuration, shared by every connection of a server.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    client_auth: ClientAuth,
}

impl ServerTls {
    /// Reads the server's certificate chain (leaf first) and key, and, when client
    /// certificates are asked for, the CA they must chain to. Warns if the key file can be read
    /// by others.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
        client_auth: ClientAuth,
    ) -> Result<ServerTls, SecurityError> {
        let unusable = |what: &Path, e: &dyn fmt::Display| {
            SecurityError::Credentials(format!("{}: {e}", what.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| unusable(cert, &e))?;
        warn_if_readable_by_others(key);
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| unusable(key, &e))?;
        let roots = match ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).map_err(|e| unusable(ca, &e))? {
                    roots.add(c.map_err(|e| unusable(ca, &e))?).map_err(|e| unusable(ca, &e))?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        Self::new(chain, key_der, roots, client_auth)
    }

    /// A configuration from certificates and a key already in memory.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Option<Arc<RootCertStore>>,
        client_auth: ClientAuth,
    ) -> Result<ServerTls, SecurityError> {
        let err = |e: &dyn fmt::Display| SecurityError::Credentials(e.to_string());
        // See `context.rs` on the choice of ring.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| err(&e))?;
        let builder = match (client_auth, roots) {
            (ClientAuth::No, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(SecurityError::Credentials(
                    "client certificates are asked for but no CA certificate is given".into(),
                ))
            }
            (auth, Some(roots)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = match auth {
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| err(&e))?)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| err(&e))?;
        Ok(ServerTls { config: Arc::new(config), client_auth })
    }

    /// Whether client certificates are asked for.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// A connection for a newly accepted client.
    pub(crate) fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.config))
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("client_auth", &self.client_auth).finish_non_exhaustive()
    }
}

/// Equal if they are the same configuration (the key is not compared).
impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.client_auth == other.client_auth
    }
}

impl Eq for ServerTls {}
