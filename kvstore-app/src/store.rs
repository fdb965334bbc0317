//! The replicated state machine of one partition: [`Store`], the [`Op`]s that go through Zab and
//! their [`OpResult`]s.
//!
//! The store is deterministic: replicas that apply the same operations in the same order hold
//! the same entries, return the same results, and produce byte-identical snapshots (entries are
//! kept in an ordered map, so iteration order is the key order, whatever the insertion order).
//!
//! The map is persistent ([`imbl::OrdMap`], a B-tree with shared, copy-on-write nodes):
//! cloning a [`Store`] is O(1) and the clone is a frozen view that later writes do not
//! change. That is how a snapshot is taken without pausing anything: the replica clones the
//! store when Zab asks, and serializes the clone on another thread while it goes on applying
//! writes (which copy only the tree nodes they touch while the view is alive). Keys and values
//! are reference-counted byte strings, so copying a node copies no data.
//!
//! ```
//! use kvstore_app::store::{Op, OpResult, Store};
//!
//! let mut store = Store::new();
//! let set = Op::Set { key: b"k".to_vec(), value: b"1".to_vec() };
//! let bytes = set.to_bytes(); // what the leader proposes through Zab
//! assert_eq!(store.apply(&Op::from_bytes(&bytes).unwrap()), OpResult::Stored);
//! let cas = Op::Cas { key: b"k".to_vec(), expected: b"1".to_vec(), new: b"2".to_vec() };
//! assert_eq!(store.apply(&cas), OpResult::Swapped(true));
//!
//! let copy = Store::restore(&store.snapshot()).unwrap();
//! assert_eq!(copy.get(b"k"), Some(&b"2"[..]));
//! ```

use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;

use serde::{Deserialize, Serialize};

/// One operation on the store. This is the payload proposed through Zab (see
/// [`to_bytes`](Op::to_bytes)); reads go through the log too, which is what makes them
/// linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Read a key.
    Get {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
    },
    /// Write a key, creating it if needed.
    Set {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "kompics_net::bytes::vec")]
        value: Vec<u8>,
    },
    /// Remove a key.
    Del {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
    },
    /// Compare-and-swap: write `new` if the key exists and its value equals `expected`.
    /// A missing key never matches.
    Cas {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// The value the key must hold for the swap to happen.
        #[serde(with = "kompics_net::bytes::vec")]
        expected: Vec<u8>,
        /// The value written on a match.
        #[serde(with = "kompics_net::bytes::vec")]
        new: Vec<u8>,
    },
}

/// What applying an [`Op`] returned. Each kind of op has exactly one kind of result.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpResult {
    /// The result of [`Op::Get`]: the value, or `None` if the key does not exist.
    Value(#[serde(with = "kompics_net::bytes::option")] Option<Vec<u8>>),
    /// The result of [`Op::Set`].
    Stored,
    /// The result of [`Op::Del`]: whether the key existed.
    Deleted(bool),
    /// The result of [`Op::Cas`]: whether the value matched and was swapped.
    Swapped(bool),
}

impl Op {
    /// The key this operation is about (every op has exactly one, so it belongs to exactly one
    /// partition).
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Get { key } | Op::Set { key, .. } | Op::Del { key } | Op::Cas { key, .. } => key,
        }
    }

    /// Whether the op never changes the store.
    pub fn is_read_only(&self) -> bool {
        matches!(self, Op::Get { .. })
    }

    /// Whether `result` is of the kind this op returns (a `Get` returns a `Value`, …).
    pub fn result_matches_kind(&self, result: &OpResult) -> bool {
        matches!(
            (self, result),
            (Op::Get { .. }, OpResult::Value(_))
                | (Op::Set { .. }, OpResult::Stored)
                | (Op::Del { .. }, OpResult::Deleted(_))
                | (Op::Cas { .. }, OpResult::Swapped(_))
        )
    }

    /// The op as MessagePack (rmp-serde), with keys and values as binary strings.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing this enum into a Vec cannot fail: no maps with non-string keys, no
        // sequences of unknown length, and writing to a Vec does not fail.
        rmp_serde::to_vec(self).expect("an Op always serializes")
    }

    /// Decodes [`to_bytes`](Op::to_bytes)' output; garbage is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Op, DecodeError> {
        decode(bytes)
    }
}

impl OpResult {
    /// The result as MessagePack (rmp-serde), for forwarding a reply between nodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("an OpResult always serializes")
    }

    /// Decodes [`to_bytes`](OpResult::to_bytes)' output; garbage is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<OpResult, DecodeError> {
        decode(bytes)
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut reader = bytes;
    let value = T::deserialize(&mut rmp_serde::Deserializer::new(&mut reader))
        .map_err(|error| DecodeError(error.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError(format!("{} trailing bytes", reader.len())));
    }
    Ok(value)
}

