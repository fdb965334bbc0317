//! Serde helpers that write byte strings as MessagePack `bin` values, for this crate's frames
//! and messages and for the layers above that put bytes in them (the key-value store's ops).
//!
//! serde's default for `Vec<u8>` and `&[u8]` is a sequence of integers: one MessagePack value
//! per byte, up to twice the size on the wire and a visitor call per byte. Payloads, keys and
//! values are opaque bytes, so they go out as one `bin` value and decode with a single copy.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Entry {
//!     #[serde(with = "kompics_net::bytes::vec")]
//!     key: Vec<u8>,
//!     #[serde(with = "kompics_net::bytes::option")]
//!     value: Option<Vec<u8>>,
//! }
//!
//! let entry = Entry { key: b"k".to_vec(), value: Some(b"v".to_vec()) };
//! let encoded = rmp_serde::to_vec(&entry).unwrap();
//! assert_eq!(encoded, [0x92, 0xc4, 1, b'k', 0xc4, 1, b'v']); // two `bin 8` values
//! assert_eq!(rmp_serde::from_slice::<Entry>(&encoded).unwrap(), entry);
//! ```

use std::fmt;

use serde::de::{Deserializer, Error, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Borrowed bytes that serialize as one `bin` value and deserialize without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BorrowedVisitor;
        impl<'de> Visitor<'de> for BorrowedVisitor {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a borrowed byte string")
            }
            fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(BorrowedVisitor)
    }
}

/// `#[serde(with = "kompics_net::bytes::vec")]` for an owned `Vec<u8>` field.
pub mod vec {
    use super::*;

    /// Writes `v` as one byte string.
    pub fn serialize<S: Serializer>(v: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(v)
    }

    /// Reads a byte string; also accepts a text string (its UTF-8 bytes) and, from
    /// human-readable formats, a sequence of numbers.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(OwnedVisitor)
    }

    struct OwnedVisitor;

    impl<'de> Visitor<'de> for OwnedVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(v)
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.as_bytes().to_vec())
        }

        // Human-readable formats (e.g. JSON) write bytes as a sequence of numbers.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            // Grow only as elements arrive: a size hint is the peer's claim.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// `#[serde(with = "kompics_net::bytes::option")]` for an `Option<Vec<u8>>` field: `None`, or
/// the bytes as one byte string.
pub mod option {
    use super::*;

    /// Writes `None`, or `Some` of one byte string.
    pub fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_some(&Bytes(bytes)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads what [`serialize`] writes (a unit reads as `None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an optional byte string")
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            super::vec::deserialize(deserializer).map(Some)
        }
    }
}
