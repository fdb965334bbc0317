//! [`FileTableStore`]: the cluster table in a versioned, checksummed file of the node's data
//! directory, replaced atomically.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use zab_components::wal::files;

use super::table::ClusterTable;
use super::table_store::{TableStore, TableStoreError};

/// The file format: magic, version, payload length, CRC-32C, then the payload (the table in
/// MessagePack). The checksum covers the version, the length and the payload.
const MAGIC: [u8; 8] = *b"kvtable\n";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 4;
/// A table of a few thousand nodes is far below this; a larger length is corruption.
const PAYLOAD_MAX: usize = 64 << 20;

/// A [`TableStore`] in the file `cluster.table` of a directory (the node's data directory).
///
/// The file is versioned and checksummed (CRC-32C); it is replaced atomically: written to
/// `cluster.table.tmp`, synced, renamed over `cluster.table`, and the directory synced. A file
/// that is truncated, corrupt or of an unknown version is an error naming the file; it is never
/// taken for a missing one.
#[derive(Clone, Debug)]
pub struct FileTableStore {
    dir: PathBuf,
}

impl FileTableStore {
    /// The name of the table file in the directory.
    pub const FILE_NAME: &'static str = "cluster.table";

    /// The store in directory `dir` (created at the first save if missing).
    pub fn new(dir: impl Into<PathBuf>) -> FileTableStore {
        FileTableStore { dir: dir.into() }
    }

    /// The path of the table file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(Self::FILE_NAME)
    }

    /// The temporary [`files::write_atomic`] writes before renaming it over the table file.
    #[cfg(test)]
    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tmp", Self::FILE_NAME))
    }

    fn io_error(path: &Path, doing: &str, e: io::Error) -> TableStoreError {
        TableStoreError::Io { path: path.to_owned(), doing: doing.to_owned(), error: e.to_string() }
    }

    fn corrupt(path: &Path, what: impl fmt::Display) -> TableStoreError {
        TableStoreError::Corrupt { path: path.to_owned(), what: what.to_string() }
    }

    /// The bytes of `table` in the file format.
    fn encode(table: &ClusterTable) -> Result<Vec<u8>, TableStoreError> {
        let payload =
            rmp_serde::to_vec(table).map_err(|e| TableStoreError::Encode(e.to_string()))?;
        Ok(Self::frame(&payload))
    }

    /// `payload` behind the header.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[8..16]), payload);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<ClusterTable, TableStoreError> {
        if bytes.len() < HEADER_LEN {
            if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
                return Err(Self::corrupt(path, "not a cluster table file (bad magic)"));
            }
            return Err(Self::corrupt(
                path,
                format_args!(
                    "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                    bytes.len()
                ),
            ));
        }
        if bytes[..8] != MAGIC {
            return Err(Self::corrupt(path, "not a cluster table file (bad magic)"));
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let version = word(8);
        if version != FORMAT_VERSION {
            return Err(TableStoreError::UnsupportedVersion {
                path: path.to_owned(),
                version,
                supported: FORMAT_VERSION,
            });
        }
        let len = word(12) as usize;
        let stored_crc = word(16);
        let payload = &bytes[HEADER_LEN..];
        if len > PAYLOAD_MAX || payload.len() < len {
            return Err(Self::corrupt(
                path,
                format_args!(
                    "truncated: the header announces {len} bytes of table, the file holds {}",
                    payload.len()
                ),
            ));
        }
        if payload.len() > len {
            return Err(Self::corrupt(
                path,
                format_args!("{} unexpected bytes after the table", payload.len() - len),
            ));
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[8..16]), payload);
        if crc != stored_crc {
            return Err(Self::corrupt(
                path,
                format_args!("checksum mismatch (stored {stored_crc:08x}, computed {crc:08x})"),
            ));
        }
        rmp_serde::from_slice(payload)
            .map_err(|e| Self::corrupt(path, format_args!("undecodable table: {e}")))
    }
}