/// Bytes that are not an encoded [`Op`] or [`OpResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A key or value: shared, so that copying a map node (or the whole store) copies no bytes.
type Bytes = Arc<[u8]>;

/// The key-value map of one partition. [`Clone`] is O(1): the clone is a snapshot of the
/// store at that moment (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    entries: OrdMap<Bytes, Bytes>,
    /// Bytes of all keys and values, kept up to date for `INFO` and memory accounting.
    data_bytes: u64,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store::default()
    }

    /// Applies one op and returns its result. Deterministic: it depends only on the store's
    /// contents and the op.
    pub fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Get { key } => OpResult::Value(self.get(key).map(<[u8]>::to_vec)),
            Op::Set { key, value } => {
                self.insert(key, value);
                OpResult::Stored
            }
            Op::Del { key } => match self.entries.remove(key.as_slice()) {
                Some(old) => {
                    self.data_bytes -= (key.len() + old.len()) as u64;
                    OpResult::Deleted(true)
                }
                None => OpResult::Deleted(false),
            },
            Op::Cas { key, expected, new } => {
                if self.get(key) == Some(expected.as_slice()) {
                    self.insert(key, new);
                    OpResult::Swapped(true)
                } else {
                    OpResult::Swapped(false)
                }
            }
        }
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.data_bytes += value.len() as u64;
        let value: Bytes = Arc::from(value);
        match self.entries.get_mut(key) {
            Some(slot) => {
                self.data_bytes -= slot.len() as u64;
                *slot = value;
            }
            None => {
                self.data_bytes += key.len() as u64;
                self.entries.insert(Arc::from(key), value);
            }
        }
    }

    /// How many bytes applying `op` would add to [`data_bytes`](Store::data_bytes) now
    /// (negative: it would free some). A `CAS` that would not match adds nothing.
    pub fn growth(&self, op: &Op) -> i64 {
        let len = |bytes: &[u8]| bytes.len() as i64;
        match op {
            Op::Get { .. } => 0,
            Op::Set { key, value } => match self.get(key) {
                Some(old) => len(value) - len(old),
                None => len(key) + len(value),
            },
            Op::Del { key } => self.get(key).map_or(0, |old| -(len(key) + len(old))),
            Op::Cas { key, expected, new } => match self.get(key) {
                Some(old) if old == expected.as_slice() => len(new) - len(old),
                _ => 0,
            },
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries.get(key).map(|value| &value[..])
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The total size of all keys and values, in bytes.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|(key, value)| (&key[..], &value[..]))
    }

    /// The whole store as bytes, for Zab's `get_state`. Equal contents give identical bytes.
    ///
    /// Format (all integers little-endian): the 8-byte magic `KVSNAP01`; the entry count (u64);
    /// per entry in ascending key order, key length (u64), key, value length (u64), value; then
    /// the CRC-32C (u32) of everything before it.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            SNAPSHOT_MAGIC.len() + 8 + self.entries.len() * 16 + self.data_bytes as usize + 4,
        );
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (key, value) in self.entries.iter() {
            out.extend_from_slice(&(key.len() as u64).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
        }
        let checksum = crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Rebuilds a store from [`snapshot`](Store::snapshot)'s bytes, for Zab's `set_state`.
    /// Anything else — truncated, corrupted, or not canonical — is an error; no claimed length
    /// is trusted before it is checked against the bytes present.
    pub fn restore(snapshot: &[u8]) -> Result<Store, SnapshotError> {
        let body_len = snapshot
            .len()
            .checked_sub(4)
            .filter(|&len| len >= SNAPSHOT_MAGIC.len() + 8)
            .ok_or(SnapshotError::Truncated)?;
        let (body, checksum) = snapshot.split_at(body_len);
        if &body[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let stored = u32::from_le_bytes(checksum.try_into().map_err(|_| SnapshotError::Truncated)?);
        if stored != crc32c(body) {
            return Err(SnapshotError::ChecksumMismatch);
        }
        let mut reader = Reader { bytes: &body[SNAPSHOT_MAGIC.len()..] };
        let count = reader.u64()?;
        let mut store = Store::new();
        let mut previous: Option<&[u8]> = None;
        for _ in 0..count {
            let key = reader.chunk()?;
            let value = reader.chunk()?;
            if previous.is_some_and(|previous| previous >= key) {
                return Err(SnapshotError::KeysOutOfOrder);
            }
            previous = Some(key);
            store.data_bytes += (key.len() + value.len()) as u64;
            store.entries.insert(Arc::from(key), Arc::from(value));
        }
        if !reader.bytes.is_empty() {
            return Err(SnapshotError::TrailingBytes);
        }
        Ok(store)
    }
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"KVSNAP01";

/// Why [`Store::restore`] refused a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// Shorter than its header, or a length runs past the end.
    Truncated,
    /// Not a snapshot of this format (or version).
    BadMagic,
    /// The bytes were corrupted.
    ChecksumMismatch,
    /// Keys not strictly ascending: not what [`Store::snapshot`] writes.
    KeysOutOfOrder,
    /// Bytes left after the last entry.
    TrailingBytes,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotError::Truncated => "snapshot truncated",
            SnapshotError::BadMagic => "not a kvstore snapshot (bad magic)",
            SnapshotError::ChecksumMismatch => "snapshot checksum mismatch",
            SnapshotError::KeysOutOfOrder => "snapshot keys not in ascending order",
            SnapshotError::TrailingBytes => "trailing bytes after the snapshot's entries",
        })
    }
}

