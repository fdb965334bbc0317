//! The node's log since the last snapshot, in memory as an index of every entry and a bounded
//! cache of payloads, and what of it is durable.
//!
//! Every entry's zxid, size and write stay in memory (about 50 bytes an entry); its payload
//! stays until the entry is delivered and durable, and after that only while the delivered
//! payloads in memory fit [`crate::protocol::Config::log_cache_bytes`] (the newest are kept:
//! they are what a follower that is a little behind needs). An evicted payload is on disk: a
//! synchronization that needs it asks the driver to read it back (`Action::ReadLog`).

use std::collections::VecDeque;

use super::entry::Entry;
use super::ids::Zxid;

/// Sequence number of an entry that is in memory but not yet handed to the driver.
const UNWRITTEN: u64 = u64::MAX;

/// The history after the snapshot (`base`), with the write that carried each entry.
///
/// Every storage write the node emits that carries entries (`Persist`, `InstallSnapshot`) gets
/// a sequence number; completions arrive in order (the storage contract in
/// [`crate::protocol::Action`]), so "write `s` completed" means every entry written by a write
/// `<= s` is durable. Along the log the write numbers never decrease (a truncation removes a
/// suffix, and new entries get newer writes), hence the durable entries are always a prefix.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    base: Zxid,
    /// The write that installed `base` (0: recovered, durable).
    base_write: u64,
    entries: VecDeque<Slot>,
    /// The last write issued.
    write_last: u64,
    /// The last write completed.
    write_completed: u64,
    /// Issued, uncompleted writes: (write number, last zxid it carries).
    pending: VecDeque<(u64, Zxid)>,
    /// Encoded-size bound of the unwritten entries (the batch being formed).
    unwritten_bytes: usize,
    /// Payload bytes of delivered entries still in memory (what the cache bound limits).
    cached_delivered_bytes: usize,
    /// Slots at the front whose payloads were evicted (eviction goes oldest first).
    evicted_prefix: usize,
    /// Slots at the front that were delivered and counted in `cached_delivered_bytes`.
    delivered_prefix: usize,
}

#[derive(Clone, Debug)]
struct Slot {
    /// The entry; its payload is empty once evicted.
    entry: Entry,
    /// The payload's length (also after eviction).
    len: usize,
    write: u64,
}

impl Slot {
    fn new(entry: Entry, write: u64) -> Slot {
        Slot { len: entry.payload.len(), entry, write }
    }

    fn encoded_len_max(&self) -> usize {
        super::message::Message::ENTRY_OVERHEAD_BYTES_MAX + self.len
    }
}

/// What [`Log::run_after`] found after a zxid.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Run {
    /// Entries in memory, in order (as many as fit the bounds).
    Cached(Vec<Entry>),
    /// The next entries' payloads were evicted: read them back from the durable log, after the
    /// zxid asked for and through this one (as many as fit the bounds).
    Evicted {
        /// The last entry of the run to read.
        through: Zxid,
    },
    /// Nothing after the zxid (up to the limit asked for).
    Nothing,
}

impl Log {
    /// A durable log: the snapshot point and the entries after it, checked by the caller.
    pub(crate) fn recovered(base: Zxid, entries: Vec<Entry>) -> Log {
        Log {
            base,
            base_write: 0,
            entries: entries.into_iter().map(|entry| Slot::new(entry, 0)).collect(),
            write_last: 0,
            write_completed: 0,
            pending: VecDeque::new(),
            unwritten_bytes: 0,
            cached_delivered_bytes: 0,
            evicted_prefix: 0,
            delivered_prefix: 0,
        }
    }

    /// The encoded-size bound ([`Entry::encoded_len_max`]) of the entries waiting for
    /// [`Log::write_unwritten`].
    pub(crate) fn unwritten_bytes(&self) -> usize {
        self.unwritten_bytes
    }

    /// The last entry handed to the driver (the base if none): what can be sent to peers.
    pub(crate) fn written_last(&self) -> Zxid {
        let written = self.entries.partition_point(|slot| slot.write != UNWRITTEN);
        if written == 0 {
            self.base
        } else {
            self.entries[written - 1].entry.zxid
        }
    }

