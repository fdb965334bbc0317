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
//! Besides `GET`, `SET`, `DEL` and `CAS`, the ops are the string writes (`INCRBY`, `APPEND`,
//! `SET NX|XX GET`, `GETDEL`, `MSET` of one partition…), decided in [`strings`] from the store
//! and the op alone, and the whole-partition ops (`Count`, `Scan`, `Flush`) that the front end
//! sends to every partition for `DBSIZE`, `SCAN`/`KEYS` and `FLUSHALL`. A derived index keeps
//! the keys in scan order ([`scan_position`]), so a `SCAN` cursor survives any write between
//! two pages; it is rebuilt on restore and never part of a snapshot, whose format is unchanged.
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

use imbl::{OrdMap, OrdSet};

use crate::glob::glob_match;

use serde::{Deserialize, Serialize};

use crate::partition::{partition_of, stable_hash, PartitionId};

pub mod strings;

use strings::Change;

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
    // The variants below were added after the four above. rmp-serde encodes a variant by its
    // name (a map of one entry, name → fields), so logs written before them still decode, as
    // long as no variant is renamed; they go at the end all the same.
    /// Add `by` to the decimal integer the key holds, a missing key counting as 0 (`INCR`,
    /// `DECR`, `INCRBY`, `DECRBY`). See [`strings`] for the exact rules.
    IncrBy {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// The increment (negative to decrement).
        by: i64,
    },
    /// Add a float to the number the key holds (`INCRBYFLOAT`).
    IncrByFloat {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// The increment, as the IEEE-754 bits of an `f64` (so that ops stay `Eq` and `Hash`).
        by_bits: u64,
    },
    /// Append `value` to the key's value, creating the key if needed (`APPEND`).
    Append {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// The bytes appended.
        #[serde(with = "kompics_net::bytes::vec")]
        value: Vec<u8>,
        /// The longest value allowed as a result: the front end's limit, carried in the op so
        /// that every replica decides alike whatever its own configuration.
        len_max: u64,
    },
    /// Overwrite the key's value from `offset` on, padding with zero bytes (`SETRANGE`).
    SetRange {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// Where the bytes go.
        offset: u64,
        /// The bytes written.
        #[serde(with = "kompics_net::bytes::vec")]
        value: Vec<u8>,
        /// The longest value allowed as a result (as in [`Op::Append`]).
        len_max: u64,
    },
    /// `SET` with a condition, optionally returning the old value (`SET … NX|XX GET`, `SETNX`,
    /// `GETSET`).
    SetIf {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "kompics_net::bytes::vec")]
        value: Vec<u8>,
        /// When to write.
        condition: SetCondition,
    },
    /// Remove a key and return its value (`GETDEL`).
    GetDel {
        /// The key.
        #[serde(with = "kompics_net::bytes::vec")]
        key: Vec<u8>,
    },
    /// Write several keys of one partition in one log entry (`MSET`, `MSETNX`): all of them,
    /// or, with `only_if_none_exist`, none if any of them exists.
    MultiSet {
        /// The keys and values, in request order (a later pair wins over an earlier one).
        pairs: Vec<Pair>,
        /// `MSETNX`: write only if no key exists.
        only_if_none_exist: bool,
    },
    /// The number of keys in a partition (`DBSIZE`).
    Count {
        /// The partition.
        partition: u32,
    },
    /// A page of a partition's keys in scan order (`SCAN`, `KEYS`); see [`Store::scan`].
    Scan {
        /// The partition.
        partition: u32,
        /// The scan position to start at (0: the beginning).
        from: u64,
        /// How many keys to examine at most (whole runs of one position are never split).
        count_max: u64,
        /// Return only keys matching this glob pattern.
        pattern: Option<Bin>,
    },
    /// Remove every key of a partition (`FLUSHALL`, `FLUSHDB`).
    Flush {
        /// The partition.
        partition: u32,
    },
    /// Read several keys of one partition at one instant (`MGET`, `EXISTS` of keys that share
    /// a partition).
    MultiGet {
        /// The keys, in request order.
        keys: Vec<Bin>,
    },
    /// Remove several keys of one partition in one log entry (`DEL`, `UNLINK` of keys that
    /// share a partition); the result is how many existed (a key named twice counts once).
    MultiDel {
        /// The keys, in request order.
        keys: Vec<Bin>,
    },
}

/// A key and its value, encoded as two binary strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pair {
    /// The key.
    #[serde(with = "kompics_net::bytes::vec")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "kompics_net::bytes::vec")]
    pub value: Vec<u8>,
}

