//! Three member processes on loopback with real files (the durable write-ahead log); members
//! are killed with SIGKILL at random moments and restarted on their data directory. No
//! acknowledged proposal may be lost, and all members must end with the same log.
//!
//! The test binary runs itself as the members: with `ZAB_MEMBER` set, `member_process` runs a
//! member instead of returning.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kompics_core::rand::rngs::SmallRng;
use kompics_core::rand::{Rng, SeedableRng};
use zab_components::component::{ZabConfig, ZabStatus};
use zab_components::facade::{Zab, ZabCallback, ZabOptions};
use zab_components::protocol::Zxid;
use zab_components::wal::{FileStorage, WalOptions};

/// Prints every delivery as `DELIVER <payload>`.
struct Printer;

impl ZabCallback for Printer {
    fn deliver(&mut self, zxid: Zxid, payload: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "DELIVER {} {}:{}",
            String::from_utf8_lossy(payload),
            zxid.epoch.0,
            zxid.counter
        );
        let _ = out.flush();
    }
    fn status(&mut self, _status: ZabStatus) {}
    fn get_state(&mut self, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }
    fn set_state(&mut self, _input: Option<&mut dyn Read>) -> std::io::Result<()> {
        Ok(())
    }
}

fn no_snapshots(config: &mut ZabConfig) {
    // A restarted member then delivers the whole committed log again, which the parent checks.
    config.protocol.snapshot_entries_trigger = u64::MAX;
}

/// The member side: `ZAB_MEMBER=<index>;<listen>;<members,>;<dir>`.
#[test]
fn member_process() {
    let Ok(spec) = std::env::var("ZAB_MEMBER") else { return };
    let parts: Vec<&str> = spec.split(';').collect();
    let (index, listen, dir) =
        (parts[0], parts[1].parse::<SocketAddr>().unwrap(), PathBuf::from(parts[3]));
    let members: Vec<SocketAddr> = parts[2].split(',').map(|m| m.parse().unwrap()).collect();
    let options = WalOptions { segment_bytes: 1 << 20, ..WalOptions::default() };
    let storage = FileStorage::open(&dir, options).expect("open the write-ahead log");
    let security = kompics_net::PeerSecurity::shared_secret("zab-multiprocess", &[5; 32]).unwrap();
    let mut zab_options = ZabOptions::new(listen, members, security);
    zab_options.tune = no_snapshots;
    let zab = Zab::start(zab_options, Box::new(storage), Printer).expect("start");
    // Propose forever; the parent kills us. Payloads are unique: member, incarnation, sequence.
    let incarnation = std::process::id();
    for seq in 0u64.. {
        let payload = format!("{index}-{incarnation}-{seq}");
        if let Ok(zxid) =
            zab.propose(payload.clone().into_bytes()).committed(Duration::from_secs(2))
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ACK {payload} {}:{}", zxid.epoch.0, zxid.counter);
            let _ = out.flush();
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(index: usize, listen: SocketAddr, members: &[SocketAddr], dir: &Path) -> Member {
    let list: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    let spec = format!("{index};{listen};{};{}", list.join(","), dir.display());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "member_process", "--nocapture", "--test-threads=1"])
        .env("ZAB_MEMBER", spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a member");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Member { child, lines }
}

/// Collects what a member printed so far: acknowledged payloads and delivered payloads.
fn drain(m: &Member, acked: &mut Vec<String>, delivered: &mut Vec<String>) {
    while let Ok(line) = m.lines.try_recv() {
        // The test harness may print "test member_process ... " before a member's first line.
        if let Some(i) = line.find("ACK ") {
            acked.push(line[i + 4..].to_string());
        } else if let Some(i) = line.find("DELIVER ") {
            delivered.push(line[i + 8..].to_string());
        }
        if std::env::var("ZAB_TRACE").is_ok() {
            eprintln!("{line}");
        }
    }
}

#[test]
fn members_killed_with_sigkill_lose_no_acknowledged_proposal() {
    if std::env::var("ZAB_MEMBER").is_ok() {
        return;
    }
    let listeners: Vec<_> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let members: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    drop(listeners);
    let root = std::env::temp_dir().join(format!("zab-multiprocess-{}", std::process::id()));
    let dirs: Vec<PathBuf> = (0..3).map(|i| root.join(format!("member{i}"))).collect();
    let seed: u64 = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut procs: Vec<Member> = (0..3).map(|i| spawn(i, members[i], &members, &dirs[i])).collect();
    let mut acked = Vec::new();
    let mut delivered: Vec<Vec<String>> = vec![Vec::new(); 3];
    // Chaos: every 300–900 ms kill one member (SIGKILL) and start it again on its directory.
    let chaos_until = Instant::now() + Duration::from_secs(8);
    let mut kills = 0;
    while Instant::now() < chaos_until {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..900)));
        for (i, m) in procs.iter().enumerate() {
            drain(m, &mut acked, &mut delivered[i]);
        }
        let victim = rng.random_range(0..3);
        procs[victim].child.kill().expect("SIGKILL");
        let _ = procs[victim].child.wait();
        drain(&procs[victim], &mut acked, &mut delivered[victim]);
        // A new incarnation delivers the committed log again from the start.
        delivered[victim].clear();
        procs[victim] = spawn(victim, members[victim], &members, &dirs[victim]);
        kills += 1;
    }
    // Calm: no more kills; wait until all three have delivered the same log, including every
    // acknowledged proposal.
    let deadline = Instant::now() + Duration::from_secs(30);
    let converged = loop {
        std::thread::sleep(Duration::from_millis(200));
        for (i, m) in procs.iter().enumerate() {
            drain(m, &mut acked, &mut delivered[i]);
        }
        let shortest = delivered.iter().map(Vec::len).min().unwrap();
        let same = delivered.iter().all(|d| d[..shortest] == delivered[0][..shortest]);
        assert!(same, "seed {seed}: members delivered different sequences");
        let all_acked = acked.iter().all(|a| delivered.iter().all(|d| d.contains(a)));
        if all_acked && !acked.is_empty() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    for m in &mut procs {
        let _ = m.child.kill();
        let _ = m.child.wait();
    }
    let _ = std::fs::remove_dir_all(&root);
    let missing: Vec<&String> =
        acked.iter().filter(|a| !delivered.iter().all(|d| d.contains(a))).collect();
    for a in &missing {
        let holders: Vec<usize> = (0..3).filter(|i| delivered[*i].contains(a)).collect();
        eprintln!(
            "missing {a}: delivered by members {holders:?}; log lengths {:?}",
            delivered.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
    assert!(
        converged,
        "seed {seed}: after {kills} kills, acknowledged proposals missing: {missing:?}"
    );
    println!(
        "{kills} SIGKILLs, {} acknowledged proposals, all present on every member",
        acked.len()
    );
}
