//! How a node's peer port authenticates the other nodes: [`PeerAuth`], where its credentials
//! come from, and [`PeerAuth::security`], which turns them into the transport's
//! [`PeerSecurity`] for the store's cluster.
//!
//! `kvstore node` has no default: it needs mutual-TLS files, a cluster secret (a file, or the
//! `KVSTORE_CLUSTER_SECRET` environment variable), or `--insecure` in so many words
//! ([`PeerAuth::from_sources`] builds the error naming the options). `kvstore demo` mints a
//! random secret in memory for its own nodes ([`PeerAuth::random_secret`]).
//!
//! The cluster identity every peer handshake carries is the cluster's *name*
//! (`--cluster-name`, default `kvstore`): it is known when the process starts, before the
//! bootstrap assigns the random cluster id, and the transport must check it from the first
//! connection on. Clusters that must never talk to each other need distinct names (and,
//! better, distinct secrets or CAs); the bootstrap still compares cluster ids once it has one.
//!
//! Secrets are never printed: `Debug` shows only the mode, and nothing here logs contents.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kompics_net::tls::warn_if_readable_by_others;
use kompics_net::PeerSecurity;

/// The environment variable that may hold the cluster secret.
pub const SECRET_ENV: &str = "KVSTORE_CLUSTER_SECRET";

/// The error `kvstore node` reports when no peer authentication is configured.
pub const NO_AUTH_ERROR: &str = "peer authentication is required: give --peer-tls-cert, \
--peer-tls-key and --peer-tls-ca (mutual TLS), or --cluster-secret-file FILE (or the \
KVSTORE_CLUSTER_SECRET environment variable) for a shared secret, or --insecure to accept \
any host that reaches the peer port";

/// Where a node's peer credentials come from.
#[derive(Clone)]
pub enum PeerAuth {
    /// Mutual TLS with PEM files: the CA, this node's certificate chain and its key.
    MutualTls {
        /// The CA certificate(s) every member's certificate chains to.
        ca: PathBuf,
        /// This node's certificate (leaf first).
        cert: PathBuf,
        /// This node's private key.
        key: PathBuf,
    },
    /// A shared cluster secret, already read.
    Secret(Arc<SecretBytes>),
    /// No authentication (`--insecure`).
    Insecure,
}

/// Secret bytes that never print.
pub struct SecretBytes(Vec<u8>);

impl PeerAuth {
    /// The mode the command-line sources ask for: exactly one of the mutual-TLS files (all
    /// three), a secret file, a secret from the environment (`env_secret`) or `insecure`.
    /// `Err` with a clear message for none (naming every option), several, or an unreadable
    /// secret file.
    pub fn from_sources(
        tls: (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>),
        secret_file: Option<&Path>,
        env_secret: Option<String>,
        insecure: bool,
    ) -> Result<PeerAuth, String> {
        let tls_given = tls.0.is_some() || tls.1.is_some() || tls.2.is_some();
        let given = [tls_given, secret_file.is_some(), env_secret.is_some(), insecure];
        match given.iter().filter(|g| **g).count() {
            0 => return Err(NO_AUTH_ERROR.into()),
            1 => {}
            _ => {
                return Err(format!(
                    "choose one peer authentication: mutual TLS (--peer-tls-*), a secret \
                     (--cluster-secret-file or {SECRET_ENV}) or --insecure, not several"
                ))
            }
        }
        if tls_given {
            return match tls {
                (Some(cert), Some(key), Some(ca)) => Ok(PeerAuth::MutualTls { ca, cert, key }),
                _ => Err("mutual TLS needs all three of --peer-tls-cert, --peer-tls-key and \
                          --peer-tls-ca"
                    .into()),
            };
        }
        if let Some(path) = secret_file {
            return PeerAuth::secret_from_file(path);
        }
        if let Some(value) = env_secret {
            return Ok(PeerAuth::secret(value.trim().as_bytes()));
        }
        Ok(PeerAuth::Insecure)
    }

