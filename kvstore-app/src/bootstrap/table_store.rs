//! [`TableStore`]: where a node keeps its [`ClusterTable`] across restarts, its error, and
//! [`MemTableStore`], the store in memory for tests and the simulator. The store on disk is
//! [`FileTableStore`](super::FileTableStore).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use zab_components::storage::StorageError;

use super::table::ClusterTable;

/// Why a [`TableStore`] could not load or save the table; each variant names the file and says
/// what the operator can do. A node with such an error is refused and must not serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableStoreError {
    /// The file or its directory cannot be read or written: check the disk, free space and
    /// permissions.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. `read the cluster table`.
        doing: String,
        /// The operating system's error.
        error: String,
    },
    /// Replacing the file failed (the error names the step and the file): check the disk, free
    /// space and permissions.
    Save(StorageError),
    /// The file is damaged (truncated, bad checksum, not a table): restore it from a backup, or
    /// move it away to join a new cluster as a new node.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The file was written by a build of another format version: run a matching build.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its format version.
        version: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The table cannot be encoded: a bug.
    Encode(String),
}

impl fmt::Display for TableStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableStoreError::Io { path, doing, error } => write!(
                f,
                "{}: cannot {doing}: {error} (check the disk, free space and permissions)",
                path.display()
            ),
            TableStoreError::Save(error) => error.fmt(f),
            TableStoreError::Corrupt { path, what } => write!(
                f,
                "{}: {what}: the cluster table is damaged; restore it from a backup, or move it \
                 away to join a new cluster as a new node",
                path.display()
            ),
            TableStoreError::UnsupportedVersion { path, version, supported } => write!(
                f,
                "{}: cluster table format version {version} is not supported (this build reads \
                 version {supported}); run a matching build",
                path.display()
            ),
            TableStoreError::Encode(error) => write!(f, "cannot encode the cluster table: {error}"),
        }
    }
}

impl std::error::Error for TableStoreError {}

/// Where a node keeps its [`ClusterTable`] across restarts.
pub trait TableStore: Send {
    /// The stored table, `None` if there is none. A damaged one is an error, never `None`.
    fn load(&mut self) -> Result<Option<ClusterTable>, TableStoreError>;

    /// Stores `table` durably, replacing any earlier one atomically.
    fn save(&mut self, table: &ClusterTable) -> Result<(), TableStoreError>;

    /// Where the table is kept, for messages (a file's path).
    fn location(&self) -> String {
        "the table store".to_owned()
    }

    /// Everything of the node's data that belongs to the table's cluster, for the message that
    /// tells the operator what to move away when the node is refused as another cluster's:
    /// the table and the partitions' logs kept beside it. Default: [`location`](Self::location).
    fn data_locations(&self) -> String {
        self.location()
    }
}

/// A [`TableStore`] in memory, for tests and the simulator. Clones share the table, so a
/// simulated node restarted with a clone of its store finds the table it saved.
#[derive(Clone, Debug, Default)]
pub struct MemTableStore {
    table: Arc<Mutex<Option<ClusterTable>>>,
}

impl MemTableStore {
    /// An empty store.
    pub fn new() -> MemTableStore {
        MemTableStore::default()
    }

    /// The stored table.
    pub fn get(&self) -> Option<ClusterTable> {
        self.table.lock().clone()
    }

    /// Replaces the stored table (e.g. to give a node another cluster's table, or none).
    pub fn set(&self, table: Option<ClusterTable>) {
        *self.table.lock() = table;
    }
}

impl TableStore for MemTableStore {
    fn load(&mut self) -> Result<Option<ClusterTable>, TableStoreError> {
        Ok(self.get())
    }

    fn save(&mut self, table: &ClusterTable) -> Result<(), TableStoreError> {
        self.set(Some(table.clone()));
        Ok(())
    }

    fn location(&self) -> String {
        "the in-memory table store".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::test_support::sample;

    #[test]
    fn the_mem_store_is_shared_by_its_clones() {
        let store = MemTableStore::new();
        let mut clone = store.clone();
        assert_eq!(clone.load(), Ok(None));
        clone.save(&sample(4)).unwrap();
        assert_eq!(store.get(), Some(sample(4)));
        store.set(None);
        assert_eq!(clone.load(), Ok(None));
    }
}