    /// The entries after `zxid` up to `through`, as many as fit `bytes_max` encoded bytes
    /// ([`Entry::encoded_len_max`]) and `count_max` entries (at least one if any is there):
    /// either a run whose payloads are in memory, or the extent of a run that must be read
    /// back from disk.
    pub(crate) fn run_after(
        &self,
        zxid: Zxid,
        through: Zxid,
        bytes_max: usize,
        count_max: usize,
    ) -> Run {
        let start = self.index_after(zxid);
        let Some(first) = self.entries.get(start).filter(|slot| slot.entry.zxid <= through) else {
            return Run::Nothing;
        };
        let evicted = start < self.evicted_prefix;
        let mut out = Vec::new();
        let mut last = first.entry.zxid;
        let (mut bytes, mut count) = (0, 0);
        for (i, slot) in self.entries.range(start..).enumerate() {
            let size = slot.encoded_len_max();
            if slot.entry.zxid > through
                || count >= count_max
                || (count > 0 && bytes + size > bytes_max)
                || (start + i < self.evicted_prefix) != evicted
            {
                break;
            }
            bytes += size;
            count += 1;
            last = slot.entry.zxid;
            if !evicted {
                out.push(slot.entry.clone());
            }
        }
        if evicted {
            Run::Evicted { through: last }
        } else {
            Run::Cached(out)
        }
    }

    /// Whether the entries read back from disk are exactly those of the log after `zxid`
    /// (same zxids, same sizes, in order).
    pub(crate) fn matches_after(&self, zxid: Zxid, entries: &[Entry]) -> bool {
        let start = self.index_after(zxid);
        entries.len() <= self.entries.len() - start.min(self.entries.len())
            && entries.iter().zip(self.entries.range(start..)).all(|(entry, slot)| {
                entry.zxid == slot.entry.zxid && entry.payload.len() == slot.len
            })
    }

    /// Notes that every entry up to `delivered` was delivered, then evicts the payloads of
    /// the oldest delivered, durable entries until the delivered payloads in memory fit
    /// `cache_bytes`.
    pub(crate) fn delivered_through(&mut self, delivered: Zxid, cache_bytes: usize) {
        let delivered_end = self.index_after(delivered);
        while self.delivered_prefix < delivered_end {
            let slot = &self.entries[self.delivered_prefix];
            if self.delivered_prefix >= self.evicted_prefix {
                self.cached_delivered_bytes += slot.len;
            }
            self.delivered_prefix += 1;
        }
        while self.cached_delivered_bytes > cache_bytes
            && self.evicted_prefix < self.delivered_prefix
            && self.entries[self.evicted_prefix].write <= self.write_completed
        {
            let slot = &mut self.entries[self.evicted_prefix];
            self.cached_delivered_bytes -= slot.len;
            slot.entry.payload = Vec::new();
            self.evicted_prefix += 1;
        }
    }

    /// Payload bytes of delivered entries held in memory.
    pub(crate) fn cached_delivered_bytes(&self) -> usize {
        self.cached_delivered_bytes
    }

    /// The snapshot's zxid: everything up to it is outside the log.
    pub(crate) fn base(&self) -> Zxid {
        self.base
    }

    /// The last zxid of the history (the base if the log is empty), durable or not.
    pub(crate) fn last(&self) -> Zxid {
        self.entries.back().map_or(self.base, |slot| slot.entry.zxid)
    }

    /// How many entries wait for [`Log::write_unwritten`].
    pub(crate) fn unwritten_len(&self) -> usize {
        self.entries.len() - self.entries.partition_point(|slot| slot.write != UNWRITTEN)
    }

    fn index_after(&self, zxid: Zxid) -> usize {
        self.entries.partition_point(|slot| slot.entry.zxid <= zxid)
    }

    /// Whether the log holds an entry with this zxid.
    pub(crate) fn contains(&self, zxid: Zxid) -> bool {
        let i = self.index_after(zxid);
        i > 0 && self.entries[i - 1].entry.zxid == zxid
    }

    /// The first entry after `zxid`, which must not be evicted (undelivered entries never
    /// are).
    pub(crate) fn first_after(&self, zxid: Zxid) -> Option<&Entry> {
        let i = self.index_after(zxid);
        debug_assert!(i >= self.evicted_prefix, "{zxid}: the next entry's payload was evicted");
        self.entries.get(i).map(|slot| &slot.entry)
    }

