//! A scratch directory for the crate's unit tests.

use std::path::{Path, PathBuf};

/// A directory under the system's temporary directory, named after the test and the process,
/// empty when made and removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// An empty directory for the test `name` (unique within the crate's tests).
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("kvstore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
