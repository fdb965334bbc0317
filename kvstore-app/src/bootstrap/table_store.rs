//! [`TableStore`]: where a node keeps its [`ClusterTable`] across restarts, its error, and
//! [`MemTableStore`], the store in memory for tests and the simulator. The store on disk is
//! [`FileTableStore`](super::FileTableStore).

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use super::table::ClusterTable;

/// Why a [`TableStore`] could not load or save the table. The message names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStoreError {
    /// What went wrong, where, and what to do about it.
    pub message: String,
}

impl TableStoreError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> TableStoreError {
        TableStoreError { message: message.into() }
    }
}

impl fmt::Display for TableStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
}

/// The file format: magic, version, payload length, CRC-32C, then the payload (the table in

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
