//! The shared-secret proofs: HMAC-SHA256 over a transcript bound to the TLS session.
//!
//! `K = HKDF-SHA256(salt "kompics-net peer-auth v1", IKM secret, info cluster)`: nodes of
//! another cluster derive another key even from the same secret. Each side MACs, under `K`, a
//! transcript made of its role label, the TLS exporter value of this connection (equal at both
//! ends only if no one sits in the middle, and fresh per connection), and the handshake fields
//! so far (node, cluster, mode, the sender's random nonce; the acceptor's also covers the
//! dialer's whole hello, proof included). So:
//!
//! - the secret never crosses the wire;
//! - a recorded hello is worthless on another connection (another exporter value);
//! - a relay (two TLS sessions, two exporter values) fails the check at the acceptor;
//! - a proof cannot be reflected (role labels differ) or its fields changed (all are MACed).
//!
//! The dialer proves first, in its hello; the acceptor answers with its own proof only to a
//! dialer that proved it knows the secret, so an outsider never gets a MAC to test guesses on.
//! MACs are compared in constant time (`ring::hmac::verify`).

use ring::{hkdf, hmac};

use crate::frame::Handshake;

/// Label of the TLS exporter value the proofs are bound to.
pub(crate) const EXPORTER_LABEL: &[u8] = b"EXPORTER-kompics-net-peer-auth-v1";
/// Bytes of the exporter value.
pub(crate) const EXPORTER_BYTES: usize = 32;
/// Bytes of the nonce in each handshake frame.
pub(crate) const NONCE_BYTES: usize = 32;

const HKDF_SALT: &[u8] = b"kompics-net peer-auth v1";
const DIALER_LABEL: &[u8] = b"kompics-net peer-auth v1 dialer";
const ACCEPTOR_LABEL: &[u8] = b"kompics-net peer-auth v1 acceptor";

/// The MAC key of one cluster, derived from its secret.
pub(crate) struct AuthKey(hmac::Key);

impl AuthKey {
    pub(crate) fn derive(secret: &[u8], cluster: &str) -> AuthKey {
        let info = [cluster.as_bytes()];
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret);
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .expect("HMAC-SHA256's key length is a valid HKDF output length");
        AuthKey(hmac::Key::from(okm))
    }

    /// The proof a dialer puts in its hello (whose `proof` field is ignored here).
    pub(crate) fn dialer_proof(&self, exporter: &[u8], hello: &Handshake) -> Vec<u8> {
        hmac::sign(&self.0, &dialer_transcript(exporter, hello)).as_ref().to_vec()
    }

    /// Whether `hello.proof` is the dialer proof for this connection.
    pub(crate) fn verify_dialer(&self, exporter: &[u8], hello: &Handshake) -> bool {
        hmac::verify(&self.0, &dialer_transcript(exporter, hello), &hello.proof).is_ok()
    }

    /// The proof an acceptor puts in its welcome (whose `proof` field is ignored here).
    pub(crate) fn acceptor_proof(
        &self,
        exporter: &[u8],
        hello: &Handshake,
        welcome: &Handshake,
    ) -> Vec<u8> {
        hmac::sign(&self.0, &acceptor_transcript(exporter, hello, welcome)).as_ref().to_vec()
    }

    /// Whether `welcome.proof` is the acceptor proof answering `hello` on this connection.
    pub(crate) fn verify_acceptor(
        &self,
        exporter: &[u8],
        hello: &Handshake,
        welcome: &Handshake,
    ) -> bool {
        let transcript = acceptor_transcript(exporter, hello, welcome);
        hmac::verify(&self.0, &transcript, &welcome.proof).is_ok()
    }
}

fn dialer_transcript(exporter: &[u8], hello: &Handshake) -> Vec<u8> {
    let mut t = Vec::with_capacity(256);
    put(&mut t, DIALER_LABEL);
    put(&mut t, exporter);
    put_fields(&mut t, hello);
    t
}

fn acceptor_transcript(exporter: &[u8], hello: &Handshake, welcome: &Handshake) -> Vec<u8> {
    let mut t = Vec::with_capacity(512);
    put(&mut t, ACCEPTOR_LABEL);
    put(&mut t, exporter);
    put_fields(&mut t, hello);
    put(&mut t, &hello.proof);
    put_fields(&mut t, welcome);
    t
}

/// A handshake's fields but its proof, each length-prefixed so no two field lists encode alike.
fn put_fields(t: &mut Vec<u8>, h: &Handshake) {
    put(t, h.node.to_string().as_bytes());
    put(t, h.cluster.as_bytes());
    put(t, &[h.mode]);
    put(t, &h.nonce);
}

fn put(t: &mut Vec<u8>, field: &[u8]) {
    t.extend_from_slice(&(field.len() as u32).to_be_bytes());
    t.extend_from_slice(field);
}

/// A fresh random nonce from the OS (never the simulator's seeded generator).
pub(crate) fn nonce() -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut nonce = vec![0; NONCE_BYTES];
    ring::rand::SystemRandom::new().fill(&mut nonce).expect("the OS random generator works");
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::NodeAddr;

    fn hello(node: &str) -> Handshake {
        Handshake {
            node: NodeAddr(node.parse().unwrap()),
            cluster: "c".into(),
            mode: 1,
            nonce: nonce(),
            proof: Vec::new(),
        }
    }

    #[test]
    fn proofs_check_key_exporter_fields_and_role() {
        let key = AuthKey::derive(&[1; 32], "c");
        let exporter = [9; EXPORTER_BYTES];
        let mut h = hello("127.0.0.1:1");
        h.proof = key.dialer_proof(&exporter, &h);
        assert!(key.verify_dialer(&exporter, &h));
        assert!(!key.verify_dialer(&[8; EXPORTER_BYTES], &h), "another connection");
        assert!(!AuthKey::derive(&[2; 32], "c").verify_dialer(&exporter, &h), "another secret");
        assert!(!AuthKey::derive(&[1; 32], "d").verify_dialer(&exporter, &h), "another cluster");
        let mut claimed = h.clone();
        claimed.node = NodeAddr("127.0.0.1:2".parse().unwrap());
        assert!(!key.verify_dialer(&exporter, &claimed), "a changed field");

        let mut w = hello("127.0.0.1:3");
        w.proof = key.acceptor_proof(&exporter, &h, &w);
        assert!(key.verify_acceptor(&exporter, &h, &w));
        // A dialer proof reflected as a welcome proof does not verify.
        let mut reflected = w.clone();
        reflected.proof = key.dialer_proof(&exporter, &w);
        assert!(!key.verify_acceptor(&exporter, &h, &reflected));
    }
}
