//! The manifest: which generation directory (`gen.<16 hex digits>`) holds the current snapshot
//! and log.
//!
//! `MANIFEST` is a two-line text file, `zab-wal manifest v1` then `generation <n>`, replaced
//! atomically (temporary, fsync, rename, fsync of the directory). Renaming it is the commit
//! point of an install: before, recovery uses the old generation; after, the new one; any other
//! generation directory is left over from an interrupted install and is removed.

use std::io;
use std::path::{Path, PathBuf};

use super::files;
use crate::storage::StorageError;

/// The first line of the manifest.
pub(crate) const HEADER: &str = "zab-wal manifest v1";
const GEN_PREFIX: &str = "gen.";

/// The manifest's path.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join("MANIFEST")
}

/// The directory of generation `generation`.
pub(crate) fn generation_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{GEN_PREFIX}{generation:016x}"))
}

/// The generation a directory name carries, if `name` is one.
pub(crate) fn parse_generation_dir(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(GEN_PREFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn encode(generation: u64) -> String {
    format!("{HEADER}\ngeneration {generation}\n")
}

/// The generation the manifest names, or `None` if there is no manifest.
pub(crate) fn read(dir: &Path) -> Result<Option<u64>, StorageError> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(files::io_error(&path, "read", e)),
    };
    let generation = text
        .strip_prefix(HEADER)
        .and_then(|rest| rest.strip_prefix("\ngeneration "))
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|digits| digits.parse::<u64>().ok().filter(|_| !digits.starts_with('+')));
    match generation {
        Some(generation) if encode(generation) == text => Ok(Some(generation)),
        _ => Err(files::corrupt(
            &path,
            format_args!(
                "is not a manifest (expected `{HEADER}` then `generation <n>`); restore it, \
                 naming the gen.<n> directory that holds the current data"
            ),
        )),
    }
}

/// First half of switching the manifest to `generation`: the temporary, synced.
pub(crate) fn write_temp(
    dir: &Path,
    generation: u64,
    fsync: bool,
) -> Result<PathBuf, StorageError> {
    files::write_temp(&path(dir), encode(generation).as_bytes(), fsync)
}

/// Second half: the rename (the commit point) and the directory sync.
pub(crate) fn commit(dir: &Path, tmp: &Path, fsync: bool) -> Result<(), StorageError> {
    files::commit_temp(tmp, &path(dir), fsync)
}

/// Writes the manifest atomically.
pub(crate) fn write(dir: &Path, generation: u64, fsync: bool) -> Result<(), StorageError> {
    let tmp = write_temp(dir, generation, fsync)?;
    commit(dir, &tmp, fsync)
}
