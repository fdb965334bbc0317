//! The two epoch files, `acceptedEpoch` and `currentEpoch` (zab.md §6).
//!
//! Each holds the epoch in decimal followed by a newline, as ZooKeeper's do, so an operator can
//! read them with `cat`. A missing file means epoch 0 (a fresh node). They are replaced with
//! [`files::write_atomic`]: write `<name>.tmp`, fsync it, rename it over, fsync the directory,
//! so a crash leaves the old value or the new one.
//!
//! They are fsynced even when [`WalOptions::fsync`](super::WalOptions::fsync) is off. Losing
//! recent log entries on a machine crash only loses recent writes, but an epoch that goes
//! backwards breaks Zab itself: a node could acknowledge a NEWEPOCH, forget it, and then
//! follow (or vote for) an older epoch's leader, so two leaders' histories could both be
//! committed. Epochs change only at elections, so the cost of these syncs is nil.

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

/// Replaces one epoch atomically and durably, whatever the log's fsync setting (see the module
/// documentation).
pub(crate) fn write(dir: &Path, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
    files::write_atomic(&path(dir, kind), format!("{}\n", epoch.0).as_bytes(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ZabStorage;
    use crate::wal::{files::FSYNCS, FileStorage, WalOptions};

    fn fsyncs() -> u64 {
        FSYNCS.with(|count| count.get())
    }

    /// Regression test for issue 13: `--no-fsync` used to skip these syncs too.
    #[test]
    fn epoch_files_are_fsynced_even_without_fsync() {
        let dir = std::env::temp_dir().join(format!("zab-epochs-fsync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let options = WalOptions { fsync: false, ..WalOptions::for_tests() };
        let mut storage = FileStorage::open(&dir, options).unwrap();
        for (kind, epoch) in [(EpochKind::Accepted, Epoch(3)), (EpochKind::Current, Epoch(3))] {
            let before = fsyncs();
            storage.write_epoch(kind, epoch).unwrap();
            // The file before the rename, then its directory after.
            assert_eq!(fsyncs() - before, 2, "{kind:?}");
            assert_eq!(read(&dir, kind).unwrap(), epoch);
        }
        // The log itself does not fsync in this mode: the count is not inflated by other steps.
        let before = fsyncs();
        storage.sync().unwrap();
        assert_eq!(fsyncs(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
