//! Crash consistency of the file log: torn tails, corruption, missing files, inconsistent
//! epochs and installs interrupted at every step. Each test damages the files the way a crash
//! or a bad disk would and checks what `FileStorage::open` makes of them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zab_components::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};
use zab_components::storage::{StorageError, ZabStorage};
use zab_components::wal::{FileStorage, WalOptions, INSTALL_COMMIT_STEP, INSTALL_STEPS};

/// A unique directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("zab-wal-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const PAYLOAD: usize = 50;
/// Header plus payload.
const RECORD: usize = 24 + PAYLOAD;
/// The segment magic.
const MAGIC: usize = 8;

fn entry(epoch: u64, counter: u64) -> Entry {
    Entry::new(Zxid::new(epoch, counter), vec![(epoch * 100 + counter) as u8; PAYLOAD])
}

fn history(epoch: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to).map(|c| entry(epoch, c)).collect()
}

fn open(dir: &Path) -> FileStorage {
    FileStorage::open(dir, WalOptions::for_tests()).expect("open")
}

/// Opening `dir` fails with a message that contains every one of `parts`.
fn assert_refused(dir: &Path, parts: &[&str]) {
    let message = open_err(dir);
    for part in parts {
        assert!(message.contains(part), "no {part:?} in: {message}");
    }
}

fn open_error(dir: &Path) -> StorageError {
    match FileStorage::open(dir, WalOptions::for_tests()) {
        Ok(mut s) => panic!("open succeeded, found {:?}", s.recover().map(|r| r.log.len())),
        Err(e) => e,
    }
}

fn open_err(dir: &Path) -> String {
    open_error(dir).to_string()
}

/// A storage in `dir` holding `entries` (acceptedEpoch = their last epoch), synced, closed.
/// Returns its segment files.
fn stored(dir: &Path, entries: &[Entry]) -> Vec<PathBuf> {
    let mut s = open(dir);
    let epoch = entries.last().map_or(0, |e| e.zxid.epoch.0);
    s.write_epoch(EpochKind::Accepted, Epoch(epoch)).unwrap();
    s.append(entries).unwrap();
    s.sync().unwrap();
    s.segment_paths()
}

