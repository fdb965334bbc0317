//! [`PeerSecurity`]: how a transport authenticates its peers, chosen explicitly by whoever
//! builds the [`crate::TcpConfig`], and the cluster identity every handshake carries.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::address::NodeAddr;

/// Longest cluster identity accepted, in bytes: it travels in every hello and welcome.
pub const CLUSTER_ID_BYTES_MAX: usize = 128;
/// Shortest shared secret accepted, in bytes. 32 random bytes are recommended: one recorded
/// handshake lets an attacker test guesses offline, so a secret must not be guessable.
pub const SECRET_BYTES_MIN: usize = 16;
/// The scheme of the URI subject alternative name that names a node in mutual-TLS mode.
pub const IDENTITY_URI_SCHEME: &str = "kompics-net";

/// The authentication modes, as announced in the handshake (a node refuses a peer announcing
/// another mode, so a mixed cluster fails loudly instead of falling back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SecurityMode {
    /// Plain TCP; the peer is whoever it says it is. Only for tests and trusted networks.
    Insecure = 0,
    /// TLS 1.3 with throwaway certificates, then an HMAC proof of a shared cluster secret bound
    /// to the TLS session (its exporter value).
    SharedSecret = 1,
    /// TLS 1.3 with certificates from a private CA on both sides; a node's identity is the
    /// URI subject alternative name of its certificate.
    MutualTls = 2,
}

impl SecurityMode {
    /// The byte announcing this mode in a handshake frame.
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// The mode a handshake byte announces, if any.
    pub const fn from_byte(byte: u8) -> Option<SecurityMode> {
        match byte {
            0 => Some(SecurityMode::Insecure),
            1 => Some(SecurityMode::SharedSecret),
            2 => Some(SecurityMode::MutualTls),
            _ => None,
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityMode::Insecure => "insecure (plaintext)",
            SecurityMode::SharedSecret => "shared secret over TLS",
            SecurityMode::MutualTls => "mutual TLS",
        })
    }
}

/// The credentials of mutual-TLS mode: the CA that signs every member's certificate, this
/// node's certificate chain (leaf first) and its private key.
#[derive(Clone)]
pub struct MutualTlsCredentials {
    /// Trust anchors: certificates of peers must chain to one of these.
    pub ca: Vec<CertificateDer<'static>>,
    /// This node's certificate, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: Arc<PrivateKeyDer<'static>>,
}

/// How a transport authenticates its peers. There is no default: build one with
/// [`PeerSecurity::insecure`], [`PeerSecurity::shared_secret`] or
/// [`PeerSecurity::mutual_tls`], so that running without authentication is always written
/// down by name.
///
/// Every mode carries the cluster identity, which both ends of every handshake compare: a peer
/// of another cluster is refused even if it holds valid credentials.
///
/// `Debug` never shows the secret or the key.
#[derive(Clone)]
pub struct PeerSecurity {
    cluster: String,
    kind: Kind,
}

#[derive(Clone)]
pub(crate) enum Kind {
    Insecure,
    SharedSecret(Arc<Secret>),
    MutualTls(MutualTlsCredentials),
}

/// A shared secret; its memory is overwritten when dropped, and it never prints.
pub(crate) struct Secret(pub(crate) Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the secret so it does not linger in freed memory. Best effort: the crate
        // forbids the unsafe volatile writes that would guarantee it; the fence keeps the
        // compiler from sinking the writes past the deallocation.
        self.0.iter_mut().for_each(|byte| *byte = 0);
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl PeerSecurity {
    /// No authentication and no encryption: any host that reaches the port can speak as any
    /// node of `cluster`. Use only in tests or on a network where every host is trusted.
    pub fn insecure(cluster: impl Into<String>) -> Result<PeerSecurity, SecurityError> {
        Ok(PeerSecurity { cluster: checked_cluster(cluster.into())?, kind: Kind::Insecure })
    }

    /// Shared-secret mode: every member of `cluster` holds `secret` (at least
    /// [`SECRET_BYTES_MIN`] bytes; 32 random bytes recommended). Sessions are TLS 1.3; inside
    /// them each side proves it knows the secret with an HMAC bound to that TLS session, so the
    /// secret never crosses the wire and a recorded handshake cannot be replayed or relayed.
    /// Any holder of the secret can claim to be any member.
    pub fn shared_secret(
        cluster: impl Into<String>,
        secret: &[u8],
    ) -> Result<PeerSecurity, SecurityError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(SecurityError::SecretTooShort { len: secret.len(), min: SECRET_BYTES_MIN });
        }
        Ok(PeerSecurity {
            cluster: checked_cluster(cluster.into())?,
            kind: Kind::SharedSecret(Arc::new(Secret(secret.to_vec()))),
        })
    }

    /// Mutual-TLS mode with `credentials`. Each member's certificate must carry the URI
    /// subject alternative name [`identity_uri`]`(cluster, its address)`; a peer's identity is
    /// read from its certificate, and a dialer checks that the node answering is the node it
    /// dialled. Checked at start: this node's own certificate must name it.
    pub fn mutual_tls(
        cluster: impl Into<String>,
        credentials: MutualTlsCredentials,
    ) -> Result<PeerSecurity, SecurityError> {
        if credentials.ca.is_empty() {
            return Err(SecurityError::Credentials("the CA file holds no certificate".into()));
        }
        if credentials.chain.is_empty() {
            return Err(SecurityError::Credentials(
                "the certificate file holds no certificate".into(),
            ));
        }
        Ok(PeerSecurity {
            cluster: checked_cluster(cluster.into())?,
            kind: Kind::MutualTls(credentials),
        })
    }

    /// [`PeerSecurity::mutual_tls`] with PEM files: the CA certificate(s), this node's chain
    /// (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1). Warns if the key file can
    /// be read by its group or by others.
    pub fn mutual_tls_from_pem_files(
        cluster: impl Into<String>,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<PeerSecurity, SecurityError> {
        let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, SecurityError> {
            CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| SecurityError::Credentials(format!("{}: {e}", path.display())))
        };
        let ca = read_certs(ca)?;
        let chain = read_certs(cert)?;
        warn_if_readable_by_others(key);
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| SecurityError::Credentials(format!("{}: {e}", key.display())))?;
        Self::mutual_tls(cluster, MutualTlsCredentials { ca, chain, key: Arc::new(key) })
    }

    /// The cluster identity every handshake carries.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The mode, as announced in handshakes.
    pub fn mode(&self) -> SecurityMode {
        match self.kind {
            Kind::Insecure => SecurityMode::Insecure,
            Kind::SharedSecret(_) => SecurityMode::SharedSecret,
            Kind::MutualTls(_) => SecurityMode::MutualTls,
        }
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }
}

