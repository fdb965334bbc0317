//! The log record: how one [`Entry`] is laid out in a segment file.
//!
//! ```text
//! offset  size  field
//!      0     4  len      payload length in bytes (u32, little endian)
//!      4     4  crc      CRC-32C (Castagnoli) of bytes 0..4 (len) followed by bytes 8..24+len
//!      8     8  epoch    zxid epoch (u64, little endian)
//!     16     8  counter  zxid counter (u64, little endian)
//!     24   len  payload  the entry's payload
//! ```
//!
//! The checksum covers the length, so a flipped length bit fails the check instead of silently
//! moving the next record. An all-zero header marks the end of the records: the zxid `(0,0)` is
//! never a transaction's, so no real record starts with 24 zero bytes.

use std::fmt;

use crate::protocol::{Entry, Zxid};

/// Bytes before the payload.
pub(crate) const HEADER_BYTES: usize = 24;

/// Appends the encoding of `entry` to `out`. The caller has checked that the payload length
/// fits in a `u32`.
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) {
    let start = out.len();
    let len = entry.payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&entry.zxid.epoch.0.to_le_bytes());
    out.extend_from_slice(&entry.zxid.counter.to_le_bytes());
    out.extend_from_slice(&entry.payload);
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The encoded size of `entry`.
pub(crate) fn encoded_len(entry: &Entry) -> u64 {
    (HEADER_BYTES + entry.payload.len()) as u64
}

/// The checksum of an encoded record (its crc field is skipped).
fn checksum(record: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&record[0..4]);
    crc32c::crc32c_append(crc, &record[8..])
}

/// What lies at one offset of a segment.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// A complete record whose checksum matches; the next one starts at `next`.
    Record {
        /// The record's zxid.
        zxid: Zxid,
        /// The record's payload.
        payload: &'a [u8],
        /// Offset just past the record.
        next: usize,
    },
    /// A zero header (or a zero remainder shorter than a header): no record starts here.
    End,
    /// Something that is not a valid record.
    Bad(BadRecord),
}

/// Why the bytes at an offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// The file ends inside the header.
    ShortHeader,
    /// The header's length runs past the end of the file.
    PastEnd {
        /// The stored payload length.
        len: u32,
    },
    /// The stored checksum does not match the record.
    Checksum {
        /// The stored checksum.
        stored: u32,
        /// The checksum of the bytes found.
        computed: u32,
    },
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRecord::ShortHeader => f.write_str("the file ends inside the record header"),
            BadRecord::PastEnd { len } => {
                write!(f, "the record's length ({len} bytes) runs past the end of the file")
            }
            BadRecord::Checksum { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
        }
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Parses the record at `at` in `buf` (a whole segment file).
pub(crate) fn parse(buf: &[u8], at: usize) -> Parsed<'_> {
    let rest = &buf[at.min(buf.len())..];
    if rest.len() < HEADER_BYTES {
        return if rest.iter().all(|&b| b == 0) {
            Parsed::End
        } else {
            Parsed::Bad(BadRecord::ShortHeader)
        };
    }
    if rest[..HEADER_BYTES].iter().all(|&b| b == 0) {
        return Parsed::End;
    }
    let len = read_u32(rest, 0);
    let total = HEADER_BYTES as u64 + u64::from(len);
    if total > rest.len() as u64 {
        return Parsed::Bad(BadRecord::PastEnd { len });
    }
    let record = &rest[..total as usize];
    let stored = read_u32(record, 4);
    let computed = checksum(record);
    if stored != computed {
        return Parsed::Bad(BadRecord::Checksum { stored, computed });
    }
    Parsed::Record {
        zxid: Zxid::new(read_u64(record, 8), read_u64(record, 16)),
        payload: &record[HEADER_BYTES..],
        next: at + total as usize,
    }
}

/// Where a bad record at `at` claims to end: past its stated length when that fits in `buf`,
/// else the end of `buf`.
pub(crate) fn claimed_end(buf: &[u8], at: usize) -> usize {
    if buf.len() < at + HEADER_BYTES {
        return buf.len();
    }
    let len = read_u32(buf, at) as usize;
    (at + HEADER_BYTES).saturating_add(len).min(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_any_flipped_bit_is_detected() {
        let entry = Entry::new(Zxid::new(3, 7), b"hello".to_vec());
        let mut buf = Vec::new();
        encode(&entry, &mut buf);
        assert_eq!(buf.len() as u64, encoded_len(&entry));
        match parse(&buf, 0) {
            Parsed::Record { zxid, payload, next } => {
                assert_eq!((zxid, payload, next), (entry.zxid, &b"hello"[..], buf.len()));
            }
            other => panic!("expected a record, got {other:?}"),
        }
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(parse(&bad, 0), Parsed::Bad(_)), "flipping bit {bit} went unnoticed");
        }
    }

    #[test]
    fn zeros_end_the_records_and_a_short_header_is_bad() {
        assert!(matches!(parse(&[0; 30], 0), Parsed::End));
        assert!(matches!(parse(&[0; 5], 0), Parsed::End));
        assert!(matches!(parse(&[1, 0, 0], 0), Parsed::Bad(BadRecord::ShortHeader)));
    }
}