fn flip_bit(path: &Path, offset: usize, bit: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 1 << bit;
    fs::write(path, bytes).unwrap();
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn the_segment_holds_records_in_the_documented_format() {
    let dir = TempDir::new("format");
    let segments = stored(&dir.0, &[Entry::new(Zxid::new(2, 1), b"hello".to_vec())]);
    assert_eq!(segments.len(), 1);
    assert_eq!(name(&segments[0]), "log.0000000000000002-0000000000000001");
    let bytes = fs::read(&segments[0]).unwrap();
    assert_eq!(bytes.len() as u64, WalOptions::for_tests().segment_bytes, "preallocated");
    assert_eq!(&bytes[..8], b"ZABWAL01");
    let mut expected = Vec::new();
    expected.extend_from_slice(&5u32.to_le_bytes());
    expected.extend_from_slice(&[0; 4]);
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(&1u64.to_le_bytes());
    expected.extend_from_slice(b"hello");
    let crc = crc32c::crc32c_append(crc32c::crc32c(&expected[..4]), &expected[8..]);
    expected[4..8].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(&bytes[8..8 + expected.len()], &expected[..]);
    assert!(bytes[8 + expected.len()..].iter().all(|&b| b == 0), "zeros after the records");
}

#[test]
fn segments_roll_when_full_and_sealed_segments_end_at_their_last_record() {
    let dir = TempDir::new("roll");
    let all = history(1, 1, 200);
    let segments = stored(&dir.0, &all);
    let per_segment = (4096 - MAGIC) / RECORD;
    assert_eq!(segments.len(), all.len().div_ceil(per_segment));
    for (i, path) in segments.iter().enumerate() {
        let first = &all[i * per_segment];
        assert_eq!(name(path), format!("log.{:016x}-{:016x}", 1, first.zxid.counter));
        let len = fs::metadata(path).unwrap().len() as usize;
        let expected = if i + 1 < segments.len() { MAGIC + per_segment * RECORD } else { 4096 };
        assert_eq!(len, expected, "{}", path.display());
    }
    assert_eq!(open(&dir.0).recover().unwrap().log, all);
}

#[test]
fn a_torn_tail_at_every_byte_of_the_last_record_leaves_exactly_the_complete_records() {
    let dir = TempDir::new("torn");
    let all = history(1, 1, 10);
    let segment = stored(&dir.0, &all).remove(0);
    let good = fs::read(&segment).unwrap();
    let last_start = MAGIC + 9 * RECORD;
    for cut in last_start..last_start + RECORD {
        // The file ends inside the record (a crash before the write reached the disk).
        fs::write(&segment, &good[..cut]).unwrap();
        let mut s = open(&dir.0);
        assert_eq!(s.recover().unwrap().log, all[..9], "file cut at byte {cut}");
        // The record is partly zeros inside the preallocated file; the node then goes on.
        let mut zeroed = good.clone();
        zeroed[cut..].fill(0);
        drop(s);
        fs::write(&segment, &zeroed).unwrap();
        let mut s = open(&dir.0);
        assert_eq!(s.recover().unwrap().log, all[..9], "record zeroed from byte {cut}");
        let replacement = Entry::new(Zxid::new(1, 10), vec![0xEE; 3]);
        s.append(std::slice::from_ref(&replacement)).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut expected = all[..9].to_vec();
        expected.push(replacement);
        assert_eq!(open(&dir.0).recover().unwrap().log, expected, "appended after a cut at {cut}");
    }
    // A whole last record, with the file ending right after it, is kept.
    fs::write(&segment, &good[..last_start + RECORD]).unwrap();
    assert_eq!(open(&dir.0).recover().unwrap().log, all);
}

#[test]
fn a_flipped_bit_in_a_middle_record_is_an_error_naming_the_file_and_offset() {
    let record4 = MAGIC + 3 * RECORD;
    // Payload, length (low and high bits), checksum and zxid of the 4th record of 10.
    for (offset, bit) in
        [(record4 + 30, 2), (record4, 0), (record4 + 2, 4), (record4 + 5, 7), (record4 + 17, 1)]
    {
        let dir = TempDir::new("flip");
        let segment = stored(&dir.0, &history(1, 1, 10)).remove(0);
        flip_bit(&segment, offset, bit);
        let error = open_error(&dir.0);
        let at = Some(record4 as u64);
        assert!(
            matches!(&error, StorageError::Corrupt { path, offset, .. } if path == &segment && *offset == at),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&name(&segment)), "{message}");
        assert!(message.contains(&format!("byte offset {record4}")), "offset {offset}: {message}");
        assert!(message.contains("corrupt record"), "{message}");
    }
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_is_an_error_even_in_its_last_record() {
    let dir = TempDir::new("flip-sealed");
    let segments = stored(&dir.0, &history(1, 1, 200));
    let per_segment = (4096 - MAGIC) / RECORD;
    let last_record = MAGIC + (per_segment - 1) * RECORD;
    flip_bit(&segments[0], last_record + 40, 3);
    assert_refused(&dir.0, &[&name(&segments[0]), &format!("byte offset {last_record}")]);
}

#[test]
fn a_checksum_failure_in_the_very_last_record_is_a_torn_tail() {
    let dir = TempDir::new("flip-last");
    let all = history(1, 1, 10);
    let segment = stored(&dir.0, &all).remove(0);
    flip_bit(&segment, MAGIC + 9 * RECORD + 30, 0);
    assert_eq!(open(&dir.0).recover().unwrap().log, all[..9]);
}

#[test]
fn data_after_the_end_of_the_records_is_an_error() {
    let dir = TempDir::new("garbage");
    let segment = stored(&dir.0, &history(1, 1, 10)).remove(0);
    flip_bit(&segment, 3000, 0);
    assert_refused(&dir.0, &["byte offset 3000"]);
}

#[test]
fn a_missing_snapshot_is_refused() {
    let dir = TempDir::new("no-snapshot");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 200)).unwrap();
    let before = s.segment_paths().len();
    s.save_snapshot(&Snapshot { zxid: Zxid::new(1, 150), state: b"s".to_vec() }).unwrap();
    s.sync().unwrap();
    let after = s.segment_paths();
    assert!(after.len() < before, "covered segments deleted: {before} -> {}", after.len());
    let gen = s.generation_dir();
    drop(s);
    let r = open(&dir.0).recover().unwrap();
    assert_eq!(r.log, history(1, 151, 200));
    fs::remove_file(gen.join("snapshot.0000000000000001-0000000000000096")).unwrap();
    assert_refused(&dir.0, &["snapshot this log needs is missing", &name(&after[0])]);
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let dir = TempDir::new("no-segment");
    let segments = stored(&dir.0, &history(1, 1, 200));
    fs::remove_file(&segments[1]).unwrap();
    assert_refused(&dir.0, &["a segment file was lost", &name(&segments[2])]);
}

