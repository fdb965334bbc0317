//! Majority quorums over the voting members.

use std::collections::BTreeSet;

use super::ids::{PeerId, Zxid};

/// The voting members and the majority arithmetic over them. Any two quorums intersect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    voters: BTreeSet<PeerId>,
}

impl Quorum {
    /// The quorum system of these voters.
    pub fn new(voters: impl IntoIterator<Item = PeerId>) -> Quorum {
        Quorum { voters: voters.into_iter().collect() }
    }

    /// How many voters make a quorum: a strict majority.
    pub fn size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether `peer` votes.
    pub fn is_voter(&self, peer: PeerId) -> bool {
        self.voters.contains(&peer)
    }

    /// The voters, in id order.
    pub fn voters(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.voters.iter().copied()
    }

    /// Whether the voters among `peers` form a quorum (duplicates and non-voters ignored).
    pub fn is_quorum<'a>(&self, peers: impl IntoIterator<Item = &'a PeerId>) -> bool {
        let distinct: BTreeSet<&PeerId> =
            peers.into_iter().filter(|peer| self.voters.contains(peer)).collect();
        distinct.len() >= self.size()
    }

    /// The highest zxid that a quorum has acknowledged, given each voter's highest
    /// acknowledgement (acks are cumulative: acking z acks every zxid before it). `None` when
    /// fewer than a quorum of voters have acknowledged anything.
    pub fn acknowledged<'a>(
        &self,
        acks: impl IntoIterator<Item = (&'a PeerId, &'a Zxid)>,
    ) -> Option<Zxid> {
        let mut acked: Vec<Zxid> = acks
            .into_iter()
            .filter(|(peer, _)| self.voters.contains(peer))
            .map(|(_, zxid)| *zxid)
            .collect();
        if acked.len() < self.size() {
            return None;
        }
        acked.sort_unstable_by(|a, b| b.cmp(a));
        Some(acked[self.size() - 1])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn q(n: u64) -> Quorum {
        Quorum::new((1..=n).map(PeerId))
    }

    #[test]
    fn majority_sizes() {
        assert_eq!(q(1).size(), 1);
        assert_eq!(q(2).size(), 2);
        assert_eq!(q(3).size(), 2);
        assert_eq!(q(4).size(), 3);
        assert_eq!(q(5).size(), 3);
    }

    #[test]
    fn non_voters_and_duplicates_do_not_count() {
        let q = q(3);
        assert!(!q.is_quorum(&[PeerId(1), PeerId(1)]));
        assert!(!q.is_quorum(&[PeerId(1), PeerId(9)]));
        assert!(q.is_quorum(&[PeerId(1), PeerId(3)]));
    }

    proptest! {
        /// The acknowledged point equals the naive definition: the largest zxid that at least
        /// a quorum of voters acknowledged (at or beyond).
        #[test]
        fn acknowledged_matches_naive_model(
            n in 1u64..8,
            acks in proptest::collection::vec((1u64..10, 0u64..3, 0u64..5), 0..10),
        ) {
            let quorum = q(n);
            let map: BTreeMap<PeerId, Zxid> =
                acks.iter().map(|(p, e, c)| (PeerId(*p), Zxid::new(*e, *c))).collect();
            let naive = map
                .values()
                .filter(|candidate| {
                    map.iter()
                        .filter(|(peer, z)| quorum.is_voter(**peer) && *z >= *candidate)
                        .count()
                        >= quorum.size()
                })
                .max()
                .copied();
            prop_assert_eq!(quorum.acknowledged(map.iter()), naive);
        }
    }
}