    /// How many entries lie after `zxid`.
    pub(crate) fn count_after(&self, zxid: Zxid) -> usize {
        self.entries.len() - self.index_after(zxid)
    }

    /// The largest zxid of the history (base included) strictly below `zxid`.
    pub(crate) fn last_below(&self, zxid: Zxid) -> Zxid {
        let i = self.entries.partition_point(|slot| slot.entry.zxid < zxid);
        if i == 0 {
            self.base
        } else {
            self.entries[i - 1].entry.zxid
        }
    }

    /// Appends an entry in memory only; [`Log::write_unwritten`] hands it to the driver later.
    pub(crate) fn append_unwritten(&mut self, entry: Entry) {
        assert!(entry.zxid.follows(self.last()), "log append {} after {}", entry.zxid, self.last());
        self.unwritten_bytes += entry.encoded_len_max();
        self.entries.push_back(Slot::new(entry, UNWRITTEN));
    }

    /// Gives every unwritten entry a new write number and returns copies for a `Persist`.
    pub(crate) fn write_unwritten(&mut self) -> Option<Vec<Entry>> {
        let first = self.entries.partition_point(|slot| slot.write != UNWRITTEN);
        if first == self.entries.len() {
            return None;
        }
        self.write_last += 1;
        self.unwritten_bytes = 0;
        let write = self.write_last;
        let mut written = Vec::with_capacity(self.entries.len() - first);
        for slot in self.entries.range_mut(first..) {
            slot.write = write;
            written.push(slot.entry.clone());
        }
        self.pending.push_back((write, self.last()));
        Some(written)
    }

    /// Appends entries and writes them at once; returns the copies for a `Persist`.
    pub(crate) fn append_written(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        for entry in entries {
            self.append_unwritten(entry);
        }
        self.write_unwritten().unwrap_or_default()
    }

    /// Drops entries that were never handed to the driver.
    pub(crate) fn discard_unwritten(&mut self) {
        while self.entries.back().is_some_and(|slot| slot.write == UNWRITTEN) {
            self.entries.pop_back();
        }
        self.unwritten_bytes = 0;
    }

    /// Whether some entries are waiting for [`Log::write_unwritten`].
    pub(crate) fn has_unwritten(&self) -> bool {
        self.entries.back().is_some_and(|slot| slot.write == UNWRITTEN)
    }

    /// Removes every entry after `to` (which must not be below the base).
    pub(crate) fn truncate(&mut self, to: Zxid) {
        assert!(to >= self.base, "truncate to {to} below the snapshot {}", self.base);
        let keep = self.index_after(to);
        self.entries.truncate(keep);
        // Only undelivered entries are ever cut (a TRUNC below the commit point is refused),
        // so nothing counted as delivered or evicted goes.
        assert!(self.delivered_prefix <= keep, "truncate to {to} below a delivered entry");
    }

    /// Replaces everything with a snapshot at `base` followed by `entries`, as one write.
    pub(crate) fn install(&mut self, base: Zxid, entries: Vec<Entry>) {
        self.entries.clear();
        self.unwritten_bytes = 0;
        self.cached_delivered_bytes = 0;
        self.evicted_prefix = 0;
        self.delivered_prefix = 0;
        self.base = base;
        self.write_last += 1;
        self.base_write = self.write_last;
        for entry in entries {
            assert!(
                entry.zxid.follows(self.last()),
                "install entry {} after {}",
                entry.zxid,
                self.last()
            );
            self.entries.push_back(Slot::new(entry, self.write_last));
        }
        self.pending.push_back((self.write_last, self.last()));
    }

    /// Forgets entries up to `to`, now covered by a snapshot at `to`.
    pub(crate) fn trim(&mut self, to: Zxid) {
        assert!(to <= self.durable_last(), "trim to {to} beyond the durable log");
        let drop = self.index_after(to);
        // The delivered payloads still in memory among the dropped slots leave the cache.
        let (cached_from, cached_to) = (self.evicted_prefix, drop.min(self.delivered_prefix));
        if cached_from < cached_to {
            let freed: usize =
                self.entries.range(cached_from..cached_to).map(|slot| slot.len).sum();
            self.cached_delivered_bytes -= freed;
        }
        self.entries.drain(..drop);
        self.evicted_prefix = self.evicted_prefix.saturating_sub(drop);
        self.delivered_prefix = self.delivered_prefix.saturating_sub(drop);
        self.base = to;
    }

