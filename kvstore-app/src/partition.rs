//! Which partition a key belongs to ([`partition_of`]), and which nodes replicate each partition
//! ([`LookupTable`]).
//!
//! Both are pure functions of their inputs, identical on every node, platform and Rust version:
//! the hash is written out here ([`stable_hash`]), never std's `DefaultHasher`, whose output may
//! change between releases.
//!
//! ```
//! use kvstore_app::partition::{partition_of, LookupTable, PartitionId};
//!
//! let table = LookupTable::build(&["n1", "n2", "n3", "n4"], 6, 3).unwrap();
//! let partition = partition_of(b"user:42", table.partition_count());
//! let group = table.group(partition); // 3 distinct nodes, the preferred one first
//! assert_eq!(group.len(), 3);
//! assert_eq!(table.group_of_key(b"user:42"), group);
//! assert!(table.partitions_of(&"n1").len() >= 4); // 6·3/4 = 4.5 replicas per node
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// A partition number, `0..partition_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// The key hash: 64-bit FNV-1a over the bytes, then the `fmix64` finalizer of MurmurHash3.
///
/// FNV-1a alone is stable and fast but mixes its low bits poorly (its lowest bit is the parity
/// of the bytes' lowest bits), and keys such as `user:1`, `user:2` differ only in their last
/// byte; the finalizer spreads every input bit over the whole word. This function is part of
/// the on-disk and on-wire contract: changing it moves keys between partitions.
pub fn stable_hash(key: &[u8]) -> u64 {
    fmix64(fnv1a64(key))
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// MurmurHash3's 64-bit finalizer: a bijection in which every input bit affects every output
/// bit.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The part of `key` that decides its partition: its hash tag if it has one, else the whole
/// key. Redis Cluster's rule: the bytes between the first `{` and the first `}` after it, if
/// there are any (`{user:1}:name` and `{user:1}:email` → `user:1`; `{}x`, `x{` and `x}{y` have
/// no tag, and only the first `{` counts: `a{{b}}` → `{b`).
///
/// Keys with the same tag are in the same partition, so a command on several of them can be
/// one atomic log entry (`MSET {u1}a 1 {u1}b 2`, `MSETNX`). Redis hashes the tag with CRC16
/// into 16384 slots; here it goes through [`stable_hash`] and [`partition_of`]'s reduction like
/// any key, so the tag picks the partition, not a Redis slot number.
///
/// Part of the on-disk contract like the hash: a cluster that stored keys with a non-empty
/// `{…}` before tags existed would look for them in another partition now.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&byte| byte == b'{') else { return key };
    let rest = &key[open + 1..];
    match rest.iter().position(|&byte| byte == b'}') {
        Some(len) if len > 0 => &rest[..len],
        _ => key,
    }
}

/// The partition of `key` among `partition_count` partitions: the hash of its
/// [`hash_tag`] (the whole key when it has none) scaled onto `0..partition_count` by a 128-bit
/// multiply (Lemire's reduction, which uses the hash's high bits and has no modulo bias worth
/// the name).
///
/// # Panics
///
/// If `partition_count` is 0: a cluster always has at least one partition, and a
/// [`LookupTable`] guarantees it.
pub fn partition_of(key: &[u8], partition_count: u32) -> PartitionId {
    assert!(partition_count > 0, "partition_of: there must be at least one partition");
    let scaled = (u128::from(stable_hash(hash_tag(key))) * u128::from(partition_count)) >> 64;
    PartitionId(scaled as u32)
}

/// The placement of partitions on nodes: for each partition, the ordered list of the distinct
/// nodes that replicate it (its group). The first member is the group's preferred member (the
/// initial leader candidate, and where the overlay sends requests first).
///
/// Built by [`LookupTable::build`] from the node list, the partition count `P` and the
/// replication degree `R`. Every node holds `⌊P·R/N⌋` or `⌈P·R/N⌉` replicas, and the result
/// depends only on the *set* of nodes (they are sorted first), so every node that builds the
/// table from the same membership gets the same table. Node ids are any ordered, cloneable type
/// (a network address, a node number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Groups<N>", into = "Groups<N>")]
#[serde(bound(
    serialize = "N: Ord + Clone + Serialize",
    deserialize = "N: Ord + Clone + Deserialize<'de>"
))]
pub struct LookupTable<N> {
    groups: Vec<Vec<N>>,
}

/// The serialized form of a [`LookupTable`]: its groups, validated on the way back in.
#[derive(Serialize, Deserialize)]
struct Groups<N> {
    groups: Vec<Vec<N>>,
}

impl<N: Ord + Clone> TryFrom<Groups<N>> for LookupTable<N> {
    type Error = PlacementError;

    fn try_from(raw: Groups<N>) -> Result<Self, PlacementError> {
        LookupTable::from_groups(raw.groups)
    }
}

impl<N> From<LookupTable<N>> for Groups<N> {
    fn from(table: LookupTable<N>) -> Self {
        Groups { groups: table.groups }
    }
}

