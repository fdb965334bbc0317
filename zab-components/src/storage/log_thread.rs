//! [`LogThread`]: a storage driven from a thread of its own, so that a slow sync overlaps with
//! the component's handling of the next events, and one sync covers every batch that arrived
//! meanwhile (group commit).

use std::fmt;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use super::{LogOp, StorageError, ZabStorage};

/// A storage driven from its own thread: batches of writes go in, in order; after each round
/// (everything that was waiting when the thread looked) it syncs once and reports the last
/// batch it made durable. Dropping it waits for the batches already handed over.
pub(crate) struct LogThread {
    batches: Option<Sender<(u64, Vec<LogOp>)>>,
    thread: Option<JoinHandle<()>>,
}

impl LogThread {
    /// Starts the thread on `storage`. `done` receives, after each sync, the number of the
    /// last batch it covers, or the error that stopped the thread (nothing is written after
    /// an error: the node must stop).
    pub(crate) fn spawn(
        name: String,
        mut storage: Box<dyn ZabStorage>,
        done: impl Fn(Result<u64, StorageError>) + Send + 'static,
    ) -> std::io::Result<LogThread> {
        let (batches, incoming) = crossbeam_channel::unbounded::<(u64, Vec<LogOp>)>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            while let Ok((first, ops)) = incoming.recv() {
                let round = || {
                    let mut last = first;
                    let mut r = ops.iter().try_for_each(|op| op.apply(&mut *storage));
                    // Group commit: everything that arrived meanwhile rides on the same sync.
                    while r.is_ok() {
                        let Ok((n, ops)) = incoming.try_recv() else { break };
                        last = n;
                        r = ops.iter().try_for_each(|op| op.apply(&mut *storage));
                    }
                    r.and_then(|()| storage.sync().map_err(|e| e.during("sync"))).map(|()| last)
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(round))
                    .unwrap_or_else(|_| {
                        Err(StorageError::Unusable {
                            problem: "the log thread panicked".to_string(),
                        })
                    });
                let failed = r.is_err();
                done(r);
                if failed {
                    return;
                }
            }
        })?;
        Ok(LogThread { batches: Some(batches), thread: Some(thread) })
    }

    /// Hands over batch `n` (numbers increase); a sync follows it.
    pub(crate) fn submit(&self, n: u64, ops: Vec<LogOp>) {
        if let Some(batches) = &self.batches {
            // After a storage error the thread is gone; the error report stops the node.
            let _ = batches.send((n, ops));
        }
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for LogThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogThread").finish_non_exhaustive()
    }
}