impl fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret or the key: configurations end up in logs.
        f.debug_struct("PeerSecurity")
            .field("cluster", &self.cluster)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

/// Two configurations are equal if they name the same cluster and mode (credentials are not
/// compared: they are not meant to be inspected).
impl PartialEq for PeerSecurity {
    fn eq(&self, other: &Self) -> bool {
        self.cluster == other.cluster && self.mode() == other.mode()
    }
}

impl Eq for PeerSecurity {}

fn checked_cluster(cluster: String) -> Result<String, SecurityError> {
    if cluster.is_empty() || cluster.len() > CLUSTER_ID_BYTES_MAX {
        return Err(SecurityError::BadClusterId { len: cluster.len() });
    }
    Ok(cluster)
}

/// Logs a warning if `path` can be read by its group or others (Unix); secrets and private
/// keys should be readable by their owner alone.
pub fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                log::warn!(
                    "{} is readable or writable by its group or others (mode {:o}); it holds a secret, use chmod 600",
                    path.display(),
                    mode & 0o777
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The URI subject alternative name that names the node at `addr` in cluster `cluster`, for
/// certificates of mutual-TLS mode: `kompics-net://<cluster>/<addr>`, the cluster
/// percent-encoded (every byte but ASCII letters, digits and `-._~`).
///
/// For example `kompics-net://kvstore/10.0.0.7:7000`, which an operator puts in a certificate
/// request as `subjectAltName=URI:kompics-net://kvstore/10.0.0.7:7000`.
pub fn identity_uri(cluster: &str, addr: NodeAddr) -> String {
    let mut uri = format!("{IDENTITY_URI_SCHEME}://");
    for byte in cluster.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push('/');
    uri.push_str(&addr.to_string());
    uri
}

/// Reads an identity URI back: the cluster and node it names, or `None` if `uri` is not one.
pub fn parse_identity_uri(uri: &str) -> Option<(String, NodeAddr)> {
    let rest = uri.strip_prefix(IDENTITY_URI_SCHEME)?.strip_prefix("://")?;
    let (cluster, addr) = rest.split_once('/')?;
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut bytes = Vec::with_capacity(cluster.len());
    let mut iter = cluster.bytes();
    while let Some(byte) = iter.next() {
        if byte == b'%' {
            let hex = [iter.next()?, iter.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(byte);
        }
    }
    Some((String::from_utf8(bytes).ok()?, NodeAddr(addr)))
}

/// A [`PeerSecurity`] cannot be built, or its credentials cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityError {
    /// The cluster identity is empty or longer than [`CLUSTER_ID_BYTES_MAX`].
    BadClusterId {
        /// Its length in bytes.
        len: usize,
    },
    /// The shared secret is shorter than [`SECRET_BYTES_MIN`].
    SecretTooShort {
        /// Its length in bytes.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A certificate, key or CA cannot be read or used; says which and why.
    Credentials(String),
}

impl fmt::Display for SecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityError::BadClusterId { len } => write!(
                f,
                "the cluster identity must be 1 to {CLUSTER_ID_BYTES_MAX} bytes, not {len}"
            ),
            SecurityError::SecretTooShort { len, min } => write!(
                f,
                "the cluster secret has {len} bytes, fewer than the minimum {min} (use 32 random bytes)"
            ),
            SecurityError::Credentials(why) => write!(f, "unusable TLS credentials: {why}"),
        }
    }
}

impl std::error::Error for SecurityError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uri_round_trips_odd_cluster_names() {
        let addr = NodeAddr("[::1]:7000".parse().unwrap());
        for cluster in ["kvstore", "a/b c%d", "ünï"] {
            let uri = identity_uri(cluster, addr);
            assert!(!uri[IDENTITY_URI_SCHEME.len() + 3..].contains(' '), "{uri}");
            assert_eq!(parse_identity_uri(&uri), Some((cluster.to_string(), addr)));
        }
        assert_eq!(parse_identity_uri("https://kvstore/127.0.0.1:1"), None);
        assert_eq!(parse_identity_uri("kompics-net://kv/not-an-addr"), None);
        assert_eq!(parse_identity_uri("kompics-net://k%4/127.0.0.1:1"), None);
    }

    #[test]
    fn short_secrets_and_bad_cluster_ids_are_refused() {
        assert!(matches!(
            PeerSecurity::shared_secret("c", &[1; 8]),
            Err(SecurityError::SecretTooShort { len: 8, .. })
        ));
        assert!(PeerSecurity::insecure("").is_err());
        assert!(PeerSecurity::insecure("x".repeat(CLUSTER_ID_BYTES_MAX + 1)).is_err());
        let s = PeerSecurity::shared_secret("c", &[7; 32]).unwrap();
        assert!(!format!("{s:?}").contains("7, 7"), "Debug must not show the secret");
    }
}
