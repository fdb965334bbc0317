//! File-system helpers: error wrapping, directory fsync and atomic replacement of small files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::storage::StorageError;

/// The error for `path` holding something it should not (or missing something it should).
pub(crate) fn corrupt(path: &Path, what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt { path: path.to_path_buf(), offset: None, problem: what.to_string() }
}

/// [`corrupt`] at byte offset `at` of `path`.
pub(crate) fn corrupt_at(path: &Path, at: usize, what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: Some(at as u64),
        problem: what.to_string(),
    }
}

/// An I/O error while doing `doing` on `path`.
pub(crate) fn io_error(path: &Path, doing: &str, e: io::Error) -> StorageError {
    StorageError::io(path, doing, &e)
}

/// A storage that no longer knows what is on disk, because of `what` about `path`.
pub(crate) fn unusable(path: &Path, what: impl std::fmt::Display) -> StorageError {
    StorageError::Unusable { problem: format!("wal: {}: {what}", path.display()) }
}

/// Makes the entries of directory `dir` (creations, renames, deletions) durable.
pub(crate) fn fsync_dir(dir: &Path, fsync: bool) -> Result<(), StorageError> {
    if !fsync {
        return Ok(());
    }
    let d = File::open(dir).map_err(|e| io_error(dir, "open the directory to sync it", e))?;
    count_fsync();
    d.sync_all().map_err(|e| io_error(dir, "sync the directory", e))
}

#[cfg(test)]
thread_local! {
    /// The fsyncs of small files and directories done on this thread, for tests that check
    /// which steps are durable (a test's storage calls run on its own thread).
    pub(crate) static FSYNCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts an fsync in [`FSYNCS`] (tests only).
fn count_fsync() {
    #[cfg(test)]
    FSYNCS.with(|count| count.set(count.get() + 1));
}

/// The temporary name under which `path` is written before being renamed over it.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Whether a file name is a temporary left by an interrupted [`write_temp`].
pub(crate) fn is_temp(name: &str) -> bool {
    name.ends_with(".tmp")
}

/// First half of an atomic replacement: writes `bytes` to the temporary name of `path` and
/// syncs it. Returns the temporary's path.
pub(crate) fn write_temp(path: &Path, bytes: &[u8], fsync: bool) -> Result<PathBuf, StorageError> {
    let tmp = temp_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, "create", e))?;
    f.write_all(bytes).map_err(|e| io_error(&tmp, "write", e))?;
    if fsync {
        count_fsync();
        f.sync_all().map_err(|e| io_error(&tmp, "sync", e))?;
    }
    Ok(tmp)
}

/// Second half: renames the temporary over `path` and syncs the directory. After this returns,
/// `path` holds the new contents durably; before the rename, it held the old ones.
pub(crate) fn commit_temp(tmp: &Path, path: &Path, fsync: bool) -> Result<(), StorageError> {
    fs::rename(tmp, path).map_err(|e| io_error(path, "rename the temporary file over", e))?;
    fsync_dir(parent(path), fsync)
}

/// Replaces `path` with `bytes` atomically and durably: write a temporary, sync it, rename it
/// over, sync the directory. Public so that other small files (kvstore-app's cluster table)
/// are replaced the same way.
pub fn write_atomic(path: &Path, bytes: &[u8], fsync: bool) -> Result<(), StorageError> {
    let tmp = write_temp(path, bytes, fsync)?;
    commit_temp(&tmp, path, fsync)
}

/// The directory holding `path`.
pub(crate) fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Removes a file; a file already gone is fine.
pub(crate) fn remove_file(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, "remove", e)),
    }
}

/// The names of the entries of `dir`, sorted. Names that are not UTF-8 are reported as errors:
/// nothing of ours has one.
pub(crate) fn list(dir: &Path) -> Result<Vec<String>, StorageError> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| io_error(dir, "list", e))? {
        let item = item.map_err(|e| io_error(dir, "list", e))?;
        match item.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(name) => {
                return Err(corrupt(
                    dir,
                    format_args!("unexpected file {name:?}: move it out of the storage directory"),
                ))
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, StorageError> {
    fs::read(path).map_err(|e| io_error(path, "read", e))
}

/// The zxid part of a file name: `<epoch>-<counter>`, each 16 lowercase hex digits, so that
/// names sort in zxid order.
pub(crate) fn zxid_suffix(zxid: crate::protocol::Zxid) -> String {
    format!("{:016x}-{:016x}", zxid.epoch.0, zxid.counter)
}

/// Parses `<prefix><epoch>-<counter>` as written by [`zxid_suffix`].
pub(crate) fn parse_zxid_name(prefix: &str, name: &str) -> Option<crate::protocol::Zxid> {
    let rest = name.strip_prefix(prefix)?;
    let (epoch, counter) = rest.split_once('-')?;
    if epoch.len() != 16 || counter.len() != 16 {
        return None;
    }
    let epoch = u64::from_str_radix(epoch, 16).ok()?;
    let counter = u64::from_str_radix(counter, 16).ok()?;
    Some(crate::protocol::Zxid::new(epoch, counter))
}
