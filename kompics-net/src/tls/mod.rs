//! Security for peer sessions: who a peer is, and keeping its bytes private and intact.
//!
//! A transport runs in one of three modes, chosen by name in its [`crate::TcpConfig`]
//! ([`PeerSecurity`]); every mode carries a cluster identity that both ends of every handshake
//! compare, so nodes of different clusters never form a session:
//!
//! - **Mutual TLS** ([`PeerSecurity::mutual_tls`]): TLS 1.3, both sides present certificates
//!   from the cluster's CA; a node's identity is the URI subject alternative name of its
//!   certificate ([`identity_uri`]), not what its hello claims. The acceptor refuses a hello
//!   naming another node than the certificate; the dialer refuses a server whose certificate
//!   does not name the node it dialled.
//! - **Shared secret** ([`PeerSecurity::shared_secret`]): TLS 1.3 with throwaway certificates
//!   (encryption and integrity, forward secrecy), then inside it an HMAC proof of the secret
//!   bound to the TLS session (`auth`): the secret never crosses the wire, a replayed or
//!   relayed handshake fails. Any secret holder can claim any node address.
//! - **Insecure** ([`PeerSecurity::insecure`]): plaintext, for tests and trusted networks.
//!
//! Pieces: [`TlsStream`] pumps a rustls connection over a non-blocking mio socket (the one
//! pump for every TLS connection of the crate); `context` builds the rustls configurations and
//! reads identities from certificates; `auth` computes and checks the shared-secret proofs;
//! [`security`] holds the configuration types; [`ServerTls`] is TLS for a client-facing
//! [`crate::StreamServer`] (the RESP port), through the same pump. The handshake itself (hello, welcome, refusal)
//! is the TCP event loop's ([`crate::tcp`]).

pub(crate) mod auth;
pub(crate) mod context;
pub(crate) mod link;
pub mod pump;
pub mod security;
pub mod server;

pub use pump::TlsStream;
pub use security::{
    identity_uri, parse_identity_uri, warn_if_readable_by_others, MutualTlsCredentials,
    PeerSecurity, SecurityError, SecurityMode, CLUSTER_ID_BYTES_MAX, SECRET_BYTES_MIN,
};
pub use server::{ClientAuth, ServerTls};
