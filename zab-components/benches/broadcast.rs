//! Zab broadcast benchmark: a group in one process on the threaded runtime, TCP on loopback;
//! committed proposals/s and commit latency for 100-byte payloads with 1, 16 and 64 concurrent
//! proposers at the leader. With in-memory storage, against a one-member group measured in the
//! same run (no replication, no network); then with the file log, fsync on and off, against the
//! in-memory figures of the same run. Then the failover time in the simulator: from
//! the leader's crash to the next commit.
//!
//! Each file-log line also gives the syncs per committed proposal, summed over the three nodes
//! (a counting wrapper around each storage): 3.0 means every node syncs once per proposal (no
//! group commit), 0.08 that one sync covers about 37 proposals on each node.
//!
//! `cargo bench -p zab-components --bench broadcast` (`BENCH_SECS` sets the seconds per point).
//!
//! # Figures
//!
//! A shared 2-core VM, load average 7–13 (other builds running), so only same-run ratios mean
//! much. Group commit (the component's flush per burst of events and the log thread; before:
//! one inline sync per event), binaries before and after run back to back, three pairs; 3
//! nodes, file log, fsync on (an fdatasync costs about 170 µs on this disk when quiet):
//!
//! | proposers | before: ops/s, p50, p99, syncs/proposal | after: ops/s, p50, p99, syncs/proposal | after / before |
//! |---|---|---|---|
//! | 1  | 550–1,090; 0.66–0.84 ms; 7–20 ms; 3.0      | 1,100–1,290; 0.63–0.79 ms; 3.9–4.5 ms; 3.0 | 1.2–2.0× |
//! | 16 | 670–900; 11–12.5 ms; 86–150 ms; 3.0        | 13,700–14,400; 0.92–0.95 ms; 4.8–5.5 ms; 0.19 | 16–21× |
//! | 64 | 545–1,020; 41–97 ms; 180–330 ms; 2.95–3.05 | 18,300–36,600; 1.4–2.1 ms; 7–23 ms; 0.08–0.09 | 34–36× |
//!
//! With fsync on, 64 proposers reach 0.3–0.7 of the in-memory group of the same run (0.03–0.09
//! before). The in-memory 3-node group gained too (one PROPOSAL per burst instead of one per
//! proposal): 64 proposers 9.9k–20k/s before, 47k–64k/s after.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig};
use kompics_net::{Network, NodeAddr, TcpConfig, TcpNetwork};
use zab_components::component::*;
use zab_components::failure_detector::*;
use zab_components::storage::{SimDisk, StorageError, ZabStorage};
use zab_components::testing::{Hooked, StorageHooks};
use zab_components::wal::{FileStorage, WalOptions};

/// Keeps `window` proposals in flight once told to start; reports latencies.
struct Proposer {
    ab: RequiredPort<AtomicBroadcast>,
    status: Option<ZabStatus>,
    window: u64,
    running: bool,
    next_tag: u64,
    sent_at: std::collections::HashMap<u64, Time>,
    latencies: Vec<u64>,
    status_out: Sender<ZabStatus>,
}

/// Start (with a window) or stop proposing.
#[derive(Clone, Debug)]
enum Control {
    Start(u64),
    Stop(Sender<Vec<u64>>),
}

impl Proposer {
    fn propose(&mut self, ctx: &mut Context<Self>) {
        self.next_tag += 1;
        self.sent_at.insert(self.next_tag, ctx.now());
        self.ab.trigger(AbRequest::Propose { tag: self.next_tag, payload: vec![7u8; 100] });
    }
}

impl ComponentDefinition for Proposer {}

impl Require<AtomicBroadcast> for Proposer {
    fn handle(&mut self, ctx: &mut Context<Self>, event: AbEvent) {
        match event {
            AbEvent::Status(s) => {
                self.status = Some(s);
                let _ = self.status_out.send(s);
            }
            AbEvent::Committed { tag, .. } => {
                if let Some(at) = self.sent_at.remove(&tag) {
                    self.latencies.push((ctx.now() - at).as_nanos() as u64);
                }
                if self.running {
                    self.propose(ctx);
                }
            }
            AbEvent::Failed { tag, .. } => {
                // No leader yet, or too many in flight: try again a little later.
                self.sent_at.remove(&tag);
                if self.running {
                    ctx.schedule_once(Duration::from_millis(1), |p: &mut Proposer, ctx| {
                        if p.running {
                            p.propose(ctx)
                        }
                    });
                }
            }
            AbEvent::TakeSnapshot { zxid } => {
                self.ab.trigger(AbRequest::SnapshotTaken { zxid, state: Vec::new() })
            }
            AbEvent::Deliver { .. }
            | AbEvent::Assigned { .. }
            | AbEvent::InstallState { .. }
            | AbEvent::ReadReady { .. } => {}
        }
    }
}

