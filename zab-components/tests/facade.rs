//! The standalone Zab API: three members in one process over loopback, a replicated counter.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use zab_components::component::ZabStatus;
use zab_components::facade::{ProposeError, Zab, ZabCallback, ZabOptions};
use zab_components::protocol::Zxid;
use zab_components::storage::SimDisk;

/// A counter that also records what it saw.
#[derive(Default)]
struct Seen {
    total: u64,
    zxids: Vec<Zxid>,
    statuses: Vec<ZabStatus>,
}

struct Counter(Arc<Mutex<Seen>>);

impl ZabCallback for Counter {
    fn deliver(&mut self, zxid: Zxid, payload: &[u8]) {
        let mut s = self.0.lock();
        s.total += u64::from(payload[0]);
        s.zxids.push(zxid);
    }
    fn status(&mut self, status: ZabStatus) {
        self.0.lock().statuses.push(status);
    }
    fn get_state(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(&self.0.lock().total.to_le_bytes())
    }
    fn set_state(&mut self, input: Option<&mut dyn Read>) -> std::io::Result<()> {
        let mut b = [0u8; 8];
        let total = match input {
            Some(r) => {
                r.read_exact(&mut b)?;
                u64::from_le_bytes(b)
            }
            None => 0,
        };
        self.0.lock().total = total;
        Ok(())
    }
}

fn free_ports(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Proposes until committed, retrying while there is no leader.
fn commit(zab: &Zab, payload: u8) -> Zxid {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match zab.propose(vec![payload]).committed(Duration::from_secs(5)) {
            Ok(z) => return z,
            Err(ProposeError::NotLeader { .. } | ProposeError::TooManyOutstanding) => {
                assert!(Instant::now() < deadline, "no leader for 20 s");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
}

/// The members' shared secret: the tests run their sessions over TLS, as production does.
fn security() -> kompics_net::PeerSecurity {
    kompics_net::PeerSecurity::shared_secret("zab-facade-tests", &[4; 32]).unwrap()
}

#[test]
fn three_members_keep_one_counter() {
    let members = free_ports(3);
    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::default()).collect();
    let zabs: Vec<Zab> = members
        .iter()
        .zip(&seen)
        .map(|(m, s)| {
            Zab::start(
                ZabOptions::new(*m, members.clone(), security()),
                Box::new(SimDisk::new()),
                Counter(s.clone()),
            )
            .expect("start")
        })
        .collect();
    // Every member proposes; followers forward to the leader.
    let mut committed = Vec::new();
    for (i, z) in zabs.iter().enumerate() {
        for k in 1..=5u8 {
            committed.push(commit(z, k + i as u8 * 10));
        }
    }
    assert!(wait_until(Duration::from_secs(10), || seen
        .iter()
        .all(|s| s.lock().zxids.len() == 15)));
    let expected: u64 = (0..3u64).map(|i| (1..=5u64).map(|k| k + i * 10).sum::<u64>()).sum();
    for s in &seen {
        let s = s.lock();
        assert_eq!(s.total, expected);
        for z in &committed {
            assert!(s.zxids.contains(z), "committed {z:?} delivered everywhere");
        }
    }
    let leaders = zabs.iter().filter(|z| matches!(z.status(), ZabStatus::Leading { .. })).count();
    assert_eq!(leaders, 1);
    // A proposal's handle gives the assigned zxid, then the same zxid committed.
    let p = zabs[0].propose(vec![1]);
    let assigned = p.assigned(Duration::from_secs(5)).expect("assigned");
    assert_eq!(p.committed(Duration::from_secs(5)), Ok(assigned));
    // The leader stops; the two others elect a new one and go on counting.
    let leader = zabs.iter().position(|z| matches!(z.status(), ZabStatus::Leading { .. })).unwrap();
    let mut zabs: Vec<Option<Zab>> = zabs.into_iter().map(Some).collect();
    zabs[leader].take().unwrap().shutdown();
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let z = commit(zabs[survivor].as_ref().unwrap(), 100);
    assert!(z > assigned);
    for (i, s) in seen.iter().enumerate() {
        if i != leader {
            assert!(wait_until(Duration::from_secs(10), || s.lock().total == expected + 1 + 100));
        }
    }
    for z in zabs.into_iter().flatten() {
        z.shutdown();
    }
}

#[test]
fn start_refuses_a_node_that_is_not_a_member() {
    let members = free_ports(3);
    let outsider = free_ports(1)[0];
    let r = Zab::start(
        ZabOptions::new(outsider, members, security()),
        Box::new(SimDisk::new()),
        Counter(Arc::default()),
    );
    let err = r.err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// With real files (fsync on, so each member's storage runs on a log thread and snapshots are
/// written by a staging thread beside it), members snapshot every few dozen proposals while
/// proposals go on; each ends with a committed snapshot on disk and no staged leftovers, and
/// a member's storage recovers to its snapshot and the log after it.
#[test]
fn members_on_files_snapshot_beside_the_log_thread() {
    use zab_components::storage::ZabStorage;
    use zab_components::wal::{FileStorage, WalOptions};
    let members = free_ports(3);
    let root = std::env::temp_dir().join(format!("zab-facade-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dirs: Vec<_> = (0..3).map(|i| root.join(format!("m{i}"))).collect();
    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::default()).collect();
    let zabs: Vec<Zab> = (0..3)
        .map(|i| {
            let mut options = ZabOptions::new(members[i], members.clone(), security());
            options.tune = |config| config.protocol.snapshot_entries_trigger = 40;
            let wal = WalOptions { segment_bytes: 1 << 16, ..WalOptions::default() };
            let storage = FileStorage::open(&dirs[i], wal).expect("open");
            Zab::start(options, Box::new(storage), Counter(seen[i].clone())).expect("start")
        })
        .collect();
    let mut expected = 0;
    for k in 0..200u64 {
        let payload = (k % 7 + 1) as u8;
        commit(&zabs[k as usize % 3], payload);
        expected += u64::from(payload);
    }
    assert!(wait_until(Duration::from_secs(10), || seen
        .iter()
        .all(|s| s.lock().total == expected)));
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut names = Vec::new();
        for entry in walk(dir) {
            names.push(entry.file_name().unwrap().to_string_lossy().into_owned());
        }
        names
    };
    // Snapshots are taken between half and all of 40 deliveries: by 200, every member has one.
    assert!(
        wait_until(Duration::from_secs(10), || dirs
            .iter()
            .all(|d| files(d).iter().any(|n| n.starts_with("snapshot.")))),
        "{:?}",
        dirs.iter().map(|d| files(d)).collect::<Vec<_>>()
    );
    for z in zabs {
        z.shutdown();
    }
    for dir in &dirs {
        let names = files(dir);
        assert!(!names.iter().any(|n| n.starts_with("snapshot-staged.")), "{names:?}");
        let mut storage = FileStorage::open(dir, WalOptions::default()).expect("reopen");
        let r = storage.recover().expect("recover");
        let snapshot = r.snapshot.expect("a snapshot");
        let total = u64::from_le_bytes(snapshot.state[..8].try_into().unwrap());
        let after: u64 = r.log.iter().map(|e| u64::from(e.payload[0])).sum();
        assert_eq!(
            total + after,
            expected,
            "snapshot at {:?} + {} entries",
            snapshot.zxid,
            r.log.len()
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