impl std::error::Error for SnapshotError {}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u64) -> Result<&'a [u8], SnapshotError> {
        let len = usize::try_from(len).map_err(|_| SnapshotError::Truncated)?;
        if len > self.bytes.len() {
            return Err(SnapshotError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| SnapshotError::Truncated)?))
    }

    fn chunk(&mut self) -> Result<&'a [u8], SnapshotError> {
        let len = self.u64()?;
        self.take(len)
    }
}

/// CRC-32C (Castagnoli, reflected, as in iSCSI and ext4), table-driven.
fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &byte in bytes {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str) -> Op {
        Op::Get { key: key.into() }
    }
    fn set(key: &str, value: &str) -> Op {
        Op::Set { key: key.into(), value: value.into() }
    }
    fn del(key: &str) -> Op {
        Op::Del { key: key.into() }
    }
    fn cas(key: &str, expected: &str, new: &str) -> Op {
        Op::Cas { key: key.into(), expected: expected.into(), new: new.into() }
    }
    fn value(text: &str) -> OpResult {
        OpResult::Value(Some(text.into()))
    }

    #[test]
    fn get_set_del_cas_follow_their_contracts() {
        let mut store = Store::new();
        assert_eq!(store.apply(&get("k")), OpResult::Value(None));
        assert_eq!(store.apply(&del("k")), OpResult::Deleted(false));
        assert_eq!(
            store.apply(&cas("k", "", "x")),
            OpResult::Swapped(false),
            "missing never matches"
        );
        assert_eq!(store.apply(&set("k", "1")), OpResult::Stored);
        assert_eq!(store.apply(&get("k")), value("1"));
        assert_eq!(store.apply(&cas("k", "2", "3")), OpResult::Swapped(false));
        assert_eq!(store.apply(&get("k")), value("1"), "a failed CAS changes nothing");
        assert_eq!(store.apply(&cas("k", "1", "3")), OpResult::Swapped(true));
        assert_eq!(store.apply(&get("k")), value("3"));
        assert_eq!(store.apply(&set("k", "")), OpResult::Stored);
        assert_eq!(store.apply(&cas("k", "", "e")), OpResult::Swapped(true), "empty is a value");
        assert_eq!(store.apply(&del("k")), OpResult::Deleted(true));
        assert_eq!(store.apply(&get("k")), OpResult::Value(None));
        assert!(store.is_empty());
        assert_eq!(store.data_bytes(), 0);
    }

    #[test]
    fn data_bytes_counts_keys_and_values() {
        let mut store = Store::new();
        store.apply(&set("ab", "123"));
        store.apply(&set("c", "4"));
        assert_eq!(store.data_bytes(), 7);
        store.apply(&set("ab", "1"));
        assert_eq!(store.data_bytes(), 5);
        store.apply(&cas("c", "4", "4567"));
        assert_eq!(store.data_bytes(), 8);
        store.apply(&del("ab"));
        assert_eq!(store.data_bytes(), 5);
        assert_eq!(Store::restore(&store.snapshot()).unwrap().data_bytes(), 5);
    }

    #[test]
    fn ops_and_results_round_trip_through_bytes() {
        for op in [get("k"), set("k", "v\0\u{ff}"), del(""), cas("k", "a", "b")] {
            assert_eq!(Op::from_bytes(&op.to_bytes()), Ok(op));
        }
        for result in [
            OpResult::Value(None),
            value("x"),
            OpResult::Stored,
            OpResult::Deleted(true),
            OpResult::Swapped(false),
        ] {
            assert_eq!(OpResult::from_bytes(&result.to_bytes()), Ok(result));
        }
    }

    #[test]
    fn values_encode_as_binary_strings_not_number_sequences() {
        let op = Op::Set { key: b"k".to_vec(), value: vec![0xff; 1000] };
        assert!(op.to_bytes().len() < 1020, "{} bytes", op.to_bytes().len());
    }

    #[test]
    fn garbage_and_trailing_bytes_do_not_decode_as_ops() {
        assert!(Op::from_bytes(b"").is_err());
        assert!(Op::from_bytes(b"\xc1\xc1").is_err());
        let mut bytes = get("k").to_bytes();
        bytes.push(0);
        assert!(Op::from_bytes(&bytes).is_err());
    }

    #[test]
    fn equal_contents_give_identical_snapshots_whatever_the_history() {
        let mut a = Store::new();
        for op in [set("b", "2"), set("a", "1"), set("c", "x"), del("c")] {
            a.apply(&op);
        }
        let mut b = Store::new();
        for op in [set("a", "0"), set("b", "2"), cas("a", "0", "1")] {
            b.apply(&op);
        }
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(Store::restore(&a.snapshot()), Ok(a));
    }

    #[test]
    fn a_clone_is_a_frozen_view_that_later_writes_do_not_change() {
        let mut store = Store::new();
        for i in 0..1000 {
            store.apply(&set(&format!("k{i:04}"), &format!("v{i}")));
        }
        let view = store.clone();
        let expected = store.snapshot();
        // Writes after the capture: overwrite, delete, insert, swap.
        store.apply(&set("k0001", "changed"));
        store.apply(&del("k0002"));
        store.apply(&set("new", "key"));
        store.apply(&cas("k0003", "v3", "swapped"));
        assert_eq!(view.snapshot(), expected, "the view is the store at the capture");
        assert_eq!(view.get(b"k0001"), Some(&b"v1"[..]));
        assert_eq!(store.get(b"k0001"), Some(&b"changed"[..]));
        assert_eq!(view.data_bytes(), Store::restore(&expected).unwrap().data_bytes());
    }

    #[test]
    fn growth_is_what_applying_adds_to_data_bytes() {
        let mut store = Store::new();
        let ops = [
            set("a", "123"),
            set("a", "1"),
            set("a", "12345"),
            cas("a", "nope", "much longer"),
            cas("a", "12345", "much longer"),
            cas("missing", "", "x"),
            del("missing"),
            set("b", ""),
            del("a"),
            get("b"),
        ];
        for op in ops {
            let before = store.data_bytes() as i64;
            let growth = store.growth(&op);
            store.apply(&op);
            assert_eq!(store.data_bytes() as i64 - before, growth, "{op:?}");
        }
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn every_corruption_of_a_snapshot_is_an_error() {
        let mut store = Store::new();
        store.apply(&set("key", "value"));
        store.apply(&set("other", "thing"));
        let good = store.snapshot();
        for len in 0..good.len() {
            assert!(Store::restore(&good[..len]).is_err(), "truncated to {len}");
        }
        for index in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[index] ^= 1 << bit;
                assert!(Store::restore(&bad).is_err(), "bit {bit} of byte {index} flipped");
            }
        }
    }

    /// Builds a snapshot body by hand with a valid checksum, to reach the checks behind it.
    fn forged(entries: &[(&[u8], &[u8])], count: u64, trailing: &[u8]) -> Vec<u8> {
        let mut out = SNAPSHOT_MAGIC.to_vec();
        out.extend_from_slice(&count.to_le_bytes());
        for (key, value) in entries {
            out.extend_from_slice(&(key.len() as u64).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(trailing);
        let checksum = crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    #[test]
    fn well_checksummed_but_invalid_snapshots_are_errors() {
        let entries: &[(&[u8], &[u8])] = &[(b"a", b"1"), (b"b", b"2")];
        assert!(Store::restore(&forged(entries, 2, b"")).is_ok());
        assert_eq!(Store::restore(&forged(entries, 3, b"")), Err(SnapshotError::Truncated));
        assert_eq!(Store::restore(&forged(entries, u64::MAX, b"")), Err(SnapshotError::Truncated));
        assert_eq!(Store::restore(&forged(entries, 1, b"")), Err(SnapshotError::TrailingBytes));
        assert_eq!(Store::restore(&forged(entries, 2, b"x")), Err(SnapshotError::TrailingBytes));
        let unordered: &[(&[u8], &[u8])] = &[(b"b", b"2"), (b"a", b"1")];
        assert_eq!(Store::restore(&forged(unordered, 2, b"")), Err(SnapshotError::KeysOutOfOrder));
        let duplicate: &[(&[u8], &[u8])] = &[(b"a", b"2"), (b"a", b"1")];
        assert_eq!(Store::restore(&forged(duplicate, 2, b"")), Err(SnapshotError::KeysOutOfOrder));
        let mut huge_len = forged(&[], 1, &u64::MAX.to_le_bytes());
        assert_eq!(Store::restore(&huge_len), Err(SnapshotError::Truncated));
        huge_len[0] = b'X';
        assert_eq!(Store::restore(&huge_len), Err(SnapshotError::BadMagic));
    }
}
