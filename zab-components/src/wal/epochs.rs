//! The two epoch files, `acceptedEpoch` and `currentEpoch` (zab.md §6).
//!
//! Each holds the epoch in decimal followed by a newline, as ZooKeeper's do, so an operator can
//! read them with `cat`. A missing file means epoch 0 (a fresh node). They are replaced with
//! [`files::write_atomic`]: write `<name>.tmp`, fsync it, rename it over, fsync the directory,
//! so a crash leaves the old value or the new one.

use std::io;
use std::path::{Path, PathBuf};

use super::files;
use crate::protocol::{Epoch, EpochKind};
use crate::storage::StorageError;

/// The file that holds one epoch.
pub(crate) fn path(dir: &Path, kind: EpochKind) -> PathBuf {
    dir.join(match kind {
        EpochKind::Accepted => "acceptedEpoch",
        EpochKind::Current => "currentEpoch",
    })
}

/// Reads one epoch (0 if its file does not exist).
pub(crate) fn read(dir: &Path, kind: EpochKind) -> Result<Epoch, StorageError> {
    let path = path(dir, kind);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Epoch(0)),
        Err(e) => return Err(files::io_error(&path, "read", e)),
    };
    let digits = text.strip_suffix('\n').unwrap_or(&text);
    match digits.parse::<u64>() {
        Ok(epoch) if !digits.starts_with('+') => Ok(Epoch(epoch)),
        _ => Err(files::corrupt(
            &path,
            format_args!(
                "does not hold an epoch (expected decimal digits and a newline, found {:?}); \
                 restore the file from a backup or rebuild this node from its peers",
                text.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// Replaces one epoch atomically (durably if `fsync`).
pub(crate) fn write(
    dir: &Path,
    kind: EpochKind,
    epoch: Epoch,
    fsync: bool,
) -> Result<(), StorageError> {
    files::write_atomic(&path(dir, kind), format!("{}\n", epoch.0).as_bytes(), fsync)
}
