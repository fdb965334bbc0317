//! A storage with test hooks around it: [`Hooked`] passes every call on to the storage it wraps
//! and calls the matching [`StorageHooks`] method first, so that a test can count syncs, keep a
//! ledger of what is durable, or fail a write, without writing out the whole [`ZabStorage`]
//! trait again.

use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};
use crate::storage::{LogReader, StorageError, ZabStorage};

/// What a test does around each call of a [`Hooked`] storage. Each write hook runs before the
/// write is passed on; an `Err` fails the write, which is then not passed on. Every method has
/// a default that does nothing.
pub trait StorageHooks: Send + 'static {
    /// Before `recover`.
    fn recover(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// After a `recover` that succeeded, with what it found.
    fn recovered(&mut self, _recovered: &Recovered) {}

    /// Before `append`.
    fn append(&mut self, _entries: &[Entry]) -> Result<(), StorageError> {
        Ok(())
    }

    /// Before `truncate`.
    fn truncate(&mut self, _to: Zxid) -> Result<(), StorageError> {
        Ok(())
    }

    /// Before `write_epoch`.
    fn write_epoch(&mut self, _kind: EpochKind, _epoch: Epoch) -> Result<(), StorageError> {
        Ok(())
    }

    /// Before `save_snapshot`.
    fn save_snapshot(&mut self, _snapshot: &Snapshot) -> Result<(), StorageError> {
        Ok(())
    }

    /// Before `install`.
    fn install(
        &mut self,
        _snapshot: Option<&Snapshot>,
        _entries: &[Entry],
    ) -> Result<(), StorageError> {
        Ok(())
    }

    /// Before `sync`.
    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// After a `sync` that succeeded: every earlier write is durable.
    fn synced(&mut self) {}

    /// Whether the storage runs on a log thread: `None` (the default) asks the inner storage.
    fn log_thread(&self) -> Option<bool> {
        None
    }
}

/// A [`ZabStorage`] that calls `hooks` around every call it passes on to `inner`.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// use zab_components::protocol::{Epoch, EpochKind};
/// use zab_components::storage::{SimDisk, StorageError, ZabStorage};
/// use zab_components::testing::{Hooked, StorageHooks};
///
/// /// Counts syncs.
/// struct Syncs(Arc<AtomicU64>);
///
/// impl StorageHooks for Syncs {
///     fn sync(&mut self) -> Result<(), StorageError> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// let syncs = Arc::new(AtomicU64::new(0));
/// let mut storage = Hooked { inner: Box::new(SimDisk::new()), hooks: Syncs(syncs.clone()) };
/// storage.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
/// storage.sync().unwrap();
/// assert_eq!(syncs.load(Ordering::Relaxed), 1);
/// ```
pub struct Hooked<H> {
    /// The storage the calls are passed on to.
    pub inner: Box<dyn ZabStorage>,
    /// What the test does around them.
    pub hooks: H,
}

impl<H: StorageHooks> ZabStorage for Hooked<H> {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        self.hooks.recover()?;
        let recovered = self.inner.recover()?;
        self.hooks.recovered(&recovered);
        Ok(recovered)
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.hooks.append(entries)?;
        self.inner.append(entries)
    }

    fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
        self.hooks.truncate(to)?;
        self.inner.truncate(to)
    }

    fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
        self.hooks.write_epoch(kind, epoch)?;
        self.inner.write_epoch(kind, epoch)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.hooks.save_snapshot(snapshot)?;
        self.inner.save_snapshot(snapshot)
    }

    fn install(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        self.hooks.install(snapshot, entries)?;
        self.inner.install(snapshot, entries)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.hooks.sync()?;
        self.inner.sync()?;
        self.hooks.synced();
        Ok(())
    }

    fn log_thread(&self) -> bool {
        self.hooks.log_thread().unwrap_or_else(|| self.inner.log_thread())
    }

    fn reader(&self) -> Box<dyn LogReader> {
        self.inner.reader()
    }
}