#[test]
fn inverted_epoch_files_are_refused() {
    let dir = TempDir::new("epochs");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.write_epoch(EpochKind::Current, Epoch(2)).unwrap();
    drop(s);
    assert_refused(&dir.0, &["acceptedEpoch 1 is below currentEpoch 2"]);
    fs::write(dir.0.join("acceptedEpoch"), "two\n").unwrap();
    assert_refused(&dir.0, &["acceptedEpoch", "does not hold an epoch"]);
}

#[test]
fn a_log_entry_above_accepted_epoch_is_refused() {
    let dir = TempDir::new("epoch-ahead");
    stored(&dir.0, &history(3, 1, 5));
    fs::write(dir.0.join("acceptedEpoch"), "2\n").unwrap();
    assert_refused(&dir.0, &["above acceptedEpoch 2"]);
}

/// The state before an install: a snapshot and a log across segments.
fn old_state(dir: &Path) -> Recovered {
    let mut s = open(dir);
    s.write_epoch(EpochKind::Accepted, Epoch(5)).unwrap();
    s.append(&history(1, 1, 120)).unwrap();
    s.save_snapshot(&Snapshot { zxid: Zxid::new(1, 60), state: b"old".to_vec() }).unwrap();
    s.sync().unwrap();
    s.recover().unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn an_install_interrupted_after_any_step_leaves_the_old_state_or_the_new_one() {
    for with_snapshot in [true, false] {
        for steps in 0..=INSTALL_STEPS {
            let dir = TempDir::new("install");
            let old = old_state(&dir.0);
            let snapshot = Snapshot { zxid: Zxid::new(5, 20), state: b"new".to_vec() };
            let snapshot = with_snapshot.then_some(snapshot);
            let entries = if with_snapshot { history(5, 21, 150) } else { history(5, 1, 150) };
            let mut s = open(&dir.0);
            s.install_interrupted(snapshot.as_ref(), &entries, steps).unwrap();
            if steps < INSTALL_STEPS {
                assert!(s.append(&history(5, 151, 151)).is_err(), "used after a crash");
            }
            drop(s);
            let r = open(&dir.0).recover().unwrap();
            let new = Recovered { snapshot: snapshot.clone(), log: entries.clone(), ..old.clone() };
            let expected = if steps >= INSTALL_COMMIT_STEP { &new } else { &old };
            assert!(r == *expected, "{steps} steps (snapshot: {with_snapshot}): found {r:?}");
            assert_eq!(
                leftovers(&dir.0),
                [
                    "MANIFEST",
                    "acceptedEpoch",
                    if steps >= INSTALL_COMMIT_STEP {
                        "gen.0000000000000002"
                    } else {
                        "gen.0000000000000001"
                    }
                ],
                "{steps} steps: leftovers removed"
            );
        }
    }
}

#[test]
fn append_refuses_a_gap_or_an_oversized_payload_and_changes_nothing() {
    let dir = TempDir::new("refuse");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 3)).unwrap();
    let e = s.append(&[entry(1, 5)]).unwrap_err();
    assert!(matches!(e, StorageError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("refusing to append (1,5) after (1,3)"), "{e}");
    assert!(s.append(&[entry(1, 4), entry(1, 4)]).is_err(), "a repeated zxid");
    let big = Entry::new(Zxid::new(1, 4), vec![0; 16 << 20 | 1]);
    assert!(s.append(&[big]).is_err());
    s.append(&history(1, 4, 5)).unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(open(&dir.0).recover().unwrap().log, history(1, 1, 5));
}

#[test]
fn records_that_do_not_increase_are_refused() {
    let dir = TempDir::new("order");
    let segment = stored(&dir.0, &history(1, 1, 3)).remove(0);
    // Overwrite the third record with a copy of the second: valid checksum, repeated zxid.
    let mut bytes = fs::read(&segment).unwrap();
    let second = bytes[MAGIC + RECORD..MAGIC + 2 * RECORD].to_vec();
    bytes[MAGIC + 2 * RECORD..MAGIC + 3 * RECORD].copy_from_slice(&second);
    fs::write(&segment, bytes).unwrap();
    assert_refused(&dir.0, &["strictly increase", &format!("byte offset {}", MAGIC + 2 * RECORD)]);
}

