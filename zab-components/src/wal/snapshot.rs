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

use std::fs::File;
use std::io::{self, Read, Write};
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

/// The header of `snapshot`'s file; the state follows it.
fn header(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&snapshot.zxid.epoch.0.to_le_bytes());
    out.extend_from_slice(&snapshot.zxid.counter.to_le_bytes());
    out.extend_from_slice(&(snapshot.state.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..32]), &snapshot.state);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// While a large snapshot is written with fsync on, its data is synced every this many bytes:
/// on a journaling file system, a sync of the log may otherwise have to flush every dirty
/// page of the snapshot first (ext4's ordered mode), and a commit would wait for seconds.
const SYNC_EVERY_BYTES: usize = 8 << 20;

/// Writes `snapshot`'s file (header and state) to `path` and syncs it (when `fsync`).
fn write_file(path: &Path, snapshot: &Snapshot, fsync: bool) -> Result<(), StorageError> {
    let mut f = File::create(path).map_err(|e| files::io_error(path, "create", e))?;
    f.write_all(&header(snapshot)).map_err(|e| files::io_error(path, "write", e))?;
    for chunk in snapshot.state.chunks(SYNC_EVERY_BYTES) {
        f.write_all(chunk).map_err(|e| files::io_error(path, "write", e))?;
        if fsync && snapshot.state.len() > SYNC_EVERY_BYTES {
            f.sync_data().map_err(|e| files::io_error(path, "sync", e))?;
        }
    }
    if fsync {
        f.sync_all().map_err(|e| files::io_error(path, "sync", e))?;
    }
    Ok(())
}

/// Where a snapshot written beside the storage ([`stage`]) waits for its commit: the storage
/// directory (not a generation's), under a temporary name, so a crash leaves nothing a
/// restart would take for a snapshot (temporaries are removed when the storage opens).
pub(crate) fn staged_path(dir: &Path, zxid: Zxid) -> PathBuf {
    dir.join(format!("{STAGED_PREFIX}{}.tmp", files::zxid_suffix(zxid)))
}

/// File name prefix of staged snapshots.
pub(crate) const STAGED_PREFIX: &str = "snapshot-staged.";

/// Writes `snapshot` durably to its [`staged_path`] in the storage directory `dir`.
pub(crate) fn stage(dir: &Path, snapshot: &Snapshot, fsync: bool) -> Result<(), StorageError> {
    write_file(&staged_path(dir, snapshot.zxid), snapshot, fsync)
}

/// The error for a snapshot file that does not check out.
fn corrupt(path: &Path, what: &str) -> StorageError {
    files::corrupt(
        path,
        format_args!(
            "corrupt snapshot: {what}; restore it from a backup or rebuild this node from its \
             peers (move the storage directory away and let the leader send a snapshot)"
        ),
    )
}

/// A snapshot file's header, checked against the file's name (`zxid`) and size.
struct Header {
    /// The state's length in bytes.
    len: u64,
    /// The stored checksum (over the header's first 32 bytes and the state).
    crc: u32,
    /// The checksum of the header's first 32 bytes, where the state's is appended.
    crc_of_header: u32,
}

impl Header {
    fn parse(
        path: &Path,
        header: &[u8],
        zxid: Zxid,
        file_bytes: u64,
    ) -> Result<Header, StorageError> {
        if header.len() < HEADER_BYTES || &header[..8] != MAGIC {
            return Err(corrupt(path, "bad header"));
        }
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let stored_zxid = Zxid::new(u64_at(8), u64_at(16));
        let len = u64_at(24);
        let held = file_bytes - HEADER_BYTES as u64;
        if len != held {
            return Err(corrupt(
                path,
                &format!("header says {len} state bytes, file holds {held}"),
            ));
        }
        if stored_zxid != zxid {
            return Err(corrupt(
                path,
                &format!("it holds zxid {stored_zxid} but is named for {zxid}"),
            ));
        }
        let mut crc = [0; 4];
        crc.copy_from_slice(&header[32..36]);
        Ok(Header {
            len,
            crc: u32::from_le_bytes(crc),
            crc_of_header: crc32c::crc32c(&header[..32]),
        })
    }
}