/// A byte string encoded as one binary string (serde's default for `Vec<u8>` is a sequence of
/// integers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bin(#[serde(with = "kompics_net::bytes::vec")] pub Vec<u8>);

/// When [`Op::SetIf`] writes, and whether it returns the old value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetCondition {
    /// `NX`: write only if the key does not exist.
    pub if_missing: bool,
    /// `XX`: write only if the key exists.
    pub if_exists: bool,
    /// `GET`: the result carries the old value.
    pub get_old: bool,
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
    // Added after the four above: new variants go at the end (see `Op`).
    /// An integer: the new value of [`Op::IncrBy`], the new length after [`Op::Append`] or
    /// [`Op::SetRange`], the key count of [`Op::Count`].
    Integer(i64),
    /// The result of [`Op::SetIf`] and [`Op::MultiSet`]: whether it wrote, and the old value
    /// (for `SetIf` only, and `None` if the key did not exist).
    Written {
        /// Whether the write happened.
        written: bool,
        /// The old value.
        #[serde(with = "kompics_net::bytes::option")]
        old: Option<Vec<u8>>,
    },
    /// The result of [`Op::Scan`]: the keys of the page that match, and where the next page
    /// starts (`None`: the partition is done).
    Page {
        /// The matching keys.
        keys: Vec<Bin>,
        /// The next page's `from`.
        next: Option<u64>,
    },
    /// The op changed nothing, for this reason.
    Refused(Refusal),
    /// The result of [`Op::MultiGet`]: each key's value, or `None`, in the op's order.
    Values(Vec<Option<Bin>>),
}

/// Why a write was refused by the state machine (every replica refuses it alike, and it
/// changes nothing). The front end turns each into Redis' error text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// The value is not a decimal 64-bit integer (`INCR` on `"abc"`).
    NotAnInteger,
    /// The result would not fit in 64 bits.
    Overflow,
    /// The value is not a number (`INCRBYFLOAT` on `"abc"`).
    NotAFloat,
    /// The result would be NaN or infinite.
    NanOrInfinity,
    /// The value would exceed the op's `len_max`.
    TooLong,
}