#[test]
fn truncate_zero_fills_so_stale_records_never_reappear() {
    let dir = TempDir::new("stale");
    stored(&dir.0, &history(1, 1, 10));
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(2)).unwrap();
    s.truncate(Zxid::new(1, 5)).unwrap();
    // Same size as the record it replaces: without zero-filling, (1,7) would follow it.
    s.append(&[entry(2, 1)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let mut expected = history(1, 1, 5);
    expected.push(entry(2, 1));
    assert_eq!(open(&dir.0).recover().unwrap().log, expected);
}

#[test]
fn truncate_across_segments_deletes_the_later_files() {
    let dir = TempDir::new("truncate");
    let segments = stored(&dir.0, &history(1, 1, 200));
    let mut s = open(&dir.0);
    s.truncate(Zxid::new(1, 70)).unwrap();
    s.sync().unwrap();
    let kept = s.segment_paths();
    assert_eq!(kept, segments[..2].to_vec(), "records 55..110 live in the second segment");
    assert!(!segments[2].exists());
    drop(s);
    assert_eq!(open(&dir.0).recover().unwrap().log, history(1, 1, 70));
}

#[test]
fn a_corrupt_snapshot_is_an_error_naming_it() {
    let dir = TempDir::new("bad-snapshot");
    old_state(&dir.0);
    let path = dir.0.join("gen.0000000000000001/snapshot.0000000000000001-000000000000003c");
    flip_bit(&path, 37, 0);
    assert_refused(&dir.0, &[&name(&path), "checksum"]);
}

#[test]
fn a_manifest_that_names_a_missing_generation_or_is_missing_is_refused() {
    let dir = TempDir::new("manifest");
    old_state(&dir.0);
    fs::write(dir.0.join("MANIFEST"), "zab-wal manifest v1\ngeneration 9\n").unwrap();
    assert_refused(&dir.0, &["names generation 9"]);
    fs::remove_file(dir.0.join("MANIFEST")).unwrap();
    assert_refused(&dir.0, &["MANIFEST", "is missing"]);
}

#[test]
fn bad_options_are_refused() {
    let dir = TempDir::new("options");
    let options = WalOptions { segment_bytes: 10, ..WalOptions::for_tests() };
    let e = FileStorage::open(&dir.0, options).unwrap_err();
    assert!(matches!(e, StorageError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("segment_bytes 10"), "{e}");
}

/// The reader returns durable entries after a zxid through another, across segments, within a
/// byte bound (at least one entry), while the storage goes on writing; entries a snapshot
/// covered are gone.
#[test]
fn the_reader_reads_durable_entries_back_across_segments() {
    let dir = TempDir::new("reader");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 200)).unwrap();
    s.sync().unwrap();
    assert!(s.segment_paths().len() > 3, "several segments: {:?}", s.segment_paths().len());
    let mut reader = s.reader();
    let all = reader.read(Zxid::ZERO, Zxid::new(1, 200), usize::MAX).unwrap();
    assert_eq!(all, history(1, 1, 200));
    let some = reader.read(Zxid::new(1, 40), Zxid::new(1, 150), usize::MAX).unwrap();
    assert_eq!(some, history(1, 41, 150));
    // Entry::encoded_len_max is 32 + 50 = 82 bytes here: 3 fit in 250, and one always comes.
    assert_eq!(reader.read(Zxid::new(1, 9), Zxid::new(1, 200), 250).unwrap(), history(1, 10, 12));
    assert_eq!(reader.read(Zxid::new(1, 9), Zxid::new(1, 200), 1).unwrap(), history(1, 10, 10));
    // Later appends are seen once synced.
    s.append(&history(1, 201, 210)).unwrap();
    s.sync().unwrap();
    let tail = reader.read(Zxid::new(1, 199), Zxid::new(1, 210), usize::MAX).unwrap();
    assert_eq!(tail, history(1, 200, 210));
    // A snapshot removes the segments it covers: their entries are no longer returned.
    let snapshot = Snapshot { zxid: Zxid::new(1, 150), state: b"state".to_vec() };
    s.save_snapshot(&snapshot).unwrap();
    s.sync().unwrap();
    let after = reader.read(Zxid::ZERO, Zxid::new(1, 210), usize::MAX).unwrap();
    assert!(after.first().is_none_or(|e| e.zxid > Zxid::new(1, 1)), "covered entries are gone");
    assert_eq!(after.last().map(|e| e.zxid), Some(Zxid::new(1, 210)));
}

