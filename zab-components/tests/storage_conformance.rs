//! The storage conformance suite (`zab_components::storage::conformance`) run against both
//! implementations: the simulated disk and the file log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use zab_components::storage::{conformance, SimDisk};
use zab_components::wal::{FileStorage, WalOptions};

/// Temporary directories for one test, removed when it ends (passing or not).
struct TempDirs {
    dirs: Vec<PathBuf>,
}

impl TempDirs {
    fn new() -> TempDirs {
        TempDirs { dirs: Vec::new() }
    }

    fn fresh(&mut self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "zab-conformance-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        self.dirs.push(dir.clone());
        dir
    }
}

impl Drop for TempDirs {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs one check against the file log with `options`: a crash drops the instance (its
/// buffered, unsynced records are lost) and reopens the directory.
fn file(
    check: impl FnOnce(&mut dyn FnMut() -> FileStorage, &mut dyn FnMut(FileStorage) -> FileStorage),
    options: WalOptions,
) {
    let mut dirs = TempDirs::new();
    let opts = options.clone();
    let mut fresh =
        || FileStorage::open(&dirs.fresh(), opts.clone()).expect("open a fresh directory");
    let mut crash = |s: FileStorage| {
        let dir = s.dir().to_path_buf();
        drop(s);
        FileStorage::open(&dir, options.clone()).expect("reopen after a crash")
    };
    check(&mut fresh, &mut crash);
}

/// Runs one check against the simulated disk, whose crash keeps the first `keep` unsynced
/// writes.
fn sim(
    check: impl FnOnce(&mut dyn FnMut() -> SimDisk, &mut dyn FnMut(SimDisk) -> SimDisk),
    keep: usize,
) {
    let mut fresh = SimDisk::new;
    let mut crash = |d: SimDisk| {
        d.crash(keep);
        d
    };
    check(&mut fresh, &mut crash);
}

macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod sim_disk_loses_unsynced_writes {
            $(#[test] fn $check() { super::sim(|f, c| zab_components::storage::conformance::$check(f, c), 0); })*
        }
        mod sim_disk_keeps_one_unsynced_write {
            $(#[test] fn $check() { super::sim(|f, c| zab_components::storage::conformance::$check(f, c), 1); })*
        }
        mod file_storage_small_segments {
            $(#[test] fn $check() { super::file(|f, c| zab_components::storage::conformance::$check(f, c), zab_components::wal::WalOptions::for_tests()); })*
        }
        mod file_storage_fsync_default_segments {
            $(#[test] fn $check() {
                let options = zab_components::wal::WalOptions { segment_bytes: 1 << 20, ..Default::default() };
                super::file(|f, c| zab_components::storage::conformance::$check(f, c), options);
            })*
        }
    };
}

suite!(
    empty_storage_recovers_nothing,
    appends_recover_in_order,
    synced_writes_survive_a_crash_and_unsynced_ones_leave_a_prefix,
    truncate_removes_every_later_entry,
    epochs_round_trip,
    snapshot_then_recover,
    install_replaces_snapshot_and_log,
    install_is_all_or_nothing_across_a_crash,
);

#[test]
fn run_all_passes_for_both_implementations() {
    conformance::run_all(SimDisk::new, |d: SimDisk| {
        d.crash(2);
        d
    });
    let mut dirs = TempDirs::new();
    let options = WalOptions::for_tests();
    conformance::run_all(
        || FileStorage::open(&dirs.fresh(), options.clone()).expect("open"),
        |s: FileStorage| {
            let dir = s.dir().to_path_buf();
            drop(s);
            FileStorage::open(&dir, options.clone()).expect("reopen")
        },
    );
}