    /// A secret read from `path` (warning if others may read it). A text file is trimmed of
    /// surrounding whitespace (so `openssl rand -hex 32 > file` works); other bytes are used
    /// as they are.
    pub fn secret_from_file(path: &Path) -> Result<PeerAuth, String> {
        warn_if_readable_by_others(path);
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cluster secret file {}: {e}", path.display()))?;
        let secret = match std::str::from_utf8(&bytes) {
            Ok(text) => text.trim().as_bytes().to_vec(),
            Err(_) => bytes,
        };
        Ok(PeerAuth::secret(&secret))
    }

    /// A given secret.
    pub fn secret(bytes: &[u8]) -> PeerAuth {
        PeerAuth::Secret(Arc::new(SecretBytes(bytes.to_vec())))
    }

    /// 32 fresh random bytes (for `kvstore demo`, whose nodes all live in this process).
    pub fn random_secret() -> PeerAuth {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        // ThreadRng is a CSPRNG seeded from the OS.
        rand::rng().fill_bytes(&mut bytes);
        PeerAuth::secret(&bytes)
    }

    /// The mode in words, for the start-up line (never the secret or a path's contents).
    pub fn describe(&self) -> &'static str {
        match self {
            PeerAuth::MutualTls { .. } => "mutual TLS",
            PeerAuth::Secret(_) => "shared secret over TLS",
            PeerAuth::Insecure => "INSECURE (no authentication, plaintext)",
        }
    }

    /// The transport configuration for a node of cluster `cluster`. `Err` says what is wrong
    /// (a secret too short, a certificate that cannot be read).
    pub fn security(&self, cluster: &str) -> Result<PeerSecurity, String> {
        let security = match self {
            PeerAuth::MutualTls { ca, cert, key } => {
                PeerSecurity::mutual_tls_from_pem_files(cluster, ca, cert, key)
            }
            PeerAuth::Secret(secret) => PeerSecurity::shared_secret(cluster, &secret.0),
            PeerAuth::Insecure => PeerSecurity::insecure(cluster),
        };
        security.map_err(|e| format!("peer authentication: {e}"))
    }
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAuth::MutualTls { ca, cert, key } => f
                .debug_struct("MutualTls")
                .field("ca", ca)
                .field("cert", cert)
                .field("key", key)
                .finish(),
            PeerAuth::Secret(_) => f.write_str("Secret(..)"),
            PeerAuth::Insecure => f.write_str("Insecure"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
        (None, None, None)
    }

    #[test]
    fn exactly_one_source_is_required() {
        let err = PeerAuth::from_sources(none(), None, None, false).unwrap_err();
        for option in ["--peer-tls-cert", "--cluster-secret-file", "--insecure", SECRET_ENV] {
            assert!(err.contains(option), "{err} should name {option}");
        }
        let both = PeerAuth::from_sources(none(), None, Some("x".repeat(32)), true);
        assert!(both.unwrap_err().contains("not several"));
        let partial = (Some(PathBuf::from("c.pem")), None, None);
        assert!(PeerAuth::from_sources(partial, None, None, false)
            .unwrap_err()
            .contains("all three"));
        let insecure = PeerAuth::from_sources(none(), None, None, true).unwrap();
        assert!(matches!(insecure, PeerAuth::Insecure));
    }

    #[test]
    fn secrets_are_trimmed_checked_and_never_printed() {
        let auth =
            PeerAuth::from_sources(none(), None, Some(format!(" {}\n", "s".repeat(32))), false)
                .unwrap();
        assert_eq!(format!("{auth:?}"), "Secret(..)");
        assert!(auth.security("kvstore").is_ok());
        let short = PeerAuth::secret(b"short").security("kvstore").unwrap_err();
        assert!(short.contains("fewer than"), "{short}");
    }
}