/// Reads the whole state of the snapshot at `zxid` back through `reader`, `chunk` bytes at a
/// time; the error of the first read that fails.
fn read_snapshot_back(
    reader: &mut dyn zab_components::storage::LogReader,
    zxid: Zxid,
    chunk: usize,
) -> Result<Vec<u8>, String> {
    let mut state = Vec::new();
    loop {
        let bytes =
            reader.read_snapshot(zxid, state.len() as u64, chunk).map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Ok(state);
        }
        assert!(bytes.len() <= chunk, "at most the chunk asked for");
        state.extend(bytes);
    }
}

/// The reader streams a snapshot's state back in pieces, front to back: two streams at once,
/// a stream that goes on after a newer snapshot replaced the file, nothing for a snapshot
/// that is no longer stored.
#[test]
fn the_reader_streams_a_snapshot_back_in_chunks() {
    let dir = TempDir::new("snap-reader");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 20)).unwrap();
    let state: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let first = Snapshot { zxid: Zxid::new(1, 10), state: state.clone() };
    s.save_snapshot(&first).unwrap();
    s.sync().unwrap();
    let mut reader = s.reader();
    assert_eq!(read_snapshot_back(reader.as_mut(), first.zxid, 3000).unwrap(), state);
    // Two streams interleaved, each from offset 0.
    let a = reader.read_snapshot(first.zxid, 0, 4000).unwrap();
    let b = reader.read_snapshot(first.zxid, 0, 1000).unwrap();
    let a2 = reader.read_snapshot(first.zxid, 4000, 7000).unwrap();
    let b2 = reader.read_snapshot(first.zxid, 1000, 9000).unwrap();
    assert_eq!([a, a2].concat(), state);
    assert_eq!([b, b2].concat(), state);
    // A stream in progress when a newer snapshot removes the file reads on to the end.
    let head = reader.read_snapshot(first.zxid, 0, 100).unwrap();
    let second = Snapshot { zxid: Zxid::new(1, 20), state: b"newer".to_vec() };
    s.save_snapshot(&second).unwrap();
    s.sync().unwrap();
    let rest = reader.read_snapshot(first.zxid, 100, usize::MAX).unwrap();
    assert_eq!([head, rest].concat(), state);
    // The old snapshot can no longer be started; the new one can.
    assert_eq!(reader.read_snapshot(first.zxid, 0, 100).unwrap(), b"");
    assert_eq!(read_snapshot_back(reader.as_mut(), second.zxid, 2).unwrap(), b"newer");
    // A stream the reader does not have open (here: never started) reads as nothing.
    assert_eq!(reader.read_snapshot(second.zxid, 3, 100).unwrap(), b"");
}

/// A corrupt snapshot is never handed out whole: the read that would complete it fails,
/// naming the file and the checksum.
#[test]
fn the_reader_fails_the_last_chunk_of_a_corrupt_snapshot() {
    let dir = TempDir::new("snap-reader-corrupt");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 20)).unwrap();
    let snapshot = Snapshot { zxid: Zxid::new(1, 10), state: vec![7; 5000] };
    s.save_snapshot(&snapshot).unwrap();
    s.sync().unwrap();
    let path = dir.0.join("gen.0000000000000001/snapshot.0000000000000001-000000000000000a");
    flip_bit(&path, 36 + 2500, 3);
    let mut reader = s.reader();
    let first = reader.read_snapshot(snapshot.zxid, 0, 4000).unwrap();
    assert_eq!(first.len(), 4000, "no way to know before the end");
    let e = reader.read_snapshot(snapshot.zxid, 4000, 4000).unwrap_err();
    assert!(matches!(&e, StorageError::Corrupt { path: p, .. } if p == &path), "{e:?}");
    let e = e.to_string();
    assert!(e.contains(&name(&path)) && e.contains("checksum"), "{e}");
    // A header that disagrees with the file name fails at once.
    let mut bytes = fs::read(&path).unwrap();
    bytes[9] ^= 1;
    fs::write(&path, bytes).unwrap();
    let e = reader.read_snapshot(snapshot.zxid, 0, 10).unwrap_err().to_string();
    assert!(e.contains("named for"), "{e}");
}

