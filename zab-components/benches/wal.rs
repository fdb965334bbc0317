//! The file log's append throughput against a raw-file baseline measured in the same run.
//!
//! For fsync on and off and batches of 1, 16 and 64 records of 100-byte payloads per sync
//! (group commit), it appends through [`FileStorage`] for a fixed time and prints records/s and
//! syncs/s, then does the same with a plain `std::fs::File`: `write_all` of the same bytes (a
//! batch of encoded records) and `sync_data` per batch. The ratio is WAL / raw.
//!
//! `cargo bench -p zab-components --bench wal`; `ZAB_WAL_BENCH_SECS` sets the time per
//! measurement (default 1), `ZAB_WAL_BENCH_DIR` the directory (default the system temp dir: a
//! tmpfs there makes fsync free, so point it at the disk you care about).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zab_components::protocol::{Entry, Epoch, EpochKind, Zxid};
use zab_components::storage::ZabStorage;
use zab_components::wal::{FileStorage, WalOptions};

const PAYLOAD_BYTES: usize = 100;
/// Header (24 bytes) plus payload: what one record occupies on disk.
const RECORD_BYTES: usize = 24 + PAYLOAD_BYTES;

struct Rate {
    records: u64,
    syncs: u64,
    elapsed: Duration,
}

impl Rate {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
    fn syncs_per_s(&self) -> f64 {
        self.syncs as f64 / self.elapsed.as_secs_f64()
    }
}

fn wal(dir: &Path, fsync: bool, batch: usize, time: Duration) -> Rate {
    let options = WalOptions { fsync, ..WalOptions::default() };
    let mut storage = FileStorage::open(dir, options).expect("open the WAL");
    storage.write_epoch(EpochKind::Accepted, Epoch(1)).expect("write the epoch");
    let payload = vec![0x5A; PAYLOAD_BYTES];
    let mut counter = 0;
    let mut entries = Vec::with_capacity(batch);
    let (mut records, mut syncs) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < time {
        entries.clear();
        for _ in 0..batch {
            counter += 1;
            entries.push(Entry::new(Zxid::new(1, counter), payload.clone()));
        }
        storage.append(&entries).expect("append");
        storage.sync().expect("sync");
        records += batch as u64;
        syncs += 1;
    }
    Rate { records, syncs, elapsed: start.elapsed() }
}

fn raw(path: &Path, fsync: bool, batch: usize, time: Duration) -> Rate {
    let mut file = File::create(path).expect("create the raw file");
    let bytes = vec![0x5A; RECORD_BYTES * batch];
    let (mut records, mut syncs) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < time {
        file.write_all(&bytes).expect("write");
        if fsync {
            file.sync_data().expect("sync_data");
        }
        records += batch as u64;
        syncs += 1;
    }
    Rate { records, syncs, elapsed: start.elapsed() }
}

fn main() {
    let secs: f64 =
        std::env::var("ZAB_WAL_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let time = Duration::from_secs_f64(secs);
    let base: PathBuf = std::env::var_os("ZAB_WAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("zab-wal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("create the bench directory");
    println!("wal bench: {PAYLOAD_BYTES}-byte payloads, {secs} s per run, in {}", base.display());
    println!(
        "{:<6} {:>5} | {:>12} {:>10} | {:>12} {:>10} | {:>6}",
        "fsync", "batch", "wal rec/s", "syncs/s", "raw rec/s", "syncs/s", "ratio"
    );
    for fsync in [true, false] {
        for batch in [1, 16, 64] {
            let dir = base.join(format!("wal-{fsync}-{batch}"));
            let w = wal(&dir, fsync, batch, time);
            let r = raw(&base.join(format!("raw-{fsync}-{batch}")), fsync, batch, time);
            println!(
                "{:<6} {:>5} | {:>12.0} {:>10.0} | {:>12.0} {:>10.0} | {:>6.2}",
                if fsync { "on" } else { "off" },
                batch,
                w.records_per_s(),
                w.syncs_per_s(),
                r.records_per_s(),
                r.syncs_per_s(),
                w.records_per_s() / r.records_per_s()
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_dir_all(&base);
}