impl<N: Ord + Clone> LookupTable<N> {
    /// Places `partition_count` partitions with `replication` replicas each on `nodes`.
    ///
    /// The nodes are sorted, then replica slots are dealt round-robin: slot `s = p·R + i`
    /// (partition `p`, replica `i`) goes to node `s mod N`. A partition's `R` slots are `R`
    /// consecutive numbers, so its nodes are distinct as long as `R ≤ N`, and dealing `P·R` slots
    /// in turn gives each node `⌊P·R/N⌋` or `⌈P·R/N⌉` of them. Each group is then rotated by
    /// `p mod R` so that the preferred (first) members spread over the nodes instead of piling
    /// on the first node of every run.
    pub fn build(
        nodes: &[N],
        partition_count: u32,
        replication: usize,
    ) -> Result<Self, PlacementError> {
        if partition_count == 0 {
            return Err(PlacementError::NoPartitions);
        }
        if replication == 0 {
            return Err(PlacementError::NoReplicas);
        }
        let mut sorted = nodes.to_vec();
        sorted.sort();
        if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(PlacementError::DuplicateNode);
        }
        if replication > sorted.len() {
            return Err(PlacementError::NotEnoughNodes { nodes: sorted.len(), replication });
        }
        let node_count = sorted.len();
        let groups = (0..partition_count as usize)
            .map(|partition| {
                let mut group: Vec<N> = (0..replication)
                    .map(|replica| sorted[(partition * replication + replica) % node_count].clone())
                    .collect();
                group.rotate_left(partition % replication);
                group
            })
            .collect();
        Ok(LookupTable { groups })
    }

    /// A table from explicit groups (e.g. read back from disk), checked: at least one group,
    /// all of the same non-zero size, each of distinct nodes.
    pub fn from_groups(groups: Vec<Vec<N>>) -> Result<Self, PlacementError> {
        let Some(first) = groups.first() else {
            return Err(PlacementError::NoPartitions);
        };
        let replication = first.len();
        if replication == 0 {
            return Err(PlacementError::NoReplicas);
        }
        if u32::try_from(groups.len()).is_err() {
            return Err(PlacementError::TooManyPartitions);
        }
        for group in &groups {
            if group.len() != replication {
                return Err(PlacementError::UnequalGroups);
            }
            let mut members: Vec<&N> = group.iter().collect();
            members.sort();
            if members.windows(2).any(|pair| pair[0] == pair[1]) {
                return Err(PlacementError::DuplicateNode);
            }
        }
        Ok(LookupTable { groups })
    }

    /// The number of partitions (at least 1).
    pub fn partition_count(&self) -> u32 {
        self.groups.len() as u32
    }

    /// The number of replicas of each partition.
    pub fn replication(&self) -> usize {
        self.groups[0].len()
    }

    /// The nodes replicating `partition`, preferred member first.
    ///
    /// # Panics
    ///
    /// If `partition` is not below [`partition_count`](Self::partition_count).
    pub fn group(&self, partition: PartitionId) -> &[N] {
        &self.groups[partition.0 as usize]
    }

    /// The partition of `key` in this table.
    pub fn partition_of_key(&self, key: &[u8]) -> PartitionId {
        partition_of(key, self.partition_count())
    }

    /// The nodes replicating `key`'s partition.
    pub fn group_of_key(&self, key: &[u8]) -> &[N] {
        self.group(self.partition_of_key(key))
    }

    /// The partitions `node` replicates, ascending.
    pub fn partitions_of(&self, node: &N) -> Vec<PartitionId> {
        self.iter()
            .filter(|(_, group)| group.contains(node))
            .map(|(partition, _)| partition)
            .collect()
    }

    /// Every partition with its group, by partition number.
    pub fn iter(&self) -> impl Iterator<Item = (PartitionId, &[N])> {
        self.groups
            .iter()
            .enumerate()
            .map(|(index, group)| (PartitionId(index as u32), group.as_slice()))
    }

    /// Every node that replicates at least one partition, sorted.
    pub fn nodes(&self) -> Vec<N> {
        let mut nodes: Vec<N> = self.groups.iter().flatten().cloned().collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }
}

/// Why a [`LookupTable`] cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// Zero partitions.
    NoPartitions,
    /// More partitions than a [`PartitionId`] can number.
    TooManyPartitions,
    /// A replication degree of zero.
    NoReplicas,
    /// Fewer nodes than replicas per partition.
    NotEnoughNodes {
        /// Distinct nodes given.
        nodes: usize,
        /// Replicas wanted per partition.
        replication: usize,
    },
    /// A node listed twice (in the node list, or in one group).
    DuplicateNode,
    /// Groups of different sizes.
    UnequalGroups,
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::NoPartitions => f.write_str("there must be at least one partition"),
            PlacementError::TooManyPartitions => f.write_str("more partitions than u32 can number"),
            PlacementError::NoReplicas => f.write_str("the replication degree must be at least 1"),
            PlacementError::NotEnoughNodes { nodes, replication } => write!(
                f,
                "{nodes} nodes cannot hold {replication} distinct replicas of each partition"
            ),
            PlacementError::DuplicateNode => f.write_str("a node is listed twice"),
            PlacementError::UnequalGroups => f.write_str("groups have different sizes"),
        }
    }
}