impl TableStore for FileTableStore {
    fn load(&mut self) -> Result<Option<ClusterTable>, TableStoreError> {
        let path = self.path();
        // A leftover `cluster.table.tmp` is an interrupted save: it never counted.
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io_error(&path, "read the cluster table", e)),
        };
        Self::decode(&path, &bytes).map(Some)
    }

    fn save(&mut self, table: &ClusterTable) -> Result<(), TableStoreError> {
        let bytes = Self::encode(table)?;
        fs::create_dir_all(&self.dir)
            .map_err(|e| Self::io_error(&self.dir, "create the data directory", e))?;
        files::write_atomic(&self.path(), &bytes, true).map_err(TableStoreError::Save)
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }

    /// The table file and the partition directories (`p<N>/`) beside it.
    fn data_locations(&self) -> String {
        let mut locations = vec![self.location()];
        // A listing error only shortens the message; the table is named in any case.
        if let Ok(dirs) = crate::data_dir::partition_dirs(&self.dir) {
            locations.extend(dirs.iter().map(|(_, dir)| format!("{}/", dir.display())));
        }
        locations.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::test_support::{addr, sample};
    use crate::test_dir::TempDir;

    #[test]
    fn a_table_round_trips_through_the_file() {
        let dir = TempDir::new("bootstrap-roundtrip");
        let mut store = FileTableStore::new(dir.path().join("data"));
        assert_eq!(store.load(), Ok(None), "no directory, no table");
        store.save(&sample(7)).unwrap();
        assert_eq!(store.load(), Ok(Some(sample(7))));
        assert_eq!(FileTableStore::new(dir.path().join("data")).load(), Ok(Some(sample(7))));
        assert!(store.location().ends_with("cluster.table"));
    }

    #[test]
    fn a_save_replaces_the_table_atomically() {
        let dir = TempDir::new("bootstrap-atomic");
        let mut store = FileTableStore::new(dir.path());
        store.save(&sample(1)).unwrap();
        store.save(&sample(2)).unwrap();
        assert_eq!(store.load(), Ok(Some(sample(2))));
        assert!(!store.tmp_path().exists(), "the temporary is renamed away");
        // A save interrupted before its rename leaves a temporary, which never counts...
        fs::write(store.tmp_path(), b"half a table").unwrap();
        assert_eq!(store.load(), Ok(Some(sample(2))));
        // ...and the next save goes through it.
        store.save(&sample(3)).unwrap();
        assert_eq!(store.load(), Ok(Some(sample(3))));
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["cluster.table"]);
    }

    fn load_error(dir: &TempDir, bytes: &[u8]) -> String {
        let mut store = FileTableStore::new(dir.path());
        fs::write(store.path(), bytes).unwrap();
        let error = store.load().expect_err("a damaged file is an error").to_string();
        assert!(error.contains(&store.path().display().to_string()), "names the file: {error}");
        error
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_the_file() {
        let dir = TempDir::new("bootstrap-corrupt");
        let good = FileTableStore::encode(&sample(9)).unwrap();
        for cut in [0, 5, HEADER_LEN - 1, HEADER_LEN, good.len() - 1] {
            let error = load_error(&dir, &good[..cut]);
            assert!(error.contains("truncated"), "cut at {cut}: {error}");
        }
        for at in [HEADER_LEN + 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            let error = load_error(&dir, &bad);
            assert!(error.contains("checksum mismatch"), "flip at {at}: {error}");
        }
        let mut bad = good.clone();
        bad[12] ^= 1; // the length
        let error = load_error(&dir, &bad);
        assert!(error.contains("truncated") || error.contains("unexpected bytes"), "{error}");
        let mut longer = good.clone();
        longer.push(0);
        assert!(load_error(&dir, &longer).contains("unexpected bytes"));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(load_error(&dir, &bad).contains("bad magic"));
        assert!(load_error(&dir, b"hello").contains("bad magic"));
        let mut bad = good.clone();
        bad[8] = 2; // the version
        assert!(load_error(&dir, &bad).contains("version 2 is not supported"));
        assert!(matches!(
            FileTableStore::new(dir.path()).load(),
            Err(TableStoreError::UnsupportedVersion { version: 2, supported: 1, .. })
        ));
        // A checksummed payload that is not a valid table (here: a group with a node twice).
        let payload = rmp_serde::to_vec(&(1u64, "kv", (vec![vec![addr(1), addr(1)]],))).unwrap();
        let bytes = FileTableStore::frame(&payload);
        assert!(load_error(&dir, &bytes).contains("undecodable table"));
    }
}