impl Op {
    /// The key this operation is about, which decides its partition (see
    /// [`partition`](Op::partition)). A [`MultiSet`](Op::MultiSet)'s keys all belong to one
    /// partition (the front end checks it): this is the first. An op addressed to a whole
    /// partition ([`Count`](Op::Count), [`Scan`](Op::Scan), [`Flush`](Op::Flush)) has none:
    /// the empty key.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Get { key }
            | Op::Set { key, .. }
            | Op::Del { key }
            | Op::Cas { key, .. }
            | Op::IncrBy { key, .. }
            | Op::IncrByFloat { key, .. }
            | Op::Append { key, .. }
            | Op::SetRange { key, .. }
            | Op::SetIf { key, .. }
            | Op::GetDel { key } => key,
            Op::MultiSet { pairs, .. } => pairs.first().map_or(&[][..], |pair| &pair.key[..]),
            Op::MultiGet { keys } | Op::MultiDel { keys } => {
                keys.first().map_or(&[][..], |key| &key.0[..])
            }
            Op::Count { .. } | Op::Scan { .. } | Op::Flush { .. } => &[],
        }
    }

    /// The partition that serves this op among `partition_count`: its key's, or the one it
    /// names.
    pub fn partition(&self, partition_count: u32) -> PartitionId {
        match self {
            Op::Count { partition } | Op::Scan { partition, .. } | Op::Flush { partition } => {
                PartitionId(*partition)
            }
            _ => partition_of(self.key(), partition_count),
        }
    }

    /// Whether the op never changes the store. Such ops are served by a read barrier, not
    /// through the log (see [`Store::read`]).
    pub fn is_read_only(&self) -> bool {
        matches!(self, Op::Get { .. } | Op::Count { .. } | Op::Scan { .. } | Op::MultiGet { .. })
    }

    /// Whether `result` is of a kind this op returns (a `Get` returns a `Value`, …).
    pub fn result_matches_kind(&self, result: &OpResult) -> bool {
        use OpResult as R;
        match self {
            Op::Get { .. } | Op::GetDel { .. } => matches!(result, R::Value(_)),
            Op::Set { .. } | Op::Flush { .. } => matches!(result, R::Stored),
            Op::Del { .. } => matches!(result, R::Deleted(_)),
            Op::Cas { .. } => matches!(result, R::Swapped(_)),
            Op::IncrBy { .. } | Op::Append { .. } | Op::SetRange { .. } => {
                matches!(result, R::Integer(_) | R::Refused(_))
            }
            Op::IncrByFloat { .. } => matches!(result, R::Value(Some(_)) | R::Refused(_)),
            Op::SetIf { .. } | Op::MultiSet { .. } => matches!(result, R::Written { .. }),
            Op::Count { .. } => matches!(result, R::Integer(_)),
            Op::Scan { .. } => matches!(result, R::Page { .. }),
            Op::MultiGet { .. } => matches!(result, R::Values(_)),
            Op::MultiDel { .. } => matches!(result, R::Integer(_)),
        }
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
    /// The same keys in scan order: (scan position, key). Derived from `entries` (never in a
    /// snapshot), so that `SCAN` can resume from a number that stays meaningful whatever is
    /// inserted or removed meanwhile (see [`Store::scan`]).
    scan_index: OrdSet<(u64, Bytes)>,
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
            Op::Set { key, value } => {
                self.insert(key, value);
                OpResult::Stored
            }
            Op::Del { key } => OpResult::Deleted(self.remove(key)),
            Op::Cas { key, expected, new } => {
                if self.get(key) == Some(expected.as_slice()) {
                    self.insert(key, new);
                    OpResult::Swapped(true)
                } else {
                    OpResult::Swapped(false)
                }
            }
            _ => match self.read(op) {
                Some(result) => result,
                None => {
                    let (changes, result) = self.decide(op);
                    for change in changes {
                        match change {
                            Change::Put(key, value) => self.insert(key, &value),
                            Change::Remove(key) => {
                                self.remove(key);
                            }
                            Change::Clear => {
                                self.data_bytes = 0;
                                self.entries.clear();
                                self.scan_index.clear();
                            }
                        }
                    }
                    result
                }
            },
        }
    }

    /// The result of a read-only op (see [`Op::is_read_only`]) on the store as it is; `None`
    /// for a write. This is what a replica answers once the op's read barrier is passed.
    pub fn read(&self, op: &Op) -> Option<OpResult> {
        Some(match op {
            Op::Get { key } => OpResult::Value(self.get(key).map(<[u8]>::to_vec)),
            Op::Count { .. } => OpResult::Integer(i64::try_from(self.len()).unwrap_or(i64::MAX)),
            Op::Scan { from, count_max, pattern, .. } => {
                let pattern = pattern.as_ref().map(|p| &p.0[..]);
                let (keys, next) = self.scan(*from, *count_max, pattern);
                OpResult::Page { keys: keys.into_iter().map(Bin).collect(), next }
            }
            Op::MultiGet { keys } => OpResult::Values(
                keys.iter().map(|key| self.get(&key.0).map(|value| Bin(value.to_vec()))).collect(),
            ),
            _ => return None,
        })
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
                let key: Bytes = Arc::from(key);
                self.scan_index.insert((scan_position(&key), key.clone()));
                self.entries.insert(key, value);
            }
        }
    }

    /// Removes `key`; whether it existed.
    fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.remove_with_key(key) {
            Some((key, old)) => {
                self.data_bytes -= (key.len() + old.len()) as u64;
                self.scan_index.remove(&(scan_position(&key), key));
                true
            }
            None => false,
        }
    }

    /// How many bytes applying `op` would add to [`data_bytes`](Store::data_bytes) now
    /// (negative: it would free some). A `CAS` that would not match adds nothing.
    pub fn growth(&self, op: &Op) -> i64 {
        let len = |bytes: &[u8]| bytes.len() as i64;
        let put = |key: &[u8], value: &[u8]| match self.get(key) {
            Some(old) => len(value) - len(old),
            None => len(key) + len(value),
        };
        match op {
            Op::Set { key, value } => put(key, value),
            Op::Del { key } => self.get(key).map_or(0, |old| -(len(key) + len(old))),
            Op::Cas { key, expected, new } => match self.get(key) {
                Some(old) if old == expected.as_slice() => len(new) - len(old),
                _ => 0,
            },
            _ if op.is_read_only() => 0,
            _ => {
                // Decided on the store as it is, as `apply` would (several puts of one key in
                // a `MultiSet`: each counted against the current value, an over-estimate).
                let (changes, _) = self.decide(op);
                changes
                    .iter()
                    .map(|change| match change {
                        Change::Put(key, value) => put(key, value),
                        Change::Remove(key) => {
                            self.get(key).map_or(0, |old| -(len(key) + len(old)))
                        }
                        Change::Clear => -(self.data_bytes as i64),
                    })
                    .sum()
            }
        }
    }

    /// A page of keys in scan order, starting at scan position `from`: the keys of at least
    /// `count_max` (≥ 1) examined keys, more if needed to finish a run of keys with the same
    /// position, those that match `pattern` (a glob, see [`glob_match`]). Also returns the
    /// position the next page starts at, or `None` when no key comes after.
    ///
    /// A key's position is a 48-bit hash of it ([`scan_position`]), fixed for the key's life,
    /// and pages never split a position's keys: so a scan that resumes at the returned
    /// position returns every key that was present for the whole scan at least once, whatever
    /// was added or removed between pages (like Redis' `SCAN`).
    pub fn scan(
        &self,
        from: u64,
        count_max: u64,
        pattern: Option<&[u8]>,
    ) -> (Vec<Vec<u8>>, Option<u64>) {
        let start: (u64, Bytes) = (from, Arc::from(&[][..]));
        let mut keys = Vec::new();
        let mut last_position = None;
        for (examined, (position, key)) in self.scan_index.range(start..).enumerate() {
            if examined as u64 >= count_max.max(1) && last_position != Some(*position) {
                return (keys, Some(*position));
            }
            last_position = Some(*position);
            if pattern.is_none_or(|pattern| glob_match(pattern, key)) {
                keys.push(key.to_vec());
            }
        }
        (keys, None)
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
            store.insert(key, value);
        }
        if !reader.bytes.is_empty() {
            return Err(SnapshotError::TrailingBytes);
        }
        Ok(store)
    }
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"KVSNAP01";

