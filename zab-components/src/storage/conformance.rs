//! A conformance suite that every [`ZabStorage`] passes: [`SimDisk`](super::SimDisk) and
//! [`FileStorage`](crate::wal::FileStorage) run it from `tests/storage_conformance.rs`.
//!
//! Compiled always (it is small and uses nothing but the trait) so that any crate can run it
//! against its own implementation. Each check takes `fresh`, which returns a new, empty
//! storage, and `crash`, which crashes a storage and returns what a restarted node opens on
//! the same disk: writes since the last `sync` may be lost, in part (a prefix survives) or
//! wholly. A check panics, with what went wrong, when the storage breaks the contract of the
//! [module docs](super). [`run_all`] runs every check.
//!
//! The checks write only what the protocol can: zxids that form a history (the next counter of
//! an epoch, or counter 1 of a later epoch), acceptedEpoch written before entries of its epoch.

use super::ZabStorage;
use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};

/// Runs every check of the suite.
pub fn run_all<S: ZabStorage>(mut fresh: impl FnMut() -> S, mut crash: impl FnMut(S) -> S) {
    empty_storage_recovers_nothing(&mut fresh, &mut crash);
    appends_recover_in_order(&mut fresh, &mut crash);
    synced_writes_survive_a_crash_and_unsynced_ones_leave_a_prefix(&mut fresh, &mut crash);
    truncate_removes_every_later_entry(&mut fresh, &mut crash);
    epochs_round_trip(&mut fresh, &mut crash);
    snapshot_then_recover(&mut fresh, &mut crash);
    install_replaces_snapshot_and_log(&mut fresh, &mut crash);
    install_is_all_or_nothing_across_a_crash(&mut fresh, &mut crash);
    the_reader_streams_the_durable_snapshot(&mut fresh, &mut crash);
}

/// Entries `(epoch, from..=to)` with payloads of varied lengths (0 to 150 bytes), so that
/// framing errors show.
pub fn history(epoch: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to)
        .map(|counter| {
            let len = ((epoch * 31 + counter * 7) % 151) as usize;
            let payload = (0..len).map(|i| (i as u64 ^ counter ^ epoch) as u8).collect::<Vec<_>>();
            Entry::new(Zxid::new(epoch, counter), payload)
        })
        .collect()
}

fn ok<T>(what: &str, r: Result<T, super::StorageError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e}"),
    }
}

fn recover<S: ZabStorage>(storage: &mut S, when: &str) -> Recovered {
    ok(&format!("recover ({when})"), storage.recover())
}

fn zxids(log: &[Entry]) -> Vec<Zxid> {
    log.iter().map(|e| e.zxid).collect()
}

/// A new storage holds nothing: epochs 0, no snapshot, an empty log.
pub fn empty_storage_recovers_nothing<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    assert_eq!(recover(&mut s, "fresh"), Recovered::default(), "a fresh storage");
    let mut s = crash(s);
    assert_eq!(recover(&mut s, "fresh, reopened"), Recovered::default());
}

/// Appended entries come back exactly, in order, across batches, epochs and a restart.
pub fn appends_recover_in_order<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(2)));
    let mut all = history(1, 1, 120);
    all.extend(history(2, 1, 80));
    let mut at = 0;
    for (i, size) in [1usize, 7, 64, 0, 3, 125].iter().cycle().enumerate() {
        if at >= all.len() {
            break;
        }
        let end = (at + size).min(all.len());
        ok("append", s.append(&all[at..end]));
        at = end;
        if i % 3 == 2 {
            ok("sync", s.sync());
        }
    }
    ok("sync", s.sync());
    let r = recover(&mut s, "after appends");
    assert_eq!(r.log, all, "the log, read back without a restart");
    let mut s = crash(s);
    let r = recover(&mut s, "after a restart");
    assert_eq!(r.log, all, "the log, read back after a restart");
    assert_eq!((r.accepted_epoch, r.current_epoch, r.snapshot), (Epoch(2), Epoch(0), None));
}

