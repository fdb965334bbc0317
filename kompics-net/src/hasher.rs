//! [`FastHasher`]: a fast hasher for the maps keyed by peer address, connection token or
//! connection id (the TCP transport's and the stream server's event loops).
//!
//! Every send looks its destination up in a map; with std's SipHash that lookup cost about a
//! tenth of the sender's time per small message in the throughput benchmark. SipHash resists
//! collision flooding by chosen keys, which these maps do not need: they hold at most
//! `peers_max` peers and `connections_max` (or `max_connections`) connections, and tokens and
//! connection ids are our own counters.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds [`FastHasher`]s.
pub(crate) type FastHashBuilder = BuildHasherDefault<FastHasher>;

/// A multiply-rotate hasher (the FxHash scheme) over 64-bit words.
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHasher {
    hash: u64,
}

/// An odd constant with well-spread bits (from the golden ratio), as FxHash uses.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;
    use crate::address::NodeAddr;

    #[test]
    fn nearby_addresses_hash_apart() {
        let build = FastHashBuilder::default();
        let hashes: HashSet<u64> = (4000..5000u16)
            .map(|port| build.hash_one(NodeAddr(([127, 0, 0, 1], port).into())))
            .collect();
        assert_eq!(hashes.len(), 1000);
        // hashbrown picks buckets from the low bits and tags from the top 7: both must vary.
        let tops: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        let lows: HashSet<u64> = hashes.iter().map(|h| h & 0x3ff).collect();
        assert!(tops.len() > 64, "top bits poorly spread: {}", tops.len());
        assert!(lows.len() > 500, "low bits poorly spread: {}", lows.len());
    }
}