impl Receive<Control> for Proposer {
    fn receive(&mut self, ctx: &mut Context<Self>, control: Control) {
        match control {
            Control::Start(window) => {
                self.window = window;
                self.running = true;
                self.latencies.clear();
                for _ in 0..window {
                    self.propose(ctx);
                }
            }
            Control::Stop(out) => {
                self.running = false;
                let _ = out.send(std::mem::take(&mut self.latencies));
            }
        }
    }
}

struct Group {
    runtime: Runtime,
    proposers: Vec<Component<Proposer>>,
    leader: usize,
    /// Syncs of all the group's nodes so far.
    syncs: Arc<AtomicU64>,
}

/// One node's failure detector, Zab instance and proposer, wired to its network and started.
fn node(
    system: &System,
    network: &ProvidedRef<Network>,
    config: ZabConfig,
    disk: &Disk,
    syncs: &Arc<AtomicU64>,
    status_out: &Sender<ZabStatus>,
) -> (Component<FailureDetector>, Component<ZabComponent>, Component<Proposer>) {
    let fd = FailureDetector::create(system, network, config.me, FdConfig::default());
    let open = disk.opener(config.me, syncs.clone());
    let zab = ZabComponent::create(system, network, &fd.provided(), config, move || open());
    let tx = status_out.clone();
    let p = system.create(move |s| {
        let _ = s.mailbox::<Control>();
        Proposer {
            ab: s.required(),
            status: None,
            window: 0,
            running: false,
            next_tag: 0,
            sent_at: Default::default(),
            latencies: Vec::new(),
            status_out: tx.clone(),
        }
    });
    connect(&zab.provided::<AtomicBroadcast>(), &p.required::<AtomicBroadcast>());
    fd.start();
    p.start();
    zab.start();
    (fd, zab, p)
}

/// Storage hooks that count syncs (into a counter shared by the group's nodes).
struct CountSyncs(Arc<AtomicU64>);

impl StorageHooks for CountSyncs {
    fn sync(&mut self) -> Result<(), StorageError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Where the nodes keep their logs.
#[derive(Clone, Copy, Debug)]
enum Disk {
    Memory,
    File { fsync: bool },
}

impl Disk {
    /// Opens a node's storage (a fresh directory per node and run for the file log), counting
    /// its syncs into `syncs`.
    fn opener(
        self,
        me: NodeAddr,
        syncs: Arc<AtomicU64>,
    ) -> impl Fn() -> Box<dyn ZabStorage> + Send + Sync + 'static {
        move || -> Box<dyn ZabStorage> {
            let inner: Box<dyn ZabStorage> = match self {
                Disk::Memory => Box::new(SimDisk::new()),
                Disk::File { fsync } => {
                    let dir = std::env::temp_dir().join(format!(
                        "zab-bench-{}-{}-{}",
                        std::process::id(),
                        me.socket_addr().port(),
                        fsync
                    ));
                    let _ = std::fs::remove_dir_all(&dir);
                    let options = WalOptions { fsync, ..WalOptions::default() };
                    Box::new(FileStorage::open(&dir, options).expect("open the bench log"))
                }
            };
            Box::new(Hooked { inner, hooks: CountSyncs(syncs.clone()) })
        }
    }
}

fn group(n: usize, disk: Disk) -> Group {
    let runtime = Runtime::new(RuntimeConfig::default());
    let nets: Vec<_> = (0..n)
        .map(|_| {
            TcpNetwork::create(
                &runtime.system(),
                TcpConfig::new("127.0.0.1:0".parse().unwrap(), tcp_security()),
            )
            .unwrap()
        })
        .collect();
    let addrs: Vec<NodeAddr> =
        nets.iter().map(|c| c.on_definition(|x| x.addr()).unwrap()).collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let syncs = Arc::new(AtomicU64::new(0));
    let mut proposers = Vec::new();
    for (net, &me) in nets.iter().zip(&addrs) {
        let mut config = ZabConfig::new(0, me, &addrs);
        config.protocol.snapshot_entries_trigger = 1 << 40;
        net.start();
        let (_, _, p) =
            node(&runtime.system(), &net.provided::<Network>(), config, &disk, &syncs, &tx);
        proposers.push(p);
    }
    // Wait for a leader and n-1 followers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = rx.recv_timeout(Duration::from_millis(100));
        let statuses: Vec<_> =
            proposers.iter().map(|p| p.on_definition(|p| p.status).flatten()).collect();
        let leaders: Vec<usize> =
            (0..n).filter(|i| matches!(statuses[*i], Some(ZabStatus::Leading { .. }))).collect();
        let followers =
            statuses.iter().filter(|s| matches!(s, Some(ZabStatus::Following { .. }))).count();
        if leaders.len() == 1 && followers == n - 1 {
            return Group { runtime, proposers, leader: leaders[0], syncs };
        }
        assert!(Instant::now() < deadline, "no leader elected");
    }
}

struct Point {
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Syncs of the whole group per committed proposal.
    syncs_per_commit: f64,
}