/// A snapshot written through the stager (beside the log thread) is not the storage's until
/// `commit_snapshot`: a restart before forgets it (and removes the file); after, it is the
/// snapshot, the log it covers is gone, and stagings voided meanwhile are removed.
#[test]
fn a_staged_snapshot_counts_only_once_committed() {
    let dir = TempDir::new("staged");
    let mut s = open(&dir.0);
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 40)).unwrap();
    s.sync().unwrap();
    let mut stager = s.snapshot_stager().expect("a file storage stages snapshots");
    let early = Snapshot { zxid: Zxid::new(1, 20), state: vec![3; 20_000] };
    stager.stage(&early).unwrap();
    let staged = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snapshot-staged."))
            .collect()
    };
    assert_eq!(staged(&dir.0).len(), 1);
    // A restart before the commit: no snapshot, the whole log, the staged file gone.
    drop(s);
    let mut s = open(&dir.0);
    let r = s.recover().unwrap();
    assert_eq!((r.snapshot, r.log.len()), (None, 40));
    assert!(staged(&dir.0).is_empty(), "{:?}", staged(&dir.0));
    // Staged and committed.
    let mut stager = s.snapshot_stager().unwrap();
    let voided = Snapshot { zxid: Zxid::new(1, 10), state: b"voided".to_vec() };
    stager.stage(&voided).unwrap();
    stager.stage(&early).unwrap();
    s.commit_snapshot(early.zxid).unwrap();
    s.sync().unwrap();
    assert!(staged(&dir.0).is_empty(), "voided stagings are removed: {:?}", staged(&dir.0));
    let r = s.recover().unwrap();
    assert_eq!((r.snapshot.as_ref(), r.log.len()), (Some(&early), 20));
    drop(s);
    let r = open(&dir.0).recover().unwrap();
    assert_eq!((r.snapshot.as_ref(), r.log), (Some(&early), history(1, 21, 40)));
    // Committing what was never staged is an error that changes nothing.
    let mut s = open(&dir.0);
    assert!(s.commit_snapshot(Zxid::new(1, 30)).is_err());
    assert_eq!(s.recover().unwrap().snapshot.as_ref(), Some(&early));
}

/// With fsync on, the files a snapshot makes garbage (the previous snapshot, the segments it
/// covers) are deleted by a thread of their own, off the log thread; they go all the same,
/// and a restart before they went recovers the same state.
#[test]
fn garbage_of_a_snapshot_is_deleted_beside_the_log_thread() {
    let dir = TempDir::new("janitor");
    let options = WalOptions { fsync: true, ..WalOptions::for_tests() };
    let mut s = FileStorage::open(&dir.0, options.clone()).unwrap();
    s.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
    s.append(&history(1, 1, 200)).unwrap();
    s.sync().unwrap();
    let segments = s.segment_paths();
    assert!(segments.len() > 3, "{segments:?}");
    let first = Snapshot { zxid: Zxid::new(1, 100), state: vec![1; 3000] };
    s.save_snapshot(&first).unwrap();
    let second = Snapshot { zxid: Zxid::new(1, 190), state: vec![2; 3000] };
    s.save_snapshot(&second).unwrap();
    s.sync().unwrap();
    let gen = s.generation_dir();
    let gone = |path: &Path| !path.exists();
    let garbage: Vec<PathBuf> = segments
        .iter()
        .filter(|p| !s.segment_paths().contains(p))
        .cloned()
        .chain([gen.join("snapshot.0000000000000001-0000000000000064")])
        .collect();
    assert!(garbage.len() > 2, "{garbage:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !garbage.iter().all(|p| gone(p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        garbage.iter().all(|p| gone(p)),
        "left: {:?}",
        garbage.iter().filter(|p| !gone(p)).collect::<Vec<_>>()
    );
    let r = s.recover().unwrap();
    assert_eq!((r.snapshot.as_ref(), r.log.clone()), (Some(&second), history(1, 191, 200)));
    drop(s);
    let r = FileStorage::open(&dir.0, options).unwrap().recover().unwrap();
    assert_eq!((r.snapshot.as_ref(), r.log), (Some(&second), history(1, 191, 200)));
}