    /// Records the completion of the write whose last zxid is `zxid`. Returns false (and
    /// changes nothing) when no pending write carries that zxid.
    pub(crate) fn completed(&mut self, zxid: Zxid) -> bool {
        let Some(position) = self.pending.iter().position(|(_, last)| *last == zxid) else {
            return false;
        };
        let (write, _) = self.pending[position];
        self.pending.drain(..=position);
        self.write_completed = self.write_completed.max(write);
        true
    }

    /// The last zxid that is durable (the base if nothing after it is).
    pub(crate) fn durable_last(&self) -> Zxid {
        if self.base_write > self.write_completed {
            return self.base;
        }
        let durable = self.entries.partition_point(|slot| slot.write <= self.write_completed);
        if durable == 0 {
            self.base
        } else {
            self.entries[durable - 1].entry.zxid
        }
    }

    /// The number of the last write issued, to wait for with [`Log::is_durable_through`].
    pub(crate) fn write_mark(&self) -> u64 {
        self.write_last
    }

    /// Whether every write up to `mark` has completed.
    pub(crate) fn is_durable_through(&self, mark: u64) -> bool {
        self.write_completed >= mark
    }

    /// Whether every write issued so far has completed and nothing is unwritten.
    #[cfg(test)]
    pub(crate) fn is_durable(&self) -> bool {
        self.write_completed >= self.write_last && !self.has_unwritten()
    }