fn measure(g: &Group, window: u64, secs: f64) -> Point {
    let p = g.proposers[g.leader].mailbox::<Control>();
    p.tell(Control::Start(window));
    std::thread::sleep(Duration::from_secs_f64(secs * 0.2)); // warm-up, discarded
    let (tx, rx) = crossbeam_channel::bounded(1);
    p.tell(Control::Stop(tx));
    let _ = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    p.tell(Control::Start(window));
    let syncs_before = g.syncs.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (tx, rx) = crossbeam_channel::bounded(1);
    p.tell(Control::Stop(tx));
    let mut lat = rx.recv().unwrap();
    let elapsed = started.elapsed();
    let syncs = g.syncs.load(Ordering::Relaxed) - syncs_before;
    lat.sort_unstable();
    let pct = |q: f64| Duration::from_nanos(lat[((lat.len() - 1) as f64 * q) as usize]);
    let point = Point {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        syncs_per_commit: syncs as f64 / lat.len() as f64,
    };
    std::thread::sleep(Duration::from_millis(200)); // drain
    point
}

/// Failover in the simulator: simulated time from the leader's crash to the next commit.
fn failover(seed: u64, failure_detection: Duration) -> Duration {
    let sim = Simulation::new(seed);
    let net =
        SimNet::new(&sim.system(), SimNetConfig { failure_detection, ..SimNetConfig::default() });
    let addrs: Vec<NodeAddr> = (0..3).map(|i| NodeAddr(([10, 0, 0, i + 1], 1).into())).collect();
    let (tx, _rx) = crossbeam_channel::unbounded();
    let mut parts = Vec::new();
    for &me in &addrs {
        let n = net.add_node(me);
        let config = ZabConfig::new(0, me, &addrs);
        let syncs = Arc::new(AtomicU64::new(0));
        let (fd, zab, p) =
            node(&sim.system(), &n.provided::<Network>(), config, &Disk::Memory, &syncs, &tx);
        parts.push((n, fd, zab, p));
    }
    sim.run_for(Duration::from_secs(3));
    let leader = parts
        .iter()
        .position(|(_, _, _, p)| {
            matches!(p.on_definition(|p| p.status).flatten(), Some(ZabStatus::Leading { .. }))
        })
        .expect("a leader");
    let crashed_at = sim.now();
    net.crash(addrs[leader]);
    let (n, fd, zab, p) = &parts[leader];
    p.kill();
    zab.kill();
    fd.kill();
    n.kill();
    // Every survivor keeps proposing; the first commit after the crash ends the measure.
    for (i, (_, _, _, p)) in parts.iter().enumerate() {
        if i != leader {
            p.mailbox::<Control>().tell(Control::Start(1));
        }
    }
    let committed = sim.run_until_cond(Duration::from_secs(60), || {
        parts.iter().enumerate().any(|(i, (_, _, _, p))| {
            i != leader && p.on_definition(|p| !p.latencies.is_empty()).unwrap_or(false)
        })
    });
    assert!(committed, "no commit within a minute of the crash");
    sim.now() - crashed_at
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    println!("zab broadcast: 100-byte payloads, proposals at the leader, TCP loopback");
    let baseline = group(1, Disk::Memory);
    let three = group(3, Disk::Memory);
    let mut memory = Vec::new();
    for window in [1, 16, 64] {
        let b = measure(&baseline, window, secs);
        let t = measure(&three, window, secs);
        println!(
            "{window:>2} proposers: 1-node baseline {:>9.0}/s p50 {:>9.1?} p99 {:>9.1?} | 3 nodes {:>9.0}/s p50 {:>9.1?} p99 {:>9.1?} | ratio {:.2}",
            b.rate, b.p50, b.p99, t.rate, t.p50, t.p99, t.rate / b.rate
        );
        memory.push(t.rate);
    }
    baseline.runtime.shutdown();
    three.runtime.shutdown();
    for fsync in [true, false] {
        let files = group(3, Disk::File { fsync });
        for (i, window) in [1, 16, 64].into_iter().enumerate() {
            let t = measure(&files, window, secs);
            println!(
                "3 nodes, file log, fsync {}: {window:>2} proposers {:>9.0}/s p50 {:>9.1?} p99 {:>9.1?} | {:.3} syncs/proposal (3 nodes) | ratio to in-memory {:.2}",
                if fsync { "on " } else { "off" },
                t.rate, t.p50, t.p99, t.syncs_per_commit, t.rate / memory[i]
            );
        }
        files.runtime.shutdown();
    }
    let mut reset: Vec<Duration> = (0..20).map(|s| failover(s, Duration::from_millis(5))).collect();
    let mut silent: Vec<Duration> =
        (0..20).map(|s| failover(s, Duration::from_secs(600))).collect();
    reset.sort();
    silent.sort();
    println!(
        "failover (simulated, 20 seeds, leader crash to next commit): connection reset p50 {:?} max {:?}; silent host (timeouts only) p50 {:?} max {:?}",
        reset[10], reset[19], silent[10], silent[19]
    );
}

/// The nodes' shared secret: sessions run over TLS, as in production.
fn tcp_security() -> kompics_net::PeerSecurity {
    kompics_net::PeerSecurity::shared_secret("zab-bench", &[6; 32]).unwrap()
}
