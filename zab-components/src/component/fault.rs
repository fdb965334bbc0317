//! [`ZabFault`]: why a Zab instance stopped, as its supervisor sees it.

use crate::protocol::InitError;
use crate::storage::StorageError;

/// Why a Zab instance stopped: the error it fails with through [`Context::fail`](kompics_core::Context::fail), so that its
/// supervisor's [`Fault`](kompics_core::Fault) carries it (`fault.error::<ZabFault>()`).
///
/// Each one means the instance cannot go on safely on this storage; a supervisor may restart
/// it (the restart reopens the storage) or escalate.
#[derive(Debug)]
pub enum ZabFault {
    /// The storage failed: recovering, writing, syncing (inline or on the log thread).
    Storage {
        /// The replication group of the instance.
        group: u32,
        /// The storage's error.
        error: StorageError,
    },
    /// The recovered state is inconsistent, so the protocol refused to start on it.
    Refused {
        /// The replication group of the instance.
        group: u32,
        /// Why the protocol refused.
        error: InitError,
    },
    /// The log thread could not be started.
    LogThread {
        /// The replication group of the instance.
        group: u32,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The component was built without a storage.
    NoStorage {
        /// The replication group of the instance.
        group: u32,
    },
}

impl ZabFault {
    /// The storage error, if the storage is what failed.
    pub fn storage_error(&self) -> Option<&StorageError> {
        match self {
            ZabFault::Storage { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl std::fmt::Display for ZabFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The same texts as the panics these replace, so that operators' logs read the same.
        match self {
            ZabFault::Storage { group, error } => write!(f, "zab group {group}: storage {error}"),
            ZabFault::Refused { group, error } => {
                write!(f, "zab group {group}: refusing to start: {error:?}")
            }
            ZabFault::LogThread { group, error } => {
                write!(f, "zab group {group}: cannot start the log thread: {error}")
            }
            ZabFault::NoStorage { group } => write!(f, "zab group {group}: no storage"),
        }
    }
}

impl std::error::Error for ZabFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZabFault::Storage { error, .. } => Some(error),
            ZabFault::Refused { error, .. } => Some(error),
            ZabFault::LogThread { error, .. } => Some(error),
            ZabFault::NoStorage { .. } => None,
        }
    }
}