    /// Panics unless the newest entries (the part that changes) strictly increase after the
    /// base and their write numbers never decrease. Appends assert the order of each entry;
    /// this re-checks the tail after every input at constant cost.
    pub(crate) fn check(&self) {
        const TAIL: usize = 64;
        let skip = self.entries.len().saturating_sub(TAIL);
        let (mut previous, mut write) = match skip.checked_sub(1).map(|i| &self.entries[i]) {
            Some(slot) => (slot.entry.zxid, slot.write),
            None => (self.base, self.base_write),
        };
        for slot in self.entries.range(skip..) {
            assert!(
                slot.entry.zxid > previous,
                "log not increasing: {} after {previous}",
                slot.entry.zxid
            );
            assert!(slot.write >= write, "log writes out of order at {}", slot.entry.zxid);
            previous = slot.entry.zxid;
            write = slot.write;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: u64, counter: u64) -> Entry {
        Entry::new(Zxid::new(epoch, counter), vec![counter as u8])
    }

    #[test]
    fn durability_follows_completed_writes() {
        let mut log = Log::recovered(Zxid::ZERO, vec![e(1, 1)]);
        assert_eq!(log.durable_last(), Zxid::new(1, 1));
        log.append_written(vec![e(1, 2), e(1, 3)]);
        log.append_written(vec![e(1, 4)]);
        assert_eq!(log.durable_last(), Zxid::new(1, 1));
        assert!(!log.is_durable());
        assert!(log.completed(Zxid::new(1, 3)));
        assert_eq!(log.durable_last(), Zxid::new(1, 3));
        assert!(!log.completed(Zxid::new(1, 3)), "a completion is consumed once");
        assert!(log.completed(Zxid::new(1, 4)));
        assert!(log.is_durable());
    }

    #[test]
    fn stale_completion_after_truncate_does_not_cover_new_entries() {
        let mut log = Log::recovered(Zxid::ZERO, vec![e(1, 1)]);
        log.append_written(vec![e(1, 2)]);
        log.truncate(Zxid::new(1, 1));
        log.append_written(vec![e(2, 1)]);
        assert!(log.completed(Zxid::new(1, 2)));
        assert_eq!(log.durable_last(), Zxid::new(1, 1));
        assert!(log.completed(Zxid::new(2, 1)));
        assert_eq!(log.durable_last(), Zxid::new(2, 1));
    }

    #[test]
    fn install_is_durable_only_when_completed() {
        let mut log = Log::recovered(Zxid::ZERO, vec![e(1, 1), e(1, 2)]);
        log.install(Zxid::new(1, 5), vec![e(2, 1)]);
        assert_eq!(log.durable_last(), Zxid::new(1, 5));
        assert!(!log.is_durable());
        assert!(log.completed(Zxid::new(2, 1)));
        assert_eq!(log.durable_last(), Zxid::new(2, 1));
        assert_eq!(log.last_below(Zxid::new(2, 1)), Zxid::new(1, 5));
    }

    fn sized(counter: u64, len: usize) -> Entry {
        Entry::new(Zxid::new(1, counter), vec![counter as u8; len])
    }

    /// Delivered, durable payloads beyond the cache bound leave memory oldest first; their
    /// zxids stay, undelivered ones are never evicted, and a run over evicted entries says
    /// what to read back.
    #[test]
    fn delivered_payloads_beyond_the_cache_are_evicted_oldest_first() {
        let mut log = Log::recovered(Zxid::ZERO, vec![]);
        log.append_written((1..=10).map(|c| sized(c, 100)).collect());
        assert!(log.completed(Zxid::new(1, 10)));
        log.delivered_through(Zxid::new(1, 6), 250);
        // 6 delivered × 100 bytes, 250 allowed: the oldest 4 go, 5 and 6 stay, 7..10 stay.
        assert_eq!(log.cached_delivered_bytes(), 200);
        assert_eq!(
            log.run_after(Zxid::ZERO, Zxid::new(1, 10), 1 << 20, 100),
            Run::Evicted { through: Zxid::new(1, 4) }
        );
        assert_eq!(
            log.run_after(Zxid::new(1, 2), Zxid::new(1, 10), 2 * 132, 100),
            Run::Evicted { through: Zxid::new(1, 4) },
            "bounded by bytes"
        );
        let Run::Cached(cached) = log.run_after(Zxid::new(1, 4), Zxid::new(1, 8), 1 << 20, 100)
        else {
            panic!("entries 5.. are in memory")
        };
        assert_eq!(cached, (5..=8).map(|c| sized(c, 100)).collect::<Vec<_>>());
        assert_eq!(log.run_after(Zxid::new(1, 10), Zxid::new(1, 10), 1 << 20, 100), Run::Nothing);
        assert!(log.matches_after(Zxid::new(1, 1), &[sized(2, 100), sized(3, 100)]));
        assert!(!log.matches_after(Zxid::new(1, 1), &[sized(3, 100)]), "not the next entry");
        assert!(!log.matches_after(Zxid::new(1, 1), &[sized(2, 99)]), "another size");
        // A snapshot trims evicted and cached slots alike; the counts follow.
        log.trim(Zxid::new(1, 5));
        assert_eq!(log.cached_delivered_bytes(), 100);
        log.delivered_through(Zxid::new(1, 10), 0);
        assert_eq!(log.cached_delivered_bytes(), 0);
        assert_eq!(
            log.run_after(Zxid::new(1, 5), Zxid::new(1, 10), 1 << 20, 100),
            Run::Evicted { through: Zxid::new(1, 10) }
        );
    }

    /// Nothing is evicted before its write completed, whatever the bound.
    #[test]
    fn payloads_stay_until_durable() {
        let mut log = Log::recovered(Zxid::ZERO, vec![]);
        log.append_written(vec![sized(1, 10), sized(2, 10)]);
        log.delivered_through(Zxid::new(1, 2), 0);
        assert!(matches!(log.run_after(Zxid::ZERO, Zxid::new(1, 2), 1 << 20, 10), Run::Cached(_)));
        assert!(log.completed(Zxid::new(1, 2)));
        log.delivered_through(Zxid::new(1, 2), 0);
        assert_eq!(log.cached_delivered_bytes(), 0);
    }

    #[test]
    fn unwritten_entries_are_batched_into_one_write() {
        let mut log = Log::recovered(Zxid::ZERO, vec![]);
        log.append_unwritten(e(1, 1));
        log.append_unwritten(e(1, 2));
        assert!(log.has_unwritten());
        assert_eq!(log.write_unwritten().unwrap().len(), 2);
        assert!(log.write_unwritten().is_none());
        log.append_unwritten(e(1, 3));
        log.discard_unwritten();
        assert_eq!(log.last(), Zxid::new(1, 2));
        log.check();
    }
}
