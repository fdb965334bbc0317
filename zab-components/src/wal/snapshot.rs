//! Snapshot files: `snapshot.<epoch>-<counter>` (16 hex digits each) in a generation directory.
//!
//! ```text
//! offset  size  field
//!      0     8  magic    b"ZABSNAP1"
//!      8     8  epoch    zxid epoch (u64, little endian)
//!     16     8  counter  zxid counter (u64, little endian)
//!     24     8  len      state length in bytes (u64, little endian)
//!     32     4  crc      CRC-32C of bytes 0..32 followed by the state
//!     36   len  state
//! ```
//!
//! A snapshot is written under `<name>.tmp`, fsynced, renamed to its name and the directory
//! fsynced, so a file with a snapshot name is always complete: a bad one is corruption, not a
//! torn write.

use std::path::{Path, PathBuf};

use super::files;
use crate::protocol::{Snapshot, Zxid};
use crate::storage::StorageError;

const MAGIC: &[u8; 8] = b"ZABSNAP1";
const HEADER_BYTES: usize = 36;
/// File name prefix of snapshots.
pub(crate) const PREFIX: &str = "snapshot.";

/// The path of the snapshot at `zxid` in `dir`.
pub(crate) fn path(dir: &Path, zxid: Zxid) -> PathBuf {
    dir.join(format!("{PREFIX}{}", files::zxid_suffix(zxid)))
}

/// The zxid a snapshot file name carries, if `name` is one.
pub(crate) fn parse_name(name: &str) -> Option<Zxid> {
    files::parse_zxid_name(PREFIX, name)
}

fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + snapshot.state.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&snapshot.zxid.epoch.0.to_le_bytes());
    out.extend_from_slice(&snapshot.zxid.counter.to_le_bytes());
    out.extend_from_slice(&(snapshot.state.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..32]), &snapshot.state);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&snapshot.state);
    out
}

/// Reads and checks the snapshot file at `path`, whose name says `zxid`.
pub(crate) fn read(path: &Path, zxid: Zxid) -> Result<Snapshot, StorageError> {
    let bytes = files::read(path)?;
    let corrupt = |what: &str| {
        files::error(
            path,
            format_args!(
                "corrupt snapshot: {what}; restore it from a backup or rebuild this node from \
                 its peers (move the storage directory away and let the leader send a snapshot)"
            ),
        )
    };
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err(corrupt("bad header"));
    }
    let u64_at = |at: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let stored_zxid = Zxid::new(u64_at(8), u64_at(16));
    let len = u64_at(24);
    if len != (bytes.len() - HEADER_BYTES) as u64 {
        return Err(corrupt(&format!(
            "header says {len} state bytes, file holds {}",
            bytes.len() - HEADER_BYTES
        )));
    }
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[32..36]);
    let stored = u32::from_le_bytes(crc);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[..32]), &bytes[HEADER_BYTES..]);
    if stored != computed {
        return Err(corrupt(&format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        )));
    }
    if stored_zxid != zxid {
        return Err(corrupt(&format!("it holds zxid {stored_zxid} but is named for {zxid}")));
    }
    Ok(Snapshot { zxid, state: bytes[HEADER_BYTES..].to_vec() })
}

/// First step of saving: the snapshot written (and synced) under its temporary name.
pub(crate) fn write_temp(
    dir: &Path,
    snapshot: &Snapshot,
    fsync: bool,
) -> Result<PathBuf, StorageError> {
    files::write_temp(&path(dir, snapshot.zxid), &encode(snapshot), fsync)
}

/// Second step: the temporary renamed to the snapshot's name, the directory synced.
pub(crate) fn commit(
    dir: &Path,
    tmp: &Path,
    snapshot: &Snapshot,
    fsync: bool,
) -> Result<(), StorageError> {
    files::commit_temp(tmp, &path(dir, snapshot.zxid), fsync)
}