/// The largest scan position, exclusive: positions are 48 bits, so that a `SCAN` cursor can
/// hold a partition number beside one.
pub const SCAN_POSITION_END: u64 = 1 << 48;

/// Where `key` comes in scan order: the high 48 bits of its [`stable_hash`] with the halves
/// swapped first. Swapped because [`partition_of`] uses the hash's high bits, which are thus
/// nearly the same for every key of a partition; the low half varies freely.
pub fn scan_position(key: &[u8]) -> u64 {
    stable_hash(key).rotate_left(32) >> 16
}

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

#[cfg(test)]
mod scan_and_compatibility_tests {
    use super::*;

    fn set(key: &str, value: &str) -> Op {
        Op::Set { key: key.into(), value: value.into() }
    }

    #[test]
    fn the_first_four_ops_encode_as_before_the_new_ones_were_added() {
        // Pinned bytes from logs written before `IncrBy` and the rest existed: a variant is
        // encoded by its name, `{"Set": [key, value]}`, so the old ones must keep theirs.
        let old_set: &[u8] =
            &[0x81, 0xa3, b'S', b'e', b't', 0x92, 0xc4, 0x01, b'k', 0xc4, 0x01, b'v'];
        assert_eq!(set("k", "v").to_bytes(), old_set);
        assert_eq!(Op::from_bytes(old_set), Ok(set("k", "v")));
        let old_cas = Op::Cas { key: b"k".to_vec(), expected: b"a".to_vec(), new: b"b".to_vec() };
        assert_eq!(old_cas.to_bytes()[..5], [0x81, 0xa3, b'C', b'a', b's']);
        let incr = Op::IncrBy { key: b"k".to_vec(), by: 1 };
        assert_eq!(Op::from_bytes(&incr.to_bytes()), Ok(incr));
    }

    #[test]
    fn every_new_op_and_result_round_trips() {
        let ops = [
            Op::IncrByFloat { key: b"f".to_vec(), by_bits: 1.5f64.to_bits() },
            Op::Append { key: b"a".to_vec(), value: b"x".to_vec(), len_max: 9 },
            Op::SetRange { key: b"a".to_vec(), offset: 3, value: b"y".to_vec(), len_max: 9 },
            Op::SetIf {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                condition: SetCondition { if_missing: true, if_exists: false, get_old: true },
            },
            Op::GetDel { key: b"k".to_vec() },
            Op::MultiSet {
                pairs: vec![Pair { key: b"a".to_vec(), value: b"1".to_vec() }],
                only_if_none_exist: true,
            },
            Op::Count { partition: 3 },
            Op::Scan { partition: 1, from: 5, count_max: 10, pattern: Some(Bin(b"*".to_vec())) },
            Op::Flush { partition: 2 },
            Op::MultiGet { keys: vec![Bin(b"a".to_vec()), Bin(b"b".to_vec())] },
            Op::MultiDel { keys: vec![Bin(b"a".to_vec())] },
        ];
        for op in ops {
            assert_eq!(Op::from_bytes(&op.to_bytes()), Ok(op));
        }
        let results = [
            OpResult::Integer(-3),
            OpResult::Written { written: false, old: Some(b"o".to_vec()) },
            OpResult::Page { keys: vec![Bin(b"k".to_vec())], next: Some(4) },
            OpResult::Refused(Refusal::Overflow),
            OpResult::Values(vec![None, Some(Bin(b"v".to_vec()))]),
        ];
        for result in results {
            assert_eq!(OpResult::from_bytes(&result.to_bytes()), Ok(result));
        }
    }