/// What was synced survives a crash; of what was written after, at most a prefix does.
pub fn synced_writes_survive_a_crash_and_unsynced_ones_leave_a_prefix<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
    let synced = history(1, 1, 50);
    ok("append", s.append(&synced));
    ok("sync", s.sync());
    let unsynced = history(1, 51, 90);
    for chunk in unsynced.chunks(8) {
        ok("append", s.append(chunk));
    }
    let mut s = crash(s);
    let r = recover(&mut s, "after a crash");
    assert!(r.log.len() >= synced.len(), "synced entries lost: {:?}", zxids(&r.log));
    let written: Vec<Entry> = synced.iter().chain(&unsynced).cloned().collect();
    assert_eq!(r.log, written[..r.log.len()], "not a prefix of what was written");
    // The node goes on from what it found.
    let next = r.log.last().map_or(1, |e| e.zxid.counter + 1);
    let more = history(1, next, next + 4);
    ok("append after recovery", s.append(&more));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r2 = recover(&mut s, "after a second crash");
    let expected: Vec<Entry> = r.log.iter().chain(&more).cloned().collect();
    assert_eq!(r2.log, expected, "appends after a recovery");
}

/// `truncate(to)` removes every entry above `to` (many segments' worth for a file log),
/// durably after a sync, and later appends never bring a removed entry back.
pub fn truncate_removes_every_later_entry<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
    let all = history(1, 1, 300);
    ok("append", s.append(&all));
    ok("sync", s.sync());
    ok("truncate above the end", s.truncate(Zxid::new(1, 400)));
    // Two cuts, so that one falls inside a segment whatever the segment size.
    ok("truncate", s.truncate(Zxid::new(1, 100)));
    assert_eq!(recover(&mut s, "after truncate").log, all[..100], "before a sync");
    ok("truncate", s.truncate(Zxid::new(1, 37)));
    assert_eq!(recover(&mut s, "after truncate").log, all[..37], "before a sync");
    ok("sync", s.sync());
    let mut s = crash(s);
    assert_eq!(recover(&mut s, "after truncate and crash").log, all[..37]);
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(2)));
    let new = history(2, 1, 30);
    ok("append after truncate", s.append(&new));
    ok("sync", s.sync());
    let mut s = crash(s);
    let expected: Vec<Entry> = all[..37].iter().chain(&new).cloned().collect();
    assert_eq!(recover(&mut s, "append after truncate, crash").log, expected);
    ok("truncate to zero", s.truncate(Zxid::ZERO));
    ok("sync", s.sync());
    let mut s = crash(s);
    assert_eq!(recover(&mut s, "truncated to zero").log, Vec::<Entry>::new());
    ok("append to an emptied log", s.append(&history(2, 1, 3)));
    ok("sync", s.sync());
    let mut s = crash(s);
    assert_eq!(recover(&mut s, "refilled").log, history(2, 1, 3));
}

/// Both epochs are stored independently and survive a crash once synced.
pub fn epochs_round_trip<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(3)));
    ok("write_epoch", s.write_epoch(EpochKind::Current, Epoch(2)));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r = recover(&mut s, "epochs");
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(3), Epoch(2)));
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(7)));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r = recover(&mut s, "accepted raised");
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(7), Epoch(2)));
    ok("write_epoch", s.write_epoch(EpochKind::Current, Epoch(7)));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r = recover(&mut s, "current raised");
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(7), Epoch(7)));
}

/// After a snapshot, recovery returns it and exactly the entries after it.
pub fn snapshot_then_recover<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
    let all = history(1, 1, 200);
    ok("append", s.append(&all[..150]));
    let first = Snapshot { zxid: Zxid::new(1, 120), state: b"state at 120".to_vec() };
    ok("save_snapshot", s.save_snapshot(&first));
    ok("append", s.append(&all[150..]));
    ok("sync", s.sync());
    let r = recover(&mut s, "after a snapshot");
    assert_eq!(r.snapshot.as_ref(), Some(&first));
    assert_eq!(r.log, all[120..], "the entries after the snapshot");
    let mut s = crash(s);
    let r = recover(&mut s, "after a snapshot and a crash");
    assert_eq!(r.snapshot.as_ref(), Some(&first));
    assert_eq!(r.log, all[120..]);
    let second = Snapshot { zxid: Zxid::new(1, 190), state: vec![0xAB; 5000] };
    ok("save_snapshot", s.save_snapshot(&second));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r = recover(&mut s, "after a second snapshot");
    assert_eq!(r.snapshot.as_ref(), Some(&second), "the newest snapshot");
    assert_eq!(r.log, all[190..]);
    ok("append after the snapshot", s.append(&history(1, 201, 205)));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r = recover(&mut s, "appends after the second snapshot");
    let expected: Vec<Entry> = all[190..].iter().cloned().chain(history(1, 201, 205)).collect();
    assert_eq!(r.log, expected);
}