impl std::error::Error for PlacementError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hash_tags_follow_redis_clusters_rule() {
        assert_eq!(hash_tag(b"{user:1}:name"), b"user:1");
        assert_eq!(hash_tag(b"x{user:1}y{z}"), b"user:1");
        assert_eq!(hash_tag(b"a{{b}}"), b"{b");
        for untagged in [&b"plain"[..], b"{}x", b"x{", b"x}{y", b"{", b""] {
            assert_eq!(hash_tag(untagged), untagged, "{untagged:?}");
        }
        for partitions in [2, 7, 64] {
            assert_eq!(
                partition_of(b"{u1}:a", partitions),
                partition_of(b"u1", partitions),
                "a tagged key goes where its tag goes"
            );
            assert_eq!(partition_of(b"{u1}:a", partitions), partition_of(b"x{u1}", partitions));
        }
        // Untagged keys are placed as before tags existed.
        assert_eq!(
            partition_of(b"user:42", 1 << 20),
            PartitionId(((u128::from(stable_hash(b"user:42")) << 20) >> 64) as u32)
        );
    }

    #[test]
    fn the_stable_hash_is_pinned() {
        // These values are part of the cluster's contract: a change moves keys between
        // partitions and breaks every existing deployment's data placement.
        assert_eq!(stable_hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"foobar"), fmix64(0x8594_4171_f739_67e8));
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        let pinned: Vec<u32> = ["", "a", "user:1", "user:2", "unit_test"]
            .iter()
            .map(|k| partition_of(k.as_bytes(), 16).0)
            .collect();
        assert_eq!(pinned, PINNED_PARTITIONS);
    }

    /// Checked against an independent implementation (a few lines of Python) when written.
    const PINNED_PARTITIONS: [u32; 5] = [14, 8, 4, 5, 7];

    #[test]
    fn a_single_partition_takes_every_key() {
        assert_eq!(partition_of(b"anything", 1), PartitionId(0));
        assert_eq!(partition_of(b"", 1), PartitionId(0));
    }

    #[test]
    #[should_panic(expected = "at least one partition")]
    fn zero_partitions_is_a_bug() {
        partition_of(b"k", 0);
    }

    #[test]
    fn the_example_layouts_are_as_documented() {
        let table = LookupTable::build(&[3, 1, 2], 3, 3).unwrap();
        let groups: Vec<&[i32]> = table.iter().map(|(_, group)| group).collect();
        assert_eq!(groups, [&[1, 2, 3][..], &[2, 3, 1], &[3, 1, 2]]);
        let table = LookupTable::build(&["a", "b", "c", "d"], 2, 2).unwrap();
        assert_eq!(table.group(PartitionId(0)), ["a", "b"]);
        assert_eq!(table.group(PartitionId(1)), ["d", "c"]);
        assert_eq!(table.partitions_of(&"c"), [PartitionId(1)]);
        assert_eq!(table.nodes(), ["a", "b", "c", "d"]);
    }

    #[test]
    fn impossible_placements_are_errors() {
        assert_eq!(LookupTable::build(&[1, 2], 0, 1), Err(PlacementError::NoPartitions));
        assert_eq!(LookupTable::build(&[1, 2], 1, 0), Err(PlacementError::NoReplicas));
        assert_eq!(
            LookupTable::build(&[1, 2], 4, 3),
            Err(PlacementError::NotEnoughNodes { nodes: 2, replication: 3 })
        );
        assert_eq!(LookupTable::build(&[1, 2, 1], 1, 1), Err(PlacementError::DuplicateNode));
        assert_eq!(LookupTable::<u8>::from_groups(vec![]), Err(PlacementError::NoPartitions));
        assert_eq!(
            LookupTable::from_groups(vec![vec![1], vec![]]),
            Err(PlacementError::UnequalGroups)
        );
        assert_eq!(LookupTable::from_groups(vec![vec![1, 1]]), Err(PlacementError::DuplicateNode));
        assert_eq!(LookupTable::<u8>::from_groups(vec![vec![]]), Err(PlacementError::NoReplicas));
    }

    #[test]
    fn a_table_round_trips_through_serde_and_invalid_ones_are_refused() {
        let table = LookupTable::build(&[10u64, 20, 30, 40, 50], 7, 3).unwrap();
        let bytes = rmp_serde::to_vec(&table).unwrap();
        let back: LookupTable<u64> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, table);
        let forged = rmp_serde::to_vec(&Groups { groups: vec![vec![1u64, 1]] }).unwrap();
        assert!(rmp_serde::from_slice::<LookupTable<u64>>(&forged).is_err());
    }
}