    #[test]
    fn partition_ops_name_their_partition_and_key_ops_hash_their_key() {
        assert_eq!(Op::Count { partition: 2 }.partition(4), PartitionId(2));
        assert_eq!(Op::Flush { partition: 3 }.partition(4), PartitionId(3));
        let key_op = Op::IncrBy { key: b"user:1".to_vec(), by: 1 };
        assert_eq!(key_op.partition(4), partition_of(b"user:1", 4));
        assert!(Op::Scan { partition: 0, from: 0, count_max: 1, pattern: None }.is_read_only());
        assert!(!Op::Flush { partition: 0 }.is_read_only());
    }

    #[test]
    fn a_paged_scan_returns_every_key_present_throughout_despite_concurrent_writes() {
        let mut store = Store::new();
        for i in 0..500 {
            store.apply(&set(&format!("stay{i}"), "v"));
            store.apply(&set(&format!("go{i}"), "v"));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut from = Some(0);
        let mut page = 0;
        while let Some(position) = from {
            let (keys, next) = store.scan(position, 7, None);
            seen.extend(keys);
            from = next;
            // Between pages: remove some keys, add others.
            store.apply(&Op::Del { key: format!("go{page}").into_bytes() });
            store.apply(&set(&format!("new{page}"), "v"));
            page += 1;
        }
        for i in 0..500 {
            assert!(seen.contains(format!("stay{i}").as_bytes()), "stay{i} missed");
        }
        assert!(page > 100, "pages of about 7 keys: {page}");
        let (matching, next) = store.scan(0, u64::MAX, Some(b"stay1?"));
        assert_eq!(matching.len(), 10);
        assert_eq!(next, None);
    }

    #[test]
    fn the_scan_index_follows_every_write_and_a_restore() {
        let mut store = Store::new();
        store.apply(&set("a", "1"));
        store.apply(&Op::GetDel { key: b"a".to_vec() });
        store.apply(&Op::Append { key: b"b".to_vec(), value: b"x".to_vec(), len_max: 9 });
        store.apply(&set("c", "1"));
        store.apply(&Op::Del { key: b"c".to_vec() });
        let (keys, _) = store.scan(0, u64::MAX, None);
        assert_eq!(keys, vec![b"b".to_vec()]);
        let restored = Store::restore(&store.snapshot()).unwrap();
        assert_eq!(restored, store, "the index is rebuilt from the snapshot's entries");
        assert_eq!(restored.scan(0, u64::MAX, None).0, vec![b"b".to_vec()]);
    }

    #[test]
    fn growth_of_new_ops_is_what_applying_adds() {
        let mut store = Store::new();
        let ops = [
            Op::IncrBy { key: b"n".to_vec(), by: 100 },
            Op::IncrBy { key: b"n".to_vec(), by: -99 },
            Op::Append { key: b"n".to_vec(), value: b"xyz".to_vec(), len_max: 99 },
            Op::SetRange { key: b"r".to_vec(), offset: 4, value: b"ab".to_vec(), len_max: 99 },
            Op::GetDel { key: b"n".to_vec() },
            Op::MultiSet {
                pairs: vec![
                    Pair { key: b"m1".to_vec(), value: b"1".to_vec() },
                    Pair { key: b"r".to_vec(), value: b"".to_vec() },
                ],
                only_if_none_exist: false,
            },
            Op::IncrByFloat { key: b"f".to_vec(), by_bits: 0.25f64.to_bits() },
            Op::MultiDel {
                keys: vec![Bin(b"f".to_vec()), Bin(b"f".to_vec()), Bin(b"no".to_vec())],
            },
            Op::Set { key: b"g".to_vec(), value: b"1".to_vec() },
            Op::Flush { partition: 0 },
        ];
        for op in ops {
            let before = store.data_bytes() as i64;
            let growth = store.growth(&op);
            store.apply(&op);
            assert_eq!(store.data_bytes() as i64 - before, growth, "{op:?}");
        }
    }
}