/// The reader returns a durable snapshot's state in pieces of at most the size asked for,
/// front to back, and nothing for a snapshot that is not stored.
pub fn the_reader_streams_the_durable_snapshot<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    _crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
    ok("append", s.append(&history(1, 1, 30)));
    let state: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let snapshot = Snapshot { zxid: Zxid::new(1, 30), state: state.clone() };
    ok("save_snapshot", s.save_snapshot(&snapshot));
    ok("sync", s.sync());
    let mut reader = s.reader();
    let mut read = Vec::new();
    loop {
        let piece =
            ok("read_snapshot", reader.read_snapshot(snapshot.zxid, read.len() as u64, 700));
        if piece.is_empty() {
            break;
        }
        assert!(piece.len() <= 700, "a piece of {} bytes, asked for 700", piece.len());
        read.extend(piece);
    }
    assert!(read == state, "the snapshot read back is not the one saved");
    let other = ok("read_snapshot", reader.read_snapshot(Zxid::new(1, 29), 0, 700));
    assert!(other.is_empty(), "a snapshot that is not stored reads as nothing");
}

/// `install` replaces the snapshot and the whole log (with or without a snapshot).
pub fn install_replaces_snapshot_and_log<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(3)));
    ok("append", s.append(&history(1, 1, 100)));
    ok("save_snapshot", s.save_snapshot(&Snapshot { zxid: Zxid::new(1, 50), state: vec![1] }));
    ok("sync", s.sync());
    let snap = Snapshot { zxid: Zxid::new(3, 10), state: b"transferred".to_vec() };
    let entries = history(3, 11, 60);
    ok("install", s.install(Some(&snap), &entries));
    ok("sync", s.sync());
    let r = recover(&mut s, "after install");
    assert_eq!((r.snapshot.as_ref(), &r.log), (Some(&snap), &entries));
    let mut s = crash(s);
    let r = recover(&mut s, "after install and crash");
    assert_eq!((r.snapshot.as_ref(), &r.log), (Some(&snap), &entries));
    ok("append after install", s.append(&history(3, 61, 62)));
    ok("sync", s.sync());
    let mut s = crash(s);
    assert_eq!(recover(&mut s, "append after install").log, history(3, 11, 62));
    ok("install without snapshot", s.install(None, &history(2, 1, 5)));
    ok("sync", s.sync());
    let mut s = crash(s);
    let r = recover(&mut s, "install without snapshot");
    assert_eq!((r.snapshot, r.log), (None, history(2, 1, 5)));
    assert_eq!(r.accepted_epoch, Epoch(3), "install leaves the epochs alone");
}

/// A crash after an unsynced install leaves the old snapshot and log or the new ones, never
/// a mix (ZOOKEEPER-3642).
pub fn install_is_all_or_nothing_across_a_crash<S: ZabStorage>(
    mut fresh: impl FnMut() -> S,
    mut crash: impl FnMut(S) -> S,
) {
    let mut s = fresh();
    ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(4)));
    ok("append", s.append(&history(1, 1, 80)));
    let old_snap = Snapshot { zxid: Zxid::new(1, 40), state: b"old".to_vec() };
    ok("save_snapshot", s.save_snapshot(&old_snap));
    ok("sync", s.sync());
    let old = recover(&mut s, "before install");
    let snap = Snapshot { zxid: Zxid::new(4, 3), state: b"new".to_vec() };
    ok("install", s.install(Some(&snap), &history(4, 4, 30)));
    let mut s = crash(s);
    let r = recover(&mut s, "install, crash before sync");
    let new = Recovered { snapshot: Some(snap), log: history(4, 4, 30), ..old.clone() };
    assert!(r == old || r == new, "a mix of old and new: {r:?}");
}