/// Fails unless the state's checksum as computed matches the stored one.
fn check_crc(path: &Path, stored: u32, computed: u32) -> Result<(), StorageError> {
    if stored != computed {
        return Err(corrupt(
            path,
            &format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    Ok(())
}

/// Reads and checks the snapshot file at `path`, whose name says `zxid`.
pub(crate) fn read(path: &Path, zxid: Zxid) -> Result<Snapshot, StorageError> {
    let bytes = files::read(path)?;
    if bytes.len() < HEADER_BYTES {
        return Err(corrupt(path, "bad header"));
    }
    let header = Header::parse(path, &bytes[..HEADER_BYTES], zxid, bytes.len() as u64)?;
    let computed = crc32c::crc32c_append(header.crc_of_header, &bytes[HEADER_BYTES..]);
    check_crc(path, header.crc, computed)?;
    Ok(Snapshot { zxid, state: bytes[HEADER_BYTES..].to_vec() })
}

/// A snapshot's state read front to back in pieces, for a leader that streams it to a
/// learner, with its checksum checked on the way: the read that would complete the state
/// fails if the whole does not match the stored checksum, so a corrupt snapshot is never
/// handed out whole.
///
/// The open file keeps the snapshot readable to the end even if a newer snapshot replaces
/// (removes) it meanwhile.
#[derive(Debug)]
pub(crate) struct StateStream {
    path: PathBuf,
    file: File,
    zxid: Zxid,
    len: u64,
    stored_crc: u32,
    /// The checksum of the header and of the state up to `next`.
    crc: u32,
    /// Where the next read must start.
    next: u64,
}

impl StateStream {
    /// Opens the snapshot at `zxid` in `dir`, checking its header; `None` if there is none.
    pub(crate) fn open(dir: &Path, zxid: Zxid) -> Result<Option<StateStream>, StorageError> {
        let path = path(dir, zxid);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(files::io_error(&path, "open", e)),
        };
        let size = file.metadata().map_err(|e| files::io_error(&path, "stat", e))?.len();
        let mut header = [0; HEADER_BYTES];
        if size < HEADER_BYTES as u64 {
            return Err(corrupt(&path, "bad header"));
        }
        file.read_exact(&mut header).map_err(|e| files::io_error(&path, "read", e))?;
        let h = Header::parse(&path, &header, zxid, size)?;
        let (len, stored_crc, crc) = (h.len, h.crc, h.crc_of_header);
        Ok(Some(StateStream { path, file, zxid, len, stored_crc, crc, next: 0 }))
    }

    /// The snapshot this stream reads.
    pub(crate) fn zxid(&self) -> Zxid {
        self.zxid
    }

    /// Where the next read starts.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Whether the whole state has been read.
    pub(crate) fn finished(&self) -> bool {
        self.next == self.len
    }

    /// The next up to `bytes_max` bytes of the state (none at the end). Fails if they are the
    /// last and the state does not match its checksum.
    pub(crate) fn read(&mut self, bytes_max: usize) -> Result<Vec<u8>, StorageError> {
        let left = self.len - self.next;
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes_max);
        let mut buf = vec![0; n];
        self.file.read_exact(&mut buf).map_err(|e| files::io_error(&self.path, "read", e))?;
        self.crc = crc32c::crc32c_append(self.crc, &buf);
        self.next += n as u64;
        if self.next == self.len && n > 0 {
            check_crc(&self.path, self.stored_crc, self.crc)?;
        }
        Ok(buf)
    }
}

/// First step of saving: the snapshot written (and synced) under its temporary name.
pub(crate) fn write_temp(
    dir: &Path,
    snapshot: &Snapshot,
    fsync: bool,
) -> Result<PathBuf, StorageError> {
    let tmp = files::temp_path(&path(dir, snapshot.zxid));
    write_file(&tmp, snapshot, fsync)?;
    Ok(tmp)
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
