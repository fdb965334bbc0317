//! [`TlsContext`]: the rustls client and server configurations of a transport, built once at
//! start from its [`PeerSecurity`], and the certificate checks rustls cannot do for us.
//!
//! - Mutual TLS: the acceptor uses rustls' WebPKI client verifier (chain to the CA, validity,
//!   key usage); the dialer uses [`ServerVerifier`] with the CA, which checks the chain the
//!   same way but not a DNS name, because a node's identity is the URI subject alternative
//!   name ([`super::identity_uri`]), which WebPKI does not match. Both ends then read that URI
//!   from the peer's certificate ([`peer_identity`]) and the event loop compares it with the
//!   hello (acceptor) or the node dialled (dialer).
//! - Shared secret: the acceptor presents a self-signed certificate minted at start and asks
//!   for none; the dialer accepts any certificate ([`ServerVerifier`] without a CA, which still
//!   checks the handshake signature). Authentication is the HMAC proof inside TLS
//!   ([`super::auth`]), bound to the session's exporter value, which a man in the middle
//!   cannot make equal on both of his connections.
//!
//! Both sides: TLS 1.3 only, the ring provider, no session resumption (peer links are
//! long-lived, and a resumed session would reuse an old authentication), no SNI.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};

use super::security::{parse_identity_uri, Kind, PeerSecurity, SecurityError};
use crate::address::NodeAddr;

/// The name a dialer gives rustls. It is never sent (SNI is off) and never matched (the
/// verifiers check identities by URI); rustls just needs one.
const PLACEHOLDER_NAME: &str = "peer.kompics-net.invalid";

/// The rustls configurations of one transport.
pub(crate) struct TlsContext {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

impl TlsContext {
    /// Builds the configurations for `security`; `None` in insecure mode.
    pub(crate) fn new(security: &PeerSecurity) -> Result<Option<TlsContext>, SecurityError> {
        // ring rather than aws-lc-rs: it builds in half the time here and is as fast on small
        // records; rustls deprecates it only for lacking post-quantum key exchange, which a
        // private peer network can live without for now.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (client, server) = match security.kind() {
            Kind::Insecure => return Ok(None),
            Kind::SharedSecret(_) => shared_secret_configs(&provider)?,
            Kind::MutualTls(creds) => {
                let mut roots = RootCertStore::empty();
                for ca in &creds.ca {
                    roots.add(ca.clone()).map_err(|e| credentials("the CA certificate", e))?;
                }
                let roots = Arc::new(roots);
                let key: &PrivateKeyDer<'static> = &creds.key;
                mutual_tls_configs(&provider, roots, creds.chain.clone(), key.clone_key())?
            }
        };
        Ok(Some(TlsContext { client: Arc::new(client), server: Arc::new(server) }))
    }

    /// A client (dialer) connection.
    pub(crate) fn client(&self) -> Result<ClientConnection, rustls::Error> {
        let name = ServerName::try_from(PLACEHOLDER_NAME).expect("a valid DNS name");
        ClientConnection::new(Arc::clone(&self.client), name)
    }

    /// A server (acceptor) connection.
    pub(crate) fn server(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.server))
    }
}

fn credentials(what: &str, e: impl std::fmt::Display) -> SecurityError {
    SecurityError::Credentials(format!("{what}: {e}"))
}

fn tls13_client(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, SecurityError> {
    ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| credentials("TLS client configuration", e))
}

fn tls13_server(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, SecurityError> {
    ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| credentials("TLS server configuration", e))
}

/// No resumption, no SNI: see the module docs.
fn harden(client: &mut ClientConfig, server: &mut ServerConfig) {
    client.enable_sni = false;
    client.resumption = rustls::client::Resumption::disabled();
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
}

fn mutual_tls_configs(
    provider: &Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(ClientConfig, ServerConfig), SecurityError> {
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(provider))
            .build()
            .map_err(|e| credentials("the CA certificate", e))?;
    let mut server = tls13_server(provider)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| credentials("the certificate and key", e))?;
    let verifier =
        ServerVerifier { roots: Some(roots), algs: provider.signature_verification_algorithms };
    let mut client = tls13_client(provider)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| credentials("the certificate and key", e))?;
    harden(&mut client, &mut server);
    Ok((client, server))
}

fn shared_secret_configs(
    provider: &Arc<CryptoProvider>,
) -> Result<(ClientConfig, ServerConfig), SecurityError> {
    // A fresh key pair per process: it authenticates nothing (the HMAC proof does), it only
    // lets TLS run. Nothing of it is written anywhere.
    let minted = rcgen::generate_simple_self_signed(vec![PLACEHOLDER_NAME.to_string()])
        .map_err(|e| credentials("minting a throwaway certificate", e))?;
    let cert = minted.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(minted.signing_key.serialize_der()));
    let mut server = tls13_server(provider)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| credentials("the throwaway certificate", e))?;
    let verifier = ServerVerifier { roots: None, algs: provider.signature_verification_algorithms };
    let mut client = tls13_client(provider)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    harden(&mut client, &mut server);
    Ok((client, server))
}

/// The dialer's check of the server's certificate. With `roots` (mutual TLS) the chain must
/// lead to the cluster's CA and be valid now, for server use; the name is checked after the
/// handshake, from the URI SAN. Without (shared-secret mode) any certificate is accepted: it is
/// a throwaway one, and the secret proof authenticates the peer. Either way the handshake
/// signature is checked, so the server holds the key of the certificate it showed.
#[derive(Debug)]
struct ServerVerifier {
    roots: Option<Arc<RootCertStore>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algs.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configurations allow TLS 1.3 only.
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The identity a certificate names: the first URI subject alternative name that is an
/// identity URI ([`super::identity_uri`]). `Err` says why there is none.
pub(crate) fn certificate_identity(
    cert: &CertificateDer<'_>,
) -> Result<(String, NodeAddr), String> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    let identity = parsed.valid_uri_names().find_map(parse_identity_uri);
    identity.ok_or_else(|| {
        format!(
            "the certificate has no URI subject alternative name of the form {}://<cluster>/<address>",
            super::security::IDENTITY_URI_SCHEME
        )
    })
}

/// The identity in the certificate the peer of `tls` presented (after the handshake).
pub(crate) fn peer_identity(tls: &rustls::Connection) -> Result<(String, NodeAddr), String> {
    let leaf = tls
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| "the peer presented no certificate".to_string())?;
    certificate_identity(leaf)
}
