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

#[test]
fn three_members_keep_one_counter() {
    let members = free_ports(3);
    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::default()).collect();
    let zabs: Vec<Zab> = members
        .iter()
        .zip(&seen)
        .map(|(m, s)| {
            Zab::start(
                ZabOptions::new(*m, members.clone()),
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
        ZabOptions::new(outsider, members),
        Box::new(SimDisk::new()),
        Counter(Arc::default()),
    );
    let err = r.err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
